"""Maintenance policies end to end: real services, real files, real clocks (short ones)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import threadhost
from tests.conftest import ROOT, Service, free_endpoint, write_mylib_config
from threadhost.testing import ThreadhostService

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

Serve = Callable[..., ThreadhostService]  # conftest's serve_mylib: the plugin's fixture


def calc_until(lib: threadhost.Client, x: int, expected: int, limit: float) -> float:
    """Call calc(x) until it returns ``expected``; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        try:
            if lib.calc(x) == expected:
                return time.monotonic() - t0
        except threadhost.BusyError:
            pass
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"calc({x}) never returned {expected} within {limit}s")
        time.sleep(0.1)


def test_file_policy_picks_up_an_edited_offset(serve_mylib: Serve, tmp_path: Path) -> None:
    config = tmp_path / "mylib.toml"
    svc = serve_mylib(policy=f"file={config}", config=config, read_min=0.1, read_max=0.1)
    lib = svc.client()
    assert lib.calc(5) == 6
    time.sleep(0.6)  # let the policy take its baseline
    write_mylib_config(config, offset=100, read_min=0.1, read_max=0.1)  # atomic rename
    took = calc_until(lib, 5, 105, limit=10)
    assert took < 5
    st = svc.status()
    assert "changed" in st["last_maintenance"]["reason"]


def test_stale_rescues_a_busy_program_from_idle_starvation(serve_mylib: Serve,
                                                           tmp_path: Path) -> None:
    config = tmp_path / "mylib.toml"
    svc = serve_mylib(policy="idle=1s | stale=3s", config=config, read_min=0.05,
                      read_max=0.05)
    lib = svc.client()
    write_mylib_config(config, offset=7, read_min=0.05, read_max=0.05)
    seen_new = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < 8:  # a call every 200 ms: idle=1s alone would never fire
        try:
            if lib.calc(1) == 8:
                seen_new = time.monotonic() - t0
                break
        except threadhost.BusyError:
            pass
        time.sleep(0.2)
    assert seen_new is not None and seen_new < 5
    assert svc.status()["last_maintenance"]["reason"].startswith("stale")


def test_every_policy_runs_periodically(serve_mylib: Serve) -> None:
    svc = serve_mylib(policy="every=500ms", read_min=0.0, read_max=0.0, ready=False)
    first = svc.wait_ready()
    time.sleep(2.6)
    st = svc.status()
    assert 4 <= st["generation"] - first["generation"] <= 7, st
    assert st["last_maintenance"]["reason"].startswith("every")


def test_manual_trigger_from_the_client(serve_mylib: Serve) -> None:
    svc = serve_mylib(policy="manual | min_gap=1h", read_min=0.3, read_max=0.3)
    lib = svc.client()
    reply = lib.maintain()
    assert not reply.started and reply.reason.startswith("too soon")  # start-up ran just now


def test_busy_retry_after_is_estimated_from_measured_durations(serve_mylib: Serve) -> None:
    svc = serve_mylib(read_min=1.0, read_max=1.0)
    lib = svc.client()
    assert lib.maintain().started
    time.sleep(0.4)
    with pytest.raises(threadhost.BusyError) as info:
        lib.calc(1)
    # the start-up readConfig took ~1 s and 0.4 s have elapsed: about 0.6 s remain
    assert info.value.retry_after is not None and 0.3 < info.value.retry_after < 0.9


def serve_cli(*args: str, env: dict[str, str] | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "threadhost", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('polcy = "idle=10s"\n', "unknown key 'polcy'"),
        ('policy = "idle=10s | bogus=1"\n', "bogus"),
        ('adapter = "examples.mylib_adapter"\nfast_call_limit = "soon"\n', "fast_call_limit"),
        ("this is not toml", "invalid TOML"),
    ],
)
def test_invalid_config_file_is_refused_with_one_line(tmp_path: Path, toml: str,
                                                      needle: str) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text(toml)
    proc = serve_cli("examples.mylib_adapter", "--config", str(cfg))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_serve_from_config_file(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    mylib = write_mylib_config(tmp_path / "mylib.toml", offset=3)
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'adapter = "examples.mylib_adapter"\nendpoint = "{endpoint}"\n'
                   f'policy = "manual"\nlog_level = "warning"\n')
    proc = subprocess.Popen([sys.executable, "-m", "threadhost", "serve", "--config", str(cfg)],
                            cwd=ROOT, env={**os.environ, "MYLIB_CONFIG": str(mylib)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        svc = Service(endpoint, proc, mylib, tmp_path / "none.log")
        st = svc.wait_state("ready")
        assert st["slow_calls"]["read_config"]["runs"] == 1
        with threadhost.connect(endpoint, timeout=5) as lib:
            assert lib.calc(1) == 4
        if sys.platform.startswith("linux"):  # the file was validated in another process
            assert "pydantic_core" not in Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_several_slow_calls_each_with_its_own_policy(serve_mylib: Serve) -> None:
    svc = serve_mylib(target="tests.adapters_reliability:TwoSlow", policy=None, ready=False)
    first = svc.wait_ready()
    assert first["slow_calls"]["refresh_b"]["runs"] == 1  # start-up
    time.sleep(2.5)
    st = svc.status()
    a, b = st["slow_calls"]["refresh_a"]["runs"], st["slow_calls"]["refresh_b"]["runs"]
    assert a >= 4 and b >= 3, st["slow_calls"]
    assert st["restart_count"] == 0
