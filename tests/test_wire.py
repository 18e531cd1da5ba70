"""The lean codec (threadhost.wire) must speak exactly the reference codec's protocol
(threadhost.protocol, pydantic): same message classes and fields, the same decisions on
every body (accepted with the same values, or rejected with the same error), and the same
bytes. Hypothesis drives both with the same bodies."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadhost.errors as E
from threadhost import protocol, wire
from threadhost.tools import golden

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(max_size=4) | st.binary(max_size=2) | st.integers(0, 3), inner, max_size=3
        )
    ),
    max_leaves=6,
)
_codes = st.sampled_from([c.value for c in wire.ErrorCode])
_odd = (  # values of the wrong type or at an edge, for any field
    _values
    | _codes
    | st.integers(0, 2**64 - 1)
    | st.sampled_from([0, 2**64 - 1, -(2**63), -1, 1.0, True, False, 2**53, 2**53 + 1, ""])
)
_ids = st.integers(0, 2**64 - 1) | st.none()
_opt_float = st.none() | st.floats() | st.integers(-3, 3) | st.integers(2**52, 2**54)
_opt_text = st.none() | st.text(max_size=8)
_maps = st.dictionaries(st.text(max_size=4), _values, max_size=3)
_FIELDS: dict[str, dict[str, Any]] = {  # per kind: a strategy of mostly well-typed values
    "call": {
        "id": _ids,
        "method": st.text(max_size=8),
        "args": st.lists(_values, max_size=3),
        "kwargs": _maps,
        "timeout": _opt_float,
        "fingerprint": _opt_text,
    },
    "result": {"id": _ids, "value": _values},
    "error": {
        "id": _ids,
        "code": _codes,
        "message": st.text(max_size=8),
        "retry_after": _opt_float,
        "remote_type": _opt_text,
        "traceback": _opt_text,
    },
    "describe": {"id": _ids},
    "status": {"id": _ids},
    "ping": {"id": _ids},
    "pong": {"id": _ids},
    "maintain": {"id": _ids, "method": _opt_text},
    "maintain_reply": {"id": _ids, "started": st.booleans(), "reason": st.text(max_size=4)},
    "status_reply": {"id": _ids, "status": _maps},
    "description": {
        "id": _ids,
        "adapter": _maps,
        "fingerprint": st.text(max_size=4),
        "protocol": st.integers(0, 3),
    },
    "heartbeat": {
        "host_id": st.text(max_size=4),
        "pid": st.integers(0, 2**31),
        "busy_id": _ids,
        "busy_for": _opt_float,
    },
    "ready": {
        "host_id": st.text(max_size=4),
        "pid": st.integers(0, 2**31),
        "adapter": _maps,
        "fingerprint": st.text(max_size=4),
    },
    "goodbye": {
        "host_id": st.text(max_size=4),
        "ok": st.booleans(),
        "code": st.none() | _codes,
        "message": st.text(max_size=4),
    },
    "shutdown": {"reason": st.text(max_size=4)},
}


@st.composite
def _bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 30)) == 0:
        return draw(_values)  # not even a map (or a map without a kind)
    kind = draw(st.sampled_from(sorted(_FIELDS)) | st.sampled_from(["nope", ""]))
    body: dict[Any, Any] = {"kind": kind}
    for name, valid in _FIELDS.get(kind, {}).items():
        if draw(st.integers(0, 9)) == 0:
            continue  # absent
        body[name] = draw(_odd) if draw(st.integers(0, 6)) == 0 else draw(valid)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["extra", "value", "method", "code", "id", 1]))] = draw(_odd)
    return body


def _typed(v: Any) -> Any:
    """A comparable picture of a value with its exact types (1, 1.0 and True differ; NaN
    equals NaN; an enum member is its class and value)."""
    if isinstance(v, dict):
        return ("dict", [(_typed(k), _typed(x)) for k, x in v.items()])
    if isinstance(v, list | tuple):
        return (type(v).__name__, [_typed(x) for x in v])
    if isinstance(v, float) and math.isnan(v):
        return ("float", "nan")
    return (type(v).__name__, v)


def _picture(msg: Any) -> tuple[str, list[Any]]:
    names = [f.name for f in dataclasses.fields(msg)] if dataclasses.is_dataclass(msg) else list(
        type(msg).model_fields
    )
    return msg.kind, [(n, _typed(getattr(msg, n))) for n in names if n != "kind"]


def _outcome(decode: Any, frames: list[bytes]) -> Any:
    try:
        return ("ok", _picture(decode(frames)))
    except E.ProtocolError as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "request_id", None))


def _frames(body: Any) -> list[bytes]:
    return [wire.HEADER, msgpack.packb(body, use_bin_type=True)]


def test_same_classes_fields_order_and_defaults() -> None:
    models = {m.model_fields["kind"].default: m for m in protocol._MODELS}
    assert set(models) == set(wire.BY_KIND)
    for kind, model in models.items():
        cls = wire.BY_KIND[kind]
        assert cls.__name__ == model.__name__
        assert cls.kind == kind
        fields = dataclasses.fields(cls)
        assert [f.name for f in fields] == [n for n in model.model_fields if n != "kind"]
        for f in fields:
            info = model.model_fields[f.name]
            if info.is_required():
                assert f.default is dataclasses.MISSING, (kind, f.name)
                assert f.default_factory is dataclasses.MISSING, (kind, f.name)
            else:
                default = (
                    f.default_factory() if f.default_factory is not dataclasses.MISSING
                    else f.default
                )
                assert default == info.get_default(call_default_factory=True), (kind, f.name)
    assert protocol.ErrorCode is wire.ErrorCode
    assert (protocol.HEADER, protocol.DEFAULT_MAX_SIZE) == (wire.HEADER, wire.DEFAULT_MAX_SIZE)


@settings(max_examples=3000, deadline=None)
@given(_bodies())
def test_decode_agrees_with_the_reference_codec(body: Any) -> None:
    frames = _frames(body)
    assert _outcome(wire.decode, frames) == _outcome(protocol.decode, frames)


@settings(max_examples=1000, deadline=None)
@given(_bodies())
def test_encode_gives_the_reference_bytes(body: Any) -> None:
    frames = _frames(body)
    try:
        ref = protocol.decode(frames)
    except E.ProtocolError:
        return
    assert wire.encode(wire.decode(frames)) == protocol.encode(ref)


@pytest.mark.parametrize(
    "frames",
    [
        [wire.HEADER],
        [b"XX\x01", b"\x80"],
        [b"TH\x02", b"\x80"],
        [b"TH\x01\x00", b"\x80"],
        [wire.HEADER, b"\xc1"],
        [wire.HEADER, msgpack.packb([1, 2])],
        [wire.HEADER, b"\x80" + b"\x00" * 64],
    ],
)
def test_frame_errors_agree(frames: list[bytes]) -> None:
    assert _outcome(lambda f: wire.decode(f, max_size=32), frames) == _outcome(
        lambda f: protocol.decode(f, max_size=32), frames
    )


def test_every_golden_vector_decodes_and_reencodes_to_the_same_bytes() -> None:
    vectors = golden.load()["messages"]
    assert vectors
    for vec in vectors:
        frames = [bytes.fromhex(vec["header"]), bytes.fromhex(vec["body"])]
        assert wire.encode(wire.decode(frames)) == frames, vec.get("name")


def test_hot_path_bodies_are_the_reference_bytes() -> None:
    call = protocol.Call(id=7, method="calc", args=[5], kwargs={"x": 1}, timeout=2.0,
                         fingerprint="ab")
    assert wire.encode_call(7, "calc", [5], {"x": 1}, 2.0, "ab") == protocol.encode(call)[1]
    assert wire.encode_result(7, [1, "x"]) == protocol.encode(
        protocol.Result(id=7, value=[1, "x"]))[1]


def test_error_reply_and_exception_agree_with_the_reference() -> None:
    for exc in (E.BusyError("b", retry_after=0.5), E.RemoteError("r", remote_type="T",
                remote_traceback="tb"), E.CallTimeoutError("t"), E.ThreadhostError("x")):
        w = wire.error_reply(3, exc)
        p = protocol.error_reply(3, exc)
        assert wire.encode(w) == protocol.encode(p)
        a, b = wire.exception_from_error(w), protocol.exception_from_error(p)
        assert (type(a), str(a), getattr(a, "retry_after", None)) == (
            type(b), str(b), getattr(b, "retry_after", None))


def test_the_broker_imports_no_pydantic() -> None:
    """The broker process stays lean: the gate, policies, CLI and broker import neither
    pydantic (only a known kind with a field to coerce or refuse imports it), nor
    OpenSSL through hashlib, nor croniter (until a cron policy is used), nor the client."""
    code = (
        "import sys, threadhost, threadhost.broker, threadhost.cli\n"
        "from threadhost import wire\n"
        "from threadhost.policy import parse_policy\n"
        "parse_policy('idle=10s | stale=5m | every=1m~5s | file=/tmp/x')\n"
        "wire.decode([wire.HEADER, wire.encode_call(1, 'calc', [5], {}, 1.0, None)])\n"
        "for body in (b'\\xc1', b'\\x93\\x01\\x02\\x03', b'\\x81\\xa4kind\\xa3zzz'):\n"
        "    try:\n"
        "        wire.decode([wire.HEADER, body])\n"
        "    except threadhost.ProtocolError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(body)\n"
        "for msg in (wire.StatusReply(1, {'s': 1}), wire.MaintainReply(2, True, ''),\n"
        "            wire.Description(3, {}, 'f'), wire.Ready('h', 1, {}, 'f')):\n"
        "    assert wire.decode(wire.encode(msg)) == msg\n"
        "heavy = ('pydantic', 'pydantic_core', '_hashlib', 'croniter', 'asyncio')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "bad += [m for m in ('threadhost.client', 'threadhost.adapter') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=0, max_size=3), st.binary(max_size=60))
def test_random_frames_agree_and_raise_only_protocol_errors(frames: list[bytes],
                                                            body: bytes) -> None:
    cases = [frames, [wire.HEADER, body], [b"TH\x01", body[:1] + body]]
    for f in cases:
        assert _outcome(wire.decode, f) == _outcome(protocol.decode, f)
