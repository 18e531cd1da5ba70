"""The gate's small parts on their own: pool records (threadhost.gate.pool), measured
durations (measure), attach-mode adoption (attach), status views (report), the tunables
(config) and the actions (actions). Pure: no sockets, no clock; time is a number."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import pytest

from threadhost.gate import actions as actions_module
from threadhost.gate.actions import KillHost, Log, StartHost, Stopped, ToClient, ToHost
from threadhost.gate.attach import Nudges, adoption_refused
from threadhost.gate.config import GateConfig
from threadhost.gate.maintenance import Rollout, SlowCall
from threadhost.gate.measure import EWMA_WEIGHT, Estimate
from threadhost.gate.poison import Quarantine, call_key
from threadhost.gate.pool import FastCall, HostRecord, Pool, SlowRun
from threadhost.gate.report import (
    WAITING_NOTE,
    ago,
    halted_view,
    host_view,
    rollout_view,
    running_view,
    slow_calls_view,
)
from threadhost.gate.states import HostState
from threadhost.policy import parse_policy

R = (b"client",)


def record(host_id: str = "h1", slot: int = 0, started: float = 0.0, **kw: Any) -> HostRecord:
    return HostRecord(host_id=host_id, slot=slot, started=started, last_heartbeat=started, **kw)


def fast(started: float, method: str = "calc", client_id: int = 1) -> FastCall:
    return FastCall(R, client_id, method, started)


# =========================================================================== pool


def test_host_record_defaults() -> None:
    host = HostRecord(host_id="h7", slot=3, started=1.5, last_heartbeat=2.5)
    assert (host.host_id, host.slot, host.started, host.last_heartbeat) == ("h7", 3, 1.5, 2.5)
    assert host.state is HostState.STARTING
    assert host.pid is None
    assert host.calls == {} and type(host.calls) is dict
    assert host.slow is None
    assert host.startup_queue == deque() and type(host.startup_queue) is deque
    assert host.generation == 0
    assert host.epoch == 0
    assert host.last_used == 0
    assert host.killed is None
    assert host.last_maintenance is None


def test_host_record_fields_in_order() -> None:
    assert [f.name for f in dataclasses.fields(HostRecord)] == [
        "host_id", "slot", "started", "last_heartbeat", "state", "pid", "calls", "slow",
        "startup_queue", "generation", "epoch", "last_used", "killed", "last_maintenance",
        "left", "waiting"]
    assert [f.name for f in dataclasses.fields(FastCall)] == [
        "route", "client_id", "method", "started", "args", "kwargs"]
    assert [f.name for f in dataclasses.fields(SlowRun)] == [
        "rid", "name", "started", "why", "startup"]


def test_host_records_do_not_share_their_containers() -> None:
    a, b = record("a"), record("b")
    a.calls[1] = fast(0.0)
    a.startup_queue.append("x")
    assert b.calls == {} and b.startup_queue == deque()


@pytest.mark.parametrize("obj", [
    fast(0.0),
    SlowRun(1, "reload", 0.0, "manual", False),
    HostRecord(host_id="h1", slot=0, started=0.0, last_heartbeat=0.0),
], ids=["FastCall", "SlowRun", "HostRecord"])
def test_pool_records_have_slots(obj: Any) -> None:
    assert not hasattr(obj, "__dict__")
    with pytest.raises(AttributeError):
        obj.not_a_field = 1


def test_oldest_call_is_the_first_inserted() -> None:
    host = record()
    assert host.oldest_call() is None
    first, second = fast(5.0, "a"), fast(1.0, "b")
    host.calls[9] = first
    host.calls[3] = second  # a lower id and an earlier start do not make it older
    assert host.oldest_call() is first
    del host.calls[9]
    assert host.oldest_call() is second


def test_move_goes_through_the_host_table() -> None:
    host = record()
    host.move(HostState.STARTUP)
    assert host.state is HostState.STARTUP
    host.move(HostState.READY)
    host.move(HostState.DRAINING)
    host.move(HostState.MAINTAINING)
    host.move(HostState.READY)
    assert host.state is HostState.READY


def test_pool_starts_empty_with_one_restart_counter_per_slot() -> None:
    pool = Pool(3)
    assert pool.size == 3
    assert pool.hosts == {}
    assert pool.restarts == [0, 0, 0]
    assert len(pool) == 0 and list(pool) == []
    unlimited = Pool(None)
    assert unlimited.size is None and unlimited.restarts == []


def test_pool_ids_count_up_from_h1() -> None:
    pool = Pool(1)
    assert [pool.next_id() for _ in range(3)] == ["h1", "h2", "h3"]
    assert Pool(5).next_id() == "h1"  # each pool counts on its own


def test_pool_add_get_iterate_remove() -> None:
    pool = Pool(2)
    a = pool.add("h1", 0, 4.0)
    assert (a.host_id, a.slot, a.started, a.last_heartbeat) == ("h1", 0, 4.0, 4.0)
    assert a.state is HostState.STARTING
    b = pool.add("h2", 1, 5.0)
    assert pool.get("h1") is a and pool.get("h2") is b and pool.get("h3") is None
    assert list(pool) == [a, b] and len(pool) == 2
    assert pool.hosts == {"h1": a, "h2": b}
    assert pool.remove("h1") is a
    assert pool.remove("h1") is None
    assert list(pool) == [b] and len(pool) == 1 and pool.get("h1") is None


def test_free_slot_is_the_lowest_free_one_and_none_when_full() -> None:
    pool = Pool(3)
    assert pool.free_slot() == 0
    pool.add("h1", 0, 0.0)
    assert pool.free_slot() == 1
    pool.add("h3", 2, 0.0)
    assert pool.free_slot() == 1
    pool.add("h2", 1, 0.0)
    assert pool.free_slot() is None
    pool.remove("h3")
    assert pool.free_slot() == 2
    pool.remove("h1")
    assert pool.free_slot() == 0


def test_free_slot_of_a_pool_of_one() -> None:
    pool = Pool(1)
    assert pool.free_slot() == 0
    pool.add("h1", 0, 0.0)
    assert pool.free_slot() is None


def test_unlimited_pool_always_has_the_next_slot() -> None:
    pool = Pool(None)
    assert pool.free_slot() == 0
    pool.add("a", 0, 0.0)
    assert pool.restarts == [0]
    assert pool.free_slot() == 1
    pool.add("b", 1, 0.0)
    assert pool.free_slot() == 2
    pool.remove("a")
    assert pool.free_slot() == 0


def test_add_grows_the_restart_counters_to_the_slot() -> None:
    pool = Pool(None)
    pool.add("a", 2, 0.0)
    assert pool.restarts == [0, 0, 0]
    pool = Pool(1)
    pool.add("a", 0, 0.0)
    assert pool.restarts == [0]


def test_a_replacement_in_the_same_slot_counts_a_restart_of_that_slot() -> None:
    pool = Pool(2)
    pool.add("h1", 0, 0.0)
    pool.add("h2", 1, 0.0)
    assert pool.restarts == [0, 0]
    pool.remove("h1")
    pool.add("h3", 0, 1.0)
    assert pool.restarts == [1, 0]
    pool.remove("h3")
    pool.add("h4", 0, 2.0)
    assert pool.restarts == [2, 0]
    pool.remove("h2")
    pool.add("h5", 1, 3.0)
    assert pool.restarts == [2, 1]


def test_in_state_lists_the_hosts_in_any_of_the_states() -> None:
    pool = Pool(3)
    a, b, c = (pool.add(f"h{i}", i, 0.0) for i in range(3))
    b.state = HostState.READY
    c.state = HostState.DRAINING
    assert pool.in_state(HostState.READY) == [b]
    assert pool.in_state(HostState.STARTING, HostState.DRAINING) == [a, c]
    assert pool.in_state(HostState.MAINTAINING) == []
    assert pool.in_state() == []


# =========================================================================== measure


def test_estimate_is_unknown_until_the_first_sample() -> None:
    est = Estimate()
    assert est.value is None and est.samples == 0
    assert est.remaining(0.0) is None and est.remaining(3.0) is None


def test_estimate_is_an_ewma_weighing_the_newest_sample_half() -> None:
    assert EWMA_WEIGHT == 0.5
    est = Estimate()
    est.add(4.0)
    assert est.value == 4.0 and est.samples == 1
    est.add(2.0)
    assert est.value == 3.0 and est.samples == 2
    est.add(6.0)
    assert est.value == 4.5 and est.samples == 3
    est.add(0.5)
    assert est.value == 2.5 and est.samples == 4


def test_estimate_remaining_may_be_negative() -> None:
    est = Estimate()
    est.add(2.0)
    assert est.remaining(0.0) == 2.0
    assert est.remaining(0.5) == 1.5
    assert est.remaining(3.0) == -1.0


def test_estimate_has_slots() -> None:
    est = Estimate()
    with pytest.raises(AttributeError):
        est.other = 1  # type: ignore[attr-defined]


# =========================================================================== attach


def refused(**kw: Any) -> str | None:
    args: dict[str, Any] = {"closing": None, "pool_fingerprint": "", "fingerprint": "fp",
                            "adapter": {}, "attached": 0, "room": True, "limit": 2}
    args.update(kw)
    return adoption_refused(**args)


def test_the_first_host_is_adopted() -> None:
    assert refused() is None
    assert refused(adapter={"replicable": False}) is None  # nobody attached yet


@pytest.mark.parametrize("closing", ["stopping", "failed", "stopped"])
def test_nobody_is_adopted_while_the_service_closes(closing: str) -> None:
    assert refused(closing=closing) == f"the service is {closing}"
    # closing wins over every other reason
    assert refused(closing=closing, pool_fingerprint="a", fingerprint="b", attached=1,
                   room=False) == f"the service is {closing}"


def test_empty_closing_text_still_closes() -> None:
    assert refused(closing="") == "the service is "


def test_another_fingerprint_is_refused_with_both_shortened() -> None:
    assert refused(pool_fingerprint="0123456789abcdef", fingerprint="fedcba9876543210") == (
        "adapter fingerprint fedcba987654… differs from the pool's 0123456789ab…")
    assert refused(pool_fingerprint="poolfp", fingerprint="fp") == (
        "adapter fingerprint fp… differs from the pool's poolfp…")
    # it wins over replicable and room
    assert refused(pool_fingerprint="a", fingerprint="b", attached=1, room=False) == (
        "adapter fingerprint b… differs from the pool's a…")


def test_the_same_fingerprint_is_adopted_and_no_pool_fingerprint_accepts_any() -> None:
    assert refused(pool_fingerprint="fp", fingerprint="fp", attached=1,
                   adapter={"replicable": True}) is None
    assert refused(pool_fingerprint="", fingerprint="anything") is None


def test_a_second_host_of_a_non_replicable_adapter_is_refused() -> None:
    text = "the adapter is not replicable and a host is already attached"
    assert refused(attached=1, adapter={"replicable": False}) == text
    assert refused(attached=1, adapter={}) == text  # not declared: not replicable
    assert refused(attached=3, adapter={"replicable": False}, room=False) == text
    assert refused(attached=1, adapter={"replicable": True}) is None


def test_no_room_is_refused_naming_the_limit() -> None:
    assert refused(room=False) == "the pool is full (2 hosts)"
    assert refused(room=False, limit=5, attached=5, adapter={"replicable": True}) == (
        "the pool is full (5 hosts)")


def test_nudges_once_per_interval_per_host() -> None:
    nudges = Nudges(0.5)
    assert nudges.interval == 0.5
    assert nudges.due("a", 10.0) is True
    assert nudges.due("a", 10.0) is False
    assert nudges.due("a", 10.25) is False
    assert nudges.due("b", 10.25) is True  # each host on its own
    assert nudges.due("a", 10.4999) is False
    assert nudges.due("a", 10.5) is True  # exactly one interval later
    assert nudges.due("a", 10.75) is False  # counted from the last answer, not the first
    assert nudges.due("a", 11.0) is True


def test_a_refused_nudge_does_not_restart_the_interval() -> None:
    nudges = Nudges(1.0)
    assert nudges.due("a", 5.0) is True
    assert nudges.due("a", 5.9) is False
    assert nudges.due("a", 6.0) is True


def test_forget_lets_a_host_be_answered_at_once() -> None:
    nudges = Nudges(10.0)
    assert nudges.due("a", 1.0) is True
    assert nudges.due("b", 1.0) is True
    nudges.forget("a")
    nudges.forget("unknown")  # no error
    assert nudges.due("a", 1.5) is True
    assert nudges.due("b", 1.5) is False


# =========================================================================== report


def test_ago_turns_the_end_time_into_seconds_ago() -> None:
    assert ago(None, 5.0) is None
    rec = {"call": "reload", "ok": True, "ended_ago_from": 2.0}
    assert ago(rec, 12.12345) == {"call": "reload", "ok": True, "ended_ago": 10.123}
    assert rec == {"call": "reload", "ok": True, "ended_ago_from": 2.0}  # not changed
    assert ago({"ended_ago_from": 3.0}, 3.0) == {"ended_ago": 0.0}


def test_host_view_row() -> None:
    host = record("h2", slot=1, pid=77, state=HostState.READY, generation=3)
    host.calls[5] = fast(9.0)
    host.last_maintenance = {"call": "reload", "ended_ago_from": 1.0}
    assert host_view(host, 10.0, 5.0, 4) == {
        "id": "h2", "pid": 77, "state": "ready", "generation": 3, "in_flight": 1,
        "restarts": 4, "last_maintenance": {"call": "reload", "ended_ago": 9.0}}


def test_host_view_of_a_fresh_host() -> None:
    assert host_view(record("h1"), 1.0, 5.0, 0) == {
        "id": "h1", "pid": None, "state": "starting", "generation": 0, "in_flight": 0,
        "restarts": 0, "last_maintenance": None}


def test_a_ready_host_whose_fast_call_overran_is_shown_stuck() -> None:
    host = record(state=HostState.READY)
    host.calls[1] = fast(10.0)
    assert host_view(host, 12.0, 2.0, 0)["state"] == "ready"  # exactly the limit: not yet
    assert host_view(host, 12.001, 2.0, 0)["state"] == "stuck"
    for state in (HostState.DRAINING, HostState.STOPPING):  # only a ready host is "stuck"
        host.state = state
        assert host_view(host, 100.0, 2.0, 0)["state"] == state.value


def test_running_view() -> None:
    host = record("h3", state=HostState.MAINTAINING)
    calls = {"reload": SlowCall("reload", parse_policy("manual"), "manual", 30.0, False)}
    assert running_view(host, 5.0, calls) is None
    host.slow = SlowRun(4, "reload", 2.0, "idle 10s", False)
    assert running_view(host, 3.23456, calls) == {
        "call": "reload", "reason": "idle 10s", "host": "h3", "elapsed": 1.235,
        "expected": None}
    calls["reload"].estimate.add(1.23456)
    assert running_view(host, 4.0, calls) == {
        "call": "reload", "reason": "idle 10s", "host": "h3", "elapsed": 2.0,
        "expected": 1.235}
    assert running_view(host, 4.0, {})["expected"] is None  # type: ignore[index]


def test_rollout_view_copies_the_lists() -> None:
    rollout = Rollout("reload", "manual", 3, 10.0, ["h3"], active=["h2"], done=["h1"],
                      failed=["h4"])
    view = rollout_view(rollout, 12.34567)
    assert view == {"state": "running", "call": "reload", "reason": "manual", "round": 3,
                    "done": ["h1"],
                    "failed": ["h4"], "active": ["h2"], "pending": ["h3"], "elapsed": 2.346}
    for key in ("done", "failed", "active", "pending"):
        assert view[key] is not getattr(rollout, key)


def test_slow_calls_view() -> None:
    a = SlowCall("a", parse_policy("manual"), "manual", 30.0, True)
    b = SlowCall("b", parse_policy("every=1h"), "every=1h", 120.0, False)
    a.measure(1.23456, None)
    a.measure(2.0, "boom")
    assert slow_calls_view({"a": a, "b": b}) == {
        "a": {"policy": "manual", "runs": 2, "failures": 1, "estimate": 1.617,
              "deadline": 30.0, "last_error": "boom"},
        "b": {"policy": "every=1h", "runs": 0, "failures": 0, "estimate": None,
              "deadline": 120.0, "last_error": None},
    }
    assert slow_calls_view({}) == {}


# =========================================================================== config


def test_config_defaults() -> None:
    cfg = GateConfig()
    assert dataclasses.asdict(cfg) == {
        "policy": None, "policies": {}, "hosts": 1, "max_maintaining": 1,
        "route_away_after": None, "heartbeat_timeout": 3.0, "heartbeat_interval": 0.5,
        "fast_call_limit": 60.0, "slow_call_deadline": 120.0, "startup_timeout": 60.0,
        "shutdown_timeout": 60.0, "attached_busy_timeout": 30.0, "poison_kills": 2,
        "poison_window": 600.0, "halt_backoff": 30.0, "halt_backoff_max": 900.0,
        "maintain_budget": 0.5, "restart_limit": 5, "restart_window": 60.0,
        "min_retry_after": 0.05, "fail_fast_on_first_start": True, "spawn": True}


def test_config_takes_every_field_by_name() -> None:
    values: dict[str, Any] = {
        "policy": "idle=1s", "policies": {"a": "manual"}, "hosts": 4, "max_maintaining": 2,
        "route_away_after": 2.5, "heartbeat_timeout": 7.0, "heartbeat_interval": 0.25,
        "fast_call_limit": 9.0, "slow_call_deadline": 11.0, "startup_timeout": 13.0,
        "shutdown_timeout": 17.0, "attached_busy_timeout": 29.0, "poison_kills": 3,
        "poison_window": 31.0, "halt_backoff": 37.0, "halt_backoff_max": 41.0,
        "maintain_budget": 0.25, "restart_limit": 19, "restart_window": 23.0,
        "min_retry_after": 0.5, "fail_fast_on_first_start": False, "spawn": False}
    assert dataclasses.asdict(GateConfig(**values)) == values


def test_config_policies_are_not_shared() -> None:
    assert GateConfig().policies is not GateConfig().policies


def test_config_is_frozen() -> None:
    cfg = GateConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hosts = 2  # type: ignore[misc]


@pytest.mark.parametrize(("kw", "message"), [
    ({"hosts": 0}, "hosts must be at least 1, got 0"),
    ({"hosts": -3}, "hosts must be at least 1, got -3"),
    ({"max_maintaining": 0}, "max_maintaining must be at least 1, got 0"),
    ({"max_maintaining": -1}, "max_maintaining must be at least 1, got -1"),
    ({"route_away_after": 0}, "route_away_after must be positive, got 0"),
    ({"route_away_after": 0.0}, "route_away_after must be positive, got 0.0"),
    ({"route_away_after": -1.5}, "route_away_after must be positive, got -1.5"),
    ({"maintain_budget": 0.0}, "maintain_budget must be > 0 and <= 1, got 0.0"),
    ({"maintain_budget": -0.5}, "maintain_budget must be > 0 and <= 1, got -0.5"),
    ({"maintain_budget": 1.0000001}, "maintain_budget must be > 0 and <= 1, got 1.0000001"),
    ({"maintain_budget": float("nan")}, "maintain_budget must be > 0 and <= 1, got nan"),
    ({"route_away_after": float("nan")}, "route_away_after must be positive, got nan"),
    ({"poison_kills": 0}, "poison_kills must be at least 1, got 0"),
    ({"poison_kills": -2}, "poison_kills must be at least 1, got -2"),
    ({"restart_limit": -1}, "restart_limit must not be negative, got -1"),
    ({"min_retry_after": -0.01}, "min_retry_after must not be negative, got -0.01"),
    ({"min_retry_after": float("inf")}, "min_retry_after must not be negative, got inf"),
    ({"halt_backoff": 60.0, "halt_backoff_max": 30.0},
     "halt_backoff_max (30.0) must not be below halt_backoff (60.0)"),
    *[({name: bad}, f"{name} must be a positive number of seconds, got {bad}")
      for name in ("heartbeat_timeout", "heartbeat_interval", "fast_call_limit",
                   "slow_call_deadline", "startup_timeout", "shutdown_timeout",
                   "attached_busy_timeout", "poison_window", "halt_backoff",
                   "halt_backoff_max", "restart_window")
      for bad in (0.0, -1.0, float("nan"), float("inf"))],
])
def test_config_validation(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        GateConfig(**kw)
    assert str(info.value) == message


@pytest.mark.parametrize("kw", [
    {"hosts": 1}, {"hosts": None}, {"hosts": 2}, {"max_maintaining": 1},
    {"max_maintaining": 3}, {"route_away_after": None}, {"route_away_after": 0.001},
    {"route_away_after": 1}, {"hosts": None, "max_maintaining": 1, "route_away_after": None},
    {"maintain_budget": 1.0}, {"maintain_budget": 1e-9},
    {"poison_kills": 1}, {"restart_limit": 0}, {"min_retry_after": 0.0},
    {"halt_backoff": 5.0, "halt_backoff_max": 5.0}, {"heartbeat_timeout": 1e-3},
    {"fast_call_limit": 1e9},
])
def test_config_valid_edges(kw: dict[str, Any]) -> None:
    cfg = GateConfig(**kw)
    for key, value in kw.items():
        assert getattr(cfg, key) == value


# =========================================================================== actions


ACTIONS = [
    ToClient(R, "msg"),
    ToHost("h1", "msg"),
    StartHost("h1", "initial start"),
    KillHost("h1", "hung"),
    Log("info", "text"),
    Stopped(0, "done"),
]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: type(a).__name__)
def test_actions_are_frozen_with_slots(action: Any) -> None:
    assert not hasattr(action, "__dict__")
    name = dataclasses.fields(action)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(action, name, "x")


def test_action_fields() -> None:
    assert ToHost("h1", "m") == ToHost("h1", "m", False)
    assert ToHost("h1", "m").heartbeat_socket is False
    assert StartHost("h1", "r").slot == 0 and StartHost("h1", "r", 2).slot == 2
    assert ToHost("h1", "m", heartbeat_socket=True) != ToHost("h1", "m")
    assert [f.name for f in dataclasses.fields(ToClient)] == ["route", "message"]
    assert [f.name for f in dataclasses.fields(ToHost)] == ["host_id", "message",
                                                            "heartbeat_socket"]
    assert [f.name for f in dataclasses.fields(StartHost)] == ["host_id", "reason", "slot"]
    assert [f.name for f in dataclasses.fields(KillHost)] == ["host_id", "reason"]
    assert [f.name for f in dataclasses.fields(Log)] == ["level", "text"]
    assert [f.name for f in dataclasses.fields(Stopped)] == ["exit_code", "reason"]


def test_action_alias_names_every_action() -> None:
    assert actions_module.Action.__args__ == (  # type: ignore[attr-defined]
        ToClient, ToHost, StartHost, KillHost, Log, Stopped)


def test_host_record_new_defaults() -> None:
    host = record()
    assert host.left is False and host.waiting is False
    call = FastCall(R, 1, "calc", 0.0)
    assert call.args is None and call.kwargs is None


def test_a_waiting_host_is_shown_waiting_only_before_ready() -> None:
    host = record(waiting=True)
    assert host_view(host, 1.0, 5.0, 0) == {
        "id": "h1", "pid": None, "state": "waiting", "generation": 0, "in_flight": 0,
        "restarts": 0, "last_maintenance": None,
        "note": "waiting for the previous instance to exit"}
    assert WAITING_NOTE == "waiting for the previous instance to exit"
    host.waiting = False
    assert host_view(host, 1.0, 5.0, 0)["state"] == "starting"
    ready = record(state=HostState.READY, waiting=True)
    assert host_view(ready, 1.0, 5.0, 0)["state"] == "ready"


def test_halted_view() -> None:
    halted = {"state": "halted", "call": "reload", "host": "h2", "reason": "verify failed",
              "untouched": ["h3"], "at": 10.0, "retry_at": 40.0}
    assert halted_view(halted, 12.34567) == {
        "state": "halted", "call": "reload", "host": "h2", "reason": "verify failed",
        "untouched": ["h3"], "ago": 2.346, "retry_in": 27.654}
    assert halted_view(halted, 40.0)["retry_in"] == 0.0
    assert halted_view(halted, 50.0)["retry_in"] == 0.0  # never negative
    assert halted_view(halted, 39.99)["retry_in"] == 0.01
    assert "at" in halted and "retry_at" in halted  # not changed


# =========================================================================== poison


def test_call_key_names_the_method_and_a_short_digest() -> None:
    key = call_key("calc", [1, 2], {"k": 3})
    method, _, digest = key.partition(":")
    assert method == "calc" and len(digest) == 16
    int(digest, 16)  # hex
    assert call_key("calc", [1, 2], {"k": 3}) == key  # stable


def test_call_key_depends_on_method_args_and_kwargs() -> None:
    base = call_key("calc", [1], {"a": 1})
    assert call_key("calc2", [1], {"a": 1}).split(":")[1] != base.split(":")[1]
    assert call_key("calc", [2], {"a": 1}) != base
    assert call_key("calc", [1], {"a": 2}) != base
    assert call_key("calc", [1], {"b": 1}) != base
    assert call_key("calc", [1], {}) != base
    assert call_key("calc", [], {"a": 1}) != base


def test_call_key_normalises_containers_and_order() -> None:
    assert call_key("f", (1, 2), {}) == call_key("f", [1, 2], {})
    assert call_key("f", None, None) == call_key("f", [], {})
    assert call_key("f", [], {"a": 1, "b": 2}) == call_key("f", [], {"b": 2, "a": 1})
    assert call_key("f", [object], {}) == call_key("f", [repr(object)], {})  # by repr


def test_quarantine_poisons_a_call_after_its_kills_within_the_window() -> None:
    q = Quarantine()
    assert (q.kills, q.window) == (2, 600.0)
    assert (q.poisoned, q.methods) == ({}, frozenset())
    assert q.charge("calc:1", "calc", 100.0, "first death") is False
    assert q.is_poisoned("calc:1") is False
    assert q.charge("calc:1", "calc", 150.0, "host process exited (signal 11)") is True
    assert q.is_poisoned("calc:1") is True
    assert q.poisoned == {"calc:1": {"method": "calc", "kills": 2, "since": 150.0,
                                     "last_death": "host process exited (signal 11)"}}
    assert q.methods == frozenset({"calc"})
    assert "calc:1" not in q._deaths
    assert q.charge("calc:1", "calc", 160.0, "again") is False  # already poisoned
    assert q.poisoned["calc:1"]["kills"] == 2


def test_quarantine_window_boundary() -> None:
    q = Quarantine(2, 600.0)
    q.charge("k", "m", 0.0, "a")
    assert q.charge("k", "m", 600.0, "b") is False  # the first is exactly a window old
    assert q.charge("k", "m", 1199.999, "c") is True
    q = Quarantine(2, 600.0)
    q.charge("k", "m", 0.0, "a")
    assert q.charge("k", "m", 599.999, "b") is True


def test_quarantine_counts_each_call_on_its_own() -> None:
    q = Quarantine(3, 10.0)
    for t in (1.0, 2.0):
        assert q.charge("a", "m", t, "x") is False
        assert q.charge("b", "n", t, "x") is False
    assert q.charge("a", "m", 3.0, "x") is True
    assert q.is_poisoned("b") is False and q.methods == frozenset({"m"})
    assert q.charge("b", "n", 4.0, "y") is True
    assert q.methods == frozenset({"m", "n"})
    assert q.poisoned["b"]["kills"] == 3


def test_a_quarantine_of_one_kill() -> None:
    q = Quarantine(1, 5.0)
    assert q.charge("k", "m", 7.0, "x") is True


def test_quarantine_view() -> None:
    q = Quarantine(1, 5.0)
    q.charge("calc:ab", "calc", 10.0, "signal 9")
    assert q.view(12.34567) == [{"call": "calc:ab", "method": "calc", "kills": 1,
                                 "since": 2.346, "last_death": "signal 9"}]
    assert Quarantine().view(1.0) == []


def test_call_key_tells_bytes_from_text() -> None:
    assert call_key("f", [b"x"], {}) != call_key("f", ["x"], {})


def test_a_poisoned_call_charged_again_stays_as_it_was() -> None:
    q = Quarantine(1, 60.0)
    assert q.charge("k", "m", 1.0, "first") is True
    assert q.charge("k", "m", 2.0, "second") is False
    assert q.poisoned == {"k": {"method": "m", "kills": 1, "since": 1.0, "last_death": "first"}}
    assert "k" not in q._deaths
