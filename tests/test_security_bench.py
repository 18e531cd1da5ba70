"""benchmarks/curve.py (``make bench-curve``): a smoke run reports both rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import curve


@pytest.mark.timeout(240)
def test_curve_benchmark_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "curve.json"
    assert curve.main(["--quick", "--calls", "50", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    for label in ("plain", "curve"):
        row = result["rows"][label]
        assert row["latency_p50_us"] > 0 and row["throughput_calls_per_s"] > 0
        assert row["connect_first_call_ms"] > 0
    assert result["ratio"]["latency_p50"] > 0
