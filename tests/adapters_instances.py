"""An adapter that lets tests count live library instances (tests/test_single_instance.py).

``setup`` writes ``$INSTANCES_DIR/<pid>.instance`` and ``teardown`` removes it: a process
whose marker exists has passed ``setup`` (its library instance lives until the process
exits, whatever happens to the marker). ``reload`` (slow, not at start-up) writes
``<pid>.reloading`` and sleeps ``$RELOAD_SECONDS`` (default 20).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from threadhost.adapter import Adapter, fast, slow


def _marker(suffix: str) -> Path:
    return Path(os.environ["INSTANCES_DIR"]) / f"{os.getpid()}.{suffix}"


class Counted(Adapter):
    """A library instance per host process, visible as a marker file."""

    replicable = True

    def setup(self) -> None:
        _marker("instance").write_text(f"{time.time()!r}\n")

    def teardown(self) -> None:
        _marker("instance").unlink(missing_ok=True)

    @slow
    def reload(self) -> None:
        """Sleep $RELOAD_SECONDS (a long slow call)."""
        _marker("reloading").write_text(f"{time.time()!r}\n")
        try:
            time.sleep(float(os.environ.get("RELOAD_SECONDS", "20")))
        finally:
            _marker("reloading").unlink(missing_ok=True)

    @fast
    def pid(self) -> int:
        """The host's pid."""
        return os.getpid()
