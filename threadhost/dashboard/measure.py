"""How fast the call panel answers while a slow call runs (docs/dashboard.md):

    python -m threadhost.dashboard.measure http://127.0.0.1:8765 [SECONDS] [METHOD] [ARG]

asks the dashboard at URL for a maintenance (``POST /api/maintain``), then makes the panel's
request (``POST /api/call``: METHOD, ``calc`` by default, with ARG, ``5``, as its first
parameter) every 50 ms for SECONDS (default 10) and prints the outcomes and the round-trip
times (median, p99, max), as the browser sees them. Standard library only.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.request
from typing import Any

__all__ = ["main"]


def _post(base: str, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    request = urllib.request.Request(base.rstrip("/") + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=5) as response:
        out: dict[str, Any] = json.load(response)
    return out, (time.perf_counter() - t0) * 1000.0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    base = args[0]
    seconds = float(args[1]) if len(args) > 1 else 10.0
    method = args[2] if len(args) > 2 else "calc"
    value = args[3] if len(args) > 3 else "5"
    started, _ = _post(base, "/api/maintain", {"call": None})
    print(f"maintain: {started}")
    with urllib.request.urlopen(base.rstrip("/") + "/api/describe", timeout=5) as response:
        calls = json.load(response).get("calls") or []
    fields: list[dict[str, Any]] = next((c["fields"] for c in calls if c.get("name") == method), [])
    values = {fields[0]["name"]: value} if fields else {}
    times: list[float] = []
    outcomes: dict[str, int] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out, ms = _post(base, "/api/call", {"method": method, "values": values})
        times.append(ms)
        outcomes[out["outcome"]] = outcomes.get(out["outcome"], 0) + 1
        time.sleep(0.05)
    if not times:
        return 1
    times.sort()
    p99 = times[max(0, round(len(times) * 0.99) - 1)]
    print(f"{len(times)} calls {outcomes}; round trip ms: median "
          f"{statistics.median(times):.2f}, p99 {p99:.2f}, max {times[-1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
