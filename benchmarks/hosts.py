"""What a pool of hosts (``threadhost serve --hosts N``) buys, measured.

    python -m benchmarks.hosts            # full run (about 3 minutes): table + JSON
    python -m benchmarks.hosts --quick    # smoke run (about 30 s): same scenarios, short
    python -m benchmarks.hosts --scenarios rejected,kill --json /tmp/h.json

Scenarios (client processes call ``calc(5)`` back to back; each is a separate process)
----------------------------------------------------------------------------------------
``rejected``    4 clients for 20 s against mylib with ``readConfig`` taking 0.5 s and
                ``--policy every=1s``, with ``--hosts`` 1, 2 and 3: calls rejected
                (``BusyError``), calls answered, slow calls run, and how long each client
                was turned away in all (sum of its busy streaks: first busy to next answer)
``kill``        the same load with 2 hosts (the service of ``rejected --hosts 2``, when both
                run); once, between two maintenance rounds, one host is killed with
                SIGKILL: the clients' failures by type, against the gate's count of calls
                that were in flight on the killed host (``crashed``)
``throughput``  8 clients for 10 s, ``--hosts`` 1 and 2 (``--policy manual``): calls/s
                and CPU time per call of the broker, the hosts and the clients (psutil)
``stuck``       2 hosts (``tests.adapters_pool:Stallable``, mylib plus a fast call that
                sleeps), 4 clients for 5 s each: latency p50/p99 with no stuck host; while
                a 30 s fast call begins 1 s into the load (calls sent to its host before
                the broker counts it as stuck wait behind it, up to the client timeout);
                and once the broker lists the host as ``stuck``. The stuck host is killed
                afterwards to end the stall

Results go to ``benchmarks/results/hosts.json`` (``hosts-quick.json`` with ``--quick``)
unless ``--json`` says otherwise. See docs/pool.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.hosts_clients import TIMEOUT, Clients, _sleep_until
from benchmarks.run import _cpu_seconds, machine, pct
from benchmarks.systems import ROOT, Threadhost, free_port, write_config

RESULTS = ROOT / "benchmarks" / "results"
SCENARIOS = ["rejected", "kill", "throughput", "stuck"]
STALLABLE = "tests.adapters_pool:Stallable"
MYLIB = "examples.mylib_adapter"


@dataclass(frozen=True)
class Settings:
    read_seconds: float = 0.5  # readConfig (read_min_seconds = read_max_seconds)
    policy: str = "every=1s"
    rejected_clients: int = 4
    rejected_seconds: float = 20.0
    rejected_hosts: tuple[int, ...] = (1, 2, 3)
    kill_clients: int = 4
    kill_seconds: float = 20.0
    kill_after: float = 0.4  # fraction of the run after which the kill is armed
    tp_clients: int = 8
    tp_seconds: float = 10.0
    tp_hosts: tuple[int, ...] = (1, 2)
    tp_rounds: int = 2
    stuck_clients: int = 4
    stuck_seconds: float = 5.0
    stall_seconds: float = 30.0
    stall_after: float = 1.0  # into the onset load
    onset_timeout: float = TIMEOUT  # client timeout during the onset load


FULL = Settings()
QUICK = Settings(rejected_seconds=2.0, kill_seconds=2.5, kill_after=0.3, tp_seconds=1.0,
                 tp_rounds=1, stuck_seconds=1.0, stall_after=0.2, onset_timeout=1.5)


# --------------------------------------------------------------------------- services


class PoolService(Threadhost):
    """``threadhost serve TARGET --hosts N --policy P`` with mylib's readConfig taking
    ``read_seconds``; each instance in its own directory."""

    def __init__(self, workdir: Path, hosts: int, policy: str, read_seconds: float,
                 target: str = MYLIB) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix=f"hosts{hosts}-", dir=workdir)))
        self.hosts = hosts
        self.policy = policy
        self.target = target
        write_config(self.config, read_seconds)

    def start(self) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.serve = self._spawn(
            "-m", "threadhost", "serve", self.target, "--endpoint", self.endpoint,
            "--hosts", str(self.hosts), "--policy", self.policy, "--log-level", "WARNING",
        )

    def status(self) -> dict[str, Any]:
        with self._client(5.0) as c:
            st: dict[str, Any] = c.status()
            return st

    def wait_all_ready(self, limit: float = 60.0) -> dict[str, Any]:
        """Until every host of the pool is ready and no maintenance round runs."""
        import threadhost

        deadline = time.monotonic() + limit
        last: Any = None
        while time.monotonic() < deadline:
            if self.serve.poll() is not None:
                raise self._fail(f"serve exited with code {self.serve.returncode}")
            with contextlib.suppress(threadhost.ThreadhostError):
                last = self.status()
                hosts = last["hosts"]
                if (last["state"] == "ready" and "rollout" not in last
                        and len(hosts) == self.hosts
                        and all(h["state"] == "ready" for h in hosts)):
                    settled: dict[str, Any] = last
                    return settled
            time.sleep(0.02)
        raise self._fail(f"the pool never got all {self.hosts} hosts ready (last: {last})")

    def host_pids(self) -> list[int]:
        return [int(p) for p in self.status()["host_pids"]]


def _start(workdir: Path, hosts: int, policy: str, read_seconds: float,
           target: str = MYLIB) -> PoolService:
    svc = PoolService(workdir, hosts, policy, read_seconds, target)
    svc.start()
    try:
        svc.wait_all_ready()
    except BaseException:
        svc.stop()
        raise
    return svc


# --------------------------------------------------------------------------- scenarios


def _merge(results: list[dict[str, Any]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for r in results:
        total.update(r["outcomes"])
    return total


class Bench:
    def __init__(self, settings: Settings, clients: Clients, workdir: Path, log: Any,
                 scenarios: list[str]) -> None:
        self.s = settings
        self.clients = clients
        self.workdir = workdir
        self.log = log
        self.scenarios = scenarios
        self._kept: PoolService | None = None  # the 2-host service of ``rejected``, for ``kill``

    def close(self) -> None:
        if self._kept is not None:
            self._kept.stop()
            self._kept = None

    def _say(self, text: str) -> None:
        print(text, file=self.log, flush=True)

    def _load_tasks(self, svc: PoolService, n: int, start_at: float, duration: float,
                    **kw: Any) -> list[tuple[int, str, dict[str, Any]]]:
        return [(i, "load", {"endpoint": svc.endpoint, "start_at": start_at,
                             "duration": duration, **kw}) for i in range(n)]

    def _start_at(self) -> float:
        return time.time() + 0.5

    # -- calls rejected because of maintenance

    def rejected(self) -> list[dict[str, Any]]:
        s = self.s
        rows = []
        for hosts in s.rejected_hosts:
            self._say(f"rejected: --hosts {hosts}, {s.rejected_clients} clients, "
                      f"{s.rejected_seconds:g}s...")
            svc = _start(self.workdir, hosts, s.policy, s.read_seconds)
            keep = False
            try:
                before = svc.status()
                start_at = self._start_at()
                tasks = self._load_tasks(svc, s.rejected_clients, start_at, s.rejected_seconds)
                results = self.clients.run(tasks)
                after = svc.status()
                keep = hosts == 2 and "kill" in self.scenarios  # the same service, load next
            finally:
                self.clients.run([(i, "close", {}) for i in range(s.rejected_clients)])
                if keep:
                    self._kept = svc
                else:
                    svc.stop()
            outcomes = _merge(results)
            gens = [a["generation"] - b["generation"]
                    for a, b in zip(after["hosts"], before["hosts"], strict=True)]
            runs = (after["slow_calls"]["read_config"]["runs"]
                    - before["slow_calls"]["read_config"]["runs"])
            rows.append({
                "hosts": hosts,
                "clients": s.rejected_clients,
                "seconds": s.rejected_seconds,
                "calls": sum(outcomes.values()),
                "answered": outcomes.get("ok", 0),
                "rejected_busy": outcomes.get("BusyError", 0),
                "other_failures": {k: v for k, v in outcomes.items()
                                   if k not in ("ok", "BusyError")},
                "wrong_results": sum(r["wrong"] for r in results),
                "turned_away_s_per_client": round(
                    statistics.fmean(r["busy_s"] for r in results), 3),
                "slow_calls_run": runs,
                "rounds": round(runs / hosts, 1),
                "generation_per_host": gens,
                "broker_rejected_busy": (after["counters"]["rejected_busy"]
                                         - before["counters"]["rejected_busy"]),
            })
        return rows

    # -- one of two hosts killed under that load

    def kill(self) -> dict[str, Any]:
        s = self.s
        self._say(f"kill: --hosts 2, {s.kill_clients} clients, {s.kill_seconds:g}s, "
                  "one host SIGKILLed between two rounds...")
        svc, self._kept = self._kept, None
        if svc is None:
            svc = _start(self.workdir, 2, s.policy, s.read_seconds)
        try:
            before = svc.status()
            start_at = self._start_at()
            tasks = self._load_tasks(svc, s.kill_clients, start_at, s.kill_seconds)
            self.clients.submit(tasks)
            _sleep_until(start_at + s.kill_after * s.kill_seconds)
            # between rounds: both hosts ready (a pool of 2 with one host maintaining and
            # the other killed has nobody left to serve: that case is not this figure)
            snap = svc.wait_all_ready(limit=max(10.0, s.kill_seconds))
            victim = snap["hosts"][0]
            os.kill(victim["pid"], signal.SIGKILL)
            killed_at = time.time()
            results = self.clients.collect(tasks)
            if killed_at > start_at + s.kill_seconds - 0.2:
                raise RuntimeError("kill: no moment between two rounds before the load ended")
            self.clients.run([(i, "close", {}) for i in range(s.kill_clients)])
            after = svc.wait_all_ready()
        finally:
            svc.stop()
        outcomes = _merge(results)
        failures = Counter(o for o in outcomes.elements() if o != "ok")
        slot0 = after["hosts"][0]
        crashed = after["counters"]["crashed"] - before["counters"]["crashed"]
        times = [t - killed_at for r in results for t, _ in r["failures"]]
        return {
            "hosts": 2,
            "clients": s.kill_clients,
            "seconds": s.kill_seconds,
            "killed_at_s": round(killed_at - start_at, 3),
            "calls": sum(outcomes.values()),
            "answered": outcomes.get("ok", 0),
            "failures_by_type": dict(failures),
            "failures_after_kill_s": [round(min(times), 3), round(max(times), 3)]
            if times else [],
            "wrong_results": sum(r["wrong"] for r in results),
            "in_flight_on_killed_host": crashed,
            "victim_in_flight_at_last_status": victim["in_flight"],
            "victim_pid": victim["pid"],
            "replacement_pid": slot0["pid"],
            "replacement_restarts": slot0["restarts"],
            "survivor_restarts": after["hosts"][1]["restarts"],
            "state_after": after["state"],
            "restart_reason": after["last_restart_reason"],
        }

    # -- throughput and CPU per call

    def throughput(self) -> list[dict[str, Any]]:
        s = self.s
        runs: dict[int, list[dict[str, Any]]] = {h: [] for h in s.tp_hosts}
        for rnd in range(s.tp_rounds):
            order = list(s.tp_hosts) if rnd % 2 == 0 else list(reversed(s.tp_hosts))
            for hosts in order:
                self._say(f"throughput: --hosts {hosts}, {s.tp_clients} clients, "
                          f"{s.tp_seconds:g}s (round {rnd + 1}/{s.tp_rounds})...")
                svc = _start(self.workdir, hosts, "manual", 0.0)
                try:
                    runs[hosts].append(self._throughput_once(svc))
                finally:
                    self.clients.run([(i, "close", {}) for i in range(s.tp_clients)])
                    svc.stop()
        rows = []
        for hosts, per_round in runs.items():
            row: dict[str, Any] = {"hosts": hosts, "clients": s.tp_clients,
                                   "seconds": s.tp_seconds, "rounds": len(per_round)}
            for key in per_round[0]:
                row[key] = round(statistics.median(r[key] for r in per_round), 1)
            row["per_round_calls_s"] = [r["calls_s"] for r in per_round]
            rows.append(row)
        return rows

    def _throughput_once(self, svc: PoolService) -> dict[str, Any]:
        s = self.s
        pids = {"broker": [svc.serve.pid], "hosts": svc.host_pids(),
                "clients": self.clients.pids()[: s.tp_clients]}
        start_at = self._start_at()
        tasks = self._load_tasks(svc, s.tp_clients, start_at, s.tp_seconds)
        self.clients.submit(tasks)
        _sleep_until(start_at)
        cpu0 = {r: _cpu_seconds(p) for r, p in pids.items()}
        _sleep_until(start_at + s.tp_seconds)
        spent = {r: _cpu_seconds(p) - cpu0[r] for r, p in pids.items()}
        results = self.clients.collect(tasks)
        outcomes = _merge(results)
        answered = outcomes.get("ok", 0)
        if set(outcomes) != {"ok"}:
            raise RuntimeError(f"throughput: calls failed: {dict(outcomes)}")
        return {
            "calls_s": answered / s.tp_seconds,
            "cpu_broker_us": spent["broker"] / answered * 1e6,
            "cpu_hosts_us": spent["hosts"] / answered * 1e6,
            "cpu_clients_us": spent["clients"] / answered * 1e6,
            "cpu_total_us": sum(spent.values()) / answered * 1e6,
            "cpu_use_pct": 100 * sum(spent.values()) / s.tp_seconds / (os.cpu_count() or 1),
        }

    # -- one host stuck in a 30 s fast call

    def stuck(self) -> dict[str, Any]:
        """Three loads against 2 hosts: no stuck host; the stall beginning while the load
        runs (calls sent to that host before it counts as stuck wait behind the stall); the
        stall under way, the host listed ``stuck``."""
        s = self.s
        self._say(f"stuck: --hosts 2, {s.stuck_clients} clients, {s.stuck_seconds:g}s with no "
                  f"stuck host, as a {s.stall_seconds:g}s fast call begins, and once its "
                  "host is listed stuck...")
        svc = _start(self.workdir, 2, "manual", 0.0, target=STALLABLE)
        staller = s.stuck_clients  # the worker that makes the stuck call
        stall_task = [(staller, "call_once", {"endpoint": svc.endpoint, "method": "stall",
                                               "args": (s.stall_seconds,)})]
        n = s.stuck_clients
        try:
            start_at = self._start_at()
            base = self.clients.run(self._load_tasks(svc, n, start_at, s.stuck_seconds,
                                                     latencies=True))
            away = svc.status()["route_away_after"]
            start_at = self._start_at()
            onset_tasks = self._load_tasks(svc, n, start_at, s.stuck_seconds, latencies=True,
                                           timeout=s.onset_timeout)
            self.clients.submit(onset_tasks)
            _sleep_until(start_at + s.stall_after)
            self.clients.submit(stall_task)
            t_stall = time.time()
            stuck_host = self._wait_stuck(svc, limit=away + 10.0)
            listed_after = time.time() - t_stall
            onset = self.clients.collect(onset_tasks)
            start_at = self._start_at()
            steady = self.clients.run(self._load_tasks(svc, n, start_at, s.stuck_seconds,
                                                       latencies=True))
            status = svc.status()
            still = {h["id"]: h for h in status["hosts"]}[stuck_host["id"]]
            if time.time() - t_stall >= s.stall_seconds:
                raise RuntimeError("stuck: the stall ended before the measurement did")
            os.kill(stuck_host["pid"], signal.SIGKILL)  # end the stall now
            (stall_result,) = self.clients.collect(stall_task)
            self.clients.run([(i, "close", {}) for i in range(n + 1)])
        finally:
            svc.stop()

        def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
            lat = [x for r in results for x in r["lat_ns"]]
            outcomes = _merge(results)
            slow = [x for x in lat if x > away * 1e9]
            return {"calls": sum(outcomes.values()), "outcomes": dict(outcomes),
                    "p50_ms": round(pct(lat, 0.50) / 1e6, 3),
                    "p99_ms": round(pct(lat, 0.99) / 1e6, 3),
                    "max_ms": round(max(lat) / 1e6, 3) if lat else None,
                    "slower_than_route_away": len(slow)}

        return {
            "hosts": 2,
            "clients": n,
            "seconds": s.stuck_seconds,
            "stall_s": s.stall_seconds,
            "stall_began_at_s": s.stall_after,
            "onset_client_timeout_s": s.onset_timeout,
            "route_away_after_s": away,
            "listed_stuck_after_s": round(listed_after, 3),
            "baseline": summary(base),
            "onset": summary(onset),
            "with_stuck_host": summary(steady),
            "stuck_host_in_flight": still["in_flight"],
            "stuck_host_state": still["state"],
            "stall_caller_got": stall_result,
        }

    @staticmethod
    def _wait_stuck(svc: PoolService, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            stuck = [h for h in svc.status()["hosts"] if h["state"] == "stuck"]
            if stuck:
                host: dict[str, Any] = stuck[0]
                return host
            time.sleep(0.02)
        raise RuntimeError("stuck: no host was listed as stuck")


# --------------------------------------------------------------------------- report


def table(report: dict[str, Any]) -> str:
    out: list[str] = []
    res = report["results"]
    if "rejected" in res:
        out.append("calls rejected because of maintenance "
                   f"(readConfig {report['settings']['read_seconds']:g}s, "
                   f"--policy {report['settings']['policy']})")
        out.append(f"  {'hosts':>5} {'clients':>7} {'seconds':>7} {'calls':>8} {'answered':>8} "
                   f"{'BusyError':>9} {'other':>5} {'away s/client':>13} {'slow calls':>10} "
                   f"{'rounds':>6}")
        for r in res["rejected"]:
            other = sum(r["other_failures"].values())
            out.append(f"  {r['hosts']:>5} {r['clients']:>7} {r['seconds']:>7g} {r['calls']:>8} "
                       f"{r['answered']:>8} {r['rejected_busy']:>9} {other:>5} "
                       f"{r['turned_away_s_per_client']:>13.2f} {r['slow_calls_run']:>10} "
                       f"{r['rounds']:>6g}")
    if "kill" in res:
        k = res["kill"]
        out.append("")
        out.append(f"one of 2 hosts killed (SIGKILL) at {k['killed_at_s']:g}s of "
                   f"{k['seconds']:g}s, {k['clients']} clients, same load")
        out.append(f"  calls {k['calls']}, answered {k['answered']}, "
                   f"failures {k['failures_by_type'] or 'none'}")
        out.append(f"  calls in flight on the killed host (broker's crashed count): "
                   f"{k['in_flight_on_killed_host']}")
        out.append(f"  replacement pid {k['replacement_pid']} (was {k['victim_pid']}), "
                   f"restarts of its slot {k['replacement_restarts']}, of the other "
                   f"{k['survivor_restarts']}; state {k['state_after']}")
    if "throughput" in res:
        out.append("")
        out.append("throughput, back to back, --policy manual")
        out.append(f"  {'hosts':>5} {'clients':>7} {'calls/s':>8} {'CPU/call µs: broker':>20} "
                   f"{'hosts':>6} {'clients':>7} {'total':>6} {'CPU use %':>9}")
        for r in res["throughput"]:
            out.append(f"  {r['hosts']:>5} {r['clients']:>7} {r['calls_s']:>8.0f} "
                       f"{r['cpu_broker_us']:>20.0f} {r['cpu_hosts_us']:>6.0f} "
                       f"{r['cpu_clients_us']:>7.0f} {r['cpu_total_us']:>6.0f} "
                       f"{r['cpu_use_pct']:>9.0f}")
    if "stuck" in res:
        st = res["stuck"]
        out.append("")
        out.append(f"one of 2 hosts stuck in a {st['stall_s']:g}s fast call, {st['clients']} "
                   f"clients (route-away {st['route_away_after_s']:g}s; listed stuck after "
                   f"{st['listed_stuck_after_s']:.2f}s)")
        out.append(f"  {'':<18} {'calls':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
                   f"{'> away':>6}  outcomes")
        rows = (("no stuck host", "baseline"), ("stall beginning", "onset"),
                ("host listed stuck", "with_stuck_host"))
        for label, key in rows:
            r = st[key]
            out.append(f"  {label:<18} {r['calls']:>7} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
                       f"{r['max_ms']:>7.1f} {r['slower_than_route_away']:>6}  {r['outcomes']}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hosts", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a few seconds per scenario")
    parser.add_argument("--json", type=Path, default=None,
                        help="write results here (default benchmarks/results/hosts.json, "
                             "or hosts-quick.json with --quick)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of " + ",".join(SCENARIOS))
    ns = parser.parse_args(argv)
    scenarios = [x for x in ns.scenarios.split(",") if x]
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    settings = QUICK if ns.quick else FULL
    log = sys.stderr
    t0 = time.monotonic()
    info = machine()
    size = max(settings.rejected_clients, settings.kill_clients, settings.tp_clients,
               settings.stuck_clients + 1)
    print(f"starting {size} client processes...", file=log, flush=True)
    clients = Clients(size)
    workdir = Path(tempfile.mkdtemp(prefix="threadhost-bench-hosts-"))
    results: dict[str, Any] = {}
    step_s: dict[str, float] = {}
    bench = Bench(settings, clients, workdir, log, scenarios)
    try:
        for name in SCENARIOS:
            if name in scenarios:
                t1 = time.monotonic()
                results[name] = getattr(bench, name)()
                step_s[name] = round(time.monotonic() - t1, 1)
    finally:
        bench.close()
        clients.close()
        shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - t0
    report = {
        "mode": "quick" if ns.quick else "full",
        "command": "python -m benchmarks.hosts" + (" --quick" if ns.quick else ""),
        "settings": asdict(settings),
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "scenario_s": step_s,
        "results": results,
    }
    print(f"\nthreadhost pool benchmarks ({report['mode']}, {elapsed:.0f}s) on {info['cpu']}, "
          f"{info['cores']} cores, Python {info['python']}, libzmq {info['libzmq']}")
    print(table(report))
    path = ns.json or RESULTS / ("hosts-quick.json" if ns.quick else "hosts.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
