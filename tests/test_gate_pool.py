"""The gate with a pool of hosts: routing, staggered maintenance, restarts without downtime,
routing around a stuck host, attach mode. Pure: no sockets, no sleeps; time is a number."""

from __future__ import annotations

from typing import Any

import pytest

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
from threadhost.policy import parse_policy
from threadhost.protocol import (
    Call,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Maintain,
    Ready,
    Result,
    Shutdown,
)

C1 = (b"c1",)


def desc(policy: str | None = "manual", startup: bool = True, replicable: bool = True,
         slow: tuple[str, ...] = ("read_config",)) -> dict[str, Any]:
    calls: list[dict[str, Any]] = [{"name": "calc", "kind": "fast"}]
    calls += [{"name": n, "kind": "slow", "startup": startup, "policy": None, "deadline": None}
              for n in slow]
    return {"adapter": "t:Lib", "default_policy": policy, "replicable": replicable,
            "calls": calls}


def to_hosts(actions: list[Any]) -> list[tuple[str, Any]]:
    return [(a.host_id, a.message) for a in actions
            if isinstance(a, ToHost) and not a.heartbeat_socket]


def to_client(actions: list[Any], route: tuple[bytes, ...] = C1) -> list[Any]:
    return [a.message for a in actions if isinstance(a, ToClient) and a.route == route]


class Pool:
    """Drives a gate with ``n`` spawned hosts; remembers what each host was sent."""

    def __init__(self, n: int = 2, description: dict[str, Any] | None = None,
                 startup_s: float = 1.0, **cfg: Any) -> None:
        cfg.setdefault("heartbeat_timeout", 1e9)
        self.gate = Gate(GateConfig(hosts=n, **cfg), parse_policy, now=0.0)
        self.desc = description or desc()
        self.pending: dict[str, list[Call]] = {}
        starts = self.gate.start(0.0)
        assert [type(a) for a in starts] == [StartHost] * n
        self.ids = [a.host_id for a in starts]
        for hid in self.ids:
            self.feed(self.gate.host_message(0.0, hid, Ready(
                host_id=hid, pid=100 + int(hid[1:]), adapter=self.desc, fingerprint="fp")))
        for hid in self.ids:
            self.finish_all(hid, startup_s)

    def feed(self, actions: list[Any]) -> list[Any]:
        for hid, msg in to_hosts(actions):
            if isinstance(msg, Call):
                self.pending.setdefault(hid, []).append(msg)
        return actions

    def call(self, now: float, route: tuple[bytes, ...] = C1, rid: int = 1) -> list[Any]:
        return self.feed(self.gate.client_message(now, route, Call(id=rid, method="calc",
                                                                  args=[1])))

    def answer(self, hid: str, now: float, index: int = 0, ok: bool = True) -> list[Any]:
        msg = self.pending[hid].pop(index)
        reply: Any = Result(id=msg.id, value=2) if ok else ErrorReply(
            id=msg.id, code=ErrorCode.REMOTE_EXCEPTION, message="bad config")
        return self.feed(self.gate.host_message(now, hid, reply))

    def finish_all(self, hid: str, now: float) -> None:
        while self.pending.get(hid):
            self.answer(hid, now)

    def tick(self, now: float) -> list[Any]:
        return self.feed(self.gate.tick(now))

    def host(self, hid: str) -> Any:
        host = self.gate.pool.get(hid)
        assert host is not None
        return host


def test_all_hosts_start_in_parallel_and_the_gate_opens() -> None:
    p = Pool(3)
    assert p.gate.state is GateState.READY
    assert [h.state for h in p.gate.pool] == [HostState.READY] * 3
    assert p.gate.generation == 3  # each ran its start-up slow call
    st = p.gate.status(2.0)
    assert [h["id"] for h in st["hosts"]] == ["h1", "h2", "h3"]
    assert [h["pid"] for h in st["hosts"]] == [101, 102, 103]
    assert all(h["generation"] == 1 and h["restarts"] == 0 for h in st["hosts"])


def test_routing_takes_the_host_with_fewest_calls_in_flight() -> None:
    p = Pool(3)
    first = [to_hosts(p.call(2.0, rid=i))[0][0] for i in range(3)]
    assert sorted(first) == ["h1", "h2", "h3"]  # one each: nobody queues while one is free
    p.answer("h2", 2.1)
    (hid, _), = to_hosts(p.call(2.2, rid=9))
    assert hid == "h2"  # the only one with nothing in flight
    assert len(p.pending["h2"]) == 1


