"""Adapters for tests/test_conformance.py, tests/test_host_broker_heartbeat.py and
tests/test_verify.py."""

from __future__ import annotations

import os
import time

from threadhost.adapter import Adapter, fast, slow


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


class Unfit(Adapter):
    """``verify`` fails on demand (R54). ``reload`` (slow) takes the next outcome from
    ``$UNFIT_RELOADS`` (comma-separated, default ``bad``; later reloads: ``ok``):

    * ``ok``: the state is good;  ``bad``: the state is bad (``verify`` fails);
    * ``raise``: ``reload`` raises and the state stays as it was;
    * ``raise-bad``: the state turns bad and ``reload`` raises.

    ``$UNFIT_STARTUP=1``: the state is bad from the start (``verify`` fails before ready).
    ``echo(x)`` returns x; ``reloads()`` the number of reloads run."""

    def __init__(self) -> None:
        self.bad = os.environ.get("UNFIT_STARTUP") == "1"
        self.outcomes = [o.strip() for o in os.environ.get("UNFIT_RELOADS", "bad").split(",")]
        self.count = 0

    def verify(self) -> None:
        if self.bad:
            raise RuntimeError(f"bad state after {self.count} reloads")

    @slow
    def reload(self) -> None:
        outcome = self.outcomes[self.count] if self.count < len(self.outcomes) else "ok"
        self.count += 1
        if outcome in ("ok", "bad", "raise-bad"):
            self.bad = outcome != "ok"
        if outcome.startswith("raise"):
            raise OSError(f"reload {self.count} failed")

    @fast
    def echo(self, x: int) -> int:
        return x

    @fast
    def reloads(self) -> int:
        return self.count


class Counted(Adapter):
    """``add(a, b)`` counts its runs and ``runs()`` tells the count: the kit's ``--counter``
    sees whether a refused call ran library code (R39). ``reload`` (slow) takes 0.7 s."""

    def __init__(self) -> None:
        self.count = 0

    @slow(startup=False)
    def reload(self) -> None:
        time.sleep(0.7)

    @fast
    def add(self, a: int, b: int) -> int:
        self.count += 1
        return a + b

    @fast
    def runs(self) -> int:
        return self.count
