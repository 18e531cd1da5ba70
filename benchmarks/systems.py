"""The four systems under test, started and stopped as real processes.

(a) ``threadhost`` — ``python -m threadhost serve examples.mylib_adapter --policy manual``;
(b) ``seed``       — the seed's ``service.py`` + ``mylib_run.py`` (PAIR, string frames);
(c) ``floor``      — a minimal ROUTER/DEALER msgpack broker + worker (two hops, no gate);
(d) ``direct``     — one hop: a ROUTER in the process that calls ``mylib.calc``.

All four drive the same :mod:`examples.mylib`, each with its own ``MYLIB_CONFIG`` file
(``readConfig`` instant at start-up), and all listen on loopback TCP.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent

LABELS = {
    "threadhost": "(a) threadhost",
    "seed": "(b) seed",
    "floor": "(c) floor",
    "direct": "(d) direct",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(path: Path, read_seconds: float) -> None:
    """mylib's configuration: ``readConfig`` takes exactly ``read_seconds``."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        f"offset = 1\nread_min_seconds = {read_seconds}\nread_max_seconds = {read_seconds}\n"
    )
    os.replace(tmp, path)


class System:
    """One system under test: its processes, endpoint and the process whose memory counts."""

    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / "mylib.toml"
        write_config(self.config, 0)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.endpoint = ""
        self.log = self.workdir / "log.txt"

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        # the project root goes after any PYTHONPATH given, so a checkout of threadhost
        # can be measured against this one (cwd is not the root, so it does not shadow it)
        path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        env = {
            **os.environ,
            "MYLIB_CONFIG": str(self.config),
            "PYTHONPATH": os.pathsep.join([*path, str(ROOT)]),
        }
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append(proc)
        return proc

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self, limit: float = 60.0) -> None:
        """Block until the system answers ``calc`` (raise with its log if it never does)."""

    def memory_pid(self) -> int | None:
        """The broker process (whose RSS is measured with idle clients), if any."""
        return None

    def roles(self) -> dict[str, int]:
        """The system's processes by role: ``broker`` (if any) and ``host`` (the process
        that calls mylib), for CPU accounting."""
        return {}

    def rss(self) -> int | None:
        pid = self.memory_pid()
        if pid is None:
            return None
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except psutil.NoSuchProcess:
            return None

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(f"{self.label}: {what}\n--- log ---\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()


def _ping_msgpack(endpoint: str, limit: float) -> bool:
    """One ``[id, "calc", [5]]`` round trip with a fresh DEALER (baselines c and d)."""
    import msgpack
    import zmq

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        try:
            s.connect(endpoint)
            s.send(msgpack.packb([1, "calc", [5]]))
            if s.poll(500):
                return bool(msgpack.unpackb(s.recv()) == [1, 6])
        finally:
            s.close(linger=0)
    return False


class Threadhost(System):
    name = "threadhost"

    def start(self) -> None:
        port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.serve = self._spawn(
            "-m",
            "threadhost",
            "serve",
            "examples.mylib_adapter",
            "--endpoint",
            self.endpoint,
            "--policy",
            "manual",
            "--log-level",
            "WARNING",
            "--maintain-budget",  # maintenances on purpose: no rate limit
            "1",
        )

    def _client(self, timeout: float = 5.0) -> Any:
        import threadhost

        return threadhost.Client(self.endpoint, timeout)

    def state(self) -> str:
        with self._client(2.0) as c:
            return str(c.status()["state"])

    def wait_state(self, state: str, limit: float) -> None:
        import threadhost

        deadline = time.monotonic() + limit
        last: Any = None
        while time.monotonic() < deadline:
            if self.serve.poll() is not None:
                raise self._fail(f"serve exited with code {self.serve.returncode}")
            try:
                last = self.state()
                if last == state:
                    return
            except threadhost.ThreadhostError as exc:
                last = exc
            time.sleep(0.05)
        raise self._fail(f"never reached state {state!r} (last: {last})")

    def wait_ready(self, limit: float = 60.0) -> None:
        self.wait_state("ready", limit)

    def memory_pid(self) -> int | None:
        return self.serve.pid  # the serve process is the broker; the host is its child

    def roles(self) -> dict[str, int]:
        out = {"broker": self.serve.pid}
        host = self.host_pid()
        if host is not None:
            out["host"] = host
        return out

    def host_pid(self) -> int | None:
        kids = psutil.Process(self.serve.pid).children()
        return kids[0].pid if kids else None

    def begin_slow(self, seconds: float) -> None:
        """Start a ``readConfig`` that takes ``seconds`` (the gate answers busy meanwhile)."""
        write_config(self.config, seconds)
        with self._client() as c:
            reply = c.maintain()
        if not reply.started:
            raise self._fail(f"maintain did not start: {reply.reason}")

    def end_slow(self, limit: float = 60.0) -> None:
        write_config(self.config, 0)
        self.wait_ready(limit)


class Seed(System):
    name = "seed"
    idle_timeout = 0.5  # the seed's is 10 s; shorter so its busy window can be measured

    def start(self) -> None:
        client_port, lib_port = free_port(), free_port()
        self.endpoint = f"tcp://127.0.0.1:{client_port}"
        self.service = self._spawn(
            "-m",
            "benchmarks.seed.service",
            "--client-port",
            str(client_port),
            "--lib-port",
            str(lib_port),
        )
        time.sleep(0.3)  # the service's PAIR must be bound before mylib_run connects
        self.lib = self._spawn(
            "-m",
            "benchmarks.seed.mylib_run",
            "--lib-port",
            str(lib_port),
            "--idle-timeout",
            str(self.idle_timeout),
        )

    def wait_ready(self, limit: float = 60.0) -> None:
        # PAIR takes one peer, so the orchestrator cannot probe it: the benchmark's seed
        # client (one worker) says INIT and calls; here we only wait for both processes.
        time.sleep(0.2)
        if not self.alive():
            raise self._fail("exited during start-up")

    def memory_pid(self) -> int | None:
        return self.service.pid

    def roles(self) -> dict[str, int]:
        return {"broker": self.service.pid, "host": self.lib.pid}

    def begin_slow(self, seconds: float) -> float:
        """Arrange a ``readConfig`` of ``seconds``: it starts at the next idle ``TIMEOUT``.
        Returns the wall time by which it has surely started (if the client stays idle)."""
        write_config(self.config, seconds)
        return time.time() + self.idle_timeout + 0.2

    def end_slow(self) -> None:
        write_config(self.config, 0)


class Floor(System):
    name = "floor"

    def start(self) -> None:
        port, back = free_port(), free_port()
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.broker = self._spawn(
            "-m",
            "benchmarks.floor",
            "broker",
            "--front",
            self.endpoint,
            "--back",
            f"tcp://127.0.0.1:{back}",
        )
        self.worker = self._spawn(
            "-m", "benchmarks.floor", "worker", "--connect", f"tcp://127.0.0.1:{back}"
        )

    def wait_ready(self, limit: float = 60.0) -> None:
        if not _ping_msgpack(self.endpoint, limit):
            raise self._fail("never answered calc")

    def memory_pid(self) -> int | None:
        return self.broker.pid

    def roles(self) -> dict[str, int]:
        return {"broker": self.broker.pid, "host": self.worker.pid}


class Direct(System):
    name = "direct"

    def start(self) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.server = self._spawn("-m", "benchmarks.floor", "direct", "--bind", self.endpoint)

    def wait_ready(self, limit: float = 60.0) -> None:
        if not _ping_msgpack(self.endpoint, limit):
            raise self._fail("never answered calc")

    def memory_pid(self) -> int | None:
        return self.server.pid  # no broker: the server itself

    def roles(self) -> dict[str, int]:
        return {"host": self.server.pid}


CLASSES: dict[str, type[System]] = {
    "threadhost": Threadhost,
    "seed": Seed,
    "floor": Floor,
    "direct": Direct,
}


def start_all(names: list[str], workdir: Path, init_seed: Any) -> dict[str, System]:
    """Start ``names`` and wait until each answers. The seed goes last, followed at once by
    ``init_seed(seed)`` (its client's ``INIT``): its ``mylib_run`` runs ``readConfig`` at
    the first idle timeout, and mylib aborts if that comes before ``init``."""
    systems: dict[str, System] = {}
    try:
        for name in [n for n in names if n != "seed"]:
            s = CLASSES[name](workdir)
            s.start()
            systems[name] = s
        for s in systems.values():
            s.wait_ready()
        if "seed" in names:
            seed = systems["seed"] = CLASSES["seed"](workdir)
            seed.start()
            seed.wait_ready()
            init_seed(seed)
    except BaseException:
        for s in systems.values():
            with contextlib.suppress(Exception):
                s.stop()
        raise
    return systems