def test_replies_are_routed_back_by_host_and_request_id() -> None:
    p = Pool(2)
    p.call(2.0, rid=5)
    p.call(2.0, route=(b"c2",), rid=5)
    out = p.answer("h2", 2.1) + p.answer("h1", 2.1)
    assert to_client(out, C1) == [Result(id=5, value=2)]
    assert to_client(out, (b"c2",)) == [Result(id=5, value=2)]
    assert p.gate.counters["served"] == 2


def test_staggered_maintenance_never_rejects_with_two_hosts() -> None:
    p = Pool(2)
    acts = p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    (reply,) = to_client(acts)
    assert reply.started and "2 hosts" in reply.reason
    (hid, msg), = to_hosts(acts)  # only one host at a time
    assert msg.method == "read_config"
    other = "h2" if hid == "h1" else "h1"
    assert p.host(hid).state is HostState.MAINTAINING
    assert p.gate.state is GateState.MAINTAINING
    for i in range(5):  # every call goes to the other host, none is refused
        (target, _), = to_hosts(p.call(3.1 + i / 10, rid=i))
        assert target == other
    p.finish_all(other, 3.6)
    acts = p.answer(hid, 4.0)  # first host done -> the second is taken out
    assert [(h, m.method) for h, m in to_hosts(acts)] == [(other, "read_config")]
    (target, _), = to_hosts(p.call(4.1, rid=10))
    assert target == hid
    p.finish_all(hid, 4.2)
    p.answer(other, 5.0)
    assert p.gate.state is GateState.READY
    assert p.gate.counters["rejected_busy"] == 0
    st = p.gate.status(6.0)
    assert [h["generation"] for h in st["hosts"]] == [2, 2]
    assert st["last_maintenance"]["hosts"] == 2 and st["last_maintenance"]["ok"]


def test_a_host_drains_its_calls_before_its_slow_call_starts() -> None:
    p = Pool(2)
    p.call(3.0, rid=1)  # -> h1 (fewest in flight, least recently used)
    p.call(3.0, rid=2)  # -> h2
    acts = p.feed(p.gate.client_message(3.1, C1, Maintain(id=9)))
    assert [m.method for _, m in to_hosts(acts)] == []  # both busy: the first drains
    draining = [h for h in p.gate.pool if h.state is HostState.DRAINING]
    assert len(draining) == 1
    hid = draining[0].host_id
    (target, _), = to_hosts(p.call(3.2, rid=3))
    assert target != hid  # out of rotation while draining
    acts = p.answer(hid, 3.3)
    assert [(h, m.method) for h, m in to_hosts(acts)] == [(hid, "read_config")]


def test_max_maintaining_two_runs_two_hosts_at_once_but_keeps_one_serving() -> None:
    p = Pool(4, max_maintaining=2)
    acts = p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    ((canary, _),) = to_hosts(acts)  # the canary runs alone
    acts = p.answer(canary, 3.5)  # fine: now two at a time, one host left serving
    assert len(to_hosts(acts)) == 2
    (target, _), = to_hosts(p.call(3.6))
    serving = [h.host_id for h in p.gate.pool if h.state is HostState.READY]
    assert len(serving) == 2 and target in serving
    p2 = Pool(2, max_maintaining=2)
    acts = p2.feed(p2.gate.client_message(3.0, C1, Maintain(id=1)))
    assert len(to_hosts(acts)) == 1  # never the last host in rotation


def test_one_host_maintenance_is_busy_with_measured_retry_after() -> None:
    p = Pool(1, startup_s=2.0)
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    (reply,) = to_client(p.call(3.5))
    assert reply.code is ErrorCode.BUSY and "read_config" in reply.message
    assert reply.retry_after == pytest.approx(1.5)  # measured 2.0 s, 0.5 s elapsed


def test_calls_prefer_hosts_with_the_newest_maintenance() -> None:
    p = Pool(3)
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    assert not to_hosts(p.gate.tick(3.0))  # nothing new while the first host runs it
    first = next(h.host_id for h in p.gate.pool if h.state is HostState.MAINTAINING)
    p.answer(first, 4.0)  # first has the new state; the next one is now maintaining
    second = next(h.host_id for h in p.gate.pool if h.state is HostState.MAINTAINING)
    old = next(h.host_id for h in p.gate.pool if h.host_id not in (first, second))
    for i in range(4):  # each answered at once: the new host is free every time
        (target, _), = to_hosts(p.call(4.1 + i / 10, rid=i))
        assert target == first
        p.answer(first, 4.15 + i / 10)
    p.call(5.0, rid=10)  # the new host is busy now: the old one takes the next call
    (target, _), = to_hosts(p.call(5.0, rid=11))
    assert target == old


