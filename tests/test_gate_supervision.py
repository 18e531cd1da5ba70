"""threadhost.gate.supervision on its own: the liveness verdict on one host (each rule, its
exact reason, both sides of every boundary, which rule wins), the wake-up time that verdict
gives, and the pool's restart budget. Pure: time is a number we pass."""

from __future__ import annotations

import pytest

from threadhost.gate.config import GateConfig
from threadhost.gate.pool import FastCall, HostRecord, SlowRun
from threadhost.gate.states import HostState
from threadhost.gate.supervision import RestartBudget, liveness_deadline, liveness_problem

CFG = GateConfig(heartbeat_timeout=3.0, fast_call_limit=20.0, startup_timeout=40.0,
                 shutdown_timeout=7.5, slow_call_deadline=999.0)
R = (b"c",)


def host(state: HostState = HostState.READY, *, started: float = 100.0,
         heartbeat: float = 100.0, calls: tuple[float, ...] = (),
         slow_started: float | None = None) -> HostRecord:
    rec = HostRecord(host_id="h1", slot=0, started=started, last_heartbeat=heartbeat,
                     state=state)
    for i, t in enumerate(calls):
        rec.calls[10 + i] = FastCall(R, i, f"call{i}", t)
    if slow_started is not None:
        rec.slow = SlowRun(1, "reload", slow_started, "manual", False)
    return rec


def problem(h: HostRecord, now: float, slow_deadline: float = 30.0,
            stop_deadline: float | None = None, config: GateConfig = CFG) -> str | None:
    return liveness_problem(h, now, config, slow_deadline, stop_deadline)


def deadline(h: HostRecord, slow_deadline: float = 30.0, stop_deadline: float | None = None,
             config: GateConfig = CFG) -> float:
    return liveness_deadline(h, config, slow_deadline, stop_deadline)


# =========================================================================== liveness_problem


def test_a_healthy_host_has_no_problem() -> None:
    assert problem(host(), 101.0) is None
    assert problem(host(calls=(100.0,)), 101.0) is None


def test_heartbeat_silence_boundary() -> None:
    h = host(heartbeat=100.0)
    assert problem(h, 103.0) is None  # exactly the timeout: still alive
    assert problem(h, 103.0001) == "no heartbeat for 3s"


def test_heartbeat_timeout_is_formatted_short() -> None:
    cfg = GateConfig(heartbeat_timeout=2.5)
    assert problem(host(heartbeat=10.0), 12.6, config=cfg) == "no heartbeat for 2.5s"


def test_hung_fast_call_boundary_judged_by_the_oldest_call() -> None:
    h = host(calls=(100.0, 115.0))
    h.last_heartbeat = 120.0
    assert problem(h, 120.0) is None  # exactly the limit
    assert problem(h, 120.0001) == "fast call 'call0' hung for more than 20s"


def test_a_spawned_host_in_a_call_is_not_judged_by_heartbeats() -> None:
    """Inside the library (a GIL-holding call silences heartbeats): only the call's limit."""
    h = host(heartbeat=100.0, calls=(100.0,))
    assert problem(h, 119.0) is None  # 19 s of silence, heartbeat timeout 3 s
    assert problem(h, 125.0) == "fast call 'call0' hung for more than 20s"


def test_an_attached_host_in_a_call_is_judged_by_the_separate_silence_timeout() -> None:
    cfg = GateConfig(spawn=False, heartbeat_timeout=3.0, fast_call_limit=60.0,
                     attached_busy_timeout=10.0)
    h = host(heartbeat=100.0, calls=(100.0,))
    assert liveness_problem(h, 110.0, cfg, 120.0, None) is None  # exactly the timeout
    assert liveness_problem(h, 110.0001, cfg, 120.0, None) == (
        "no heartbeat for 10s during a call (attached host)")
    assert liveness_deadline(h, cfg, 120.0, None) == 110.0
    h = host(heartbeat=100.0)  # idle: the ordinary heartbeat timeout
    assert liveness_problem(h, 103.0001, cfg, 120.0, None) == "no heartbeat for 3s"


def test_a_starting_host_is_judged_by_the_start_up_timeout_only() -> None:
    h = host(HostState.STARTING, started=100.0, heartbeat=0.0)
    assert problem(h, 139.0) is None  # silent since 0: a starting host sends no heartbeats
    assert problem(h, 140.0) is None  # exactly the start-up timeout
    assert problem(h, 140.0001) == "not ready within the start-up timeout (40s)"


def test_the_start_up_timeout_counts_from_the_hosts_start() -> None:
    h = host(HostState.STARTING, started=5.0, heartbeat=5.0)
    assert problem(h, 45.0) is None
    assert problem(h, 45.5) == "not ready within the start-up timeout (40s)"


@pytest.mark.parametrize("state", [HostState.STARTUP, HostState.READY, HostState.DRAINING,
                                   HostState.MAINTAINING])
