"""Adapters that misbehave on purpose, for the supervision tests."""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from threadhost.adapter import Adapter, fast, slow

_libc = ctypes.PyDLL(None)  # PyDLL: calls keep holding the GIL, like a hostile C library


def _seconds(var: str, default: float) -> float:
    path = os.environ.get(var)
    if path and Path(path).exists():
        return float(Path(path).read_text().strip() or default)
    return default


class GilHog(Adapter):
    """Its slow call blocks inside C code *holding the GIL*: no Python thread in the host
    runs meanwhile, heartbeats included. Duration: seconds in the file $GILHOG_FILE."""

    @slow
    def hog(self) -> None:
        """Hold the GIL for a while."""
        _libc.usleep(int(_seconds("GILHOG_FILE", 2.0) * 1_000_000))

    @fast
    def pid(self) -> int:
        """The host's pid."""
        return os.getpid()

    @fast
    def hog_fast(self, seconds: float) -> float:
        """A fast call that holds the GIL for ``seconds`` (heartbeats stop meanwhile)."""
        _libc.usleep(int(seconds * 1_000_000))
        return seconds


class Misbehaving(Adapter):
    """Fast calls that crash, hang or take a while."""

    @fast
    def pid(self) -> int:
        """The host's pid."""
        return os.getpid()

    @fast
    def echo(self, x: int) -> int:
        """Return x."""
        return x

    @fast
    def crash(self) -> None:
        """Abort the process, as a hostile library does."""
        os.abort()

    @fast
    def crash_tagged(self, tag: int) -> None:
        """Abort too; each ``tag`` is another call (no quarantine across tags)."""
        os.abort()

    @fast
    def hang(self) -> None:
        """Never return."""
        time.sleep(3600)

    @fast
    def sleep(self, seconds: float) -> float:
        """Sleep, then return the seconds slept."""
        time.sleep(seconds)
        return seconds

    @fast
    def fail(self, text: str) -> None:
        """Raise a plain exception."""
        raise ValueError(text)


class TwoSlow(Adapter):
    """Two slow calls, each with its own policy."""

    @slow(policy="every=300ms")
    def refresh_a(self) -> None:
        """A short reload."""
        time.sleep(0.1)

    @slow(policy="every=500ms", startup=True)
    def refresh_b(self) -> None:
        """Another short reload."""
        time.sleep(0.1)

    @fast
    def pid(self) -> int:
        """The host's pid."""
        return os.getpid()


class BadStart(Adapter):
    """Its start-up slow call fails: it must never serve."""

    @slow(startup=True)
    def load(self) -> None:
        """Read a configuration that is not there."""
        raise ValueError("no offset in the configuration")

    @fast
    def pid(self) -> int:
        """The host's pid."""
        return os.getpid()
