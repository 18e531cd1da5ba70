"""Unit tests of the protocol codec: no sockets."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadhost.errors as E
from threadhost.protocol import (
    HEADER,
    PROTOCOL_VERSION,
    Call,
    Describe,
    Description,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Maintain,
    MaintainReply,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
    Status,
    StatusReply,
    decode,
    encode,
    error_reply,
    exception_from_error,
)

EXAMPLES: list[Any] = [
    Call(id=1, method="calc", args=[5]),
    Call(id=2**64 - 1, method="f", args=[b"\x00", 1.5, None, [1, 2]], kwargs={"k": {"a": 1}},
         timeout=2.5, fingerprint="ab" * 32),
    Result(id=1, value=6),
    Result(id=1, value=None),
    ErrorReply(id=1, code=ErrorCode.BUSY, message="busy", retry_after=1.25),
    ErrorReply(id=None, code=ErrorCode.PROTOCOL, message="bad"),
    ErrorReply(id=3, code=ErrorCode.REMOTE_EXCEPTION, message="boom", remote_type="ValueError",
               traceback="Traceback..."),
    Describe(id=4),
    Description(id=4, adapter={"adapter": "m:C", "calls": []}, fingerprint="f" * 64),
    Maintain(id=5),
    Maintain(id=5, method="read_config"),
    MaintainReply(id=5, started=False, reason="already running"),
    Status(id=6),
    StatusReply(id=6, status={"state": "ready", "counters": {"served": 1}}),
    Ping(id=7),
    Pong(id=7),
    Ready(host_id="h1", pid=123, adapter={"calls": []}, fingerprint="f" * 64),
    Heartbeat(host_id="h1", pid=123, busy_id=9, busy_for=1.5),
    Shutdown(reason="SIGTERM"),
    Goodbye(host_id="h1", ok=False, code=ErrorCode.ADAPTER, message="no adapter"),
]


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: m.kind)
def test_roundtrip_every_kind(msg: Any) -> None:
    frames = encode(msg)
    assert frames[0] == HEADER == b"TH\x01"
    assert decode(frames) == msg
    assert encode(decode(frames)) == frames  # deterministic


def test_body_is_a_msgpack_map_with_kind_first() -> None:
    body = msgpack.unpackb(encode(Call(id=1, method="calc", args=[5]))[1])
    assert next(iter(body)) == "kind" and body["kind"] == "call" and body["args"] == [5]


def frames_of(body: Any) -> list[bytes]:
    return [HEADER, msgpack.packb(body, use_bin_type=True)]


@pytest.mark.parametrize(
    ("frames", "needle", "rid"),
    [
        ([HEADER], "expected 2 frames", None),
        ([HEADER, b"x", b"y"], "expected 2 frames", None),
        ([b"XX\x01", frames_of({"kind": "ping", "id": 1})[1]], "bad header", None),
        ([b"TH", frames_of({"kind": "ping", "id": 1})[1]], "bad header", None),
        ([HEADER, b"\xc1"], "not valid msgpack", None),
        ([HEADER, b"\x92\x01"], "not valid msgpack", None),  # truncated array
        (frames_of([1, 2]), "not a msgpack map", None),
        (frames_of({"kind": "nope", "id": 3}), "unknown message kind 'nope'", 3),
        (frames_of({"id": 3}), "unknown message kind None", 3),
        (frames_of({"kind": "call", "id": 4}), "invalid call message: method", 4),
        (frames_of({"kind": "call", "id": -1, "method": "x"}), "invalid call message: id", None),
        (frames_of({"kind": "call", "id": "1", "method": "x"}), "invalid call message: id", None),
        (frames_of({"kind": "call", "id": True, "method": "x"}), "invalid call message", None),
        (frames_of({"kind": "call", "id": 1.5, "method": "x"}), "invalid call message: id", None),
        (frames_of({"kind": "call", "id": 5, "method": "x", "args": {}}), "args", 5),
    ],
)
def test_malformed_input_is_a_typed_protocol_error(
    frames: list[bytes], needle: str, rid: int | None
) -> None:
    with pytest.raises(E.ProtocolError) as info:
        decode(frames)
    assert needle in str(info.value)
    assert info.value.request_id == rid


def test_wrong_version_is_a_mismatch_error() -> None:
    frames = encode(Ping(id=1))
    frames[0] = b"TH\x02"
    with pytest.raises(E.ProtocolMismatchError, match="version 2 not supported"):
        decode(frames)
    assert PROTOCOL_VERSION == 1


def test_size_limit_is_an_argument() -> None:
    frames = encode(Call(id=1, method="f", args=["x" * 1000]))
    assert decode(frames, max_size=2000)
    with pytest.raises(E.ProtocolError, match="exceeds the limit of 100 bytes"):
        decode(frames, max_size=100)


def test_unknown_fields_are_ignored() -> None:
    assert decode(frames_of({"kind": "ping", "id": 1, "future": [1]})) == Ping(id=1)


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (E.BusyError("b", retry_after=1.5), E.BusyError),
        (E.UnavailableError("u", retry_after=None), E.UnavailableError),
        (E.ServiceFailedError("f"), E.ServiceFailedError),
        (E.HostCrashedError("c"), E.HostCrashedError),
        (E.UnknownCallError("n"), E.UnknownCallError),
        (E.BadArgumentsError("a"), E.BadArgumentsError),
        (E.RemoteError("r", remote_type="ValueError", remote_traceback="tb"), E.RemoteError),
        (E.ProtocolError("p"), E.ProtocolError),
        (E.ProtocolMismatchError("v"), E.ProtocolMismatchError),
        (E.FingerprintMismatchError("fp"), E.FingerprintMismatchError),
        (E.AdapterError("ad"), E.AdapterError),
    ],
)
def test_errors_cross_the_wire_typed(exc: E.ThreadhostError, cls: type) -> None:
    back = exception_from_error(decode(encode(error_reply(9, exc))))  # type: ignore[arg-type]
    assert type(back) is cls
    assert back.message == exc.message
    assert getattr(back, "retry_after", None) == getattr(exc, "retry_after", None)
    assert getattr(back, "remote_traceback", None) == getattr(exc, "remote_traceback", None)


def test_every_error_class_is_a_threadhost_error_and_timeouts_are_timeouterrors() -> None:
    assert issubclass(E.CallTimeoutError, TimeoutError)
    assert issubclass(E.BusyError, E.TryLaterError)
    assert issubclass(E.UnavailableError, E.TryLaterError)
    for name in E.__all__:
        assert issubclass(getattr(E, name), E.ThreadhostError)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=4))
def test_decode_never_raises_anything_but_protocol_error_on_random_frames(
    frames: list[bytes],
) -> None:
    with contextlib.suppress(E.ProtocolError):
        decode(frames)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.text(max_size=30), st.lists(_values, max_size=4))
def test_call_roundtrip_property(rid: int, method: str, args: list[Any]) -> None:
    msg = Call(id=rid, method=method, args=args)
    assert decode(encode(msg)) == msg


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["kind", "id", "method", "args", "value", "code"]),
                       _values | st.sampled_from(["call", "result", "error", "ping"]),
                       max_size=6))
def test_decode_of_random_maps_is_typed(body: dict[str, Any]) -> None:
    with contextlib.suppress(E.ProtocolError):
        decode(frames_of(body))
