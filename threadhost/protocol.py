"""threadhost wire protocol, version 1: msgpack-framed, typed messages (sans-IO).

The normative specification is ``docs/protocol.md`` (requirements R1..R53); this module is
its reference codec and must agree with it (``tests/test_conformance.py`` checks that the
two describe the same kinds, codes, header and limit, and ``tests/test_golden.py`` pins the
exact bytes of every kind against ``threadhost/data/golden.json``). No socket is touched
here: ``encode`` turns a message into ZeroMQ frames, ``decode`` turns frames back into a
message or raises a typed :class:`~threadhost.errors.ProtocolError`.

Every threadhost message is exactly two ZeroMQ frames (after any ROUTER routing frames and
the optional REQ empty delimiter; R2, R4)::

    frame 0, header (3 bytes)
        +------+------+---------+
        | 0x54 | 0x48 | version |     "TH" signature, then the protocol version (0x01)
        +------+------+---------+
    frame 1, body (1 .. max_size bytes, default 1 MiB; R16)
        a msgpack map (str keys) whose "kind" entry names the message kind; the other
        entries are that kind's fields. ``encode`` writes the canonical form: "kind" first,
        then the fields in the order the models below declare them (R6); ``decode``
        accepts any valid encoding and order (R7).

Message kinds, by direction (R10):

    client -> broker   call, describe, maintain, status, ping
    broker -> client   result, error, description, maintain_reply, status_reply, pong
    broker -> host     call, shutdown; heartbeat (to ID/hb: R52; a new broker's gets ready
                       again on ID/hb, R51)
    host   -> broker   ready, result, error, heartbeat, goodbye

Request ids are unsigned 64-bit integers chosen by the requester and echoed unchanged in the
answer (R9). Receivers ignore map entries they do not know (forward compatibility within a
version; R8). The header is checked before the body, and the size before decoding: a wrong
version raises :class:`~threadhost.errors.ProtocolMismatchError` (R12, R13), anything else
invalid a :class:`~threadhost.errors.ProtocolError` carrying the request id when it could be
read (R19, R22). Limits are arguments (``max_size``), never module globals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Literal, TypeAlias

import msgpack
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from threadhost.errors import ThreadhostError
from threadhost.wire import (
    DEFAULT_MAX_SIZE,
    HEADER,
    MAX_REQUEST_ID,
    PROTOCOL_VERSION,
    SIGNATURE,
    SUPPORTED_VERSIONS,
    ErrorCode,
    check_header,
    exception_from_error,
)
from threadhost.wire import protocol_error as _protocol_error

__all__ = [
    "DEFAULT_MAX_SIZE",
    "HEADER",
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
    "encode",
    "error_reply",
    "exception_from_error",
]

RequestId: TypeAlias = Annotated[int, Field(ge=0, le=MAX_REQUEST_ID, strict=True)]


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# --------------------------------------------------------------------------- client <-> broker


class Call(_Msg):  # type: ignore[no-redef]  # pydantic plugin vs a field named kwargs
    """Invoke ``method`` with ``args``/``kwargs``. ``timeout`` is how long (seconds) the caller
    will wait; the broker need not forward a call whose caller gave up. ``fingerprint``, when
    set, must equal the served adapter's schema fingerprint (generated proxies send it)."""

    kind: Literal["call"] = "call"
    id: RequestId
    method: str
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = None
    fingerprint: str | None = None


class Result(_Msg):
    """Successful answer to ``call`` with the same ``id``."""

    kind: Literal["result"] = "result"
    id: RequestId
    value: Any = None


class ErrorReply(_Msg):
    """Failed answer to a request ``id`` (``None`` when the request's id could not be read)."""

    kind: Literal["error"] = "error"
    id: RequestId | None
    code: ErrorCode
    message: str = ""
    retry_after: float | None = None
    remote_type: str | None = None
    traceback: str | None = None


class Describe(_Msg):
    """Ask for the served adapter's description (calls, signatures, fingerprint)."""

    kind: Literal["describe"] = "describe"
    id: RequestId


class Description(_Msg):
    """Answer to ``describe``: ``adapter`` is the adapter's JSON-able description."""

    kind: Literal["description"] = "description"
    id: RequestId
    adapter: dict[str, Any]
    fingerprint: str
    protocol: int = PROTOCOL_VERSION


class Maintain(_Msg):
    """Ask the broker to run a slow call now (``method`` ``None``: the adapter's first)."""

    kind: Literal["maintain"] = "maintain"
    id: RequestId
    method: str | None = None


class MaintainReply(_Msg):
    """Answer to ``maintain``: whether the slow call started, and why (not)."""

    kind: Literal["maintain_reply"] = "maintain_reply"
    id: RequestId
    started: bool
    reason: str = ""


class Status(_Msg):
    """Ask for the service status."""

    kind: Literal["status"] = "status"
    id: RequestId


class StatusReply(_Msg):
    """Answer to ``status``: a JSON-able map (state, pids, generation, counters...)."""

    kind: Literal["status_reply"] = "status_reply"
    id: RequestId
    status: dict[str, Any]


class Ping(_Msg):
    """Liveness probe; answered with ``pong`` carrying the same id."""

    kind: Literal["ping"] = "ping"
    id: RequestId


class Pong(_Msg):
    """Answer to ``ping``."""

    kind: Literal["pong"] = "pong"
    id: RequestId


# --------------------------------------------------------------------------- broker <-> host


class Ready(_Msg):
    """Host -> broker, once: the adapter is loaded and ``setup`` ran on the library thread.
    ``proof``: a host started by the broker proves it with the run's secret (§13, R62)."""

    kind: Literal["ready"] = "ready"
    host_id: str
    pid: int
    adapter: dict[str, Any]
    fingerprint: str
    proof: str | None = None


