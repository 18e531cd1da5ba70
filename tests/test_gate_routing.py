"""threadhost.gate.routing on its own: is_stuck and pick (rotation, least outstanding,
tie-breaks), FastCallStats (the derived route-away time) and refusal (busy / unavailable /
failed with their exact messages and retry_after). Pure: time is a number we pass."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from threadhost.gate import routing
from threadhost.gate.pool import FastCall, HostRecord, SlowRun
from threadhost.gate.routing import (
    ROUTE_AWAY_FACTOR,
    ROUTE_AWAY_FLOOR,
    ROUTE_AWAY_INITIAL,
    FastCallStats,
    is_stuck,
    pick,
    refusal,
)
from threadhost.gate.states import GateState, HostState

R = (b"c",)


def host(host_id: str = "h1", state: HostState = HostState.READY, *,
         calls: Iterable[float] = (), epoch: int = 0, last_used: int = 0,
         killed: str | None = None, method: str = "calc") -> HostRecord:
    rec = HostRecord(host_id=host_id, slot=0, started=0.0, last_heartbeat=0.0, state=state,
                     epoch=epoch, last_used=last_used, killed=killed)
    for i, started in enumerate(calls):
        rec.calls[100 + i] = FastCall(R, i, method, started)
    return rec


# =========================================================================== constants


def test_route_away_constants() -> None:
    assert (ROUTE_AWAY_FACTOR, ROUTE_AWAY_FLOOR, ROUTE_AWAY_INITIAL) == (10.0, 1.0, 5.0)
    assert (FastCallStats.SIZE, FastCallStats.MIN_SAMPLES, FastCallStats.EVERY) == (512, 20, 32)


# =========================================================================== is_stuck


def test_a_host_without_calls_is_never_stuck() -> None:
    assert is_stuck(host(), 1e9, 0.001) is False


def test_stuck_only_after_more_than_the_route_away_time() -> None:
    h = host(calls=[10.0])
    assert is_stuck(h, 11.0, 2.0) is False
    assert is_stuck(h, 12.0, 2.0) is False  # exactly the route-away time: not yet
    assert is_stuck(h, 12.0001, 2.0) is True


def test_stuck_is_judged_by_the_oldest_call() -> None:
    h = host(calls=[10.0, 11.9])
    assert is_stuck(h, 12.5, 2.0) is True
    del h.calls[100]
    assert is_stuck(h, 12.5, 2.0) is False


# =========================================================================== pick


def test_pick_from_nobody_is_none() -> None:
    assert pick([], 0.0, 5.0) is None


@pytest.mark.parametrize("state", [s for s in HostState if s is not HostState.READY])
def test_only_ready_hosts_are_in_rotation(state: HostState) -> None:
    assert pick([host(state=state)], 0.0, 5.0) is None
    ready = host("h2")
    assert pick([host("h1", state=state), ready], 0.0, 5.0) is ready


def test_a_host_being_killed_is_out_of_rotation() -> None:
    assert pick([host(killed="hung")], 0.0, 5.0) is None
    alive = host("h2", calls=[0.0, 0.0])
    assert pick([host("h1", killed="hung"), alive], 0.0, 5.0) is alive


def test_a_stuck_host_is_routed_around_only_after_the_route_away_time() -> None:
    stuck = host("h1", calls=[10.0])
    busy = host("h2", calls=[11.5, 11.6])
    assert pick([stuck, busy], 12.0, 2.0) is stuck  # exactly 2 s: still in rotation
    assert pick([stuck, busy], 12.0001, 2.0) is busy
    assert pick([stuck], 12.0001, 2.0) is None


def test_fewest_calls_in_flight_wins() -> None:
    a = host("h1", calls=[0.0, 0.0])
    b = host("h2", calls=[0.0])
    c = host("h3", calls=[0.0, 0.0, 0.0])
    assert pick([a, b, c], 0.1, 5.0) is b
    assert pick([c, a], 0.1, 5.0) is a


def test_fewer_calls_beat_a_newer_epoch_and_older_use() -> None:
    old_idle = host("h1", epoch=0, last_used=99)
    new_busy = host("h2", calls=[0.0], epoch=5, last_used=1)
    assert pick([new_busy, old_idle], 0.1, 5.0) is old_idle


def test_among_equals_the_newest_epoch_wins() -> None:
    old = host("h1", epoch=1, last_used=1)
    new = host("h2", epoch=2, last_used=50)
    assert pick([old, new], 0.0, 5.0) is new
    assert pick([new, old], 0.0, 5.0) is new


def test_then_the_least_recently_used_wins() -> None:
    recent = host("h1", last_used=9)
    earlier = host("h2", last_used=3)
    assert pick([recent, earlier], 0.0, 5.0) is earlier
    assert pick([earlier, recent], 0.0, 5.0) is earlier


def test_complete_ties_go_to_the_first_host() -> None:
    a, b, c = host("h1"), host("h2"), host("h3")
    assert pick([a, b, c], 0.0, 5.0) is a
    assert pick([c, b, a], 0.0, 5.0) is c


def test_pick_accepts_a_one_shot_iterable() -> None:
    b = host("h2")
    assert pick(iter([host("h1", calls=[0.0]), b]), 0.1, 5.0) is b


# =========================================================================== FastCallStats


def test_initial_route_away_time_capped_by_the_limit() -> None:
    assert FastCallStats(60.0).route_away_after == 5.0
    assert FastCallStats(3.0).route_away_after == 3.0
    assert FastCallStats(60.0, fixed=2.5).route_away_after == 2.5
    assert FastCallStats(2.0, fixed=7.0).route_away_after == 2.0
    stats = FastCallStats(60.0, fixed=2.5)
    assert (stats.limit, stats.fixed) == (60.0, 2.5)


def test_a_fixed_route_away_time_ignores_measurements() -> None:
    stats = FastCallStats(60.0, fixed=2.5)
    for _ in range(64):
        stats.record(0.001)
    assert stats.route_away_after == 2.5
    assert stats.p99() == 0.0  # nothing was kept


def test_p99_of_nothing_is_zero() -> None:
    assert FastCallStats(60.0).p99() == 0.0


def test_p99_of_one_sample_is_that_sample() -> None:
    stats = FastCallStats(60.0)
    stats.record(0.25)
    assert stats.p99() == 0.25


def test_p99_is_the_sample_at_index_int_099_n_of_the_sorted_ring() -> None:
    stats = FastCallStats(60.0)
    for i in reversed(range(200)):  # 0.0 .. 1.99, recorded in descending order
        stats.record(i / 100)
    assert stats.p99() == 1.98  # sorted[int(0.99 * 200)] = sorted[198], not the maximum
    small = FastCallStats(60.0)
    for i in range(50):
        small.record(float(i))
    assert small.p99() == 49.0  # sorted[int(49.5)] = sorted[49]


def test_the_derived_time_is_first_computed_at_min_samples() -> None:
    stats = FastCallStats(60.0)
    for _ in range(19):
        stats.record(0.2)
    assert stats.route_away_after == 5.0  # 19 samples: still the initial time
    stats.record(0.2)
    assert stats.route_away_after == 2.0  # the 20th: 10 x 0.2


def test_the_derived_time_is_recomputed_every_32_samples_only() -> None:
    stats = FastCallStats(60.0)
    for _ in range(20):
        stats.record(0.2)
    assert stats.route_away_after == 2.0
    for _ in range(11):  # samples 21..31 (the p99 would now be 0.5)
        stats.record(0.5)
        assert stats.route_away_after == 2.0
    stats.record(0.5)  # the 32nd
    assert stats.route_away_after == 5.0
    for _ in range(31):  # 33..63
        stats.record(0.7)
        assert stats.route_away_after == 5.0
    stats.record(0.7)  # the 64th
    assert stats.route_away_after == 7.0


def test_the_derived_time_is_floored_and_capped() -> None:
    low = FastCallStats(60.0)
    for _ in range(20):
        low.record(0.01)
    assert low.route_away_after == 1.0  # 10 x 0.01 = 0.1, floored at 1 s
    high = FastCallStats(3.0)
    for _ in range(20):
        high.record(0.5)
    assert high.route_away_after == 3.0  # 10 x 0.5 = 5, capped at the limit
    exact = FastCallStats(60.0)
    for _ in range(20):
        exact.record(0.125)
    assert exact.route_away_after == 1.25


def test_the_ring_keeps_the_last_512_samples() -> None:
    stats = FastCallStats(60.0)
    for _ in range(512):
        stats.record(100.0)
    for _ in range(507):
        stats.record(0.001)
    # 5 old samples left of 512: index int(0.99 * 512) = 506 is a new one
    assert stats.p99() == 0.001
    for _ in range(5):
        stats.record(0.001)
    assert max(stats._ring) == 0.001 and len(stats._ring) == 512


def test_the_ring_overwrites_oldest_first() -> None:
    stats = FastCallStats(60.0)
    for _ in range(7):  # positions 0..6: large
        stats.record(1000.0)
    for _ in range(505):  # positions 7..511: small
        stats.record(1.0)
    assert stats.p99() == 1000.0  # 7 large at the top of 512: index 506 is large
    stats.record(0.5)  # overwrites position 0
    stats.record(0.5)  # overwrites position 1
    assert stats.p99() == 1.0  # 5 large left: index 506 is small
    assert sorted(stats._ring)[-5:] == [1000.0] * 5


def test_the_first_overwrite_replaces_the_first_sample() -> None:
    stats = FastCallStats(60.0)
    stats.record(1000.0)  # position 0
    for _ in range(506):  # positions 1..506
        stats.record(1.0)
    for _ in range(5):  # positions 507..511
        stats.record(1000.0)
    assert stats.p99() == 1000.0  # 6 large: index 506 is large
    stats.record(0.5)  # the 513th replaces the 1st (large), not the 2nd (small)
    assert stats.p99() == 1.0


# =========================================================================== refusal


def refuse(hosts: list[HostRecord], state: GateState = GateState.READY, *, now: float = 10.0,
           route_away_after: float = 2.0,
           expected: dict[str, float | None] | Callable[[HostRecord], float | None] | None = None,
           failed_reason: str | None = "boom", restart_reason: str | None = None,
           min_retry_after: float = 0.05) -> tuple[str, str, float | None]:
    if callable(expected):
        free = expected
    else:
        table = expected or {}

        def free(h: HostRecord) -> float | None:
            return table.get(h.host_id)

    return refusal(now, hosts, state, route_away_after=route_away_after, expected_free=free,
                   failed_reason=failed_reason, restart_reason=restart_reason,
                   min_retry_after=min_retry_after)


def slow_host(host_id: str = "h1", name: str = "reload", started: float = 8.5, *,
              state: HostState = HostState.MAINTAINING, killed: str | None = None
              ) -> HostRecord:
    rec = host(host_id, state, killed=killed)
    rec.slow = SlowRun(1, name, started, "manual", False)
    return rec


def test_failed_wins_over_everything() -> None:
    assert refuse([slow_host()], GateState.FAILED, failed_reason="3 host failures",
                  expected={"h1": 1.0}) == ("failed", "service failed: 3 host failures", None)
    assert refuse([], GateState.FAILED, failed_reason=None) == (
        "failed", "service failed: None", None)


@pytest.mark.parametrize("state", [GateState.STOPPING, GateState.STOPPED])
def test_shutting_down_is_unavailable_without_retry(state: GateState) -> None:
    assert refuse([slow_host()], state, expected={"h1": 1.0}) == (
        "unavailable", "unavailable: the service is shutting down", None)


def test_a_slow_call_makes_it_busy_naming_the_call_and_its_time() -> None:
    assert refuse([slow_host(started=8.5)], now=10.0, expected={"h1": 0.75}) == (
        "busy", "busy: slow call 'reload' running for 1.5s", 0.75)


def test_a_draining_host_makes_it_busy() -> None:
    assert refuse([host(state=HostState.DRAINING)], GateState.MAINTAINING) == (
        "busy", "busy: a maintenance slow call is about to start", None)


def test_a_stuck_ready_host_makes_it_busy_naming_the_fast_call() -> None:
    h = host(calls=[7.0], method="crunch")
    assert refuse([h], now=10.0, route_away_after=2.0) == (
        "busy", "busy: fast call 'crunch' running for 3.0s", None)
    assert refuse([h], now=9.0, route_away_after=2.0) == (  # exactly 2 s: not stuck
        "unavailable", "unavailable: restarting the host", None)


@pytest.mark.parametrize("state", [HostState.STOPPING, HostState.STARTUP, HostState.STARTING])
def test_only_a_ready_host_counts_as_stuck(state: HostState) -> None:
    h = host(state=state, calls=[0.0])
    assert refuse([h], now=100.0) == ("unavailable", "unavailable: restarting the host", None)


def test_the_slow_call_is_named_before_the_host_state() -> None:
    h = slow_host(state=HostState.DRAINING)  # draining and running: the call is news
    assert refuse([h])[1] == "busy: slow call 'reload' running for 1.5s"
    ready = slow_host(state=HostState.READY)
    ready.calls[5] = FastCall(R, 5, "calc", 0.0)
    assert refuse([ready])[1] == "busy: slow call 'reload' running for 1.5s"


def test_the_first_busy_host_names_the_reason() -> None:
    a = host("h1", state=HostState.DRAINING)
    b = slow_host("h2")
    assert refuse([a, b])[1] == "busy: a maintenance slow call is about to start"
    assert refuse([b, a])[1] == "busy: slow call 'reload' running for 1.5s"
    c = host("h3")  # a free host in between does not reset the reason
    assert refuse([b, c, a])[1] == "busy: slow call 'reload' running for 1.5s"


def test_hosts_being_killed_are_left_out() -> None:
    dead = slow_host("h1", killed="hung")
    seen: list[str] = []

    def free(h: HostRecord) -> float | None:
        seen.append(h.host_id)
        return 4.0

    assert refuse([dead], expected=free) == (
        "unavailable", "unavailable: restarting the host", None)
    assert seen == []
    live = host("h2", state=HostState.STARTING)
    assert refuse([dead, live], expected=free) == (
        "unavailable", "unavailable: restarting the host", 4.0)
    assert seen == ["h2"]


def test_retry_after_is_the_soonest_expected_free_time() -> None:
    hosts = [slow_host("h1"), host("h2", state=HostState.STARTING),
             host("h3", state=HostState.STARTING), host("h4", state=HostState.STARTING)]
    assert refuse(hosts, expected={"h1": 3.0, "h2": None, "h3": 1.25, "h4": 2.0})[2] == 1.25
    assert refuse(hosts, expected={"h1": None, "h2": 2.0, "h3": None, "h4": 0.5})[2] == 0.5
    assert refuse(hosts, expected={"h1": 0.5, "h2": 0.5, "h3": 2.0})[2] == 0.5
    assert refuse(hosts, expected={})[2] is None


def test_retry_after_is_never_below_the_minimum() -> None:
    h = [host(state=HostState.STARTING)]
    assert refuse(h, expected={"h1": 0.01}, min_retry_after=0.05)[2] == 0.05
    assert refuse(h, expected={"h1": -3.0}, min_retry_after=0.05)[2] == 0.05  # overdue
    assert refuse(h, expected={"h1": 0.05}, min_retry_after=0.05)[2] == 0.05
    assert refuse(h, expected={"h1": 0.06}, min_retry_after=0.05)[2] == 0.06
    assert refuse(h, expected={"h1": 0.2}, min_retry_after=1.5)[2] == 1.5


def test_retry_after_is_rounded_to_milliseconds() -> None:
    h = [host(state=HostState.STARTING)]
    assert refuse(h, expected={"h1": 1.23456})[2] == 1.235
    assert refuse(h, expected={"h1": 2.0004})[2] == 2.0
    assert refuse(h, expected={"h1": 0.01}, min_retry_after=0.04567)[2] == 0.046


def test_before_the_first_start_only_starting_hosts_mean_busy_starting() -> None:
    starting = [host("h1", state=HostState.STARTING), host("h2", state=HostState.STARTING)]
    assert refuse(starting, GateState.STARTING, expected={"h2": 2.5}) == (
        "busy", "busy: the service is starting", 2.5)
    assert refuse([], GateState.STARTING) == ("busy", "busy: the service is starting", None)


def test_a_start_up_slow_call_names_itself_even_while_starting() -> None:
    h = slow_host(name="read_config", state=HostState.STARTUP)
    assert refuse([h], GateState.STARTUP, expected={"h1": 1.0}) == (
        "busy", "busy: slow call 'read_config' running for 1.5s", 1.0)
    assert refuse([h], GateState.STARTING)[1] == "busy: slow call 'read_config' running for 1.5s"


@pytest.mark.parametrize("state", [GateState.READY, GateState.MAINTAINING, GateState.STARTUP,
                                   GateState.RESTARTING])
def test_otherwise_unavailable_while_hosts_are_replaced(state: GateState) -> None:
    hosts = [host(state=HostState.STARTING)]
    assert refuse(hosts, state, restart_reason="host process exited (signal 9)",
                  expected={"h1": 0.8}) == (
        "unavailable", "unavailable: restarting the host (host process exited (signal 9))", 0.8)
    assert refuse(hosts, state, restart_reason=None) == (
        "unavailable", "unavailable: restarting the host", None)
    assert refuse(hosts, state, restart_reason="") == (
        "unavailable", "unavailable: restarting the host", None)


def test_a_free_ready_host_is_not_a_reason() -> None:
    assert refuse([host(calls=[9.5])], now=10.0) == (
        "unavailable", "unavailable: restarting the host", None)


def test_refusal_accepts_a_one_shot_iterable() -> None:
    def free(h: HostRecord) -> float | None:
        return 1.0

    what = refusal(10.0, iter([slow_host()]), GateState.MAINTAINING, route_away_after=2.0,
                   expected_free=free, failed_reason=None, restart_reason=None,
                   min_retry_after=0.05)
    assert what == ("busy", "busy: slow call 'reload' running for 1.5s", 1.0)


def test_module_exports() -> None:
    exported: Any = routing.__all__
    assert sorted(exported) == sorted(["ROUTE_AWAY_FACTOR", "ROUTE_AWAY_FLOOR",
                                       "ROUTE_AWAY_INITIAL", "FastCallStats", "Refusal",
                                       "is_stuck", "pick", "refusal"])
    assert routing.Refusal == tuple[str, str, float | None]


def test_among_equals_the_host_whose_oldest_call_started_last_wins() -> None:
    early = host("h1", calls=[5.0], last_used=1)
    late = host("h2", calls=[7.0], last_used=9)
    assert pick([early, late], 8.0, 5.0) is late
    assert pick([late, early], 8.0, 5.0) is late
    # a newer epoch still comes first
    newer = host("h3", calls=[5.0], epoch=1, last_used=20)
    assert pick([early, late, newer], 8.0, 5.0) is newer
    # same start: least recently used
    a = host("h4", calls=[6.0], last_used=5)
    b = host("h5", calls=[6.0], last_used=4)
    assert pick([a, b], 8.0, 5.0) is b
