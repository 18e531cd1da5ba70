"""threadhost.gate.maintenance on its own: SlowCall measurements, the Schedule built from an
adapter description (policy precedence, deadlines, start-up calls, errors), which slow call
is due, and the staggered Rollout (take_next's rules, host_done). Pure: policies here are
scripted fakes or parsed specs; time is a number we pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from threadhost.gate.maintenance import ManualBudget, Rollout, Schedule, SlowCall
from threadhost.gate.measure import Estimate
from threadhost.gate.pool import HostRecord, SlowRun
from threadhost.gate.states import HostState
from threadhost.policy import Policy, parse_policy


class Fake(Policy):
    """A scripted policy: ``reason`` is what poll says; every hook call is recorded."""

    def __init__(self, reason: str | None = None, wakeup: float | None = None,
                 deadline: float | None = None, log: list[tuple[str, str, float]] | None = None,
                 name: str = "") -> None:
        self.reason = reason
        self.wakeup = wakeup
        if deadline is not None:
            self.deadline = deadline
        self.log = log if log is not None else []
        self.name = name

    def _note(self, what: str, now: float) -> None:
        self.log.append((self.name, what, now))

    def start(self, now: float) -> None:
        self._note("start", now)

    def on_call(self, now: float) -> None:
        self._note("on_call", now)

    def next_wakeup(self, now: float) -> float | None:
        return self.wakeup

    def poll(self, now: float) -> str | None:
        self._note("poll", now)
        return self.reason


def slow(name: str, *, startup: bool = False, policy: str | None = None,
         deadline: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "slow", "startup": startup, "policy": policy,
            "deadline": deadline, **extra}


def build(calls: list[dict[str, Any]], *, default_policy: str | None = "idle=10s",
          policy: str | None = None, policies: Mapping[str, str] | None = None,
          default_deadline: float = 120.0, make_policy: Any = parse_policy,
          ) -> tuple[Schedule, list[str]]:
    desc: dict[str, Any] = {"adapter": "t:Lib", "calls": calls}
    if default_policy is not None:
        desc["default_policy"] = default_policy
    return Schedule.from_description(desc, policy=policy, policies=policies or {},
                                     default_deadline=default_deadline,
                                     make_policy=make_policy)


def schedule_of(**policies: Policy) -> Schedule:
    sched = Schedule()
    for name, pol in policies.items():
        sched.calls[name] = SlowCall(name, pol, "fake", 30.0, False)
    return sched


# =========================================================================== SlowCall


def test_slow_call_defaults() -> None:
    pol = Fake()
    call = SlowCall("reload", pol, "manual", 30.0, True)
    assert (call.name, call.policy, call.spec, call.deadline, call.startup) == (
        "reload", pol, "manual", 30.0, True)
    assert isinstance(call.estimate, Estimate) and call.estimate.value is None
    assert call.last_end == float("-inf")
    assert (call.runs, call.failures, call.last_error) == (0, 0, None)
    assert SlowCall("x", pol, "", 1.0, False).estimate is not call.estimate
    assert not hasattr(call, "__dict__")


def test_slow_call_measure() -> None:
    call = SlowCall("reload", Fake(), "manual", 30.0, False)
    call.measure(2.0, None)
    assert (call.runs, call.failures, call.last_error, call.estimate.value) == (1, 0, None, 2.0)
    call.measure(4.0, "boom")
    assert (call.runs, call.failures, call.last_error, call.estimate.value) == (
        2, 1, "boom", 3.0)
    call.measure(1.0, None)  # a success keeps the last error
    assert (call.runs, call.failures, call.last_error, call.estimate.value) == (
        3, 1, "boom", 2.0)
    call.measure(1.0, "")  # an empty message is still an error
    assert (call.runs, call.failures, call.last_error) == (4, 2, "")
    assert call.estimate.samples == 4


# =========================================================================== Schedule


def test_an_empty_schedule() -> None:
    sched = Schedule()
    assert sched.calls == {} and sched.startup_names == () and sched.last_slow_end is None
    assert sched.deadline("x", 42.0) == 42.0
    assert sched.remaining("x", 1.0) is None
    assert sched.startup_total([]) == 0.0
    assert sched.due(5.0) is None
    assert sched.next_wakeup(5.0) is None


def test_from_description_keeps_slow_calls_in_order_and_skips_the_rest() -> None:
    sched, errors = build([
        {"name": "calc", "kind": "fast"},
        slow("b"),
        {"name": "odd"},
        slow("a", startup=True),
        slow("c", startup=True),
    ])
    assert errors == []
    assert isinstance(sched, Schedule)
    assert list(sched.calls) == ["b", "a", "c"]
    assert sched.startup_names == ("a", "c")
    assert [sched.calls[n].startup for n in ("b", "a", "c")] == [False, True, True]
    assert sched.last_slow_end is None


def test_from_description_without_calls() -> None:
    sched, errors = Schedule.from_description({}, policy=None, policies={},
                                              default_deadline=1.0, make_policy=parse_policy)
    assert (sched.calls, sched.startup_names, errors) == ({}, (), [])


def test_startup_flag_is_truthiness() -> None:
    sched, _ = build([{"name": "a", "kind": "slow", "startup": 1},
                      {"name": "b", "kind": "slow"}])
    assert sched.calls["a"].startup is True and sched.calls["b"].startup is False
    assert sched.startup_names == ("a",)


def test_policy_precedence() -> None:
    calls = [slow("own", policy="every=1h"), slow("none")]
    sched, _ = build(calls, default_policy="idle=10s")
    assert {n: c.spec for n, c in sched.calls.items()} == {"own": "every=1h",
                                                           "none": "idle=10s"}
    # the operator's policy replaces the calls' own and the adapter's default
    sched, _ = build(calls, default_policy="idle=10s", policy="stale=1h")
    assert {n: c.spec for n, c in sched.calls.items()} == {"own": "stale=1h",
                                                           "none": "stale=1h"}
    # per-call overrides win over both
    sched, _ = build(calls, policy="stale=1h", policies={"own": "every=5s", "none": "manual"})
    assert {n: c.spec for n, c in sched.calls.items()} == {"own": "every=5s",
                                                           "none": "manual"}
    sched, _ = build(calls, policies={"none": "every=2s"})
    assert {n: c.spec for n, c in sched.calls.items()} == {"own": "every=1h",
                                                           "none": "every=2s"}
    # an empty override counts as none
    sched, _ = build(calls, policies={"own": ""})
    assert sched.calls["own"].spec == "every=1h"


def test_without_any_policy_a_slow_call_is_manual() -> None:
    sched, _ = build([slow("a")], default_policy=None)
    assert sched.calls["a"].spec == "manual"
    sched, _ = build([slow("a")], default_policy="")
    assert sched.calls["a"].spec == "manual"


def test_the_policy_object_comes_from_make_policy() -> None:
    made: dict[str, Fake] = {}

    def make(spec: str) -> Fake:
        made[spec] = Fake(name=spec)
        return made[spec]

    sched, _ = build([slow("a", policy="x")], make_policy=make)
    assert sched.calls["a"].policy is made["x"]


def test_a_policy_that_does_not_parse_is_an_error_line_and_the_call_is_left_out() -> None:
    def make(spec: str) -> Policy:
        if spec == "bad":
            raise ValueError("bad policy term 'bad'")
        return Fake()

    sched, errors = build([slow("a", policy="bad"), slow("b", policy="ok"),
                           slow("c", policy="bad")], make_policy=make)
    assert errors == ["slow call 'a': bad policy term 'bad'",
                      "slow call 'c': bad policy term 'bad'"]
    assert list(sched.calls) == ["b"]


def test_a_parse_error_from_parse_policy() -> None:
    sched, errors = build([slow("a", policy="idle=")])
    assert errors == ["slow call 'a': bad policy term 'idle=': expected idle=VALUE"]
    assert sched.calls == {}


def test_deadline_precedence() -> None:
    sched, _ = build([
        slow("own", deadline=5, policy="manual | deadline=7s"),
        slow("policy", policy="manual | deadline=7s"),
        slow("default", policy="manual"),
    ], default_deadline=99.0)
    assert {n: c.deadline for n, c in sched.calls.items()} == {
        "own": 5.0, "policy": 7.0, "default": 99.0}
    assert type(sched.calls["own"].deadline) is float


def test_a_policy_without_a_deadline_attribute_gets_the_default() -> None:
    sched, _ = build([slow("a")], make_policy=lambda spec: Fake(), default_deadline=12.5)
    assert sched.calls["a"].deadline == 12.5
    sched, _ = build([slow("a")], make_policy=lambda spec: Fake(deadline=3.0))
    assert sched.calls["a"].deadline == 3.0


def test_deadline_and_remaining_by_name() -> None:
    sched, _ = build([slow("a", deadline=30.0)])
    assert sched.deadline("a", 1.0) == 30.0
    assert sched.deadline("other", 1.0) == 1.0
    assert sched.remaining("a", 0.5) is None  # not measured yet
    sched.calls["a"].measure(2.0, None)
    assert sched.remaining("a", 0.5) == 1.5
    assert sched.remaining("a", 3.0) == -1.0
    assert sched.remaining("other", 0.5) is None


def test_startup_total() -> None:
    sched, _ = build([slow("a", startup=True), slow("b", startup=True), slow("c")])
    assert sched.startup_total([]) == 0.0
    assert sched.startup_total(["a"]) is None  # not measured
    sched.calls["a"].measure(1.5, None)
    assert sched.startup_total(["a"]) == 1.5
    assert sched.startup_total(["a", "b"]) is None  # one unmeasured spoils the sum
    assert sched.startup_total(["b", "a"]) is None
    sched.calls["b"].measure(2.25, None)
    assert sched.startup_total(["a", "b"]) == 3.75
    assert sched.startup_total(("b",)) == 2.25
    assert sched.startup_total(["a", "ghost"]) is None  # not a slow call
    assert sched.startup_total(["ghost"]) is None


def test_start_policies_and_on_call_reach_every_policy() -> None:
    log: list[tuple[str, str, float]] = []
    sched = schedule_of(a=Fake(log=log, name="a"), b=Fake(log=log, name="b"))
    sched.start_policies(3.0)
    sched.on_call(4.0)
    assert log == [("a", "start", 3.0), ("b", "start", 3.0),
                   ("a", "on_call", 4.0), ("b", "on_call", 4.0)]


def test_due_polls_every_policy_and_returns_name_and_reason() -> None:
    log: list[tuple[str, str, float]] = []
    sched = schedule_of(a=Fake("idle 10s", log=log, name="a"), b=Fake(log=log, name="b"))
    assert sched.due(7.0) == ("a", "idle 10s")
    assert log == [("a", "poll", 7.0), ("b", "poll", 7.0)]
    sched = schedule_of(a=Fake(None), b=Fake("every 1h"))
    assert sched.due(7.0) == ("b", "every 1h")
    assert schedule_of(a=Fake(None), b=Fake(None)).due(7.0) is None


def test_of_several_due_calls_the_one_that_waited_longest_goes_first() -> None:
    sched = schedule_of(a=Fake("ra"), b=Fake("rb"), c=Fake("rc"))
    sched.calls["a"].last_end = 50.0
    sched.calls["b"].last_end = 20.0
    sched.calls["c"].last_end = 30.0
    assert sched.due(100.0) == ("b", "rb")
    sched.calls["b"].last_end = 60.0
    assert sched.due(100.0) == ("c", "rc")
    sched.calls["c"].policy.reason = None  # type: ignore[attr-defined]
    assert sched.due(100.0) == ("a", "ra")


def test_never_run_calls_tie_and_go_by_name() -> None:
    sched = schedule_of(zeta=Fake("rz"), alpha=Fake("ra"), mid=Fake(None))
    assert sched.due(1.0) == ("alpha", "ra")
    sched = schedule_of(zeta=Fake("rz"), alpha=Fake(None))
    assert sched.due(1.0) == ("zeta", "rz")


def test_next_wakeup_is_the_soonest_of_the_policies() -> None:
    sched = schedule_of(a=Fake(wakeup=30.0), b=Fake(wakeup=None), c=Fake(wakeup=12.5),
                        d=Fake(wakeup=20.0))
    assert sched.next_wakeup(0.0) == 12.5
    assert schedule_of(a=Fake(wakeup=None)).next_wakeup(0.0) is None
    assert schedule_of(a=Fake(wakeup=0.0)).next_wakeup(5.0) == 0.0


def test_next_wakeup_asks_with_now() -> None:
    sched, _ = build([slow("a", policy="every=10s")])
    sched.start_policies(5.0)
    assert sched.next_wakeup(6.0) == 15.0


# =========================================================================== Rollout


def hosts(*specs: tuple[str, HostState] | str, killed: tuple[str, ...] = ()
          ) -> dict[str, HostRecord]:
    out: dict[str, HostRecord] = {}
    for i, spec in enumerate(specs):
        hid, state = (spec, HostState.READY) if isinstance(spec, str) else spec
        out[hid] = HostRecord(host_id=hid, slot=i, started=0.0, last_heartbeat=0.0,
                              state=state, killed="dying" if hid in killed else None)
    return out


def rollout(*pending: str, done: bool = False) -> Rollout:
    """A round over ``pending``; ``done``: past its canary (the first host already ran it
    fine: ``pending[0]`` is moved to ``done``)."""
    r = Rollout("reload", "manual", 1, 0.0, list(pending))
    if done:
        r.done.append(r.pending.pop(0))
    return r


def test_rollout_fields_and_defaults() -> None:
    r = Rollout("reload", "idle 10s", 4, 12.5, ["h1"])
    assert (r.name, r.reason, r.round, r.started, r.pending) == (
        "reload", "idle 10s", 4, 12.5, ["h1"])
    assert (r.active, r.done, r.failed) == ([], [], [])
    assert r.manual is False and r.halted is None  # a policy's round unless told otherwise
    other = Rollout("x", "y", 1, 0.0, [])
    other.active.append("a")
    other.done.append("b")
    other.failed.append("c")
    assert (r.active, r.done, r.failed) == ([], [], [])


def test_finished_when_nothing_pending_or_active() -> None:
    assert rollout().finished is True
    assert rollout("h1").finished is False
    r = Rollout("reload", "manual", 1, 0.0, [], active=["h1"])
    assert r.finished is False
    r = Rollout("reload", "manual", 1, 0.0, [], done=["h1"], failed=["h2"])
    assert r.finished is True


def test_a_single_host_is_taken_though_nobody_covers_for_it() -> None:
    r = rollout("h1")
    assert r.take_next(hosts("h1"), 1, 1) == ["h1"]
    assert (r.pending, r.active) == ([], ["h1"])
    r = rollout("h1")
    assert r.take_next(hosts("h1"), 1, 0) == ["h1"]  # stuck, still the only host


def test_with_two_hosts_one_is_taken_and_one_keeps_serving() -> None:
    r = rollout("h1", "h2")
    pool = hosts("h1", "h2")
    assert r.take_next(pool, 2, 2) == ["h1"]
    assert (r.pending, r.active) == (["h2"], ["h1"])
    assert r.take_next(pool, 2, 1) == []  # h2 is the last one in rotation
    assert (r.pending, r.active) == (["h2"], ["h1"])


def test_a_host_is_not_taken_when_no_other_would_stay_in_rotation() -> None:
    r = rollout("h1", "h2")
    assert r.take_next(hosts("h1", "h2"), 1, 1) == []  # the other one is stuck
    assert r.pending == ["h1", "h2"] and r.active == []
    r = rollout("h1")
    assert r.take_next(hosts("h1", ("h2", HostState.STARTING)), 1, 1) == []
    assert r.take_next(hosts("h1", ("h2", HostState.STARTING)), 1, 2) == ["h1"]


def test_a_stuck_host_behind_the_last_serving_one_is_still_taken() -> None:
    # h0 ran the canary; h1 and h2 serve, h3 is stuck (it serves nobody). h1 is taken; h2 is
    # then the last one in rotation and stays; taking h3 costs the rotation nothing, so the
    # pass must not stop at h2.
    r = rollout("h0", "h1", "h2", "h3", done=True)
    assert r.take_next(hosts("h1", "h2", "h3"), 3, 2, stuck=frozenset({"h3"})) == ["h1", "h3"]
    assert r.pending == ["h2"]


def test_max_maintaining_caps_the_active_hosts() -> None:
    pool = hosts("h1", "h2", "h3", "h4")
    r = rollout("h1", "h2", "h3", "h4")
    assert r.take_next(pool, 1, 4) == ["h1"]
    assert r.take_next(pool, 1, 3) == []  # h1 still active
    r = rollout("h1", "h2", "h3", "h4")
    assert r.take_next(pool, 2, 4) == ["h1"]  # the canary runs alone
    r.host_done("h1", True)
    assert r.take_next(pool, 2, 4) == ["h2", "h3"]  # then up to max_maintaining
    assert r.take_next(pool, 2, 2) == []
    assert r.pending == ["h4"] and r.active == ["h2", "h3"]


def test_the_canary_runs_alone_until_one_host_succeeded() -> None:
    pool = hosts("h1", "h2", "h3")
    r = rollout("h1", "h2", "h3")
    assert r.take_next(pool, 3, 3) == ["h1"]
    r.host_done("h1", False)  # a failed canary does not open the gate for more
    assert r.take_next(pool, 3, 3) == ["h2"]


def test_each_taken_host_leaves_the_rotation() -> None:
    r = rollout("h0", "h1", "h2", "h3", done=True)
    assert r.take_next(hosts("h1", "h2", "h3"), 3, 3) == ["h1", "h2"]  # h3 keeps serving
    r = rollout("h0", "h1", "h2", "h3", done=True)
    assert r.take_next(hosts("h1", "h2", "h3"), 5, 2) == ["h1"]


def test_hosts_not_ready_or_being_killed_are_skipped_but_stay_pending() -> None:
    pool = hosts(("h1", HostState.STARTUP), "h2", ("h3", HostState.MAINTAINING), "h4",
                 killed=("h2",))
    r = rollout("h1", "h2", "h3", "h4")
    assert r.take_next(pool, 1, 3) == ["h4"]
    assert r.pending == ["h1", "h2", "h3"] and r.active == ["h4"]


def test_pending_hosts_that_are_gone_are_dropped() -> None:
    r = rollout("h1", "gone", "h2")
    assert r.take_next(hosts("h1", "h2"), 1, 2) == ["h1"]
    assert r.pending == ["h2"]
    r = rollout("gone")
    assert r.take_next(hosts("h1"), 1, 1) == []
    assert r.pending == [] and r.finished is True


def test_take_next_counts_every_host_as_live() -> None:
    # a pool of one ready host and one starting one: "live" is 2, so the rule applies
    r = rollout("h1")
    assert r.take_next(hosts("h1", ("h2", HostState.STARTING)), 1, 1) == []


def test_host_done_moves_it_to_done_or_failed() -> None:
    r = rollout("h1", "h2", "h3")
    r.take_next(hosts("h1", "h2", "h3"), 2, 3)
    r.host_done("h1", True)
    r.take_next(hosts("h1", "h2", "h3"), 1, 3)
    assert (r.pending, r.active, r.done, r.failed) == (["h3"], ["h2"], ["h1"], [])
    r.host_done("h2", False)
    assert (r.pending, r.active, r.done, r.failed) == (["h3"], [], ["h1"], ["h2"])
    r.host_done("h3", False)  # died while pending
    assert (r.pending, r.active, r.done, r.failed) == ([], [], ["h1"], ["h2", "h3"])
    assert r.finished is True


@pytest.mark.parametrize("ok", [True, False])
def test_host_done_of_a_host_outside_the_round_does_not_count(ok: bool) -> None:
    """A host that already finished the round (or joined after it began) is not counted
    again when it dies: the round's record says what the round did."""
    r = rollout("h1")
    r.host_done("stranger", ok)
    assert (r.pending, r.active, r.done, r.failed) == (["h1"], [], [], [])
    r = Rollout("reload", "manual", 1, 0.0, [], done=["h1"])
    r.host_done("h1", False)
    assert (r.done, r.failed) == (["h1"], [])


