"""End-to-end: real `threadhost serve` processes over real sockets, mylib as the library.

Services are served with the pytest plugin's ``threadhost_service`` fixture
(threadhost.testing, through ``serve_mylib`` in conftest.py): each is stopped at teardown,
and a failing test's report carries the service's log."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

import threadhost
from tests.conftest import ROOT, Service, free_endpoint, write_mylib_config
from threadhost.testing import ThreadhostService

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

Serve = Callable[..., ThreadhostService]


@pytest.fixture
def mylib(serve_mylib: Serve) -> ThreadhostService:
    """mylib served (manual policy, quick readConfig), ready."""
    return serve_mylib()


def test_calc_returns_six(mylib: ThreadhostService) -> None:
    lib = mylib.client()
    assert lib.calc(5) == 6
    assert lib.call("calc", 5) == 6
    assert lib.request("calc", [], {"x": 41}) == 42


def test_busy_fast_during_readconfig_then_success(serve_mylib: Serve) -> None:
    svc = serve_mylib(read_min=2.0, read_max=2.0)
    lib = svc.client()
    assert lib.calc(5) == 6
    reply = lib.maintain()
    assert reply.started, reply.reason
    # the host's only thread is now blocked in mylib.readConfig for 2 s
    latencies = []
    for _ in range(20):
        t0 = time.perf_counter()
        with pytest.raises(threadhost.BusyError) as info:
            lib.calc(5)
        latencies.append(time.perf_counter() - t0)
        assert isinstance(info.value, threadhost.TryLaterError)
        assert info.value.retry_after is not None and 0 < info.value.retry_after <= 2.5
        time.sleep(0.02)
    assert max(latencies) < 0.1, latencies
    assert svc.status()["state"] == "maintaining"
    deadline = time.monotonic() + 10
    while True:
        try:
            assert lib.calc(5) == 6
            break
        except threadhost.BusyError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    st = svc.status()
    assert st["generation"] == 2 and st["counters"]["rejected_busy"] >= 20


def test_four_clients_at_once(mylib: ThreadhostService) -> None:
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with threadhost.connect(mylib.endpoint, timeout=5.0) as lib:
                results[n] = [lib.calc(n * 1000 + i) for i in range(100)]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for n in range(4):
        assert results[n] == [n * 1000 + i + 1 for i in range(100)]


def test_one_client_shared_between_threads(mylib: ThreadhostService) -> None:
    lib = mylib.client()
    out: list[tuple[int, int]] = []

    def worker(n: int) -> None:
        for i in range(50):
            out.append((n * 100 + i, lib.calc(n * 100 + i)))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(out) == 200 and all(v == x + 1 for x, v in out)


def test_unknown_call_and_bad_arguments_are_typed_and_service_goes_on(
    mylib: ThreadhostService,
) -> None:
    lib = mylib.client()
    for name in ("nope", "read_config", "setup", "teardown", "_private", "__class__"):
        with pytest.raises(threadhost.UnknownCallError):
            lib.call(name)
    for args, kwargs in (((), {}), (("5",), {}), ((True,), {}), ((1, 2), {}), ((), {"y": 1})):
        with pytest.raises(threadhost.BadArgumentsError):
            lib.request("calc", args, kwargs)
    assert lib.calc(5) == 6
    st = mylib.status()
    assert st["restart_count"] == 0  # bad input never reached (and crashed) mylib


def test_thread_affinity_across_many_maintenances(serve_mylib: Serve) -> None:
    # every=300ms forces readConfig over and over while two clients keep calling; mylib
    # aborts the process if any call comes from another thread than init's
    svc = serve_mylib(policy="every=300ms", read_min=0.05, read_max=0.15, ready=False)
    first = svc.wait_ready()
    ok = busy = 0
    stop = time.monotonic() + 4.0

    def worker(counts: list[int]) -> None:
        with threadhost.connect(svc.endpoint, timeout=5.0) as lib:
            while time.monotonic() < stop:
                try:
                    assert lib.calc(1) == 2
                    counts[0] += 1
                except threadhost.BusyError:
                    counts[1] += 1

    counts = [[0, 0], [0, 0]]
    threads = [threading.Thread(target=worker, args=(c,)) for c in counts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ok = sum(c[0] for c in counts)
    busy = sum(c[1] for c in counts)
    st = svc.status()
    assert st["generation"] >= 6, st
    assert st["restart_count"] == 0 and st["host_pid"] == first["host_pid"]
    assert ok > 100 and busy > 0


def test_sigterm_exits_zero_without_orphans(mylib: ThreadhostService) -> None:
    svc = mylib
    hosts = [p.pid for p in psutil.Process(svc.proc.pid).children(recursive=True)]
    assert hosts
    assert svc.client().calc(1) == 2
    assert svc.stop() == 0  # SIGTERM
    time.sleep(0.2)
    for pid in hosts:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    log = svc.log()
    assert "teardown failed" not in log


def test_sigint_exits_zero(service_factory: Any) -> None:
    svc: Service = service_factory()
    svc.wait_state("ready")
    assert svc.stop(signal.SIGINT) == 0


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "threadhost", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("serve", "no_such_module_xyz"), "no_such_module_xyz"),
        (("serve", "examples.mylib"), "no threadhost.Adapter subclass"),
        (("serve", "examples.mylib_adapter:Nope"), "Nope"),
        (("serve", "examples.mylib_adapter", "--policy", "idel=10s"), "idel"),
        (("serve", "examples.mylib_adapter", "--policy", "idle=ten"), "ten"),
        (("serve", "examples.mylib_adapter", "--endpoint", "bogus://x"), "bogus://x"),
    ],
)
def test_serve_startup_errors_are_one_clear_line(args: tuple[str, ...], needle: str) -> None:
    proc = run_cli(*args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


def test_endpoint_in_use_is_one_clear_line(mylib: ThreadhostService) -> None:
    proc = run_cli("serve", "examples.mylib_adapter", "--endpoint", mylib.endpoint)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0], proc.stderr


def test_call_to_nothing_is_no_service_quickly() -> None:
    with threadhost.connect(free_endpoint(), timeout=5.0) as lib:
        t0 = time.monotonic()
        with pytest.raises(threadhost.UnavailableError, match="no service at"):
            lib.calc(5)
        assert time.monotonic() - t0 < 3.0


def test_maintain_and_status_commands(serve_mylib: Serve, tmp_path: Path) -> None:
    config = tmp_path / "mylib.toml"
    svc = serve_mylib(config=config)
    # mylib reads its config at the start of readConfig: the next one takes 8 s
    write_mylib_config(config, read_min=8.0, read_max=8.0)
    proc = run_cli("maintain", svc.endpoint)
    assert proc.returncode == 0 and proc.stdout.startswith("started"), proc
    again = run_cli("maintain", svc.endpoint)
    assert again.returncode != 0 and "already running" in again.stdout
    st = run_cli("status", svc.endpoint)
    assert "maintaining" in st.stdout and "host pid" in st.stdout
    import json

    data = json.loads(run_cli("status", svc.endpoint, "--json").stdout)
    assert data["state"] in ("maintaining", "ready") and data["host_pid"] > 0
    # a graceful stop would let the 8 s readConfig finish; a second signal forces the stop
    # at once: the host is killed, exit code 1 (docs/reliability.md, "Graceful shutdown")
    svc.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30  # the second must come after the first was taken
    while "stopping: SIGTERM received" not in svc.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    svc.proc.send_signal(signal.SIGTERM)
    assert svc.proc.wait(30) == 1, svc.log()
    with contextlib.suppress(psutil.NoSuchProcess):
        _, alive = psutil.wait_procs([psutil.Process(data["host_pid"])], timeout=10)
        assert not alive, "the host outlived the forced stop"


def test_async_client_pipelines_many_calls_and_loses_none(serve_mylib: Serve) -> None:
    """64 coroutines share one AsyncClient: every call gets its own answer (the reader
    wakes for replies whose FD edge a concurrent send consumed), busy answers included."""
    import asyncio

    svc = serve_mylib(read_min=0.3, read_max=0.3)

    async def main() -> tuple[int, int]:
        ok = busy = 0
        async with threadhost.AsyncClient(svc.endpoint, timeout=5.0) as lib:

            async def worker(i: int) -> None:
                nonlocal ok, busy
                for k in range(60):
                    x = i * 1000 + k
                    try:
                        assert await lib.call("calc", x) == x + 1
                        ok += 1
                    except threadhost.BusyError:
                        busy += 1
                    if i == 0 and k == 20:
                        reply = await lib.maintain()
                        assert reply.started, reply.reason

            await asyncio.gather(*(worker(i) for i in range(64)))
            assert (await lib.status())["state"] in ("ready", "maintaining")
        return ok, busy

    ok, busy = asyncio.run(main())
    assert ok + busy == 64 * 60
    assert ok > 0 and busy > 0, (ok, busy)


def test_async_client_times_out_and_recovers(mylib: ThreadhostService) -> None:
    import asyncio

    svc = mylib

    async def main() -> None:
        dead = threadhost.AsyncClient(free_endpoint(), timeout=0.3)
        t0 = time.monotonic()
        with pytest.raises(threadhost.UnavailableError, match="no service at"):
            await dead.call("calc", 1)
        assert time.monotonic() - t0 < 2.0
        await dead.close()
        async with threadhost.AsyncClient(svc.endpoint, timeout=5.0) as lib:
            assert await asyncio.gather(*(lib.call("calc", i) for i in range(200))) == [
                i + 1 for i in range(200)
            ]
        with pytest.raises(threadhost.ThreadhostError, match="closed"):
            await lib.call("calc", 1)

    asyncio.run(main())


def test_async_client_without_fd_watching_still_pipelines(serve_mylib: Serve,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """On an event loop that cannot watch a file descriptor (Windows' proactor), the
    AsyncClient sends and receives through zmq.asyncio alone: same answers, same errors."""
    import asyncio

    from threadhost.client import _AsyncTransport

    def no_fd_watching(self: _AsyncTransport, loop: Any, raw: Any) -> bool:
        self._portable = True
        return False

    monkeypatch.setattr(_AsyncTransport, "_watchable", no_fd_watching)
    svc = serve_mylib()

    async def main() -> None:
        async with threadhost.AsyncClient(svc.endpoint, timeout=5.0) as lib:
            got = await asyncio.gather(*(lib.call("calc", i) for i in range(300)))
            assert got == [i + 1 for i in range(300)]
            with pytest.raises(threadhost.UnknownCallError):
                await lib.call("nope")
            assert (await lib.status())["state"] == "ready"
        dead = threadhost.AsyncClient(free_endpoint(), timeout=0.3)
        with pytest.raises(threadhost.UnavailableError, match="no service at"):
            await dead.call("calc", 1)
        await dead.close()

    asyncio.run(main())


def test_timeout_covers_the_wait_for_a_broker_too() -> None:
    """A call that first waits for its connection (the broker is up, the client's next
    reconnect attempt is due in about 0.9 s), then for an answer that never comes, still
    raises within its timeout (not the timeout after the send)."""
    import zmq

    endpoint = free_endpoint()
    ctx = zmq.Context()
    silent = ctx.socket(zmq.ROUTER)  # takes the request and never answers
    silent.setsockopt(zmq.LINGER, 0)
    lib = threadhost.connect(endpoint, timeout=1.2)
    try:
        # attempts at about 0, 0.1, 0.3, 0.7, 1.5 and 2.5 s (backoff up to 1 s) all fail
        # until the broker binds at 1.6 s: the call made then waits for the 2.5 s attempt
        time.sleep(1.6)
        silent.bind(endpoint)
        t0 = time.monotonic()
        with pytest.raises(threadhost.CallTimeoutError, match="no answer"):
            lib.calc(5)
        elapsed = time.monotonic() - t0
        assert 1.15 < elapsed < 1.5, elapsed
        assert silent.poll(1000), "the request reached the late broker"
    finally:
        lib.close()
        silent.close()
        ctx.term()
