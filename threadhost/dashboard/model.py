"""The dashboard's pure parts: what it makes of the ``status`` replies it samples and of a
call's ``describe`` entry. No sockets, no clock: every time is passed in.

* :class:`Rates` — calls/s by outcome (ok, busy, unavailable, error) and the mean latency of
  forwarded calls between consecutive samples, from the status ``counters`` and
  ``call_seconds``;
* :class:`Tracker` — the last maintenances (reason, duration, outcome) and the host restarts
  (with their reasons) seen from one sample to the next;
* :func:`progress` — the running slow call: elapsed against the measured estimate;
* :func:`form_fields` / :func:`parse_form` — a fast call's form, built from its signature,
  and the typed arguments read back from it;
* :func:`error_answer` — a refused or failed call as the panel shows it;
* :func:`snapshot` — all of it as one JSON-able dict, the payload of each live update.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from threadhost.cli import signature_text, type_text
from threadhost.errors import (
    AuthenticationError,
    BusyError,
    PermissionDeniedError,
    ThreadhostError,
    TryLaterError,
    UnavailableError,
)

__all__ = ["MAINTENANCES", "OUTCOMES", "UNAUTHENTICATED", "UNREACHABLE", "WINDOW",
           "FormError", "Rates", "Tracker", "error_answer", "form_fields", "outcome_totals",
           "parse_form", "problem_of", "progress", "snapshot"]

#: The outcomes counted per second, and the status counters each one adds up.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "ok": ("served",),
    "busy": ("rejected_busy",),
    "unavailable": ("rejected_unavailable",),
    "error": ("errors", "crashed", "rejected_poisoned"),
}
#: Seconds of rates kept for the charts; a point every STEP seconds, over the last SMOOTH.
WINDOW = 180.0
STEP = 1.0
SMOOTH = 5.0
#: Maintenances listed.
MAINTENANCES = 20
#: Restarts listed.
RESTARTS = 50
#: The state shown when the service does not answer ``status``...
UNREACHABLE = "unreachable"
#: ... and when it refused the dashboard's key (CURVE): a state of its own, not a hang.
UNAUTHENTICATED = "unauthenticated"


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def outcome_totals(counters: Any) -> dict[str, int]:
    """The status ``counters`` added up by outcome (missing counters count 0)."""
    counters = counters if isinstance(counters, Mapping) else {}
    return {outcome: int(sum(_num(counters.get(name)) or 0 for name in names))
            for outcome, names in OUTCOMES.items()}


def _latency_totals(status: Mapping[str, Any]) -> tuple[float, float] | None:
    seen = status.get("call_seconds")
    if not isinstance(seen, Mapping):
        return None  # a broker that does not report it
    count, total = _num(seen.get("count")), _num(seen.get("sum"))
    if count is None or total is None:
        return None
    return count, total


class Rates:
    """Calls per second by outcome, and the mean latency of the calls forwarded to hosts,
    one point per ``step`` seconds, each over the last ``smooth`` seconds of samples (a
    single call is not a spike); the last ``window`` seconds of points."""

    def __init__(self, window: float = WINDOW, smooth: float = SMOOTH,
                 step: float = STEP) -> None:
        self.window, self.smooth, self.step = window, smooth, step
        self._samples: deque[tuple[float, dict[str, int], tuple[float, float] | None]] = (
            deque())
        self._points: deque[dict[str, Any]] = deque()

    def add(self, t: float, status: Mapping[str, Any]) -> dict[str, Any] | None:
        """One sample at time ``t`` (seconds, any monotonic clock): the new point, or None
        (the first sample, one within ``step`` of the last point, counters that went back:
        a new broker)."""
        totals = outcome_totals(status.get("counters"))
        latency = _latency_totals(status)
        samples = self._samples
        if samples and any(totals[k] < samples[-1][1][k] for k in OUTCOMES):
            samples.clear()  # a new broker: its counters start again
        samples.append((t, totals, latency))
        while len(samples) > 2 and samples[1][0] <= t - self.smooth:
            samples.popleft()
        if len(samples) < 2 or (self._points and t - self._points[-1]["t"] < self.step):
            return None
        t0, before, latency0 = samples[0]  # the newest at or before t - smooth, if any
        span = t - t0
        if span <= 0:
            return None
        point: dict[str, Any] = {"t": t}
        for k in OUTCOMES:
            point[k] = round((totals[k] - before[k]) / span, 3)
        point["latency_ms"] = None
        if latency is not None and latency0 is not None:
            calls, seconds = latency[0] - latency0[0], latency[1] - latency0[1]
            if calls > 0 and seconds >= 0:
                point["latency_ms"] = round(seconds / calls * 1000.0, 3)
        self._points.append(point)
        while self._points and self._points[0]["t"] < t - self.window:
            self._points.popleft()
        return point

    def points(self, now: float) -> list[dict[str, Any]]:
        """The kept points, each with ``ago`` (seconds before ``now``) instead of ``t``."""
        return [{**{k: v for k, v in p.items() if k != "t"}, "ago": round(now - p["t"], 3)}
                for p in self._points]


def _maintenance_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (record.get("call"), record.get("reason"), record.get("duration"), record.get("ok"))


class Tracker:
    """What changed between samples: maintenances that ended, hosts that were restarted.

    Both lists are newest first; times are wall-clock seconds (``at``). The dashboard only
    knows what it has seen: the last maintenance of each host at its first sample, then
    every one that ended between two samples (a host that ran two in one interval shows
    one). A restart is seen in the ``restarts`` of a slot (the status lists one host per
    slot, in slot order; a replacement has a new id and pid), or else in the service's
    ``restart_count`` alone (no host known)."""

    def __init__(self, maintenances: int = MAINTENANCES, restarts: int = RESTARTS) -> None:
        self.maintenances: deque[dict[str, Any]] = deque(maxlen=maintenances)
        self.restarts: deque[dict[str, Any]] = deque(maxlen=restarts)
        self._keys: dict[str, tuple[Any, ...]] = {}
        self._slots: dict[int, tuple[Any, Any]] = {}  # slot -> (host id, pid) last seen
        self._slot_restarts: dict[int, int] = {}
        self._restart_count: int | None = None
        self._counted = 0  # restarts the service counted since the first sample
        self._attributed = 0  # ... of which a slot showed the host
        self._anonymous = 0  # ... listed without a host (not attributed yet)

    def add(self, wall: float, status: Mapping[str, Any]) -> None:
        hosts = [h for h in status.get("hosts") or [] if isinstance(h, Mapping)]
        slot_rows = not hosts or status.get("pool_size") in (None, len(hosts))
        if not hosts and isinstance(status.get("last_maintenance"), Mapping):
            hosts = [{"id": status.get("host_id") or "-", "pid": status.get("host_pid"),
                      "last_maintenance": status["last_maintenance"]}]
        slow = status.get("slow_calls")
        slow = slow if isinstance(slow, Mapping) else {}
        reason = status.get("last_restart_reason")
        for slot, h in enumerate(hosts):
            hid = str(h.get("id"))
            record = h.get("last_maintenance")
            if isinstance(record, Mapping):
                key = _maintenance_key(record)
                if self._keys.get(hid) != key:
                    self._keys[hid] = key
                    self._maintenance(wall, hid, record, slow)
            restarts = _num(h.get("restarts"))
            if not slot_rows or restarts is None:
                continue  # a slot is vacant: which row is which slot is not known
            before = self._slot_restarts.get(slot)
            if before is not None and restarts > before:
                self._restarted(wall, slot, h, int(restarts - before), reason)
            self._slot_restarts[slot] = int(restarts)
            self._slots[slot] = (h.get("id"), h.get("pid"))
        count = _num(status.get("restart_count"))
        if count is not None:
            if self._restart_count is not None and count > self._restart_count:
                self._counted += int(count - self._restart_count)
            self._restart_count = int(count)
        missing = self._counted - self._attributed - self._anonymous
        if missing > 0:  # the service counted restarts no slot has shown (yet)
            self._anonymous += missing
            self.restarts.appendleft({"at": wall, "reason": reason, "slot": None,
                                      "old_host": None, "old_pid": None, "host": None,
                                      "new_pid": None, "count": missing})
        for entry in self.restarts:  # the new host's pid, once it is known
            if entry["new_pid"] is None and entry["slot"] is not None:
                hid, pid = self._slots.get(entry["slot"], (None, None))
                if hid == entry["host"] and pid is not None:
                    entry["new_pid"] = pid

    def _restarted(self, wall: float, slot: int, row: Mapping[str, Any], count: int,
                   reason: Any) -> None:
        """The host of ``slot`` was replaced ``count`` times since the last sample: a new
        entry, or the one the service's own count already made without knowing the host."""
        self._attributed += count
        old_host, old_pid = self._slots.get(slot, (None, None))
        facts = {"slot": slot, "old_host": old_host, "old_pid": old_pid,
                 "host": row.get("id"), "new_pid": row.get("pid"), "count": count}
        anonymous = next((e for e in self.restarts if e["slot"] is None), None)
        if anonymous is not None and self._anonymous > 0:
            self._anonymous -= anonymous["count"]
            anonymous.update(facts)
            return
        self.restarts.appendleft({"at": wall, "reason": reason, **facts})

    def _maintenance(self, wall: float, host: str, record: Mapping[str, Any],
                     slow: Mapping[str, Any]) -> None:
        ok = record.get("ok")
        error = None
        if ok is False:
            info = slow.get(str(record.get("call")))
            if isinstance(info, Mapping):
                error = info.get("last_error")
        ended_ago = _num(record.get("ended_ago")) or 0.0
        self.maintenances.appendleft({
            "at": round(wall - ended_ago, 3), "host": host, "call": record.get("call"),
            "reason": record.get("reason"), "duration": _num(record.get("duration")),
            "outcome": "ok" if ok is True else "failed" if ok is False else "unknown",
            "error": error})


