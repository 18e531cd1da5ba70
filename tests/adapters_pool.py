"""A replicable adapter for the pool tests and benchmarks: mylib's ``calc`` and
``read_config``, plus a fast call that stalls (a stuck host) and one that names its host."""

from __future__ import annotations

import os
import time

from examples import mylib
from threadhost.adapter import Adapter, fast, slow

__all__ = ["Stallable"]


class Stallable(Adapter):
    """mylib with a fast call that can run long."""

    replicable = True

    def setup(self) -> None:
        """Initialise mylib (on the library thread)."""
        mylib.init()

    def teardown(self) -> None:
        """Uninitialise mylib (on the library thread)."""
        mylib.uninit()

    @slow(startup=True)
    def read_config(self) -> None:
        """Re-read mylib's configuration ($MYLIB_CONFIG)."""
        mylib.readConfig()

    @fast
    def calc(self, x: int) -> int:
        """Return x + offset."""
        return mylib.calc(x)

    @fast
    def pid(self) -> int:
        """The host's pid."""
        return os.getpid()

    @fast
    def stall(self, seconds: float) -> float:
        """A fast call stuck for ``seconds``; returns them."""
        time.sleep(seconds)
        return seconds
