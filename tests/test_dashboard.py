"""The dashboard's pure parts (rates, the maintenance/restart tracker, the progress of a slow
call, the call form from a signature, the snapshot), its web application with a fake service
(Starlette's TestClient), the command's behaviour without its extra, and the status field it
reads (``call_seconds``). The real browser is in tests/test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():  # newer Starlette asks for httpx2; httpx works with all
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from threadhost.cli import client_endpoint_of
from threadhost.dashboard import EXTRA_HINT
from threadhost.dashboard.app import Sampler, Settings, create_app
from threadhost.dashboard.model import (
    FormError,
    Rates,
    Tracker,
    error_answer,
    form_fields,
    outcome_totals,
    parse_form,
    progress,
    snapshot,
)
from threadhost.errors import BusyError, RemoteError, UnavailableError
from threadhost.protocol import Result

from .conftest import ROOT
from .test_cli import imported_modules
from .test_gate_core import calls_to, fast, serving

# ----------------------------------------------------------------------------- rates


def counters(ok: int = 0, busy: int = 0, unavailable: int = 0, errors: int = 0,
             crashed: int = 0, poisoned: int = 0) -> dict[str, int]:
    return {"served": ok, "rejected_busy": busy, "rejected_unavailable": unavailable,
            "errors": errors, "crashed": crashed, "protocol_errors": 99,
            "rejected_poisoned": poisoned}


def test_outcomes_add_up_the_status_counters() -> None:
    assert outcome_totals(counters(5, 3, 2, 1, 4, 6)) == {
        "ok": 5, "busy": 3, "unavailable": 2, "error": 11}
    assert outcome_totals(None) == {"ok": 0, "busy": 0, "unavailable": 0, "error": 0}
    assert outcome_totals({"served": 2}) == {"ok": 2, "busy": 0, "unavailable": 0, "error": 0}


def test_rates_per_second_between_two_samples() -> None:
    rates = Rates()
    assert rates.add(10.0, {"counters": counters()}) is None  # the first: no interval yet
    point = rates.add(10.5, {"counters": counters(ok=10, busy=4, unavailable=1, errors=1)})
    assert point == {"t": 10.5, "ok": 20.0, "busy": 8.0, "unavailable": 2.0, "error": 2.0,
                     "latency_ms": None}
    assert rates.points(11.0) == [{"ok": 20.0, "busy": 8.0, "unavailable": 2.0, "error": 2.0,
                                   "latency_ms": None, "ago": 0.5}]


def test_rates_latency_is_the_mean_of_the_interval() -> None:
    rates = Rates(smooth=1.0)
    rates.add(0.0, {"counters": counters(), "call_seconds": {"count": 100, "sum": 5.0}})
    point = rates.add(1.0, {"counters": counters(ok=4),
                            "call_seconds": {"count": 104, "sum": 5.008}})
    assert point is not None and point["latency_ms"] == pytest.approx(2.0)
    quiet = rates.add(2.0, {"counters": counters(ok=4),
                            "call_seconds": {"count": 104, "sum": 5.008}})
    assert quiet is not None and quiet["latency_ms"] is None  # no call: no latency


def test_rates_restart_after_the_counters_went_back() -> None:
    rates = Rates()
    rates.add(0.0, {"counters": counters(ok=50)})
    assert rates.add(1.0, {"counters": counters(ok=2)}) is None  # a new broker
    point = rates.add(2.0, {"counters": counters(ok=5)})
    assert point is not None and point["ok"] == 3.0


def test_rates_keep_only_the_window() -> None:
    rates = Rates(window=10.0)
    for i in range(30):
        rates.add(float(i), {"counters": counters(ok=i)})
    points = rates.points(29.0)
    assert [p["ago"] for p in points] == [float(a) for a in range(10, -1, -1)]
    assert {p["ok"] for p in points} == {1.0}


def test_rates_are_smoothed_and_stepped() -> None:
    rates = Rates(smooth=2.0, step=1.0)
    rates.add(0.0, {"counters": counters()})
    assert rates.add(0.5, {"counters": counters(ok=1)}) == {
        "t": 0.5, "ok": 2.0, "busy": 0.0, "unavailable": 0.0, "error": 0.0,
        "latency_ms": None}
    assert rates.add(1.0, {"counters": counters(ok=1)}) is None  # within a step
    point = rates.add(1.5, {"counters": counters(ok=1)})
    assert point is not None and point["ok"] == 0.667  # one call in 1.5 s
    later = rates.add(3.0, {"counters": counters(ok=1)})
    assert later is not None and later["ok"] == 0.0  # the call is more than 2 s back
    assert len(rates.points(3.0)) == 3


# ----------------------------------------------------------------------------- the tracker


def host(hid: str, pid: int | None, restarts: int = 0, last: dict[str, Any] | None = None,
         state: str = "ready") -> dict[str, Any]:
    return {"id": hid, "pid": pid, "state": state, "generation": 1, "in_flight": 0,
            "restarts": restarts, "last_maintenance": last}


def maint(reason: str, duration: float, ok: bool = True, ended_ago: float = 0.0,
          call: str = "read_config") -> dict[str, Any]:
    return {"call": call, "reason": reason, "ok": ok, "duration": duration,
            "ended_ago": ended_ago}


def test_tracker_lists_each_maintenance_once_newest_first() -> None:
    t = Tracker()
    t.add(100.0, {"hosts": [host("h1", 11, last=maint("startup", 3.0, ended_ago=4.0))]})
    t.add(100.5, {"hosts": [host("h1", 11, last=maint("startup", 3.0, ended_ago=4.5))]})
    assert [m["reason"] for m in t.maintenances] == ["startup"]
    assert t.maintenances[0]["at"] == 96.0  # when it ended
    t.add(110.0, {"hosts": [host("h1", 11, last=maint("manual", 2.5, ended_ago=0.2))]})
    assert [(m["reason"], m["duration"], m["outcome"]) for m in t.maintenances] == [
        ("manual", 2.5, "ok"), ("startup", 3.0, "ok")]


def test_tracker_names_the_error_of_a_failed_maintenance() -> None:
    t = Tracker()
    t.add(1.0, {"hosts": [host("h1", 11, last=maint("manual", 0.1, ok=False))],
                "slow_calls": {"read_config": {"last_error": "ValueError: bad offset"}}})
    assert t.maintenances[0]["outcome"] == "failed"
    assert t.maintenances[0]["error"] == "ValueError: bad offset"


def test_tracker_keeps_the_last_twenty_maintenances() -> None:
    t = Tracker()
    for i in range(25):
        t.add(float(i), {"hosts": [host("h1", 11, last=maint("policy", 1.0 + i))]})
    assert len(t.maintenances) == 20
    assert t.maintenances[0]["duration"] == 25.0  # the newest: 1.0 + 24


def test_tracker_records_a_restart_with_its_reason_and_pids() -> None:
    t = Tracker()
    t.add(1.0, {"restart_count": 0, "pool_size": 2, "hosts": [host("h1", 11), host("h2", 12)]})
    assert not t.restarts
    reason = "host h2 (pid 12) exited (signal 9)"
    t.add(2.0, {"restart_count": 1, "last_restart_reason": reason, "pool_size": 2,
                "hosts": [host("h1", 11), host("h3", None, restarts=1, state="starting")]})
    assert list(t.restarts) == [{"at": 2.0, "reason": reason, "slot": 1, "old_host": "h2",
                                 "old_pid": 12, "host": "h3", "new_pid": None, "count": 1}]
    t.add(2.5, {"restart_count": 1, "last_restart_reason": reason, "pool_size": 2,
                "hosts": [host("h1", 11), host("h3", 13, restarts=1)]})
    assert t.restarts[0]["new_pid"] == 13  # filled in once known
    assert len(t.restarts) == 1


def test_tracker_restart_counted_before_its_slot_shows_it() -> None:
    t = Tracker()
    t.add(1.0, {"restart_count": 0, "pool_size": 1, "hosts": [host("h1", 11)]})
    t.add(2.0, {"restart_count": 1, "last_restart_reason": "exited", "pool_size": 1,
                "hosts": []})  # the slot is vacant for a moment
    assert [(r["host"], r["reason"]) for r in t.restarts] == [(None, "exited")]
    t.add(3.0, {"restart_count": 1, "last_restart_reason": "exited", "pool_size": 1,
                "hosts": [host("h2", 12, restarts=1)]})
    assert list(t.restarts) == [{"at": 2.0, "reason": "exited", "slot": 0, "old_host": "h1",
                                 "old_pid": 11, "host": "h2", "new_pid": 12, "count": 1}]
    t.add(4.0, {"restart_count": 2, "last_restart_reason": "again", "pool_size": 1,
                "hosts": [host("h3", 13, restarts=2)]})
    assert [(r["old_host"], r["old_pid"], r["host"], r["new_pid"], r["reason"])
            for r in t.restarts] == [("h2", 12, "h3", 13, "again"),
                                     ("h1", 11, "h2", 12, "exited")]


def test_tracker_does_not_guess_slots_while_one_is_vacant() -> None:
    t = Tracker()
    t.add(1.0, {"restart_count": 0, "pool_size": 2, "hosts": [host("h1", 11), host("h2", 12)]})
    # h1's slot is vacant: h2 is the only row but it is slot 1, not slot 0
    t.add(2.0, {"restart_count": 1, "last_restart_reason": "gone", "pool_size": 2,
                "hosts": [host("h2", 12)]})
    t.add(3.0, {"restart_count": 1, "last_restart_reason": "gone", "pool_size": 2,
                "hosts": [host("h3", 13, restarts=1), host("h2", 12)]})
    assert [(r["slot"], r["old_host"], r["host"]) for r in t.restarts] == [(0, "h1", "h3")]


def test_tracker_restart_of_a_broker_without_a_hosts_table() -> None:
    t = Tracker()
    t.add(1.0, {"restart_count": 2})
    t.add(2.0, {"restart_count": 3, "last_restart_reason": "heartbeat lost"})
    assert [(r["host"], r["reason"]) for r in t.restarts] == [(None, "heartbeat lost")]


# ----------------------------------------------------------------------------- progress


def test_progress_against_the_measured_estimate() -> None:
    running = progress({"maintenance": {"call": "read_config", "reason": "manual",
                                        "host": "h1", "elapsed": 1.5, "expected": 6.0}})
    assert running == [{"call": "read_config", "reason": "manual", "host": "h1",
                        "elapsed": 1.5, "expected": 6.0, "fraction": 0.25, "remaining": 4.5}]
    overdue = progress({"maintenance": {"call": "c", "host": "h1", "elapsed": 9.0,
                                        "expected": 6.0}})
    assert overdue[0]["fraction"] == 1.0 and overdue[0]["remaining"] == 0.0


def test_progress_is_unknown_the_first_time() -> None:
    running = progress({"maintenance": {"call": "read_config", "reason": "startup",
                                        "host": "h1", "elapsed": 0.4, "expected": None}})
    assert running[0]["fraction"] is None and running[0]["remaining"] is None
    assert progress({"state": "ready"}) == []


def test_progress_lists_every_maintaining_host_of_a_pool() -> None:
    st = {"maintenance": {"call": "rc", "host": "h1", "elapsed": 1.0, "expected": 2.0},
          "rollout": {"call": "rc", "reason": "manual"},
          "slow_calls": {"rc": {"estimate": 2.0}},
          "hosts": [host("h1", 1, state="maintaining"), host("h2", 2, state="maintaining"),
                    host("h3", 3)]}
    assert [(r["host"], r["fraction"], r["expected"]) for r in progress(st)] == [
        ("h1", 0.5, 2.0), ("h2", None, 2.0)]


# ----------------------------------------------------------------------------- the form

CALC = {"name": "calc", "kind": "fast", "doc": "Return x + offset.\n\nMore.",
        "params": [{"name": "x", "kind": "positional_or_keyword",
                    "schema": {"type": "integer"}, "required": True}],
        "returns": {"type": "integer"}}
RICH = {"name": "lookup", "kind": "fast", "params": [
    {"name": "who", "kind": "positional_only", "schema": {"type": "string"}},
    {"name": "scale", "kind": "positional_or_keyword", "schema": {"type": "number"},
     "default": 1.0},
    {"name": "tags", "kind": "positional_or_keyword",
     "schema": {"type": "array", "items": {"type": "string"}}, "default": []},
    {"name": "rest", "kind": "var_positional", "schema": {"type": "integer"}},
    {"name": "strict", "kind": "keyword_only", "schema": {"type": "boolean"},
     "default": False},
    {"name": "mode", "kind": "keyword_only",
     "schema": {"enum": ["fast", "exact"], "title": "Mode"}, "default": "fast"},
    {"name": "extra", "kind": "var_keyword", "schema": {}},
], "returns": {"type": "object"}}


def test_a_form_from_a_signature() -> None:
    form = form_fields(CALC)
    assert form == {"name": "calc", "signature": "calc(x: int) -> int",
                    "doc": "Return x + offset.",
                    "fields": [{"name": "x", "kind": "positional_or_keyword", "type": "int",
                                "input": "integer", "required": True}]}
    rich = form_fields(RICH)
    assert [(f["name"], f["input"], f["required"]) for f in rich["fields"]] == [
        ("who", "string", True), ("scale", "number", False), ("tags", "json", False),
        ("rest", "json", False), ("strict", "boolean", False), ("mode", "string", False),
        ("extra", "json", False)]
    assert rich["fields"][5]["choices"] == ["fast", "exact"]
    assert rich["fields"][1]["default"] == 1.0
    assert rich["signature"].startswith("lookup(who: str, /, scale: float = 1.0")


def test_form_values_become_typed_arguments() -> None:
    assert parse_form(form_fields(CALC), {"x": " 5 "}) == ([5], {})
    rich = form_fields(RICH)
    assert parse_form(rich, {"who": "ann", "scale": "2.5", "tags": '["a"]', "rest": "[7, 8]",
                             "strict": "true", "mode": "exact", "extra": '{"k": 1}'}) == (
        ["ann", 2.5, ["a"], 7, 8], {"strict": True, "mode": "exact", "k": 1})
    # an empty optional field is left out: the ones after it go by name
    assert parse_form(rich, {"who": "ann", "scale": "", "tags": '["a"]', "strict": "false"}
                      ) == (["ann"], {"tags": ["a"], "strict": False})


@pytest.mark.parametrize(("values", "message"), [
    ({}, "x: required"),
    ({"x": ""}, "x: required"),
    ({"x": "five"}, "x: expected an integer, got 'five'"),
    ({"x": "5.5"}, "x: expected an integer"),
])
def test_bad_form_values_are_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(FormError, match=message):
        parse_form(form_fields(CALC), values)


def test_bad_rich_form_values_are_named() -> None:
    rich = form_fields(RICH)
    with pytest.raises(FormError, match=r"\*rest: expected a JSON list"):
        parse_form(rich, {"who": "a", "rest": '{"a": 1}'})
    with pytest.raises(FormError, match=r"tags: expected JSON"):
        parse_form(rich, {"who": "a", "tags": "[oops"})
    with pytest.raises(FormError, match=r"strict: expected true or false"):
        parse_form(rich, {"who": "a", "strict": "maybe"})


def test_error_answers() -> None:
    busy = error_answer(BusyError("busy: slow call 'read_config' running", retry_after=2.1))
    assert busy == {"outcome": "busy", "error": "BusyError",
                    "message": "busy: slow call 'read_config' running", "retry_after": 2.1}
    assert error_answer(UnavailableError("restarting", retry_after=None))["outcome"] == (
        "unavailable")
    failed = error_answer(RemoteError("ValueError: no"))
    assert failed["outcome"] == "error" and failed["error"] == "RemoteError"
    assert failed["retry_after"] is None


def test_snapshot_of_an_unreachable_service_keeps_what_was_seen() -> None:
    rates, tracker = Rates(), Tracker()
    tracker.add(1.0, {"hosts": [host("h1", 11, last=maint("startup", 3.0))]})
    snap = snapshot(None, endpoint="tcp://x:1", now=5.0, wall=6.0, rates=rates,
                    tracker=tracker, problem="UnavailableError: no service")
    assert snap["state"] == "unreachable" and snap["problem"].startswith("Unavailable")
    assert snap["hosts"] == [] and snap["running"] == []
    assert [m["reason"] for m in snap["maintenances"]] == ["startup"]
    json.dumps(snap)


# ----------------------------------------------------------------------------- the web app


class FakeService:
    """What the dashboard asks of a service, scripted."""

    def __init__(self) -> None:
        self.state = "ready"
        self.calls: list[tuple[str, list[Any], dict[str, Any], float]] = []
        self.busy_for: float | None = None
        self.maintained: list[str | None] = []
        self.maintain_refused: tuple[str, float | None] | None = None  # (reason, retry_after)
        self.closed = False
        self.served = 0

    async def status(self, timeout: float) -> dict[str, Any]:
        return {"state": self.state, "adapter": "fake:Lib", "restart_count": 0,
                "counters": counters(ok=self.served),
                "call_seconds": {"count": self.served, "sum": 0.001 * self.served},
                "hosts": [host("h1", 4242, last=maint("startup", 1.0))],
                "slow_calls": {"read_config": {"estimate": 1.0}}}

    async def describe(self, timeout: float) -> dict[str, Any]:
        return {"adapter": "fake:Lib", "fingerprint": "f" * 64,
                "calls": [CALC, RICH, {"name": "read_config", "kind": "slow",
                                       "doc": "Re-read.\nMore."}]}

    async def call(self, method: str, args: list[Any], kwargs: dict[str, Any],
                   timeout: float) -> Any:
        self.calls.append((method, args, kwargs, timeout))
        if self.busy_for is not None:
            raise BusyError("busy: slow call 'read_config' running", retry_after=self.busy_for)
        self.served += 1
        return {"sum": args[0] + 1, "raw": b"\x00\x01"} if method == "calc" else None

    async def maintain(self, call: str | None, timeout: float
                       ) -> tuple[bool, str, float | None]:
        self.maintained.append(call)
        if self.maintain_refused is not None:
            return False, self.maintain_refused[0], self.maintain_refused[1]
        return True, f"{call!r} on 1 host", None

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeService:
    return FakeService()


@pytest.fixture
def web(fake: FakeService) -> Iterator[TestClient]:
    app = create_app(Settings("tcp://127.0.0.1:1"), lambda settings: fake, sample=False)
    with TestClient(app) as client:
        yield client
    assert fake.closed


JSON = {"content-type": "application/json"}


def test_the_page_and_its_assets_are_served_from_the_package(web: TestClient) -> None:
    page = web.get("/")
    assert page.status_code == 200 and "<title>threadhost dashboard</title>" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert web.get(asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from outside
    assert 'aria-live="polite"' in page.text and 'for="call-method"' in page.text


def test_describe_gives_the_forms(web: TestClient) -> None:
    reply = web.get("/api/describe").json()
    assert reply["outcome"] == "ok" and reply["adapter"] == "fake:Lib"
    assert [c["name"] for c in reply["calls"]] == ["calc", "lookup"]
    assert reply["slow"] == [{"name": "read_config", "doc": "Re-read."}]


def test_a_call_from_the_panel(web: TestClient, fake: FakeService) -> None:
    reply = web.post("/api/call", json={"method": "calc", "values": {"x": "5"}}).json()
    assert reply["outcome"] == "ok" and reply["result"] == {"sum": 6, "raw": "AAE="}
    assert reply["ms"] >= 0
    assert fake.calls == [("calc", [5], {}, 2.0)]  # with the panel's short deadline


def test_a_busy_call_answers_with_retry_after(web: TestClient, fake: FakeService) -> None:
    fake.busy_for = 2.1
    reply = web.post("/api/call", json={"method": "calc", "values": {"x": "5"}}).json()
    assert reply["outcome"] == "busy" and reply["retry_after"] == 2.1
    assert reply["error"] == "BusyError"


def test_bad_calls_are_answered_not_made(web: TestClient, fake: FakeService) -> None:
    bad = web.post("/api/call", json={"method": "calc", "values": {"x": "five"}}).json()
    assert (bad["outcome"], bad["error"]) == ("error", "BadInput")
    unknown = web.post("/api/call", json={"method": "read_config", "values": {}}).json()
    assert (unknown["outcome"], unknown["error"]) == ("error", "UnknownCall")
    assert web.post("/api/call", json={"method": 5}).status_code == 400
    assert fake.calls == []


def test_posts_take_json_from_this_site_only(web: TestClient, fake: FakeService) -> None:
    body = json.dumps({"method": "calc", "values": {"x": "5"}})
    form = web.post("/api/call", content=body,
                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    foreign = web.post("/api/maintain", content="{}",
                       headers={**JSON, "origin": "http://evil.example"})
    assert foreign.status_code == 403
    same = web.post("/api/maintain", content="{}",
                    headers={**JSON, "origin": "http://testserver"})
    assert same.status_code == 200
    assert fake.calls == [] and fake.maintained == [None]


def test_maintain_now(web: TestClient, fake: FakeService) -> None:
    reply = web.post("/api/maintain", json={"call": "read_config"}).json()
    assert reply == {"outcome": "ok", "started": True, "reason": "'read_config' on 1 host"}
    assert fake.maintained == ["read_config"]
    assert web.post("/api/maintain", json={"call": 3}).status_code == 400


def test_a_refused_maintain_says_when_to_retry(web: TestClient, fake: FakeService) -> None:
    fake.maintain_refused = ("rate-limited: ...; retry in 2.5s", 2.5)
    assert web.post("/api/maintain", json={"call": None}).json() == {
        "outcome": "ok", "started": False, "reason": "rate-limited: ...; retry in 2.5s",
        "retry_after": 2.5}
    fake.maintain_refused = ("no slow call named 'x'", None)  # no retry time: no field
    assert web.post("/api/maintain", json={"call": "x"}).json() == {
        "outcome": "ok", "started": False, "reason": "no slow call named 'x'"}


def test_snapshot_route(web: TestClient, fake: FakeService) -> None:
    web.get("/api/snapshot")
    web.post("/api/call", json={"method": "calc", "values": {"x": "1"}})
    snap = web.get("/api/snapshot").json()
    assert snap["state"] == "ready" and snap["hosts"][0]["pid"] == 4242
    assert snap["rates"][-1]["ok"] > 0
    assert [m["reason"] for m in snap["maintenances"]] == ["startup"]


def test_live_updates_are_server_sent_events(fake: FakeService) -> None:
    app = create_app(Settings("tcp://127.0.0.1:1", interval=0.05), lambda settings: fake)
    with TestClient(app) as client, client.stream("GET", "/api/events?limit=3") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines()
                  if line.startswith("data: ")]
    assert len(events) == 3 and all(e["state"] == "ready" for e in events)


def test_sampler_reports_an_unreachable_service() -> None:
    class Down(FakeService):
        async def status(self, timeout: float) -> dict[str, Any]:
            raise UnavailableError("no service at tcp://127.0.0.1:1", retry_after=None)

    async def scenario() -> None:
        sampler = Sampler(Settings("tcp://127.0.0.1:1"), Down())
        snap = await sampler.sample()
        assert snap["state"] == "unreachable" and "no service" in snap["problem"]
        assert (await sampler.next(0, 0.01))[1] is snap
        assert (await sampler.next(1, 0.01)) == (1, None)  # nothing newer

    asyncio.run(scenario())


# ----------------------------------------------------------------------------- command, status


def run_cli(*args: str, block: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    code = "import sys\n"
    if block:
        code += f"sys.modules[{block!r}] = None\n"
    code += "from threadhost.cli import main\nmain(sys.argv[1:])\n"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("THREADHOST_")},
           **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("block", ["starlette", "uvicorn"])
def test_without_the_extra_one_line_and_exit_2(block: str) -> None:
    proc = run_cli("dashboard", "tcp://127.0.0.1:6000", block=block)
    assert proc.returncode == 2
    assert proc.stderr == f"threadhost: error: {EXTRA_HINT}\n"
    assert "pip install 'threadhost[dashboard]'" in proc.stderr
    served = run_cli("serve", "examples.mylib_adapter", "--dashboard", "127.0.0.1:8765",
                     block=block)
    assert served.returncode == 2
    assert served.stderr == f"threadhost: error: --dashboard: {EXTRA_HINT}\n"


@pytest.mark.parametrize("args", [["--help"], ["serve", "--help"]])
def test_listing_commands_imports_no_web_stack(args: list[str]) -> None:
    modules = imported_modules(*args)
    assert "threadhost.cli" in modules
    assert not {m for m in modules if m.split(".")[0] in ("starlette", "uvicorn", "anyio")
                or m.startswith("threadhost.dashboard")}
    assert "dashboard    Serve a live web dashboard" in run_cli("--help").stdout


def test_dashboard_usage_errors_are_one_line() -> None:
    bad = run_cli("dashboard", "nowhere")
    assert bad.returncode == 2 and bad.stderr.startswith("threadhost: error: ENDPOINT: bad")
    listen = run_cli("dashboard", "--listen", "8765")
    assert listen.returncode == 2 and "--listen: expected HOST:PORT" in listen.stderr
    assert "--listen HOST:PORT" in run_cli("dashboard", "--help").stdout
    from_env = run_cli("dashboard", env={"THREADHOST_ENDPOINT": "tcp://nowhere"})
    assert from_env.returncode == 2
    assert from_env.stderr.startswith("threadhost: error: THREADHOST_ENDPOINT: bad endpoint")
    listen_env = run_cli("dashboard", env={"THREADHOST_DASHBOARD": "nowhere"})
    assert listen_env.returncode == 2 and "expected HOST:PORT" in listen_env.stderr


def test_a_listen_address_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("dashboard", "tcp://127.0.0.1:1", "--listen", f"127.0.0.1:{port}")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"threadhost: error: cannot serve the dashboard on 127.0.0.1:{port}: ")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_serving_endpoint_seen_from_a_local_client() -> None:
    assert client_endpoint_of("tcp://*:6000") == "tcp://127.0.0.1:6000"
    assert client_endpoint_of("tcp://0.0.0.0:7") == "tcp://127.0.0.1:7"
    assert client_endpoint_of("tcp://10.1.2.3:7") == "tcp://10.1.2.3:7"
    assert client_endpoint_of("ipc:///tmp/x") == "ipc:///tmp/x"


def test_status_reports_the_summed_time_of_forwarded_calls() -> None:
    gate = serving(1)
    before = gate.status(10.0)["call_seconds"]
    assert before == {"count": 0, "sum": 0.0}
    for rid, (sent, answered) in enumerate([(10.0, 10.004), (11.0, 11.010)], start=1):
        acts = gate.client_message(sent, (b"client",), fast(rid))
        forwarded = calls_to(acts, "h1")[0]
        gate.host_message(answered, "h1", Result(id=forwarded.id, value=2))
    seen = gate.status(12.0)["call_seconds"]
    assert seen["count"] == 2 and seen["sum"] == pytest.approx(0.014)
