"""Poison calls: a fast call that keeps killing hosts is quarantined.

A call is identified by its method and a digest of its arguments (:func:`call_key`). When a
host dies (or is killed for a hung call) while running a fast call, that call is charged
with the death (:meth:`Quarantine.charge`). A call charged ``kills`` times within
``window`` seconds is *poisoned*: the broker answers it at once with ``poisoned``, without
letting it reach a host, until the service restarts (the quarantine lives in the broker's
memory only). Admission looks a call up only when its method has a poisoned variant, so
the hot path pays nothing while the quarantine is empty.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgpack

try:  # hashlib's own blake2b, without hashlib's import of OpenSSL (broker memory)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _blake2b

__all__ = ["Quarantine", "call_key"]


def call_key(method: str, args: Any, kwargs: Any) -> str:
    """A stable digest of a call: method, positional and keyword arguments (by name)."""
    body = msgpack.packb([method, list(args or ()), sorted((kwargs or {}).items())],
                         default=repr, use_bin_type=True)
    return f"{method}:{_blake2b(body, digest_size=8).hexdigest()}"


class Quarantine:
    """Deaths charged per call key; the keys that reached the limit."""

    def __init__(self, kills: int = 2, window: float = 600.0) -> None:
        self.kills = kills
        self.window = window
        self._deaths: dict[str, deque[float]] = {}
        self.poisoned: dict[str, dict[str, Any]] = {}
        self.methods: frozenset[str] = frozenset()
        """Methods with at least one poisoned call (the only ones admission must hash)."""

    def charge(self, key: str, method: str, now: float, reason: str) -> bool:
        """A host died running the call ``key`` at ``now``; True if it is poisoned now."""
        if key in self.poisoned:
            return False
        times = self._deaths.setdefault(key, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.kills:
            return False
        del self._deaths[key]
        self.poisoned[key] = {"method": method, "kills": len(times), "since": now,
                              "last_death": reason}
        self.methods = self.methods | {method}
        return True

    def is_poisoned(self, key: str) -> bool:
        return key in self.poisoned

    def view(self, now: float) -> list[dict[str, Any]]:
        """The quarantined calls for ``status``: key, method, kills, age, last death."""
        return [{"call": key, "method": q["method"], "kills": q["kills"],
                 "since": round(now - q["since"], 3), "last_death": q["last_death"]}
                for key, q in self.poisoned.items()]
