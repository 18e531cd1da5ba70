"""Supervision end to end: crashes, restarts, liveness, deadlines, shutdown, broker restarts."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import threadhost
from tests.conftest import Service, free_endpoint, start_service

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

MISBEHAVING = "tests.adapters_reliability:Misbehaving"


def wait_for(predicate: Any, limit: float = 20.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def call_until_ok(lib: threadhost.Client, method: str, *args: Any, limit: float = 20.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        try:
            return lib.call(method, *args)
        except threadhost.TryLaterError as exc:
            if time.monotonic() > deadline:
                raise
            time.sleep(min(exc.retry_after or 0.1, 0.2))


def test_crash_during_call_is_reported_and_host_restarted(service_factory: Any) -> None:
    svc: Service = service_factory(target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client()
    pid1 = lib.pid()
    with pytest.raises(threadhost.HostCrashedError, match="outcome unknown"):
        lib.crash()
    # right after the crash the service says "unavailable, restarting" (or is back already)
    try:
        lib.echo(1)
    except threadhost.UnavailableError as exc:
        assert exc.retry_after is not None and exc.retry_after > 0
    pid2 = call_until_ok(lib, "pid")
    assert pid2 != pid1
    st = svc.status()
    assert st["restart_count"] == 1 and "SIGABRT" in st["last_restart_reason"]
    assert st["counters"]["crashed"] == 1
    assert lib.echo(41) == 41


def test_killed_host_is_restarted_with_startup_slow_call_before_gate_opens(
    service_factory: Any,
) -> None:
    svc: Service = service_factory(read_min=1.0, read_max=1.0)
    first = svc.wait_state("ready", limit=30)
    lib = svc.client()
    assert lib.calc(5) == 6
    psutil.Process(first["host_pid"]).kill()
    # the new host must run readConfig (1 s) again before calc is served
    saw_try_later = False
    deadline = time.monotonic() + 20
    while True:
        try:
            assert lib.calc(5) == 6
            break
        except threadhost.HostCrashedError:  # sent before the broker saw the death
            continue
        except threadhost.TryLaterError:
            saw_try_later = True
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert saw_try_later
    st = svc.status()
    assert st["restart_count"] == 1 and st["host_pid"] != first["host_pid"]
    assert st["generation"] == 2  # start-up readConfig ran once per host


def test_restart_limit_enters_failed_state(service_factory: Any) -> None:
    svc: Service = service_factory("--restart-limit", "2", "--restart-window", "60s",
                                   target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client()
    for n in range(3):  # three different calls: none of them is quarantined
        call_until_ok(lib, "pid")
        with pytest.raises(threadhost.HostCrashedError):
            lib.crash_tagged(n)
    st = wait_for(lambda: (s := svc.status())["state"] == "failed" and s)
    assert "limit 2" in st["failed_reason"]
    with pytest.raises(threadhost.ServiceFailedError):
        lib.echo(1)
    assert st["host_pid"] is None
    assert svc.stop() == 1  # a failed service stops on SIGTERM, and says it failed


def test_a_call_that_killed_two_hosts_is_quarantined(service_factory: Any) -> None:
    svc: Service = service_factory("--restart-limit", "10", target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client()
    for _ in range(2):
        call_until_ok(lib, "pid")
        with pytest.raises(threadhost.HostCrashedError):
            lib.crash()
    call_until_ok(lib, "pid")
    with pytest.raises(threadhost.PoisonedCallError, match="killed 2 hosts"):
        lib.crash()  # refused at once: it never reaches the host again
    st = svc.status()
    assert st["restart_count"] == 2
    assert [q["method"] for q in st["quarantined"]] == ["crash"]
    with pytest.raises(threadhost.HostCrashedError):  # other arguments still run
        lib.crash_tagged(1)


def test_mylib_abort_during_readconfig_restarts_and_recovers(service_factory: Any) -> None:
    svc: Service = service_factory(read_min=0.0, read_max=0.0)
    svc.wait_state("ready")
    svc.config.write_text("offset = 1\nread_min_seconds = 1\nread_max_seconds = 1\n"
                          "abort_in_read = true\n")
    lib = svc.client()
    assert lib.maintain().started
    # readConfig read the file (with abort_in_read) at its start; fix the file for the next one
    time.sleep(0.3)
    svc.config.write_text("offset = 2\nread_min_seconds = 0\nread_max_seconds = 0\n")
    assert call_until_ok(lib, "calc", 5) == 7
    st = svc.status()
    assert st["restart_count"] == 1 and "SIGABRT" in st["last_restart_reason"]


def test_heartbeats_flow_during_a_long_slow_call(service_factory: Any) -> None:
    svc: Service = service_factory("--heartbeat-timeout", "1s", read_min=3.0, read_max=3.0)
    svc.wait_state("ready", limit=30)
    lib = svc.client()
    assert lib.maintain().started
    # busy until readConfig ends (3 s), then served by the same host
    assert call_until_ok(lib, "calc", 1) == 2
    st = svc.status()
    assert st["restart_count"] == 0, st  # 3 s in readConfig did not look like death
    assert st["last_maintenance"]["ok"] and st["last_maintenance"]["duration"] >= 2.9, st


def test_gil_holding_slow_call_judged_by_its_deadline(service_factory: Any,
                                                      tmp_path: Path) -> None:
    hog = tmp_path / "hog-seconds"
    hog.write_text("2")
    svc: Service = service_factory("--heartbeat-timeout", "0.5s",
                                   "--maintain-budget", "1",  # two rounds back to back
                                   target="tests.adapters_reliability:GilHog",
                                   policy="manual | deadline=4s",
                                   env={"GILHOG_FILE": str(hog)})
    svc.wait_state("ready")
    lib = svc.client()
    pid = lib.pid()
    assert lib.maintain().started
    # 2 s without a single heartbeat (the GIL is held) is fine: the deadline is 4 s
    assert call_until_ok(lib, "pid") == pid
    assert svc.status()["restart_count"] == 0
    hog.write_text("30")
    t0 = time.monotonic()
    assert lib.maintain().started
    st = wait_for(lambda: (s := svc.status())["restart_count"] == 1 and s, limit=20)
    assert "deadline" in st["last_restart_reason"]
    assert 3.5 < time.monotonic() - t0 < 10
    hog.write_text("0")
    assert call_until_ok(lib, "pid") != pid


@pytest.mark.timeout(60)
def test_gil_holding_fast_call_completes_and_is_answered(service_factory: Any,
                                                        tmp_path: Path) -> None:
    """Inside the library is not dead: a 5 s fast call holding the GIL silences every
    heartbeat of its host, far past a 1 s heartbeat timeout, and is still answered."""
    svc: Service = service_factory("--heartbeat-timeout", "1s",
                                   target="tests.adapters_reliability:GilHog",
                                   policy="manual", env={"GILHOG_FILE": str(tmp_path / "x")})
    svc.wait_state("ready")
    lib = svc.client(timeout=40.0)
    pid = lib.pid()
    assert lib.hog_fast(5.0) == 5.0
    st = svc.status()
    assert st["restart_count"] == 0 and st["host_pid"] == pid and st["counters"]["crashed"] == 0


def test_hung_fast_call_gets_host_killed_and_restarted(service_factory: Any) -> None:
    svc: Service = service_factory("--fast-call-limit", "1s", target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client(timeout=10)
    t0 = time.monotonic()
    with pytest.raises(threadhost.HostCrashedError, match="hung"):
        lib.hang()
    assert time.monotonic() - t0 < 5
    assert call_until_ok(lib, "echo", 3) == 3
    assert "hung" in svc.status()["last_restart_reason"]


def test_every_call_returns_or_raises_within_its_timeout(service_factory: Any) -> None:
    svc: Service = service_factory(target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client(timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(threadhost.CallTimeoutError):
        lib.sleep(1.5)
    assert time.monotonic() - t0 < 0.8
    # the late answer to that call is never taken for the next call's answer: once the
    # service answered it (nothing in flight), it is queued before the next call's
    wait_for(lambda: svc.status()["in_flight"] == 0)
    assert lib.request("echo", [7], timeout=5.0) == 7
    assert lib.late_replies == 1


def test_remote_exception_carries_type_and_traceback(service_factory: Any) -> None:
    svc: Service = service_factory(target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client()
    with pytest.raises(threadhost.RemoteError) as info:
        lib.fail("boom")
    assert info.value.remote_type == "ValueError" and info.value.message == "boom"
    assert "raise ValueError(text)" in (info.value.remote_traceback or "")
    assert lib.echo(1) == 1


def test_graceful_shutdown_answers_in_flight_call(service_factory: Any) -> None:
    svc: Service = service_factory(target=MISBEHAVING)
    svc.wait_state("ready")
    lib = svc.client(timeout=10)
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(lib.sleep(1.0)))
    t.start()
    time.sleep(0.3)
    svc.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert out == [1.0]
    assert svc.proc.wait(20) == 0


def test_second_signal_forces_stop_without_orphans(service_factory: Any) -> None:
    svc: Service = service_factory(read_min=20.0, read_max=20.0)
    svc.wait_state("startup", limit=30)  # the start-up readConfig takes 20 s
    hosts = svc.host_pids()
    svc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert svc.proc.poll() is None  # graceful: waiting for readConfig to finish
    t0 = time.monotonic()
    svc.proc.send_signal(signal.SIGTERM)
    code = svc.proc.wait(10)
    assert code != 0 and time.monotonic() - t0 < 5
    time.sleep(0.2)
    for pid in hosts:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_client_recovers_after_broker_restart_on_same_endpoint(tmp_path: Path) -> None:
    endpoint = free_endpoint()
    first = start_service(tmp_path, "--endpoint", endpoint, target=MISBEHAVING)
    # start_service adds its own --endpoint first; ours (last) wins
    try:
        first.endpoint = endpoint
        first.wait_state("ready")
        lib = threadhost.connect(endpoint, timeout=2.0)
        assert lib.echo(1) == 1
        assert first.stop() == 0
        with pytest.raises(threadhost.UnavailableError, match="no service at"):
            lib.request("echo", [2], timeout=0.5)  # not sent: nothing accepts connections
        second = start_service(tmp_path, "--endpoint", endpoint, target=MISBEHAVING)
        second.endpoint = endpoint
        try:
            second.wait_state("ready")
            t0 = time.monotonic()
            assert lib.echo(3) == 3  # the same client object, no reconnect by hand
            assert time.monotonic() - t0 < 1.5
        finally:
            second.stop()
        lib.close()
    finally:
        if first.proc.poll() is None:
            first.stop()


@pytest.mark.timeout(60)
def test_a_failing_start_up_stops_serve_naming_the_call_and_the_error() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT, free_endpoint

    proc = subprocess.run(
        [sys.executable, "-m", "threadhost", "serve", "tests.adapters_reliability:BadStart",
         "--endpoint", free_endpoint()],
        cwd=ROOT, capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("threadhost: error: ")
    assert "start-up slow call 'load' failed" in last
    assert "no offset in the configuration" in last
