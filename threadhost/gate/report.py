"""The JSON-able views of ``threadhost status``: one per host, the running slow call, the
rollout, the slow calls' measurements. Pure functions of the records and ``now``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadhost.gate.maintenance import Rollout, SlowCall
from threadhost.gate.pool import HostRecord
from threadhost.gate.routing import is_stuck
from threadhost.gate.states import HostState

WAITING_NOTE = "waiting for the previous instance to exit"

__all__ = ["WAITING_NOTE", "ago", "halted_view", "host_view", "rollout_view", "running_view",
           "slow_calls_view"]


def ago(record: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    """A maintenance record with ``ended_ago`` (seconds) instead of its end time."""
    if record is None:
        return None
    out = dict(record)
    out["ended_ago"] = round(now - out.pop("ended_ago_from"), 3)
    return out


def host_view(host: HostRecord, now: float, route_away_after: float, restarts: int
              ) -> dict[str, Any]:
    """One row of the hosts table; a ready host whose fast call overran is ``stuck``."""
    state = host.state.value
    if host.state is HostState.READY and is_stuck(host, now, route_away_after):
        state = "stuck"
    elif host.state is HostState.STARTING and host.waiting:
        state = "waiting"  # for the previous instance of its slot to exit
    out = {"id": host.host_id, "pid": host.pid, "state": state,
           "generation": host.generation, "in_flight": len(host.calls),
           "restarts": restarts, "last_maintenance": ago(host.last_maintenance, now)}
    if state == "waiting":
        out["note"] = WAITING_NOTE
    return out


def running_view(host: HostRecord, now: float, calls: Mapping[str, SlowCall]
                 ) -> dict[str, Any] | None:
    """The slow call ``host`` runs: elapsed against the measured estimate."""
    slow = host.slow
    if slow is None:
        return None
    call = calls.get(slow.name)
    expected = call.estimate.value if call is not None else None
    return {"call": slow.name, "reason": slow.why, "host": host.host_id,
            "elapsed": round(now - slow.started, 3),
            "expected": round(expected, 3) if expected is not None else None}


def rollout_view(rollout: Rollout, now: float) -> dict[str, Any]:
    """A maintenance round in progress."""
    return {"state": "running", "call": rollout.name, "reason": rollout.reason,
            "round": rollout.round,
            "done": list(rollout.done), "failed": list(rollout.failed),
            "active": list(rollout.active), "pending": list(rollout.pending),
            "elapsed": round(now - rollout.started, 3)}


def halted_view(halted: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The last round that halted: which call, on which host, why, and when the policy may
    try again (``retry_in`` seconds, 0 once it may)."""
    out = {k: v for k, v in halted.items() if k not in ("at", "retry_at")}
    out["ago"] = round(now - halted["at"], 3)
    out["retry_in"] = round(max(0.0, halted["retry_at"] - now), 3)
    return out


def slow_calls_view(calls: Mapping[str, SlowCall]) -> dict[str, Any]:
    return {
        name: {"policy": s.spec, "runs": s.runs, "failures": s.failures,
               "estimate": round(s.estimate.value, 3) if s.estimate.value is not None
               else None,
               "deadline": s.deadline, "last_error": s.last_error}
        for name, s in calls.items()
    }