class Heartbeat(_Msg):
    """Host -> broker, at least every heartbeat interval, from a thread that never runs
    library code; ``busy_id`` is the request id the library thread is running, if any (R41).
    Broker -> host too (R52): to ``ID/hb`` every interval, ``host_id`` carrying the broker's
    instance token and ``pid`` its pid; a host answers a new broker's with ``ready`` again
    (R51) and nothing else (R43)."""

    kind: Literal["heartbeat"] = "heartbeat"
    host_id: str = ""
    pid: int = 0
    busy_id: RequestId | None = None
    busy_for: float = 0.0


class Shutdown(_Msg):
    """Broker -> host: finish the current call, run ``teardown`` on the library thread, exit."""

    kind: Literal["shutdown"] = "shutdown"
    reason: str = ""


class Goodbye(_Msg):
    """Host -> broker: the host is exiting (after teardown, or because setup/load failed)."""

    kind: Literal["goodbye"] = "goodbye"
    host_id: str
    ok: bool = True
    code: ErrorCode | None = None
    message: str = ""


Message: TypeAlias = Annotated[
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
    | Goodbye,
    Field(discriminator="kind"),
]

_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)
_MODELS: Final[tuple[type[BaseModel], ...]] = (
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
_KINDS: Final = frozenset(m.model_fields["kind"].default for m in _MODELS)
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_unpackb = msgpack.unpackb

# ---------------------------------------------------------------------------- fast paths
#
# Every call crosses three processes, so the codec's per-message cost counts three times.
# Two shortcuts, both exact:
#
# * encode packs the model's own field values, in declaration order, straight from its
#   ``__dict__`` instead of building them with ``model_dump``. For values msgpack packs
#   natively (all a well-formed message carries) the bytes are the same; anything else (a
#   nested model, a dataclass...) makes msgpack raise, and the message is encoded again
#   through ``model_dump`` as before, so the bytes, or the error, are unchanged.
# * decode hands the map straight to the validator of the model its ``kind`` names (the one
#   the discriminated union would pick), skipping the union dispatch and the TypeAdapter
#   wrapper; an invalid map is validated again through the union, for its error wording.
#   This is pydantic's own validation, so every input is accepted, coerced or rejected
#   exactly as before.

_FIELDS: Final = {m: tuple(m.model_fields) for m in _MODELS}
_VALIDATORS: Final[dict[str, Callable[[Any], Any]]] = {
    m.model_fields["kind"].default: m.__pydantic_validator__.validate_python for m in _MODELS
}


def encode(msg: BaseModel) -> list[bytes]:
    """The two frames (header, body) of ``msg``. Deterministic: equal messages give equal
    bytes (field order is declaration order)."""
    fields = _FIELDS.get(type(msg))
    if fields is not None:
        values = msg.__dict__
        try:
            return [HEADER, _packb({name: values[name] for name in fields})]
        except Exception:  # not natively packable (or not a complete model): the slow path
            pass
    return [HEADER, _packb(msg.model_dump(mode="python"))]


def _request_id_of(body: object) -> int | None:
    if isinstance(body, dict):
        rid = body.get("id")
        if type(rid) is int and 0 <= rid <= MAX_REQUEST_ID:
            return rid
    return None


def decode(frames: Sequence[bytes], *, max_size: int = DEFAULT_MAX_SIZE) -> Message:
    """Parse the two frames of one message.

    Raises :class:`ProtocolMismatchError` for a valid signature with an unsupported version,
    and :class:`ProtocolError` for anything else that is not a valid message (wrong frame
    count, bad signature, oversized or undecodable body, unknown kind, invalid fields). The
    raised error's ``request_id`` attribute holds the request id when it could be read, so
    the receiver can address its error reply.
    """
    if len(frames) != 2:
        raise _protocol_error(f"expected 2 frames (header, body), got {len(frames)}")
    header, body = frames
    if header != HEADER:
        check_header(header)
    if len(body) > max_size:
        raise _protocol_error(f"body of {len(body)} bytes exceeds the limit of {max_size} bytes")
    try:
        raw = _unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise _protocol_error(f"body is not valid msgpack: {exc}") from None
    return validate_body(raw)


def validate_body(raw: Any) -> Message:
    """Validate one unpacked body into its model, or raise the :class:`ProtocolError` (with
    the request id when it could be read) that :func:`decode` raises for it."""
    if type(raw) is dict:
        kind = raw.get("kind")
        validate = _VALIDATORS.get(kind) if type(kind) is str else None
        if validate is not None:
            try:
                return validate(raw)  # type: ignore[no-any-return]
            except ValidationError:
                pass  # validated again below through the union, for its error wording
    rid = _request_id_of(raw)
    if not isinstance(raw, dict):
        raise _protocol_error("body is not a msgpack map", rid)
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise _protocol_error(f"unknown message kind {kind!r}", rid)
    try:
        return _MESSAGE.validate_python(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'message'}: {e['msg']}"
            for e in exc.errors()[:3]
        )
        raise _protocol_error(f"invalid {kind} message: {problems}", rid) from None


def error_reply(request_id: int | None, exc: ThreadhostError) -> ErrorReply:
    """The ``error`` message that carries ``exc`` to the peer."""
    try:
        code = ErrorCode(exc.code)
    except ValueError:
        code = ErrorCode.REMOTE_EXCEPTION
    return ErrorReply(
        id=request_id,
        code=code,
        message=exc.message or str(exc),
        retry_after=getattr(exc, "retry_after", None),
        remote_type=getattr(exc, "remote_type", None),
        traceback=getattr(exc, "remote_traceback", None),
    )
