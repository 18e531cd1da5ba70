"""threadhost benchmark suite: threadhost side by side with the seed's design and two floors.

    python -m benchmarks                 # full run (about 4 minutes): table + JSON
    python -m benchmarks --quick         # smoke run (about 20 s): same scenarios, tiny samples
    python -m benchmarks --profile DIR   # also py-spy the broker and host (bench extra)
    python -m benchmarks --systems threadhost,floor --scenarios seq,pipe --rounds 6

Systems (see :mod:`benchmarks.systems`): (a) threadhost serving ``examples.mylib_adapter``;
(b) the seed's design (PAIR sockets, string frames, a broker between client and library
process); (c) a minimal two-hop ROUTER/DEALER msgpack broker, no gate, no validation;
(d) a direct one-hop round trip. All four run the same ``mylib.calc``.

This machine is noisy, so only ratios measured side by side count: every scenario is run
for every system in rotation (the order rotates each round), for several rounds, and each
number reported is the median of its per-round values. Clients are separate processes.

Scenarios
---------
``seq``     one client, sequential ``calc(5)``: p50 / p99 latency
``tp``      1, 8, 64 client processes calling back to back for a fixed window: calls/s, and
            the CPU time each process (broker, host, all clients) spends per call
``pipe``    one client with 64 calls in flight: ``threadhost.AsyncClient`` with 64
            concurrent awaits, and (every system) one raw socket keeping 64 calls in flight
``busy``    a probe client's latency of the *busy* answers while ``readConfig`` runs, alone
            and while 8 other clients hammer (threadhost); the seed's single client alone
            (PAIR takes one peer); the floors have no gate
``paced``   the p50 of calls with 100 connected clients (10 processes x 10 sockets) each
            calling every 0.5 s (200 calls/s in all), against one client making the same
            200 calls/s
``memory``  broker RSS before and with 1000 idle connected clients (each made one call)

Results go to ``benchmarks/results/latest.json`` (``quick.json`` with ``--quick``) unless
``--json`` says otherwise. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.pool import Pool
from benchmarks.systems import LABELS, ROOT, Seed, System, Threadhost, start_all

SYSTEMS = ["threadhost", "seed", "floor", "direct"]
SCENARIOS = ["codec", "seq", "tp", "pipe", "busy", "paced", "memory"]
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Settings:
    rounds: int = 4
    seq_calls: int = 2000
    seq_warmup: int = 200
    duration: float = 1.5  # seconds of each throughput / pipelining / busy measurement
    clients: tuple[int, ...] = (1, 8, 64)
    window: int = 64
    hammers: int = 8
    probe_pause: float = 0.002
    paced_clients: int = 100
    paced_procs: int = 10
    paced_period: float = 0.5
    paced_duration: float = 2.0
    idle_clients: int = 1000
    idle_procs: int = 4


FULL = Settings()
QUICK = Settings(
    rounds=1, seq_calls=200, seq_warmup=20, duration=0.25, paced_duration=0.3, idle_clients=100
)


# --------------------------------------------------------------------------- statistics


def pct(values: list[int] | list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * len(s) + 0.5) - 1))
    return float(s[k])


def py_spy() -> str:
    """The py-spy executable (``pip install -e '.[bench]'``)."""
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: pip install -e '.[bench]'")
    return found


def profile_summary(path: Path, top: int = 12) -> list[tuple[float, str]]:
    """The frames where most samples of a py-spy raw (collapsed) profile were taken,
    as (percent, frame); frames of pyzmq's send/recv include the time in libzmq."""
    if not path.exists():
        return []
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        leaf = stack.rsplit(";", 1)[-1]
        own[leaf] = own.get(leaf, 0) + int(n)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:top]
    return [(round(100 * n / total, 1), frame) for frame, n in ranked] if total else []


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


