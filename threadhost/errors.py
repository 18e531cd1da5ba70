"""The exceptions a threadhost caller can see.

A caller decides what to do from the exception type alone::

    ThreadhostError                   root of everything threadhost raises
    ├── TryLaterError                 cannot take the call now; has retry_after
    │   ├── BusyError                 a slow call (maintenance) runs; the gate answered at once
    │   └── UnavailableError          no host is ready (starting, restarting, shutting down),
    │                                 or no service at the endpoint (the call was not sent)
    ├── ServiceFailedError            the service gave up (restart limit reached); permanent
    ├── CallTimeoutError              sent, no answer within the caller's timeout (a TimeoutError)
    ├── HostCrashedError              the host died while running the call; outcome unknown
    ├── UnknownCallError              the adapter declares no such client-callable call
    ├── BadArgumentsError             arguments do not match the signature or cannot be carried
    ├── RemoteError                   the library raised; carries remote type, message, traceback
    ├── PoisonedCallError             this call killed hosts again and again: quarantined
    ├── UnfitError                    (host to broker) ``verify`` failed: instance not fit
    ├── AuthenticationError           (client side) the CURVE handshake failed: key refused
    ├── PermissionDeniedError         the caller's key lacks the role (e.g. maintain)
    ├── ProtocolError                 a peer sent bytes that are not valid threadhost protocol
    │   ├── ProtocolMismatchError     peer speaks another protocol version
    │   └── FingerprintMismatchError  a generated proxy does not match the served adapter
    └── AdapterError                  an adapter is declared wrongly or cannot be loaded

Each wire error code (``threadhost.protocol.ErrorCode``) maps to exactly one class here,
see :func:`error_from_code`.
"""

from __future__ import annotations

__all__ = [
    "AdapterError",
    "AuthenticationError",
    "BadArgumentsError",
    "BusyError",
    "CallTimeoutError",
    "FingerprintMismatchError",
    "HostCrashedError",
    "PermissionDeniedError",
    "PoisonedCallError",
    "ProtocolError",
    "ProtocolMismatchError",
    "RemoteError",
    "ServiceFailedError",
    "ThreadhostError",
    "TryLaterError",
    "UnavailableError",
    "UnfitError",
    "UnknownCallError",
]


class ThreadhostError(Exception):
    """Root of every error threadhost raises.

    ``code`` is the wire error code (see ``threadhost.protocol.ErrorCode``) when the error
    came from a peer, else a local code.
    """

    code: str = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class TryLaterError(ThreadhostError):
    """Raised when the service is healthy but cannot take this call right now.

    ``retry_after`` is the server's estimate, in seconds, of when a retry may succeed
    (``None`` when it has no estimate).
    """

    code = "try_later"

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BusyError(TryLaterError):
    """Raised when a slow call (maintenance, e.g. readConfig) is running: the gate rejected
    the call at once without touching the library."""

    code = "busy"


class UnavailableError(TryLaterError):
    """Raised when no host is ready: the service is starting, restarting after a crash,
    or shutting down. A client raises it too when no service at the endpoint accepts the
    connection ("no service at tcp://..."): the call was not sent."""

    code = "unavailable"


class ServiceFailedError(ThreadhostError):
    """Raised when the service gave up restarting its host (restart limit reached).
    Retrying will not help until an operator intervenes."""

    code = "failed"


class CallTimeoutError(ThreadhostError, TimeoutError):
    """Raised when no answer arrived within the caller's timeout to a call that was sent.
    The call may or may not have run."""

    code = "timeout"


class HostCrashedError(ThreadhostError):
    """Raised when the host process died (or was killed by a watchdog) while the call was
    in flight. The outcome is unknown: the call may have run."""

    code = "crashed"


class UnknownCallError(ThreadhostError):
    """Raised when the adapter declares no client-callable call of that name (private names,
    ``setup``/``teardown`` and slow calls are never client-callable)."""

    code = "unknown_call"


class BadArgumentsError(ThreadhostError):
    """Raised when the arguments do not fit the declared signature, or hold a value the
    protocol cannot carry (``2**70``, a set, an arbitrary object: refused by the client
    before anything is sent). They were refused before reaching the library."""

    code = "bad_arguments"


class RemoteError(ThreadhostError):
    """Raised when the library (adapter code) raised an exception. Carries the remote
    exception's type name, message and formatted traceback text."""

    code = "remote_exception"

    def __init__(
        self,
        message: str = "",
        remote_type: str | None = None,
        remote_traceback: str | None = None,
    ) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        if self.remote_type:
            return f"{self.remote_type}: {self.message}"
        return self.message


class ProtocolError(ThreadhostError):
    """Raised when bytes received are not valid threadhost protocol (bad signature,
    undecodable body, unknown kind, oversized frame). ``request_id`` is the id of the
    offending request when it could be read."""

    code = "protocol"
    request_id: int | None = None


class ProtocolMismatchError(ProtocolError):
    """Raised when the peer speaks a protocol version this side does not."""

    code = "version"


class FingerprintMismatchError(ProtocolError):
    """Raised when a generated proxy's schema fingerprint differs from the served
    adapter's: regenerate the proxy (``threadhost proxy``)."""

    code = "fingerprint"


class AdapterError(ThreadhostError):
    """Raised when an adapter cannot be loaded or is declared wrongly; the message names
    the module, class and method to blame."""

    code = "adapter"


class PoisonedCallError(ThreadhostError):
    """Raised when this very call (method and arguments) killed hosts again and again: it is
    quarantined and refused without reaching any host, until the service restarts."""

    code = "poisoned"


class UnfitError(ThreadhostError):
    """Raised (by a host, toward its broker) when the adapter's ``verify`` failed after a
    slow call: the library instance is not fit to serve. Callers see ``UnavailableError``."""

    code = "unfit"


class AuthenticationError(ThreadhostError):
    """Raised by a client when the service refused its connection during the security
    handshake: its key is not allowed (unknown key), the server key is wrong, or one side
    uses CURVE and the other does not. Nothing was sent, nothing ran. Client side only: a
    failed CURVE handshake is silent on the wire (docs/protocol.md §13)."""

    code = "authentication"


class PermissionDeniedError(ThreadhostError):
    """Raised when the caller's key does not have the role a request needs: ``maintain``
    and ``shutdown`` need an operator key (docs/security.md). Nothing ran."""

    code = "permission_denied"


_BY_CODE: dict[str, type[ThreadhostError]] = {
    cls.code: cls
    for cls in (
        BusyError,
        UnavailableError,
        ServiceFailedError,
        CallTimeoutError,
        HostCrashedError,
        UnknownCallError,
        BadArgumentsError,
        RemoteError,
        ProtocolError,
        ProtocolMismatchError,
        FingerprintMismatchError,
        AdapterError,
        PoisonedCallError,
        UnfitError,
        PermissionDeniedError,
    )
}


def error_class_for(code: str) -> type[ThreadhostError]:
    """The exception class for a wire error code; unknown codes map to the root."""
    return _BY_CODE.get(code, ThreadhostError)
