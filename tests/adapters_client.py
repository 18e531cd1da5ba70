"""An adapter whose fast calls are named like client members, for the client tests."""

from __future__ import annotations

from threadhost.adapter import Adapter, fast


class Colliding(Adapter):
    """Fast calls named ``status`` and ``close``: a client must call these, not its own."""

    @fast
    def status(self) -> str:
        """The library's own status."""
        return "adapter status"

    @fast
    def close(self) -> str:
        """Close something in the library (not the client)."""
        return "adapter closed"

    @fast
    def calc(self, x: int) -> int:
        """Return x + 1."""
        return x + 1


class WithTimeoutCall(Adapter):
    """A fast call named like a generated proxy's ``with_timeout``."""

    @fast
    def with_timeout(self, seconds: float) -> float:
        """Return seconds."""
        return seconds
