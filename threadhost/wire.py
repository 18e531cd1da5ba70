"""The lean codec: protocol v1 messages as plain slotted classes, no pydantic on the way.

:mod:`threadhost.protocol` is the reference codec (pydantic models, the spec's wording).
This module speaks exactly the same protocol for the processes where every microsecond and
megabyte counts: the broker (which imports nothing of pydantic in normal operation), and
the hot paths of clients and hosts (``call`` out, ``result`` back).

Equivalence with the reference codec is by construction, not by imitation:

* every message class here has the same name, fields, field order and defaults as the
  model of the same name in :mod:`threadhost.protocol` (``tests/test_wire.py`` compares them);
* :func:`decode` accepts a body on its fast path only when every field already has the
  exact Python type the model would produce (``type(x) is int`` for an id, ``str`` for a
  name...); it then builds the message from those values, which is what pydantic does for
  such input. Undecodable bytes, a body that is not a map and an unknown kind are refused
  here, in the reference codec's words. Anything else — a coercion pydantic would make
  (``1`` for a ``float``), an invalid field of a known kind — goes to the reference codec
  (imported on first need), so it is accepted, coerced or rejected with pydantic's own
  decision and wording;
* :func:`encode` packs ``kind`` then the fields in declaration order: the canonical form,
  byte for byte what :func:`threadhost.protocol.encode` writes (R6; pinned by the golden
  vectors).

``tests/test_wire.py`` checks both directions with hypothesis against the reference codec.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias

import msgpack

from threadhost.errors import ProtocolError, ProtocolMismatchError, ThreadhostError, error_class_for

__all__ = [
    "DEFAULT_MAX_SIZE",
    "HEADER",
    "MAX_REQUEST_ID",
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
    "decode",
    "decode_body",
    "encode",
    "error_reply",
    "exception_from_error",
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


# --------------------------------------------------------------------------- messages
# Same names, fields, order and defaults as the models in threadhost.protocol.


@dataclass(slots=True)
class Call:
    kind: ClassVar[str] = "call"
    id: int
    method: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    fingerprint: str | None = None


@dataclass(slots=True)
class Result:
    kind: ClassVar[str] = "result"
    id: int
    value: Any = None


@dataclass(slots=True)
class ErrorReply:
    kind: ClassVar[str] = "error"
    id: int | None
    code: ErrorCode
    message: str = ""
    retry_after: float | None = None
    remote_type: str | None = None
    traceback: str | None = None


@dataclass(slots=True)
class Describe:
    kind: ClassVar[str] = "describe"
    id: int


@dataclass(slots=True)
class Description:
    kind: ClassVar[str] = "description"
    id: int
    adapter: dict[str, Any]
    fingerprint: str
    protocol: int = PROTOCOL_VERSION


@dataclass(slots=True)
class Maintain:
    kind: ClassVar[str] = "maintain"
    id: int
    method: str | None = None


@dataclass(slots=True)
class MaintainReply:
    kind: ClassVar[str] = "maintain_reply"
    id: int
    started: bool
    reason: str = ""


@dataclass(slots=True)
class Status:
    kind: ClassVar[str] = "status"
    id: int


@dataclass(slots=True)
class StatusReply:
    kind: ClassVar[str] = "status_reply"
    id: int
    status: dict[str, Any]


@dataclass(slots=True)
class Ping:
    kind: ClassVar[str] = "ping"
    id: int


@dataclass(slots=True)
class Pong:
    kind: ClassVar[str] = "pong"
    id: int


@dataclass(slots=True)
class Ready:
    kind: ClassVar[str] = "ready"
    host_id: str
    pid: int
    adapter: dict[str, Any]
    fingerprint: str
    proof: str | None = None


@dataclass(slots=True)
class Heartbeat:
    kind: ClassVar[str] = "heartbeat"
    host_id: str = ""
    pid: int = 0
    busy_id: int | None = None
    busy_for: float = 0.0


@dataclass(slots=True)
class Shutdown:
    kind: ClassVar[str] = "shutdown"
    reason: str = ""


@dataclass(slots=True)
class Goodbye:
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
_FIELDS: Final[dict[type[Any], tuple[str, ...]]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in MESSAGE_CLASSES
}

_packb: Callable[[Any], bytes] = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_unpackb: Callable[..., Any] = msgpack.unpackb


# --------------------------------------------------------------------------- encode


def encode_body(msg: Message) -> bytes:
    """The canonical msgpack body of ``msg``: ``kind``, then the fields in order (R6)."""
    if type(msg) is Result:  # the hot kinds, spelled out
        return _packb({"kind": "result", "id": msg.id, "value": msg.value})
    if type(msg) is Call:
        return _packb(
            {
                "kind": "call",
                "id": msg.id,
                "method": msg.method,
                "args": msg.args,
                "kwargs": msg.kwargs,
                "timeout": msg.timeout,
                "fingerprint": msg.fingerprint,
            }
        )
    body = {"kind": msg.kind}
    for name in _FIELDS[type(msg)]:
        body[name] = getattr(msg, name)
    return _packb(body)


def encode(msg: Message) -> list[bytes]:
    """The two frames (header, body) of ``msg``; the same bytes as the reference codec."""
    return [HEADER, encode_body(msg)]


def encode_call(
    rid: int,
    method: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float | None,
    fingerprint: str | None,
) -> bytes:
    """The body of a ``call`` (a client's hot path: no message object in between)."""
    return _packb(
        {
            "kind": "call",
            "id": rid,
            "method": method,
            "args": args,
            "kwargs": kwargs,
            "timeout": timeout,
            "fingerprint": fingerprint,
        }
    )


def encode_result(rid: int, value: Any) -> bytes:
    """The body of a ``result`` (a host's and the broker's hot path)."""
    return _packb({"kind": "result", "id": rid, "value": value})


# --------------------------------------------------------------------------- decode
#
# Per kind, a reader that returns the message when every field present has the exact type
# the model would produce, or None ("ask the reference codec"). Missing optional fields
# take the model's defaults; a missing required field is a None.

_MISSING: Final = object()
_Reader: TypeAlias = Callable[[dict[Any, Any]], Any]


def _rid(v: object) -> bool:
    return type(v) is int and 0 <= v <= MAX_REQUEST_ID


def _opt_float(v: object) -> tuple[bool, float | None]:
    t = type(v)
    if v is None or t is float:
        return True, v  # type: ignore[return-value]
    if t is int and -(1 << 53) <= v <= (1 << 53):  # type: ignore[operator]
        return True, float(v)  # type: ignore[arg-type]
    return False, None


def _str_keys(d: dict[Any, Any]) -> bool:
    return not d or all(type(k) is str for k in d)


def _read_call(raw: dict[Any, Any]) -> Call | None:
    rid = raw.get("id", _MISSING)
    method = raw.get("method", _MISSING)
    args = raw.get("args", _MISSING)
    kwargs = raw.get("kwargs", _MISSING)
    fp = raw.get("fingerprint")
    if not _rid(rid) or type(method) is not str or (fp is not None and type(fp) is not str):
        return None
    if args is _MISSING:
        args = []
    elif type(args) is not list:
        return None
    if kwargs is _MISSING:
        kwargs = {}
    elif type(kwargs) is not dict or not _str_keys(kwargs):
        return None
    ok, timeout = _opt_float(raw.get("timeout"))
    if not ok:
        return None
    return Call(rid, method, args, kwargs, timeout, fp)


def _read_result(raw: dict[Any, Any]) -> Result | None:
    rid = raw.get("id", _MISSING)
    if not _rid(rid):
        return None
    return Result(rid, raw.get("value"))


_CODES: Final = {c.value: c for c in ErrorCode}


def _opt_str(v: object) -> bool:
    return v is None or type(v) is str


def _read_error(raw: dict[Any, Any]) -> ErrorReply | None:
    rid = raw.get("id", _MISSING)
    code = _CODES.get(raw.get("code")) if type(raw.get("code")) is str else None  # type: ignore[arg-type]
    message = raw.get("message", "")
    remote_type = raw.get("remote_type")
    tb = raw.get("traceback")
    if (
        (rid is not None and not _rid(rid))
        or code is None
        or type(message) is not str
        or not _opt_str(remote_type)
        or not _opt_str(tb)
    ):
        return None
    ok, retry_after = _opt_float(raw.get("retry_after"))
    if not ok:
        return None
    return ErrorReply(rid, code, message, retry_after, remote_type, tb)


def _read_id_only(cls: type[Any]) -> _Reader:
    def read(raw: dict[Any, Any]) -> Any:
        rid = raw.get("id", _MISSING)
        return cls(rid) if _rid(rid) else None

    return read


def _read_maintain(raw: dict[Any, Any]) -> Maintain | None:
    rid = raw.get("id", _MISSING)
    method = raw.get("method")
    if not _rid(rid) or not _opt_str(method):
        return None
    return Maintain(rid, method)


def _read_heartbeat(raw: dict[Any, Any]) -> Heartbeat | None:
    host_id = raw.get("host_id", "")
    pid = raw.get("pid", 0)
    busy_id = raw.get("busy_id")
    busy_for = raw.get("busy_for", 0.0)
    if (
        type(host_id) is not str
        or type(pid) is not int
        or (busy_id is not None and not _rid(busy_id))
    ):
        return None
    ok, busy_for = _opt_float(busy_for)
    if not ok or busy_for is None:
        return None
    return Heartbeat(host_id, pid, busy_id, busy_for)


def _read_ready(raw: dict[Any, Any]) -> Ready | None:
    host_id = raw.get("host_id", _MISSING)
    pid = raw.get("pid", _MISSING)
    adapter = raw.get("adapter", _MISSING)
    fp = raw.get("fingerprint", _MISSING)
    proof = raw.get("proof")
    if (
        type(host_id) is not str
        or type(pid) is not int
        or type(adapter) is not dict
        or not _str_keys(adapter)
        or type(fp) is not str
        or (proof is not None and type(proof) is not str)
    ):
        return None
    return Ready(host_id, pid, adapter, fp, proof)


def _read_goodbye(raw: dict[Any, Any]) -> Goodbye | None:
    host_id = raw.get("host_id", _MISSING)
    ok = raw.get("ok", True)
    code = raw.get("code")
    message = raw.get("message", "")
    if type(host_id) is not str or type(ok) is not bool or type(message) is not str:
        return None
    if code is not None:
        code = _CODES.get(code) if type(code) is str else None
        if code is None:
            return None
    return Goodbye(host_id, ok, code, message)


def _read_shutdown(raw: dict[Any, Any]) -> Shutdown | None:
    reason = raw.get("reason", "")
    return Shutdown(reason) if type(reason) is str else None


def _read_description(raw: dict[Any, Any]) -> Description | None:
    rid = raw.get("id", _MISSING)
    adapter = raw.get("adapter", _MISSING)
    fp = raw.get("fingerprint", _MISSING)
    protocol = raw.get("protocol", PROTOCOL_VERSION)
    if (
        not _rid(rid)
        or type(adapter) is not dict
        or not _str_keys(adapter)
        or type(fp) is not str
        or type(protocol) is not int
    ):
        return None
    return Description(rid, adapter, fp, protocol)


def _read_maintain_reply(raw: dict[Any, Any]) -> MaintainReply | None:
    rid = raw.get("id", _MISSING)
    started = raw.get("started", _MISSING)
    reason = raw.get("reason", "")
    if not _rid(rid) or type(started) is not bool or type(reason) is not str:
        return None
    return MaintainReply(rid, started, reason)


def _read_status_reply(raw: dict[Any, Any]) -> StatusReply | None:
    rid = raw.get("id", _MISSING)
    status = raw.get("status", _MISSING)
    if not _rid(rid) or type(status) is not dict or not _str_keys(status):
        return None
    return StatusReply(rid, status)


_READERS: Final[dict[str, _Reader]] = {
    "call": _read_call,
    "result": _read_result,
    "error": _read_error,
    "describe": _read_id_only(Describe),
    "status": _read_id_only(Status),
    "ping": _read_id_only(Ping),
    "pong": _read_id_only(Pong),
    "maintain": _read_maintain,
    "heartbeat": _read_heartbeat,
    "ready": _read_ready,
    "goodbye": _read_goodbye,
    "shutdown": _read_shutdown,
    "description": _read_description,
    "maintain_reply": _read_maintain_reply,
    "status_reply": _read_status_reply,
}


def protocol_error(message: str, request_id: int | None = None) -> ProtocolError:
    """A :class:`ProtocolError` addressed to ``request_id`` (``None``: id unreadable)."""
    err = ProtocolError(message)
    err.request_id = request_id
    return err


def _from_model(model: Any) -> Any:
    """The message of this module equal to a reference-codec model."""
    cls = BY_KIND[model.kind]
    values = model.__dict__
    return cls(**{name: values[name] for name in _FIELDS[cls]})


def decode_body(body: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Decode one message body (the header already checked). Raises :class:`ProtocolError`
    exactly as :func:`threadhost.protocol.decode` does."""
    if len(body) > max_size:
        raise protocol_error(f"body of {len(body)} bytes exceeds the limit of {max_size} bytes")
    try:
        raw = _unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise protocol_error(f"body is not valid msgpack: {exc}") from None
    if type(raw) is not dict:  # worded as the reference codec words it
        raise protocol_error("body is not a msgpack map")
    kind = raw.get("kind")
    read = _READERS.get(kind) if type(kind) is str else None
    if read is None:
        rid = raw.get("id")
        raise protocol_error(f"unknown message kind {kind!r}", rid if _rid(rid) else None)
    msg = read(raw)
    if msg is not None:
        return msg
    # a known kind with a field the fast path does not take as is: the reference codec
    # decides (accepts, coerces or rejects, and words any error)
    from threadhost.protocol import validate_body

    return _from_model(validate_body(raw))


def decode(frames: Sequence[bytes], *, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """Parse the two frames of one message; see :func:`threadhost.protocol.decode`."""
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


def exception_from_error(reply: Any) -> ThreadhostError:
    """The typed exception a client raises for an ``error`` message (either codec's)."""
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
