"""threadhost wire protocol, version 1: msgpack-framed, typed messages (sans-IO).

The normative specification is ``docs/protocol.md``; this module is its codec, the only one:
every message kind is declared once, below, as a :mod:`msgspec` ``Struct``, and msgspec
encodes and decodes *and validates* it in C (``tests/test_conformance.py`` checks that the
spec and this module describe the same kinds, codes, header and limit, and
``tests/test_golden.py`` pins the exact bytes of every kind against
``threadhost/data/golden.json``). No socket is touched here: ``encode`` turns a message into
ZeroMQ frames, ``decode`` turns frames back into a message or raises a typed
:class:`~threadhost.errors.ProtocolError`. pydantic is not imported: the broker process
never loads it.

Every threadhost message is exactly two ZeroMQ frames (after any ROUTER routing frames and
the optional REQ empty delimiter; R2, R4)::

    frame 0, header (3 bytes)
        +------+------+---------+
        | 0x54 | 0x48 | version |     "TH" signature, then the protocol version (0x01)
        +------+------+---------+
    frame 1, body (1 .. max_size bytes, default 1 MiB; R16)
        a msgpack map (str keys) whose "kind" entry names the message kind; the other
        entries are that kind's fields. ``encode`` writes the canonical form: "kind" first,
        then the fields in the order the structs below declare them (R6); ``decode``
        accepts any valid encoding and order (R7).

Message kinds, by direction (R10):

    client -> broker   call, describe, maintain, status, ping
    broker -> client   result, error, description, maintain_reply, status_reply, pong
    broker -> host     call, shutdown; heartbeat (to ID/hb: R52; a new broker's, or one
                       marked stranger, gets ready again on the call socket, R51)
    host   -> broker   ready, result, error, heartbeat, goodbye

Request ids are unsigned 64-bit integers chosen by the requester and echoed unchanged in the
answer (R9). Receivers ignore map entries they do not know (forward compatibility within a
version; R8). Field types are checked strictly (docs/protocol.md §3, "Strictness": no
coercion but int -> float). The header is checked before the body, and the size before
decoding: a wrong version raises :class:`~threadhost.errors.ProtocolMismatchError` (R12,
R13), anything else invalid a :class:`~threadhost.errors.ProtocolError` carrying the request
id when it could be read (R19, R22). Limits are arguments (``max_size``), never globals.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Final, TypeAlias

import msgspec

from threadhost.errors import ProtocolError, ProtocolMismatchError, ThreadhostError, error_class_for

__all__ = [
    "DEFAULT_MAX_SIZE",
    "HEADER",
    "MAX_REQUEST_ID",
    "MESSAGE_CLASSES",
    "PROTOCOL_VERSION",
    "SIGNATURE",
    "SUPPORTED_VERSIONS",
    "Call",
    "Describe",
    "Description",
    "ErrorCode",
    "ErrorReply",
    "Goodbye",
    "Heartbeat",
    "Maintain",
    "MaintainReply",
    "Message",
    "Ping",
    "Pong",
    "Ready",
    "Result",
    "Shutdown",
    "Status",
    "StatusReply",
    "check_header",
    "decode",
    "decode_body",
    "encode",
    "encode_body",
    "encode_call",
    "encode_result",
    "error_reply",
    "exception_from_error",
    "fields_of",
    "protocol_error",
]

SIGNATURE: Final = b"TH"
PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})
HEADER: Final = SIGNATURE + bytes([PROTOCOL_VERSION])
DEFAULT_MAX_SIZE: Final = 1 << 20  # 1 MiB body
MAX_REQUEST_ID: Final = (1 << 64) - 1


class ErrorCode(enum.StrEnum):
    """Error codes carried by ``error`` messages (see docs/protocol.md, "Error codes")."""

    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    UNKNOWN_CALL = "unknown_call"
    BAD_ARGUMENTS = "bad_arguments"
    REMOTE_EXCEPTION = "remote_exception"
    PROTOCOL = "protocol"
    VERSION = "version"
    FINGERPRINT = "fingerprint"
    ADAPTER = "adapter"
    POISONED = "poisoned"
    UNFIT = "unfit"
    PERMISSION_DENIED = "permission_denied"


#: A request id (R9): a msgpack integer (never a bool or a float) from 0 to 2^64-1; msgpack
#: has no larger integer, so the upper bound needs no check of its own.
RequestId: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]


class _Msg(msgspec.Struct, tag_field="kind"):
    """The base of every message: a msgpack map whose ``kind`` entry (the tag) comes first."""

    kind: ClassVar[str]


# --------------------------------------------------------------------------- client <-> broker


class Call(_Msg, tag="call"):
    """Invoke ``method`` with ``args``/``kwargs``. ``timeout`` is how long (seconds) the caller
    will wait; the broker need not forward a call whose caller gave up. ``fingerprint``, when
    set, must equal the served adapter's schema fingerprint (generated proxies send it)."""

    kind: ClassVar[str] = "call"
    id: RequestId
    method: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    timeout: float | None = None
    fingerprint: str | None = None


