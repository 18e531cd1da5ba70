"""The pool's records: one :class:`HostRecord` per host process, kept in :class:`Pool`.

A record holds what the gate knows about one host: its state (moved only through
:meth:`HostRecord.move`, checked against ``HOST_TRANSITIONS``), its fast calls in flight
(by the broker's request id, oldest first), the slow call it runs, and what it has done
(``generation``: slow calls completed; ``epoch``: the maintenance round its state is
from). Hosts sit in *slots* (``0 .. hosts-1``): a replacement takes the slot of the host
it replaces, so ``restarts`` per slot survive the replacement.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from threadhost.gate.states import HOST_TRANSITIONS, HostState, advance

__all__ = ["FastCall", "HostRecord", "Pool", "SlowRun"]


@dataclass(slots=True)
class FastCall:
    """A client's fast call forwarded to a host under the broker's own id."""

    route: tuple[bytes, ...]
    client_id: int
    method: str
    started: float
    args: Any = None
    kwargs: Any = None


@dataclass(slots=True)
class SlowRun:
    """The slow call a host runs: broker id, call name, start time, why it runs."""

    rid: int
    name: str
    started: float
    why: str
    startup: bool


@dataclass(slots=True)
class HostRecord:
    host_id: str
    slot: int
    started: float
    last_heartbeat: float
    state: HostState = HostState.STARTING
    pid: int | None = None
    calls: dict[int, FastCall] = field(default_factory=dict)
    slow: SlowRun | None = None
    startup_queue: deque[str] = field(default_factory=deque)
    generation: int = 0
    epoch: int = 0
    last_used: int = 0
    killed: str | None = None
    """Set once a kill (or, attached, a death verdict) was decided: the reason."""
    last_maintenance: dict[str, Any] | None = None
    left: bool = False
    """It said ``goodbye`` with ``ok``: its exit is a departure, not a failure (the restart
    budget is not charged; it is still replaced)."""
    waiting: bool = False
    """Before ``ready``: it waits for the previous instance of its slot to exit (it says
    so with heartbeats whose ``busy_id`` is 0); no start-up timeout meanwhile."""

    def move(self, new: HostState) -> None:
        """Change state through the host transition table (raises on an illegal move)."""
        self.state = advance(HOST_TRANSITIONS, self.state, new)

    def oldest_call(self) -> FastCall | None:
        for entry in self.calls.values():  # insertion order: oldest first
            return entry
        return None


class Pool:
    """The hosts of one service, by id, each in a slot; ``restarts`` counted per slot."""

    def __init__(self, size: int | None) -> None:
        self.size = size
        """Slots (``None``: attach mode without a limit, slots are added as hosts come)."""
        self.hosts: dict[str, HostRecord] = {}
        self.restarts: list[int] = [0] * (size or 0)
        self._occupied: set[int] = set()  # slots that ever held a host
        self._seq = 0

    def __iter__(self) -> Iterator[HostRecord]:
        return iter(self.hosts.values())

    def __len__(self) -> int:
        return len(self.hosts)

    def get(self, host_id: str) -> HostRecord | None:
        return self.hosts.get(host_id)

    def next_id(self) -> str:
        self._seq += 1
        return f"h{self._seq}"

    def free_slot(self) -> int | None:
        """The lowest slot without a host, or None when the pool is full."""
        used = {h.slot for h in self.hosts.values()}
        limit = self.size if self.size is not None else len(self.restarts) + 1
        for slot in range(limit):
            if slot not in used:
                return slot
        return None

    def add(self, host_id: str, slot: int, now: float) -> HostRecord:
        """A new host in ``slot``; a slot that held a host before counts a restart."""
        while len(self.restarts) <= slot:
            self.restarts.append(0)
        if slot in self._occupied:
            self.restarts[slot] += 1
        self._occupied.add(slot)
        host = HostRecord(host_id=host_id, slot=slot, started=now, last_heartbeat=now)
        self.hosts[host_id] = host
        return host

    def remove(self, host_id: str) -> HostRecord | None:
        return self.hosts.pop(host_id, None)

    def in_state(self, *states: HostState) -> list[HostRecord]:
        return [h for h in self.hosts.values() if h.state in states]
