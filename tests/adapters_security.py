"""Adapters for tests/test_security*.py: every execution leaves a line in a file, so a test
can prove that a refused caller ran nothing."""

from __future__ import annotations

import os

from threadhost.adapter import Adapter, fast, slow


def _note(what: str) -> None:
    path = os.environ.get("SECURITY_COUNT_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{what}\n")


class Counted(Adapter):
    """``work(text)`` returns ``text`` upper-cased and writes ``call`` to
    ``$SECURITY_COUNT_FILE``; the slow call ``refresh`` writes ``maintain``."""

    @fast
    def work(self, text: str) -> str:
        _note("call")
        return text.upper()

    @slow
    def refresh(self) -> None:
        _note("maintain")