class Result(_Msg, tag="result"):
    """Successful answer to ``call`` with the same ``id``."""

    kind: ClassVar[str] = "result"
    id: RequestId
    value: Any = None


class ErrorReply(_Msg, tag="error"):
    """Failed answer to a request ``id`` (``None`` when the request's id could not be read)."""

    kind: ClassVar[str] = "error"
    id: RequestId | None
    code: ErrorCode
    message: str = ""
    retry_after: float | None = None
    remote_type: str | None = None
    traceback: str | None = None


class Describe(_Msg, tag="describe"):
    """Ask for the served adapter's description (calls, signatures, fingerprint)."""

    kind: ClassVar[str] = "describe"
    id: RequestId


class Description(_Msg, tag="description"):
    """Answer to ``describe``: ``adapter`` is the adapter's description (docs/protocol.md §4)."""

    kind: ClassVar[str] = "description"
    id: RequestId
    adapter: dict[str, Any]
    fingerprint: str
    protocol: int = PROTOCOL_VERSION


class Maintain(_Msg, tag="maintain"):
    """Ask the broker to run a slow call now (``method`` ``None``: the adapter's first)."""

    kind: ClassVar[str] = "maintain"
    id: RequestId
    method: str | None = None


class MaintainReply(_Msg, tag="maintain_reply"):
    """Answer to ``maintain``: whether the slow call started, and why (not). A refusal with a
    known retry time (the manual-maintenance rate limit, a policy's ``min_gap``, a round
    already running whose rest is measured...) carries it in ``retry_after`` (seconds; nil
    when unknown, and always nil when ``started``)."""

    kind: ClassVar[str] = "maintain_reply"
    id: RequestId
    started: bool
    reason: str = ""
    retry_after: float | None = None


class Status(_Msg, tag="status"):
    """Ask for the service status."""

    kind: ClassVar[str] = "status"
    id: RequestId


class StatusReply(_Msg, tag="status_reply"):
    """Answer to ``status``: a map (state, pids, generation, counters...; §4)."""

    kind: ClassVar[str] = "status_reply"
    id: RequestId
    status: dict[str, Any]


class Ping(_Msg, tag="ping"):
    """Liveness probe; answered with ``pong`` carrying the same id."""

    kind: ClassVar[str] = "ping"
    id: RequestId


class Pong(_Msg, tag="pong"):
    """Answer to ``ping``."""

    kind: ClassVar[str] = "pong"
    id: RequestId


# --------------------------------------------------------------------------- broker <-> host


class Ready(_Msg, tag="ready"):
    """Host -> broker, once: the adapter is loaded and ``setup`` ran on the library thread.
    ``proof``: a host started by the broker proves it with the run's secret (§13, R62)."""

    kind: ClassVar[str] = "ready"
    host_id: str
    pid: int
    adapter: dict[str, Any]
    fingerprint: str
    proof: str | None = None


class Heartbeat(_Msg, tag="heartbeat"):
    """Host -> broker, at least every heartbeat interval, from a thread that never runs
    library code; ``busy_id`` is the request id the library thread is running, if any (R41).
    Broker -> host too (R52): to ``ID/hb`` every interval, ``host_id`` carrying the broker's
    instance token and ``pid`` its pid; a host answers a new broker's with ``ready`` again
    (R51) and nothing else (R43). ``stranger`` (broker -> host only): true in a broker's
    answer to a heartbeat from a host it has not adopted, "I have no ``ready`` from you":
    the host sends its ``ready`` again (R51, R52)."""

    kind: ClassVar[str] = "heartbeat"
    host_id: str = ""
    pid: int = 0
    busy_id: RequestId | None = None
    busy_for: float = 0.0
    stranger: bool = False


