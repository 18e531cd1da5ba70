"""Manual maintenance is rate-limited (threadhost.gate.maintenance.ManualBudget and its use by
the gate): a loop of ``maintain`` requests cannot keep a one-host service busy more than
``maintain_budget`` (default 0.5) of the time. Pure: no sockets, no sleeps; time is a number
we pass. The end-to-end measurement is tests/test_ratelimit_e2e.py."""

from __future__ import annotations

import math

import pytest

from tests.test_gate_core import C, calls_to, desc, fast, replies, serving, slow
from threadhost.gate import Gate, GateConfig, GateState, ToClient
from threadhost.gate.maintenance import ManualBudget
from threadhost.protocol import Call, Maintain, MaintainReply, Result

# --------------------------------------------------------------------------- the budget


def test_the_default_share_is_one_half() -> None:
    assert GateConfig().maintain_budget == 0.5


def test_a_fresh_budget_lets_the_first_manual_round_start_at_once() -> None:
    budget = ManualBudget(0.5)
    assert budget.wait(-1e9) == 0.0
    assert budget.wait(0.0) == 0.0
    assert (budget.busy, budget.rounds, budget.share) == (0.0, 0, 0.5)


@pytest.mark.parametrize(("share", "ready_at"), [
    (0.5, 14.0),    # as long again as the round took
    (0.25, 18.0),   # three times as long
    (0.8, 12.5),    # a quarter as long
    (1.0, 12.0),    # off: at once
])
def test_the_next_manual_round_waits_in_proportion_to_the_last(share: float,
                                                                ready_at: float) -> None:
    budget = ManualBudget(share)
    budget.charge(10.0, 12.0)  # a round of 2 s
    assert budget.ready_at == ready_at
    assert budget.wait(12.0) == ready_at - 12.0
    assert budget.wait(ready_at) == 0.0
    assert budget.wait(ready_at + 5) == 0.0
    if share < 1.0:
        assert budget.wait(ready_at - 0.001) == pytest.approx(0.001)


def test_the_budget_counts_rounds_and_busy_seconds_and_only_the_last_round_sets_the_wait(
) -> None:
    budget = ManualBudget(0.5)
    budget.charge(10.0, 13.0)
    budget.charge(20.0, 20.5)
    assert (budget.rounds, budget.busy) == (2, 3.5)
    assert budget.ready_at == 21.0


@pytest.mark.parametrize("share", [0.0, -0.1, 1.01, math.nan])
def test_a_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share must be > 0 and <= 1"):
        ManualBudget(share)


# --------------------------------------------------------------------------- the gate


RATE_LIMITED = ("rate-limited: manual maintenance may keep the service busy 50% of the time "
                "at most; retry in {}s")


def maintain(gate: Gate, now: float, rid: int = 1) -> MaintainReply:
    (reply,) = replies(gate.client_message(now, C, Maintain(id=rid)))
    assert isinstance(reply, MaintainReply)
    return reply


def finish_slow(gate: Gate, now: float, host: str = "h1") -> None:
    """Answer the slow call the gate sent to ``host`` (it must have sent one)."""
    slow_call = [c for c in calls_to(gate.client_message(now, C, Maintain(id=0)), host)]
    assert slow_call == []  # a maintain while the round runs sends nothing
    pending = gate.pool.hosts[host].slow
    assert pending is not None
    gate.host_message(now, host, Result(id=pending.rid))


def one_round(gate: Gate, start: float, end: float) -> None:
    reply = maintain(gate, start)
    assert reply.started is True, reply.reason
    finish_slow(gate, end)
    assert gate.state is GateState.READY


def test_a_manual_maintain_right_after_a_manual_round_is_refused_until_as_long_again() -> None:
    gate = serving()  # the default budget, 0.5
    one_round(gate, 10.0, 12.0)  # busy 2 s: the next may start at 14
    actions = gate.client_message(12.0, C, Maintain(id=5))
    assert actions == [gate_reply(5, RATE_LIMITED.format("2.0"), 2.0)]  # nothing else happens
    assert maintain(gate, 13.0).reason == RATE_LIMITED.format("1.0")
    assert maintain(gate, 13.95).reason == RATE_LIMITED.format("0.1")  # rounded up
    assert maintain(gate, 13.999).started is False
    reply = maintain(gate, 14.0)  # exactly the allowed moment
    assert reply.started is True
    assert reply.reason == "'read_config' on 1 host"


