// threadhost dashboard: live updates (server-sent events), the call panel, the charts.
// Plain JavaScript, no build step, no outside assets.
"use strict";

const $ = (id) => document.getElementById(id);
const OUTCOMES = ["ok", "busy", "unavailable", "error"];
const CALL_DEADLINE_MS = 3000; // the server's own deadline is 2 s; this only guards the page

function text(value) {
  return value === null || value === undefined ? "-" : String(value);
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function seconds(value) {
  if (value === null || value === undefined) return "-";
  if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
  if (value < 3600) return Math.floor(value / 60) + " m " + Math.floor(value % 60) + " s";
  return Math.floor(value / 3600) + " h " + Math.floor((value % 3600) / 60) + " m";
}

function clock(wall) {
  return new Date(wall * 1000).toLocaleTimeString();
}

// ------------------------------------------------------------------ live snapshot

let last = null;

function render(snap) {
  last = snap;
  $("endpoint").textContent = snap.endpoint;
  $("adapter").textContent = snap.adapter || "(no adapter yet)";
  const state = $("state");
  if (state.textContent !== snap.state) state.textContent = snap.state;
  state.className = "state " + snap.state;
  $("problem").textContent = snap.problem || snap.failed_reason || "";
  const facts = [];
  if (snap.uptime !== null) facts.push("up " + seconds(snap.uptime));
  if (snap.generation !== null && snap.generation !== undefined)
    facts.push("generation " + snap.generation);
  if (snap.pool_size) facts.push(snap.pool_size + (snap.pool_size === 1 ? " host" : " hosts"));
  if (snap.restart_count !== null && snap.restart_count !== undefined)
    facts.push(snap.restart_count + " restarts");
  if (snap.reduced) facts.push("reduced status: the dashboard has a caller's key, not an " +
                                "operator's (no hosts, counters or maintenance)");
  $("facts").textContent = facts.join(" · ");
  renderHosts(snap.hosts);
  renderRunning(snap.running);
  renderMaintenances(snap.maintenances);
  renderRestarts(snap.restarts);
  renderCharts(snap.rates);
  fillSlowCalls(Object.keys(snap.slow_calls || {}));
}

function renderHosts(hosts) {
  const body = $("hosts").tBodies[0];
  body.replaceChildren(...hosts.map((h) => {
    const row = el("tr", {"data-host": text(h.id)});
    for (const value of [h.id, h.pid, h.state, h.generation, h.in_flight, h.restarts]) {
      row.append(el("td", {text: text(value)}));
    }
    if (h.note) row.title = h.note;
    return row;
  }));
  if (!hosts.length) body.append(el("tr", {}, el("td", {colspan: "6", class: "muted",
                                                         text: "no hosts"})));
}

function renderRunning(running) {
  const box = $("running");
  if (!running.length) {
    box.replaceChildren(el("p", {class: "muted", text: "none running"}));
    return;
  }
  box.replaceChildren(...running.map((r) => {
    const id = "progress-" + text(r.host);
    const bar = el("progress", {id: id, max: "1", "data-host": text(r.host)});
    let detail;
    if (r.fraction !== null && r.fraction !== undefined) {
      bar.value = r.fraction;
      bar.setAttribute("aria-valuetext", Math.round(r.fraction * 100) + "%");
      detail = seconds(r.elapsed) + " of about " + seconds(r.expected) +
               (r.remaining > 0 ? " (" + seconds(r.remaining) + " left)" : " (overdue)");
    } else {
      // no value: an indeterminate bar; the first run has no estimate yet
      detail = (r.elapsed !== null ? seconds(r.elapsed) + " of " : "") + "unknown";
    }
    const label = el("label", {for: id},
                     text(r.call) + " on " + text(r.host) +
                     (r.reason ? " (" + r.reason + ")" : ""));
    return el("div", {class: "progress"}, label, bar,
              el("div", {class: "muted small progress-detail", text: detail}));
  }));
}

function renderMaintenances(items) {
  const body = $("maintenances").tBodies[0];
  body.replaceChildren(...items.map((m) => el("tr", {},
    el("td", {text: clock(m.at)}), el("td", {text: text(m.host)}),
    el("td", {text: text(m.call)}), el("td", {text: text(m.reason)}),
    el("td", {text: seconds(m.duration)}),
    el("td", {class: "outcome-" + m.outcome, title: m.error || "",
              text: m.outcome + (m.error ? ": " + m.error : "")}))));
  if (!items.length) body.append(el("tr", {}, el("td", {colspan: "6", class: "muted",
                                                         text: "none seen yet"})));
}

function renderRestarts(items) {
  const list = $("restarts");
  if (!items.length) {
    list.replaceChildren(el("li", {class: "muted", text: "none seen"}));
    return;
  }
  const who = (id, pid) => (id || "?") + (pid ? " (pid " + pid + ")" : "");
  list.replaceChildren(...items.map((r) => el("li", {class: "restart"},
    clock(r.at) + " " + (r.slot === null ? "a host" :
      "slot " + r.slot + ": " + who(r.old_host, r.old_pid) + " → " + who(r.host, r.new_pid)) +
    (r.count > 1 ? " (" + r.count + " restarts)" : "") + ": " + text(r.reason))));
}

// ------------------------------------------------------------------ charts

function color(name) {
  return getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim();
}

function setupCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 480;
  const height = canvas.clientHeight || 160;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return {ctx, width, height};
}