class Shutdown(_Msg, tag="shutdown"):
    """Broker -> host: finish the current call, run ``teardown`` on the library thread, exit."""

    kind: ClassVar[str] = "shutdown"
    reason: str = ""


class Goodbye(_Msg, tag="goodbye"):
    """Host -> broker: the host is exiting (after teardown, or because setup/load failed)."""

    kind: ClassVar[str] = "goodbye"
    host_id: str
    ok: bool = True
    code: ErrorCode | None = None
    message: str = ""


Message: TypeAlias = (
    Call
    | Result
    | ErrorReply
    | Describe
    | Description
    | Maintain
    | MaintainReply
    | Status
    | StatusReply
    | Ping
    | Pong
    | Ready
    | Heartbeat
    | Shutdown
    | Goodbye
)

MESSAGE_CLASSES: Final[tuple[type[Any], ...]] = (
    Call,
    Result,
    ErrorReply,
    Describe,
    Description,
    Maintain,
    MaintainReply,
    Status,
    StatusReply,
    Ping,
    Pong,
    Ready,
    Heartbeat,
    Shutdown,
    Goodbye,
)
BY_KIND: Final[dict[str, type[Any]]] = {cls.kind: cls for cls in MESSAGE_CLASSES}


def fields_of(msg: Any) -> dict[str, Any]:
    """The fields of ``msg`` in canonical order, ``kind`` first (for JSON, logs and tests)."""
    return {"kind": msg.kind, **{name: getattr(msg, name) for name in msg.__struct_fields__}}


# --------------------------------------------------------------------------- encode


def _enc_hook(value: Any) -> Any:
    """Values msgspec does not encode by itself: a pydantic model goes as its python dump
    (then encoded like any other data); anything else cannot be carried."""
    dump = getattr(value, "model_dump", None)
    if callable(dump) and hasattr(type(value), "model_fields"):
        return dump(mode="python")
    raise TypeError(f"a {type(value).__qualname__} cannot be carried")


_encoder: Final = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_encode: Final[Callable[[Any], bytes]] = _encoder.encode


def encode_body(msg: Message) -> bytes:
    """The canonical msgpack body of ``msg``: ``kind``, then the fields in order (R6)."""
    return _encode(msg)


def encode(msg: Message) -> list[bytes]:
    """The two frames (header, body) of ``msg``. Deterministic: equal messages give equal
    bytes (field order is declaration order)."""
    return [HEADER, _encode(msg)]


def encode_call(
    rid: int,
    method: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
    fingerprint: str | None,
) -> bytes:
    """The body of a ``call`` (a client's hot path)."""
    return _encode(Call(rid, method, args, kwargs, timeout, fingerprint))


def encode_result(rid: int, value: Any) -> bytes:
    """The body of a ``result`` (a host's hot path)."""
    return _encode(Result(rid, value))


# --------------------------------------------------------------------------- decode

_decode: Final[Callable[[bytes], Any]] = msgspec.msgpack.Decoder(Message).decode
_decode_any: Final[Callable[[bytes], Any]] = msgspec.msgpack.Decoder().decode
_AT: Final = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING_FIELD: Final = re.compile(r"^Object missing required field `(?P<name>[^`]*)`$")


def protocol_error(message: str, request_id: int | None = None) -> ProtocolError:
    """A :class:`ProtocolError` addressed to ``request_id`` (``None``: id unreadable)."""
    err = ProtocolError(message)
    err.request_id = request_id
    return err


def _readable_id(raw: Any) -> int | None:
    rid = raw.get("id") if type(raw) is dict else None
    return rid if type(rid) is int and 0 <= rid <= MAX_REQUEST_ID else None


def _problem(exc: msgspec.ValidationError) -> str:
    """``path: what`` from msgspec's ``what - at `$.path` `` wording."""
    found = _AT.match(str(exc))
    what, path = (found["what"], found["path"] or "") if found else (str(exc), "")
    missing = _MISSING_FIELD.match(what)
    if missing:
        name = missing["name"]
        path = f"{path}.{name}" if path else name
        what = "required field missing"
    path = path.lstrip(".")
    return f"{path}: {what}" if path else what


