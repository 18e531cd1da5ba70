"""Is an attached host adopted again when its broker is killed right after adopting it?

    .venv/bin/python interop/restart_race.py [--host python|node] [--runs 6]

Each run: ``threadhost broker`` (attach mode), a host attached to it (threadhost's own
``threadhost host tests.interop_node_adapter``, or the Node.js host); as soon as the broker
serves, it is SIGKILLed and a new broker starts on the same endpoints at once. The run
prints whether the new broker serves the same host within 10 s.

A broker killed before its first heartbeat to the host leaves it neither a new token nor a
silence to go by: the new broker's heartbeats are the first the host ever hears, soon after
its ``ready``, all with one token. Only the ``stranger`` mark of the new broker's answer to
a host it has not adopted makes the host send ``ready`` again (docs/protocol.md §12, R51,
R52; docs/interop.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import threadhost
from threadhost.errors import TryLaterError

ROOT = Path(__file__).resolve().parent.parent


def _free() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _serving(client: threadhost.Client, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.status()["state"] == "ready":
                return True
        except TryLaterError:
            pass
        time.sleep(0.05)
    return False


def run_once(host: str) -> bool:
    ep, bep = _free(), _free()

    def broker() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "threadhost", "broker", "--endpoint", ep,
                                 "--backend", bep, "--log-level", "ERROR"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    if host == "node":
        node = shutil.which("node")
        assert node is not None, "node is not installed"
        cmd = [node, "interop/node-host/host.js", "--connect", bep]
    else:
        cmd = [sys.executable, "-m", "threadhost", "host", "tests.interop_node_adapter",
               "--connect", bep]
    first = broker()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RELOAD_SECONDS": "0.2"})
    second: subprocess.Popen[bytes] | None = None
    try:
        with threadhost.connect(ep, timeout=5.0) as client:
            if not _serving(client, 30):
                raise RuntimeError("the first broker never served the host")
        first.kill()
        first.wait()
        second = broker()
        with threadhost.connect(ep, timeout=5.0) as client:
            return _serving(client, 10)
    finally:
        for p in (first, second, proc):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in (second, proc):
            if p is not None:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", choices=["python", "node"], default="python")
    parser.add_argument("--runs", type=int, default=6)
    ns = parser.parse_args()
    adopted = [run_once(ns.host) for _ in range(ns.runs)]
    print(f"{ns.host} host: adopted again by the new broker in {sum(adopted)} of "
          f"{len(adopted)} runs")


if __name__ == "__main__":
    main()