def test_crash_fails_only_its_calls_and_the_pool_keeps_serving() -> None:
    p = Pool(2)
    p.call(3.0, rid=1)  # h1
    p.call(3.0, route=(b"c2",), rid=2)  # h2
    acts = p.gate.host_exited(3.1, "h1", "killed by signal SIGKILL")
    (crashed,) = to_client(acts)
    assert crashed.code is ErrorCode.CRASHED and crashed.id == 1
    assert to_client(acts, (b"c2",)) == []
    (start,) = [a for a in acts if isinstance(a, StartHost)]
    assert start.host_id == "h3"
    assert p.gate.state is GateState.READY  # h2 still serves
    (target, _), = to_hosts(p.call(3.2, rid=3))
    assert target == "h2"
    assert to_client(p.answer("h2", 3.3), (b"c2",))[0] == Result(id=2, value=2)
    # the replacement takes the dead host's slot, runs start-up, then serves
    p.feed(p.gate.host_message(4.0, "h3", Ready(host_id="h3", pid=7, adapter=p.desc,
                                                fingerprint="fp")))
    p.finish_all("h3", 5.0)
    st = p.gate.status(5.0)
    assert [(h["id"], h["restarts"]) for h in st["hosts"]] == [("h3", 1), ("h2", 0)]
    assert st["restart_count"] == 1 and st["state"] == "ready"


def test_restart_budget_is_shared_by_the_pool() -> None:
    p = Pool(2, restart_limit=2, restart_window=60.0)
    assert any(isinstance(a, StartHost) for a in p.gate.host_exited(3.0, "h1", "x"))
    assert any(isinstance(a, StartHost) for a in p.gate.host_exited(4.0, "h2", "x"))
    acts = p.gate.host_exited(5.0, "h3", "x")
    assert not any(isinstance(a, StartHost) for a in acts)
    assert p.gate.state is GateState.FAILED
    assert "3 host failures within 60s (limit 2)" in (p.gate.failed_reason or "")
    (reply,) = to_client(p.call(6.0))
    assert reply.code is ErrorCode.FAILED


def test_failed_pool_stops_its_surviving_hosts() -> None:
    p = Pool(2, restart_limit=0)
    acts = p.gate.host_exited(3.0, "h1", "x")
    assert ("h2", Shutdown(reason="the service failed")) in to_hosts(acts)
    assert p.gate.state is GateState.FAILED


def test_stuck_host_is_routed_around() -> None:
    p = Pool(2, route_away_after=2.0)
    p.call(3.0, rid=1)  # h1: will hang
    (t2, _), = to_hosts(p.call(3.0, rid=2))
    p.answer(t2, 3.1)
    # before the route-away time, least-in-flight still prefers the idle host
    for i in range(3):
        (target, _), = to_hosts(p.call(5.5 + i / 10, rid=10 + i))
        assert target == "h2"
        p.answer("h2", 5.55 + i / 10)
    assert p.gate.status(5.5)["hosts"][0]["state"] == "stuck"
    p.call(5.9, rid=20)  # h2 busy now, h1 stuck: the next call queues on h2, not on h1
    (target, _), = to_hosts(p.call(5.9, rid=21))
    assert target == "h2"
    # h2 stuck too: nobody can take a call, the answer is an immediate busy
    (reply,) = to_client(p.call(8.0, rid=22))
    assert reply.code is ErrorCode.BUSY and "running for" in reply.message


def test_one_stuck_host_answers_busy_naming_the_call() -> None:
    p = Pool(1, route_away_after=2.0)
    p.call(3.0, rid=1)
    assert to_hosts(p.call(4.0, rid=2))  # within the route-away time: queued
    (reply,) = to_client(p.call(15.0, rid=3))
    assert reply.code is ErrorCode.BUSY and reply.message == "busy: fast call 'calc' running " \
        "for 12.0s"


def test_fast_call_limit_still_kills_a_stuck_host() -> None:
    p = Pool(2, fast_call_limit=10.0)
    p.call(3.0, rid=1)
    acts = p.tick(13.5)
    assert [a.host_id for a in acts if isinstance(a, KillHost)] == ["h1"]