def test_past_starting_the_start_up_timeout_no_longer_applies(state: HostState) -> None:
    h = host(state, started=0.0, heartbeat=1000.0)
    assert problem(h, 1001.0) is None


def test_a_host_running_a_slow_call_is_judged_by_its_deadline_only() -> None:
    h = host(HostState.MAINTAINING, heartbeat=100.0, calls=(100.0,), slow_started=110.0)
    # silent for 39 s and a fast call older than the limit: a GIL-holding call may do that
    assert problem(h, 139.0, slow_deadline=30.0) is None
    assert problem(h, 140.0, slow_deadline=30.0) is None  # exactly the deadline
    assert problem(h, 140.0001, slow_deadline=30.0) == (
        "slow call 'reload' ran past its deadline (30s)")
    assert problem(h, 140.0001, slow_deadline=45.5) is None
    assert problem(h, 155.6, slow_deadline=45.5) == (
        "slow call 'reload' ran past its deadline (45.5s)")


def test_a_start_up_slow_call_is_judged_the_same_way() -> None:
    h = host(HostState.STARTUP, heartbeat=0.0, slow_started=100.0)
    assert problem(h, 130.0) is None
    assert problem(h, 130.5) == "slow call 'reload' ran past its deadline (30s)"


def test_while_stopping_only_the_shutdown_deadline_counts() -> None:
    for h in (host(heartbeat=0.0, calls=(0.0,)),
              host(HostState.STARTING, started=0.0),
              host(HostState.MAINTAINING, slow_started=0.0),
              host(HostState.STOPPING, heartbeat=0.0)):
        assert problem(h, 219.999, stop_deadline=220.0) is None
        assert problem(h, 220.0, stop_deadline=220.0) == (  # at the deadline: too late
            "no goodbye within the shutdown timeout (7.5s)")
        assert problem(h, 300.0, stop_deadline=220.0) == (
            "no goodbye within the shutdown timeout (7.5s)")


def test_a_stop_deadline_of_zero_is_still_a_deadline() -> None:
    h = host(HostState.STARTING, started=0.0)
    assert problem(h, 0.0, stop_deadline=0.0) == (
        "no goodbye within the shutdown timeout (7.5s)")
    assert problem(h, -1.0, stop_deadline=0.0) is None


# =========================================================================== liveness_deadline


def test_deadline_of_a_quiet_host_is_its_heartbeat_timeout() -> None:
    assert deadline(host(heartbeat=100.0)) == 103.0


def test_deadline_of_a_spawned_host_with_calls_is_its_oldest_calls_limit() -> None:
    assert deadline(host(heartbeat=100.0, calls=(90.0,))) == 110.0  # not the heartbeat
    h = host(heartbeat=120.0, calls=(100.0, 110.0))
    assert deadline(h) == 120.0  # the oldest call reaches the fast-call limit first


def test_deadline_of_a_starting_host() -> None:
    assert deadline(host(HostState.STARTING, started=100.0, heartbeat=0.0)) == 140.0


def test_deadline_during_a_slow_call() -> None:
    h = host(HostState.MAINTAINING, heartbeat=0.0, calls=(0.0,), slow_started=110.0)
    assert deadline(h, slow_deadline=30.0) == 140.0
    assert deadline(h, slow_deadline=45.5) == 155.5


def test_deadline_while_stopping() -> None:
    for h in (host(), host(HostState.STARTING), host(HostState.MAINTAINING, slow_started=1.0)):
        assert deadline(h, stop_deadline=123.0) == 123.0
    assert deadline(host(), stop_deadline=0.0) == 0.0


@pytest.mark.parametrize("h", [
    host(heartbeat=100.0),
    host(heartbeat=120.0, calls=(100.0,)),
    host(HostState.STARTING, started=100.0),
    host(HostState.MAINTAINING, slow_started=100.0, heartbeat=0.0),
], ids=["heartbeat", "fast call", "starting", "slow call"])
def test_the_deadline_is_exactly_when_the_verdict_changes(h: HostRecord) -> None:
    due = deadline(h)
    assert problem(h, due) is None
    assert problem(h, due + 0.001) is not None


# =========================================================================== RestartBudget


def test_budget_allows_limit_failures_within_the_window() -> None:
    budget = RestartBudget(2, 10.0)
    assert (budget.limit, budget.window, budget.spent) == (2, 10.0, 0)
    assert budget.recent(0.0) == 0
    assert budget.allow(100.0) is True
    assert budget.allow(101.0) is True
    assert budget.spent == 2
    assert budget.recent(101.0) == 2
    assert budget.allow(102.0) is False
    assert budget.spent == 2  # a refused failure is not a restart
    assert budget.recent(102.0) == 2  # ...and not counted either


