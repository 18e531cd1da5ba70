"""An adapter for tests/test_conformance.py: results as large as the caller asks."""

from __future__ import annotations

from threadhost.adapter import Adapter, fast


class Big(Adapter):
    """``big(n)`` returns ``n`` bytes: over the message size limit, the host must answer
    with an error instead of sending a body the broker would drop unread (R18)."""

    @fast
    def big(self, n: int) -> bytes:
        return b"x" * n