def test_derived_route_away_time_follows_measured_durations() -> None:
    p = Pool(1)
    assert p.gate.route_away_after == 5.0  # nothing measured yet
    t = 3.0
    for i in range(40):
        p.call(t, rid=i)
        t += 0.01
        p.answer("h1", t)
    assert p.gate.route_away_after == 1.0  # 10 x p99 of 10 ms, floored at 1 s


def test_maintenance_waits_while_the_other_host_is_restarting() -> None:
    p = Pool(2)
    p.gate.host_exited(3.0, "h2", "x")  # h3 starting
    (reply,) = to_client(p.feed(p.gate.client_message(3.1, C1, Maintain(id=1))))
    assert reply.started
    assert p.host("h1").state is HostState.READY  # not taken: nobody would serve
    assert to_hosts(p.call(3.2))  # served
    p.finish_all("h1", 3.3)
    p.feed(p.gate.host_message(4.0, "h3", Ready(host_id="h3", pid=7, adapter=p.desc,
                                                fingerprint="fp")))
    p.finish_all("h3", 4.5)
    acts = p.tick(4.6)
    maintaining = [h.host_id for h in p.gate.pool if h.state is HostState.MAINTAINING]
    assert maintaining == ["h1"] and ("h1", p.pending["h1"][-1]) in to_hosts(acts)


def unfit(p: Pool, hid: str, now: float) -> list[Any]:
    msg = p.pending[hid].pop(0)
    return p.feed(p.gate.host_message(now, hid, ErrorReply(
        id=msg.id, code=ErrorCode.UNFIT, message="verify failed after 'read_config': bad")))


@pytest.mark.parametrize("how", ["error", "unfit"])
def test_a_failing_canary_halts_the_round_and_is_replaced(how: str) -> None:
    p = Pool(3, description=desc(policy="every=10s"))
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    acts = p.answer("h1", 4.0, ok=False) if how == "error" else unfit(p, "h1", 4.0)
    assert [a.host_id for a in acts if isinstance(a, KillHost)] == ["h1"]
    assert to_hosts(acts) == []  # h2 and h3 keep the state they have
    st = p.gate.status(4.0)
    assert st["rollout"]["state"] == "halted" and st["rollout"]["host"] == "h1"
    assert st["rollout"]["untouched"] == ["h2", "h3"]
    assert "read_config" in st["rollout"]["reason"] and st["rollout"]["retry_in"] == 30.0
    assert st["last_maintenance"]["halted"] is True
    assert p.gate.state is GateState.READY
    for i in range(4):  # never routed to the unfit host
        (target, _), = to_hosts(p.call(4.1, rid=i))
        assert target in ("h2", "h3")
        p.finish_all(target, 4.1)
    acts = p.gate.host_exited(4.2, "h1", "killed by signal SIGKILL")
    assert [a.slot for a in acts if isinstance(a, StartHost)] == [0]
    assert p.gate.restart_count == 1
    # the policy (every=10s) does not retry before the back-off (30 s)
    for t in (15.0, 25.0, 33.9):
        assert not [m for _, m in to_hosts(p.tick(t)) if m.method == "read_config"]
    assert [m.method for _, m in to_hosts(p.tick(34.1))] == ["read_config"]


def test_a_second_halt_doubles_the_back_off_and_success_clears_it() -> None:
    p = Pool(2, description=desc(policy="every=1h"))
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    p.answer("h1", 4.0, ok=False)
    p.gate.host_exited(4.1, "h1", "x")
    p.feed(p.gate.host_message(4.5, "h3", Ready(host_id="h3", pid=9, adapter=p.desc,
                                                fingerprint="fp")))
    p.finish_all("h3", 5.0)
    p.feed(p.gate.client_message(6.0, C1, Maintain(id=2)))  # an operator may retry at once
    first = next(h.host_id for h in p.gate.pool if h.state is HostState.MAINTAINING)
    p.answer(first, 7.0, ok=False)
    assert p.gate.status(7.0)["rollout"]["retry_in"] == 60.0
    other = next(h.host_id for h in p.gate.pool if h.killed is None)
    p.feed(p.gate.client_message(8.0, C1, Maintain(id=3)))
    p.answer(other, 9.0)
    st = p.gate.status(9.0)
    assert "rollout" not in st and st["last_maintenance"]["ok"] is True


def test_one_host_whose_reload_fails_but_verifies_keeps_serving() -> None:
    p = Pool(1)
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    acts = p.answer("h1", 4.0, ok=False)
    assert not [a for a in acts if isinstance(a, KillHost)]
    assert any(isinstance(a, Log) and "verify passed" in a.text for a in acts)
    assert to_hosts(p.call(4.1))  # served with its previous state
    assert p.gate.state is GateState.READY


