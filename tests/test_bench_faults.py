"""Smoke run of the fault campaign (``python -m benchmarks.faults --quick``): one round of
each fault with one host and with two, against real ``threadhost serve`` processes, and the
facts that hold whatever the machine's speed: no wrong result, none from a failed state, no
call answered twice, a call lost only with a killed broker, never more library instances
than hosts, every fault call answered once as a crash. And the negative control: served
without ``verify``, a reload that fails it *is* caught serving a bad state. The full run
(``make bench-faults``) is what measures (docs/reliability.md, "Fault campaign")."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

KINDS = {"kill_fast", "kill_slow", "abort", "bad_reload", "bad_verify", "broker_kill"}


def number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


def _run(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.CompletedProcess[str],
                                                         dict[str, Any]]:
    out = tmp_path / name
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.faults", *args, "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=100, stdin=subprocess.DEVNULL,
    )
    assert out.exists(), proc.stdout + proc.stderr
    return proc, json.loads(out.read_text())


def test_quick_fault_campaign_holds_every_invariant(tmp_path: Path) -> None:
    proc, report = _run(tmp_path, "faults.json", "--quick")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["mode"] == "quick" and report["ok"] and report["violations"] == []
    assert report["machine"]["cores"] and report["command"].startswith("python -m")
    assert [v["hosts"] for v in report["variants"]] == [1, 2]
    for v in report["variants"]:
        hosts = v["hosts"]
        assert set(v["by_kind"]) == KINDS
        assert v["stray_replies"] == 0 and v["protocol_errors"] == 0
        assert v["instance_samples"] > 0
        for kind, k in v["by_kind"].items():
            where = (hosts, kind)
            assert k["rounds"] == 1, where
            assert k["calls"] > 0 and k["outcomes"].get("ok", 0) > 0, (where, k)
            assert k["wrong_results"] == 0, (where, k)
            assert k["served_from_failed_state"] == 0, (where, k)
            assert k["answered_twice_or_more"] == 0, (where, k)  # at most once, always
            assert k["calls"] == k["answered_once"] + k["no_answer"], (where, k)
            if kind != "broker_kill":  # only a killed broker takes requests with it
                assert k["no_answer"] == 0, (where, k)
            assert 1 <= k["max_instances"] <= hosts, (where, k)
            assert number(k["time_to_serve_again_s"]["max"]), (where, k)
            assert k["time_to_serve_again_s"]["never"] == 0, (where, k)
            assert number(k["full_strength_s"]["max"]), (where, k)
            assert k["fault_calls"] == k["fault_calls_answered_once"], (where, k)
            if kind in ("kill_fast", "abort"):
                assert k["fault_call_outcomes"] == {"crashed": 1}, (where, k)
            if kind in ("kill_fast", "kill_slow", "abort", "bad_verify"):
                assert k["restarts"] >= 1, (where, k)  # the host was replaced
        for r in v["per_round"]:
            if r["kind"] in ("bad_reload", "bad_verify"):
                assert number(r["failure_reported_after_s"]), r  # the service saw it fail
            if r["kind"] == "broker_kill":
                assert r["that_host_alive_after_kill"], r  # still in its slow call
    table = proc.stdout
    for label in ("host SIGKILL during a fast call", "host SIGKILL during a slow call",
                  "os.abort in the library", "a failing reload", "a reload that fails verify",
                  "broker SIGKILL + restart", "verdict: OK"):
        assert label in table, label


def test_the_campaign_catches_a_bad_state_served(tmp_path: Path) -> None:
    """Without ``verify`` a configuration mylib applies but the deployment forbids is
    served: the campaign reports those results and exits 1."""
    proc, report = _run(tmp_path, "control.json", "--hosts", "1", "--kinds", "bad_verify",
                        "--rounds", "1", "--adapter", "tests.adapters_faults:Unverified")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    k = report["variants"][0]["by_kind"]["bad_verify"]
    assert k["served_from_failed_state"] > 0 and k["wrong_results"] == 0, k
    assert "VIOLATION" in proc.stdout and "results from a failed state" in proc.stdout
