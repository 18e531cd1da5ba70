"""Sequential call latency through ``threadhost broker``: the Node.js host against
threadhost's own host serving the Python twin of the same library, side by side in one run.

    .venv/bin/python interop/measure.py [--calls 3000] [--rounds 3]

Prints p50/p99 of ``calc(41)`` round trips (client -> broker -> host -> broker -> client),
per host, best round of each. Informative only: docs/interop.md quotes it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import threadhost
from threadhost.errors import TryLaterError

ROOT = Path(__file__).resolve().parent.parent


def _free() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@contextlib.contextmanager
def _served(host_cmd: list[str]) -> Iterator[str]:
    ep, bep = _free(), _free()
    env = {**os.environ, "RELOAD_SECONDS": "0.1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "threadhost", "broker", "--endpoint", ep,
                          "--backend", bep, "--log-level", "ERROR"], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([part.replace("{endpoint}", bep) for part in host_cmd], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        yield ep
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def _round(ep: str, calls: int) -> list[float]:
    with threadhost.connect(ep, timeout=5.0) as client:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.calc(1)
                break
            except TryLaterError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for _ in range(200):  # warm up
            client.calc(41)
        out = []
        for _ in range(calls):
            t0 = time.perf_counter()
            client.calc(41)
            out.append(time.perf_counter() - t0)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()
    node = shutil.which("node")
    hosts = {"python (threadhost host)": [sys.executable, "-m", "threadhost", "host",
                                          "tests.interop_node_adapter", "--connect",
                                          "{endpoint}"]}
    if node:
        hosts["node (interop/node-host)"] = [node, "interop/node-host/host.js", "--connect",
                                             "{endpoint}"]
    best: dict[str, tuple[float, float]] = {}
    for _ in range(ns.rounds):
        for name, cmd in hosts.items():  # interleaved: both see the same machine load
            with _served(cmd) as ep:
                lat = sorted(_round(ep, ns.calls))
            p50 = statistics.median(lat) * 1e6
            p99 = lat[int(0.99 * len(lat))] * 1e6
            if name not in best or p50 < best[name][0]:
                best[name] = (p50, p99)
    for name, (p50, p99) in best.items():
        print(f"{name:28} p50 {p50:7.1f} us   p99 {p99:7.1f} us")


if __name__ == "__main__":
    main()
