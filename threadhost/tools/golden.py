"""Golden vectors: the exact bytes of a canonical example of every message kind.

``threadhost/data/golden.json`` (shipped with the package) is generated from the tables
below (see docs/protocol.md, "Golden vectors")::

    python -m threadhost.tools.golden           # (re)write the file
    python -m threadhost.tools.golden --check   # exit 1 if the file is stale (CI runs this)

The file has three tables, all bytes in lowercase hex:

``messages``  one or more canonical examples of every kind (and of every error code):
              ``fields`` (JSON; ``{"$bin": "<hex>"}`` stands for a msgpack bin value) and
              ``header``/``body``. An implementation MUST decode ``body`` to ``fields`` and
              SHOULD encode ``fields`` to exactly ``body`` (the canonical form: ``kind``
              first, fields in declared order, shortest encodings, text as str, bytes as
              bin, floats as float64).
``variants``  non-canonical but valid encodings (R7, R8) that MUST decode to ``fields``.
``rejects``   frames that MUST be rejected, with the error code and the request id the
              receiver must report (``max_size`` when the vector needs a small limit).
``carried``   how values of the carried standard types go on the wire (``msgpack``): an
              aware datetime as a msgpack timestamp, a date, UUID or Decimal as a string, an
              enum as its value.
``fingerprints`` adapter descriptions' ``calls`` (``calls_msgpack``: the exact msgpack, so
              floats stay floats; ``calls``: the same as JSON), the ``canonical`` text the
              fingerprint hashes and the ``fingerprint`` (docs/protocol.md, "The adapter
              fingerprint").
``validation`` per declared type (its Python spelling, the JSON ``schema`` a description
              carries for a parameter of that type and the ``returns`` schema for a result),
              msgpack values that a host MUST accept (``accept: true``) or MUST refuse
              with ``bad_arguments`` (docs/protocol.md, "Argument and result
              validation").
``binding``   one call's ``params`` (every parameter kind, defaults) and ``args``/``kwargs``
              (``msgpack``: the pair, exact) that a host MUST accept or MUST refuse with
              ``bad_arguments`` (docs/protocol.md, "Argument binding").

A change to these bytes is a change of the protocol: bump the version instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import decimal
import enum
import json
import sys
import uuid
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import msgpack
import msgspec
from pydantic import BaseModel

from threadhost.adapter import Adapter, AdapterSpec, fast, fingerprint_contract, inspect_adapter
from threadhost.errors import BadArgumentsError
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
    Message,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
    Status,
    StatusReply,
    encode,
    fields_of,
)

__all__ = ["BINDING", "CARRIED", "DIRECTIONS", "EXAMPLES", "FINGERPRINTED", "PATH", "REJECTS",
           "VALIDATION", "VARIANTS", "binding_spec", "from_json", "load", "main", "render",
           "to_json", "validation_spec"]

PATH: Final = Path(__file__).parent.parent / "data" / "golden.json"

DIRECTIONS: Final[dict[str, str]] = {
    "call": "client -> broker, broker -> host",
    "result": "host -> broker, broker -> client",
    "error": "host -> broker, broker -> client",
    "describe": "client -> broker",
    "description": "broker -> client",
    "maintain": "client -> broker",
    "maintain_reply": "broker -> client",
    "status": "client -> broker",
    "status_reply": "broker -> client",
    "ping": "client -> broker",
    "pong": "broker -> client",
    "ready": "host -> broker",
    "heartbeat": "host -> broker, broker -> host",
    "shutdown": "broker -> host",
    "goodbye": "host -> broker",
}

_FP = "7d4284f8ac29d0248c198eebee34d2ced8d83cc8ed644ff83ec4b844f0b60ba1"
_ADAPTER: dict[str, Any] = {
    "adapter": "examples.mylib_adapter:Mylib",
    "calls": [
        {"name": "read_config", "kind": "slow", "params": [], "startup": True},
        {"name": "calc", "kind": "fast",
         "params": [{"name": "x", "kind": "positional_or_keyword",
                     "schema": {"type": "integer"}, "required": True}]},
    ],
}

EXAMPLES: Final[list[tuple[str, Message]]] = [
    ("call", Call(id=1, method="calc", args=[5])),
    ("call-full", Call(id=(1 << 64) - 1, method="f",
                       args=[b"\x00\xff", 1.5, None, True, -1, [1, 2], "\u00e9"],
                       kwargs={"k": {"a": 1}}, timeout=2.5, fingerprint="ab" * 32)),
    ("result", Result(id=1, value=6)),
    ("result-nil", Result(id=2, value=None)),
    ("describe", Describe(id=3)),
    ("description", Description(id=3, adapter=_ADAPTER, fingerprint=_FP)),
    ("maintain", Maintain(id=4)),
    ("maintain-named", Maintain(id=5, method="read_config")),
    ("maintain_reply", MaintainReply(id=5, started=True, reason="started 'read_config'")),
    ("maintain_reply-retry", MaintainReply(
        id=5, started=False, reason="rate-limited: manual maintenance may keep the service "
                                    "busy 50% of the time at most; retry in 2.5s",
        retry_after=2.5)),
    ("status", Status(id=6)),
    ("status_reply", StatusReply(id=6, status={"state": "ready", "generation": 2})),
    ("ping", Ping(id=0)),
    ("pong", Pong(id=0)),
    ("ready", Ready(host_id="h1", pid=4242, adapter=_ADAPTER, fingerprint=_FP)),
    ("heartbeat", Heartbeat(host_id="h1", pid=4242)),
    ("heartbeat-busy", Heartbeat(host_id="h1", pid=4242, busy_id=7, busy_for=1.5)),
    ("heartbeat-stranger", Heartbeat(host_id="broker-4242-0123456789ab", pid=4242,
                                     stranger=True)),
    ("shutdown", Shutdown(reason="SIGTERM received")),
    ("goodbye", Goodbye(host_id="h1")),
    ("goodbye-failed", Goodbye(host_id="h1", ok=False, code=ErrorCode.ADAPTER,
                               message="cannot import adapter module 'x'")),
    ("error-busy", ErrorReply(id=1, code=ErrorCode.BUSY,
                              message="busy: slow call 'read_config' running for 1.2s",
                              retry_after=3.75)),
    ("error-unavailable", ErrorReply(id=1, code=ErrorCode.UNAVAILABLE,
                                     message="unavailable: restarting the host",
                                     retry_after=0.5)),
    ("error-failed", ErrorReply(id=1, code=ErrorCode.FAILED, message="service failed")),
    ("error-timeout", ErrorReply(id=1, code=ErrorCode.TIMEOUT, message="timed out")),
    ("error-crashed", ErrorReply(id=1, code=ErrorCode.CRASHED,
                                 message="the host died during the call; outcome unknown")),
    ("error-unknown_call", ErrorReply(id=1, code=ErrorCode.UNKNOWN_CALL,
                                      message="no client-callable call 'nope'")),
    ("error-bad_arguments", ErrorReply(id=1, code=ErrorCode.BAD_ARGUMENTS,
                                       message="calc() missing argument 'x'")),
    ("error-remote_exception", ErrorReply(id=1, code=ErrorCode.REMOTE_EXCEPTION,
                                          message="boom", remote_type="ValueError",
                                          traceback="Traceback (most recent call last):\n")),
    ("error-protocol", ErrorReply(id=None, code=ErrorCode.PROTOCOL,
                                  message="body is not valid msgpack")),
    ("error-version", ErrorReply(id=None, code=ErrorCode.VERSION,
                                 message="protocol version 2 not supported (supported: 1)")),
    ("error-fingerprint", ErrorReply(id=1, code=ErrorCode.FINGERPRINT,
                                     message="regenerate the proxy")),
    ("error-adapter", ErrorReply(id=1, code=ErrorCode.ADAPTER, message="bad adapter")),
    ("error-poisoned", ErrorReply(id=1, code=ErrorCode.POISONED,
                                  message="poisoned: calc(...) killed 2 hosts within 600s")),
    ("error-unfit", ErrorReply(id=1, code=ErrorCode.UNFIT,
                               message="verify failed after 'read_config': offset missing")),
    ("error-permission_denied", ErrorReply(id=1, code=ErrorCode.PERMISSION_DENIED,
                                           message="permission denied: maintain needs an "
                                                   "operator key")),
]

_PING_BODY = msgpack.packb({"kind": "ping", "id": 1})
VARIANTS: Final[list[tuple[str, bytes, Message]]] = [
    ("kind-last-map16-uint64-str8",
     b"\xde\x00\x02\xa2id\xcf" + (10).to_bytes(8, "big") + b"\xa4kind\xd9\x04ping",
     Ping(id=10)),
    ("unknown-entry", msgpack.packb({"kind": "ping", "id": 11, "future": [1, {"x": 2}]}),
     Ping(id=11)),
    ("float32-timeout", msgpack.packb({"kind": "call", "id": 12, "method": "calc",
                                       "args": [5], "timeout": 2.5}, use_single_float=True),
     Call(id=12, method="calc", args=[5], timeout=2.5)),
    ("defaults-omitted", msgpack.packb({"id": 13, "kind": "call", "method": "calc"}),
     Call(id=13, method="calc")),
    # a broker older than retry_after on maintain_reply
    ("maintain_reply-no-retry_after", msgpack.packb({"kind": "maintain_reply", "id": 14,
                                                     "started": False, "reason": "busy"}),
     MaintainReply(id=14, started=False, reason="busy")),
]

# name, frames, error code, request id, max_size (None: the default)
REJECTS: Final[list[tuple[str, list[bytes], str, int | None, int | None]]] = [
    ("one-frame", [HEADER], "protocol", None, None),
    ("three-frames", [HEADER, _PING_BODY, b""], "protocol", None, None),
    ("bad-signature", [b"XX\x01", _PING_BODY], "protocol", None, None),
    ("short-header", [b"TH", _PING_BODY], "protocol", None, None),
    ("long-header", [b"TH\x01\x00", _PING_BODY], "protocol", None, None),
    ("version-0", [b"TH\x00", _PING_BODY], "version", None, None),
    ("version-2", [b"TH\x02", _PING_BODY], "version", None, None),
    ("not-msgpack", [HEADER, b"\xc1"], "protocol", None, None),
    ("empty-body", [HEADER, b""], "protocol", None, None),
    ("truncated", [HEADER, _PING_BODY[:-1]], "protocol", None, None),
    ("not-a-map", [HEADER, msgpack.packb([1, 2])], "protocol", None, None),
    ("unknown-kind", [HEADER, msgpack.packb({"kind": "frobnicate", "id": 7})], "protocol", 7,
     None),
    ("no-kind", [HEADER, msgpack.packb({"id": 8})], "protocol", 8, None),
    ("missing-field", [HEADER, msgpack.packb({"kind": "call", "id": 9})], "protocol", 9, None),
    ("wrong-type", [HEADER, msgpack.packb({"kind": "call", "id": 10, "method": "x",
                                           "args": {}})], "protocol", 10, None),
    ("negative-id", [HEADER, msgpack.packb({"kind": "ping", "id": -1})], "protocol", None,
     None),
    ("boolean-id", [HEADER, msgpack.packb({"kind": "ping", "id": True})], "protocol", None,
     None),
    ("float-id", [HEADER, msgpack.packb({"kind": "ping", "id": 1.0})], "protocol", None, None),
    ("oversized", [HEADER, msgpack.packb({"kind": "ping", "id": 11, "pad": "x" * 16})],
     "protocol", None, 16),
    # strict field types (docs/protocol.md §3, "Strictness"): no coercion but int -> float
    ("bool-as-int", [HEADER, msgpack.packb({"kind": "goodbye", "host_id": "h", "ok": 0})],
     "protocol", None, None),
    ("int-as-float", [HEADER, msgpack.packb({"kind": "ready", "host_id": "h", "pid": 1.0,
                                             "adapter": {}, "fingerprint": "f"})],
     "protocol", None, None),
    ("float-as-str", [HEADER, msgpack.packb({"kind": "call", "id": 14, "method": "calc",
                                             "timeout": "2.5"})], "protocol", 14, None),
    ("int-map-key", [HEADER, msgpack.packb({"kind": "call", "id": 15, "method": "calc",
                                            "kwargs": {1: 2}})], "protocol", 15, None),
    ("bin-map-key", [HEADER, msgpack.packb({"kind": "call", "id": 16, "method": "calc",
                                            "kwargs": {b"x": 2}}, use_bin_type=True)],
     "protocol", 16, None),
    ("unknown-code", [HEADER, msgpack.packb({"kind": "error", "id": 17, "code": "nope"})],
     "protocol", 17, None),
    # the id stays readable whatever else is wrong with a map body (docs/protocol.md §8)
    ("top-level-int-key", [HEADER, msgpack.packb({"kind": "call", "id": 18, "method": "calc",
                                                  1: 2})], "protocol", 18, None),
]


# --------------------------------------------------------------------------- carried types


class _Shade(enum.Enum):
    RED = "red"
    DARK = 2


_UTC = datetime.UTC
#: name, Python value: its msgpack form is what the client and the host both send
CARRIED: Final[list[tuple[str, Any]]] = [
    ("datetime-seconds", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_UTC)),
    ("datetime-micros", datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=_UTC)),
    ("datetime-offset", datetime.datetime(2024, 1, 2, 5, 4, 5,
                                          tzinfo=datetime.timezone(datetime.timedelta(hours=2)))),
    ("datetime-before-1970", datetime.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=_UTC)),
    ("datetime-after-2106", datetime.datetime(2200, 1, 1, tzinfo=_UTC)),
    ("date", datetime.date(2024, 2, 29)),
    ("uuid", uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")),
    ("decimal", decimal.Decimal("-12.50")),
    ("decimal-exponent", decimal.Decimal("1E+3")),
    ("enum-str", _Shade.RED),
    ("enum-int", _Shade.DARK),
]


def _carried_json(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    return str(value)


# --------------------------------------------------------------------------- fingerprints


class _Point(BaseModel):
    """A point (this docstring is not fingerprinted)."""

    x: int
    y: float = 0.5


class _Vectors(Adapter):
    """Calls with defaults, floats, non-ASCII text and a model: fingerprint vectors."""

    @fast
    def scale(self, x: float, factor: float = 1.0, label: str = "d\u00e9j\u00e0 \U0001f600") -> str:
        """Docstrings do not count."""
        return label * int(x * factor)

    @fast
    def move(self, p: _Point, *, dx: int = -1, when: datetime.date | None = None) -> _Point:
        """Models and optional standard types."""
        return p

    @fast
    def pick(self, shade: _Shade, ids: list[uuid.UUID], price: decimal.Decimal) -> bytes:
        return b""


def _specs() -> list[tuple[str, AdapterSpec]]:
    from examples.mylib_adapter import Mylib

    return [("mylib", inspect_adapter(Mylib)), ("vectors", inspect_adapter(_Vectors))]


FINGERPRINTED: Final = _specs


# --------------------------------------------------------------------------- validation


class _Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class _Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class _Model(BaseModel):
    x: int
    y: int = 0


@dataclasses.dataclass
class _Box:
    w: int
    tags: list[str] = dataclasses.field(default_factory=list)


_TS = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_UTC)
#: declared type (its spelling), annotation, values a host MUST accept, values it MUST refuse
VALIDATION: Final[list[tuple[str, Any, list[Any], list[Any]]]] = [
    ("int", int, [5, -1, 2**63 - 1, 2**64 - 1], [5.0, True, "5", None]),
    ("float", float, [5.0, -0.5, 5, 2**64 - 1], [True, "5.0", None]),
    ("str", str, ["x", ""], [b"x", 5, None]),
    ("bytes", bytes, [b"x", b""], ["x", [1]]),
    ("bool", bool, [True, False], [1, 0, "true", None]),
    ("None", None, [None], [0, "", False]),
    ("int | None", int | None, [None, 5], [5.0, "5"]),
    ("int | str", int | str, [5, "5"], [5.0, b"5", True]),
    ("float | str", float | str, [1, 1.5, "x"], [True, None]),
    ("list[int]", list[int], [[1, 2], []], [[1, "2"], [1.0], {"a": 1}]),
    ("dict[str, int]", dict[str, int], [{"a": 1}, {}], [{1: 1}, {"a": "1"}, [["a", 1]]]),
    ("dict[int, str]", dict[int, str], [{1: "a"}], [{"1": "a"}]),
    ("tuple[int, str]", tuple[int, str], [[1, "a"]], [[1], [1, "a", 2], ["a", 1]]),
    ("tuple[int, ...]", tuple[int, ...], [[], [1, 2]], [[1, "2"]]),
    ("Literal['a', 3]", Literal["a", 3], ["a", 3], ["b", 3.0, True]),
    ("Enum (str values)", _Color, ["red", "green"], ["RED", 1, None]),
    ("IntEnum", _Level, [1, 2], [True, 1.0, "1", 3]),
    ("datetime", datetime.datetime, [_TS], [_TS.isoformat(), 1704164645, None]),
    ("date", datetime.date, ["2024-01-02", "2024-02-29"],
     ["2024-1-2", "20240102", "2023-02-29", "2024-01-02T00:00:00", _TS, 19724]),
    ("UUID", uuid.UUID, ["12345678-9abc-def0-1234-56789abcdef0",
                         "12345678-9ABC-DEF0-1234-56789ABCDEF0"],
     ["123456789abcdef0123456789abcdef0", b"\x124Vx\x9a\xbc\xde\xf0\x124Vx\x9a\xbc\xde\xf0",
      "{12345678-9abc-def0-1234-56789abcdef0}"]),
    ("Decimal", decimal.Decimal, ["1.50", "-1E+3", "0", ".5"],
     [1.5, 1, "NaN", "Infinity", "1,5", " 1", ""]),
    ("model {x: int, y: int = 0} (pydantic, default config)", _Model,
     [{"x": 1}, {"x": 1, "y": 2, "z": 3}, {"x": "1"}], [{"y": 1}, {"x": 1.5}, [1, 2]]),
    ("dataclass {w: int, tags: list[str] = []}", _Box,
     [{"w": 1}, {"w": 1, "tags": ["a"]}], [{"w": "1"}, {}, {"w": 1, "tags": "a"}, [1]]),
]


def validation_spec(annotation: Any) -> Any:
    """A one-parameter call ``f(v: annotation) -> annotation`` (its CallSpec), to run a
    vector through (and to show the ``returns`` schema of the type)."""
    namespace: dict[str, Any] = {"fast": fast, "T": annotation}
    exec(
        "class V:\n    @fast\n    def f(self, v: T) -> T:\n        return v\n", namespace
    )
    cls = type("V", (Adapter, namespace["V"]), {})
    return inspect_adapter(cls).calls["f"]


def _accepts(spec: Any, value: Any) -> bool:
    try:
        spec.bind([value], {})
    except BadArgumentsError:
        return False
    return True


def _validation() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spelling, annotation, good, bad in VALIDATION:
        spec = validation_spec(annotation)
        schema = spec.describe()["params"][0]["schema"]
        returns = spec.describe()["returns"]
        for accept, values in ((True, good), (False, bad)):
            for value in values:
                body = msgspec.msgpack.encode(value)
                wire = msgspec.msgpack.decode(body)  # what a host gets in ``args``
                if _accepts(spec, wire) is not accept:
                    raise AssertionError(f"{spelling}: {value!r} should be "
                                         f"{'accepted' if accept else 'refused'}")
                out.append({"type": spelling, "schema": schema, "returns": returns,
                            "value": body.hex(), "shows": repr(value), "accept": accept})
    return out


# --------------------------------------------------------------------------- binding


class _Binding(Adapter):
    @fast
    def f(self, a: int, /, b: str, c: bytes = b"\x00", *, d: bool = False) -> None:
        """One parameter of each kind; c and d have defaults."""


#: name, args, kwargs, accepted (docs/protocol.md, "Argument binding"); a refusal is
#: ``bad_arguments``
BINDING: Final[list[tuple[str, list[Any], dict[str, Any], bool]]] = [
    ("positional", [1, "x"], {}, True),
    ("keyword", [1], {"b": "x"}, True),
    ("all", [1, "x", b"y"], {"d": True}, True),
    ("all-keywords", [1], {"b": "x", "c": b"y", "d": False}, True),
    ("keyword-order-free", [1], {"d": True, "b": "x"}, True),
    ("missing-positional-only", [], {"b": "x"}, False),
    ("missing", [1], {}, False),
    ("extra", [1, "x", b"y", True], {}, False),
    ("positional-only-by-keyword", [], {"a": 1, "b": "x"}, False),
    ("duplicate", [1, "x"], {"b": "y"}, False),
    ("unknown-keyword", [1, "x"], {"e": 1}, False),
    ("keyword-wrong-type", [1, "x"], {"d": 1}, False),
    ("nil-is-not-the-default", [1, "x", None], {}, False),
    ("described-default-is-not-the-wire-form", [1, "x", "AA=="], {}, False),
]


def binding_spec() -> Any:
    """The CallSpec the ``binding`` vectors bind against."""
    return inspect_adapter(_Binding).calls["f"]


def _binding() -> dict[str, Any]:
    spec = binding_spec()
    vectors: list[dict[str, Any]] = []
    for name, args, kwargs, accept in BINDING:
        got = True
        try:
            spec.bind(list(args), dict(kwargs))
        except BadArgumentsError:
            got = False
        if got is not accept:
            raise AssertionError(f"binding {name}: should be {'accepted' if accept else 'refused'}")
        vectors.append({"name": name, "args": to_json(args), "kwargs": to_json(kwargs),
                        "msgpack": msgspec.msgpack.encode([args, kwargs]).hex(),
                        "accept": accept})
    return {"params": spec.describe()["params"], "vectors": vectors}


def to_json(value: Any) -> Any:
    """A msgpack value as JSON (bytes become ``{"$bin": hex}``)."""
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, ErrorCode):
        return value.value
    return value


def from_json(value: Any) -> Any:
    """The inverse of :func:`to_json`."""
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def render() -> str:
    """The text of ``golden.json`` (deterministic)."""
    doc = {
        "generated_by": "python -m threadhost.tools.golden (do not edit; a change of these bytes "
                        "is a protocol change)",
        "spec": "docs/protocol.md",
        "protocol": PROTOCOL_VERSION,
        "header": HEADER.hex(),
        "conventions": "bytes are lowercase hex; in 'fields', {\"$bin\": hex} is a msgpack "
                       "bin value; integers may exceed 2^53 (use a big-integer-safe parser)",
        "messages": [
            {"name": name, "kind": msg.kind, "direction": DIRECTIONS[msg.kind],
             "fields": to_json(fields_of(msg)),
             "header": encode(msg)[0].hex(), "body": encode(msg)[1].hex()}
            for name, msg in EXAMPLES
        ],
        "variants": [
            {"name": name, "header": HEADER.hex(), "body": body.hex(),
             "fields": to_json(fields_of(msg))}
            for name, body, msg in VARIANTS
        ],
        "rejects": [
            {"name": name, "frames": [f.hex() for f in frames], "error": code, "id": rid,
             **({"max_size": max_size} if max_size is not None else {})}
            for name, frames, code, rid, max_size in REJECTS
        ],
        "carried": [
            {"name": name, "python": _carried_json(value),
             "msgpack": msgspec.msgpack.encode(value).hex()}
            for name, value in CARRIED
        ],
        "fingerprints": [
            {"name": name, "calls": spec.describe()["calls"],
             "calls_msgpack": msgspec.msgpack.encode(spec.describe()["calls"]).hex(),
             "canonical": fingerprint_contract(spec.describe()["calls"]),
             "fingerprint": spec.fingerprint}
            for name, spec in FINGERPRINTED()
        ],
        "validation": _validation(),
        "binding": _binding(),
    }
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"


def load() -> dict[str, Any]:
    """The shipped ``golden.json`` (read through importlib.resources)."""
    text = resources.files("threadhost").joinpath("data/golden.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m threadhost.tools.golden",
                                     description="Generate threadhost/data/golden.json.")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from what would be generated")
    ns = parser.parse_args(argv)
    text = render()
    if ns.check:
        current = PATH.read_text("utf-8") if PATH.exists() else ""
        if current != text:
            print(f"{PATH} is stale: run python -m threadhost.tools.golden", file=sys.stderr)
            return 1
        print(f"{PATH} is up to date")
        return 0
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(text, "utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
