"""The threadhost adapter for :mod:`examples.mylib`, the seed story's licensed library.

Serve it with ``threadhost serve examples.mylib_adapter`` (or ``examples.mylib_adapter:Mylib``).
Clients can call ``calc`` only; the broker runs ``read_config`` (once at start-up, then per
the maintenance policy) and answers ``calc`` with ``BusyError`` while it runs.
"""

from __future__ import annotations

from examples import mylib
from threadhost.adapter import Adapter, fast, slow

__all__ = ["Mylib"]


class Mylib(Adapter):
    """mylib hosted by threadhost."""

    default_policy = "idle=10s | stale=5m"
    # calc depends only on the configuration, which every instance reads: a pool of hosts
    # (`threadhost serve --hosts N`) answers as one instance would
    replicable = True

    def setup(self) -> None:
        """Initialise mylib (on the library thread)."""
        mylib.init()

    def teardown(self) -> None:
        """Uninitialise mylib (on the library thread)."""
        mylib.uninit()

    @slow(startup=True)
    def read_config(self) -> None:
        """Re-read the configuration (up to 30 s)."""
        mylib.readConfig()

    @fast
    def calc(self, x: int) -> int:
        """Return x + offset."""
        return mylib.calc(x)