@pytest.mark.parametrize("ok", [True, False])
def test_host_done_of_an_active_host(ok: bool) -> None:
    r = Rollout("reload", "manual", 1, 0.0, ["h2"], active=["h1"])
    r.host_done("h1", ok)
    assert r.active == [] and r.pending == ["h2"]
    assert (r.done, r.failed) == ((["h1"], []) if ok else ([], ["h1"]))


# =========================================================================== back-off after a halt


def test_a_new_slow_call_is_not_held() -> None:
    call = SlowCall("reload", Fake(), "manual", 30.0, False)
    assert (call.hold_until, call.halts) == (None, 0)


def test_hold_doubles_per_halt_up_to_the_cap() -> None:
    sched = schedule_of(a=Fake())
    assert sched.hold("a", 100.0, 30.0, 100.0) == 30.0
    assert (sched.calls["a"].halts, sched.calls["a"].hold_until) == (1, 130.0)
    assert sched.hold("a", 200.0, 30.0, 100.0) == 60.0
    assert sched.calls["a"].hold_until == 260.0
    assert sched.hold("a", 300.0, 30.0, 100.0) == 100.0  # 120, capped
    assert sched.hold("a", 400.0, 30.0, 100.0) == 100.0
    assert (sched.calls["a"].halts, sched.calls["a"].hold_until) == (4, 500.0)
    assert sched.hold("ghost", 1.0, 30.0, 100.0) == 0.0


