"""Shared fixtures: free endpoints and real `threadhost serve` processes that are always
stopped (and checked for orphans) at teardown."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import threadhost
from threadhost.testing import ThreadhostService

if TYPE_CHECKING:
    from tests.keys_helpers import Keys

ROOT = Path(__file__).resolve().parent.parent


def free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def write_mylib_config(path: Path, offset: int = 1, read_min: float = 0.0,
                       read_max: float = 0.0) -> Path:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        f"offset = {offset}\nread_min_seconds = {read_min}\nread_max_seconds = {read_max}\n"
    )
    os.replace(tmp, path)  # atomic, like an editor's save
    return path


@dataclass
class Service:
    endpoint: str
    proc: subprocess.Popen[str]
    config: Path
    log_path: Path
    clients: list[threadhost.Client] = field(default_factory=list)

    def client(self, timeout: float = 5.0) -> threadhost.Client:
        c = threadhost.connect(self.endpoint, timeout=timeout)
        self.clients.append(c)
        return c

    def status(self) -> dict[str, Any]:
        with threadhost.connect(self.endpoint, timeout=2.0) as c:
            return threadhost.Client.status(c)  # the service's, whatever the adapter calls

    def wait_state(self, state: str = "ready", limit: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                last = self.status()
                if last["state"] == state:
                    return last  # type: ignore[no-any-return]
            except threadhost.ThreadhostError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"service never reached {state!r}; last status: {last}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def host_pids(self) -> list[int]:
        return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def start_service(
    tmp_path: Path,
    *args: str,
    target: str = "examples.mylib_adapter",
    policy: str | None = "manual",
    offset: int = 1,
    read_min: float = 0.0,
    read_max: float = 0.0,
    env: dict[str, str] | None = None,
) -> Service:
    config = write_mylib_config(tmp_path / "mylib.toml", offset, read_min, read_max)
    endpoint = free_endpoint()
    log_path = tmp_path / f"serve-{endpoint.rsplit(':', 1)[1]}.log"
    cmd = [sys.executable, "-m", "threadhost", "serve", target, "--endpoint", endpoint, *args]
    if policy is not None:
        cmd += ["--policy", policy]
    full_env = {**os.environ, "MYLIB_CONFIG": str(config), **(env or {})}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                text=True, stdin=subprocess.DEVNULL)
    return Service(endpoint, proc, config, log_path)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Service] = []

    def factory(*args: str, **kw: Any) -> Service:
        svc = start_service(tmp_path, *args, **kw)
        started.append(svc)
        return svc

    yield factory
    for svc in started:
        children = []
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(svc.proc.pid).children(recursive=True)
        try:
            svc.stop(timeout=30)
        except subprocess.TimeoutExpired:
            svc.proc.kill()
            svc.proc.wait(10)
        for child in children:  # never leave a host behind, even when a test failed
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


@pytest.fixture
def mylib_service(service_factory: Any) -> Service:
    svc: Service = service_factory()
    svc.wait_state("ready")
    return svc


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """CURVE keys made with ``threadhost keys new`` (tests/keys_helpers.py), once per run:
    the tests only read them."""
    from tests.keys_helpers import make_keys

    return make_keys(tmp_path_factory.mktemp("keys"))


# ------------------------------------------------------------------ the pytest plugin's fixture

MYLIB = "examples.mylib_adapter"


def mylib_env(config: Path, offset: int = 1, read_min: float = 0.0,
              read_max: float = 0.0) -> dict[str, str]:
    """Write mylib's config file at ``config``; the environment that points mylib at it."""
    return {"MYLIB_CONFIG": str(write_mylib_config(config, offset, read_min, read_max))}


@pytest.fixture
def serve_mylib(threadhost_service: Callable[..., ThreadhostService],
                tmp_path: Path) -> Callable[..., ThreadhostService]:
    """The pytest plugin's ``threadhost_service`` (threadhost.testing) serving ``target``
    (default mylib) with a mylib config file (``config``, default ``tmp_path/mylib.toml``,
    written from ``offset``, ``read_min``, ``read_max``); other keywords go to the plugin's
    factory (``policy``, ``args``, ``env``, ``ready``...). Returns the service, ready."""

    def serve(*args: str, target: str = MYLIB, config: Path | None = None, offset: int = 1,
              read_min: float = 0.0, read_max: float = 0.0, env: dict[str, str] | None = None,
              **kw: Any) -> ThreadhostService:
        path = config if config is not None else tmp_path / "mylib.toml"
        full_env = {**mylib_env(path, offset, read_min, read_max), **(env or {})}
        return threadhost_service(target, env=full_env, args=args, cwd=ROOT, **kw)

    return serve