def test_one_host_that_fails_verify_is_out_of_service_and_callers_learn_why() -> None:
    p = Pool(1)
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    acts = unfit(p, "h1", 4.0)
    assert [a.host_id for a in acts if isinstance(a, KillHost)] == ["h1"]
    (reply,) = to_client(p.call(4.1))
    assert reply.code is ErrorCode.UNAVAILABLE
    assert "verify failed" in reply.message and "read_config" in reply.message


def test_a_failing_start_up_slow_call_never_opens_the_host() -> None:
    gate = Gate(GateConfig(hosts=2, heartbeat_timeout=1e9), parse_policy, now=0.0)
    gate.start(0.0)
    slow = {hid: to_hosts(gate.host_message(0.1, hid, Ready(host_id=hid, pid=1, adapter=desc(),
                                                            fingerprint="fp")))[0][1]
            for hid in ("h1", "h2")}
    gate.host_message(0.5, "h2", Result(id=slow["h2"].id))
    acts = gate.host_message(0.6, "h1", ErrorReply(id=slow["h1"].id,
                                                   code=ErrorCode.REMOTE_EXCEPTION,
                                                   message="ValueError: no offset"))
    (kill,) = [a for a in acts if isinstance(a, KillHost)]
    assert kill.reason == ("start-up slow call 'read_config' failed on h1: "
                           "ValueError: no offset")
    for i in range(3):
        (target, _), = to_hosts(gate.client_message(1.0, C1, Call(id=i, method="calc")))
        assert target == "h2"
    st = gate.status(1.0)
    assert st["last_restart_reason"] == kill.reason


def test_a_failing_start_up_slow_call_at_first_start_stops_the_service() -> None:
    gate = Gate(GateConfig(hosts=1, heartbeat_timeout=1e9), parse_policy, now=0.0)
    gate.start(0.0)
    ((_, slow),) = to_hosts(gate.host_message(0.1, "h1", Ready(host_id="h1", pid=1,
                                                               adapter=desc(),
                                                               fingerprint="fp")))
    gate.host_message(0.5, "h1", ErrorReply(id=slow.id, code=ErrorCode.REMOTE_EXCEPTION,
                                            message="ValueError: no offset"))
    (stopped,) = [a for a in gate.host_exited(0.6, "h1", "killed by signal SIGKILL")
                  if isinstance(a, Stopped)]
    assert stopped.exit_code == 1
    assert "start-up slow call 'read_config' failed on h1: ValueError: no offset" in (
        stopped.reason)


def test_host_dying_during_its_maintenance_is_replaced_and_the_rollout_goes_on() -> None:
    p = Pool(2)
    p.feed(p.gate.client_message(3.0, C1, Maintain(id=1)))
    acts = p.feed(p.gate.host_exited(3.5, "h1", "signal"))
    assert any(isinstance(a, StartHost) for a in acts)
    assert p.gate.state is GateState.READY  # h2 serves; it waits for h3 before maintaining
    p.feed(p.gate.host_message(4.0, "h3", Ready(host_id="h3", pid=7, adapter=p.desc,
                                                fingerprint="fp")))
    p.finish_all("h3", 4.5)
    p.tick(4.6)
    assert p.host("h2").state is HostState.MAINTAINING


def test_idle_policy_runs_once_per_idle_period_over_the_pool() -> None:
    p = Pool(2, description=desc(policy="idle=10s"))
    p.call(2.0)
    p.answer("h1", 2.0)
    rounds = 0
    t = 2.0
    while t < 200.0:
        t = round(t + 0.5, 3)
        p.tick(t)
        for hid in ("h1", "h2"):
            if p.pending.get(hid):
                rounds += 1
                p.finish_all(hid, t)
    assert rounds == 2  # one round, two hosts; not again while nobody calls


def test_shutdown_stops_every_host_and_exits_when_all_are_gone() -> None:
    p = Pool(2)
    acts = p.gate.shutdown(3.0, "SIGTERM")
    assert sorted(h for h, m in to_hosts(acts) if isinstance(m, Shutdown)) == ["h1", "h2"]
    p.gate.host_message(3.1, "h1", Goodbye(host_id="h1"))
    assert not any(isinstance(a, Stopped) for a in p.gate.host_exited(3.2, "h1", "exit 0"))
    (stopped,) = [a for a in p.gate.host_exited(3.3, "h2", "exit 0") if isinstance(a, Stopped)]
    assert stopped.exit_code == 0


