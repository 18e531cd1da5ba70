"""``threadhost status`` prints every spec-valid status map (docs/protocol.md §4,
``status_reply``): ``state`` is the one entry a client may rely on; every other entry may be
any msgpack value, and neither the text nor the JSON form may crash on one."""

from __future__ import annotations

import datetime
import json
from typing import Any

import msgspec
import pytest

from threadhost.cli import _format_status, status_json
from threadhost.protocol import StatusReply, decode, encode

ODD: dict[str, Any] = {
    "state": "maintaining",
    "maintenance": "read_config",  # a string where threadhost's broker sends a map
    "last_maintenance": 5,
    "counters": [1, 2],
    "slow_calls": "read_config",
    "hosts": {"h1": "ready"},
    "quarantined": "none",
    "rollout": "halted",
    "restart_count": None,
    "host_pid": b"\x01\x02",
    "uptime": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
    "last_restart_reason": 5,
    "failed_reason": {"why": [1, 2]},
    "generation": 2**64 - 1,
    "in_flight": 1.5,
    "future": msgspec.msgpack.Ext(7, b"x"),
    "nested": {"keys": {1: "int key", b"k": "bin key"}},
}


def _received(status: dict[str, Any]) -> dict[str, Any]:
    """The status as a client decodes it from the wire."""
    msg = decode(encode(StatusReply(id=1, status=status)))
    assert isinstance(msg, StatusReply)
    return msg.status


@pytest.mark.parametrize("key", sorted(set(ODD) - {"state"}))
def test_text_and_json_survive_any_value_in_any_entry(key: str) -> None:
    status = _received({"state": "ready", key: ODD[key]})
    text = _format_status(status)
    assert text.startswith("state:        ")
    assert json.loads(status_json(status))["state"] == "ready"


def test_everything_odd_at_once() -> None:
    status = _received(ODD)
    text = _format_status(status)
    assert "maintaining:  read_config" in text
    out = json.loads(status_json(status))
    assert out["host_pid"] == "0102" and out["uptime"].startswith("2024-01-02T00:00:00")
    assert out["nested"]["keys"] == {"1": "int key", "b'k'": "bin key"}
    assert out["generation"] == 2**64 - 1