def gate_reply(rid: int, reason: str, retry_after: float) -> ToClient:
    return ToClient(C, MaintainReply(id=rid, started=False, reason=reason,
                                     retry_after=retry_after))


@pytest.mark.parametrize(("now", "left"), [
    (12.0, 2.0), (12.5, 1.5), (13.0, 1.0), (13.91, 0.1), (13.95, 0.1), (13.999, 0.1),
    (12.05, 2.0), (12.7, 1.3),  # 1.3 is not 1.4 for float noise (14 - 12.7 = 1.3000000000000007)
])
def test_a_rate_limited_refusal_carries_the_wait_of_its_reason_in_retry_after(
        now: float, left: float) -> None:
    gate = serving()
    one_round(gate, 10.0, 12.0)  # the next may start at 14
    reply = maintain(gate, now)
    assert reply == MaintainReply(id=1, started=False, reason=RATE_LIMITED.format(f"{left:.1f}"),
                                  retry_after=left)
    assert maintain(gate, now + left).started is True  # retrying then is not refused


def test_a_maintain_during_a_manual_round_retries_after_it_and_the_pause_it_earns() -> None:
    gate = serving()  # the start-up call measured read_config: 2 s
    assert maintain(gate, 10.0).started is True
    # 1.5 s left; the round will have taken 2 s: the rate limit then pauses 2 s
    reply = maintain(gate, 10.5, rid=2)
    assert reply == MaintainReply(id=2, started=False, reason="already running: "
                                  "'read_config'", retry_after=3.5)
    finish_slow(gate, 12.0)
    assert maintain(gate, 10.5 + 3.5).started is True


def test_a_refused_maintain_changes_nothing() -> None:
    gate = serving()
    one_round(gate, 10.0, 12.0)
    before = (gate.status(12.5), gate.counters.copy(), gate.generation)
    for t in (12.5, 12.5, 13.0, 13.5):
        assert maintain(gate, t).started is False
    assert gate.state is GateState.READY
    assert (gate.status(12.5), gate.counters, gate.generation) == before
    assert maintain(gate, 14.0).started is True  # refusals did not push the moment back


def test_the_drain_counts_as_busy() -> None:
    gate = serving()
    calls_to(gate.client_message(9.0, C, fast(3)))  # a fast call in flight
    assert maintain(gate, 10.0).started is True  # the host drains from 10
    (call,) = [c for c in calls_to(gate.host_message(11.0, "h1", Result(id=gate.pool.hosts[
        "h1"].last_used))) if c.method == "read_config"]  # answered at 11: slow call starts
    assert isinstance(call, Call)
    gate.host_message(12.0, "h1", Result(id=call.id))  # the round: 10 -> 12
    assert maintain(gate, 13.999).reason == RATE_LIMITED.format("0.1")
    assert maintain(gate, 14.0).started is True


@pytest.mark.parametrize(("budget", "allowed", "before"), [
    (0.25, 18.0, 17.999),  # busy 2 s, then 6 s
    (0.75, 12.0 + 2 / 3, 12.6),
])
def test_other_budgets(budget: float, allowed: float, before: float) -> None:
    gate = serving(maintain_budget=budget)
    one_round(gate, 10.0, 12.0)
    reply = maintain(gate, before)
    assert reply.started is False
    assert reply.reason.startswith(f"rate-limited: manual maintenance may keep the service "
                                   f"busy {budget:.0%} of the time at most; retry in ")
    assert maintain(gate, allowed + 1e-9).started is True


def test_budget_one_turns_the_limit_off() -> None:
    gate = serving(maintain_budget=1.0)
    one_round(gate, 10.0, 12.0)
    one_round(gate, 12.0, 14.0)
    one_round(gate, 14.0, 16.0)
    assert gate.status(16.0)["manual_maintenance"] == {
        "budget": 1.0, "rounds": 3, "busy": 6.0, "retry_in": 0.0}


def test_status_shows_the_budget_and_the_wait() -> None:
    gate = serving()
    assert gate.status(5.0)["manual_maintenance"] == {
        "budget": 0.5, "rounds": 0, "busy": 0.0, "retry_in": 0.0}
    one_round(gate, 10.0, 12.5)
    assert gate.status(13.0)["manual_maintenance"] == {
        "budget": 0.5, "rounds": 1, "busy": 2.5, "retry_in": 2.0}
    assert gate.status(15.0)["manual_maintenance"]["retry_in"] == 0.0


