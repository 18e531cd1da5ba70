"""Smoke run of the benchmark suite (``python -m benchmarks --quick``): it runs, drives all
four systems through every scenario, and reports numbers as a table and as JSON. It asserts
nothing about speed; the full run (``make bench``) is what measures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

# (metric, systems that must report a number for it)
EXPECTED = {
    "codec_call_us": {"threadhost", "floor"},
    "seq_p50_us": {"threadhost", "seed", "floor", "direct"},
    "seq_p99_us": {"threadhost", "seed", "floor", "direct"},
    "tp1_calls_s": {"threadhost", "seed", "floor", "direct"},
    "tp8_calls_s": {"threadhost", "floor", "direct"},
    "tp64_calls_s": {"threadhost", "floor", "direct"},
    "tp8_cpu_broker_us": {"threadhost", "floor"},
    "pipe_async_calls_s": {"threadhost"},
    "pipe_raw_calls_s": {"threadhost", "seed", "floor", "direct"},
    "busy_alone_p99_us": {"threadhost", "seed", "floor", "direct"},
    "busy_p99_us": {"threadhost", "floor", "direct"},
    "paced1_p50_us": {"threadhost", "seed", "floor", "direct"},
    "paced100_p50_us": {"threadhost", "floor", "direct"},
    "rss_idle_mb": {"threadhost", "floor", "direct"},
}


def test_quick_run_reports_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=55,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "quick"
    assert set(report["systems"]) == {"threadhost", "seed", "floor", "direct"}
    for metric, systems in EXPECTED.items():
        for system in systems:
            value = report["results"][metric][system]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (
                metric,
                system,
                value,
            )
    # the seed cannot take more than one client: said, not measured
    assert report["results"]["tp8_calls_s"]["seed"] is None
    assert "PAIR" in report["notes"]["tp8_calls_s"]["seed"]
    targets = {t["name"]: t for t in report["targets"]}
    assert len(targets) == 10 and all(t["value"] is not None for t in targets.values())
    table = proc.stdout
    for label in (
        "(a) threadhost",
        "(b) seed",
        "(c) floor",
        "(d) direct",
        "a/b",
        "a/c",
        "sequential calc p50",
        "throughput, 64 clients",
        "busy reply p99",
        "broker RSS",
        "targets",
    ):
        assert label in table, label


def test_hop_decomposition_runs_and_reports_each_variant() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.hop", "--calls", "50", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=55,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[2:]}
    assert set(rows) == {"floor", "th-frames", "one-frame", "th-client", "th-async"}
    for values in rows.values():
        assert float(values[0]) > 0 and float(values[2]) > 0


def test_broker_micro_benchmark_runs() -> None:
    from benchmarks.micro import broker_call_us

    assert broker_call_us(50) > 0
