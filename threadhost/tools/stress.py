"""Stress tools: load accounting and frame fuzzing against a running service.

``python -m threadhost.tools.stress load`` runs N client processes x M calls against a service
(its own ``threadhost serve examples.mylib_adapter`` unless ``--endpoint`` is given) while it
triggers maintenances and kills the host, then prints how every call ended: each call must
get exactly one answer (a correct result or a typed error), none lost, none duplicated,
none later than its deadline.

``python -m threadhost.tools.stress fuzz`` throws random and malformed frames at the broker's
client-facing socket (and, with ``--backend``, its host-facing socket), then checks that the
service still answers correctly and that the broker's memory stayed flat.

Both print a table and a JSON line; both exit non-zero when an invariant is violated.
See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import zmq

import threadhost
from threadhost import transport
from threadhost.protocol import HEADER, Call, encode

__all__ = ["FuzzReport", "LoadReport", "ManagedService", "fuzz_frames", "run_fuzz", "run_load"]


# --------------------------------------------------------------------------- a service to hit


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class ManagedService:
    """``threadhost serve examples.mylib_adapter`` in a subprocess, for the stress runs."""

    def __init__(self, policy: str = "manual", read_seconds: float = 0.05,
                 extra: tuple[str, ...] = ()) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="threadhost-stress-"))
        self.config = self.dir / "mylib.toml"
        self.config.write_text(
            f"offset = 1\nread_min_seconds = {read_seconds}\nread_max_seconds = {read_seconds}\n"
        )
        self.endpoint = _free_endpoint()
        self.log = open(self.dir / "serve.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "threadhost", "serve", "examples.mylib_adapter",
             "--endpoint", self.endpoint, "--policy", policy, "--log-level", "WARNING",
             "--maintain-budget", "1", *extra],  # maintenances on purpose: no rate limit
            env={**os.environ, "MYLIB_CONFIG": str(self.config)},
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        with threadhost.connect(self.endpoint, timeout=1.0) as c:
            while True:
                try:
                    if c.status()["state"] == "ready":
                        break
                except threadhost.ThreadhostError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"service did not start; see {self.dir / 'serve.log'}")
                time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self.log.close()
        return code


def _status(endpoint: str) -> dict[str, Any]:
    with threadhost.connect(endpoint, timeout=2.0) as c:
        return c.status()


# --------------------------------------------------------------------------- load accounting


@dataclass
class LoadReport:
    clients: int
    calls_per_client: int
    issued: int = 0
    answered: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    wrong_results: int = 0
    late_or_duplicate_replies: int = 0
    timeouts: int = 0
    over_deadline: int = 0
    max_latency: float = 0.0
    maintenances: int = 0
    crashes_injected: int = 0
    restarts: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every call got exactly one answer, correct or typed, in time; none lost."""
        return (
            self.answered == self.issued
            and self.wrong_results == 0
            and self.over_deadline == 0
            and self.timeouts == 0
            and self.late_or_duplicate_replies == 0
        )

    def table(self) -> str:
        rows = [
            ("calls issued", self.issued),
            ("calls answered exactly once", self.answered),
            *((f"  {k}", v) for k, v in sorted(self.outcomes.items())),
            ("wrong results", self.wrong_results),
            ("lost (timed out)", self.timeouts),
            ("late or duplicate replies", self.late_or_duplicate_replies),
            ("answered after the deadline", self.over_deadline),
            ("max latency (s)", f"{self.max_latency:.3f}"),
            ("maintenances started", self.maintenances),
            ("host crashes injected", self.crashes_injected),
            ("host restarts seen", self.restarts),
            ("wall time (s)", f"{self.seconds:.1f}"),
            ("verdict", "OK" if self.ok else "VIOLATION"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _load_worker(endpoint: str, wid: int, calls: int, timeout: float, offset: int,
                 out: Any) -> None:
    counts: Counter[str] = Counter()
    wrong = over = 0
    max_lat = 0.0
    with threadhost.connect(endpoint, timeout=timeout) as lib:
        for i in range(calls):
            x = wid * 10_000_000 + i
            t0 = time.monotonic()
            try:
                value = lib.calc(x)
                outcome = "ok"
                if value != x + offset:
                    wrong += 1
            except threadhost.ThreadhostError as exc:
                outcome = type(exc).__name__
                if isinstance(exc, threadhost.TryLaterError):
                    time.sleep(min(exc.retry_after or 0.01, 0.02))
            lat = time.monotonic() - t0
            max_lat = max(max_lat, lat)
            if lat > timeout + 0.25:
                over += 1
            counts[outcome] += 1
        late = lib.late_replies
    out.put({"counts": dict(counts), "wrong": wrong, "over": over, "max": max_lat,
             "late": late})


def run_load(
    endpoint: str,
    clients: int = 4,
    calls: int = 200,
    *,
    timeout: float = 5.0,
    maintain_every: float | None = 0.5,
    crash_every: float | None = 2.0,
    offset: int = 1,
) -> LoadReport:
    """Run ``clients`` processes x ``calls`` calc calls while injecting maintenances and host
    crashes; account for every call."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    report = LoadReport(clients, calls, issued=clients * calls)
    before = _status(endpoint)
    procs = [ctx.Process(target=_load_worker, args=(endpoint, w, calls, timeout, offset, out))
             for w in range(clients)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    next_maint = t0 + (maintain_every or 0)
    next_crash = t0 + (crash_every or 0)
    results: list[dict[str, Any]] = []
    with threadhost.connect(endpoint, timeout=2.0) as ctl:
        while len(results) < clients:
            now = time.monotonic()
            if maintain_every and now >= next_maint:
                next_maint = now + maintain_every
                with contextlib.suppress(threadhost.ThreadhostError):
                    report.maintenances += ctl.maintain().started
            if crash_every and now >= next_crash:
                next_crash = now + crash_every
                try:
                    pid = ctl.status().get("host_pid")
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                        report.crashes_injected += 1
                except (threadhost.ThreadhostError, ProcessLookupError):
                    pass
            try:
                results.append(out.get(timeout=0.05))
            except Exception:
                if not any(p.is_alive() for p in procs) and out.empty():
                    break
    for p in procs:
        p.join(30)
    report.seconds = time.monotonic() - t0
    totals: Counter[str] = Counter()
    for r in results:
        totals.update(r["counts"])
        report.wrong_results += r["wrong"]
        report.over_deadline += r["over"]
        report.max_latency = max(report.max_latency, r["max"])
        report.late_or_duplicate_replies += r["late"]
    report.outcomes = dict(totals)
    report.answered = sum(totals.values()) - totals.get("CallTimeoutError", 0)
    report.timeouts = totals.get("CallTimeoutError", 0)
    # a timed-out call may still be answered later: that late reply is expected, not a dup
    report.late_or_duplicate_replies = max(0, report.late_or_duplicate_replies - report.timeouts)
    after = _status(endpoint)
    report.restarts = after["restart_count"] - before["restart_count"]
    return report


# --------------------------------------------------------------------------- fuzzing


def fuzz_frames(rng: random.Random, max_size: int = 1 << 20) -> list[bytes]:
    """One random message: garbage, near-misses of valid messages, and oversized bodies."""
    choice = rng.randrange(10)
    if choice == 0:  # random frames
        return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(0, 5))]
    if choice == 1:  # wrong version or signature
        return [rng.choice([b"TH\x02", b"TH\x00", b"XX\x01", b"TH", b""]),
                msgpack.packb({"kind": "call", "id": 1, "method": "calc", "args": [1]})]
    if choice == 2:  # valid header, random msgpack value
        value = rng.choice([None, 1, -1, 2**63, "x", b"\x00", [1, 2], {"kind": 5},
                            {"kind": "call"}, {"kind": "result", "id": 1}, 1.5, True])
        return [HEADER, msgpack.packb(value)]
    if choice == 3:  # valid header, truncated body
        body = msgpack.packb({"kind": "call", "id": 3, "method": "calc", "args": [1]})
        return [HEADER, body[: rng.randrange(1, len(body))]]
    if choice == 4:  # calls with wrong argument types or counts
        args: list[Any] = rng.choice([[], ["5"], [True], [1.5], [1, 2], [None], [[1]], [{"x": 1}]])
        return encode(Call(id=rng.randrange(2**32), method="calc", args=args))
    if choice == 5:  # private, lifecycle and unknown names
        name = rng.choice(["setup", "teardown", "__class__", "_x", "read_config", "nope",
                           "__init__", "calc\x00", ""])
        return encode(Call(id=rng.randrange(2**32), method=name))
    if choice == 6:  # messages only hosts may send, sent by a client
        return [HEADER, msgpack.packb({"kind": rng.choice(["ready", "heartbeat", "goodbye",
                                                             "result", "shutdown"]),
                                         "id": 1, "host_id": "h1"})]
    if choice == 7 and rng.random() < 0.02:  # oversized (rarely: they cost 1 MiB each)
        return [HEADER, b"\x00" * (max_size + 1)]
    if choice == 8:  # extra frames around a valid message
        return [*encode(Call(id=9, method="calc", args=[1])), rng.randbytes(4)]
    return [HEADER, rng.randbytes(rng.randrange(0, 256))]


@dataclass
class FuzzReport:
    frames_sent: int = 0
    replies: int = 0
    rss_start_mb: float = 0.0
    rss_mid_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_samples_mb: list[float] = field(default_factory=list)
    still_serving: bool = False
    restarts: int = 0
    seconds: float = 0.0

    @property
    def growth_mb(self) -> float:
        """Peak RSS of the second half of the run minus that of the first half (each sample
        taken after the broker drained its queues): a leak shows as steady growth."""
        s = self.rss_samples_mb
        if len(s) < 2:
            return 0.0
        half = len(s) // 2
        return max(s[half:]) - max(s[:half])

    @property
    def ok(self) -> bool:
        return self.still_serving and self.restarts == 0 and self.growth_mb < 8.0

    def table(self) -> str:
        rows = [
            ("messages sent", self.frames_sent),
            ("error replies received", self.replies),
            ("broker RSS start / mid / end (MB)",
             f"{self.rss_start_mb:.1f} / {self.rss_mid_mb:.1f} / {self.rss_end_mb:.1f}"),
            ("RSS after each tenth (MB)", " ".join(f"{x:.0f}" for x in self.rss_samples_mb)),
            ("growth, 2nd half vs 1st (MB)", f"{self.growth_mb:.1f}"),
            ("service still serving calc", self.still_serving),
            ("host restarts", self.restarts),
            ("wall time (s)", f"{self.seconds:.1f}"),
            ("verdict", "OK" if self.ok else "VIOLATION"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _psutil() -> Any:
    """psutil, which only these tools need (``pip install 'threadhost[stress]'``)."""
    try:
        import psutil
    except ImportError:
        raise SystemExit("threadhost.tools.stress needs psutil: pip install 'threadhost[stress]'"
                         ) from None
    return psutil


def _rss_mb(pid: int) -> float:
    return float(_psutil().Process(pid).memory_info().rss) / 1e6


def run_fuzz(endpoint: str, frames: int = 2000, *, seed: int = 0, sockets: int = 4,
             backend: str | None = None) -> FuzzReport:
    """Send ``frames`` random messages to ``endpoint`` (and ``backend``), then verify."""
    rng = random.Random(seed)
    before = _status(endpoint)
    broker_pid = int(before["broker_pid"])
    report = FuzzReport(rss_start_mb=_rss_mb(broker_pid))
    ctx = zmq.Context()
    socks = [transport.probe_dealer(ctx, endpoint, immediate=False, sndhwm=0)
             for _ in range(sockets)]
    back = None
    if backend is not None:
        back = transport.probe_dealer(ctx, backend, "fuzzer", immediate=False)
    t0 = time.monotonic()

    def drain(quiet: float) -> None:
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            got = False
            for s2 in socks:
                while s2.poll(0):
                    s2.recv_multipart()
                    report.replies += 1
                    got = True
            if got:
                last = time.monotonic()
            else:
                time.sleep(0.01)

    tenth = max(1, frames // 10)
    try:
        for n in range(frames):
            msg = fuzz_frames(rng)
            if not msg:
                msg = [b""]
            s = socks[n % sockets]
            s.send_multipart(msg)
            if back is not None and n % 4 == 0:
                back.send_multipart(fuzz_frames(rng) or [b""])
            if n % 64 == 0:
                for s2 in socks:
                    while s2.poll(0):
                        s2.recv_multipart()
                        report.replies += 1
            if (n + 1) % tenth == 0:
                drain(0.2)
                report.rss_samples_mb.append(round(_rss_mb(broker_pid), 2))
            if n == frames // 2:
                report.rss_mid_mb = _rss_mb(broker_pid)
        drain(0.5)
    finally:
        for s in socks:
            s.close(0)
        if back is not None:
            back.close(0)
        ctx.term()
    report.frames_sent = frames
    report.seconds = time.monotonic() - t0
    with threadhost.connect(endpoint, timeout=5.0) as lib:
        report.still_serving = all(lib.calc(i) == i + 1 for i in range(10))
    report.rss_end_mb = _rss_mb(broker_pid)
    if not report.rss_mid_mb:
        report.rss_mid_mb = report.rss_start_mb
    report.restarts = _status(endpoint)["restart_count"] - before["restart_count"]
    return report


def backend_of(endpoint: str) -> str | None:
    """The private back-end endpoint of a local service (read from its host's command line)."""
    pid = _status(endpoint).get("host_pid")
    if not pid:
        return None
    cmd = _psutil().Process(pid).cmdline()
    return cmd[cmd.index("--connect") + 1] if "--connect" in cmd else None


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m threadhost.tools.stress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_load = sub.add_parser("load", help="N clients x M calls with maintenances and crashes")
    p_load.add_argument("--endpoint", help="a running mylib service (default: start one)")
    p_load.add_argument("--clients", type=int, default=50)
    p_load.add_argument("--calls", type=int, default=2000)
    p_load.add_argument("--timeout", type=float, default=5.0)
    p_load.add_argument("--maintain-every", type=float, default=1.0)
    p_load.add_argument("--crash-every", type=float, default=5.0)
    p_fuzz = sub.add_parser("fuzz", help="random frames at the broker's sockets")
    p_fuzz.add_argument("--endpoint", help="a running mylib service (default: start one)")
    p_fuzz.add_argument("--frames", type=int, default=100_000)
    p_fuzz.add_argument("--seed", type=int, default=0)
    p_fuzz.add_argument("--no-backend", action="store_true",
                        help="do not fuzz the host-facing socket")
    ns = parser.parse_args(argv)
    svc = None
    endpoint = ns.endpoint
    if endpoint is None:
        svc = ManagedService(extra=("--restart-limit", "1000") if ns.cmd == "load" else ())
        endpoint = svc.endpoint
    try:
        report: LoadReport | FuzzReport
        if ns.cmd == "load":
            report = run_load(endpoint, ns.clients, ns.calls, timeout=ns.timeout,
                              maintain_every=ns.maintain_every or None,
                              crash_every=ns.crash_every or None)
        else:
            backend = None if ns.no_backend else backend_of(endpoint)
            report = run_fuzz(endpoint, ns.frames, seed=ns.seed, backend=backend)
        print(report.table())
        print(json.dumps({"kind": ns.cmd, "ok": report.ok, **asdict(report)}))
        return 0 if report.ok else 1
    finally:
        if svc is not None:
            svc.stop()


if __name__ == "__main__":
    sys.exit(main())
