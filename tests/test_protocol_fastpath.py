"""The codec's fast paths (per-kind validators, encoding straight from the model's fields)
must agree exactly with the pydantic models and the union they short-cut: same accepted
inputs, same coerced values, same rejections, same bytes."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

import threadhost.errors as E
from threadhost.protocol import (
    HEADER,
    Call,
    ErrorCode,
    ErrorReply,
    Message,
    Result,
    decode,
    encode,
)

_MESSAGE: TypeAdapter[Any] = TypeAdapter(Message)

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
_field_values = (
    _values
    | st.sampled_from([c.value for c in ErrorCode])
    | st.integers(0, 2**64 - 1)
    | st.sampled_from([0, 2**64 - 1, -(2**63), -1, 1.0, True])
)
_ids = st.integers(0, 2**64 - 1) | st.none()
_opt_float = st.none() | st.floats() | st.integers(-3, 3)
_opt_text = st.none() | st.text(max_size=8)
_VALID = {  # per kind: a strategy of mostly well-typed values for each field
    "call": {
        "id": _ids,
        "method": st.text(max_size=8),
        "args": st.lists(_values, max_size=3),
        "kwargs": st.dictionaries(st.text(max_size=4), _values, max_size=3),
        "timeout": _opt_float,
        "fingerprint": _opt_text,
    },
    "result": {"id": _ids, "value": _values},
    "error": {
        "id": _ids,
        "code": st.sampled_from([c.value for c in ErrorCode]),
        "message": st.text(max_size=8),
        "retry_after": _opt_float,
        "remote_type": _opt_text,
        "traceback": _opt_text,
    },
}


@st.composite
def _bodies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(_VALID)))
    body: dict[str, Any] = {"kind": kind}
    for name, valid in _VALID[kind].items():
        if draw(st.integers(0, 9)) == 0:
            continue  # absent
        body[name] = draw(_field_values) if draw(st.integers(0, 7)) == 0 else draw(valid)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["extra", "value", "method", "code"]))] = draw(_field_values)
    return body


def _reference(body: dict[str, Any]) -> BaseModel | None:
    try:
        return _MESSAGE.validate_python(body)  # type: ignore[no-any-return]
    except ValidationError:
        return None


def _same(a: BaseModel, b: BaseModel) -> None:
    assert type(a) is type(b)
    assert repr(a) == repr(b)  # not ==: a NaN timeout is never equal to itself
    assert a.model_fields_set == b.model_fields_set
    for name in type(a).model_fields:  # same types too: 1 and 1.0 are equal but pack apart
        assert type(getattr(a, name)) is type(getattr(b, name)), name
    assert encode(a) == encode(b)


@settings(max_examples=1500, deadline=None)
@given(_bodies())
def test_decode_agrees_with_pydantic_on_hot_kinds(body: dict[str, Any]) -> None:
    frames = [HEADER, msgpack.packb(body, use_bin_type=True)]
    ref = _reference(msgpack.unpackb(frames[1], raw=False, strict_map_key=False))
    if ref is None:
        with pytest.raises(E.ProtocolError):
            decode(frames)
    else:
        _same(decode(frames), ref)


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "call", "id": 1, "method": "calc", "args": [5], "timeout": 10},  # int->float
        {"kind": "call", "id": 1, "method": "calc", "kwargs": {b"x": 1}},  # bytes key->str
        {"kind": "call", "id": 1, "method": b"calc"},  # bytes -> str
        {"kind": "call", "id": True, "method": "calc"},
        {"kind": "call", "id": -(2**63), "method": "calc"},
        {"kind": "call", "id": 1, "method": "calc", "args": {}},
        {"kind": "call", "method": "calc"},
        {"kind": "result", "value": 1},
        {"kind": "result", "id": -1},
        {"kind": "error", "code": "busy"},  # id is required (None when unreadable)
        {"kind": "error", "id": None, "code": "nope"},
        {"kind": "error", "id": 3, "code": "busy", "retry_after": 1},
        {"kind": "error", "id": 3, "code": "busy", "message": None},
        {
            "kind": "error",
            "id": 3,
            "code": "remote_exception",
            "remote_type": "E",
            "traceback": "tb",
            "more": [1],
        },
    ],
)
def test_decode_agrees_with_pydantic_on_edge_cases(body: dict[str, Any]) -> None:
    frames = [HEADER, msgpack.packb(body, use_bin_type=True)]
    ref = _reference(msgpack.unpackb(frames[1], raw=False, strict_map_key=False))
    if ref is None:
        with pytest.raises(E.ProtocolError):
            decode(frames)
    else:
        _same(decode(frames), ref)


@dataclasses.dataclass
class _Point:
    x: int
    y: int


class _Inner(BaseModel):
    a: int


@pytest.mark.parametrize(
    "msg",
    [
        Call(id=1, method="f", args=[_Point(1, 2)]),  # not natively packable: model_dump path
        Call(id=1, method="f", kwargs={"p": _Inner(a=1)}),
        Result(id=1, value=(1, 2)),
        Result(id=1, value={"k": [_Point(0, 0)]}),
        ErrorReply(id=1, code=ErrorCode.BUSY, message="b", retry_after=0.5),
    ],
)
def test_encode_matches_model_dump(msg: BaseModel) -> None:
    slow = [HEADER, msgpack.packb(msg.model_dump(mode="python"), use_bin_type=True)]
    assert encode(msg) == slow


def test_encode_of_unpackable_value_still_raises() -> None:
    with pytest.raises(TypeError):
        encode(Result(id=1, value={1, 2}))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**64 - 1), _values)
def test_result_encode_matches_model_dump(rid: int, value: Any) -> None:
    msg = Result(id=rid, value=value)
    try:
        slow = [HEADER, msgpack.packb(msg.model_dump(mode="python"), use_bin_type=True)]
    except (TypeError, ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            encode(msg)
        return
    assert encode(msg) == slow
