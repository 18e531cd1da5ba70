"""Unit tests of the gate: every rule, no sockets, no sleeps (time is a number we pass)."""

from __future__ import annotations

from typing import Any

import pytest

from threadhost.gate import (
    Gate,
    GateConfig,
    GateState,
    KillHost,
    StartHost,
    Stopped,
    ToClient,
    ToHost,
)
from threadhost.policy import parse_policy
from threadhost.protocol import (
    Call,
    Describe,
    Description,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Maintain,
    MaintainReply,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
    Status,
    StatusReply,
)

CLIENT = (b"client-1",)
OTHER = (b"client-2",)


def adapter(
    default_policy: str | None = "idle=10s",
    startup: bool = True,
    slow: tuple[str, ...] = ("read_config",),
    deadline: float | None = None,
) -> dict[str, Any]:
    calls: list[dict[str, Any]] = [{"name": "calc", "kind": "fast"}]
    for name in slow:
        calls.append(
            {"name": name, "kind": "slow", "startup": startup, "policy": None, "deadline": deadline}
        )
    return {"adapter": "tests:Lib", "default_policy": default_policy, "calls": calls}


def make_gate(**cfg: Any) -> Gate:
    return Gate(GateConfig(**cfg), parse_policy, now=0.0)


def sent_to_host(actions: list[Any]) -> list[Any]:
    """Messages to hosts' call sockets (broker heartbeats left out)."""
    return [a.message for a in actions if isinstance(a, ToHost) and not a.heartbeat_socket]


def quiet(actions: list[Any]) -> list[Any]:
    """``actions`` without the broker's periodic heartbeats to hosts."""
    return [a for a in actions if not (isinstance(a, ToHost) and a.heartbeat_socket)]


def sent_to_client(actions: list[Any], route: tuple[bytes, ...] = CLIENT) -> list[Any]:
    return [a.message for a in actions if isinstance(a, ToClient) and a.route == route]


def ready_gate(now: float = 0.0, slow_duration: float = 2.0, **kw: Any) -> Gate:
    """A gate whose host h1 is ready and whose start-up slow call took ``slow_duration``."""
    ad = kw.pop("adapter_desc", None) or adapter()
    kw.setdefault("heartbeat_timeout", 1e9)
    gate = make_gate(**kw)
    (start,) = gate.start(now)
    assert isinstance(start, StartHost)
    acts = gate.host_message(now, "h1", Ready(host_id="h1", pid=42, adapter=ad, fingerprint="fp"))
    for msg in sent_to_host(acts):
        acts = gate.host_message(now + slow_duration, "h1", Result(id=msg.id))
    assert gate.state is GateState.READY
    return gate


def call(rid: int = 7, method: str = "calc", **kw: Any) -> Call:
    return Call(id=rid, method=method, args=[5], **kw)


def test_first_start_is_busy_until_startup_slow_call_finishes() -> None:
    gate = make_gate()
    assert gate.start(0.0) == [StartHost("h1", "initial start")]
    (reply,) = sent_to_client(gate.client_message(0.1, CLIENT, call()))
    assert reply.code is ErrorCode.BUSY and reply.id == 7

    acts = gate.host_message(
        0.5, "h1", Ready(host_id="h1", pid=42, adapter=adapter(), fingerprint="fp")
    )
    (slow,) = sent_to_host(acts)
    assert slow.method == "read_config" and gate.state is GateState.STARTUP

    acts = gate.client_message(1.0, CLIENT, call())
    assert sent_to_host(acts) == []  # never forwarded while the slow call runs
    (reply,) = sent_to_client(acts)
    assert reply.code is ErrorCode.BUSY

    gate.host_message(3.0, "h1", Result(id=slow.id))
    assert gate.state is GateState.READY
    assert gate.generation == 1