def test_budget_window_slides_and_an_old_failure_drops_at_exactly_the_window() -> None:
    budget = RestartBudget(2, 10.0)
    budget.allow(100.0)
    budget.allow(101.0)
    assert budget.recent(109.999) == 2
    assert budget.allow(109.999) is False
    assert budget.recent(110.0) == 1  # the failure at 100 is exactly 10 s old: out
    assert budget.allow(110.0) is True
    assert budget.spent == 3
    assert budget.recent(111.0) == 1
    assert budget.recent(120.0) == 0


def test_budget_of_one() -> None:
    budget = RestartBudget(1, 60.0)
    assert budget.recent(5.0) == 0
    assert budget.allow(5.0) is True
    assert budget.recent(5.0) == 1
    assert budget.allow(64.9) is False
    assert budget.allow(65.0) is True
    assert budget.spent == 2


def test_budget_of_zero_allows_nothing() -> None:
    budget = RestartBudget(0, 60.0)
    assert budget.allow(0.0) is False
    assert budget.allow(1000.0) is False
    assert budget.spent == 0


def test_spent_is_a_lifetime_count() -> None:
    budget = RestartBudget(1, 1.0)
    for t in (0.0, 2.0, 4.0, 6.0):
        assert budget.allow(t) is True
    assert budget.spent == 4
    assert budget.recent(6.5) == 1


def test_exhausted_reason() -> None:
    budget = RestartBudget(2, 60.0)
    budget.allow(10.0)
    budget.allow(20.0)
    assert budget.exhausted_reason(30.0, "host process exited (signal 9)") == (
        "3 host failures within 60s (limit 2); last: host process exited (signal 9)")
    assert budget.exhausted_reason(75.0, "x") == "2 host failures within 60s (limit 2); last: x"
    half = RestartBudget(0, 2.5)
    assert half.exhausted_reason(0.0, "y") == "1 host failures within 2.5s (limit 0); last: y"


# =========================================================================== attach mode, stopping

ATTACHED = GateConfig(spawn=False, heartbeat_timeout=3.0, shutdown_timeout=7.5)


def test_an_attached_host_silent_while_stopping_is_given_up() -> None:
    h = host(heartbeat=100.0)
    assert problem(h, 103.0, stop_deadline=200.0, config=ATTACHED) is None
    assert problem(h, 103.0001, stop_deadline=200.0, config=ATTACHED) == (
        "no heartbeat for 3s while stopping")
    # the shutdown deadline still comes first once it is reached
    assert problem(h, 200.0, stop_deadline=200.0, config=ATTACHED) == (
        "no goodbye within the shutdown timeout (7.5s)")


def test_a_spawned_host_silent_while_stopping_waits_for_the_deadline() -> None:
    h = host(heartbeat=100.0)
    assert problem(h, 150.0, stop_deadline=200.0) is None


def test_an_attached_host_running_a_slow_call_while_stopping_is_not_judged_by_silence() -> None:
    h = host(HostState.STOPPING, heartbeat=100.0, slow_started=100.0)
    assert problem(h, 150.0, stop_deadline=200.0, config=ATTACHED) is None
    assert problem(h, 200.0, stop_deadline=200.0, config=ATTACHED) == (
        "no goodbye within the shutdown timeout (7.5s)")


def test_deadline_of_an_attached_host_while_stopping() -> None:
    h = host(heartbeat=100.0)
    assert deadline(h, stop_deadline=200.0, config=ATTACHED) == 103.0
    assert deadline(h, stop_deadline=101.0, config=ATTACHED) == 101.0
    assert deadline(h, stop_deadline=200.0) == 200.0  # spawned: the deadline only
    busy = host(heartbeat=100.0, slow_started=100.0)
    assert deadline(busy, stop_deadline=200.0, config=ATTACHED) == 200.0


def test_a_host_waiting_for_its_slot_is_not_timed_out() -> None:
    h = host(HostState.STARTING, started=100.0, heartbeat=0.0)
    h.waiting = True
    assert problem(h, 10_000.0) is None
    h.waiting = False
    assert problem(h, 140.0001) == "not ready within the start-up timeout (40s)"


def test_an_attached_host_in_a_call_meets_the_sooner_of_its_two_limits() -> None:
    cfg = GateConfig(spawn=False, heartbeat_timeout=3.0, fast_call_limit=5.0,
                     attached_busy_timeout=10.0)
    h = host(heartbeat=100.0, calls=(100.0,))
    assert liveness_deadline(h, cfg, 120.0, None) == 105.0
    assert liveness_problem(h, 105.0001, cfg, 120.0, None) == (
        "fast call 'call0' hung for more than 5s")
    h = host(heartbeat=90.0, calls=(100.0,))
    assert liveness_deadline(h, cfg, 120.0, None) == 100.0
    assert liveness_problem(h, 100.0, cfg, 120.0, None) is None
    assert liveness_problem(h, 100.5, cfg, 120.0, None) == (
        "no heartbeat for 10s during a call (attached host)")
