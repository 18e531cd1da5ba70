"""Adapters for tests/test_conformance.py and tests/test_host_broker_heartbeat.py."""

from __future__ import annotations

import os
import time

from threadhost.adapter import Adapter, fast


class Big(Adapter):
    """``big(n)`` returns ``n`` bytes: over the message size limit, the host must answer
    with an error instead of sending a body the broker would drop unread (R18)."""

    @fast
    def big(self, n: int) -> bytes:
        return b"x" * n


class SlowSetup(Adapter):
    """``setup`` takes ``$SLOW_SETUP_SECONDS`` (default 2) seconds: a host still in setup must
    not re-announce itself to a broker's heartbeats before its first ``ready`` (R51)."""

    def setup(self) -> None:
        time.sleep(float(os.environ.get("SLOW_SETUP_SECONDS", "2")))

    @fast
    def echo(self, x: int) -> int:
        return x