def test_ready_forwards_and_routes_reply_by_request_id() -> None:
    gate = ready_gate()
    a = sent_to_host(gate.client_message(5.0, CLIENT, call(rid=7)))
    b = sent_to_host(gate.client_message(5.0, OTHER, call(rid=7)))  # same client id, other client
    assert len(a) == 1 and len(b) == 1 and a[0].id != b[0].id
    # answers come back out of order; each goes to its own client with its own id
    out_b = gate.host_message(5.1, "h1", Result(id=b[0].id, value=60))
    out_a = gate.host_message(5.1, "h1", Result(id=a[0].id, value=6))
    assert sent_to_client(out_a, CLIENT) == [Result(id=7, value=6)]
    assert sent_to_client(out_b, OTHER) == [Result(id=7, value=60)]
    assert gate.counters["served"] == 2


def test_late_or_duplicate_host_reply_is_ignored() -> None:
    gate = ready_gate()
    (fwd,) = sent_to_host(gate.client_message(5.0, CLIENT, call()))
    assert sent_to_client(gate.host_message(5.1, "h1", Result(id=fwd.id, value=6)))
    assert gate.host_message(5.2, "h1", Result(id=fwd.id, value=6)) == []
    assert gate.host_message(5.2, "h1", Result(id=99999, value=1)) == []


def test_host_error_reply_routed_with_client_id() -> None:
    gate = ready_gate()
    (fwd,) = sent_to_host(gate.client_message(5.0, CLIENT, call(rid=3)))
    err = ErrorReply(id=fwd.id, code=ErrorCode.BAD_ARGUMENTS, message="x: expected int")
    (reply,) = sent_to_client(gate.host_message(5.1, "h1", err))
    assert reply.id == 3 and reply.code is ErrorCode.BAD_ARGUMENTS


@pytest.mark.parametrize("method", ["nope", "read_config", "setup", "_private", "__class__"])
def test_unknown_and_slow_calls_are_refused_without_touching_the_host(method: str) -> None:
    gate = ready_gate()
    acts = gate.client_message(5.0, CLIENT, call(method=method))
    assert sent_to_host(acts) == []
    (reply,) = sent_to_client(acts)
    assert reply.code is ErrorCode.UNKNOWN_CALL and method in reply.message


def answered_call(gate: Gate, now: float) -> None:
    """A client call at ``now``, answered at once (it arms the ``idle`` term)."""
    for msg in sent_to_host(gate.client_message(now, OTHER, call())):
        gate.host_message(now, "h1", Result(id=msg.id, value=6))


def test_idle_policy_starts_slow_call_and_gate_rejects_with_measured_retry_after() -> None:
    gate = ready_gate(slow_duration=2.0)  # ready at t=2, first slow call measured 2 s
    answered_call(gate, 2.0)  # idle counts from the last call
    assert quiet(gate.tick(11.9)) == []
    assert gate.next_wakeup(11.9) == pytest.approx(12.0)
    acts = gate.tick(12.0)
    (slow,) = sent_to_host(acts)
    assert slow.method == "read_config" and gate.state is GateState.MAINTAINING

    (reply,) = sent_to_client(gate.client_message(12.5, CLIENT, call()))
    assert reply.code is ErrorCode.BUSY
    assert reply.retry_after == pytest.approx(1.5)  # estimate 2.0 - elapsed 0.5
    gate.host_message(16.0, "h1", Result(id=slow.id))  # took 4 s this time
    assert gate.state is GateState.READY and gate.generation == 2
    answered_call(gate, 16.0)
    # next estimate is an EWMA of 2 s and 4 s
    acts = gate.tick(26.0)
    assert sent_to_host(acts)
    (reply,) = sent_to_client(gate.client_message(26.0, CLIENT, call()))
    assert reply.retry_after == pytest.approx(3.0)


def test_calls_reset_idle_timer_so_busy_traffic_starves_idle_but_not_stale() -> None:
    gate = ready_gate(adapter_desc=adapter(default_policy="idle=1s | stale=3s"), slow_duration=0)
    started = []
    t = 0.0
    while t < 10.0:
        t = round(t + 0.2, 6)
        for msg in sent_to_host(gate.tick(t)):
            started.append(t)
            gate.host_message(t, "h1", Result(id=msg.id))
        for msg in sent_to_host(gate.client_message(t, CLIENT, call())):
            gate.host_message(t, "h1", Result(id=msg.id, value=6))
    assert [round(s) for s in started] == [3, 6, 9]


