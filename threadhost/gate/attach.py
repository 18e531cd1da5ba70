"""Attach mode: which attaching host may join the pool, and telling strangers we are here.

In attach mode (``threadhost broker``) hosts are started elsewhere and announce themselves
with ``ready``. :func:`adoption_refused` decides whether one is adopted; a refused host is
logged once and never routed to. A heartbeat from a host the broker does not know (after a
broker restart, the hosts are still there) is answered with a broker heartbeat, at most
once per interval per host (:class:`Nudges`), so the host sends ``ready`` again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Nudges", "adoption_refused"]


def adoption_refused(
    *,
    closing: str | None,
    pool_fingerprint: str,
    fingerprint: str,
    adapter: Mapping[str, Any],
    attached: int,
    room: bool,
    limit: int | None,
) -> str | None:
    """Why an attaching host (``fingerprint``) is refused, or None to adopt it.
    ``closing`` names the service's state when it stops or failed; ``adapter`` is the
    pool's adapter description (empty before the first host); ``room``: a free slot."""
    if closing is not None:
        return f"the service is {closing}"
    if pool_fingerprint and fingerprint != pool_fingerprint:
        return (f"adapter fingerprint {fingerprint[:12]}… differs from the pool's "
                f"{pool_fingerprint[:12]}…")
    if attached and not adapter.get("replicable", False):
        return "the adapter is not replicable and a host is already attached"
    if not room:
        return f"the pool is full ({limit} hosts)"
    return None


class Nudges:
    """Rate limit for answering unknown hosts' heartbeats: once per ``interval`` each."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def due(self, host_id: str, now: float) -> bool:
        """True (and remembered) if ``host_id`` may be answered at ``now``."""
        last = self._last.get(host_id)
        if last is not None and now - last < self.interval:
            return False
        self._last[host_id] = now
        return True

    def forget(self, host_id: str) -> None:
        self._last.pop(host_id, None)
