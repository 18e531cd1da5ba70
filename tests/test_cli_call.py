"""``threadhost call`` / ``describe`` / ``status`` against a real mylib service, as real
processes: results, exit statuses (0, 75 while busy with ``retry after`` — and ``maintain``
refused with a retry time —, 1, 2) and one-line errors; ``THREADHOST_ENDPOINT``;
``serve --example mylib``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Service, free_endpoint, write_mylib_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def th(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("THREADHOST_")}
    return subprocess.run([sys.executable, "-m", "threadhost", *args], cwd=ROOT,
                          env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("threadhost: error: "), proc.stderr
    assert proc.stdout == ""
    return lines[0].removeprefix("threadhost: error: ")


def test_call_and_describe(mylib_service: Service) -> None:
    ep = mylib_service.endpoint
    ok = th("call", ep, "calc", "5")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "6\n", "")
    assert th("call", ep, "calc", "--", "-5").stdout == "-4\n"
    assert th("call", ep, "calc", "--kw", "x=41", "--json").stdout == "42\n"
    # THREADHOST_ENDPOINT is the default endpoint of every client command
    assert th("call", "calc", "1", env={"THREADHOST_ENDPOINT": ep}).stdout == "2\n"
    assert th("status", "-q", env={"THREADHOST_ENDPOINT": ep}).stdout == "ready\n"

    described = th("describe", ep)
    assert described.returncode == 0, described.stderr
    assert "  calc(x: int) -> int" in described.stdout.splitlines()
    assert "  read_config() -> None  [startup]" in described.stdout.splitlines()
    as_json = json.loads(th("describe", "--endpoint", ep, "--json").stdout)
    assert [c["name"] for c in as_json["calls"]] == ["read_config", "calc"]
    assert th("describe", ep, "-q").stdout == "calc\n"

    assert "no client-callable call 'nope'" in one_line(th("call", ep, "nope"), 1)
    assert "valid integer" in one_line(th("call", ep, "calc", "abc"), 1)
    assert "unexpected keyword argument 'y'" in one_line(
        th("call", ep, "calc", "1", "--kw", "y=2"), 1)
    assert "missing METHOD" in one_line(th("call", ep), 2)


def test_call_while_busy_exits_75_with_retry_after(mylib_service: Service) -> None:
    ep = mylib_service.endpoint
    write_mylib_config(mylib_service.config, read_min=4.0, read_max=4.0)
    started = th("maintain", ep)
    assert started.returncode == 0 and started.stdout.startswith("started"), started
    busy = th("call", ep, "calc", "5")
    line = one_line(busy, 75)
    assert line.startswith("busy: ") and "(retry after " in line, line
    assert th("status", ep).returncode == 0
    deadline = time.monotonic() + 30
    while th("call", ep, "calc", "5").returncode == 75:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert th("call", ep, "calc", "5").stdout == "6\n"


def test_maintain_twice_quickly_exits_75_with_retry_after(mylib_service: Service) -> None:
    ep = mylib_service.endpoint
    write_mylib_config(mylib_service.config, read_min=1.0, read_max=1.0)
    first = th("maintain", ep)
    assert (first.returncode, first.stderr) == (0, ""), first
    assert first.stdout.startswith("started"), first
    # at once: the round still runs (its rest is measured: the start-up read_config) or it
    # just ended (the rate limit holds the next one back as long again): both say when
    deadline = time.monotonic() + 60
    refusals = 0
    while True:
        again = th("maintain", ep)
        if again.returncode == 0:
            break
        assert (again.returncode, again.stderr) == (75, ""), again
        (line,) = again.stdout.splitlines()
        found = re.fullmatch(r"not started: (already running|rate-limited): .*"
                             r" \(retry after (\d+\.\d)s\)", line)
        assert found, line
        refusals += 1
        assert time.monotonic() < deadline
        time.sleep(float(found.group(2)))
    assert refusals >= 1 and again.stdout.startswith("started"), again


def test_no_service_is_one_line(tmp_path: Path) -> None:
    ep = free_endpoint()
    assert "no service at" in one_line(th("call", ep, "calc", "5", "--timeout", "2s"), 75)
    assert "no service at" in one_line(th("status", ep, "--timeout", "2s"), 1)


def test_serve_example_mylib(tmp_path: Path) -> None:
    """``serve --example mylib`` in a checkout serves examples/mylib_adapter.py."""
    config = write_mylib_config(tmp_path / "mylib.toml")
    ep = free_endpoint()
    env: dict[str, Any] = {k: v for k, v in os.environ.items()
                           if not k.startswith("THREADHOST_")}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "threadhost", "-q", "serve", "--example",
                                 "mylib", "--policy", "manual"],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={**env, "MYLIB_CONFIG": str(config),
                                     "THREADHOST_ENDPOINT": ep},
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while (st := th("status", ep, "-q", "--timeout", "1s")).stdout != "ready\n":
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, (st, log.read_text())
            time.sleep(0.2)
        assert th("call", ep, "calc", "5").stdout == "6\n"
        adapter = json.loads(th("status", ep, "--json").stdout)["adapter"]
        assert adapter == "examples.mylib_adapter:Mylib"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # -q: log level WARNING, so start-up logged nothing
    assert " INFO " not in log.read_text()