def progress(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The running slow calls: one per maintaining host. ``fraction`` is elapsed over the
    measured estimate (capped at 1; None the first time: no estimate yet)."""
    out: list[dict[str, Any]] = []
    running = status.get("maintenance")
    if isinstance(running, Mapping):
        elapsed, expected = _num(running.get("elapsed")), _num(running.get("expected"))
        fraction = None
        if elapsed is not None and expected is not None and expected > 0:
            fraction = round(min(1.0, elapsed / expected), 4)
        out.append({"call": running.get("call"), "reason": running.get("reason"),
                    "host": running.get("host"), "elapsed": elapsed, "expected": expected,
                    "fraction": fraction,
                    "remaining": None if elapsed is None or expected is None
                    else round(max(0.0, expected - elapsed), 3)})
    shown = {entry["host"] for entry in out}
    estimates = status.get("slow_calls")
    estimates = estimates if isinstance(estimates, Mapping) else {}
    rollout = status.get("rollout")
    call = rollout.get("call") if isinstance(rollout, Mapping) else None
    for h in status.get("hosts") or []:  # other maintaining hosts of a pool: no elapsed time
        if (isinstance(h, Mapping) and h.get("state") == "maintaining"
                and h.get("id") not in shown):
            info = estimates.get(call) if call is not None else None
            out.append({"call": call, "reason": rollout.get("reason")
                        if isinstance(rollout, Mapping) else None, "host": h.get("id"),
                        "elapsed": None, "fraction": None, "remaining": None,
                        "expected": _num(info.get("estimate"))
                        if isinstance(info, Mapping) else None})
    return out


# ----------------------------------------------------------------------------- the call form


class FormError(ValueError):
    """A form value that does not fit its parameter."""


def _input_kind(schema: Any) -> str:
    """How a parameter is entered: ``integer``, ``number``, ``boolean``, ``string`` or
    ``json`` (anything else, typed as JSON)."""
    if isinstance(schema, Mapping):
        kind = schema.get("type")
        if kind in ("integer", "number", "boolean") or (
                kind == "string" and schema.get("format") != "binary"):
            return str(kind)
        if isinstance(schema.get("enum"), list) and all(
                isinstance(v, str) for v in schema["enum"]):
            return "string"
    return "json"


def form_fields(call: Mapping[str, Any]) -> dict[str, Any]:
    """A fast call's ``describe`` entry as a form: its signature and one field per
    parameter (``name``, ``kind``, ``input``, ``type``, ``required``, ``default``,
    ``choices``). ``*args``/``**kwargs`` are one JSON field each (a list, an object)."""
    fields = []
    for p in call.get("params") or []:
        if not isinstance(p, Mapping):
            continue
        schema = p.get("schema")
        kind = str(p.get("kind") or "positional_or_keyword")
        field: dict[str, Any] = {
            "name": str(p.get("name")), "kind": kind, "type": type_text(schema),
            "input": "json" if kind in ("var_positional", "var_keyword")
            else _input_kind(schema),
            "required": kind not in ("var_positional", "var_keyword")
            and "default" not in p and p.get("required") is not False,
        }
        if "default" in p:
            field["default"] = p["default"]
        if isinstance(schema, Mapping) and isinstance(schema.get("enum"), list):
            field["choices"] = list(schema["enum"])
        fields.append(field)
    return {"name": call.get("name"), "signature": signature_text(dict(call)),
            "doc": str(call.get("doc") or "").strip().split("\n", 1)[0], "fields": fields}


def _value(field: Mapping[str, Any], text: str) -> Any:
    kind = field["input"]
    name = field["name"]
    try:
        if kind == "integer":
            return int(text.strip())
        if kind == "number":
            return float(text.strip())
        if kind == "json":
            return json.loads(text)
    except ValueError:
        what = {"integer": "an integer", "number": "a number"}.get(kind, "JSON")
        raise FormError(f"{name}: expected {what}, got {text!r}") from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "on", "off", "1", "0", ""):
            raise FormError(f"{name}: expected true or false, got {text!r}")
        return lowered in ("true", "on", "1")
    return text


def parse_form(form: Mapping[str, Any], values: Mapping[str, Any]
               ) -> tuple[list[Any], dict[str, Any]]:
    """The arguments of a call from its form (:func:`form_fields`) and the text the user
    typed per field. An empty optional field is left out (its default applies); an empty
    required field is a :class:`FormError`, as is a value that does not parse."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    skipped = False  # a positional left out: the ones after it must go by name
    for field in form["fields"]:
        name, kind = field["name"], field["kind"]
        raw = values.get(name)
        text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
        if text == "" and field["input"] != "boolean":
            if field["required"]:
                raise FormError(f"{name}: required")
            skipped = True
            continue
        value = _value(field, text)
        if kind == "var_positional":
            if not isinstance(value, list):
                raise FormError(f"*{name}: expected a JSON list")
            args.extend(value)
        elif kind == "var_keyword":
            if not isinstance(value, dict):
                raise FormError(f"**{name}: expected a JSON object")
            kwargs.update(value)
        elif kind == "keyword_only" or (skipped and kind != "positional_only"):
            kwargs[name] = value
        else:
            args.append(value)
    return args, kwargs


def problem_of(exc: BaseException) -> tuple[str, str]:
    """``(state, problem)`` of a ``status`` that failed with ``exc``: ``unauthenticated``
    and ``authentication failed: ...`` when the service refused the dashboard's key
    (:class:`~threadhost.AuthenticationError`), else ``unreachable`` and the error."""
    if isinstance(exc, AuthenticationError):
        return UNAUTHENTICATED, f"authentication failed: {exc}"
    return UNREACHABLE, f"{type(exc).__name__}: {exc}"


def error_answer(exc: BaseException) -> dict[str, Any]:
    """A refused or failed call as the panel shows it: ``outcome`` (busy, unavailable,
    denied — the dashboard's key may not do that —, unauthenticated — the service refused
    the key —, error), the error's class name and message, and ``retry_after`` seconds
    when known."""
    outcome = ("busy" if isinstance(exc, BusyError) else
               "unavailable" if isinstance(exc, UnavailableError) else
               "denied" if isinstance(exc, PermissionDeniedError) else
               UNAUTHENTICATED if isinstance(exc, AuthenticationError) else "error")
    retry_after = exc.retry_after if isinstance(exc, TryLaterError) else None
    message = str(exc) if isinstance(exc, ThreadhostError) or str(exc) else type(exc).__name__
    return {"outcome": outcome, "error": type(exc).__name__, "message": message,
            "retry_after": retry_after}


# ----------------------------------------------------------------------------- the snapshot


def _host_row(h: Mapping[str, Any]) -> dict[str, Any]:
    return {k: h.get(k) for k in ("id", "pid", "state", "generation", "in_flight",
                                  "restarts", "note")}


def snapshot(status: Mapping[str, Any] | None, *, endpoint: str, now: float, wall: float,
             rates: Rates, tracker: Tracker, problem: str | None = None,
             state: str = UNREACHABLE) -> dict[str, Any]:
    """One live update: the service state, the hosts table, the running slow calls, the
    last maintenances and restarts, the rates. ``status`` None (no answer): ``state``
    (``unreachable``, or ``unauthenticated``: see :func:`problem_of`) and ``problem`` says
    why; the lists keep what was seen before. ``reduced`` is true when the service
    answered a caller's reduced status (the dashboard has a caller key, not an operator
    key: no hosts, counters or maintenance to show)."""
    st: Mapping[str, Any] = status or {}
    hosts = [_host_row(h) for h in st.get("hosts") or [] if isinstance(h, Mapping)]
    if not hosts and st.get("host_pid") is not None:  # a broker without the hosts table
        hosts = [{"id": st.get("host_id"), "pid": st.get("host_pid"), "state": st.get("state"),
                  "generation": st.get("generation"), "in_flight": st.get("in_flight"),
                  "restarts": st.get("restart_count"), "note": None}]
    rollout = st.get("rollout")
    return {
        "endpoint": endpoint,
        "wall": wall,
        "state": st.get("state") if status is not None else state,
        "problem": problem,
        "reduced": bool(st.get("reduced")),
        "adapter": st.get("adapter"),
        "uptime": _num(st.get("uptime")),
        "generation": st.get("generation"),
        "restart_count": st.get("restart_count"),
        "last_restart_reason": st.get("last_restart_reason"),
        "failed_reason": st.get("failed_reason"),
        "pool_size": st.get("pool_size"),
        "counters": dict(st.get("counters") or {}),
        "hosts": hosts,
        "running": progress(st),
        "rollout": dict(rollout) if isinstance(rollout, Mapping) else None,
        "slow_calls": dict(st.get("slow_calls") or {}),
        "maintenances": list(tracker.maintenances),
        "restarts": list(tracker.restarts),
        "rates": rates.points(now),
    }