class Results:
    """Per-round values of each (metric, system); reported as medians over rounds."""

    def __init__(self) -> None:
        self.rounds: dict[str, dict[str, list[float]]] = {}
        self.notes: dict[str, dict[str, str]] = {}

    def add(self, metric: str, system: str, value: float) -> None:
        self.rounds.setdefault(metric, {}).setdefault(system, []).append(value)

    def note(self, metric: str, system: str, text: str) -> None:
        self.notes.setdefault(metric, {})[system] = text

    def get(self, metric: str, system: str) -> float | None:
        return median(self.rounds.get(metric, {}).get(system, []))


# --------------------------------------------------------------------------- scenarios


class Bench:
    def __init__(
        self,
        settings: Settings,
        systems: dict[str, System],
        pool: Pool,
        log: Any,
        scenarios: list[str] | None = None,
        profile_dir: Path | None = None,
    ) -> None:
        self.s = settings
        self.scenarios = scenarios or SCENARIOS
        self.profile_dir = profile_dir
        self.profiles: dict[str, list[tuple[float, str]]] = {}
        self.step_times: dict[str, float] = {}
        self.systems = systems
        self.pool = pool
        self.r = Results()
        self.log = log

    def _start_at(self, workers: int) -> float:
        return time.time() + 0.1 + 0.004 * workers

    def _say(self, text: str) -> None:
        print(text, file=self.log, flush=True)

    # -- seq

    def codec(self, name: str) -> None:
        """Encode + decode of one call in this process (no sockets): threadhost's codec
        and the floor's msgpack frame."""
        if name in ("threadhost", "floor"):
            from benchmarks.micro import codec_call_us

            self.r.add("codec_call_us", name, codec_call_us(name, 20_000 if self.s.rounds == 1
                                                             else 100_000))

    def seq(self, name: str) -> None:
        sysm = self.systems[name]
        (res,) = self.pool.run(
            [
                (
                    0,
                    "seq",
                    {
                        "system": name,
                        "endpoint": sysm.endpoint,
                        "n": self.s.seq_calls,
                        "warmup": self.s.seq_warmup,
                    },
                )
            ]
        )
        lat = res["lat_ns"]
        self.r.add("seq_p50_us", name, pct(lat, 0.50) / 1000)
        self.r.add("seq_p99_us", name, pct(lat, 0.99) / 1000)
        self.r.add("seq_mean_us", name, statistics.fmean(lat) / 1000)

    # -- throughput with N client processes

    def throughput(self, name: str, n: int) -> None:
        metric = f"tp{n}_calls_s"
        if name == "seed" and n > 1:
            self.r.note(metric, name, "n/a: PAIR takes one peer")
            return
        sysm = self.systems[name]
        start_at = self._start_at(n)
        tasks = [
            (
                i,
                "closed_loop",
                {
                    "system": name,
                    "endpoint": sysm.endpoint,
                    "start_at": start_at,
                    "duration": self.s.duration,
                },
            )
            for i in range(n)
        ]
        results = self._timed(name, f"tp{n}", tasks, start_at)
        count = sum(r["count"] for r in results)
        self.r.add(metric, name, count / self.s.duration)

    def _timed(
        self, name: str, prefix: str, tasks: list[tuple[int, str, dict[str, Any]]], start_at: float
    ) -> list[Any]:
        """Run ``tasks`` (which measure from ``start_at`` for the configured duration and
        return a ``count`` or latencies) and record the CPU time each process of system
        ``name``, and the clients together, spend within that window."""
        roles = self.systems[name].roles()
        pids = {**{r: [p] for r, p in roles.items()}, "clients": self.pool.pids()}
        self.pool.submit(tasks)
        _sleep_until(start_at)
        before = {r: _cpu_seconds(ps) for r, ps in pids.items()}
        _sleep_until(start_at + self.s.duration)
        spent = {r: _cpu_seconds(ps) - before[r] for r, ps in pids.items()}
        results = self.pool.collect(tasks)
        count = sum(r["count"] if "count" in r else len(r["lat_ns"]) for r in results)
        if count:
            for role, sec in spent.items():
                self.r.add(f"{prefix}_cpu_{role}_us", name, sec / count * 1e6)
        self.r.add(
            f"{prefix}_cpu_use_pct",
            name,
            100 * sum(spent.values()) / self.s.duration / (os.cpu_count() or 1),
        )
        return results

    # -- pipelined single client

    def pipelined(self, name: str) -> None:
        sysm = self.systems[name]
        kw = {"endpoint": sysm.endpoint, "duration": self.s.duration, "window": self.s.window}
        if name == "threadhost":
            start_at = self._start_at(1)
            (res,) = self._timed(
                name, "pipe_async", [(0, "pipelined_async", {**kw, "start_at": start_at})], start_at
            )
            self.r.add("pipe_async_calls_s", name, res["count"] / self.s.duration)
        else:
            self.r.note("pipe_async_calls_s", name, "n/a: no async client")
        start_at = self._start_at(1)
        spies = self._profile(name, start_at) if name == "threadhost" else []
        (res,) = self._timed(
            name,
            "pipe_raw",
            [(0, "pipelined_raw", {"system": name, **kw, "start_at": start_at})],
            start_at,
        )
        self.r.add("pipe_raw_calls_s", name, res["count"] / self.s.duration)
        for role, spy, path in spies:
            spy.wait()
            self.profiles[role] = profile_summary(path)

    def _profile(self, name: str, start_at: float) -> list[tuple[str, Any, Path]]:
        """With ``--profile DIR``, once per run: py-spy records the broker and the host
        during the window of the raw pipelined scenario (the broker saturated)."""
        if self.profile_dir is None or self.profiles:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        spies = []
        for role, pid in self.systems[name].roles().items():
            path = self.profile_dir / f"{name}-{role}-pipelined.txt"
            cmd = [
                py_spy(),
                "record",
                "-p",
                str(pid),
                "-r",
                "500",
                "-f",
                "raw",
                "-o",
                str(path),
                "-d",
                str(max(1, round(self.s.duration))),
                "--nonblocking",
            ]
            delay = start_at - time.time()
            if delay > 0:
                time.sleep(min(delay, 0.1))
            spies.append(
                (
                    role,
                    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                    path,
                )
            )
        return spies

    # -- busy replies during a slow call

    def _probe_and_hammer(self, name: str, every_call: bool) -> None:
        """The probe alone (the reference), then with 8 clients hammering; records the
        probe's and the hammers' latencies. ``every_call``: a system without a gate, every
        call answered (otherwise only busy answers count)."""
        d = self.s.duration
        endpoint = self.systems[name].endpoint
        extra = {"every_call": True} if every_call else {}
        probe_kw = {"system": name, "endpoint": endpoint, "duration": d,
                    "pause": self.s.probe_pause, **extra}
        (alone,) = self.pool.run([(0, "busy_probe", {**probe_kw, "start_at": self._start_at(1)})])
        start_at = self._start_at(self.s.hammers + 1)
        hammer_kw = {"system": name, "endpoint": endpoint, "start_at": start_at,
                     "duration": d, **extra}
        results = self._timed(
            name,
            "busy",
            [(0, "busy_probe", {**probe_kw, "start_at": start_at})]
            + [(1 + i, "busy_hammer", hammer_kw) for i in range(self.s.hammers)],
            start_at,
        )
        probe = results[0]["lat_ns"]
        hammer = [x for r in results[1:] for x in r["lat_ns"]]
        if not probe or not alone["lat_ns"]:
            raise RuntimeError(f"{name}: the probe saw no answer to time")
        self.r.add("busy_alone_p99_us", name, pct(alone["lat_ns"], 0.99) / 1000)
        self.r.add("busy_p50_us", name, pct(probe, 0.50) / 1000)
        self.r.add("busy_p99_us", name, pct(probe, 0.99) / 1000)
        self.r.add("busy_hammer_p99_us", name, pct(hammer, 0.99) / 1000)
        self.r.add("busy_hammer_calls_s", name, len(hammer) / d)

    def busy(self, name: str) -> None:
        d = self.s.duration
        sysm = self.systems[name]
        if isinstance(sysm, Threadhost):
            sysm.begin_slow(2 * d + 0.8)
            try:
                self._probe_and_hammer(name, every_call=False)
            finally:
                sysm.end_slow()
        elif isinstance(sysm, Seed):
            ready_at = sysm.begin_slow(d + sysm.idle_timeout + 0.6)
            try:
                (res,) = self.pool.run(
                    [
                        (
                            0,
                            "busy_probe",
                            {
                                "system": name,
                                "endpoint": sysm.endpoint,
                                "start_at": ready_at,
                                "duration": d,
                                "pause": self.s.probe_pause,
                            },
                        )
                    ]
                )
            finally:
                sysm.end_slow()
                self.pool.run(
                    [
                        (
                            0,
                            "until_answered",
                            {"system": name, "endpoint": sysm.endpoint, "limit": d + 10},
                        )
                    ]
                )
            probe = res["lat_ns"]
            if not probe:
                raise RuntimeError("seed: the probe saw no CALC-FAIL")
            self.r.add("busy_alone_p99_us", name, pct(probe, 0.99) / 1000)
            self.r.note("busy_p99_us", name, "n/a: PAIR takes one peer (probe alone only)")
        else:
            # no gate: the same load shape (a probe every 2 ms, alone, then with 8 clients
            # calling back to back), every call answered — what any design costs on this
            # machine under that load, the reference for the busy-reply target
            self._probe_and_hammer(name, every_call=True)

    # -- latency with 100 connected clients vs 1, same total rate

    def paced(self, name: str) -> None:
        s = self.s
        sysm = self.systems[name]
        total_rate = s.paced_clients / s.paced_period
        # one client alone making all the calls: same load, one connection
        start_at = self._start_at(1)
        (one,) = self.pool.run(
            [
                (
                    0,
                    "paced",
                    {
                        "system": name,
                        "endpoint": sysm.endpoint,
                        "slots": [0],
                        "total": 1,
                        "period": 1 / total_rate,
                        "start_at": start_at,
                        "duration": s.paced_duration,
                    },
                )
            ]
        )
        self.r.add("paced1_p50_us", name, pct(one["lat_ns"], 0.5) / 1000)
        if name == "seed":
            self.r.note("paced100_p50_us", name, "n/a: PAIR takes one peer")
            return
        per = s.paced_clients // s.paced_procs
        start_at = self._start_at(s.paced_procs)
        results = self.pool.run(
            [
                (
                    p,
                    "paced",
                    {
                        "system": name,
                        "endpoint": sysm.endpoint,
                        "slots": list(range(p * per, (p + 1) * per)),
                        "total": s.paced_clients,
                        "period": s.paced_period,
                        "start_at": start_at,
                        "duration": s.paced_duration,
                    },
                )
                for p in range(s.paced_procs)
            ]
        )
        lat = [x for r in results for x in r["lat_ns"]]
        self.r.add("paced100_p50_us", name, pct(lat, 0.5) / 1000)

    # -- memory with idle clients

    def memory(self, name: str) -> None:
        sysm = self.systems[name]
        metric = "rss_idle_mb"
        if name == "seed":
            self.r.note(metric, name, "n/a: PAIR takes one peer")
            return
        # exactly the idle clients counted: the clients earlier scenarios left connected
        # (each worker keeps its callers between tasks) disconnect first, and the broker
        # gets a moment without traffic, as a service between two busy periods would
        self.pool.run([(i, "close_callers", {}) for i in range(len(self.pool.conns))])
        time.sleep(1.0)
        before = sysm.rss()
        n, procs = self.s.idle_clients, self.s.idle_procs
        per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        try:
            self.pool.run(
                [
                    (i, "hold_idle", {"system": name, "endpoint": sysm.endpoint, "n": k})
                    for i, k in enumerate(per)
                ]
            )
            time.sleep(0.5)
            after = sysm.rss()
        finally:
            self.pool.run([(i, "release_idle", {}) for i in range(procs)])
        if before is not None and after is not None:
            self.r.add("rss_base_mb", name, before / 2**20)
            self.r.add(metric, name, after / 2**20)

    # -- the whole run

    def run(self) -> Results:
        names = list(self.systems)
        for rnd in range(self.s.rounds):
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            t0 = time.monotonic()
            self.step_times = {}
            steps: list[tuple[str, Any]] = [("codec", self.codec), ("seq", self.seq)]
            steps += [("tp", lambda nm, n=n: self.throughput(nm, n)) for n in self.s.clients]
            steps += [("pipe", self.pipelined), ("busy", self.busy), ("paced", self.paced)]
            for step, fn in steps:
                if step not in self.scenarios:
                    continue
                t1 = time.monotonic()
                for name in order:
                    fn(name)
                    self._check_alive()
                self.step_times[step] = self.step_times.get(step, 0) + time.monotonic() - t1
            self._say(
                f"round {rnd + 1}/{self.s.rounds} done in {time.monotonic() - t0:.1f}s ("
                + ", ".join(f"{k} {v:.1f}s" for k, v in self.step_times.items())
                + ")"
            )
        if "memory" in self.scenarios:
            for name in names:
                self.memory(name)
        self._check_alive()
        return self.r

    def _check_alive(self) -> None:
        for s in self.systems.values():
            if not s.alive():
                raise RuntimeError(f"{s.label} died:\n{s.log_text()[-3000:]}")


