"""CURVE on vs off: latency and throughput of the same service, side by side.

Two ``threadhost serve`` processes of the same trivial adapter (``echo(x)``, no library
work) run at once on loopback TCP: one without keys, one with CURVE (``--secret-key``,
``--clients``). The rounds alternate between them so that machine noise hits both alike:

* **latency** — sequential ``lib.echo(n)`` round trips through the sync client (p50, p99, µs);
* **throughput** — an ``AsyncClient`` keeping ``--depth`` calls in flight (calls/s);
* **connect** — a new client's first call, handshake included (ms, median).

    python -m benchmarks.curve [--calls 3000] [--rounds 5] [--depth 64] [--quick]

Table on stdout, JSON in ``benchmarks/results/curve.json`` (``make bench-curve``; see
docs/performance.md, "CURVE encryption on vs off").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import threadhost
from benchmarks.systems import free_port
from threadhost.adapter import Adapter, fast

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "curve.json"


class Echo(Adapter):
    """``echo(x)`` returns ``x``: the cost measured is threadhost's, not a library's."""

    @fast
    def echo(self, x: int) -> int:
        return x


class Service:
    def __init__(self, workdir: Path, keys: Path | None) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.keys = keys
        args = ["serve", "benchmarks.curve:Echo", "--endpoint", self.endpoint, "--policy",
                "manual", "--log-level", "WARNING"]
        if keys is not None:
            args += ["--secret-key", str(keys / "broker.key_secret"), "--clients",
                     str(keys / "clients")]
        env = {**os.environ, "THREADHOST_RUNTIME_DIR": str(workdir / "run")}
        self.proc = subprocess.Popen([sys.executable, "-m", "threadhost", *args], cwd=ROOT,
                                     env=env, stdin=subprocess.DEVNULL)

    @property
    def label(self) -> str:
        return "curve" if self.keys is not None else "plain"

    def key_args(self) -> dict[str, Any]:
        if self.keys is None:
            return {}
        return {"server_key": self.keys / "broker.key",
                "secret_key": self.keys / "client.key_secret"}

    def client(self, timeout: float = 10.0) -> threadhost.Client:
        return threadhost.connect(self.endpoint, timeout, **self.key_args())

    def wait_ready(self, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        with self.client(2.0) as lib:
            while time.monotonic() < deadline:
                try:
                    if threadhost.Client.status(lib).get("state") == "ready":
                        return
                except threadhost.ThreadhostError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"{self.label} service never became ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def make_keys(root: Path) -> Path:
    from threadhost.transport import new_keys

    new_keys("broker", root)
    public, _ = new_keys("client", root)
    (root / "clients").mkdir()
    (root / "clients" / public.name).write_bytes(public.read_bytes())
    return root


def latency(svc: Service, calls: int) -> list[float]:
    out = []
    with svc.client() as lib:
        lib.echo(0)  # connected, handshake done
        perf = time.perf_counter
        for n in range(calls):
            t0 = perf()
            lib.echo(n)
            out.append((perf() - t0) * 1e6)
    return out


def throughput(svc: Service, calls: int, depth: int) -> float:
    async def run() -> float:
        async with threadhost.AsyncClient(svc.endpoint, 30.0, **svc.key_args()) as lib:
            await lib.echo(0)
            left = calls

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await lib.echo(left)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(depth)))
            return calls / (time.perf_counter() - t0)

    return asyncio.run(run())


def connect_ms(svc: Service, times: int) -> list[float]:
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        with svc.client() as lib:
            lib.echo(1)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.curve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a smoke run (seconds)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    ns = parser.parse_args(argv)
    if ns.quick:
        ns.calls, ns.rounds = min(ns.calls, 200), 1
    work = Path(tempfile.mkdtemp(prefix="th-curve-"))
    services = [Service(work, None), Service(work, make_keys(work / "keys"))]
    lat: dict[str, list[float]] = {s.label: [] for s in services}
    thr: dict[str, list[float]] = {s.label: [] for s in services}
    con: dict[str, list[float]] = {s.label: [] for s in services}
    try:
        for s in services:
            s.wait_ready()
        for r in range(ns.rounds):
            order = services if r % 2 == 0 else services[::-1]
            for s in order:
                lat[s.label] += latency(s, ns.calls)
                thr[s.label].append(throughput(s, ns.calls * 2, ns.depth))
                con[s.label] += connect_ms(s, 5)
    finally:
        for s in services:
            s.stop()
    rows = {}
    for label in ("plain", "curve"):
        rows[label] = {
            "latency_p50_us": round(statistics.median(lat[label]), 1),
            "latency_p99_us": round(_pct(lat[label], 0.99), 1),
            "throughput_calls_per_s": round(statistics.median(thr[label])),
            "connect_first_call_ms": round(statistics.median(con[label]), 2),
        }
    print(f"{'':8} {'p50 µs':>9} {'p99 µs':>9} {'calls/s':>9} {'connect ms':>11}")
    for label, row in rows.items():
        print(f"{label:8} {row['latency_p50_us']:9.1f} {row['latency_p99_us']:9.1f} "
              f"{row['throughput_calls_per_s']:9d} {row['connect_first_call_ms']:11.2f}")
    plain, curve = rows["plain"], rows["curve"]
    ratio = {"latency_p50": round(curve["latency_p50_us"] / plain["latency_p50_us"], 3),
             "throughput": round(curve["throughput_calls_per_s"]
                                 / plain["throughput_calls_per_s"], 3)}
    print(f"curve/plain: latency p50 x{ratio['latency_p50']}, throughput "
          f"x{ratio['throughput']}")
    result = {"calls": ns.calls, "rounds": ns.rounds, "depth": ns.depth, "rows": rows,
              "ratio": ratio, "quick": ns.quick}
    ns.output.parent.mkdir(parents=True, exist_ok=True)
    ns.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