def test_release_ends_the_back_off() -> None:
    sched = schedule_of(a=Fake())
    sched.hold("a", 100.0, 30.0, 100.0)
    sched.hold("a", 100.0, 30.0, 100.0)
    sched.release("a")
    assert (sched.calls["a"].halts, sched.calls["a"].hold_until) == (0, None)
    assert sched.hold("a", 200.0, 30.0, 100.0) == 30.0  # counts from the start again
    sched.release("ghost")  # no error


def test_a_held_call_is_not_due_until_the_hold_ends_but_is_still_polled() -> None:
    log: list[tuple[str, str, float]] = []
    sched = schedule_of(a=Fake("ra", log=log, name="a"), b=Fake(None, log=log, name="b"))
    sched.calls["a"].hold_until = 50.0
    assert sched.due(49.999) is None
    assert log == [("a", "poll", 49.999), ("b", "poll", 49.999)]
    assert sched.due(50.0) == ("a", "ra")


def test_a_held_call_leaves_the_others_due() -> None:
    sched = schedule_of(a=Fake("ra"), b=Fake("rb"))
    sched.calls["a"].hold_until = 50.0
    sched.calls["b"].last_end = 10.0  # a waited longer, but it is held
    assert sched.due(20.0) == ("b", "rb")


def test_next_wakeup_of_a_held_call_is_not_before_its_hold_ends() -> None:
    sched = schedule_of(a=Fake(wakeup=30.0))
    sched.calls["a"].hold_until = 50.0
    assert sched.next_wakeup(0.0) == 50.0
    sched.calls["a"].hold_until = 20.0
    assert sched.next_wakeup(0.0) == 30.0
    sched = schedule_of(a=Fake(wakeup=None))
    sched.calls["a"].hold_until = 50.0
    assert sched.next_wakeup(0.0) is None
    sched = schedule_of(a=Fake(wakeup=70.0), b=Fake(wakeup=40.0))
    sched.calls["b"].hold_until = 80.0
    assert sched.next_wakeup(0.0) == 70.0