# --------------------------------------------------------------------------- report

ROWS: list[tuple[str, str, str]] = [
    # metric, label, format
    ("codec_call_us", "codec: encode + decode of a call (us)", "{:.2f}"),
    ("seq_p50_us", "sequential calc p50 (us)", "{:.0f}"),
    ("seq_p99_us", "sequential calc p99 (us)", "{:.0f}"),
    ("tp1_calls_s", "throughput, 1 client (calls/s)", "{:.0f}"),
    ("tp8_calls_s", "throughput, 8 clients (calls/s)", "{:.0f}"),
    ("tp64_calls_s", "throughput, 64 clients (calls/s)", "{:.0f}"),
    ("tp8_cpu_broker_us", "  CPU per call, 8 clients: broker (us)", "{:.0f}"),
    ("tp8_cpu_host_us", "  CPU per call, 8 clients: host (us)", "{:.0f}"),
    ("tp8_cpu_clients_us", "  CPU per call, 8 clients: clients (us)", "{:.0f}"),
    ("tp8_cpu_use_pct", "  CPU use, 8 clients (% of all cores)", "{:.0f}"),
    ("pipe_async_calls_s", "pipelined, AsyncClient x64 (calls/s)", "{:.0f}"),
    ("pipe_raw_calls_s", "pipelined, raw socket x64 (calls/s)", "{:.0f}"),
    ("pipe_raw_cpu_broker_us", "  CPU per call, raw pipelined: broker (us)", "{:.0f}"),
    ("busy_alone_p99_us", "busy reply p99, probe alone (us)", "{:.0f}"),
    ("busy_p50_us", "busy reply p50, 8 hammering (us)", "{:.0f}"),
    ("busy_p99_us", "busy reply p99, 8 hammering (us)", "{:.0f}"),
    ("busy_hammer_p99_us", "  busy reply p99 of the hammers (us)", "{:.0f}"),
    ("busy_cpu_use_pct", "  CPU use while hammering (% of all cores)", "{:.0f}"),
    ("paced1_p50_us", "p50, 1 client at 200 calls/s (us)", "{:.0f}"),
    ("paced100_p50_us", "p50, 100 clients at 200 calls/s (us)", "{:.0f}"),
    ("rss_base_mb", "broker RSS, no idle clients (MB)", "{:.1f}"),
    ("rss_idle_mb", "broker RSS, idle clients (MB)", "{:.1f}"),
]


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    op: str  # "<=", "<", ">="

    @property
    def ok(self) -> bool | None:
        if self.value is None:
            return None
        if self.op == "<=":
            return self.value <= self.limit
        if self.op == "<":
            return self.value < self.limit
        return self.value >= self.limit


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(r: Results) -> list[Target]:
    th = "threadhost"
    return [
        Target(
            "threadhost p50 / seed p50",
            _ratio(r.get("seq_p50_us", th), r.get("seq_p50_us", "seed")),
            1.0,
            "<=",
        ),
        Target("threadhost codec: encode + decode of a call (us)",
               r.get("codec_call_us", th), 1.5, "<="),
        Target(
            "threadhost p50 / floor p50",
            _ratio(r.get("seq_p50_us", th), r.get("seq_p50_us", "floor")),
            1.05,
            "<=",
        ),
        Target(
            "threadhost 8 clients / floor 8 clients (throughput)",
            _ratio(r.get("tp8_calls_s", th), r.get("tp8_calls_s", "floor")),
            0.85,
            ">=",
        ),
        Target(
            "threadhost clients' CPU per call / floor's, 8 clients",
            _ratio(r.get("tp8_cpu_clients_us", th), r.get("tp8_cpu_clients_us", "floor")),
            1.3,
            "<=",
        ),
        Target(
            "threadhost 8 clients / seed 1 client (throughput)",
            _ratio(r.get("tp8_calls_s", th), r.get("tp1_calls_s", "seed")),
            3.5,
            ">=",
        ),
        Target(
            "threadhost AsyncClient pipelined (calls/s)",
            r.get("pipe_async_calls_s", th),
            10_000,
            ">=",
        ),
        Target(
            "threadhost busy reply p99 (ms)",
            None if r.get("busy_p99_us", th) is None else r.get("busy_p99_us", th) / 1000,  # type: ignore[operator]
            1.0,
            "<",
        ),
        Target(
            "threadhost p50 100 clients / 1 client",
            _ratio(r.get("paced100_p50_us", th), r.get("paced1_p50_us", th)),
            1.3,
            "<=",
        ),
        Target("threadhost broker RSS with idle clients (MB)", r.get("rss_idle_mb", th), 60, "<"),
    ]