def test_non_replicable_adapter_with_several_hosts_is_refused() -> None:
    gate = Gate(GateConfig(hosts=2), parse_policy, now=0.0)
    gate.start(0.0)
    acts = gate.host_message(0.5, "h1", Ready(host_id="h1", pid=1,
                                              adapter=desc(replicable=False), fingerprint="fp"))
    assert any(isinstance(a, Log) and "not replicable" in a.text for a in acts)
    assert gate.state is GateState.STOPPING


def test_spawned_host_with_another_fingerprint_is_killed_not_served() -> None:
    p = Pool(2)
    p.gate.host_exited(3.0, "h1", "x")
    acts = p.gate.host_message(3.5, "h3", Ready(host_id="h3", pid=9, adapter=p.desc,
                                                fingerprint="other"))
    assert [a.host_id for a in acts if isinstance(a, KillHost)] == ["h3"]
    (target, _), = to_hosts(p.call(3.6))
    assert target == "h2"


def test_broker_heartbeats_go_to_every_host_heartbeat_socket() -> None:
    p = Pool(2)
    acts = p.gate.tick(5.0)
    beats = [a for a in acts if isinstance(a, ToHost) and a.heartbeat_socket]
    assert sorted(a.host_id for a in beats) == ["h1", "h2"]
    assert all(isinstance(a.message, Heartbeat) and a.message.host_id == "broker"
               for a in beats)
    assert not [a for a in p.gate.tick(5.1) if isinstance(a, ToHost)]  # not before 0.5 s
    assert p.gate.next_wakeup(5.1) <= 5.5


# --------------------------------------------------------------------------- attach mode


def attach_gate(**cfg: Any) -> Gate:
    cfg.setdefault("heartbeat_timeout", 1e9)
    gate = Gate(GateConfig(spawn=False, **cfg), parse_policy, now=0.0, token="tok")
    gate.start(0.0)
    return gate


def ready_msg(hid: str, fingerprint: str = "fp", replicable: bool = True) -> Ready:
    return Ready(host_id=hid, pid=1, adapter=desc(startup=False, replicable=replicable),
                 fingerprint=fingerprint)


def test_attach_adopts_every_host_up_to_the_limit() -> None:
    gate = attach_gate(hosts=2)
    for hid in ("a", "b", "c"):
        gate.host_message(0.1, hid, ready_msg(hid))
    assert [h.host_id for h in gate.pool] == ["a", "b"]
    unlimited = attach_gate(hosts=None)
    for hid in ("a", "b", "c"):
        unlimited.host_message(0.1, hid, ready_msg(hid))
    assert len(unlimited.pool) == 3


def test_attach_refuses_a_host_with_another_fingerprint_and_logs_it_once() -> None:
    gate = attach_gate(hosts=None)
    gate.host_message(0.1, "a", ready_msg("a"))
    acts = gate.host_message(0.2, "x", ready_msg("x", fingerprint="zzz"))
    assert any(isinstance(a, Log) and a.level == "warning" and "fingerprint" in a.text
               for a in acts)
    assert gate.host_message(0.3, "x", ready_msg("x", fingerprint="zzz")) == []
    assert [h.host_id for h in gate.pool] == ["a"]
    for i in range(4):
        (target, _), = to_hosts(gate.client_message(1.0, C1, Call(id=i, method="calc")))
        assert target == "a"


def test_attach_adopts_only_one_host_of_a_non_replicable_adapter() -> None:
    gate = attach_gate(hosts=None)
    gate.host_message(0.1, "a", ready_msg("a", replicable=False))
    acts = gate.host_message(0.2, "b", ready_msg("b", replicable=False))
    assert any(isinstance(a, Log) and "not replicable" in a.text for a in acts)
    assert len(gate.pool) == 1


def test_attach_answers_an_unknown_hosts_heartbeat_so_it_announces_itself() -> None:
    gate = attach_gate(hosts=None)
    (nudge,) = gate.host_message(1.0, "a", Heartbeat(host_id="a"))
    assert nudge == ToHost("a", Heartbeat(host_id="tok", pid=0, stranger=True),
                           heartbeat_socket=True)
    assert gate.host_message(1.1, "a", Heartbeat(host_id="a")) == []  # rate-limited
    assert gate.host_message(1.6, "a", Heartbeat(host_id="a"))
    gate.host_message(1.7, "a", ready_msg("a"))
    assert gate.state is GateState.READY
    assert gate.host_message(1.8, "a", ready_msg("a")) == []  # a second ready: nothing new


