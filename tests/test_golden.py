"""Golden vectors (threadhost/data/golden.json): the reference codec against exact bytes."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import uuid
from typing import Any, get_args

import msgpack
import msgspec
import pytest
from pydantic import TypeAdapter

from threadhost.adapter import fingerprint_contract, fingerprint_of, load_adapter
from threadhost.errors import BadArgumentsError, ProtocolError
from threadhost.protocol import ErrorCode, Message, decode, encode
from threadhost.tools import golden
from threadhost.types import to_wire, wire_type

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


# --------------------------------------------------------------------------- carried types


@pytest.mark.parametrize("vector", DATA["carried"], ids=lambda v: v["name"])
def test_carried_values_have_one_wire_form_from_client_and_host(vector: dict[str, Any]) -> None:
    """The client (which packs arguments as they are) and the host (which dumps a result
    through its declared type, ``to_wire``) put the same bytes on the wire."""
    value = dict(golden.CARRIED)[vector["name"]]
    body = bytes.fromhex(vector["msgpack"])
    assert msgspec.msgpack.encode(value) == body  # the client's path
    assert msgspec.msgpack.encode(to_wire(value)) == body  # the host's path
    if type(value) in (datetime.datetime, datetime.date, uuid.UUID, decimal.Decimal):
        wire = msgspec.msgpack.decode(body)
        back = TypeAdapter(wire_type(type(value))).validate_python(wire)
        assert back == value and type(back) is type(value)


def test_a_timestamp_is_msgpack_ext_minus_one_in_every_size() -> None:
    sizes = {v["name"]: bytes.fromhex(v["msgpack"])[:3] for v in DATA["carried"]}
    assert sizes["datetime-seconds"][:2] == b"\xd6\xff"  # timestamp 32
    assert sizes["datetime-micros"][:2] == b"\xd7\xff"  # timestamp 64
    assert sizes["datetime-before-1970"] == b"\xc7\x0c\xff"  # timestamp 96
    stamp = msgpack.unpackb(bytes.fromhex(DATA["carried"][1]["msgpack"]))
    assert stamp.seconds == 1704164645 and stamp.nanoseconds == 123456000


# --------------------------------------------------------------------------- fingerprints


@pytest.mark.parametrize("vector", DATA["fingerprints"], ids=lambda v: v["name"])
def test_fingerprint_vectors(vector: dict[str, Any]) -> None:
    calls = msgspec.msgpack.decode(bytes.fromhex(vector["calls_msgpack"]))
    assert fingerprint_contract(calls) == vector["canonical"]
    assert hashlib.sha256(vector["canonical"].encode("ascii")).hexdigest() == vector["fingerprint"]
    assert fingerprint_of(calls) == vector["fingerprint"]
    spec = dict(golden.FINGERPRINTED())[vector["name"]]
    assert spec.fingerprint == vector["fingerprint"]
    assert golden.to_json(calls) == vector["calls"]


def test_the_fingerprint_ignores_docs_options_and_the_adapters_location() -> None:
    (_, spec), *_ = golden.FINGERPRINTED()
    calls = spec.describe()["calls"]
    changed = [{**c, "doc": "other", "startup": False, "policy": "idle=1s", "deadline": 9.5,
                "timeout": 1.0} for c in calls]
    assert fingerprint_of(changed) == spec.fingerprint
    renamed = [{**calls[0], "name": "reload"}, *calls[1:]]
    assert fingerprint_of(renamed) != spec.fingerprint
    assert fingerprint_of(list(reversed(calls))) != spec.fingerprint  # order counts


def test_mylib_vector_is_the_shipped_example() -> None:
    assert dict((v["name"], v["fingerprint"]) for v in DATA["fingerprints"])["mylib"] == (
        load_adapter("examples.mylib_adapter").fingerprint)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("vector", DATA["validation"],
                         ids=lambda v: f"{v['type']}:{v['shows']}:{v['accept']}")
def test_validation_vectors_run_through_the_hosts_validator(vector: dict[str, Any]) -> None:
    annotation = {t: a for t, a, _, _ in golden.VALIDATION}[vector["type"]]
    spec = golden.validation_spec(annotation)
    assert spec.describe()["params"][0]["schema"] == vector["schema"]
    assert spec.describe()["returns"] == vector["returns"]
    value = msgspec.msgpack.decode(bytes.fromhex(vector["value"]))
    if vector["accept"]:
        spec.bind([value], {})
    else:
        with pytest.raises(BadArgumentsError, match="argument 'v'"):
            spec.bind([value], {})


def test_validation_covers_every_kind_of_declared_type() -> None:
    types_ = {v["type"] for v in DATA["validation"]}
    for needle in ("int", "float", "bool", "None", "str", "bytes", "list[", "dict[", "tuple[",
                   "Literal", "Enum", "datetime", "date", "UUID", "Decimal", "model",
                   "dataclass", "|"):
        assert any(needle in t for t in types_), needle
    assert {v["accept"] for v in DATA["validation"]} == {True, False}


def test_the_spec_states_the_exact_schema_of_every_simple_type() -> None:
    """docs/protocol.md's type table gives, for every declared type with a short schema, the
    exact JSON schema threadhost writes (keys sorted), so another language can write the
    same description and fingerprint."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text("utf-8")
    shown = 0
    for vector in DATA["validation"]:
        for schema in (vector["schema"], vector["returns"]):
            rendered = json.dumps(schema, sort_keys=True)
            composite = {"anyOf", "items", "prefixItems", "additionalProperties", "title",
                         "enum"} & set(schema)
            if composite and vector["type"] not in ("int | None", "Decimal"):
                continue  # S(T) patterns in the spec; exact in the vectors
            assert f"`{rendered}`" in text, (vector["type"], rendered)
            shown += 1
    assert shown > 15


# --------------------------------------------------------------------------- binding


def test_binding_params_have_every_kind() -> None:
    params = DATA["binding"]["params"]
    assert [p["kind"] for p in params] == ["positional_only", "positional_or_keyword",
                                           "positional_or_keyword", "keyword_only"]
    assert [p["required"] for p in params] == [True, True, False, False]
    assert params[2]["default"] == "AA=="  # bytes default described as base64 text


@pytest.mark.parametrize("vector", DATA["binding"]["vectors"], ids=lambda v: v["name"])
def test_binding_vectors_run_through_the_hosts_binder(vector: dict[str, Any]) -> None:
    args, kwargs = msgspec.msgpack.decode(bytes.fromhex(vector["msgpack"]))
    assert [args, kwargs] == golden.from_json([vector["args"], vector["kwargs"]])
    spec = golden.binding_spec()
    if vector["accept"]:
        spec.bind(args, kwargs)
    else:
        with pytest.raises(BadArgumentsError):
            spec.bind(args, kwargs)


def test_binding_vectors_cover_every_fault() -> None:
    names = {v["name"] for v in DATA["binding"]["vectors"] if not v["accept"]}
    assert {"missing", "extra", "duplicate", "unknown-keyword",
            "positional-only-by-keyword"} <= names