def test_host_death_answers_inflight_with_crashed_and_restarts() -> None:
    gate = ready_gate()
    sent_to_host(gate.client_message(5.0, CLIENT, call(rid=11)))
    acts = gate.host_exited(5.5, "h1", "killed by signal SIGABRT")
    (reply,) = sent_to_client(acts)
    assert reply.id == 11 and reply.code is ErrorCode.CRASHED
    assert [a for a in acts if isinstance(a, StartHost)] == [
        StartHost("h2", "host process exited (killed by signal SIGABRT)")
    ]
    assert gate.state is GateState.RESTARTING
    (reply,) = sent_to_client(gate.client_message(5.6, CLIENT, call()))
    assert reply.code is ErrorCode.UNAVAILABLE
    assert reply.retry_after is not None and reply.retry_after > 0
    # the dead host's late messages are ignored
    assert gate.host_message(5.7, "h1", Result(id=1)) == []
    # the new host runs the start-up slow call again before the gate reopens
    acts = gate.host_message(6.0, "h2", Ready(host_id="h2", pid=43, adapter=adapter(),
                                              fingerprint="fp"))
    (slow,) = sent_to_host(acts)
    assert slow.method == "read_config"
    assert sent_to_client(gate.client_message(6.1, CLIENT, call()))[0].code is ErrorCode.BUSY
    gate.host_message(7.0, "h2", Result(id=slow.id))
    assert gate.state is GateState.READY and gate.restart_count == 1


def test_restart_intensity_limit_enters_failed_state() -> None:
    gate = ready_gate(restart_limit=2, restart_window=60.0)
    now = 10.0
    for n in (1, 2):
        acts = gate.host_exited(now, f"h{n}", "exit code 1")
        assert any(isinstance(a, StartHost) for a in acts)
        now += 1
    acts = gate.host_exited(now, "h3", "exit code 1")
    assert not any(isinstance(a, StartHost) for a in acts)
    assert gate.state is GateState.FAILED
    (reply,) = sent_to_client(gate.client_message(now, CLIENT, call()))
    assert reply.code is ErrorCode.FAILED and "limit 2" in reply.message


def test_restarts_outside_the_window_do_not_count() -> None:
    gate = ready_gate(restart_limit=1, restart_window=10.0)
    assert any(isinstance(a, StartHost) for a in gate.host_exited(10.0, "h1", "x"))
    assert any(isinstance(a, StartHost) for a in gate.host_exited(25.0, "h2", "x"))
    assert gate.state is GateState.RESTARTING


def test_first_host_failing_before_ready_stops_the_service() -> None:
    gate = make_gate()
    gate.start(0.0)
    gate.host_message(0.2, "h1", Goodbye(host_id="h1", ok=False, code=ErrorCode.ADAPTER,
                                         message="no adapter"))
    acts = gate.host_exited(0.3, "h1", "exit code 3")
    assert [a for a in acts if isinstance(a, Stopped)] == [Stopped(1, "host exit code 3")]


def test_missed_heartbeats_kill_the_host_but_not_during_a_slow_call() -> None:
    gate = ready_gate(heartbeat_timeout=3.0, slow_duration=0.0)
    gate.host_message(1.0, "h1", Heartbeat(host_id="h1"))
    assert quiet(gate.tick(3.9)) == []
    assert [type(a) for a in quiet(gate.tick(4.1))] == [KillHost]

    gate = ready_gate(heartbeat_timeout=3.0, slow_duration=0.0,
                      adapter_desc=adapter(deadline=30.0))
    acts = gate.client_message(0.0, CLIENT, Maintain(id=1))
    assert sent_to_client(acts)[0].started
    # no heartbeat for 29 s: a GIL-holding slow call may silence them; judged by its deadline
    assert not any(isinstance(a, KillHost) for a in gate.tick(29.0))
    kill = [a for a in gate.tick(30.5) if isinstance(a, KillHost)]
    assert kill and "deadline" in kill[0].reason


