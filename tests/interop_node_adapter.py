"""The Python twin of the library the Node.js host serves (``interop/node-host/``).

The Node.js host is a second implementation of the host role, written from
docs/protocol.md alone (docs/interop.md). It describes its library with the same calls as
this adapter, so it must announce the same schema fingerprint: ``threadhost proxy
tests.interop_node_adapter`` generates the proxy the interop test (tests/test_interop_node.py)
uses against the Node.js host, and a mismatch is refused with ``FingerprintMismatchError``.

This class is never served by a Python host in those tests: it only declares the contract.
Its bodies do what the Node.js library does, so that it could be.
"""

from __future__ import annotations

import os
import time

from threadhost.adapter import Adapter, fast, slow

__all__ = ["Calc"]


class Calc(Adapter):
    """A tiny library: calc(x) = x + 1, and a slow reload."""

    replicable = False

    def setup(self) -> None:
        """init: nothing to do."""

    def teardown(self) -> None:
        """uninit: nothing to do."""

    @slow(startup=True)
    def reload(self) -> None:
        """Reload the library's state (sleeps RELOAD_SECONDS, default 0.5 s)."""
        time.sleep(float(os.environ.get("RELOAD_SECONDS", "0.5")))

    @fast
    def calc(self, x: int) -> int:
        """Return x + 1."""
        return x + 1