def _invalid(body: bytes, exc: msgspec.ValidationError) -> ProtocolError:
    """The :class:`ProtocolError` for a well-formed msgpack body that is not a valid
    message: worded by what is wrong, addressed to its id when readable (R19, R22)."""
    try:
        raw = _decode_any(body)
    except msgspec.DecodeError as bad:  # the type was wrong at once, and the rest is garbage
        return protocol_error(f"body is not valid msgpack: {bad}")
    except Exception:  # e.g. a map as a map key: valid msgpack, no Python value
        return protocol_error(f"body is not a valid message: {_problem(exc)}")
    rid = _readable_id(raw)
    if type(raw) is not dict:
        return protocol_error("body is not a msgpack map", rid)
    kind = raw.get("kind")
    if type(kind) is not str or kind not in BY_KIND:
        return protocol_error(f"unknown message kind {kind!r}", rid)
    return protocol_error(f"invalid {kind} message: {_problem(exc)}", rid)


def decode_body(body: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Message:
    """Decode one message body (the header already checked); raises :class:`ProtocolError`
    (with the request id when it could be read) for anything that is not a valid message."""
    if len(body) > max_size:
        raise protocol_error(f"body of {len(body)} bytes exceeds the limit of {max_size} bytes")
    try:
        return _decode(body)  # type: ignore[no-any-return]
    except msgspec.ValidationError as exc:
        raise _invalid(body, exc) from None
    except Exception as exc:  # msgspec.DecodeError, and deep nesting's RecursionError
        raise protocol_error(f"body is not valid msgpack: {exc}") from None


def decode(frames: Sequence[bytes], *, max_size: int = DEFAULT_MAX_SIZE) -> Message:
    """Parse the two frames of one message.

    Raises :class:`ProtocolMismatchError` for a valid signature with an unsupported version,
    and :class:`ProtocolError` for anything else that is not a valid message (wrong frame
    count, bad signature, oversized or undecodable body, unknown kind, invalid fields). The
    raised error's ``request_id`` attribute holds the request id when it could be read, so
    the receiver can address its error reply.
    """
    if len(frames) != 2:
        raise protocol_error(f"expected 2 frames (header, body), got {len(frames)}")
    header = frames[0]
    if header != HEADER:
        check_header(header)
    return decode_body(frames[1], max_size)


def check_header(header: bytes) -> None:
    """Raise the error a header other than :data:`HEADER` deserves (R12, R13)."""
    if header == HEADER:
        return
    if len(header) != 3 or header[:2] != SIGNATURE:
        raise protocol_error(f"bad header {bytes(header[:8])!r}: not a threadhost message")
    version = header[2]
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolMismatchError(
            f"protocol version {version} not supported (supported: "
            f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})"
        )


# --------------------------------------------------------------------------- errors

_CODES: Final = {c.value: c for c in ErrorCode}


def error_reply(request_id: int | None, exc: ThreadhostError) -> ErrorReply:
    """The ``error`` message that carries ``exc`` to the peer."""
    code = _CODES.get(exc.code, ErrorCode.REMOTE_EXCEPTION)
    return ErrorReply(
        request_id,
        code,
        exc.message or str(exc),
        getattr(exc, "retry_after", None),
        getattr(exc, "remote_type", None),
        getattr(exc, "remote_traceback", None),
    )


def exception_from_error(reply: ErrorReply) -> ThreadhostError:
    """The typed exception a client raises for an ``error`` message."""
    code = reply.code
    cls = error_class_for(code.value)
    exc: ThreadhostError
    if code is ErrorCode.BUSY or code is ErrorCode.UNAVAILABLE:
        exc = cls(reply.message, retry_after=reply.retry_after)  # type: ignore[call-arg]
    elif code is ErrorCode.REMOTE_EXCEPTION:
        exc = cls(  # type: ignore[call-arg]
            reply.message, remote_type=reply.remote_type, remote_traceback=reply.traceback
        )
    else:
        exc = cls(reply.message)
    return exc
