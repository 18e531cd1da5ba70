"""Maintenance scheduling: which slow call is due, and its staggered rollout over the pool.

* :class:`Schedule` — the adapter's slow calls, each with its own policy (a deadline
  calculator, :mod:`threadhost.policy`), deadline and measured duration. :meth:`due` asks
  the policies; of several due calls the one that waited longest goes first.
* :class:`Rollout` — one maintenance round: the slow call runs on one host at a time (at
  most ``max_maintaining`` at once), each taken out of rotation for it, until every host
  that was in the pool when the round began has run it (or died). A host is only taken
  out while another host stays in rotation, so a pool of two or more never answers
  ``busy`` because of maintenance; a single host has nobody to cover for it. The round's
  policy hooks fire once: ``on_slow_started`` when it begins, ``on_slow_finished`` when the
  last host is done.
* :class:`ManualBudget` — the rate limit of manual maintenance (``maintain`` requests): a
  loop of requests cannot keep the service busy more than a set share of the time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from threadhost.gate.measure import Estimate
from threadhost.gate.pool import HostRecord
from threadhost.gate.states import HostState
from threadhost.policy import Policy

__all__ = ["ManualBudget", "Rollout", "Schedule", "SlowCall"]


@dataclass(slots=True)
class SlowCall:
    name: str
    policy: Policy
    spec: str
    deadline: float
    startup: bool
    estimate: Estimate = field(default_factory=Estimate)
    last_end: float = float("-inf")
    hold_until: float | None = None
    """After a halted round: not due before this (back-off), whatever the policy says."""
    halts: int = 0
    runs: int = 0
    failures: int = 0
    last_error: str | None = None

    def measure(self, duration: float, error: str | None) -> None:
        self.runs += 1
        self.estimate.add(duration)
        if error is not None:
            self.failures += 1
            self.last_error = error


class Schedule:
    """The slow calls of the served adapter, configured once from its description."""

    def __init__(self) -> None:
        self.calls: dict[str, SlowCall] = {}
        self.startup_names: tuple[str, ...] = ()
        self.last_slow_end: float | None = None
        self.started = False  # policies started (the service served once)

    @classmethod
    def from_description(
        cls,
        description: Mapping[str, Any],
        *,
        policy: str | None,
        policies: Mapping[str, str],
        default_deadline: float,
        make_policy: Callable[[str], Policy],
    ) -> tuple[Schedule, list[str]]:
        """The schedule, and one error line per slow call whose policy does not parse.
        ``policy`` (the operator's) overrides the calls' own; ``policies`` win over both."""
        self = cls()
        errors: list[str] = []
        default = policy or description.get("default_policy") or "manual"
        slow = [c for c in description.get("calls", []) if c.get("kind") == "slow"]
        for c in slow:
            name = c["name"]
            spec = policies.get(name) or (c.get("policy") if policy is None else None)
            spec = spec or default
            try:
                pol = make_policy(spec)
            except ValueError as exc:
                errors.append(f"slow call {name!r}: {exc}")
                continue
            deadline = c.get("deadline") or getattr(pol, "deadline", None) or default_deadline
            self.calls[name] = SlowCall(name, pol, spec, float(deadline), bool(c.get("startup")))
        self.startup_names = tuple(c["name"] for c in slow if c.get("startup"))
        return self, errors

    def deadline(self, name: str, default: float) -> float:
        call = self.calls.get(name)
        return call.deadline if call is not None else default

    def remaining(self, name: str, elapsed: float) -> float | None:
        call = self.calls.get(name)
        return None if call is None else call.estimate.remaining(elapsed)

    def startup_total(self, names: Iterable[str]) -> float | None:
        """Measured total of the start-up calls ``names``; None if one is unmeasured."""
        total = 0.0
        for name in names:
            call = self.calls.get(name)
            if call is None or call.estimate.value is None:
                return None
            total += call.estimate.value
        return total

    def hold(self, name: str, now: float, base: float, cap: float) -> float:
        """A round of ``name`` halted at ``now``: hold it back ``base`` seconds, doubled per
        consecutive halt, at most ``cap``. Returns the wait."""
        call = self.calls.get(name)
        if call is None:
            return 0.0
        call.halts += 1
        wait = min(cap, base * 2.0 ** (call.halts - 1))
        call.hold_until = now + wait
        return wait

    def release(self, name: str) -> None:
        """A round of ``name`` succeeded: no more back-off."""
        call = self.calls.get(name)
        if call is not None:
            call.halts = 0
            call.hold_until = None

    def start_policies(self, now: float) -> None:
        self.started = True
        for call in self.calls.values():
            call.policy.start(now)

    def next_due(self, name: str, now: float) -> float | None:
        """When the policy of ``name`` next looks (for time terms: when it is due), held
        back by a halted round's back-off; None before the service served or for manual."""
        call = self.calls.get(name)
        if call is None or not self.started:
            return None
        t = call.policy.next_wakeup(now)
        if t is None:
            return None
        return t if call.hold_until is None else max(t, call.hold_until)

    def on_call(self, now: float) -> None:
        for call in self.calls.values():
            call.policy.on_call(now)

    def due(self, now: float) -> tuple[str, str] | None:
        """(name, reason) of the slow call to run now, or None. Every policy is polled (a
        ``file`` term must keep reading); the one that waited longest wins."""
        best: tuple[tuple[float, str], str] | None = None  # ((last end, name), reason)
        for name, call in self.calls.items():
            reason = call.policy.poll(now)
            if call.hold_until is not None and now < call.hold_until:
                continue  # backing off after a halted round
            key = (call.last_end, name)  # names are unique: two keys never tie
            if reason is not None and (best is None or key < best[0]):  # mutate: skip[with '<=']
                best = (key, reason)
        return None if best is None else (best[0][1], best[1])

    def next_wakeup(self, now: float) -> float | None:
        times: list[float] = []
        for c in self.calls.values():
            t = c.policy.next_wakeup(now)
            if t is not None:
                times.append(t if c.hold_until is None else max(t, c.hold_until))
        return min(times) if times else None


@dataclass
class Rollout:
    """One maintenance round of slow call ``name`` over the hosts ``pending``."""

    name: str
    reason: str
    round: int
    started: float
    pending: list[str]
    active: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    halted: str | None = None
    """Why the round stopped before every host ran the call (its slow call or verify
    failed on a host), or None."""
    manual: bool = False
    """Started by a client's ``maintain`` request (charged to the :class:`ManualBudget`)."""

    @property
    def finished(self) -> bool:
        return not self.pending and not self.active

    def take_next(
        self,
        hosts: Mapping[str, HostRecord],
        max_maintaining: int,
        in_rotation: int,
        stuck: frozenset[str] = frozenset(),
    ) -> list[str]:
        """Pending hosts to take out of rotation now (moved to ``active``).

        ``in_rotation`` counts the hosts serving calls (ready, not ``stuck``). A host is
        taken only if it is ready, fewer than ``max_maintaining`` hosts are active, and —
        when the pool has more than one live host — at least one other host stays in
        rotation (taking a stuck host takes nobody out of it). Pending hosts that are gone
        are dropped."""
        self.pending = [h for h in self.pending if h in hosts]
        taken: list[str] = []
        live = sum(1 for h in hosts.values() if h.killed is None)  # a host being killed is gone
        # the canary: until one host has run the call fine, only one runs it at a time
        limit = max_maintaining if self.done else 1
        for host_id in list(self.pending):
            if len(self.active) >= limit:
                break
            host = hosts[host_id]
            if host.state is not HostState.READY or host.killed is not None:
                continue
            serving = host_id not in stuck
            if live > 1 and serving and in_rotation - 1 < 1:
                continue  # a stuck host further on may still be taken
            self.pending.remove(host_id)
            self.active.append(host_id)
            taken.append(host_id)
            if serving:
                in_rotation -= 1
        return taken

    def expected_rest(self, now: float, hosts: Mapping[str, HostRecord],
                      estimate: float | None, max_maintaining: int) -> float | None:
        """Seconds until the round is expected to end, from the slow call's measured
        duration ``estimate``: the longest rest of its active hosts (one still draining
        counts a whole ``estimate``), plus one ``estimate`` per batch of
        ``max_maintaining`` pending hosts (an overdue host counts 0). None when nothing is
        measured."""
        if estimate is None:
            return None
        rest = 0.0
        for host_id in self.active:
            host = hosts.get(host_id)
            slow = host.slow if host is not None else None
            rest = max(rest, estimate if slow is None else estimate - (now - slow.started))
        batches = -(-len(self.pending) // max_maintaining)  # ceil
        return rest + batches * estimate

    def host_done(self, host_id: str, ok: bool) -> None:
        """``host_id`` ran the slow call (``ok``) or left the pool; a host that is neither
        pending nor active (it finished earlier, or joined later) does not count."""
        if host_id not in self.active and host_id not in self.pending:
            return
        if host_id in self.active:
            self.active.remove(host_id)
        if host_id in self.pending:
            self.pending.remove(host_id)
        (self.done if ok else self.failed).append(host_id)


class ManualBudget:
    """How often a client's ``maintain`` may start a maintenance round.

    Without authentication anyone who reaches the endpoint may send ``maintain``, and a
    round takes a single host out of service (callers get ``busy``); a loop of requests
    would keep it busy for good. So manual rounds are rate-limited by their own cost: a
    manual round that took ``d`` seconds (from its start to its last host's answer, drain
    included) must be followed by ``d * (1 - share) / share`` seconds without a manual
    round. Every manual busy period ``d`` is then followed by at least that much time
    before the next one starts, so in any sequence of manual rounds the busy time is at
    most ``share`` of the time from the first start to the end of the last wait — for
    ``share = 0.5``, half. A host is busy only during a round, so the bound holds for each
    host of a pool too (staggered rounds keep a pool serving anyway). ``share = 1`` turns
    the limit off. Rounds started by a policy are the operator's configuration: neither
    charged nor held back.
    """

    __slots__ = ("busy", "ready_at", "rounds", "share")  # mutate: skip - no behaviour

    def __init__(self, share: float) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be > 0 and <= 1, got {share}")
        self.share = share
        self.ready_at = float("-inf")
        """No manual round may start before this time."""
        self.busy = 0.0
        """Seconds spent in manual rounds so far."""
        self.rounds = 0

    def charge(self, started: float, ended: float) -> None:
        """A manual round ran from ``started`` to ``ended``."""
        self.busy += ended - started
        self.rounds += 1
        self.ready_at = ended + self.pause(ended - started)

    def pause(self, busy: float) -> float:
        """Seconds without a manual round after one that took ``busy`` seconds."""
        return busy * (1.0 - self.share) / self.share

    def wait(self, now: float) -> float:
        """Seconds until a manual round may start (0: now)."""
        return max(0.0, self.ready_at - now)
