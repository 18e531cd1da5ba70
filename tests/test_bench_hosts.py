"""Smoke run of the pool benchmark (``python -m benchmarks.hosts --quick``): every scenario
reports its figures, and the facts that hold whatever the machine's speed do hold — with two
hosts or more no call is rejected because of maintenance; a killed host fails only the
calls that were in flight on it, as ``HostCrashedError``; a host stuck in a long fast call
gets no new calls once listed stuck. The full run (``make bench-hosts``) is what measures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def test_quick_pool_benchmark_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "hosts.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.hosts", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=85, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    assert report["machine"]["cores"] and report["command"].startswith("python -m")
    res = report["results"]
    assert set(res) == {"rejected", "kill", "throughput", "stuck"}

    # calls rejected because of maintenance: 1, 2 and 3 hosts
    rows = {r["hosts"]: r for r in res["rejected"]}
    assert set(rows) == {1, 2, 3}
    for hosts, r in rows.items():
        for key in ("calls", "answered", "rejected_busy", "slow_calls_run",
                    "turned_away_s_per_client"):
            assert number(r[key]), (hosts, key, r[key])
        assert r["calls"] == r["answered"] + r["rejected_busy"] + sum(
            r["other_failures"].values())
        assert r["slow_calls_run"] >= 1, r  # maintenance did run during the window
        assert r["other_failures"] == {} and r["wrong_results"] == 0, r
        if hosts >= 2:
            assert r["rejected_busy"] == 0 and r["broker_rejected_busy"] == 0, r
            assert r["turned_away_s_per_client"] == 0, r
    assert rows[1]["rejected_busy"] > 0  # one host: maintenance means busy

    # one of two hosts killed: only its in-flight calls fail, as HostCrashedError
    k = res["kill"]
    assert set(k["failures_by_type"]) <= {"HostCrashedError"}, k
    crashed = k["failures_by_type"].get("HostCrashedError", 0)
    assert crashed == k["in_flight_on_killed_host"] <= k["clients"], k
    assert k["calls"] == k["answered"] + crashed and k["wrong_results"] == 0
    assert k["replacement_pid"] not in (None, k["victim_pid"])
    assert k["replacement_restarts"] == 1 and k["survivor_restarts"] == 0
    assert k["state_after"] == "ready"

    # throughput and CPU per call, 1 and 2 hosts
    assert {r["hosts"] for r in res["throughput"]} == {1, 2}
    for r in res["throughput"]:
        for key in ("calls_s", "cpu_broker_us", "cpu_hosts_us", "cpu_clients_us",
                    "cpu_total_us", "cpu_use_pct"):
            assert number(r[key]) and r[key] > 0, (r["hosts"], key, r[key])

    # a stuck host: the others' latencies with it listed stuck; nothing queued behind it
    st = res["stuck"]
    for phase in ("baseline", "onset", "with_stuck_host"):
        for key in ("p50_ms", "p99_ms", "max_ms"):
            assert number(st[phase][key]) and st[phase][key] > 0, (phase, key)
    assert st["baseline"]["outcomes"].keys() == {"ok"}
    assert st["with_stuck_host"]["outcomes"].keys() == {"ok"}
    assert st["with_stuck_host"]["slower_than_route_away"] == 0
    assert st["stuck_host_state"] == "stuck"
    assert set(st["onset"]["outcomes"]) <= {"ok", "CallTimeoutError"}
    assert st["stall_caller_got"] == {"error": "HostCrashedError"}

    table = proc.stdout
    for label in ("calls rejected because of maintenance", "killed (SIGKILL)",
                  "throughput", "stuck in a 30s fast call", "host listed stuck"):
        assert label in table, label
