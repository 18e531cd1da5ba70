"""threadhost: host a thread-hostile, slow, crash-prone library in its own process.

The library runs on one thread of a supervised *host* process; a *broker* in front answers
"busy, retry later" at once while a slow call (e.g. a configuration reload) runs, instead
of making the caller wait. See README.md and docs/.
"""

from typing import TYPE_CHECKING, Any

from threadhost.errors import (
    AdapterError,
    AuthenticationError,
    BadArgumentsError,
    BusyError,
    CallTimeoutError,
    FingerprintMismatchError,
    HostCrashedError,
    PermissionDeniedError,
    PoisonedCallError,
    ProtocolError,
    ProtocolMismatchError,
    RemoteError,
    ServiceFailedError,
    ThreadhostError,
    TryLaterError,
    UnavailableError,
    UnknownCallError,
)
from threadhost.protocol import PROTOCOL_VERSION

if TYPE_CHECKING:
    from threadhost.adapter import Adapter, fast, load_adapter, slow
    from threadhost.client import AsyncClient, Client, Retry, connect

# Loaded on first use (PEP 562): the broker process imports this package too, and must
# not pay for pydantic, asyncio and the adapter machinery it never uses.
_LAZY = {
    "Adapter": "threadhost.adapter",
    "fast": "threadhost.adapter",
    "slow": "threadhost.adapter",
    "load_adapter": "threadhost.adapter",
    "AsyncClient": "threadhost.client",
    "Client": "threadhost.client",
    "Retry": "threadhost.client",
    "connect": "threadhost.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'threadhost' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Adapter",
    "AdapterError",
    "AsyncClient",
    "AuthenticationError",
    "BadArgumentsError",
    "BusyError",
    "CallTimeoutError",
    "Client",
    "FingerprintMismatchError",
    "HostCrashedError",
    "PermissionDeniedError",
    "PoisonedCallError",
    "ProtocolError",
    "ProtocolMismatchError",
    "RemoteError",
    "Retry",
    "ServiceFailedError",
    "ThreadhostError",
    "TryLaterError",
    "UnavailableError",
    "UnknownCallError",
    "__version__",
    "connect",
    "fast",
    "load_adapter",
    "slow",
]