function drawSeries(canvas, points, series, unit) {
  const {ctx, width, height} = setupCanvas(canvas);
  const left = 44, bottom = 18, top = 8, right = 6;
  const span = Math.max(60, ...points.map((p) => p.ago));
  let max = 0;
  for (const p of points) for (const s of series) if (p[s] !== null) max = Math.max(max, p[s]);
  max = max > 0 ? max * 1.15 : 1;
  const x = (ago) => left + (width - left - right) * (1 - ago / span);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  ctx.strokeStyle = color("line");
  ctx.fillStyle = color("muted");
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (const frac of [0, 0.5, 1]) {
    const v = max * frac;
    ctx.beginPath();
    ctx.moveTo(left, y(v));
    ctx.lineTo(width - right, y(v));
    ctx.stroke();
    const label = v === 0 ? "0" : v >= 10 ? Math.round(v).toString()
                : v >= 1 ? v.toFixed(1) : v.toPrecision(2);
    ctx.fillText(label, 2, y(v) + 4);
  }
  ctx.fillText("-" + Math.round(span) + " s", left, height - 4);
  ctx.fillText("now " + unit, width - right - 60, height - 4);
  for (const s of series) {
    ctx.strokeStyle = color(s === "latency_ms" ? "accent" : s);
    ctx.lineWidth = 2;
    ctx.beginPath();
    let drawing = false;
    for (const p of points) {
      if (p[s] === null || p[s] === undefined) { drawing = false; continue; }
      if (drawing) ctx.lineTo(x(p.ago), y(p[s]));
      else ctx.moveTo(x(p.ago), y(p[s]));
      drawing = true;
    }
    ctx.stroke();
    ctx.fillStyle = ctx.strokeStyle;
    for (const p of points) { // a lone point has no line: a dot shows it
      if (p[s] !== null && p[s] !== undefined && p[s] > 0) {
        ctx.fillRect(x(p.ago) - 1.5, y(p[s]) - 1.5, 3, 3);
      }
    }
  }
}

function renderCharts(points) {
  drawSeries($("chart-rates"), points, OUTCOMES, "calls/s");
  drawSeries($("chart-latency"), points, ["latency_ms"], "ms");
  const recent = points.filter((p) => p.latency_ms !== null).slice(-1)[0];
  const sums = {};
  for (const o of OUTCOMES) sums[o] = points.slice(-10).reduce((a, p) => a + p[o], 0) /
                                      Math.max(1, Math.min(10, points.length));
  $("legend-rates").replaceChildren(...OUTCOMES.map((o) => el("li",
    {style: "--swatch: var(--" + o + ")", "data-outcome": o,
     text: o + " " + sums[o].toFixed(1) + "/s"})));
  $("latency-now").textContent = recent
    ? "last interval: " + recent.latency_ms.toFixed(2) + " ms per forwarded call"
    : "no forwarded calls in the window";
}

// ------------------------------------------------------------------ events

function listen() {
  const source = new EventSource("/api/events");
  source.onmessage = (event) => render(JSON.parse(event.data));
  source.onerror = () => {
    const state = $("state");
    state.textContent = "dashboard offline";
    state.className = "state unreachable";
  };
}

// ------------------------------------------------------------------ the call panel

let forms = {};
let countdown = null;

function fieldInput(field, index) {
  const id = "arg-" + index;
  let input;
  if (field.choices && field.choices.every((c) => typeof c === "string")) {
    input = el("select", {id});
    if (!field.required) input.append(el("option", {value: "", text: "(default)"}));
    for (const c of field.choices) input.append(el("option", {value: c, text: c}));
  } else if (field.input === "boolean") {
    input = el("input", {id, type: "checkbox"});
    if (field.default === true) input.checked = true;
  } else {
    input = el("input", {id, type: "text"});
    if (field.input === "integer") input.setAttribute("inputmode", "numeric");
    if (field.input === "number") input.setAttribute("inputmode", "decimal");
    if (field.required) input.required = true;
    if ("default" in field) input.placeholder = JSON.stringify(field.default);
    else if (field.input === "json") input.placeholder = "JSON";
  }
  input.name = field.name;
  input.dataset.input = field.input;
  const prefix = field.kind === "var_positional" ? "*" : field.kind === "var_keyword" ? "**" : "";
  return el("div", {class: "field"},
            el("label", {for: id, text: prefix + field.name}), input,
            el("span", {class: "type", text: field.type + (field.required ? "" : " (optional)")}));
}