def test_a_new_round_is_not_halted() -> None:
    assert rollout("h1").halted is None


# =========================================================================== canary, stuck hosts


def test_the_canary_limit_holds_until_a_host_is_done() -> None:
    pool = hosts("h1", "h2", "h3", "h4")
    r = rollout("h1", "h2", "h3", "h4")
    assert r.take_next(pool, 3, 4) == ["h1"]
    assert r.take_next(pool, 3, 3) == []  # the canary runs alone
    r.host_done("h1", True)
    assert r.take_next(pool, 3, 4) == ["h2", "h3", "h4"]  # h1 is back and serves


def test_a_stuck_host_may_be_taken_without_another_to_cover_for_it() -> None:
    pool = hosts("h1", "h2")
    r = rollout("h1", "h2")
    # h1 is stuck (serves nobody): taking it leaves h2 in rotation, in_rotation stays 1
    assert r.take_next(pool, 1, 1, frozenset({"h1"})) == ["h1"]
    r = rollout("h0", "h1", "h2", "h3", done=True)
    pool = hosts("h1", "h2", "h3")
    assert r.take_next(pool, 3, 1, frozenset({"h1", "h2"})) == ["h1", "h2"]
    assert r.pending == ["h3"]  # the last serving host stays


def test_a_serving_host_is_not_taken_when_only_stuck_ones_remain() -> None:
    # h1 is the last one serving: it stays; h2 is stuck, serves nobody, and is taken
    r = rollout("h1", "h2")
    assert r.take_next(hosts("h1", "h2"), 1, 1, frozenset({"h2"})) == ["h2"]
    assert r.pending == ["h1"]
    r = rollout("h1")
    assert r.take_next(hosts("h1", "h2"), 1, 1, frozenset({"h2"})) == []


