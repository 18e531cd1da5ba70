"""Admission and routing: which host takes a fast call, and what to say when none can.

* :func:`pick` — a fast call goes to a host in rotation (``ready``, not stuck), the one with
  the fewest calls in flight ("least outstanding requests"); among equals, the one whose
  state is from the newest maintenance round (``epoch``: a client that has seen the new
  configuration should not meet the old one while a host with the new one is free), then
  the one whose oldest call in flight started last (a long call may be about to get its
  host stuck), then the one used least recently. A host never gets a second call while
  another host in rotation has none, so nothing waits in a host's queue that another host
  could run now.
* A host is *stuck* when its oldest fast call has run longer than the route-away time;
  it leaves the rotation until that call ends (:class:`FastCallStats` derives the time from
  measured durations when ``--route-away-after`` is not given).
* :func:`refusal` — no host can take the call: ``busy`` when some host is busy (a slow call,
  draining for one, a stuck fast call, the first start), with ``retry_after`` = the soonest
  measured time a host is expected to be free; ``unavailable`` when hosts are only being
  replaced; ``failed`` / shutting down as the service's state says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from threadhost.gate.pool import HostRecord
from threadhost.gate.states import GateState, HostState

__all__ = [
    "ROUTE_AWAY_FACTOR",
    "ROUTE_AWAY_FLOOR",
    "ROUTE_AWAY_INITIAL",
    "FastCallStats",
    "Refusal",
    "is_stuck",
    "pick",
    "refusal",
]

ROUTE_AWAY_FACTOR = 10.0
"""Derived route-away time: this many times the p99 of recent fast-call durations..."""
ROUTE_AWAY_FLOOR = 1.0
"""...but never less than this (seconds)..."""
ROUTE_AWAY_INITIAL = 5.0
"""...and this until ``FastCallStats.MIN_SAMPLES`` calls were measured."""

_READY = HostState.READY


def is_stuck(host: HostRecord, now: float, route_away_after: float) -> bool:
    """Its oldest fast call has run longer than ``route_away_after``."""
    oldest = host.oldest_call()
    return oldest is not None and now - oldest.started > route_away_after


def pick(hosts: Iterable[HostRecord], now: float, route_away_after: float) -> HostRecord | None:
    """The host a new fast call goes to, or None when no host is in rotation."""
    best: HostRecord | None = None
    best_key: tuple[int, int, float, int] | None = None
    for host in hosts:
        if host.state is not _READY or host.killed is not None:
            continue
        calls = host.calls
        if calls and now - next(iter(calls.values())).started > route_away_after:
            continue  # stuck in a long fast call: route around it
        # among equally loaded hosts: the newest state, then the one whose oldest call
        # started last (the other may be about to get stuck), then the least recently used
        oldest = -next(iter(calls.values())).started if calls else 0.0
        key = (len(calls), -host.epoch, oldest, host.last_used)
        if best_key is None or key < best_key:
            best, best_key = host, key
    return best


class FastCallStats:
    """Recent fast-call durations (a ring of ``SIZE``) and the route-away time they give:
    ``max(ROUTE_AWAY_FLOOR, ROUTE_AWAY_FACTOR x p99)``, capped at ``limit`` (the fast-call
    limit); ``ROUTE_AWAY_INITIAL`` before ``MIN_SAMPLES`` measurements. The p99 is
    recomputed every ``EVERY`` samples, never per call."""

    SIZE = 512
    MIN_SAMPLES = 20
    EVERY = 32

    def __init__(self, limit: float, fixed: float | None = None) -> None:
        self.limit = limit
        self.fixed = fixed
        self._ring: list[float] = []
        self._pos = 0
        self._count = 0
        self._value = min(fixed if fixed is not None else ROUTE_AWAY_INITIAL, limit)

    @property
    def route_away_after(self) -> float:
        return self._value

    def record(self, duration: float) -> None:
        if self.fixed is not None:
            return
        ring = self._ring
        if len(ring) < self.SIZE:
            ring.append(duration)
        else:
            ring[self._pos] = duration
            self._pos = (self._pos + 1) % self.SIZE
        self._count += 1
        if self._count >= self.MIN_SAMPLES and (
            self._count == self.MIN_SAMPLES or self._count % self.EVERY == 0
        ):
            self._value = min(self.limit, max(ROUTE_AWAY_FLOOR, ROUTE_AWAY_FACTOR * self.p99()))

    def p99(self) -> float:
        ordered = sorted(self._ring)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


Refusal = tuple[str, str, float | None]
"""(``busy`` | ``unavailable`` | ``failed``, message, retry_after)."""


def refusal(
    now: float,
    hosts: Iterable[HostRecord],
    state: GateState,
    *,
    route_away_after: float,
    expected_free: Callable[[HostRecord], float | None],
    failed_reason: str | None,
    restart_reason: str | None,
    min_retry_after: float,
) -> Refusal:
    """Why no host can take a call now, and when to try again (seconds, or None)."""
    if state is GateState.FAILED:
        return "failed", f"service failed: {failed_reason}", None
    if state in (GateState.STOPPING, GateState.STOPPED):
        return "unavailable", "unavailable: the service is shutting down", None
    busy_text: str | None = None
    soonest: float | None = None
    starting_only = True
    for host in hosts:
        if host.killed is not None:
            continue
        text: str | None = None
        if host.slow is not None:
            text = (f"busy: slow call {host.slow.name!r} running for "
                    f"{now - host.slow.started:.1f}s")
        elif host.state is HostState.DRAINING:
            text = "busy: a maintenance slow call is about to start"
        elif host.state is _READY and is_stuck(host, now, route_away_after):
            oldest = host.oldest_call()
            assert oldest is not None
            text = f"busy: fast call {oldest.method!r} running for {now - oldest.started:.1f}s"
        if text is not None:
            starting_only = False
            busy_text = busy_text or text
        expected = expected_free(host)
        if expected is not None and (soonest is None or expected < soonest):
            soonest = expected
    retry = None if soonest is None else round(max(soonest, min_retry_after), 3)
    if busy_text is not None:
        return "busy", busy_text, retry
    if state is GateState.STARTING and starting_only:
        return "busy", "busy: the service is starting", retry
    reason = f" ({restart_reason})" if restart_reason else ""
    return "unavailable", f"unavailable: restarting the host{reason}", retry
