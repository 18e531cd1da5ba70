"""Supervision: is a host alive, and may a dead one be replaced?

* :func:`liveness_problem` — the verdict on one host at ``now``: a reason to declare it
  dead, or None. A host that has not said ``ready`` is judged by the start-up timeout; a
  host running a call by that call's limit only — a slow call's deadline, a fast call's
  ``fast_call_limit`` — since a library holding the GIL silences its heartbeats: it is
  inside the library, not dead, and a spawned host's death is seen from its process exit
  (an attached host, which has no process to watch, by a separate, longer silence,
  ``attached_busy_timeout``). Heartbeat silence alone kills only an idle host. A host
  waiting for its slot's previous instance to exit is not timed out. While stopping, by the
  shutdown deadline (and, for an attached host outside a slow call, by heartbeat silence: no
  process exit will tell that it vanished).
* :func:`liveness_deadline` — when that verdict could next change (the shell's wake-up).
* :class:`RestartBudget` — Erlang-style intensity: at most ``limit`` host failures within
  ``window`` seconds, counted across the whole pool; one more and the service gives up.
"""

from __future__ import annotations

from collections import deque

from threadhost.gate.config import GateConfig
from threadhost.gate.pool import HostRecord
from threadhost.gate.states import HostState

__all__ = ["RestartBudget", "liveness_deadline", "liveness_problem"]


def liveness_problem(
    host: HostRecord,
    now: float,
    config: GateConfig,
    slow_deadline: float,
    stop_deadline: float | None,
) -> str | None:
    """Why ``host`` must be declared dead now, or None. ``slow_deadline`` is the deadline
    of the slow call it runs (ignored when it runs none); ``stop_deadline`` is set while
    the service stops."""
    if stop_deadline is not None:
        if now >= stop_deadline:
            return f"no goodbye within the shutdown timeout ({config.shutdown_timeout:g}s)"
        if (not config.spawn and host.slow is None
                and now - host.last_heartbeat > config.heartbeat_timeout):
            # an attached host that vanished: no process exit will ever tell us
            return f"no heartbeat for {config.heartbeat_timeout:g}s while stopping"
        return None
    if host.state is HostState.STARTING:
        if not host.waiting and now - host.started > config.startup_timeout:
            return f"not ready within the start-up timeout ({config.startup_timeout:g}s)"
        return None
    slow = host.slow
    if slow is not None:
        if now - slow.started > slow_deadline:
            return f"slow call {slow.name!r} ran past its deadline ({slow_deadline:g}s)"
        return None  # heartbeats may stop while a GIL-holding slow call runs
    oldest = host.oldest_call()
    if oldest is not None:  # inside the library: judged by the call's own limit
        if now - oldest.started > config.fast_call_limit:
            return (f"fast call {oldest.method!r} hung for more than "
                    f"{config.fast_call_limit:g}s")
        if not config.spawn and now - host.last_heartbeat > config.attached_busy_timeout:
            return (f"no heartbeat for {config.attached_busy_timeout:g}s during a call "
                    "(attached host)")
        return None
    if now - host.last_heartbeat > config.heartbeat_timeout:
        return f"no heartbeat for {config.heartbeat_timeout:g}s"
    return None


def liveness_deadline(
    host: HostRecord, config: GateConfig, slow_deadline: float, stop_deadline: float | None
) -> float:
    """The earliest time at which :func:`liveness_problem` could find a problem."""
    if stop_deadline is not None:
        if not config.spawn and host.slow is None:
            return min(stop_deadline, host.last_heartbeat + config.heartbeat_timeout)
        return stop_deadline
    if host.state is HostState.STARTING:
        return host.started + config.startup_timeout
    if host.slow is not None:
        return host.slow.started + slow_deadline
    oldest = host.oldest_call()
    if oldest is not None:
        due = oldest.started + config.fast_call_limit
        if not config.spawn:
            due = min(due, host.last_heartbeat + config.attached_busy_timeout)
        return due
    return host.last_heartbeat + config.heartbeat_timeout


class RestartBudget:
    """At most ``limit`` failures within ``window`` seconds (sliding)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()
        self.spent = 0
        """Failures granted a restart so far (the lifetime count shown in status)."""

    def recent(self, now: float) -> int:
        """Failures counted in the window ending at ``now``."""
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()
        return len(times)

    def allow(self, now: float) -> bool:
        """Record a failure at ``now``; True if a restart is still within the budget."""
        if self.recent(now) >= self.limit:
            return False
        self._times.append(now)
        self.spent += 1
        return True

    def exhausted_reason(self, now: float, last: str) -> str:
        return (f"{self.recent(now) + 1} host failures within {self.window:g}s "
                f"(limit {self.limit}); last: {last}")