def test_a_host_being_killed_is_not_live() -> None:
    # h2 is being killed: h1 is the only live host, so it is taken though nobody covers
    r = rollout("h1")
    assert r.take_next(hosts("h1", "h2", killed=("h2",)), 1, 1) == ["h1"]


# =========================================================================== next_due


def test_next_due_needs_started_policies() -> None:
    sched = schedule_of(a=Fake(wakeup=30.0))
    assert sched.started is False
    assert sched.next_due("a", 0.0) is None
    sched.start_policies(1.0)
    assert sched.started is True
    assert sched.next_due("a", 0.0) == 30.0
    assert sched.next_due("ghost", 0.0) is None


def test_next_due_of_a_policy_without_wakeup_and_of_a_held_call() -> None:
    sched = schedule_of(a=Fake(wakeup=None), b=Fake(wakeup=30.0))
    sched.start_policies(0.0)
    assert sched.next_due("a", 0.0) is None
    sched.calls["a"].hold_until = 50.0
    assert sched.next_due("a", 0.0) is None
    sched.calls["b"].hold_until = 50.0
    assert sched.next_due("b", 0.0) == 50.0
    sched.calls["b"].hold_until = 10.0
    assert sched.next_due("b", 0.0) == 30.0


def test_next_due_asks_the_policy_with_now() -> None:
    sched, _ = build([slow("a", policy="every=10s")])
    sched.start_policies(5.0)
    assert sched.next_due("a", 6.0) == 15.0