def test_a_pool_round_is_charged_from_its_start_to_its_last_host() -> None:
    gate = serving(2)
    assert maintain(gate, 10.0).started is True
    first = next(h for h in ("h1", "h2") if gate.pool.hosts[h].slow is not None)
    other = "h2" if first == "h1" else "h1"
    gate.host_message(11.0, first, Result(id=gate.pool.hosts[first].slow.rid))  # type: ignore[union-attr]
    slow_run = gate.pool.hosts[other].slow
    assert slow_run is not None
    gate.host_message(13.0, other, Result(id=slow_run.rid))  # the round: 10 -> 13
    assert maintain(gate, 15.999).started is False
    assert maintain(gate, 16.0).started is True


def test_policy_rounds_are_neither_charged_nor_held_back() -> None:
    adapter = desc(slow(startup=False, policy="every=5s"))
    gate = serving(adapter=adapter, start_s=1.0)
    one_round(gate, 5.0, 15.0)  # manual, 10 s: the next manual one not before 25
    assert gate.status(15.0)["manual_maintenance"]["retry_in"] == 10.0
    gate.tick(20.0)  # the policy counts 5 s from the end of the last round, manual or not
    assert gate.state is GateState.MAINTAINING  # not held back by the manual budget
    run = gate.pool.hosts["h1"].slow
    assert run is not None and run.why == "every 5s"
    gate.host_message(50.0, "h1", Result(id=run.rid))  # a 30 s policy round
    status = gate.status(50.0)["manual_maintenance"]
    assert (status["rounds"], status["busy"], status["retry_in"]) == (1, 10.0, 0.0)
    assert maintain(gate, 50.0).started is True  # and not charged either


def test_a_policy_round_does_not_reset_the_manual_wait() -> None:
    adapter = desc(slow(startup=False, policy="every=2s"))
    gate = serving(adapter=adapter, start_s=1.0)
    one_round(gate, 5.0, 15.0)  # manual, 10 s: the next manual one not before 25
    due = 17.0  # every 2 s, from the end of the manual round
    gate.tick(due)
    run = gate.pool.hosts["h1"].slow
    assert run is not None and run.why != "manual"
    gate.host_message(due + 0.5, "h1", Result(id=run.rid))
    assert maintain(gate, 24.999).started is False
    assert maintain(gate, 25.0).started is True


def test_start_up_slow_calls_are_not_charged() -> None:
    gate = serving(start_s=1.0, startup_s=50.0)  # a 50 s start-up slow call
    assert gate.status(51.0)["manual_maintenance"]["busy"] == 0.0
    assert maintain(gate, 51.0).started is True


def test_a_maintain_loop_keeps_one_host_busy_at_most_half_of_the_time() -> None:
    """A client sends ``maintain`` every 10 ms for 60 s; each slow call takes 0.3 s."""
    for budget, low, high in ((0.5, 0.45, 0.5), (0.2, 0.17, 0.2), (1.0, 0.95, 1.0)):
        gate = serving(maintain_budget=budget)
        t0 = now = 10.0
        busy = 0.0
        started_at: float | None = None
        while now < t0 + 60.0:
            if started_at is not None and now >= started_at + 0.3:
                finish_at = started_at + 0.3
                run = gate.pool.hosts["h1"].slow
                assert run is not None
                gate.host_message(finish_at, "h1", Result(id=run.rid))
                busy += finish_at - started_at
                started_at = None
            if started_at is None and maintain(gate, now).started:
                started_at = now
            now = round(now + 0.01, 6)
        share = busy / (now - t0)
        assert low <= share <= high, (budget, share)


@pytest.mark.parametrize(("gap", "reason", "retry"), [
    ("5s", "too soon: min_gap 5s, retry in 4.0s", 4.0),  # the gap ends at 19, the pause at 18
    ("2s", RATE_LIMITED.format("3.0"), 3.0),  # the gap ends at 16, the pause at 18
])
def test_of_min_gap_and_the_rate_limit_the_longer_hold_answers(gap: str, reason: str,
                                                               retry: float) -> None:
    gate = serving(adapter=desc(slow(policy=f"manual | min_gap={gap}")))
    one_round(gate, 10.0, 14.0)  # a manual round of 4 s
    assert maintain(gate, 15.0) == MaintainReply(id=1, started=False, reason=reason,
                                                 retry_after=retry)
    assert maintain(gate, 15.0 + retry - 0.01).started is False
    assert maintain(gate, 15.0 + retry).started is True