function showForm() {
  const form = forms[$("call-method").value];
  $("call-fields").replaceChildren(...(form ? form.fields.map(fieldInput) : []));
  $("call-signature").textContent = form ? form.signature : "";
  $("call-doc").textContent = form ? form.doc : "";
}

async function loadDescription() {
  try {
    const reply = await (await fetch("/api/describe")).json();
    if (reply.outcome !== "ok") throw new Error(reply.message);
    forms = {};
    for (const c of reply.calls) forms[c.name] = c;
    const select = $("call-method");
    const chosen = select.value;
    select.replaceChildren(...reply.calls.map((c) => el("option", {value: c.name, text: c.name})));
    if (chosen in forms) select.value = chosen;
    showForm();
    fillSlowCalls(reply.slow.map((s) => s.name));
  } catch (err) {
    setTimeout(loadDescription, 2000); // the service may not be up yet
  }
}

function fillSlowCalls(names) {
  const select = $("maintain-call");
  const have = Array.from(select.options).map((o) => o.value);
  if (names.length && names.join() !== have.join()) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el("option", {value: n, text: n})));
    if (names.includes(chosen)) select.value = chosen;
  }
}

function showAnswer(box, reply, ms) {
  if (countdown !== null && box === $("answer")) { clearInterval(countdown); countdown = null; }
  box.className = "answer " + reply.outcome;
  box.dataset.outcome = reply.outcome;
  const took = el("span", {class: "muted small took", text: " (" + ms.toFixed(0) + " ms)"});
  if (reply.outcome === "ok") {
    const value = typeof reply.result === "string" ? reply.result
                                                   : JSON.stringify(reply.result, null, 2);
    box.replaceChildren(el("strong", {text: "result "}), el("code", {class: "result", text: value}),
                        took);
    return;
  }
  if ((reply.outcome === "busy" || reply.outcome === "unavailable") &&
      reply.retry_after !== null && reply.retry_after !== undefined) {
    const until = performance.now() + reply.retry_after * 1000;
    const line = el("strong", {class: "countdown"});
    const tick = () => {
      const left = Math.max(0, (until - performance.now()) / 1000);
      line.textContent = reply.outcome + " — retry in " + left.toFixed(1) + " s";
      if (left <= 0 && countdown !== null) {
        clearInterval(countdown);
        countdown = null;
        line.textContent = reply.outcome + " — retry now";
      }
    };
    tick();
    if (box === $("answer")) countdown = setInterval(tick, 100);
    box.replaceChildren(line, took, el("div", {class: "muted small",
                                               text: reply.error + ": " + reply.message}));
    return;
  }
  box.replaceChildren(el("strong", {class: "error-name", text: reply.error + ": "}),
                      el("span", {text: reply.message}), took);
}

async function post(url, body) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), CALL_DEADLINE_MS);
  try {
    const response = await fetch(url, {method: "POST", signal: abort.signal,
                                       headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body)});
    return await response.json();
  } catch (err) {
    return {outcome: "error", error: err.name === "AbortError" ? "Timeout" : "NetworkError",
            message: err.name === "AbortError" ? "no answer within 3 s" : String(err)};
  } finally {
    clearTimeout(timer);
  }
}

async function submitCall(event) {
  event.preventDefault();
  const method = $("call-method").value;
  if (!method) return;
  const values = {};
  for (const input of $("call-fields").querySelectorAll("input, select")) {
    values[input.name] = input.type === "checkbox" ? (input.checked ? "true" : "false")
                                                   : input.value;
  }
  const t0 = performance.now();
  const reply = await post("/api/call", {method, values});
  showAnswer($("answer"), reply, performance.now() - t0);
}

async function submitMaintain(event) {
  event.preventDefault();
  const t0 = performance.now();
  const reply = await post("/api/maintain", {call: $("maintain-call").value || null});
  const box = $("maintain-answer");
  if (reply.outcome === "ok") {
    box.className = "answer " + (reply.started ? "ok" : "error");
    box.textContent = (reply.started ? "started: " : "not started: ") + reply.reason;
    if (!reply.started && reply.retry_after != null) {  // count down to retry_after
      const until = performance.now() + reply.retry_after * 1000;
      const line = el("strong", {class: "countdown"});
      const tick = () => {
        const left = Math.max(0, (until - performance.now()) / 1000);
        line.textContent = left > 0 ? " — retry in " + left.toFixed(1) + " s" : " — retry now";
        if (left > 0 && line.isConnected) setTimeout(tick, 100);
      };
      box.append(line);
      tick();
    }
  } else {
    showAnswer(box, reply, performance.now() - t0);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("call-method").addEventListener("change", showForm);
  $("call-form").addEventListener("submit", submitCall);
  $("maintain-form").addEventListener("submit", submitMaintain);
  window.addEventListener("resize", () => { if (last) renderCharts(last.rates); });
  listen();
  loadDescription();
});
