"""Unit tests of the protocol codec: no sockets."""

from __future__ import annotations

import contextlib
import datetime
import subprocess
import sys
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


def test_the_broker_imports_no_pydantic() -> None:
    """The broker process stays lean: the codec, gate, policies, CLI and broker import
    neither pydantic (not even to judge an invalid message), nor OpenSSL through hashlib,
    nor croniter (until a cron policy is used), nor the client."""
    code = (
        "import sys, threadhost, threadhost.broker, threadhost.cli\n"
        "from threadhost import protocol as p\n"
        "from threadhost.policy import parse_policy\n"
        "parse_policy('idle=10s | stale=5m | every=1m~5s | file=/tmp/x')\n"
        "p.decode([p.HEADER, p.encode_call(1, 'calc', [5], {}, 1.0, None)])\n"
        "for body in (b'\\xc1', b'\\x93\\x01\\x02\\x03', b'\\x81\\xa4kind\\xa3zzz',\n"
        "             b'\\x82\\xa4kind\\xa4ping\\xa2id\\xa11'):\n"
        "    try:\n"
        "        p.decode([p.HEADER, body])\n"
        "    except threadhost.ProtocolError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(body)\n"
        "for msg in (p.StatusReply(1, {'s': 1}), p.MaintainReply(2, True, ''),\n"
        "            p.Description(3, {}, 'f'), p.Ready('h', 1, {}, 'f')):\n"
        "    assert p.decode(p.encode(msg)) == msg\n"
        "heavy = ('pydantic', 'pydantic_core', '_hashlib', 'croniter', 'asyncio')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "bad += [m for m in ('threadhost.client', 'threadhost.adapter') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    ("body", "needle"),
    [  # strict field types (docs/protocol.md §3, "Strictness"): no coercion but int -> float
        ({"kind": "goodbye", "host_id": "h", "ok": 0},
         "invalid goodbye message: ok: Expected `bool`"),
        ({"kind": "maintain_reply", "id": 1, "started": 1}, "started: Expected `bool`"),
        ({"kind": "ready", "host_id": "h", "pid": 1.0, "adapter": {}, "fingerprint": "f"},
         "pid: Expected `int`, got `float`"),
        ({"kind": "ready", "host_id": "h", "pid": "1", "adapter": {}, "fingerprint": "f"},
         "pid: Expected `int`, got `str`"),
        ({"kind": "call", "id": 1, "method": "m", "timeout": "2.5"}, "timeout: Expected `float"),
        ({"kind": "call", "id": 1, "method": "m", "kwargs": {1: 2}}, "kwargs"),
        ({"kind": "call", "id": 1, "method": "m", "kwargs": {b"k": 2}}, "kwargs"),
        ({"kind": "call", "id": 1, "method": 5}, "method: Expected `str`, got `int`"),
        ({"kind": "error", "id": 1, "code": "nope"}, "code: Invalid enum value 'nope'"),
        ({"kind": "status_reply", "id": 1}, "invalid status_reply message: status: required"),
    ],
)
def test_strict_fields_are_refused_with_the_field_path(body: dict[Any, Any], needle: str) -> None:
    with pytest.raises(E.ProtocolError) as info:
        decode(frames_of(body))
    assert needle in str(info.value)
    assert info.value.request_id == body.get("id")


def test_an_int_is_accepted_where_a_float_is_declared() -> None:
    msg = decode(frames_of({"kind": "call", "id": 1, "method": "m", "timeout": 3}))
    assert isinstance(msg, Call) and msg.timeout == 3.0 and type(msg.timeout) is float


def test_any_values_keep_their_msgpack_types() -> None:
    """``args``/``value`` are ``any``: maps with non-string keys, bin, ext and timestamps
    pass through (an unknown ext as an opaque value, R49; a timestamp as an aware datetime)."""
    stamp = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=datetime.UTC)
    body = msgpack.packb({"kind": "result", "id": 1,
                          "value": [{1: "a"}, b"\x00", msgpack.ExtType(5, b"x"), stamp]},
                         datetime=True)
    msg = decode([HEADER, body])
    assert isinstance(msg, Result)
    assert msg.value[:2] == [{1: "a"}, b"\x00"] and msg.value[3] == stamp
    assert msg.value[2].code == 5 and msg.value[2].data == b"x"
    assert encode(msg)[1] == body  # relayed unchanged (R35)


def test_kind_is_a_class_attribute_and_messages_compare_by_fields() -> None:
    assert Call.kind == "call" and Call(id=1, method="m").kind == "call"
    assert Call(1, "m") == Call(id=1, method="m", args=[], kwargs={})
    assert Call(1, "m") != Call(2, "m")