def _fmt(fmt: str, v: float | None) -> str:
    return "-" if v is None else fmt.format(v)


def table(r: Results, names: list[str], idle_clients: int) -> str:
    cols = [LABELS[n] for n in names]
    ratio_cols = []
    if "threadhost" in names and "seed" in names:
        ratio_cols.append(("a/b", "seed"))
    if "threadhost" in names and "floor" in names:
        ratio_cols.append(("a/c", "floor"))
    head = ["metric (median of rounds)", *cols, *(c for c, _ in ratio_cols)]
    lines = []
    for metric, label, fmt in ROWS:
        if metric == "rss_idle_mb":
            label = f"broker RSS, {idle_clients} idle clients (MB)"
        row = [label]
        for n in names:
            v = r.get(metric, n)
            row.append(
                _fmt(fmt, v)
                if v is not None
                else ("n/a" if r.notes.get(metric, {}).get(n) else "-")
            )
        for _, other in ratio_cols:
            row.append(_fmt("{:.2f}x", _ratio(r.get(metric, "threadhost"), r.get(metric, other))))
        lines.append(row)
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    out = []
    sep = "  "
    out.append(
        sep.join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(head))
    )
    out.append(sep.join("-" * w for w in widths))
    for row in lines:
        out.append(
            sep.join(
                c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)
            )
        )
    notes = sorted({(m, n, t) for m, d in r.notes.items() for n, t in d.items()})
    if notes:
        out.append("")
        out.extend(f"  {LABELS[n]} {m}: {t}" for m, n, t in notes)
    if any(r.get("busy_p99_us", n) is not None for n in ("floor", "direct") if n in names):
        out.append("  busy rows: (c) and (d) have no gate; they carry the same probe and hammering"
                   " load, every call answered: the reference for that load on this machine")
    return "\n".join(out)


