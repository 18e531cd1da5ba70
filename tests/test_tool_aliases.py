"""The tools moved under threadhost/tools/; the commands users type stay the same."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_python_m_threadhost_golden_still_checks_the_vectors() -> None:
    proc = run("threadhost.golden", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout + proc.stderr


def test_python_m_threadhost_stress_still_runs_the_stress_tools() -> None:
    proc = run("threadhost.stress", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "load" in proc.stdout and "fuzz" in proc.stdout
