"""Golden vectors (threadhost/data/golden.json): the reference codec against exact bytes."""

from __future__ import annotations

from typing import Any, get_args

import msgpack
import msgspec
import pytest

from threadhost.errors import ProtocolError
from threadhost.protocol import ErrorCode, Message, decode, encode
from threadhost.tools import golden

DATA = golden.load()  # through importlib.resources: proves the file ships with the package
ALL_KINDS = {m.kind for m in get_args(Message)}


def _model(fields: dict[str, Any]) -> Any:
    return msgspec.convert(golden.from_json(fields), Message)


def test_file_is_generated_and_current() -> None:
    assert golden.main(["--check"]) == 0
    assert golden.PATH.read_text("utf-8") == golden.render()


def test_every_kind_and_every_error_code_has_a_vector() -> None:
    assert len(ALL_KINDS) == 15
    assert {v["kind"] for v in DATA["messages"]} == ALL_KINDS
    codes = {v["fields"]["code"] for v in DATA["messages"] if v["kind"] == "error"}
    assert codes == {c.value for c in ErrorCode}
    assert set(golden.DIRECTIONS) == ALL_KINDS


@pytest.mark.parametrize("vector", DATA["messages"], ids=lambda v: v["name"])
def test_encode_gives_the_golden_bytes_and_decode_gives_the_example(
    vector: dict[str, Any],
) -> None:
    example = _model(vector["fields"])
    frames = [bytes.fromhex(vector["header"]), bytes.fromhex(vector["body"])]
    assert encode(example) == frames
    assert decode(frames) == example
    body = msgpack.unpackb(frames[1])
    assert list(body) == ["kind", *type(example).__struct_fields__]


@pytest.mark.parametrize("vector", DATA["variants"], ids=lambda v: v["name"])
def test_non_canonical_encodings_decode_to_the_same_message(vector: dict[str, Any]) -> None:
    frames = [bytes.fromhex(vector["header"]), bytes.fromhex(vector["body"])]
    assert decode(frames) == _model(vector["fields"])


@pytest.mark.parametrize("vector", DATA["rejects"], ids=lambda v: v["name"])
def test_rejects_raise_the_named_error_with_the_readable_id(vector: dict[str, Any]) -> None:
    frames = [bytes.fromhex(f) for f in vector["frames"]]
    kwargs = {"max_size": vector["max_size"]} if "max_size" in vector else {}
    with pytest.raises(ProtocolError) as info:
        decode(frames, **kwargs)
    assert info.value.code == vector["error"]
    assert info.value.request_id == vector["id"]


def test_json_conversion_round_trips_bytes() -> None:
    value = {"a": [b"\x00", {"b": b""}], "c": 1}
    assert golden.from_json(golden.to_json(value)) == value
