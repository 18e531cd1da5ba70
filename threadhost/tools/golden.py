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

A change to these bytes is a change of the protocol: bump the version instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Final

import msgpack

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
)

__all__ = ["DIRECTIONS", "EXAMPLES", "PATH", "REJECTS", "VARIANTS", "from_json", "load",
           "main", "render", "to_json"]

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
    ("status", Status(id=6)),
    ("status_reply", StatusReply(id=6, status={"state": "ready", "generation": 2})),
    ("ping", Ping(id=0)),
    ("pong", Pong(id=0)),
    ("ready", Ready(host_id="h1", pid=4242, adapter=_ADAPTER, fingerprint=_FP)),
    ("heartbeat", Heartbeat(host_id="h1", pid=4242)),
    ("heartbeat-busy", Heartbeat(host_id="h1", pid=4242, busy_id=7, busy_for=1.5)),
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
]


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
             "fields": to_json(msg.model_dump(mode="python")),
             "header": encode(msg)[0].hex(), "body": encode(msg)[1].hex()}
            for name, msg in EXAMPLES
        ],
        "variants": [
            {"name": name, "header": HEADER.hex(), "body": body.hex(),
             "fields": to_json(msg.model_dump(mode="python"))}
            for name, body, msg in VARIANTS
        ],
        "rejects": [
            {"name": name, "frames": [f.hex() for f in frames], "error": code, "id": rid,
             **({"max_size": max_size} if max_size is not None else {})}
            for name, frames, code, rid, max_size in REJECTS
        ],
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
