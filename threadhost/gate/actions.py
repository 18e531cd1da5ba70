"""What the gate asks its shell to do: frozen, plain data (the shell only carries them out)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = ["Action", "KillHost", "Log", "StartHost", "Stopped", "ToClient", "ToHost"]


@dataclass(frozen=True, slots=True)
class ToClient:
    """Send ``message`` to the client whose routing envelope is ``route``."""

    route: tuple[bytes, ...]
    message: Any


@dataclass(frozen=True, slots=True)
class ToHost:
    """Send ``message`` to host ``host_id``: to its call socket (routing id ``ID``), or to
    its heartbeat socket (``ID/hb``) when ``heartbeat_socket`` is set (broker heartbeats)."""

    host_id: str
    message: Any
    heartbeat_socket: bool = False


@dataclass(frozen=True, slots=True)
class StartHost:
    """Start a new host process named ``host_id`` for pool slot ``slot`` (one library
    instance per slot: the host holds the slot's lock while its library is alive)."""

    host_id: str
    reason: str
    slot: int = 0


@dataclass(frozen=True, slots=True)
class KillHost:
    """Kill host ``host_id`` at once (SIGKILL); its exit is reported back as an event."""

    host_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "info" | "warning" | "error"
    text: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The service is finished; the shell exits with ``exit_code``."""

    exit_code: int
    reason: str


Action: TypeAlias = ToClient | ToHost | StartHost | KillHost | Log | Stopped
