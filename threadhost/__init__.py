"""threadhost: host a thread-hostile, slow, crash-prone library in its own process.

The library runs on one thread of a supervised *host* process; a *broker* in front answers
"busy, retry later" at once while a slow call (e.g. a configuration reload) runs, instead
of making the caller wait. See README.md and docs/.
"""

from threadhost.adapter import Adapter, fast, load_adapter, slow
from threadhost.client import AsyncClient, Client, connect
from threadhost.errors import (
    AdapterError,
    BadArgumentsError,
    BusyError,
    CallTimeoutError,
    FingerprintMismatchError,
    HostCrashedError,
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

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Adapter",
    "AdapterError",
    "AsyncClient",
    "BadArgumentsError",
    "BusyError",
    "CallTimeoutError",
    "Client",
    "FingerprintMismatchError",
    "HostCrashedError",
    "ProtocolError",
    "ProtocolMismatchError",
    "RemoteError",
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