@pytest.mark.parametrize("maintenance", [False, True])
def test_slow_call_answered_after_shutdown_leaves_the_host_stopping(maintenance: bool) -> None:
    gate = Gate(GateConfig(hosts=2, heartbeat_timeout=1e9), parse_policy, now=0.0)
    gate.start(0.0)
    slow: dict[str, Call] = {}
    for hid in ("h1", "h2"):
        for h, m in to_hosts(gate.host_message(0.1, hid, Ready(host_id=hid, pid=1,
                                                                adapter=desc(),
                                                                fingerprint="fp"))):
            slow[h] = m
    if maintenance:  # h1 finished start-up; a maintenance round runs on it
        gate.host_message(0.5, "h1", Result(id=slow["h1"].id))
        gate.host_message(0.5, "h2", Result(id=slow["h2"].id))
        ((_, slow["h1"]),) = to_hosts(gate.client_message(1.0, C1, Maintain(id=1)))
    gate.shutdown(2.0, "SIGTERM")
    assert gate.host_message(2.5, "h1", Result(id=slow["h1"].id)) is not None
    assert gate.pool.get("h1") is not None
    assert gate.pool.hosts["h1"].state is HostState.STOPPING
    assert gate.state is GateState.STOPPING


def test_attached_host_that_vanishes_while_stopping_is_given_up_by_its_silence() -> None:
    gate = attach_gate(hosts=None, heartbeat_timeout=3.0, shutdown_timeout=60.0)
    gate.host_message(0.1, "a", ready_msg("a"))
    gate.shutdown(1.0, "SIGTERM")
    gate.tick(2.9)  # (broker heartbeats due now)
    assert gate.next_wakeup(2.9) == pytest.approx(3.1)
    assert not any(isinstance(a, Stopped) for a in gate.tick(3.0))
    acts = gate.tick(3.2)
    assert any(isinstance(a, KillHost) and "while stopping" in a.reason for a in acts)
    (stopped,) = [a for a in acts if isinstance(a, Stopped)]
    assert stopped.exit_code == 1


def test_spawned_host_tearing_down_is_not_judged_by_heartbeats() -> None:
    p = Pool(1, heartbeat_timeout=3.0)
    p.gate.shutdown(5.0, "SIGTERM")
    assert not [a for a in p.gate.tick(30.0) if isinstance(a, KillHost)]
    assert [a for a in p.gate.tick(65.1) if isinstance(a, KillHost)]


def test_a_host_that_said_goodbye_ok_is_replaced_without_charging_the_budget() -> None:
    p = Pool(2, restart_limit=0)  # any failure would fail the service
    p.gate.host_message(3.0, "h1", Goodbye(host_id="h1", ok=True))
    acts = p.gate.host_exited(3.1, "h1", "exit code 0")
    assert [a.slot for a in acts if isinstance(a, StartHost)] == [0]
    assert p.gate.state is GateState.READY and p.gate.restart_count == 0
    p.gate.host_message(4.0, "h2", Goodbye(host_id="h2", ok=False, message="teardown failed"))
    p.gate.host_exited(4.1, "h2", "exit code 1")
    assert p.gate.state is GateState.FAILED  # a failed goodbye is a failure


def test_poisoned_call_is_quarantined_after_two_deaths_and_refused_at_once() -> None:
    p = Pool(2, restart_limit=10)
    bad = Call(id=1, method="calc", args=[666])
    for n, now in ((1, 3.0), (2, 4.0)):
        (hid, _), = to_hosts(p.feed(p.gate.client_message(now, C1, bad)))
        acts = p.gate.host_exited(now + 0.1, hid, "killed by signal SIGABRT")
        (reply,) = to_client(acts)
        assert reply.code is ErrorCode.CRASHED
        p.pending[hid].clear()
        new = next(a.host_id for a in acts if isinstance(a, StartHost))
        p.feed(p.gate.host_message(now + 0.2, new, Ready(host_id=new, pid=9, adapter=p.desc,
                                                         fingerprint="fp")))
        p.finish_all(new, now + 0.3)
        assert any("quarantined" in a.text for a in acts if isinstance(a, Log)) is (n == 2)
    acts = p.gate.client_message(5.0, C1, bad)
    assert to_hosts(acts) == []
    (reply,) = to_client(acts)
    assert reply.code is ErrorCode.POISONED and "calc" in reply.message
    assert to_hosts(p.call(5.1))  # the same method with other arguments still runs
    ok = Call(id=2, method="calc", args=[667])
    assert to_hosts(p.gate.client_message(5.2, C1, ok))
    st = p.gate.status(6.0)
    assert [q["method"] for q in st["quarantined"]] == ["calc"]
    assert st["quarantined"][0]["kills"] == 2 and st["counters"]["rejected_poisoned"] == 1


