"""The threadhost adapter for :mod:`examples.mylib`, the seed story's licensed library.

Serve it with ``threadhost serve examples.mylib_adapter`` (or ``examples.mylib_adapter:Mylib``).
Clients can call ``calc`` only; the broker runs ``read_config`` (once at start-up, then per
the maintenance policy) and answers ``calc`` with ``BusyError`` while it runs.

``verify`` runs after every ``read_config`` (on the library thread, like every mylib call)
and holds the configuration in force to this deployment's rules, which mylib itself does not
check: a ``readConfig`` completed, a configuration file sets ``offset`` explicitly (mylib
would silently use the default 1) and ``offset`` is not negative. A file that breaks them
takes the host out of service instead of being served.
"""

from __future__ import annotations

from threadhost.adapter import Adapter, fast, slow

from . import mylib

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

    def verify(self) -> None:
        """The configuration in force is complete and sane (see the module docstring)."""
        state = mylib.state()
        if not state.configured:
            raise RuntimeError("no configuration: readConfig has not completed since init")
        if state.source is not None and "offset" not in state.keys:
            raise ValueError(f"{state.source} does not set offset (mylib would use the "
                             f"default, {mylib.Config().offset})")
        if state.config.offset < 0:
            where = state.source or "the built-in defaults"
            raise ValueError(f"{where}: offset = {state.config.offset} is negative")

    @slow(startup=True)
    def read_config(self) -> None:
        """Re-read the configuration (up to 30 s)."""
        mylib.readConfig()

    @fast
    def calc(self, x: int) -> int:
        """Return x + offset."""
        return mylib.calc(x)