# =========================================================================== expected rest


def running(hs: dict[str, HostRecord], host_id: str, started: float) -> None:
    """``host_id`` runs the round's slow call since ``started``."""
    hs[host_id].state = HostState.MAINTAINING
    hs[host_id].slow = SlowRun(rid=9, name="reload", started=started, why="manual",
                               startup=False)


def test_the_rest_of_a_round_is_unknown_until_its_call_was_measured() -> None:
    r = Rollout("reload", "manual", 1, 0.0, ["h2"], active=["h1"])
    assert r.expected_rest(5.0, hosts("h1", "h2"), None, 1) is None


def test_the_rest_of_a_round_is_its_active_hosts_rest_plus_one_estimate_per_pending_host(
) -> None:
    hs = hosts("h1", "h2", "h3")
    running(hs, "h1", 10.0)
    r = Rollout("reload", "manual", 1, 9.0, ["h2", "h3"], active=["h1"])
    assert r.expected_rest(13.0, hs, 4.0, 1) == 1.0 + 4.0 + 4.0
    assert r.expected_rest(13.0, hs, 4.0, 2) == 1.0 + 4.0  # the two pending run together
    assert r.expected_rest(13.0, hs, 4.0, 5) == 1.0 + 4.0


def test_a_draining_host_counts_a_whole_estimate_and_the_longest_active_host_counts() -> None:
    hs = hosts("h1", ("h2", HostState.DRAINING), "h3")
    running(hs, "h1", 10.0)
    r = Rollout("reload", "manual", 1, 9.0, [], active=["h1", "h2"])
    assert r.expected_rest(11.0, hs, 4.0, 2) == 4.0  # h2 has not started: 4 > h1's 3
    r = Rollout("reload", "manual", 1, 9.0, [], active=["h1"])
    assert r.expected_rest(11.0, hs, 4.0, 2) == 3.0