def targets_table(ts: list[Target]) -> str:
    out = []
    for t in ts:
        verdict = {True: "holds", False: "MISSED", None: "not measured"}[t.ok]
        value = "-" if t.value is None else f"{t.value:.3g}"
        out.append(f"  {t.name:<52} {value:>8}  (target {t.op} {t.limit:g})  {verdict}")
    return "\n".join(out)


def machine() -> dict[str, Any]:
    import msgpack
    import msgspec
    import pydantic
    import zmq

    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyzmq": zmq.__version__,
        "libzmq": zmq.zmq_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "msgspec": msgspec.__version__,
        "pydantic": pydantic.VERSION,
        "loadavg_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: one round of tiny samples (seconds, not minutes)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 4; quick 1)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write results here (default benchmarks/results/latest.json, "
        "or quick.json with --quick)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help="comma-separated subset of " + ",".join(SYSTEMS),
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy the threadhost broker and host during the pipelined "
        "scenario; raw profiles go to DIR (needs the bench extra)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated subset of " + ",".join(SCENARIOS),
    )
    ns = parser.parse_args(argv)
    scenarios = ns.scenarios.split(",")
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    settings = QUICK if ns.quick else FULL
    if ns.rounds is not None:
        settings = Settings(**{**asdict(settings), "rounds": ns.rounds})
    names = [n for n in SYSTEMS if n in ns.systems.split(",")]
    log = sys.stderr
    pool_size = max(
        max(settings.clients), settings.hammers + 1, settings.paced_procs, settings.idle_procs
    )
    t0 = time.monotonic()
    info = machine()
    print(
        f"starting {pool_size} client processes and {len(names)} systems...", file=log, flush=True
    )
    pool = Pool(pool_size)
    systems: dict[str, System] = {}
    tmp = tempfile.mkdtemp(prefix="threadhost-bench-")
    try:
        systems = start_all(
            names,
            Path(tmp),
            lambda seed: pool.run(
                [(0, "seq", {"system": "seed", "endpoint": seed.endpoint, "n": 1, "warmup": 0})]
            ),
        )
        systems = {n: systems[n] for n in names}
        bench = Bench(settings, systems, pool, log, scenarios, ns.profile)
        results = bench.run()
    finally:
        pool.close()  # first: the clients say goodbye (the seed's proxy sends UNINIT)
        for s in systems.values():
            with contextlib.suppress(Exception):
                s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    ts = targets(results)
    elapsed = time.monotonic() - t0
    print(
        f"\nthreadhost benchmarks ({'quick' if ns.quick else 'full'}, {settings.rounds} "
        f"round(s), {elapsed:.0f}s) on {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}, libzmq {info['libzmq']}"
    )
    print(table(results, names, settings.idle_clients))
    print("\ntargets (ratios from this run):")
    print(targets_table(ts))
    for role, frames in bench.profiles.items():
        print(f"\nprofile of the threadhost {role}, raw pipelined (py-spy, % of samples):")
        print("\n".join(f"  {p:5.1f}%  {f}" for p, f in frames))
    report = {
        "mode": "quick" if ns.quick else "full",
        "settings": asdict(settings),
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "systems": {n: LABELS[n] for n in names},
        "results": {m: {n: results.get(m, n) for n in names} for m in results.rounds},
        "rounds": results.rounds,
        "notes": results.notes,
        "ratios": {
            m: {
                "a/b": _ratio(results.get(m, "threadhost"), results.get(m, "seed")),
                "a/c": _ratio(results.get(m, "threadhost"), results.get(m, "floor")),
            }
            for m in results.rounds
        },
        "targets": [{**asdict(t), "ok": t.ok} for t in ts],
        "profiles": bench.profiles,
    }
    path = ns.json or RESULTS / ("quick.json" if ns.quick else "latest.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
