"""A pool of hosts end to end (`threadhost serve --hosts N`): real processes and sockets.

Staggered maintenance never rejects a call with two hosts; a killed host fails only its own
calls in flight and is replaced while the other serves; a host stuck in a long fast call is
routed around (with one host, callers are told at once); a non-replicable adapter is refused
before anything starts. Wall-clock bounds are generous: CI machines are loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import threadhost
from tests.conftest import ROOT, Service, free_endpoint

pytestmark = [pytest.mark.e2e]

STALLABLE = "tests.adapters_pool:Stallable"


def wait_for(predicate: Any, limit: float = 20.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def all_hosts_ready(svc: Service, n: int) -> dict[str, Any]:
    """Wait until the status lists ``n`` hosts, all ready; that status."""

    def check() -> dict[str, Any] | None:
        try:
            st = svc.status()
        except threadhost.UnavailableError:  # "no service at ...": the broker is not up yet
            return None
        hosts = st["hosts"]
        if len(hosts) == n and all(h["state"] == "ready" for h in hosts):
            return st
        return None

    result: dict[str, Any] = wait_for(check, limit=30.0)
    return result


def hammer(svc: Service, threads: int, seconds: float, method: str = "calc",
           args: tuple[Any, ...] = (5,), expect: Any = 6) -> dict[str, Any]:
    """``threads`` clients call back to back for ``seconds``; outcomes by type, latencies."""
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    wrong: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def run() -> None:
        lib = svc.client(timeout=10.0)
        lib.call(method, *args)  # connected and warm
        start.wait()
        end = time.monotonic() + seconds
        mine: Counter[str] = Counter()
        lat: list[float] = []
        bad: list[Any] = []
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                value = lib.call(method, *args)
            except threadhost.ThreadhostError as exc:
                mine[type(exc).__name__] += 1
            else:
                mine["ok"] += 1
                if value != expect:
                    bad.append(value)
            lat.append(time.monotonic() - t0)
        with lock:
            outcomes.update(mine)
            latencies.extend(lat)
            wrong.extend(bad)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 30)
    assert not any(w.is_alive() for w in workers), "a client thread hung"
    latencies.sort()
    return {"outcomes": outcomes, "latencies": latencies, "wrong": wrong}


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


# --------------------------------------------------------------------------- (a) maintenance


@pytest.mark.timeout(40)
def test_staggered_maintenance_with_two_hosts_never_rejects(service_factory: Any) -> None:
    svc: Service = service_factory("--hosts", "2", policy="every=1s", read_min=0.5,
                                   read_max=0.5)
    before = all_hosts_ready(svc, 2)
    gens = [h["generation"] for h in before["hosts"]]
    run = hammer(svc, threads=3, seconds=6.0)
    after = svc.status()
    outcomes = run["outcomes"]
    assert set(outcomes) == {"ok"}, outcomes  # no BusyError, nor anything else
    assert outcomes["ok"] > 100 and not run["wrong"]
    hosts = after["hosts"]
    assert len(hosts) == 2
    assert len({h["pid"] for h in hosts}) == 2 and None not in {h["pid"] for h in hosts}
    assert after["host_pids"] == [h["pid"] for h in hosts]
    # every=1s and readConfig 0.5 s on each host in turn: a round about every 2 s
    for old, host in zip(gens, hosts, strict=True):
        assert host["generation"] >= old + 2, (gens, hosts)
        assert host["restarts"] == 0
        assert host["last_maintenance"]["reason"] == "every 1s"
    assert after["counters"]["rejected_busy"] == 0
    assert after["counters"]["rejected_unavailable"] == 0
    assert after["slow_calls"]["read_config"]["runs"] >= 6


# --------------------------------------------------------------------------- (b) a host dies


@pytest.mark.timeout(40)
def test_killed_host_fails_only_its_calls_and_is_replaced(service_factory: Any) -> None:
    svc: Service = service_factory("--hosts", "2")
    before = all_hosts_ready(svc, 2)
    victim = before["hosts"][0]
    survivor = before["hosts"][1]
    states: list[str] = []
    watching = threading.Event()

    def watch() -> None:  # the service's state, sampled all along
        with threadhost.connect(svc.endpoint, timeout=2.0) as c:
            while not watching.is_set():
                states.append(c.status()["state"])
                time.sleep(0.05)

    def kill_later() -> None:
        time.sleep(1.5)
        os.kill(victim["pid"], signal.SIGKILL)

    watcher = threading.Thread(target=watch)
    killer = threading.Thread(target=kill_later)
    watcher.start()
    killer.start()
    threads = 3
    try:
        run = hammer(svc, threads=threads, seconds=5.0)
    finally:
        killer.join()
    replaced = wait_for(
        lambda: (st := svc.status())["hosts"][0]["pid"] not in (None, victim["pid"])
        and st["hosts"][0]["state"] == "ready" and st,
        limit=20.0,
    )
    watching.set()
    watcher.join(10)
    outcomes = run["outcomes"]
    crashed = outcomes.get("HostCrashedError", 0)
    # only calls in flight on the killed host fail: at most one per client thread
    assert set(outcomes) <= {"ok", "HostCrashedError"}, outcomes
    assert crashed <= threads, outcomes
    assert outcomes["ok"] > 100 and not run["wrong"]
    assert replaced["counters"]["crashed"] == crashed
    assert replaced["counters"]["rejected_busy"] == 0
    assert replaced["counters"]["rejected_unavailable"] == 0
    hosts = replaced["hosts"]
    assert len(hosts) == 2
    assert hosts[0]["restarts"] == 1 and hosts[0]["id"] != victim["id"]
    assert hosts[1]["pid"] == survivor["pid"] and hosts[1]["restarts"] == 0
    assert replaced["restart_count"] == 1
    assert "SIGKILL" in (replaced["last_restart_reason"] or "")
    assert states and set(states) == {"ready"}, Counter(states)
    assert svc.client().calc(1) == 2


def test_host_stopped_on_its_own_loses_no_call(service_factory: Any) -> None:
    """SIGTERM to one host of two (an operator, or its parent check): it leaves the rotation
    at its goodbye and answers calls it had not run with ``unavailable``; a sequential caller
    sees no error at all, and no call is reported with an unknown outcome."""
    svc: Service = service_factory("--hosts", "2")
    st = all_hosts_ready(svc, 2)
    lib = svc.client()
    for _ in range(20):
        assert lib.calc(1) == 2
    os.kill(st["hosts"][0]["pid"], signal.SIGTERM)
    errors = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        try:
            lib.calc(1)
        except threadhost.UnavailableError as exc:  # a call it received but did not run
            errors.append(exc)
    assert len(errors) <= 1, errors
    assert svc.status()["counters"]["crashed"] == 0


# --------------------------------------------------------------------------- (c) a stuck host


@pytest.mark.timeout(40)
def test_pool_routes_around_a_host_stuck_in_a_long_fast_call(service_factory: Any) -> None:
    svc: Service = service_factory("--hosts", "2", target=STALLABLE)
    all_hosts_ready(svc, 2)
    warm = svc.client()
    for _ in range(50):  # enough measured calls for the derived route-away time
        assert warm.calc(1) == 2
    away = svc.status()["route_away_after"]
    assert 0 < away <= 5.0
    staller = svc.client(timeout=30.0)
    stalled: list[Any] = []
    stall_s = away + 5.0
    stall = threading.Thread(target=lambda: stalled.append(staller.stall(stall_s)))
    t_stall = time.monotonic()
    stall.start()
    stuck = wait_for(lambda: [h for h in svc.status()["hosts"] if h["state"] == "stuck"],
                     limit=away + 10.0)
    assert len(stuck) == 1 and stuck[0]["in_flight"] == 1
    run = hammer(svc, threads=3, seconds=2.5)
    during = svc.status()
    assert time.monotonic() - t_stall < stall_s, "the stall ended before the load did"
    stall.join(stall_s + 20)
    outcomes = run["outcomes"]
    assert set(outcomes) == {"ok"}, outcomes  # every other caller was answered
    assert outcomes["ok"] > 50 and not run["wrong"]
    lat = run["latencies"]
    assert pct(lat, 0.99) < 1.0, (pct(lat, 0.5), pct(lat, 0.99), lat[-1])
    states = {h["id"]: h for h in during["hosts"]}
    assert states[stuck[0]["id"]]["state"] == "stuck"
    assert states[stuck[0]["id"]]["in_flight"] == 1  # nothing queued behind the stall
    assert stalled == [stall_s]
    wait_for(lambda: all(h["state"] == "ready" for h in svc.status()["hosts"]), limit=10.0)


@pytest.mark.timeout(40)
def test_single_host_stuck_in_a_fast_call_answers_busy_at_once(service_factory: Any) -> None:
    svc: Service = service_factory("--hosts", "1", "--route-away-after", "1s",
                                   target=STALLABLE)
    svc.wait_state("ready")
    assert svc.status()["route_away_after"] == 1.0
    staller = svc.client(timeout=40.0)
    errors: list[BaseException] = []

    def stall() -> None:
        try:
            staller.stall(30.0)
        except threadhost.ThreadhostError as exc:
            errors.append(exc)

    worker = threading.Thread(target=stall)
    worker.start()
    wait_for(lambda: svc.status()["hosts"][0]["state"] == "stuck", limit=10.0)
    lib = svc.client(timeout=10.0)
    t0 = time.monotonic()
    with pytest.raises(threadhost.BusyError, match=r"fast call 'stall' running for \d+\.\ds"):
        lib.calc(1)
    assert time.monotonic() - t0 < 2.0  # refused at once, not at the 10 s timeout
    assert svc.status()["counters"]["rejected_busy"] >= 1
    # end the 30 s stall without waiting for it: the host dies, the stall's caller is told
    pid = svc.status()["hosts"][0]["pid"]
    os.kill(pid, signal.SIGKILL)
    worker.join(20)
    assert len(errors) == 1 and isinstance(errors[0], threadhost.HostCrashedError), errors


# --------------------------------------------------------------------------- (d) refused


@pytest.mark.timeout(40)
@pytest.mark.parametrize("how", ["option", "config"])
def test_pool_of_a_non_replicable_adapter_is_refused_before_start(how: str,
                                                                  tmp_path: Path) -> None:
    target = "tests.adapters_reliability:Misbehaving"
    endpoint = free_endpoint()
    if how == "option":
        args = [target, "--hosts", "2"]
        named = "--hosts 2"
    else:
        config = tmp_path / "serve.toml"
        config.write_text(f'adapter = "{target}"\nhosts = 3\n')
        args = ["--config", str(config)]
        named = "hosts = 3"
    proc = subprocess.run(
        [sys.executable, "-m", "threadhost", "serve", *args, "--endpoint", endpoint],
        cwd=ROOT, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "not replicable" in lines[0] and named in lines[0], lines[0]
    assert proc.stdout == ""  # nothing started, nothing listened