def test_deaths_outside_the_poison_window_do_not_quarantine() -> None:
    p = Pool(1, restart_limit=10, poison_window=60.0)
    bad = Call(id=1, method="calc", args=[666])
    for now in (3.0, 70.0):
        (hid, _), = to_hosts(p.feed(p.gate.client_message(now, C1, bad)))
        acts = p.gate.host_exited(now + 0.1, hid, "signal")
        new = next(a.host_id for a in acts if isinstance(a, StartHost))
        p.feed(p.gate.host_message(now + 0.2, new, Ready(host_id=new, pid=9, adapter=p.desc,
                                                         fingerprint="fp")))
        p.finish_all(new, now + 0.3)
    assert to_hosts(p.gate.client_message(80.0, C1, bad))


def test_a_waiting_host_is_not_timed_out_and_shows_why() -> None:
    gate = Gate(GateConfig(hosts=1, startup_timeout=5.0), parse_policy, now=0.0)
    gate.start(0.0)
    gate.host_message(1.0, "h1", Heartbeat(host_id="h1", busy_id=0))
    assert gate.status(1.0)["hosts"][0]["state"] == "waiting"
    assert gate.status(1.0)["hosts"][0]["note"] == "waiting for the previous instance to exit"
    assert not [a for a in gate.tick(30.0) if isinstance(a, KillHost)]
    gate.host_message(31.0, "h1", Heartbeat(host_id="h1"))  # got the lock
    assert gate.status(31.0)["hosts"][0]["state"] == "starting"
    assert not [a for a in gate.tick(35.9) if isinstance(a, KillHost)]  # timed from 31 s
    assert [a for a in gate.tick(36.1) if isinstance(a, KillHost)]


def test_an_attached_host_whose_start_up_fails_is_told_to_stop_and_forgotten() -> None:
    gate = attach_gate(hosts=None)
    ((_, slow),) = to_hosts(gate.host_message(0.1, "a", Ready(host_id="a", pid=1, adapter=desc(),
                                                              fingerprint="fp")))
    acts = gate.host_message(0.5, "a", ErrorReply(id=slow.id, code=ErrorCode.REMOTE_EXCEPTION,
                                                  message="no config"))
    assert ("a", Shutdown(reason="not fit to serve: start-up slow call 'read_config' failed "
                                 "on a: no config")) in to_hosts(acts)
    assert len(gate.pool) == 0 and not any(isinstance(a, KillHost) for a in acts)
    (reply,) = to_client(gate.client_message(0.6, C1, Call(id=1, method="calc")))
    assert reply.code is ErrorCode.BUSY  # never ready yet: "the service is starting"


def test_status_says_when_each_slow_call_is_next_due() -> None:
    p = Pool(1, description=desc(policy="every=10s"), startup_s=1.0)
    assert p.gate.status(1.0)["slow_calls"]["read_config"]["next_due_in"] == 10.0
    assert p.gate.status(4.5)["slow_calls"]["read_config"]["next_due_in"] == 6.5
    p.tick(11.0)  # due: the round runs, nothing is "next" while it runs
    assert p.gate.status(11.5)["slow_calls"]["read_config"]["next_due_in"] is None
    p.finish_all("h1", 12.0)
    assert p.gate.status(12.0)["slow_calls"]["read_config"]["next_due_in"] == 10.0
    manual = Pool(1)
    assert manual.gate.status(2.0)["slow_calls"]["read_config"]["next_due_in"] is None


def test_an_unfit_answer_to_a_fast_call_is_unavailable_and_retires_the_host() -> None:
    p = Pool(2)
    p.call(3.0, rid=1)
    msg = p.pending["h1"].pop(0)
    acts = p.gate.host_message(3.1, "h1", ErrorReply(id=msg.id, code=ErrorCode.UNFIT,
                                                     message="verify failed after 'x': bad"))
    (reply,) = to_client(acts)
    assert reply.code is ErrorCode.UNAVAILABLE and reply.id == 1
    assert "did not run" in reply.message and "verify failed" in reply.message
    assert [a.host_id for a in acts if isinstance(a, KillHost)] == ["h1"]
    (target, _), = to_hosts(p.call(3.2, rid=2))
    assert target == "h2"
