"""The Gate (threadhost.gate.core) as a whole, for what tests/test_gate.py and
tests/test_gate_pool.py leave open: exact action lists of every handler, start-up and
shutdown edges, retry_after values, counters, status views, next_wakeup. Pure: no sockets,
no sleeps; time is a number we pass."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import pytest

from threadhost.errors import ProtocolError
from threadhost.gate import (
    Gate,
    GateConfig,
    GateState,
    HostState,
    KillHost,
    Log,
    StartHost,
    Stopped,
    ToClient,
    ToHost,
)
from threadhost.gate.core import OTHER_METHOD, Observer
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

C = (b"client",)
C2 = (b"other",)
FP = "fp"
QUIET = {"heartbeat_interval": 1e6, "heartbeat_timeout": 1e9}


def slow(name: str = "read_config", *, startup: bool = True, policy: str | None = None,
         deadline: float | None = None) -> dict[str, Any]:
    return {"name": name, "kind": "slow", "startup": startup, "policy": policy,
            "deadline": deadline}


def desc(*slows: dict[str, Any], policy: str | None = "manual", replicable: bool = True,
         name: str | None = "tests:Lib") -> dict[str, Any]:
    calls: list[dict[str, Any]] = [{"name": "calc", "kind": "fast"}, *slows]
    out: dict[str, Any] = {"default_policy": policy, "replicable": replicable, "calls": calls}
    if name is not None:
        out["adapter"] = name
    return out


DESC = desc(slow())
PLAIN = desc()  # no slow call at all


def make(**cfg: Any) -> Gate:
    """A gate whose first broker heartbeat went out at 0 and whose next is far away."""
    for key, value in QUIET.items():
        cfg.setdefault(key, value)
    gate = Gate(GateConfig(**cfg), parse_policy, now=0.0, info={"broker_pid": 4242})
    gate.tick(0.0)
    return gate


def ready_msg(hid: str, adapter: dict[str, Any] | None = None, fp: str = FP,
              pid: int | None = None) -> Ready:
    return Ready(host_id=hid, pid=pid if pid is not None else 100 + int(hid[1:]),
                 adapter=adapter if adapter is not None else DESC, fingerprint=fp)


def calls_to(actions: list[Any], host_id: str | None = None) -> list[Call]:
    return [a.message for a in actions
            if isinstance(a, ToHost) and not a.heartbeat_socket
            and isinstance(a.message, Call) and (host_id is None or a.host_id == host_id)]


def replies(actions: list[Any], route: tuple[bytes, ...] = C) -> list[Any]:
    return [a.message for a in actions if isinstance(a, ToClient) and a.route == route]


def bring_up(gate: Gate, hid: str, at: float, startup_s: float = 2.0,
             adapter: dict[str, Any] | None = None) -> None:
    acts = gate.host_message(at, hid, ready_msg(hid, adapter))
    while True:
        pending = calls_to(acts, hid)
        if not pending:
            return
        at += startup_s  # each start-up call takes startup_s
        acts = gate.host_message(at, hid, Result(id=pending[0].id))


def serving(n: int = 1, adapter: dict[str, Any] | None = None, start_s: float = 1.0,
            startup_s: float = 2.0, **cfg: Any) -> Gate:
    """n hosts, each ready at ``start_s`` after a start-up slow call of ``startup_s``."""
    gate = make(hosts=n, **cfg)
    gate.start(0.0)
    for i in range(n):
        bring_up(gate, f"h{i + 1}", start_s, startup_s, adapter)
    assert gate.state is GateState.READY
    return gate


def fast(rid: int = 7, **kw: Any) -> Call:
    return Call(id=rid, method="calc", args=[1], **kw)


# =========================================================================== construction


def test_a_new_gate() -> None:
    gate = Gate(GateConfig(), parse_policy, now=5.0)
    assert gate.state is GateState.STARTING
    assert gate.counters == {"served": 0, "rejected_busy": 0, "rejected_unavailable": 0,
                             "errors": 0, "crashed": 0, "protocol_errors": 0,
                             "rejected_poisoned": 0}
    assert (gate.generation, gate.restart_count, gate.fingerprint) == (0, 0, "")
    assert (gate.last_restart_reason, gate.failed_reason, gate.last_maintenance) == (
        None, None, None)
    assert gate.route_away_after == 5.0
    assert gate.needs_tick is True
    assert gate.token == "broker" and gate.info == {}
    assert gate.started_at == 5.0
    assert gate.pool.size == 1 and len(gate.pool) == 0


def test_constructor_arguments_are_kept() -> None:
    info = {"broker_pid": 9}
    gate = Gate(GateConfig(route_away_after=2.5, hosts=3), parse_policy, now=0.0, info=info,
                token="tok")
    assert gate.info == {"broker_pid": 9} and gate.info is not info
    assert gate.token == "tok"
    assert gate.route_away_after == 2.5
    assert gate.pool.size == 3


def test_pool_size_by_mode() -> None:
    assert Gate(GateConfig(hosts=None), parse_policy, now=0.0).pool.size == 1
    assert Gate(GateConfig(hosts=None, spawn=False), parse_policy, now=0.0).pool.size is None
    assert Gate(GateConfig(hosts=2, spawn=False), parse_policy, now=0.0).pool.size == 2


def test_route_away_after_follows_the_measurements() -> None:
    gate = serving()
    t = 10.0
    for i in range(20):
        (fwd,) = calls_to(gate.client_message(t, C, fast(i)))
        gate.host_message(t + 0.25, "h1", Result(id=fwd.id))
        t += 1.0
    assert gate.route_away_after == 2.5  # 10 x 0.25 s


# =========================================================================== start


def test_start_spawns_every_slot() -> None:
    gate = make(hosts=3)
    assert gate.start(0.0) == [StartHost("h1", "initial start", 0),
                               StartHost("h2", "initial start", 1),
                               StartHost("h3", "initial start", 2)]
    assert [(h.host_id, h.slot, h.state) for h in gate.pool] == [
        ("h1", 0, HostState.STARTING), ("h2", 1, HostState.STARTING),
        ("h3", 2, HostState.STARTING)]
    assert gate.needs_tick is True


def test_start_without_a_host_count_spawns_one() -> None:
    gate = make(hosts=None)
    assert gate.start(0.0) == [StartHost("h1", "initial start")]


def test_start_in_attach_mode_waits() -> None:
    gate = make(spawn=False)
    assert gate.start(0.0) == [Log("info", "waiting for hosts to attach")]
    assert len(gate.pool) == 0 and gate.needs_tick is True


# =========================================================================== ready, start-up


def test_first_ready_configures_and_runs_the_start_up_call() -> None:
    gate = make()
    gate.start(0.0)
    acts = gate.host_message(1.0, "h1", ready_msg("h1"))
    assert acts == [
        Log("info", "slow call 'read_config': policy 'manual'"),
        Log("info", "host h1 (pid 101) ready"),
        Log("info", "slow call 'read_config' started on h1 (startup)"),
        ToHost("h1", Call(id=1, method="read_config")),
    ]
    assert gate.state is GateState.STARTUP and gate.fingerprint == FP
    assert gate.needs_tick is True
    host = gate.pool.get("h1")
    assert host is not None and host.pid == 101 and host.state is HostState.STARTUP
    acts = gate.host_message(3.0, "h1", Result(id=1))
    assert acts == [Log("info", "slow call 'read_config' done on h1 in 2.00s"),
                    Log("info", "host h1 open for calls")]
    assert gate.state is GateState.READY and host.state is HostState.READY
    assert (gate.generation, host.generation) == (1, 1)


def test_several_start_up_calls_run_in_order() -> None:
    adapter = desc(slow("a"), slow("b", startup=False), slow("c"))
    gate = make()
    gate.start(0.0)
    acts = gate.host_message(1.0, "h1", ready_msg("h1", adapter))
    assert calls_to(acts) == [Call(id=1, method="a")]
    acts = gate.host_message(2.0, "h1", Result(id=1))
    assert acts == [Log("info", "slow call 'a' done on h1 in 1.00s"),
                    Log("info", "slow call 'c' started on h1 (startup)"),
                    ToHost("h1", Call(id=2, method="c"))]
    assert gate.state is GateState.STARTUP
    gate.host_message(4.0, "h1", Result(id=2))
    assert gate.state is GateState.READY and gate.generation == 2


def test_an_adapter_without_start_up_calls_opens_at_once() -> None:
    gate = make()
    gate.start(0.0)
    acts = gate.host_message(1.0, "h1", ready_msg("h1", PLAIN))
    assert acts == [Log("info", "host h1 (pid 101) ready"), Log("info", "host h1 open for calls")]
    assert gate.state is GateState.READY


def test_a_failed_start_up_call_never_opens_the_host() -> None:
    """A start-up that fails is not ready: there is no previous state to keep."""
    gate = make()
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1"))
    acts = gate.host_message(1.5, "h1", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION,
                                                   message="no config"))
    why = "start-up slow call 'read_config' failed on h1: no config"
    assert acts == [Log("error", f"host h1 is not fit to serve: {why}"), KillHost("h1", why)]
    assert gate.state is GateState.STARTING and gate.generation == 0
    assert gate.status(2.0)["last_restart_reason"] == why
    assert gate.status(2.0)["slow_calls"]["read_config"] == {
        "policy": "manual", "runs": 1, "failures": 1, "estimate": 0.5, "deadline": 120.0,
        "last_error": "no config", "next_due_in": None}


def test_a_second_ready_is_ignored() -> None:
    gate = make()
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1"))
    assert gate.host_message(1.1, "h1", ready_msg("h1")) == []  # in start-up
    gate.host_message(2.0, "h1", Result(id=1))
    gate.tick(2.5)
    assert gate.needs_tick is False
    assert gate.host_message(3.0, "h1", ready_msg("h1", pid=999)) == []  # ready
    assert gate.needs_tick is False
    assert gate.pool.get("h1").pid == 101  # type: ignore[union-attr]
    assert gate.generation == 1


def test_ready_while_stopping_is_ignored() -> None:
    gate = make(hosts=2)
    gate.start(0.0)
    bring_up(gate, "h1", 1.0)
    gate.shutdown(4.0)
    assert gate.host_message(4.5, "h2", ready_msg("h2")) == []  # killed by the shutdown
    h2 = gate.pool.get("h2")
    assert h2 is not None and h2.killed == "shutdown before the host was ready"


def test_a_replacement_with_another_fingerprint_is_killed() -> None:
    gate = serving(2)
    gate.host_exited(5.0, "h1", "exit code 1")
    fp = "0123456789abcdefXYZ"
    acts = gate.host_message(6.0, "h3", ready_msg("h3", fp=fp))
    text = "adapter fingerprint 0123456789ab… differs from the pool's fp…"
    assert acts == [Log("error", f"host h3: {text}"), KillHost("h3", text)]
    assert gate.pool.get("h3").killed == text  # type: ignore[union-attr]
    assert gate.host_message(6.5, "h3", ready_msg("h3")) == []  # being killed: ignored


def test_a_policy_that_does_not_parse_stops_the_service() -> None:
    adapter = desc(slow("a", startup=False, policy="idle="), slow("b", startup=False))
    gate = make()
    gate.start(0.0)
    acts = gate.host_message(1.0, "h1", ready_msg("h1", adapter))
    assert acts == [
        Log("error", "slow call 'a': bad policy term 'idle=': expected idle=VALUE"),
        Log("info", "slow call 'b': policy 'manual'"),
        Log("info", "stopping: invalid configuration"),
        KillHost("h1", "shutdown before the host was ready"),
    ]
    assert gate.state is GateState.STOPPING
    assert gate.failed_reason == "slow call 'a': bad policy term 'idle=': expected idle=VALUE"
    assert gate.host_exited(1.5, "h1", "killed by signal SIGKILL") == [
        Stopped(1, "host killed by signal SIGKILL")]
    assert gate.state is GateState.STOPPED


def test_a_non_replicable_adapter_cannot_run_several_hosts() -> None:
    gate = make(hosts=2)
    gate.start(0.0)
    acts = gate.host_message(1.0, "h1", ready_msg("h1", desc(replicable=False)))
    assert acts == [
        Log("error", "tests:Lib is not replicable: it cannot run with 2 hosts"),
        Log("info", "stopping: invalid configuration"),
        KillHost("h1", "shutdown before the host was ready"),
        KillHost("h2", "shutdown before the host was ready"),
    ]
    assert gate.failed_reason == "not replicable"
    gate.host_exited(1.1, "h1", "x")
    assert gate.host_exited(1.2, "h2", "y") == [Stopped(1, "host y")]


def test_a_non_replicable_adapter_runs_one_host() -> None:
    gate = make(hosts=1)
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1", desc(replicable=False)))
    assert gate.state is GateState.READY


def test_an_adapter_that_says_nothing_about_replicable_is_not() -> None:
    adapter = desc()
    del adapter["replicable"]
    gate = make(hosts=2)
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1", adapter))
    assert gate.failed_reason == "not replicable"


# =========================================================================== start-up failures


def test_a_host_that_never_says_ready_is_killed_at_the_start_up_timeout() -> None:
    gate = make(startup_timeout=10.0)
    gate.start(0.0)
    assert gate.tick(10.0) == []  # exactly the timeout: not yet
    assert gate.tick(10.0001) == [KillHost("h1", "not ready within the start-up timeout (10s)")]
    assert gate.tick(20.0) == []  # killed once
    assert gate.host_exited(10.2, "h1", "killed by signal SIGKILL") == [
        Log("error", "host h1 died: not ready within the start-up timeout (10s)"),
        Stopped(1, "the host failed before it was ready: "
                   "not ready within the start-up timeout (10s)"),
    ]
    assert gate.state is GateState.STOPPED
    assert gate.failed_reason == "not ready within the start-up timeout (10s)"


def test_first_host_dying_before_ready_without_goodbye_stops_with_exit_1() -> None:
    gate = make()
    gate.start(0.0)
    assert gate.host_exited(0.5, "h1", "exit code 3") == [
        Log("error", "host h1 died: host process exited (exit code 3)"),
        Stopped(1, "the host failed before it was ready: host process exited (exit code 3)"),
    ]
    assert gate.failed_reason == "host process exited (exit code 3)"
    assert gate.state is GateState.STOPPED and gate.restart_count == 0


def test_first_host_dying_in_start_up_kills_the_others() -> None:
    gate = make(hosts=2, shutdown_timeout=5.0)
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1"))  # in its start-up slow call
    acts = gate.host_exited(2.0, "h1", "signal 6")
    assert acts == [Log("error", "host h1 died: host process exited (signal 6)"),
                    KillHost("h2", "the service is giving up its start")]
    assert gate.state is GateState.STOPPING
    assert gate.tick(6.9) == []  # h2 is being killed: no second verdict
    assert gate.host_exited(3.0, "h2", "killed by signal SIGKILL") == [
        Stopped(1, "host killed by signal SIGKILL")]


def test_goodbye_not_ok_during_the_first_start_gives_up() -> None:
    gate = make(hosts=2)
    gate.start(0.0)
    acts = gate.host_message(0.5, "h1", Goodbye(host_id="h1", ok=False,
                                                code=ErrorCode.ADAPTER, message="no module x"))
    assert acts == [Log("error", "host h1 failed: no module x"),
                    KillHost("h1", "the service is giving up its start"),
                    KillHost("h2", "the service is giving up its start")]
    assert gate.failed_reason == "no module x"
    assert gate.state is GateState.STOPPING and gate.needs_tick is True
    assert gate.host_exited(0.6, "h1", "exit code 3") == []
    assert gate.host_exited(0.7, "h2", "killed by signal SIGKILL") == [
        Stopped(1, "host killed by signal SIGKILL")]


def test_goodbye_not_ok_without_fail_fast_only_logs() -> None:
    gate = make(fail_fast_on_first_start=False)
    gate.start(0.0)
    acts = gate.host_message(0.5, "h1", Goodbye(host_id="h1", ok=False, message="oops"))
    assert acts == [Log("error", "host h1 failed: oops")]
    assert gate.state is GateState.STARTING and gate.failed_reason is None


def test_without_fail_fast_a_first_start_failure_is_restarted() -> None:
    gate = make(fail_fast_on_first_start=False)
    gate.start(0.0)
    assert gate.host_exited(0.5, "h1", "exit code 3") == [
        Log("error", "host h1 died: host process exited (exit code 3)"),
        StartHost("h2", "host process exited (exit code 3)"),
    ]
    assert gate.state is GateState.STARTING and gate.restart_count == 1


def test_goodbye_not_ok_after_ready_only_logs() -> None:
    gate = serving()
    gate.tick(5.0)
    acts = gate.host_message(5.0, "h1", Goodbye(host_id="h1", ok=False, message="bye"))
    assert acts == [Log("error", "host h1 failed: bye")]
    # a host that said goodbye is leaving: out of rotation until its exit is seen
    assert gate.pool.hosts["h1"].state is HostState.STOPPING
    assert gate.state is GateState.RESTARTING and gate.needs_tick is True


def test_goodbye_ok_logs() -> None:
    gate = serving()
    assert gate.host_message(5.0, "h1", Goodbye(host_id="h1")) == [
        Log("info", "host h1 said goodbye")]
    assert gate.pool.hosts["h1"].state is HostState.STOPPING
    assert gate.state is GateState.RESTARTING  # no host left in rotation


def test_a_host_saying_goodbye_gets_no_new_calls_while_another_serves() -> None:
    gate = serving(2)
    gate.host_message(5.0, "h1", Goodbye(host_id="h1"))
    assert gate.state is GateState.READY
    for i in range(3):
        ((hid, _),) = [(a.host_id, a.message) for a in gate.client_message(5.1, C, fast(i))
                       if isinstance(a, ToHost)]
        assert hid == "h2"


# =========================================================================== client messages


def test_ping() -> None:
    assert make().client_message(0.0, C, Ping(id=4)) == [ToClient(C, Pong(id=4))]


def test_status_request_answers_the_status() -> None:
    gate = serving()
    assert gate.client_message(5.0, C, Status(id=6)) == [
        ToClient(C, StatusReply(id=6, status=gate.status(5.0)))]


def test_describe_before_any_host_is_ready_is_busy_starting() -> None:
    gate = make()
    gate.start(0.0)
    assert gate.client_message(0.5, C, Describe(id=5)) == [ToClient(C, ErrorReply(
        id=5, code=ErrorCode.BUSY, message="busy: the service is starting", retry_after=None))]
    assert gate.counters["rejected_busy"] == 1


def test_describe_when_ready() -> None:
    gate = serving()
    assert gate.client_message(5.0, C, Describe(id=5)) == [
        ToClient(C, Description(id=5, adapter=DESC, fingerprint=FP))]


def test_a_client_may_not_send_host_messages() -> None:
    gate = serving()
    assert gate.client_message(5.0, C, Result(id=3, value=1)) == [ToClient(C, ErrorReply(
        id=3, code=ErrorCode.PROTOCOL, message="a client may not send 'result' messages"))]
    assert gate.client_message(5.0, C, Heartbeat(host_id="x")) == [ToClient(C, ErrorReply(
        id=None, code=ErrorCode.PROTOCOL, message="a client may not send 'heartbeat' messages"))]
    assert gate.counters["protocol_errors"] == 2


def test_a_message_with_a_non_integer_id_is_answered_without_id() -> None:
    class Odd:
        id = "seven"

    assert make().client_message(0.0, C, Odd()) == [ToClient(C, ErrorReply(
        id=None, code=ErrorCode.PROTOCOL, message="a client may not send '?' messages"))]


def test_bad_client_message() -> None:
    gate = make()
    exc = ProtocolError("undecodable body")
    exc.request_id = 12
    assert gate.bad_client_message(C, exc) == [ToClient(C, ErrorReply(
        id=12, code=ErrorCode.PROTOCOL, message="undecodable body"))]
    assert gate.bad_client_message(C, ProtocolError("x")) == [ToClient(C, ErrorReply(
        id=None, code=ErrorCode.PROTOCOL, message="x"))]
    assert gate.counters["protocol_errors"] == 2


def test_bad_host_message() -> None:
    gate = make()
    assert gate.bad_host_message("h1", ProtocolError("bad signature")) == [
        Log("warning", "dropped a bad message from host h1: bad signature")]
    assert gate.bad_host_message("h2", ProtocolError("x")) == [
        Log("warning", "dropped a bad message from host h2: x")]
    assert gate.counters == {"served": 0, "rejected_busy": 0, "rejected_unavailable": 0,
                             "errors": 0, "crashed": 0, "protocol_errors": 2,
                             "rejected_poisoned": 0}


# =========================================================================== fast calls


def test_a_call_is_forwarded_under_the_brokers_id() -> None:
    gate = serving()  # the start-up slow call took id 1
    gate.tick(4.0)
    acts = gate.client_message(5.0, C, Call(id=7, method="calc", args=[1, 2], kwargs={"k": 3},
                                            timeout=2.5, fingerprint=FP))
    assert acts == [ToHost("h1", Call(id=2, method="calc", args=[1, 2], kwargs={"k": 3},
                                      timeout=2.5))]
    assert calls_to(gate.client_message(5.0, C2, fast(7))) == [
        Call(id=3, method="calc", args=[1])]
    assert gate.needs_tick is False  # a plain call moves no deadline earlier
    assert gate.host_message(5.5, "h1", Result(id=3, value="b")) == [
        ToClient(C2, Result(id=7, value="b"))]
    assert gate.host_message(5.6, "h1", Result(id=2, value="a")) == [
        ToClient(C, Result(id=7, value="a"))]
    assert gate.needs_tick is False
    assert gate.counters["served"] == 2


def test_an_error_reply_keeps_everything_but_the_id() -> None:
    gate = serving()
    (fwd,) = calls_to(gate.client_message(5.0, C, fast(3)))
    err = ErrorReply(id=fwd.id, code=ErrorCode.REMOTE_EXCEPTION, message="ValueError: x",
                     remote_type="ValueError", traceback="tb")
    assert gate.host_message(5.1, "h1", err) == [ToClient(C, ErrorReply(
        id=3, code=ErrorCode.REMOTE_EXCEPTION, message="ValueError: x",
        remote_type="ValueError", traceback="tb"))]
    assert gate.counters["errors"] == 1 and gate.counters["served"] == 0


def test_calls_rotate_over_free_hosts() -> None:
    gate = serving(2)
    order = []
    for i in range(4):
        acts = gate.client_message(5.0 + i, C, fast(i))
        (target,) = [a.host_id for a in acts if isinstance(a, ToHost)]
        order.append(target)
        gate.host_message(5.0 + i, target, Result(id=calls_to(acts)[0].id))
    assert order == ["h1", "h2", "h1", "h2"]


def test_fingerprint_mismatch_message() -> None:
    gate = serving()
    assert gate.client_message(5.0, C, fast(3, fingerprint="abcdef0123456789zz")) == [
        ToClient(C, ErrorReply(id=3, code=ErrorCode.FINGERPRINT, message=(
            "the proxy was generated for adapter fingerprint abcdef012345… but the service "
            "runs fp…; regenerate it with `threadhost proxy`")))]
    assert gate.counters["errors"] == 1


def test_a_fingerprint_is_not_checked_before_the_adapter_is_known() -> None:
    gate = make()
    gate.start(0.0)
    (reply,) = replies(gate.client_message(0.5, C, fast(3, fingerprint="zzz")))
    assert reply.code is ErrorCode.BUSY
    assert gate.counters["errors"] == 0


def test_unknown_and_slow_calls_exact_messages() -> None:
    gate = serving()
    assert replies(gate.client_message(5.0, C, Call(id=1, method="nope"))) == [ErrorReply(
        id=1, code=ErrorCode.UNKNOWN_CALL, message="tests:Lib has no client-callable call 'nope'")]
    assert replies(gate.client_message(5.0, C, Call(id=2, method="read_config"))) == [ErrorReply(
        id=2, code=ErrorCode.UNKNOWN_CALL,
        message="'read_config' is a slow call of tests:Lib; only the broker runs it")]
    assert gate.counters["errors"] == 2


def test_unknown_call_of_an_unnamed_adapter() -> None:
    gate = serving(adapter=desc(name=None))
    assert replies(gate.client_message(5.0, C, Call(id=1, method="nope"))) == [ErrorReply(
        id=1, code=ErrorCode.UNKNOWN_CALL,
        message="the adapter has no client-callable call 'nope'")]


def test_late_replies_are_ignored() -> None:
    gate = serving()
    (fwd,) = calls_to(gate.client_message(5.0, C, fast(3)))
    gate.host_exited(5.5, "h1", "exit code 1")
    assert gate.host_message(5.6, "h1", Result(id=fwd.id, value=1)) == []  # dead host
    assert gate.host_message(5.6, "h9", Result(id=fwd.id, value=1)) == []  # never known
    assert gate.host_message(5.6, "h2", Result(id=fwd.id, value=1)) == []  # not its call


def test_replies_from_a_host_being_killed_are_ignored() -> None:
    gate = serving(heartbeat_timeout=3.0, fast_call_limit=3.0)
    (fwd,) = calls_to(gate.client_message(5.0, C, fast(3)))
    gate.host_message(5.0, "h1", Heartbeat(host_id="h1"))
    assert gate.tick(8.5) == [KillHost("h1", "fast call 'calc' hung for more than 3s")]
    assert gate.host_message(8.6, "h1", Result(id=fwd.id, value=1)) == []
    assert gate.host_message(8.6, "h1", Heartbeat(host_id="h1")) == []
    assert gate.tick(20.0) == []  # no second kill
    assert gate.counters["served"] == 0


def test_a_host_error_without_request_id_is_logged() -> None:
    gate = serving()
    assert gate.host_message(5.0, "h1", ErrorReply(id=None, code=ErrorCode.PROTOCOL,
                                                   message="cannot decode")) == [
        Log("warning", "host error without request id: cannot decode")]
    assert gate.host_message(5.0, "h1", Result(id=None)) == [  # type: ignore[arg-type]
        Log("warning", "host error without request id: ")]
    assert gate.counters["protocol_errors"] == 2


def test_an_unexpected_host_message_is_logged() -> None:
    gate = serving()
    assert gate.host_message(5.0, "h1", Ping(id=1)) == [
        Log("warning", "host h1 sent an unexpected 'ping' message")]


def test_a_heartbeat_answers_nothing_and_proves_life() -> None:
    gate = serving(heartbeat_timeout=3.0)
    assert gate.host_message(4.0, "h1", Heartbeat(host_id="h1")) == []
    assert gate.tick(7.0) == []
    assert gate.tick(7.0001) == [KillHost("h1", "no heartbeat for 3s")]


def test_any_host_message_proves_life() -> None:
    gate = serving(heartbeat_timeout=3.0)
    gate.host_message(4.0, "h1", Result(id=999))
    assert gate.tick(7.0) == []
    assert gate.tick(7.5) == [KillHost("h1", "no heartbeat for 3s")]


# =========================================================================== retry_after


def test_unavailable_retry_after_is_the_measured_restart_time() -> None:
    gate = serving(start_s=1.0, startup_s=2.0)  # start took 1 s, start-up call 2 s
    gate.host_exited(10.0, "h1", "exit code 1")
    assert replies(gate.client_message(10.25, C, fast(1))) == [ErrorReply(
        id=1, code=ErrorCode.UNAVAILABLE,
        message="unavailable: restarting the host (host process exited (exit code 1))",
        retry_after=2.75)]  # (1.0 - 0.25) + 2.0
    assert gate.counters["rejected_unavailable"] == 1
    (reply,) = replies(gate.client_message(11.5, C, fast(2)))
    assert reply.retry_after == 1.5  # overdue start (-0.5) + 2.0
    # once ready, the start-up call left: busy
    gate.host_message(11.6, "h2", ready_msg("h2"))
    (reply,) = replies(gate.client_message(12.1, C, fast(3)))
    assert reply == ErrorReply(id=3, code=ErrorCode.BUSY,
                               message="busy: slow call 'read_config' running for 0.5s",
                               retry_after=1.5)
    assert gate.counters["rejected_busy"] == 1


def test_unavailable_retry_after_without_start_up_calls() -> None:
    gate = serving(adapter=PLAIN, start_s=2.0)
    gate.host_exited(10.0, "h1", "x")
    (reply,) = replies(gate.client_message(10.5, C, fast(1)))
    assert reply.retry_after == 1.5


def test_the_restart_estimate_is_an_average_of_measured_starts() -> None:
    gate = serving(adapter=PLAIN, start_s=2.0)
    gate.host_exited(10.0, "h1", "x")
    gate.host_message(14.0, "h2", ready_msg("h2", PLAIN))  # took 4 s: estimate 3 s
    gate.host_exited(20.0, "h2", "x")
    (reply,) = replies(gate.client_message(20.0, C, fast(1)))
    assert reply.retry_after == 3.0


def test_busy_retry_after_includes_queued_start_up_calls() -> None:
    adapter = desc(slow("a"), slow("b"))
    gate = serving(adapter=adapter, start_s=1.0, startup_s=2.0)  # a: 2 s, b: 2 s (at 3..5)
    gate.host_exited(10.0, "h1", "x")
    (reply,) = replies(gate.client_message(10.0, C, fast(1)))
    assert reply.retry_after == 5.0  # start 1 s + a 2 s + b 2 s
    gate.host_message(11.0, "h2", ready_msg("h2", adapter))  # runs a, b queued
    (reply,) = replies(gate.client_message(11.5, C, fast(2)))
    assert reply.retry_after == 3.5  # a: 1.5 s left, then b 2 s
    assert reply.message == "busy: slow call 'a' running for 0.5s"


def test_busy_retry_after_during_maintenance_is_what_is_left_of_it() -> None:
    gate = serving(startup_s=2.0)
    gate.client_message(10.0, C2, Maintain(id=1))
    (reply,) = replies(gate.client_message(10.5, C, fast(1)))
    assert reply == ErrorReply(id=1, code=ErrorCode.BUSY,
                               message="busy: slow call 'read_config' running for 0.5s",
                               retry_after=1.5)


def test_busy_retry_after_while_draining_is_the_whole_slow_call() -> None:
    gate = serving(startup_s=2.0)
    calls_to(gate.client_message(9.0, C2, fast(1)))  # in flight: the host drains first
    acts = gate.client_message(10.0, C2, Maintain(id=2))
    assert calls_to(acts) == []
    assert gate.pool.get("h1").state is HostState.DRAINING  # type: ignore[union-attr]
    assert replies(gate.client_message(10.5, C, fast(3))) == [ErrorReply(
        id=3, code=ErrorCode.BUSY, message="busy: a maintenance slow call is about to start",
        retry_after=2.0)]


def test_a_refusal_before_anything_was_measured_has_no_retry_after() -> None:
    gate = make()
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1"))
    (reply,) = replies(gate.client_message(1.5, C, fast(1)))
    assert reply == ErrorReply(id=1, code=ErrorCode.BUSY,
                               message="busy: slow call 'read_config' running for 0.5s",
                               retry_after=None)


def test_retry_after_is_at_least_the_minimum() -> None:
    gate = serving(startup_s=2.0, min_retry_after=0.5)
    gate.client_message(10.0, C2, Maintain(id=1))
    (reply,) = replies(gate.client_message(11.9, C, fast(1)))
    assert reply.retry_after == 0.5


# =========================================================================== counters


def test_every_counter() -> None:
    zero = {"served": 0, "rejected_busy": 0, "rejected_unavailable": 0, "errors": 0,
            "crashed": 0, "protocol_errors": 0, "rejected_poisoned": 0}
    gate = serving(restart_limit=1)
    assert gate.counters == zero
    (fwd,) = calls_to(gate.client_message(5.0, C, fast(1)))
    gate.host_message(5.1, "h1", Result(id=fwd.id))
    assert gate.counters == {**zero, "served": 1}
    (fwd,) = calls_to(gate.client_message(5.2, C, fast(2)))
    gate.host_message(5.3, "h1", ErrorReply(id=fwd.id, code=ErrorCode.BAD_ARGUMENTS))
    gate.client_message(5.4, C, Call(id=3, method="nope"))
    gate.client_message(5.4, C, fast(4, fingerprint="other"))
    assert gate.counters == {**zero, "served": 1, "errors": 3}
    gate.client_message(5.5, C, Result(id=5))
    gate.bad_client_message(C, ProtocolError("x"))
    gate.bad_host_message("h1", ProtocolError("x"))
    gate.host_message(5.5, "h1", ErrorReply(id=None, code=ErrorCode.PROTOCOL))
    assert gate.counters == {**zero, "served": 1, "errors": 3, "protocol_errors": 4,
    "rejected_poisoned": 0}
    gate.client_message(5.6, C, Maintain(id=60))
    gate.client_message(5.7, C, fast(6))
    gate.client_message(5.7, C, fast(7))
    assert gate.counters == {**zero, "served": 1, "errors": 3, "protocol_errors": 4,
                             "rejected_busy": 2}
    gate.host_message(5.8, "h1", Result(id=4))  # the slow call (ids: 1 start-up, 2, 3 calls)
    assert gate.state is GateState.READY
    calls_to(gate.client_message(5.9, C, fast(8)))
    calls_to(gate.client_message(5.9, C, fast(9)))
    gate.host_exited(6.0, "h1", "x")
    gate.client_message(6.1, C, fast(10))
    assert gate.counters == {"served": 1, "rejected_busy": 2, "rejected_unavailable": 1,
                             "errors": 3, "crashed": 2, "protocol_errors": 4,
                             "rejected_poisoned": 0}
    gate.host_exited(6.2, "h2", "x")  # the budget is spent: failed
    gate.client_message(6.3, C, fast(11))
    assert gate.counters == {"served": 1, "rejected_busy": 2, "rejected_unavailable": 1,
                             "errors": 4, "crashed": 2, "protocol_errors": 4,
                             "rejected_poisoned": 0}
    gate.shutdown(6.4)
    gate.client_message(6.5, C, fast(12))
    assert gate.counters == {"served": 1, "rejected_busy": 2, "rejected_unavailable": 2,
                             "errors": 4, "crashed": 2, "protocol_errors": 4,
                             "rejected_poisoned": 0}


# =========================================================================== host death


def test_death_after_ready_answers_crashed_and_replaces_the_host() -> None:
    gate = serving(2)
    calls_to(gate.client_message(5.0, C, fast(1)))  # h1
    calls_to(gate.client_message(5.0, C2, fast(2)))  # h2
    calls_to(gate.client_message(5.0, C, fast(3)))  # h1
    gate.tick(5.0)
    acts = gate.host_exited(5.5, "h1", "killed by signal SIGABRT")
    text = ("the host died during the call (host process exited (killed by signal SIGABRT)); "
            "outcome unknown")
    assert acts == [
        Log("error", "host h1 died: host process exited (killed by signal SIGABRT)"),
        ToClient(C, ErrorReply(id=1, code=ErrorCode.CRASHED, message=text)),
        ToClient(C, ErrorReply(id=3, code=ErrorCode.CRASHED, message=text)),
        StartHost("h3", "host process exited (killed by signal SIGABRT)"),
    ]
    assert gate.counters["crashed"] == 2 and gate.needs_tick is True
    assert gate.last_restart_reason == "host process exited (killed by signal SIGABRT)"
    assert gate.state is GateState.READY  # h2 serves
    assert gate.host_exited(5.6, "h1", "again") == []  # reported twice: nothing


def test_a_killed_host_dies_with_the_kill_reason() -> None:
    gate = serving(fast_call_limit=10.0)
    calls_to(gate.client_message(5.0, C, fast(1)))
    gate.host_message(15.0, "h1", Heartbeat(host_id="h1"))
    assert gate.tick(15.0) == []
    assert gate.tick(15.5) == [KillHost("h1", "fast call 'calc' hung for more than 10s")]
    acts = gate.host_exited(15.6, "h1", "killed by signal SIGKILL")
    assert acts == [
        Log("error", "host h1 died: fast call 'calc' hung for more than 10s"),
        ToClient(C, ErrorReply(id=1, code=ErrorCode.CRASHED, message=(
            "the host died during the call (fast call 'calc' hung for more than 10s); "
            "outcome unknown"))),
        StartHost("h2", "fast call 'calc' hung for more than 10s"),
    ]
    assert gate.state is GateState.RESTARTING


def test_the_restart_budget_running_out_fails_the_service() -> None:
    gate = serving(2, restart_limit=1, restart_window=60.0)
    calls_to(gate.client_message(5.0, C, fast(1)))  # h1
    calls_to(gate.client_message(5.0, C2, fast(2)))  # h2
    gate.host_exited(6.0, "h1", "x")  # one restart: h3
    acts = gate.host_exited(7.0, "h3", "y")
    reason = "2 host failures within 60s (limit 1); last: host process exited (y)"
    assert acts == [
        Log("error", "host h3 died: host process exited (y)"),
        Log("error", f"giving up: {reason}"),
        ToHost("h2", Shutdown(reason="the service failed")),
        ToClient(C2, ErrorReply(id=2, code=ErrorCode.FAILED,
                                message=f"service failed: {reason}")),
    ]
    assert gate.state is GateState.FAILED and gate.failed_reason == reason
    assert gate.restart_count == 1
    # a failed service replaces nobody and stays failed
    assert gate.host_exited(8.0, "h2", "exit code 0") == [
        Log("error", "host h2 died: host process exited (exit code 0)")]
    assert gate.state is GateState.FAILED
    assert replies(gate.client_message(8.1, C, fast(3))) == [ErrorReply(
        id=3, code=ErrorCode.FAILED, message=f"service failed: {reason}")]
    assert gate.client_message(8.2, C, Maintain(id=4)) == [ToClient(C, MaintainReply(
        id=4, started=False, reason="not ready: service is failed"))]


def test_a_failed_service_shuts_down_with_exit_1() -> None:
    gate = serving(restart_limit=0)
    gate.host_exited(5.0, "h1", "x")
    assert gate.state is GateState.FAILED
    assert gate.shutdown(6.0, "SIGTERM received") == [
        Log("info", "stopping: SIGTERM received"), Stopped(1, "SIGTERM received")]
    assert gate.state is GateState.STOPPED


def test_the_restart_budget_counts_over_the_window() -> None:
    gate = serving(restart_limit=1, restart_window=10.0)
    gate.host_exited(10.0, "h1", "x")
    bring_up(gate, "h2", 11.0)
    (start,) = [a for a in gate.host_exited(20.0, "h2", "x") if isinstance(a, StartHost)]
    assert start == StartHost("h3", "host process exited (x)")
    assert gate.restart_count == 2


# =========================================================================== shutdown


def test_graceful_shutdown_exact_actions() -> None:
    gate = serving(2)
    gate.tick(4.0)
    acts = gate.shutdown(5.0, "SIGTERM received")
    assert acts == [Log("info", "stopping: SIGTERM received"),
                    ToHost("h1", Shutdown(reason="SIGTERM received")),
                    ToHost("h2", Shutdown(reason="SIGTERM received"))]
    assert gate.state is GateState.STOPPING and gate.needs_tick is True
    assert [h.state for h in gate.pool] == [HostState.STOPPING, HostState.STOPPING]
    assert gate.shutdown(5.5) == []  # once
    assert gate.host_exited(6.0, "h1", "exit code 0") == []
    assert gate.host_exited(6.5, "h2", "exit code 0") == [Stopped(0, "host exit code 0")]
    assert gate.state is GateState.STOPPED


def test_shutdown_default_reason() -> None:
    gate = serving()
    assert gate.shutdown(5.0)[0] == Log("info", "stopping: shutdown requested")


def test_shutdown_with_a_host_still_starting_kills_it() -> None:
    gate = make(hosts=2)
    gate.start(0.0)
    bring_up(gate, "h1", 1.0)
    acts = gate.shutdown(5.0, "SIGINT received")
    assert acts == [Log("info", "stopping: SIGINT received"),
                    ToHost("h1", Shutdown(reason="SIGINT received")),
                    KillHost("h2", "shutdown before the host was ready")]
    assert gate.host_exited(5.1, "h2", "killed by signal SIGKILL") == []
    assert gate.host_exited(5.2, "h1", "exit code 0") == [Stopped(0, "host exit code 0")]


def test_shutdown_with_no_host() -> None:
    gate = make(spawn=False)
    gate.start(0.0)
    assert gate.shutdown(1.0, "SIGTERM received") == [
        Log("info", "stopping: SIGTERM received"), Stopped(0, "SIGTERM received")]
    assert gate.state is GateState.STOPPED
    assert gate.shutdown(2.0) == []


def test_in_flight_calls_are_answered_unavailable_when_a_stopping_host_exits() -> None:
    gate = serving()
    calls_to(gate.client_message(5.0, C, fast(1)))
    gate.shutdown(6.0)
    assert gate.host_exited(6.5, "h1", "exit code 0") == [
        ToClient(C, ErrorReply(id=1, code=ErrorCode.UNAVAILABLE, message="service stopped")),
        Stopped(0, "host exit code 0")]
    assert gate.counters["errors"] == 1


def test_the_shutdown_deadline_boundary_and_exit_code() -> None:
    gate = serving(shutdown_timeout=5.0, heartbeat_timeout=1.0)
    gate.shutdown(10.0)
    assert gate.tick(14.9999) == []  # silent for long: heartbeats are not judged now
    assert gate.tick(15.0) == [KillHost("h1", "no goodbye within the shutdown timeout (5s)")]
    assert gate.host_exited(15.1, "h1", "killed by signal SIGKILL") == [
        Stopped(1, "host killed by signal SIGKILL")]


def test_shutdown_cancels_a_rollout() -> None:
    gate = serving(2)
    gate.client_message(5.0, C, Maintain(id=1))
    assert "rollout" in gate.status(5.0)
    gate.shutdown(5.5)
    assert "rollout" not in gate.status(5.5)
    # h1's slow call still answers; its host stays stopping and nothing new starts
    assert gate.host_message(6.0, "h1", Result(id=3)) == [
        Log("info", "slow call 'read_config' done on h1 in 1.00s")]
    assert gate.pool.get("h1").state is HostState.STOPPING  # type: ignore[union-attr]
    assert calls_to(gate.tick(6.1)) == []


def test_force_stop_kills_everything() -> None:
    gate = serving(2)
    calls_to(gate.client_message(5.0, C, fast(1)))  # h1
    calls_to(gate.client_message(5.0, C2, fast(2)))  # h2
    gate.tick(5.0)
    acts = gate.force_stop(6.0, "second signal")
    assert acts == [
        KillHost("h1", "second signal"),
        ToClient(C, ErrorReply(id=1, code=ErrorCode.UNAVAILABLE, message="service stopped")),
        KillHost("h2", "second signal"),
        ToClient(C2, ErrorReply(id=2, code=ErrorCode.UNAVAILABLE, message="service stopped")),
    ]
    assert gate.state is GateState.STOPPING and gate.needs_tick is True
    assert gate.counters["errors"] == 2
    assert gate.tick(1000.0) == []  # nobody left to judge
    gate.host_exited(6.1, "h1", "killed")
    assert gate.host_exited(6.2, "h2", "killed") == [Stopped(1, "host killed")]


def test_force_stop_after_a_graceful_stop_kills_the_rest() -> None:
    gate = serving(2)
    gate.shutdown(5.0)
    gate.host_exited(5.5, "h1", "exit code 0")
    assert gate.force_stop(6.0, "again") == [KillHost("h2", "again")]
    assert gate.host_exited(6.1, "h2", "killed") == [Stopped(1, "host killed")]


def test_force_stop_does_not_kill_a_host_twice() -> None:
    gate = make(startup_timeout=1.0)
    gate.start(0.0)
    gate.tick(1.5)  # h1 killed: not ready
    assert gate.force_stop(2.0, "now") == []


def test_force_stop_with_no_host() -> None:
    gate = make(spawn=False)
    gate.start(0.0)
    assert gate.force_stop(1.0, "second signal") == [Stopped(1, "second signal")]
    assert gate.state is GateState.STOPPED


def test_force_stop_cancels_a_rollout() -> None:
    gate = serving(2)
    gate.client_message(5.0, C, Maintain(id=1))
    gate.force_stop(5.5, "now")
    assert "rollout" not in gate.status(5.5)


# =========================================================================== maintenance


def test_manual_maintain_exact_actions() -> None:
    gate = serving()
    acts = gate.client_message(10.0, C, Maintain(id=1))
    assert acts == [
        Log("info", "maintenance 'read_config' (manual) over 1 host(s)"),
        Log("info", "slow call 'read_config' started on h1 (manual)"),
        ToHost("h1", Call(id=2, method="read_config")),
        ToClient(C, MaintainReply(id=1, started=True, reason="'read_config' on 1 host")),
    ]
    assert gate.state is GateState.MAINTAINING and gate.needs_tick is True
    acts = gate.host_message(12.5, "h1", Result(id=2))
    assert acts == [Log("info", "slow call 'read_config' done on h1 in 2.50s"),
                    Log("info", "maintenance 'read_config' finished: 1 host(s) ok, 0 failed")]
    assert gate.state is GateState.READY
    assert gate.last_maintenance == {"call": "read_config", "reason": "manual", "ok": True,
                                     "duration": 2.5, "ended_ago_from": 12.5, "hosts": 1,
                                     "failed_hosts": 0, "halted": False}


def test_manual_maintain_names_a_call_and_counts_hosts() -> None:
    gate = serving(3, adapter=desc(slow("a", startup=False), slow("b", startup=False)))
    (reply,) = replies(gate.client_message(10.0, C, Maintain(id=1, method="b")))
    assert reply == MaintainReply(id=1, started=True, reason="'b' on 3 hosts")
    assert calls_to(gate.tick(10.0)) == []
    assert gate.status(10.0)["rollout"]["call"] == "b"


@pytest.mark.parametrize(("setup", "reason", "retry"), [
    ("nothing", "not ready: service is starting", None),  # no start measured yet
    ("no_slow", "the adapter declares no slow call", None),
    ("unknown", "no slow call named 'nope' (have: a, b)", None),
    # 'a' took 2 s at start-up and runs since 9: 1 s left, then the rate limit's pause
    # after a manual round of 2 s (budget 0.5): 2 s
    ("running", "already running: 'a'", 3.0),
    ("startup", "not ready: service is startup", None),  # 'a' not measured yet
    # a host starts since 9 (a start took 1 s), then 'a' at start-up (2 s), as for a call
    ("restarting", "not ready: service is restarting", 2.0),
    ("stopping", "not ready: service is stopping", None),
])
def test_manual_maintain_refusals(setup: str, reason: str, retry: float | None) -> None:
    adapter = desc(slow("a"), slow("b", startup=False))
    if setup == "nothing":
        gate = make()
        gate.start(0.0)
    elif setup == "no_slow":
        gate = serving(adapter=PLAIN)
    elif setup == "startup":
        gate = make()
        gate.start(0.0)
        gate.host_message(1.0, "h1", ready_msg("h1", adapter))
    else:
        gate = serving(adapter=adapter)
        if setup == "running":
            gate.client_message(9.0, C, Maintain(id=9))
        elif setup == "restarting":
            gate.host_exited(9.0, "h1", "x")
        elif setup == "stopping":
            gate.shutdown(9.0)
    method = "nope" if setup == "unknown" else None
    gate.tick(9.5)
    assert gate.client_message(10.0, C, Maintain(id=1, method=method)) == [
        ToClient(C, MaintainReply(id=1, started=False, reason=reason, retry_after=retry))]
    assert gate.needs_tick is True


def test_a_maintain_during_a_round_retries_after_its_measured_rest() -> None:
    # 'b' (no start-up call) is measured once by a manual round of 4 s on 2 hosts, one
    # host after the other (2 s each)
    adapter = desc(slow("b", startup=False, policy="manual | min_gap=5s"))
    gate = serving(2, adapter=adapter, maintain_budget=1.0)  # no rate limit
    (reply,) = replies(gate.client_message(10.0, C, Maintain(id=1)))
    assert reply.started is True
    for t in (12.0, 14.0):
        (host,) = [h for h in gate.pool if h.slow is not None]
        assert host.slow is not None
        gate.host_message(t, host.host_id, Result(id=host.slow.rid))
    assert gate.state is GateState.READY
    # unmeasured 'b' before that round: nothing to say; now a 2 s estimate per host
    (reply,) = replies(gate.client_message(20.0, C, Maintain(id=2)))
    assert reply.started is True  # 20 >= 14 + min_gap
    (reply,) = replies(gate.client_message(20.5, C, Maintain(id=3)))
    # the first host has 1.5 s left, the second a whole 2 s, then min_gap 5 s
    assert reply == MaintainReply(id=3, started=False, reason="already running: 'b'",
                                  retry_after=8.5)


def test_a_maintain_during_an_unmeasured_or_overdue_round() -> None:
    gate = serving(adapter=desc(slow("a"), slow("b", startup=False)), maintain_budget=1.0)
    assert replies(gate.client_message(10.0, C, Maintain(id=1, method="b")))[0].started
    (reply,) = replies(gate.client_message(11.0, C, Maintain(id=2)))
    assert reply == MaintainReply(id=2, started=False, reason="already running: 'b'")
    gate2 = serving(adapter=desc(slow("a")), maintain_budget=1.0)  # 'a' took 2 s
    assert replies(gate2.client_message(10.0, C, Maintain(id=1)))[0].started
    (reply,) = replies(gate2.client_message(15.0, C, Maintain(id=2)))  # 3 s late
    assert reply.retry_after == 0.1  # any moment: the least retry_after, rounded up


def test_manual_maintain_respects_min_gap_from_the_start_up_call() -> None:
    adapter = desc(slow(policy="manual | min_gap=30s"))
    gate = serving(adapter=adapter, start_s=1.0, startup_s=2.0)  # start-up call ended at 3
    assert gate.client_message(12.0, C, Maintain(id=1)) == [ToClient(C, MaintainReply(
        id=1, started=False, reason="too soon: min_gap 30s, retry in 21.0s", retry_after=21.0))]
    # the rest is rounded up to a tenth (never "retry in 0.0s"), in the reason and the field
    assert replies(gate.client_message(32.95, C, Maintain(id=2))) == [MaintainReply(
        id=2, started=False, reason="too soon: min_gap 30s, retry in 0.1s", retry_after=0.1)]
    assert replies(gate.client_message(32.7, C, Maintain(id=2))) == [MaintainReply(
        id=2, started=False, reason="too soon: min_gap 30s, retry in 0.3s", retry_after=0.3)]
    (reply,) = replies(gate.client_message(33.0, C, Maintain(id=3)))  # exactly the gap
    assert reply.started is True


def test_min_gap_counts_from_the_last_maintenance() -> None:
    adapter = desc(slow(startup=False, policy="manual | min_gap=10s"))
    gate = serving(adapter=adapter)
    gate.client_message(20.0, C, Maintain(id=1))
    gate.host_message(21.0, "h1", Result(id=1))
    (reply,) = replies(gate.client_message(25.0, C, Maintain(id=2)))
    assert reply.reason == "too soon: min_gap 10s, retry in 6.0s"
    (reply,) = replies(gate.client_message(31.0, C, Maintain(id=3)))
    assert reply.started is True


def test_without_min_gap_maintenance_may_follow_at_once() -> None:
    gate = serving(maintain_budget=1.0)  # the rate limit off (tests/test_gate_ratelimit.py)
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(11.0, "h1", Result(id=2))
    (reply,) = replies(gate.client_message(11.0, C, Maintain(id=2)))
    assert reply.started is True


def test_a_policy_rollout_exact_actions_and_hooks() -> None:
    adapter = desc(slow(startup=False, policy="every=10s"))
    gate = serving(adapter=adapter, start_s=1.0)  # ready at 1: due at 11
    assert gate.next_wakeup(10.5) == 11.0
    assert gate.tick(10.999) == []
    acts = gate.tick(11.0)
    assert acts == [Log("info", "maintenance 'read_config' (every 10s) over 1 host(s)"),
                    Log("info", "slow call 'read_config' started on h1 (every 10s)"),
                    ToHost("h1", Call(id=1, method="read_config"))]
    assert gate.next_wakeup(11.0) == 12.0  # no policy wake-up during the round
    gate.host_message(13.0, "h1", Result(id=1))
    assert gate.next_wakeup(13.0) == 14.0
    assert gate.next_wakeup(22.5) == 23.0  # due again 10 s after the end of the last one
    assert calls_to(gate.tick(22.99)) == []
    assert calls_to(gate.tick(23.0)) == [Call(id=2, method="read_config")]


def test_a_rollout_goes_host_by_host_and_finishes_once() -> None:
    gate = serving(2, adapter=desc(slow(startup=False)))
    acts = gate.client_message(10.0, C, Maintain(id=1))
    assert calls_to(acts) == [Call(id=1, method="read_config")]
    acts = gate.host_message(11.0, "h1", Result(id=1))
    assert acts == [Log("info", "slow call 'read_config' done on h1 in 1.00s"),
                    Log("info", "slow call 'read_config' started on h2 (manual)"),
                    ToHost("h2", Call(id=2, method="read_config"))]
    acts = gate.host_message(13.0, "h2", ErrorReply(id=2, code=ErrorCode.REMOTE_EXCEPTION,
                                                    message="bad"))
    why = "slow call failed on h2 after 'read_config': bad"
    assert acts == [  # in a pool, a failed slow call halts the round and retires the host
        Log("error", f"maintenance 'read_config' halted: {why}; 0 host(s) keep their "
                     "state; retry in 30s"),
        Log("warning", "maintenance 'read_config' finished: 1 host(s) ok, 1 failed"),
        Log("error", f"host h2 is not fit to serve: {why}"), KillHost("h2", why)]
    st = gate.status(14.0)
    assert st["last_maintenance"] == {"call": "read_config", "reason": "manual", "ok": False,
                                      "duration": 3.0, "ended_ago": 1.0, "hosts": 2,
                                      "failed_hosts": 1, "halted": True}
    assert [h["generation"] for h in st["hosts"]] == [1, 0]
    assert [h["last_maintenance"] for h in st["hosts"]] == [
        {"call": "read_config", "reason": "manual", "ok": True, "duration": 1.0,
         "ended_ago": 3.0},
        {"call": "read_config", "reason": "manual", "ok": False, "duration": 2.0,
         "ended_ago": 1.0}]
    assert st["slow_calls"]["read_config"]["runs"] == 2


def test_a_draining_host_starts_its_slow_call_when_its_last_call_ends() -> None:
    gate = serving()
    (fwd,) = calls_to(gate.client_message(9.0, C2, fast(1)))
    gate.client_message(10.0, C, Maintain(id=2))
    acts = gate.host_message(10.5, "h1", Result(id=fwd.id, value=5))
    assert acts == [ToClient(C2, Result(id=1, value=5)),
                    Log("info", "slow call 'read_config' started on h1 (manual)"),
                    ToHost("h1", Call(id=3, method="read_config"))]
    assert gate.state is GateState.MAINTAINING


def test_a_draining_host_with_two_calls_waits_for_both() -> None:
    gate = serving()
    (a,) = calls_to(gate.client_message(9.0, C2, fast(1)))
    (b,) = calls_to(gate.client_message(9.0, C2, fast(2)))
    gate.client_message(10.0, C, Maintain(id=3))
    assert gate.host_message(10.5, "h1", Result(id=a.id)) == [ToClient(C2, Result(id=1))]
    assert calls_to(gate.host_message(10.6, "h1", Result(id=b.id))) == [
        Call(id=4, method="read_config")]


def test_epochs_prefer_hosts_with_the_newest_maintenance() -> None:
    gate = serving(2, adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=1))  # h1 first
    gate.host_message(11.0, "h1", Result(id=1))  # h2 now maintaining
    gate.host_message(12.0, "h2", Result(id=2))
    h1, h2 = gate.pool.get("h1"), gate.pool.get("h2")
    assert h1 is not None and h2 is not None and (h1.epoch, h2.epoch) == (1, 1)
    gate.host_exited(13.0, "h1", "x")
    bring_up(gate, "h3", 14.0, adapter=desc(slow(startup=False)))
    assert gate.pool.get("h3").epoch == 1  # type: ignore[union-attr]


def test_a_failed_slow_call_does_not_advance_the_epoch() -> None:
    gate = serving(2, adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(11.0, "h1", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION))
    h1 = gate.pool.get("h1")
    assert h1 is not None and h1.epoch == 0 and h1.generation == 0


def test_heartbeats_are_not_judged_during_a_slow_call_but_its_deadline_is() -> None:
    gate = serving(adapter=desc(slow(deadline=30.0)), heartbeat_timeout=3.0)
    gate.client_message(10.0, C, Maintain(id=1))
    assert gate.tick(40.0) == []  # silent for 30 s, within the deadline
    assert gate.tick(40.0001) == [
        KillHost("h1", "slow call 'read_config' ran past its deadline (30s)")]


@pytest.mark.parametrize(("slow_call", "cfg", "limit"), [
    (slow(deadline=30.0), {}, 30.0),
    (slow(policy="manual | deadline=45s"), {}, 45.0),
    (slow(deadline=20.0, policy="manual | deadline=45s"), {}, 20.0),
    (slow(), {"slow_call_deadline": 12.5}, 12.5),
    (slow(), {}, 120.0),
])
def test_slow_call_deadlines(slow_call: dict[str, Any], cfg: dict[str, Any],
                             limit: float) -> None:
    gate = serving(adapter=desc(slow_call), **cfg)
    gate.client_message(10.0, C, Maintain(id=1))
    assert gate.next_wakeup(10.0) == 11.0
    assert gate.next_wakeup(10.0 + limit - 0.5) == 10.0 + limit
    assert gate.tick(10.0 + limit) == []
    assert gate.tick(10.0 + limit + 0.001) == [
        KillHost("h1", f"slow call 'read_config' ran past its deadline ({limit:g}s)")]


def test_a_start_up_slow_call_has_a_deadline_too() -> None:
    gate = make()
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1", desc(slow(deadline=5.0))))
    assert gate.tick(6.0) == []
    assert gate.tick(6.5) == [KillHost("h1", "slow call 'read_config' ran past its deadline "
                                             "(5s)")]


def test_a_host_dying_in_maintenance_is_replaced_and_the_rollout_ends() -> None:
    gate = serving(adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=1))
    acts = gate.host_exited(11.0, "h1", "signal 9")
    assert acts == [
        Log("error", "host h1 died: host process exited (signal 9)"),
        StartHost("h2", "host process exited (signal 9)"),
        Log("warning", "maintenance 'read_config' finished: 0 host(s) ok, 1 failed")]
    assert gate.state is GateState.RESTARTING
    assert gate.last_maintenance is not None and gate.last_maintenance["ok"] is False


def test_a_host_that_finished_its_maintenance_and_dies_later_is_not_a_failed_host() -> None:
    gate = serving(2, adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(11.0, "h1", Result(id=1))  # h1 done; h2 runs it
    gate.host_exited(11.5, "h1", "exit code 1")  # h1 dies afterwards
    gate.host_message(12.0, "h2", Result(id=2))
    assert gate.last_maintenance is not None
    assert (gate.last_maintenance["hosts"], gate.last_maintenance["failed_hosts"]) == (2, 0)


# =========================================================================== tick, heartbeats


def test_broker_heartbeats_on_their_interval() -> None:
    gate = Gate(GateConfig(hosts=2, heartbeat_interval=0.5, heartbeat_timeout=1e9),
                parse_policy, now=0.0, info={"broker_pid": 77}, token="tok")
    gate.start(0.0)
    beat = Heartbeat(host_id="tok", pid=77)
    assert gate.tick(0.0) == [ToHost("h1", beat, heartbeat_socket=True),
                              ToHost("h2", beat, heartbeat_socket=True)]
    assert gate.tick(0.4999) == []
    assert gate.tick(0.5) == [ToHost("h1", beat, heartbeat_socket=True),
                              ToHost("h2", beat, heartbeat_socket=True)]
    assert gate.next_wakeup(0.5) == 1.0
    assert gate.tick(0.9) == []
    assert len(gate.tick(1.2)) == 2  # next due at 1.7
    assert gate.tick(1.6) == []
    assert gate.next_wakeup(1.6) == 1.7


def test_broker_heartbeat_without_a_pid() -> None:
    gate = Gate(GateConfig(heartbeat_timeout=1e9), parse_policy, now=0.0)
    gate.start(0.0)
    assert gate.tick(0.0) == [ToHost("h1", Heartbeat(host_id="broker", pid=0),
                                     heartbeat_socket=True)]


def test_no_heartbeat_to_a_host_being_killed() -> None:
    gate = Gate(GateConfig(hosts=2, heartbeat_interval=0.5, startup_timeout=1.0,
                           fail_fast_on_first_start=False), parse_policy, now=0.0)
    gate.start(0.0)
    gate.host_message(0.5, "h2", ready_msg("h2", PLAIN))
    assert gate.tick(2.0) == [
        KillHost("h1", "not ready within the start-up timeout (1s)"),
        ToHost("h2", Heartbeat(host_id="broker", pid=0), heartbeat_socket=True)]


def test_tick_clears_needs_tick() -> None:
    gate = make()
    assert gate.needs_tick is False  # make() ticked
    gate.start(0.0)
    assert gate.needs_tick is True
    gate.tick(0.1)
    assert gate.needs_tick is False


def test_next_wakeup_of_a_fresh_gate_is_the_first_heartbeat() -> None:
    gate = Gate(GateConfig(), parse_policy, now=3.0)
    assert gate.next_wakeup(3.0) == 3.0
    gate.tick(3.0)
    assert gate.next_wakeup(3.0) == 3.5


def test_next_wakeup_is_at_most_a_second_away() -> None:
    gate = make()
    assert gate.next_wakeup(5.0) == 6.0
    gate = serving()
    assert gate.next_wakeup(100.0) == 101.0


def test_next_wakeup_of_a_starting_host_is_its_start_up_timeout() -> None:
    gate = make(startup_timeout=10.0)
    gate.start(0.0)
    assert gate.next_wakeup(9.5) == 10.0
    gate.tick(10.5)  # killed: no deadline of its own any more
    assert gate.next_wakeup(10.5) == 11.5


def test_next_wakeup_of_heartbeats_and_fast_calls() -> None:
    gate = serving(heartbeat_timeout=3.0, fast_call_limit=2.0)
    gate.host_message(10.0, "h1", Heartbeat(host_id="h1"))
    assert gate.next_wakeup(12.5) == 13.0
    calls_to(gate.client_message(10.2, C, fast(1)))
    assert gate.next_wakeup(11.5) == 12.2


def test_next_wakeup_while_stopping_is_the_shutdown_deadline() -> None:
    gate = serving(shutdown_timeout=5.0, heartbeat_timeout=0.5)
    gate.shutdown(10.0)
    assert gate.next_wakeup(14.5) == 15.0
    assert gate.next_wakeup(10.0) == 11.0


def test_next_wakeup_ignores_policies_unless_ready() -> None:
    adapter = desc(slow(startup=False, policy="every=10s"))
    gate = serving(adapter=adapter, start_s=1.0)  # due at 11
    gate.host_exited(5.0, "h1", "x")
    assert gate.state is GateState.RESTARTING
    assert gate.next_wakeup(10.5) == 11.5


# =========================================================================== status


def test_status_of_a_serving_gate() -> None:
    gate = serving(2)
    calls_to(gate.client_message(5.0, C, fast(1)))
    assert gate.status(6.12345) == {
        "broker_pid": 4242,
        "state": "ready",
        "adapter": "tests:Lib",
        "fingerprint": "fp",
        "uptime": 6.123,
        "host_pid": 101,
        "host_pids": [101, 102],
        "host_id": "h1",
        "hosts": [
            {"id": "h1", "pid": 101, "state": "ready", "generation": 1, "in_flight": 1,
             "restarts": 0, "last_maintenance": {"call": "read_config", "reason": "startup",
                                                 "ok": True, "duration": 2.0,
                                                 "ended_ago": 3.123}},
            {"id": "h2", "pid": 102, "state": "ready", "generation": 1, "in_flight": 0,
             "restarts": 0, "last_maintenance": {"call": "read_config", "reason": "startup",
                                                 "ok": True, "duration": 2.0,
                                                 "ended_ago": 3.123}},
        ],
        "pool_size": 2,
        "generation": 2,
        "restart_count": 0,
        "last_restart_reason": None,
        "failed_reason": None,
        "in_flight": 1,
        "route_away_after": 5.0,
        "counters": {"served": 0, "rejected_busy": 0, "rejected_unavailable": 0, "errors": 0,
                     "crashed": 0, "protocol_errors": 0, "rejected_poisoned": 0},
        "manual_maintenance": {"budget": 0.5, "rounds": 0, "busy": 0.0, "retry_in": 0.0},
        "call_seconds": {"count": 0, "sum": 0.0},
        "slow_calls": {"read_config": {"policy": "manual", "runs": 2, "failures": 0,
                                       "estimate": 2.0, "deadline": 120.0,
                                       "last_error": None, "next_due_in": None}},
    }


def test_status_with_no_host() -> None:
    gate = Gate(GateConfig(spawn=False, hosts=None), parse_policy, now=1.0)
    assert gate.status(3.5) == {
        "state": "starting", "adapter": None, "fingerprint": None, "uptime": 2.5,
        "host_pid": None, "host_pids": [], "host_id": None, "hosts": [], "pool_size": None,
        "generation": 0, "restart_count": 0, "last_restart_reason": None,
        "failed_reason": None, "in_flight": 0, "route_away_after": 5.0,
        "counters": {"served": 0, "rejected_busy": 0, "rejected_unavailable": 0, "errors": 0,
                     "crashed": 0, "protocol_errors": 0, "rejected_poisoned": 0},
        "manual_maintenance": {"budget": 0.5, "rounds": 0, "busy": 0.0, "retry_in": 0.0},
        "call_seconds": {"count": 0, "sum": 0.0},
        "slow_calls": {}}


def test_status_lists_hosts_by_slot_and_skips_unknown_pids() -> None:
    gate = serving(2)
    gate.host_exited(5.0, "h1", "x")  # h3 takes slot 0, no pid yet
    st = gate.status(5.5)
    assert [h["id"] for h in st["hosts"]] == ["h3", "h2"]
    assert st["host_pid"] is None and st["host_id"] == "h3"
    assert st["host_pids"] == [102]
    assert [h["restarts"] for h in st["hosts"]] == [1, 0]
    assert st["restart_count"] == 1
    assert st["last_restart_reason"] == "host process exited (x)"


def test_status_during_a_rollout() -> None:
    gate = serving(2)
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(11.0, "h1", Result(id=3))  # h2 now runs it
    st = gate.status(11.5)
    assert st["state"] == "maintaining"
    assert st["maintenance"] == {"call": "read_config", "reason": "manual", "host": "h2",
                                 "elapsed": 0.5, "expected": 1.5}
    assert st["rollout"] == {"state": "running", "call": "read_config",
    "reason": "manual", "round": 1,
                             "done": ["h1"], "failed": [], "active": ["h2"], "pending": [],
                             "elapsed": 1.5}
    assert "last_maintenance" not in st
    gate.host_message(12.0, "h2", Result(id=4))
    st = gate.status(12.0)
    assert "maintenance" not in st and "rollout" not in st
    assert st["last_maintenance"]["ended_ago"] == 0.0


def test_status_shows_the_first_running_slow_call_by_slot() -> None:
    gate = serving(3, max_maintaining=2)
    gate.client_message(10.0, C, Maintain(id=1))
    assert gate.status(10.5)["maintenance"]["host"] == "h1"


def test_status_shows_a_stuck_host() -> None:
    gate = serving(route_away_after=1.0)
    calls_to(gate.client_message(10.0, C, fast(1)))
    assert gate.status(11.0)["hosts"][0]["state"] == "ready"
    assert gate.status(11.5)["hosts"][0]["state"] == "stuck"
    assert gate.status(11.5)["route_away_after"] == 1.0


# =========================================================================== attach mode


def attach(**cfg: Any) -> Gate:
    gate = make(spawn=False, **cfg)
    gate.start(0.0)
    return gate


def test_attach_adoption_exact_actions() -> None:
    gate = attach(hosts=2)
    acts = gate.host_message(1.0, "x", ready_msg("x1", PLAIN, pid=7))
    assert acts == [Log("info", "adopted attached host x (pid 7)"),
                    Log("info", "host x (pid 7) ready"),
                    Log("info", "host x open for calls")]
    assert gate.needs_tick is True and gate.state is GateState.READY
    acts = gate.host_message(2.0, "y", ready_msg("x2", PLAIN, pid=8))
    assert acts == [Log("info", "adopted attached host y (pid 8)"),
                    Log("info", "host y (pid 8) ready"),
                    Log("info", "host y open for calls")]
    assert [(h.host_id, h.slot) for h in gate.pool] == [("x", 0), ("y", 1)]


def test_attach_refusal_is_logged_once_until_adopted() -> None:
    gate = attach(hosts=1)
    gate.host_message(1.0, "x", ready_msg("x1", PLAIN))
    assert gate.host_message(1.1, "y", ready_msg("x2", PLAIN, pid=8)) == [
        Log("warning", "refused attached host y (pid 8): the pool is full (1 hosts)")]
    assert gate.host_message(1.2, "y", ready_msg("x2", PLAIN, pid=8)) == []
    assert gate.host_message(1.3, "y", Heartbeat(host_id="y")) == []  # refused: no nudge
    gate.host_exited(2.0, "x", "said goodbye")
    acts = gate.host_message(2.1, "y", ready_msg("x2", PLAIN, pid=8))
    assert acts[0] == Log("info", "adopted attached host y (pid 8)")
    gate.host_exited(3.0, "y", "gone")
    gate.host_message(3.1, "z", ready_msg("x3", PLAIN))
    # y was adopted once: a later refusal is logged again
    assert gate.host_message(3.2, "y", ready_msg("x2", PLAIN, pid=8)) == [
        Log("warning", "refused attached host y (pid 8): the pool is full (1 hosts)")]


def test_attach_a_stranger_is_told_about_a_new_broker_until_closing() -> None:
    gate = Gate(GateConfig(spawn=False, heartbeat_interval=0.5), parse_policy, now=0.0,
                info={"broker_pid": 5}, token="tok")
    gate.start(0.0)
    nudge = ToHost("s", Heartbeat(host_id="tok", pid=5, stranger=True), heartbeat_socket=True)
    assert gate.host_message(1.0, "s", Heartbeat(host_id="s")) == [nudge]
    assert gate.host_message(1.25, "s", Heartbeat(host_id="s")) == []
    assert gate.host_message(1.5, "s", Heartbeat(host_id="s")) == [nudge]
    assert gate.host_message(1.6, "s", Result(id=1)) == []  # only heartbeats are answered
    assert gate.host_message(1.6, "s", Goodbye(host_id="s")) == []
    gate.shutdown(2.0)
    assert gate.host_message(3.0, "s", Heartbeat(host_id="s")) == []
    assert gate.host_message(3.0, "s", ready_msg("h1", PLAIN, pid=9)) == [
        Log("warning", "refused attached host s (pid 9): the service is stopped")]


def test_attach_known_hosts_get_unmarked_beats_strangers_marked_ones() -> None:
    gate = Gate(GateConfig(spawn=False, heartbeat_interval=0.5, hosts=2), parse_policy,
                now=0.0, info={"broker_pid": 5}, token="tok")
    gate.start(0.0)
    gate.host_message(0.5, "x", ready_msg("x1", PLAIN))
    beats = [a for a in gate.tick(1.0) if isinstance(a, ToHost)]
    assert beats == [ToHost("x", Heartbeat(host_id="tok", pid=5), heartbeat_socket=True)]
    (nudge,) = gate.host_message(1.1, "s", Heartbeat(host_id="s"))
    assert isinstance(nudge, ToHost) and nudge.message.stranger is True


def test_attach_an_unroutable_start_up_call_forgets_the_host_at_once() -> None:
    # R52: a host that re-announced on its heartbeat socket before its call socket was
    # connected again; the start-up slow call cannot be routed (EHOSTUNREACH): the host is
    # forgotten now (not after the call's 120 s deadline), and its next heartbeat gets a
    # stranger's answer so that it sends ready again
    gate = attach(hosts=1, restart_limit=0)
    acts = gate.host_message(1.0, "x", ready_msg("x1"))
    (call,) = calls_to(acts, "x")
    assert call.method == "read_config"
    acts = gate.host_unreachable(1.01, "x", call)
    assert len(gate.pool) == 0
    assert Log("info", "waiting for a host to attach") in acts
    assert gate.state is not GateState.FAILED  # not the host's failure: no restart charged
    (nudge,) = gate.host_message(1.02, "x", Heartbeat(host_id="x"))
    assert isinstance(nudge, ToHost) and nudge.message.stranger is True
    acts = gate.host_message(1.1, "x", ready_msg("x1"))
    assert [c.method for c in calls_to(acts, "x")] == ["read_config"]


def test_attach_an_unroutable_fast_call_is_unavailable() -> None:
    gate = attach(hosts=1)
    gate.host_message(1.0, "x", ready_msg("x1", PLAIN))
    (sent,) = calls_to(gate.client_message(2.0, C, fast(1)))
    acts = gate.host_unreachable(2.0, "x", sent)
    answers = [a.message for a in acts if isinstance(a, ToClient)]
    assert [(m.id, m.code) for m in answers] == [(1, ErrorCode.UNAVAILABLE)]
    assert len(gate.pool) == 0


def test_spawn_mode_ignores_an_unroutable_call() -> None:
    gate = serving()
    (sent,) = calls_to(gate.client_message(5.0, C, fast(1)))
    assert gate.host_unreachable(5.0, "h1", sent) == []
    assert len(gate.pool) == 1


def test_attach_a_dead_hosts_nudges_start_afresh() -> None:
    gate = attach(hosts=1, heartbeat_interval=10.0)
    gate.host_message(1.0, "x", Heartbeat(host_id="x"))
    gate.host_message(1.5, "x", ready_msg("x1", PLAIN))
    gate.host_exited(2.0, "x", "gone")
    assert len(gate.host_message(2.5, "x", Heartbeat(host_id="x"))) == 1


def test_attach_no_nudge_while_failed() -> None:
    gate = attach(hosts=1, restart_limit=0)
    gate.host_message(1.0, "x", ready_msg("x1", PLAIN))
    gate.host_exited(2.0, "x", "gone")
    assert gate.state is GateState.FAILED
    assert gate.host_message(3.0, "x", Heartbeat(host_id="x")) == []
    assert gate.host_message(3.0, "y", ready_msg("x2", PLAIN, pid=3)) == [
        Log("warning", "refused attached host y (pid 3): the service is failed")]


def test_spawn_mode_ignores_strangers() -> None:
    gate = serving()
    assert gate.host_message(5.0, "zz", Heartbeat(host_id="zz")) == []
    assert gate.host_message(5.0, "zz", ready_msg("h9")) == []
    assert len(gate.pool) == 1


def test_attach_goodbye_is_an_exit() -> None:
    gate = attach(hosts=1)
    gate.host_message(1.0, "x", ready_msg("x1", PLAIN))
    assert gate.host_message(2.0, "x", Goodbye(host_id="x")) == [
        Log("error", "host x died: host process exited (said goodbye)"),
        Log("info", "waiting for a host to attach")]
    gate.host_message(3.0, "y", ready_msg("x2", PLAIN))
    assert gate.host_message(4.0, "y", Goodbye(host_id="y", ok=False, message="boom")) == [
        Log("error", "host y died: host process exited (failed: boom)"),
        Log("info", "waiting for a host to attach")]
    assert gate.state is GateState.RESTARTING


def test_attach_a_host_dying_before_the_first_ready_waits_for_the_next() -> None:
    gate = attach(hosts=1, startup_timeout=5.0)
    gate.host_message(1.0, "x", ready_msg("x1"))  # in its start-up call
    assert gate.host_exited(2.0, "x", "gone") == [
        Log("error", "host x died: host process exited (gone)"),
        Log("info", "waiting for a host to attach")]
    assert gate.state is GateState.STARTING
    assert gate.host_message(3.0, "y", ready_msg("x2"))[0] == Log(
        "info", "adopted attached host y (pid 102)")


def test_attach_silence_is_death_without_a_kill_of_our_own() -> None:
    gate = attach(hosts=1, heartbeat_timeout=3.0)
    gate.host_message(1.0, "x", ready_msg("x1", PLAIN))
    acts = gate.tick(4.5)
    assert acts == [KillHost("x", "no heartbeat for 3s"),
                    Log("error", "host x died: no heartbeat for 3s"),
                    Log("info", "waiting for a host to attach")]
    assert len(gate.pool) == 0 and gate.state is GateState.RESTARTING


# =========================================================================== needs_tick


def test_events_that_may_move_the_next_wakeup_earlier_ask_for_a_tick() -> None:
    gate = make(spawn=False)
    gate.start(0.0)
    gate.tick(0.5)
    gate.shutdown(1.0)  # no host: finished at once
    assert gate.needs_tick is True
    gate = make(spawn=False)
    gate.start(0.0)
    gate.tick(0.5)
    gate.force_stop(1.0, "now")
    assert gate.needs_tick is True


def test_a_host_opening_without_changing_the_service_state_asks_for_a_tick() -> None:
    gate = make(hosts=2)
    gate.start(0.0)
    bring_up(gate, "h1", 1.0, adapter=PLAIN)
    gate.tick(2.0)
    assert gate.needs_tick is False
    gate.host_message(2.5, "h2", ready_msg("h2", PLAIN))
    assert gate.needs_tick is True and gate.state is GateState.READY


def test_a_drained_host_starting_its_slow_call_asks_for_a_tick() -> None:
    gate = serving()
    (fwd,) = calls_to(gate.client_message(9.0, C2, fast(1)))
    gate.client_message(10.0, C, Maintain(id=2))
    gate.tick(10.1)
    assert gate.needs_tick is False
    gate.host_message(10.5, "h1", Result(id=fwd.id))
    assert gate.needs_tick is True


def test_a_slow_call_ending_after_shutdown_asks_for_a_tick() -> None:
    gate = serving(2)
    gate.client_message(5.0, C, Maintain(id=1))
    gate.shutdown(5.5)
    gate.tick(5.6)
    assert gate.needs_tick is False
    gate.host_message(6.0, "h1", Result(id=3))
    assert gate.needs_tick is True


def test_a_host_exiting_while_others_stop_asks_for_a_tick() -> None:
    gate = serving(2)
    gate.shutdown(5.0)
    gate.tick(5.1)
    gate.host_exited(5.5, "h1", "exit code 0")
    assert gate.needs_tick is True and gate.state is GateState.STOPPING


def test_a_kill_by_tick_changes_the_state_and_asks_for_a_tick() -> None:
    gate = serving(heartbeat_timeout=3.0)  # last heard from at 3.0
    assert gate.tick(6.5) == [KillHost("h1", "no heartbeat for 3s")]
    assert gate.state is GateState.RESTARTING
    assert gate.needs_tick is True


# =========================================================================== more edges


def test_the_last_configuration_error_is_the_failed_reason() -> None:
    adapter = desc(slow("a", startup=False, policy="idle="),
                   slow("b", startup=False, policy="nope=1"))
    gate = make()
    gate.start(0.0)
    acts = gate.host_message(1.0, "h1", ready_msg("h1", adapter))
    assert [a.text for a in acts if isinstance(a, Log) and a.level == "error"] == [
        "slow call 'a': bad policy term 'idle=': expected idle=VALUE",
        "slow call 'b': bad policy term 'nope=1': unknown key 'nope' (expected one of idle, "
        "every, cron, file, stale, manual, min_gap, deadline)"]
    assert gate.failed_reason == (
        "slow call 'b': bad policy term 'nope=1': unknown key 'nope' (expected one of idle, "
        "every, cron, file, stale, manual, min_gap, deadline)")


def test_status_rounds_the_route_away_time() -> None:
    gate = serving(route_away_after=1.23456)
    assert gate.status(5.0)["route_away_after"] == 1.235
    assert gate.route_away_after == 1.23456


def test_durations_are_rounded_to_microseconds() -> None:
    gate = serving(adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(11.23456789, "h1", Result(id=1))
    assert gate.last_maintenance is not None
    assert gate.last_maintenance["duration"] == 1.234568
    host = gate.pool.get("h1")
    assert host is not None and host.last_maintenance is not None
    assert host.last_maintenance["duration"] == 1.234568


def test_a_stuck_host_is_not_counted_as_serving_when_a_rollout_takes_hosts() -> None:
    gate = serving(3, route_away_after=1.0)
    for i in range(3):  # one call each; h1 and h2 answer, h3 hangs
        (fwd,) = calls_to(gate.client_message(10.0, C, fast(i)))
        if i < 2:
            gate.host_message(10.1, f"h{i + 1}", Result(id=fwd.id))
    gate.client_message(12.0, C, Maintain(id=9))  # h3 stuck: h2 alone must keep serving
    assert [h.state for h in gate.pool] == [HostState.MAINTAINING, HostState.READY,
                                             HostState.READY]
    gate2 = serving(2, route_away_after=1.0)
    (fwd,) = calls_to(gate2.client_message(10.0, C, fast(1)))  # h1 hangs
    gate2.client_message(12.0, C, Maintain(id=9))
    # the stuck h1 serves nobody: it is taken (draining until its call ends), h2 serves
    assert [h.state for h in gate2.pool] == [HostState.DRAINING, HostState.READY]


def test_manual_maintain_counts_only_ready_hosts() -> None:
    gate = serving(2)
    gate.host_exited(5.0, "h2", "x")  # h3 starting
    assert replies(gate.client_message(5.5, C, Maintain(id=1))) == [MaintainReply(
        id=1, started=True, reason="'read_config' on 1 host")]
    assert gate.status(5.5)["rollout"]["pending"] == ["h1"]


def test_shutting_down_a_failed_service_does_not_stop_its_stopping_hosts_again() -> None:
    gate = serving(2, restart_limit=0)
    gate.host_exited(5.0, "h1", "x")  # h2 told to shut down
    assert gate.pool.get("h2").state is HostState.STOPPING  # type: ignore[union-attr]
    assert gate.shutdown(6.0, "SIGTERM received") == [Log("info", "stopping: SIGTERM received")]
    assert gate.state is GateState.STOPPING


def test_a_failed_service_exits_1_even_if_a_host_was_still_stopping() -> None:
    gate = serving(2, restart_limit=0)
    gate.host_exited(5.0, "h1", "x")  # failed; h2 told to shut down
    gate.shutdown(6.0, "SIGTERM received")
    assert gate.host_exited(6.5, "h2", "exit code 0") == [Stopped(1, "host exit code 0")]


def test_nothing_happens_after_stopped() -> None:
    gate = serving()
    gate.shutdown(5.0)
    gate.host_exited(5.5, "h1", "exit code 0")
    assert gate.state is GateState.STOPPED
    assert gate.tick(6.0) == []
    assert gate.state is GateState.STOPPED


def test_force_stop_during_maintenance_clears_the_running_call() -> None:
    gate = serving()
    gate.client_message(5.0, C, Maintain(id=1))
    assert "maintenance" in gate.status(5.5)
    gate.force_stop(6.0, "now")
    st = gate.status(6.0)
    assert "maintenance" not in st and "rollout" not in st


def test_a_failing_service_drops_its_rollout() -> None:
    gate = serving(2, restart_limit=0)
    gate.client_message(5.0, C, Maintain(id=1))
    gate.host_exited(5.5, "h2", "x")
    assert gate.state is GateState.FAILED
    assert "rollout" not in gate.status(5.5)


def test_attach_a_host_silent_while_stopping_is_given_up_with_exit_1() -> None:
    gate = attach(hosts=1, heartbeat_timeout=3.0)
    gate.host_message(1.0, "x", ready_msg("x1", PLAIN))
    assert gate.shutdown(2.0, "SIGTERM received") == [
        Log("info", "stopping: SIGTERM received"), ToHost("x", Shutdown(reason="SIGTERM received"))]
    assert gate.next_wakeup(3.5) == 4.0
    assert gate.tick(4.0) == []
    assert gate.tick(4.0001) == [KillHost("x", "no heartbeat for 3s while stopping"),
                                 Stopped(1, "host no heartbeat for 3s while stopping")]
    assert gate.state is GateState.STOPPED


# =========================================================================== survivors' tests


def test_after_force_stop_killed_hosts_have_no_deadlines() -> None:
    gate = serving(2, heartbeat_timeout=1.0)
    gate.force_stop(6.0, "second signal")
    assert [h.killed for h in gate.pool] == ["second signal", "second signal"]
    assert gate.next_wakeup(6.0) == 7.0  # no host deadline, no stop deadline
    assert gate.tick(100.0) == []


def test_a_starting_hosts_plain_heartbeat_does_not_restart_its_start_up_timeout() -> None:
    gate = make(startup_timeout=10.0)
    gate.start(0.0)
    assert gate.host_message(5.0, "h1", Heartbeat(host_id="h1")) == []
    assert gate.tick(10.0001) == [KillHost("h1", "not ready within the start-up timeout (10s)")]


def test_a_host_waiting_for_its_slot_starts_its_timeout_when_it_stops_waiting() -> None:
    gate = make(startup_timeout=10.0)
    gate.start(0.0)
    gate.host_message(1.0, "h1", Heartbeat(host_id="h1", busy_id=0))
    assert gate.status(1.5)["hosts"][0]["state"] == "waiting"
    assert gate.tick(50.0) == []
    gate.host_message(60.0, "h1", Heartbeat(host_id="h1", busy_id=0))  # still waiting
    gate.host_message(62.0, "h1", Heartbeat(host_id="h1"))  # the slot is free: starting now
    assert gate.status(62.5)["hosts"][0]["state"] == "starting"
    assert gate.tick(72.0) == []
    assert gate.tick(72.001) == [KillHost("h1", "not ready within the start-up timeout (10s)")]


def test_an_attached_host_retired_at_start_up_does_not_charge_the_budget() -> None:
    gate = attach(hosts=1, restart_limit=0)
    gate.host_message(1.0, "x", ready_msg("x1"))  # runs its start-up call (id 1)
    why = "start-up slow call 'read_config' failed on x: no config"
    acts = gate.host_message(2.0, "x", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION,
                                                  message="no config"))
    assert acts == [
        Log("error", f"host x is not fit to serve: {why}"),
        ToHost("x", Shutdown(reason=f"not fit to serve: {why}")),
        Log("error", f"host x died: {why}"),
        Log("info", "waiting for a host to attach"),
    ]
    assert gate.state is GateState.STARTING and gate.restart_count == 0
    assert len(gate.pool) == 0


def test_a_goodbye_in_a_pool_asks_for_a_tick() -> None:
    gate = serving(2)
    gate.tick(5.0)
    gate.host_message(5.5, "h1", Goodbye(host_id="h1"))
    assert gate.state is GateState.READY and gate.needs_tick is True


def test_a_serving_host_is_not_taken_when_the_only_other_one_is_stuck() -> None:
    gate = serving(2, route_away_after=1.0)
    (fwd,) = calls_to(gate.client_message(10.0, C, fast(1)), "h1")
    gate.host_message(10.1, "h1", Result(id=fwd.id))
    (hung,) = calls_to(gate.client_message(10.2, C, fast(2)), "h2")  # h2 hangs in it
    gate.client_message(12.0, C, Maintain(id=9))
    # h1 keeps serving; h2 serves nobody while stuck, so it is taken: it drains (its call
    # still runs) and runs the slow call after it
    assert [h.state for h in gate.pool] == [HostState.READY, HostState.DRAINING]
    (slow_call,) = calls_to(gate.host_message(13.0, "h2", Result(id=hung.id)), "h2")
    assert slow_call.method == "read_config"


def test_of_two_due_slow_calls_the_one_that_waited_longest_runs_first() -> None:
    adapter = desc(slow("a", startup=False, policy="every=10s"),
                   slow("b", startup=False, policy="every=10s"))
    gate = serving(adapter=adapter, start_s=3.0)  # ready at 3: both due at 13
    gate.client_message(4.0, C, Maintain(id=1, method="a"))
    gate.host_message(5.0, "h1", Result(id=1))  # a ran last at 5 (due again at 15)
    assert calls_to(gate.tick(30.0)) == [Call(id=2, method="b")]  # b never ran: first


def test_halt_back_off_and_release_after_a_good_round() -> None:
    adapter = desc(slow(startup=False, policy="every=1h"))
    gate = serving(2, adapter=adapter)
    gate.client_message(10.0, C, Maintain(id=1))  # h1 is the canary (call id 1)
    acts = gate.host_message(11.0, "h1", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION,
                                                    message="bad"))
    why = "slow call failed on h1 after 'read_config': bad"
    assert acts == [
        Log("error", f"maintenance 'read_config' halted: {why}; 1 host(s) keep their state; "
                     "retry in 30s"),
        Log("warning", "maintenance 'read_config' finished: 0 host(s) ok, 1 failed"),
        Log("error", f"host h1 is not fit to serve: {why}"), KillHost("h1", why)]
    assert gate.status(12.0)["rollout"] == {
        "state": "halted", "call": "read_config", "host": "h1", "reason": why,
        "untouched": ["h2"], "ago": 1.0, "retry_in": 29.0}
    gate.host_exited(11.5, "h1", "killed")
    bring_up(gate, "h3", 12.0, adapter=adapter)
    gate.client_message(20.0, C, Maintain(id=2))  # h2 (id 2) then h3 (id 3): fine
    gate.host_message(21.0, "h2", Result(id=2))
    gate.host_message(22.0, "h3", Result(id=3))
    st = gate.status(22.0)
    assert "rollout" not in st  # the halt is over
    assert st["last_maintenance"]["ok"] is True
    gate.client_message(30.0, C, Maintain(id=3))  # h2 canary again (id 4), fails again
    acts = gate.host_message(31.0, "h2", ErrorReply(id=4, code=ErrorCode.REMOTE_EXCEPTION,
                                                    message="bad"))
    assert acts[0].text.endswith("retry in 30s")  # released: the back-off starts over


def test_a_second_halt_in_a_row_doubles_the_back_off() -> None:
    adapter = desc(slow(startup=False))
    gate = serving(3, adapter=adapter)
    gate.client_message(10.0, C, Maintain(id=1))  # h1 canary
    gate.host_message(11.0, "h1", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION))
    gate.client_message(12.0, C, Maintain(id=2))  # h2 canary (id 2)
    acts = gate.host_message(13.0, "h2", ErrorReply(id=2, code=ErrorCode.UNFIT,
                                                    message="verify: wrong answer"))
    assert acts[0] == Log("error", "maintenance 'read_config' halted: verify: wrong answer "
                                   "(on h2); 1 host(s) keep their state; retry in 60s")


def test_a_halted_round_under_a_manual_policy_is_never_retried_by_itself() -> None:
    gate = serving(2, adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(11.0, "h1", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION))
    assert gate.status(12.0)["rollout"]["retry_in"] is None


def test_status_names_the_first_running_slow_call_by_slot() -> None:
    gate = make(hosts=2)
    gate.start(0.0)
    gate.host_message(1.0, "h2", ready_msg("h2"))  # slow call id 1 on h2
    gate.host_message(1.5, "h1", ready_msg("h1"))  # slow call id 2 on h1
    assert gate.status(2.0)["maintenance"] == {"call": "read_config", "reason": "startup",
                                               "host": "h1", "elapsed": 0.5, "expected": None}


def test_a_stuck_ready_host_during_a_waiting_rollout_promises_nothing() -> None:
    adapter = desc(slow(startup=False))
    gate = serving(2, adapter=adapter, start_s=4.0, route_away_after=1.0)  # starts take 4 s
    gate.client_message(10.0, C, Maintain(id=1))
    gate.host_message(10.5, "h1", Result(id=1))
    gate.host_message(11.0, "h2", Result(id=2))  # the slow call takes 0.5 s
    gate.host_exited(20.0, "h2", "x")  # h3 starting: expected in 4 s
    gate.client_message(20.1, C, Maintain(id=2))  # h1 must keep serving: not taken
    assert calls_to(gate.client_message(20.2, C, fast(1)), "h1")
    (reply,) = replies(gate.client_message(21.5, C, fast(2)))  # h1 stuck now
    assert reply == ErrorReply(id=2, code=ErrorCode.BUSY,
                               message="busy: fast call 'calc' running for 1.3s",
                               retry_after=2.5)  # h3: 4.0 - 1.5; nothing from h1


def test_the_observer_is_told_every_outcome() -> None:
    seen: list[tuple[str, str, str, float]] = []
    gate = Gate(GateConfig(hosts=1, heartbeat_interval=1e6, heartbeat_timeout=1e9),
                parse_policy, now=0.0, observer=lambda *a: seen.append(a))
    gate.start(0.0)
    gate.client_message(0.5, C, fast(1))  # refused: starting
    gate.host_message(1.0, "h1", ready_msg("h1", desc(slow(startup=False))))
    assert seen == [("call", "(other)", "busy", 0.0)]  # methods unknown before ready
    seen.clear()
    (fwd,) = calls_to(gate.client_message(2.0, C, fast(2)))
    gate.host_message(2.25, "h1", Result(id=fwd.id))
    (fwd,) = calls_to(gate.client_message(3.0, C, fast(3)))
    gate.host_message(3.5, "h1", ErrorReply(id=fwd.id, code=ErrorCode.BAD_ARGUMENTS))
    gate.client_message(4.0, C, Call(id=4, method="nope"))
    gate.client_message(4.0, C, Call(id=5, method="read_config"))
    gate.client_message(4.0, C, fast(6, fingerprint="zz"))
    assert seen == [("call", "calc", "ok", 0.25), ("call", "calc", "bad_arguments", 0.5),
                    ("call", "(other)", "unknown_call", 0.0),
                    ("call", "(other)", "unknown_call", 0.0),
                    ("call", "calc", "fingerprint", 0.0)]
    seen.clear()
    gate.client_message(5.0, C, Maintain(id=7))  # slow call id 3
    gate.client_message(5.5, C, fast(8))  # busy
    gate.host_message(6.0, "h1", Result(id=3))
    calls_to(gate.client_message(7.0, C, fast(9)))
    gate.host_exited(8.0, "h1", "x")
    assert seen == [("call", "calc", "busy", 0.0), ("slow", "read_config", "ok", 1.0),
                    ("call", "calc", "crashed", 0.0)]
    seen.clear()
    bring_up(gate, "h2", 9.0, adapter=desc(slow(startup=False)))
    gate.client_message(10.0, C, Maintain(id=10))  # slow call id 5
    gate.host_message(12.0, "h2", ErrorReply(id=5, code=ErrorCode.UNFIT, message="v"))
    gate.client_message(13.0, C, Maintain(id=11))
    assert seen == [("slow", "read_config", "unfit", 2.0)]


def test_an_observer_sees_failed_slow_calls_as_errors() -> None:
    seen: list[tuple[str, str, str, float]] = []
    gate = Gate(GateConfig(hosts=1, heartbeat_interval=1e6, heartbeat_timeout=1e9),
                parse_policy, now=0.0, observer=lambda *a: seen.append(a))
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1"))
    gate.host_message(1.5, "h1", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION))
    assert seen == [("slow", "read_config", "error", 0.5)]


def test_next_due_in_per_slow_call() -> None:
    adapter = desc(slow("a", startup=False, policy="every=10s"), slow("m", startup=False))
    gate = make()
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1", adapter))  # ready at 1: a due at 11
    st = gate.status(3.12345)
    assert st["slow_calls"]["a"]["next_due_in"] == 7.877
    assert st["slow_calls"]["m"]["next_due_in"] is None  # manual
    assert gate.status(20.0)["slow_calls"]["a"]["next_due_in"] == 0.0  # overdue: now
    gate.tick(11.0)  # a runs
    assert gate.status(11.5)["slow_calls"]["a"]["next_due_in"] is None  # during the round


def test_next_due_in_is_unknown_before_the_service_served() -> None:
    gate = make()
    gate.start(0.0)
    gate.host_message(1.0, "h1", ready_msg("h1", desc(slow(policy="every=10s"))))
    assert gate.status(1.5)["slow_calls"]["read_config"]["next_due_in"] is None


def test_the_observer_type_and_the_other_method_label() -> None:
    assert OTHER_METHOD == "(other)"
    assert Observer == Callable[[str, str, str, float], None]
    hints = typing.get_type_hints(Gate.__init__)
    assert hints["observer"] == Observer | None


def test_an_unfit_answer_to_a_fast_call_is_unavailable_and_retires_the_host() -> None:
    seen: list[tuple[str, str, str, float]] = []
    gate = Gate(GateConfig(hosts=1, heartbeat_interval=1e6, heartbeat_timeout=1e9),
                parse_policy, now=0.0, observer=lambda *a: seen.append(a))
    gate.start(0.0)
    bring_up(gate, "h1", 1.0, adapter=PLAIN)
    (fwd,) = calls_to(gate.client_message(5.0, C, fast(7)))
    gate.tick(5.1)
    acts = gate.host_message(5.5, "h1", ErrorReply(id=fwd.id, code=ErrorCode.UNFIT,
                                                   message="verify: stale"))
    reason = "host h1 is unfit: verify: stale"
    assert acts == [
        ToClient(C, ErrorReply(id=7, code=ErrorCode.UNAVAILABLE,
                               message=f"unavailable: {reason}; the call did not run")),
        Log("error", f"host h1 is not fit to serve: {reason}"),
        KillHost("h1", reason)]
    assert gate.state is GateState.RESTARTING and gate.needs_tick is True
    assert gate.counters["rejected_unavailable"] == 1 and gate.counters["errors"] == 0
    assert seen == [("call", "calc", "unavailable", 0.5)]
    assert gate.last_restart_reason == reason