def test_hung_fast_call_kills_host() -> None:
    gate = ready_gate(fast_call_limit=5.0)
    gate.client_message(10.0, CLIENT, call())
    for t in (11.0, 13.0, 14.9):
        gate.host_message(t, "h1", Heartbeat(host_id="h1", busy_id=1))
        assert quiet(gate.tick(t)) == []
    gate.host_message(15.1, "h1", Heartbeat(host_id="h1"))
    kill = [a for a in gate.tick(15.1) if isinstance(a, KillHost)]
    assert kill and "calc" in kill[0].reason


def test_manual_maintain_started_already_running_and_too_soon() -> None:
    gate = ready_gate(adapter_desc=adapter(default_policy="manual | min_gap=30s"),
                      slow_duration=1.0)
    (reply,) = sent_to_client(gate.client_message(10.0, CLIENT, Maintain(id=1)))
    assert reply == MaintainReply(id=1, started=False, reason=reply.reason, retry_after=21.0)
    assert reply.reason.startswith("too soon")
    (reply,) = sent_to_client(gate.client_message(31.5, CLIENT, Maintain(id=2)))
    assert reply.started
    (reply,) = sent_to_client(gate.client_message(31.6, CLIENT, Maintain(id=3)))
    assert not reply.started and reply.reason.startswith("already running")
    (reply,) = sent_to_client(gate.client_message(31.6, CLIENT, Maintain(id=4, method="nope")))
    assert not reply.started and "nope" in reply.reason


def test_manual_policy_never_fires_by_itself() -> None:
    gate = ready_gate(adapter_desc=adapter(default_policy="manual"))
    for t in range(3, 10_000, 97):
        assert sent_to_host(gate.tick(float(t))) == []


def test_several_slow_calls_one_at_a_time() -> None:
    gate = ready_gate(adapter_desc=adapter(default_policy="every=10s", startup=False,
                                           slow=("reload_a", "reload_b")))
    acts = gate.tick(12.1)
    (first,) = sent_to_host(acts)
    assert sent_to_host(gate.tick(12.2)) == []  # the other is due too but must wait
    assert sent_to_client(gate.client_message(12.3, CLIENT, call()))[0].code is ErrorCode.BUSY
    gate.host_message(13.0, "h1", Result(id=first.id))
    assert gate.state is GateState.READY


def test_fingerprint_mismatch_is_refused() -> None:
    gate = ready_gate()
    (reply,) = sent_to_client(gate.client_message(5.0, CLIENT, call(fingerprint="other")))
    assert reply.code is ErrorCode.FINGERPRINT
    # ...before anything else: a stale proxy must not be told "unknown call" or "busy"
    (reply,) = sent_to_client(gate.client_message(5.0, CLIENT, call(method="gone",
                                                                     fingerprint="other")))
    assert reply.code is ErrorCode.FINGERPRINT
    (fwd,) = sent_to_host(gate.client_message(5.0, CLIENT, call(fingerprint="fp")))
    gate.host_message(5.1, "h1", Result(id=fwd.id, value=6))
    gate.tick(100.0)  # idle policy: maintenance starts
    assert gate.state is GateState.MAINTAINING
    (reply,) = sent_to_client(gate.client_message(100.1, CLIENT, call(fingerprint="other")))
    assert reply.code is ErrorCode.FINGERPRINT


def test_graceful_shutdown() -> None:
    gate = ready_gate()
    (fwd,) = sent_to_host(gate.client_message(5.0, CLIENT, call(rid=1)))
    acts = gate.shutdown(6.0, "SIGTERM received")
    assert sent_to_host(acts) == [Shutdown(reason="SIGTERM received")]
    (reply,) = sent_to_client(gate.client_message(6.1, CLIENT, call(rid=2)))
    assert reply.code is ErrorCode.UNAVAILABLE
    # the in-flight call is still answered by the host
    assert sent_to_client(gate.host_message(6.2, "h1", Result(id=fwd.id, value=6)))
    gate.host_message(6.3, "h1", Goodbye(host_id="h1"))
    assert [a for a in gate.host_exited(6.4, "h1", "exit code 0") if isinstance(a, Stopped)] == [
        Stopped(0, "host exit code 0")
    ]


