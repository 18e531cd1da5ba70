"""Metrics: the gate's observer feeds prometheus_client; the snapshot feeds the gauges."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.test_gate_pool import C1, Pool, to_client
from threadhost.gate import Gate, GateConfig
from threadhost.metrics import Metrics, parse_listen
from threadhost.policy import parse_policy
from threadhost.protocol import Call, ErrorCode, ErrorReply, Maintain


def text(m: Metrics) -> str:
    return generate_latest(m.registry).decode()


def test_outcomes_and_latencies_of_a_pool_reach_the_metrics() -> None:
    m = Metrics()
    p = Pool(2)
    p.gate._observe = m.observe  # a gate built with observer=m.observe does the same
    p.call(3.0, rid=1)
    p.answer("h1", 3.25)
    p.feed(p.gate.client_message(3.3, C1, Call(id=2, method="nope")))
    p.call(3.4, rid=3)
    p.gate.host_exited(3.5, "h2", "signal")
    out = text(m)
    assert 'threadhost_calls_total{method="calc",outcome="ok"} 1.0' in out
    assert 'threadhost_calls_total{method="(other)",outcome="unknown_call"} 1.0' in out
    assert 'threadhost_calls_total{method="calc",outcome="crashed"} 1.0' in out
    assert 'threadhost_call_seconds_bucket{le="0.25",method="calc"} 1.0' in out
    assert 'threadhost_call_seconds_bucket{le="0.1",method="calc"} 0.0' in out


def test_busy_answers_and_slow_calls_are_counted() -> None:
    m = Metrics()
    p = Pool(1)
    p.gate._observe = m.observe
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    (reply,) = to_client(p.call(3.1))
    assert reply.code is ErrorCode.BUSY
    p.answer("h1", 4.0)  # read_config: 1.0 s, fine
    p.feed(p.gate.client_message(5.0, C1, Maintain(id=2)))
    msg = p.pending["h1"].pop(0)
    p.gate.host_message(5.5, "h1", ErrorReply(id=msg.id, code=ErrorCode.UNFIT, message="x"))
    out = text(m)
    assert 'threadhost_calls_total{method="calc",outcome="busy"} 1.0' in out
    assert 'threadhost_slow_call_seconds_count{call="read_config",outcome="ok"} 1.0' in out
    assert 'threadhost_slow_call_seconds_sum{call="read_config",outcome="ok"} 1.0' in out
    assert 'threadhost_slow_call_seconds_count{call="read_config",outcome="unfit"} 1.0' in out


def test_a_gate_built_with_an_observer_reports_to_it() -> None:
    seen: list[tuple[str, str, str, float]] = []
    gate = Gate(GateConfig(heartbeat_timeout=1e9), parse_policy, 0.0,
                observer=lambda *a: seen.append(a))
    gate.start(0.0)
    gate.client_message(0.5, C1, Call(id=1, method="calc"))
    assert seen == [("call", "(other)", "busy", 0.0)]  # no adapter yet: a bounded label


def test_gauges_come_from_the_status_snapshot() -> None:
    m = Metrics()
    out = text(m)
    assert 'threadhost_state{state="ready"} 0.0' in out and "threadhost_in_flight 0.0" in out
    status: dict[str, Any] = {
        "state": "maintaining", "in_flight": 3, "restart_count": 2,
        "hosts": [{"state": "ready"}, {"state": "maintaining"}, {"state": "ready"}]}
    m.update(status)
    out = text(m)
    assert 'threadhost_state{state="maintaining"} 1.0' in out
    assert 'threadhost_state{state="ready"} 0.0' in out
    assert 'threadhost_hosts{state="ready"} 2.0' in out
    assert 'threadhost_hosts{state="maintaining"} 1.0' in out
    assert "threadhost_hosts_ready 2.0" in out and "threadhost_in_flight 3.0" in out
    assert "threadhost_host_restarts_total 2.0" in out


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), (":9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:1", ("0.0.0.0", 1)), ("[::1]:9464", ("::1", 9464))])
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9464", "host:", "host:abc", "h:-1", "h:70000", ""])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(listen)


@pytest.mark.timeout(20)
def test_metrics_are_served_over_http() -> None:
    m = Metrics()
    m.update({"state": "ready", "hosts": [{"state": "ready"}]})
    host, port = m.serve("127.0.0.1:0")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert 'threadhost_state{state="ready"} 1.0' in body


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_serve_metrics_and_json_logs(service_factory: Any) -> None:
    import json
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc = service_factory("--metrics", f"127.0.0.1:{port}", "--log-format", "json")
    svc.wait_state("ready")
    lib = svc.client()
    for _ in range(3):
        assert lib.calc(1) == 2
    body = ""
    for _ in range(50):  # the gauges follow the broker's snapshot (once a second)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        if 'threadhost_state{state="ready"} 1.0' in body:
            break
        import time

        time.sleep(0.1)
    assert 'threadhost_calls_total{method="calc",outcome="ok"} 3.0' in body
    assert 'threadhost_state{state="ready"} 1.0' in body
    assert "threadhost_hosts_ready 1.0" in body
    assert svc.stop() == 0  # the hosts log their shutdown too
    lines = [line for line in svc.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {r["process"] for r in records} == {"broker", "host"}
    assert all({"time", "level", "pid", "logger", "message"} <= set(r) for r in records)
