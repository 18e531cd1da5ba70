"""The seed's walkthrough, scripted: serve mylib, call calc, watch it fail fast during
readConfig and succeed after, change the configuration, stop cleanly.

Run with ``make demo`` (or ``python examples/demo.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import threadhost


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def wait_ready(lib: threadhost.Client, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if lib.status(timeout=1.0)["state"] == "ready":
                return
        except threadhost.ThreadhostError:
            pass
        time.sleep(0.1)
    raise SystemExit("demo: the service did not become ready")


def say(text: str) -> None:
    print(f"demo | {text}", flush=True)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="threadhost-demo-"))
    config = tmp / "mylib.toml"
    config.write_text("offset = 1\nread_min_seconds = 3\nread_max_seconds = 3\n")
    endpoint = free_endpoint()
    env = {**os.environ, "MYLIB_CONFIG": str(config)}
    cmd = [sys.executable, "-m", "threadhost", "serve", "--example", "mylib",
           "--endpoint", endpoint, "--policy", "manual", "--log-level", "WARNING"]
    say("$ MYLIB_CONFIG=" + str(config) + " " + " ".join(["threadhost", *cmd[3:]]))
    server = subprocess.Popen(cmd, cwd=root, env=env)
    try:
        with threadhost.connect(endpoint, timeout=5.0) as lib:
            say("waiting for start-up (mylib.init + readConfig, 3 s)...")
            wait_ready(lib)
            say(f"lib.calc(5) -> {lib.calc(5)}")

            say("asking for a readConfig now (as the idle/stale policy would)")
            say(f"maintain -> {lib.maintain().reason}")
            t_end = time.monotonic() + 6.0
            busy = 0
            while time.monotonic() < t_end:
                t0 = time.perf_counter()
                try:
                    value = lib.calc(5)
                except threadhost.BusyError as exc:
                    busy += 1
                    ms = (time.perf_counter() - t0) * 1000
                    if busy <= 3 or busy % 10 == 0:
                        say(f"lib.calc(5) -> BusyError in {ms:.2f} ms "
                            f"(retry_after={exc.retry_after})")
                    time.sleep(0.1)
                    continue
                say(f"lib.calc(5) -> {value} (readConfig finished; {busy} calls were refused "
                    f"at once meanwhile)")
                break

            say("editing the config: offset = 100, then readConfig again")
            config.write_text("offset = 100\nread_min_seconds = 1\nread_max_seconds = 1\n")
            reply = lib.maintain()
            if not reply.started:  # manual maintenance is rate-limited (docs/reliability.md)
                say(f"maintain -> not started: {reply.reason}")
            while not reply.started:
                time.sleep(0.25)
                reply = lib.maintain()
            say(f"maintain -> {reply.reason}")
            while True:
                try:
                    say(f"lib.calc(5) -> {lib.calc(5)}")
                    break
                except threadhost.BusyError as exc:
                    time.sleep(exc.retry_after or 0.2)
            status = lib.status()
            say(f"status: state={status['state']} generation={status['generation']} "
                f"served={status['counters']['served']} "
                f"rejected_busy={status['counters']['rejected_busy']}")
    finally:
        say("stopping the service with SIGTERM")
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
        say(f"threadhost serve exited with code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
