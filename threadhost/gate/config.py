"""The gate's tunables, in one frozen declaration (the CLI and config file fill it)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["GateConfig"]


@dataclass(frozen=True)
class GateConfig:
    """Tunables of the gate; every duration is in seconds."""

    policy: str | None = None
    """Overrides the adapter's default policy for slow calls that declare none."""
    policies: Mapping[str, str] = field(default_factory=dict)
    """Per slow-call policy overrides (by call name)."""
    hosts: int | None = 1
    """``serve``: how many host processes (each its own library instance). Attach mode: at
    most this many attached hosts are adopted (``None``: no limit)."""
    max_maintaining: int = 1
    """How many hosts of a pool may run (or drain for) a maintenance slow call at once."""
    route_away_after: float | None = None
    """A host whose current fast call has run longer gets no new calls. ``None``: derived
    from measured fast-call durations (see :mod:`threadhost.gate.routing`)."""
    heartbeat_timeout: float = 3.0
    """No heartbeat for this long (outside a slow call) means the host is hung or dead."""
    heartbeat_interval: float = 0.5
    """How often the broker sends each host a heartbeat (so attached hosts notice when their
    broker is gone or replaced)."""
    fast_call_limit: float = 60.0
    """A fast call running longer than this gets its host killed and restarted."""
    slow_call_deadline: float = 120.0
    """Deadline of a slow call that declares none (and whose policy sets none)."""
    startup_timeout: float = 60.0
    """From host start to ``ready`` (import + setup)."""
    shutdown_timeout: float = 60.0
    """From shutdown request to goodbye before the host is killed."""
    attached_busy_timeout: float = 30.0
    """An *attached* host running a fast call and silent this long is declared dead. (A
    spawned host in a call is never judged by heartbeats: a library may hold the GIL; its
    death is seen from its process exit, and the call by its own limit.)"""
    poison_kills: int = 2
    poison_window: float = 600.0
    """A fast call (method and arguments) that killed hosts ``poison_kills`` times within
    ``poison_window`` seconds is quarantined: refused at once with ``poisoned``."""
    halt_backoff: float = 30.0
    halt_backoff_max: float = 900.0
    """After a maintenance round halted (its slow call or ``verify`` failed), the policy
    may start the slow call again only after this back-off, doubling per halt."""
    maintain_budget: float = 0.5
    """Manual maintenance (``maintain`` requests from clients) may keep the service busy at
    most this share of the time: after a manual round that took ``d`` seconds, the next one
    starts no sooner than ``d * (1 - maintain_budget) / maintain_budget`` seconds after it
    ended (0.5: as long again). ``1`` turns the limit off. Rounds started by a policy are
    not limited (see :class:`~threadhost.gate.maintenance.ManualBudget`)."""
    restart_limit: int = 5
    """Host failures tolerated within ``restart_window``, counted across the whole pool."""
    restart_window: float = 60.0
    min_retry_after: float = 0.05
    fail_fast_on_first_start: bool = True
    """If a host fails before the gate ever opened, stop (exit non-zero) instead of
    restarting: a broken adapter or library install will not heal by itself."""
    spawn: bool = True
    """Start host processes (``serve``). ``False`` is *attach mode* (``threadhost broker``):
    hosts are started by someone else and attach to the back end; a host's ``ready`` is
    adopted while there is room, and a dead host is replaced by the next one that attaches."""

    def __post_init__(self) -> None:
        if self.hosts is not None and self.hosts < 1:
            raise ValueError(f"hosts must be at least 1, got {self.hosts}")
        if self.max_maintaining < 1:
            raise ValueError(f"max_maintaining must be at least 1, got {self.max_maintaining}")
        if self.poison_kills < 1:
            raise ValueError(f"poison_kills must be at least 1, got {self.poison_kills}")
        if self.restart_limit < 0:
            raise ValueError(f"restart_limit must not be negative, got {self.restart_limit}")
        if not 0.0 < self.maintain_budget <= 1.0:  # also refuses NaN
            raise ValueError(f"maintain_budget must be > 0 and <= 1, got {self.maintain_budget}")
        if self.route_away_after is not None and not self.route_away_after > 0:
            raise ValueError(f"route_away_after must be positive, got {self.route_away_after}")
        for name in _POSITIVE:
            value = getattr(self, name)
            if not 0.0 < value < math.inf:  # also refuses NaN
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if not 0.0 <= self.min_retry_after < math.inf:
            raise ValueError(f"min_retry_after must not be negative, got {self.min_retry_after}")
        if not self.halt_backoff <= self.halt_backoff_max:
            raise ValueError(f"halt_backoff_max ({self.halt_backoff_max}) must not be below "
                             f"halt_backoff ({self.halt_backoff})")


_POSITIVE = ("heartbeat_timeout", "heartbeat_interval", "fast_call_limit", "slow_call_deadline",
             "startup_timeout", "shutdown_timeout", "attached_busy_timeout", "poison_window",
             "halt_backoff", "halt_backoff_max", "restart_window")
"""The durations that must be positive and finite (0 would mean "at once" or "never",
neither of which any of them can sensibly be)."""