def test_shutdown_timeout_kills_host_and_exits_nonzero() -> None:
    gate = ready_gate(shutdown_timeout=5.0)
    gate.shutdown(10.0)
    assert quiet(gate.tick(14.0)) == []
    assert any(isinstance(a, KillHost) for a in gate.tick(15.5))
    (stopped,) = [a for a in gate.host_exited(15.6, "h1", "x") if isinstance(a, Stopped)]
    assert stopped.exit_code == 1


def test_control_requests() -> None:
    gate = ready_gate()
    assert sent_to_client(gate.client_message(5.0, CLIENT, Ping(id=4))) == [Pong(id=4)]
    (desc,) = sent_to_client(gate.client_message(5.0, CLIENT, Describe(id=5)))
    assert isinstance(desc, Description) and desc.fingerprint == "fp"
    (st,) = sent_to_client(gate.client_message(5.0, CLIENT, Status(id=6)))
    assert isinstance(st, StatusReply)
    assert st.status["state"] == "ready" and st.status["host_pid"] == 42
    assert st.status["generation"] == 1


def test_status_while_maintaining_shows_elapsed_and_expected() -> None:
    gate = ready_gate(slow_duration=2.0)
    answered_call(gate, 2.0)
    gate.tick(12.0)
    st = gate.status(13.0)
    assert st["state"] == "maintaining"
    assert st["maintenance"]["elapsed"] == pytest.approx(1.0)
    assert st["maintenance"]["expected"] == pytest.approx(2.0)


def test_client_may_not_send_host_messages() -> None:
    gate = ready_gate()
    (reply,) = sent_to_client(gate.client_message(5.0, CLIENT, Result(id=3, value=1)))
    assert reply.code is ErrorCode.PROTOCOL


def test_attach_mode_adopts_a_host_and_waits_for_the_next_after_death() -> None:
    gate = Gate(GateConfig(spawn=False, heartbeat_timeout=3.0, attached_busy_timeout=5.0,
                           hosts=1), parse_policy, now=0.0)
    assert not any(isinstance(a, StartHost) for a in gate.start(0.0))
    # an unknown host's heartbeat is not an adoption: it is told a broker is here
    (nudge,) = gate.host_message(0.1, "x", Heartbeat(host_id="x"))
    assert isinstance(nudge, ToHost) and nudge.heartbeat_socket and nudge.host_id == "x"
    assert len(gate.pool) == 0
    acts = gate.host_message(0.2, "x", Ready(host_id="x", pid=1, adapter=adapter(startup=False),
                                             fingerprint="fp"))
    assert gate.state is GateState.READY and not sent_to_host(acts)
    assert sent_to_host(gate.client_message(0.3, CLIENT, call()))
    # a second host is not adopted while the pool (of 1) is full
    gate.host_message(0.4, "y", Ready(host_id="y", pid=2, adapter=adapter(), fingerprint="fp"))
    assert [h.host_id for h in gate.pool] == ["x"]
    # silence with a call in flight: judged by the attached-busy timeout (5 s), not the
    # heartbeat timeout (3 s); then declared dead (not ours to kill), in-flight calls crash
    assert not sent_to_client(gate.tick(3.5))
    acts = gate.tick(5.5)
    assert sent_to_client(acts)[0].code is ErrorCode.CRASHED
    assert gate.state is GateState.RESTARTING and len(gate.pool) == 0
    assert not any(isinstance(a, StartHost) for a in acts)
    gate.host_message(4.0, "y", Ready(host_id="y", pid=2, adapter=adapter(startup=False),
                                      fingerprint="fp"))
    assert gate.state is GateState.READY


def test_several_slow_calls_share_fairly_and_measure_their_own_runs() -> None:
    gate = ready_gate(adapter_desc=adapter(default_policy="every=1s", startup=False,
                                           slow=("reload_a", "reload_b")))
    runs: dict[str, int] = {"reload_a": 0, "reload_b": 0}
    t = 0.0
    while t < 20.0:
        t = round(t + 0.1, 6)
        for msg in sent_to_host(gate.tick(t)):
            runs[msg.method] += 1
            gate.host_message(t + 0.05, "h1", Result(id=msg.id))
    # each is due every second *since its own last run*: both run ~20 times, neither starves
    assert 15 <= runs["reload_a"] <= 21 and 15 <= runs["reload_b"] <= 21, runs
