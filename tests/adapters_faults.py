"""mylib with the hooks the fault campaign (``python -m benchmarks.faults``) needs.

:class:`Faulty` is :class:`examples.mylib_adapter.Mylib` — the same ``calc`` (``x + offset``,
so every result names the configuration it was computed with), the same ``read_config``
and the same ``verify`` — plus:

* instance markers (:mod:`tests.adapters_instances`): ``setup`` writes
  ``$INSTANCES_DIR/<pid>.instance`` before ``mylib.init()``, ``teardown`` removes it after
  ``mylib.uninit()``; a live process with a marker holds a library instance;
* ``read_config`` writes ``<pid>.reloading`` while mylib's ``readConfig`` runs;
* ``work(x, seconds)``: a fast call that stays inside the library for ``seconds`` (marker
  ``<pid>.busy`` meanwhile), then answers ``calc(x)``;
* ``crash(n)``: the library aborts the process, as mylib does when it is called from a
  thread other than its own (``os.abort`` inside mylib; ``n`` makes each call distinct, so
  that the broker's poison quarantine, keyed by method and arguments, does not refuse it).

A reload that fails (a configuration mylib refuses) and one that fails ``verify`` (one mylib
applies but ``Mylib.verify`` refuses: a negative ``offset``) come from the configuration file
``$MYLIB_CONFIG``, which the campaign rewrites.
"""

from __future__ import annotations

import threading
import time

from examples import mylib
from examples.mylib_adapter import Mylib
from tests.adapters_instances import _marker
from threadhost.adapter import fast, slow

__all__ = ["Faulty"]


class Faulty(Mylib):
    """mylib, countable and breakable on demand."""

    default_policy = "manual"
    replicable = True

    def setup(self) -> None:
        """Mark the instance, then initialise mylib."""
        _marker("instance").write_text(f"{time.time()!r}\n")
        mylib.init()

    def teardown(self) -> None:
        """Uninitialise mylib, then drop the marker."""
        mylib.uninit()
        _marker("instance").unlink(missing_ok=True)

    @slow(startup=True)
    def read_config(self) -> None:
        """Re-read the configuration (marker ``<pid>.reloading`` meanwhile)."""
        _marker("reloading").write_text(f"{time.time()!r}\n")
        try:
            mylib.readConfig()
        finally:
            _marker("reloading").unlink(missing_ok=True)

    @fast
    def calc(self, x: int) -> int:
        """Return x + offset."""
        return mylib.calc(x)

    @fast
    def work(self, x: int, seconds: float) -> int:
        """Stay in the library for ``seconds``, then return calc(x)."""
        _marker("busy").write_text(f"{time.time()!r}\n")
        try:
            time.sleep(seconds)
            return mylib.calc(x)
        finally:
            _marker("busy").unlink(missing_ok=True)

    @fast
    def crash(self, n: int) -> int:
        """Call mylib from a foreign thread: mylib aborts the process (SIGABRT)."""
        t = threading.Thread(target=mylib.calc, args=(n,), name="foreign")
        t.start()
        t.join()
        return n  # never reached


class Unverified(Faulty):
    """:class:`Faulty` without ``verify``: the campaign's negative control. A configuration
    that mylib applies but the deployment forbids is served; the campaign must say so."""

    def verify(self) -> None:
        """Accept anything."""