def test_an_overdue_or_gone_active_host_counts_nothing_more() -> None:
    hs = hosts("h1", "h2")
    running(hs, "h1", 0.0)
    r = Rollout("reload", "manual", 1, 0.0, ["h2"], active=["h1"])
    assert r.expected_rest(10.0, hs, 4.0, 1) == 4.0  # h1 is 6 s late: only h2 is left
    r = Rollout("reload", "manual", 1, 0.0, [], active=["h1"])
    assert r.expected_rest(10.0, hs, 4.0, 1) == 0.0
    r = Rollout("reload", "manual", 1, 0.0, [], active=["gone"])
    assert r.expected_rest(10.0, hs, 4.0, 1) == 4.0  # unknown: as if it just began draining
    assert Rollout("reload", "manual", 1, 0.0, []).expected_rest(10.0, hs, 4.0, 1) == 0.0


@pytest.mark.parametrize(("share", "pause"), [(0.5, 2.0), (0.25, 6.0), (0.8, 0.5), (1.0, 0.0)])
def test_the_pause_after_a_manual_round(share: float, pause: float) -> None:
    budget = ManualBudget(share)
    assert budget.pause(2.0) == pytest.approx(pause, abs=1e-12)
    budget.charge(10.0, 12.0)
    assert budget.ready_at == pytest.approx(12.0 + pause, abs=1e-12)
