"""Service and host states, and the transitions allowed between them.

Each state machine is a table ``{state: frozenset(states it may move to)}``; :func:`advance`
is the only way a state changes, and a move the table does not list raises
:class:`IllegalTransition` (the state is left unchanged). Rules decide *which* state comes
next; the tables say which moves can ever make sense, so a rule that goes wrong fails loudly
in the unit tests instead of serving from a state nobody designed.

A host (one process, one library instance)::

    starting ──ready──▶ startup ──start-up slow calls done──▶ ready ◀──────────┐
                                                               │ rollout picks it │
                                                               ▼                  │
                                                  draining ──no call in flight──▶ maintaining
    any ──shutdown──▶ stopping;   any ──process gone──▶ (removed from the pool)

``draining``: out of rotation, its fast calls finishing, its slow call next.

The service's state summarises its hosts (:func:`service_state`): ``maintaining`` while a
host runs (or drains for) a maintenance slow call, else ``ready`` while any host serves,
else ``startup`` while a host runs its start-up slow calls, else ``starting`` (never served
yet) or ``restarting``; ``failed``, ``stopping`` and ``stopped`` are final decisions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TypeVar

__all__ = [
    "HOST_TRANSITIONS",
    "SERVICE_TRANSITIONS",
    "GateState",
    "HostState",
    "IllegalTransition",
    "advance",
    "service_state",
]


class GateState(enum.StrEnum):
    """The service's state (shown by ``threadhost status``)."""

    STARTING = "starting"
    STARTUP = "startup"
    READY = "ready"
    MAINTAINING = "maintaining"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


class HostState(enum.StrEnum):
    """One host's state."""

    STARTING = "starting"
    STARTUP = "startup"
    READY = "ready"
    DRAINING = "draining"
    MAINTAINING = "maintaining"
    STOPPING = "stopping"


class IllegalTransition(RuntimeError):
    """A rule tried a move its state table does not allow (a bug, never user input)."""


_G = GateState
_H = HostState
_LIVE = frozenset({_G.STARTUP, _G.READY, _G.MAINTAINING, _G.RESTARTING})
_ENDINGS = frozenset({_G.FAILED, _G.STOPPING, _G.STOPPED})

SERVICE_TRANSITIONS: Mapping[GateState, frozenset[GateState]] = {
    # before the gate ever opened; a host dying then may leave it "starting" (attach mode)
    _G.STARTING: frozenset({_G.STARTUP, _G.READY, _G.FAILED, _G.STOPPING, _G.STOPPED}),
    _G.STARTUP: (_LIVE | _ENDINGS | {_G.STARTING}) - {_G.STARTUP},
    _G.READY: (_LIVE | _ENDINGS) - {_G.READY},
    _G.MAINTAINING: (_LIVE | _ENDINGS) - {_G.MAINTAINING},
    _G.RESTARTING: (_LIVE | _ENDINGS) - {_G.RESTARTING},
    _G.FAILED: frozenset({_G.STOPPING, _G.STOPPED}),
    _G.STOPPING: frozenset({_G.STOPPED}),
    _G.STOPPED: frozenset(),
}

HOST_TRANSITIONS: Mapping[HostState, frozenset[HostState]] = {
    _H.STARTING: frozenset({_H.STARTUP, _H.STOPPING}),
    _H.STARTUP: frozenset({_H.READY, _H.STOPPING}),
    _H.READY: frozenset({_H.DRAINING, _H.MAINTAINING, _H.STOPPING}),
    _H.DRAINING: frozenset({_H.MAINTAINING, _H.READY, _H.STOPPING}),
    _H.MAINTAINING: frozenset({_H.READY, _H.STOPPING}),
    _H.STOPPING: frozenset(),
}

S = TypeVar("S", GateState, HostState)


def advance(table: Mapping[S, frozenset[S]], current: S, new: S) -> S:
    """``new`` if the table allows ``current -> new`` (staying put is always allowed);
    else :class:`IllegalTransition`."""
    if new is current or new in table[current]:
        return new
    raise IllegalTransition(f"illegal transition {current.value} -> {new.value}")


def service_state(
    current: GateState,
    hosts: Iterable[HostState],
    *,
    ever_ready: bool,
    failed: bool,
    stopping: bool,
    stopped: bool,
) -> GateState:
    """The service state the hosts' states call for (not yet checked against the table)."""
    if stopped:
        return _G.STOPPED
    if stopping:
        return _G.STOPPING
    if failed:
        return _G.FAILED
    seen = set(hosts)
    if _H.DRAINING in seen or _H.MAINTAINING in seen:
        return _G.MAINTAINING
    if _H.READY in seen:
        return _G.READY
    if _H.STARTUP in seen:
        return _G.STARTUP
    return _G.RESTARTING if ever_ready else _G.STARTING
