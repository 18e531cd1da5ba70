"""CURVE keys and ``threadhost`` processes for the security tests (tests/test_security.py,
tests/test_security_conformance.py, tests/test_dashboard_keys.py).

* :func:`make_keys`: key pairs made with ``threadhost keys new`` (the ``keys`` fixture of
  conftest.py makes them once per run: the tests only read them) and the ``--clients``,
  ``--operators`` and ``--hosts-keys`` directories: callers alice, operators olga, hosts
  hostkey; broker is the service's own, eve and rogue are in no directory.
* :func:`run_threadhost` / :func:`start_threadhost`: ``python -m threadhost ...`` run to the
  end, or started with its output in a log file (:class:`Proc`: SIGTERM to stop). Neither
  inherits ``THREADHOST_*`` variables: a developer's keys or runtime directory stay out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import threadhost
from tests.conftest import ROOT

KEY_NAMES = ("broker", "alice", "olga", "eve", "hostkey", "rogue")
DIRECTORIES = {"clients": ("alice",), "operators": ("olga",), "hosts": ("hostkey",)}


def threadhost_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``THREADHOST_*`` variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADHOST_")}
    return {**env, **(extra or {})}


def run_threadhost(*args: str, env: dict[str, str] | None = None, timeout: float = 60
                   ) -> subprocess.CompletedProcess[str]:
    """``python -m threadhost ARGS`` to the end (``env`` added to the environment)."""
    return subprocess.run([sys.executable, "-m", "threadhost", *args], cwd=ROOT,
                          env=threadhost_env(env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@dataclass
class Keys:
    """The key files under ``root``: ``all/NAME.key`` and ``all/NAME.key_secret``, and one
    directory of public keys per role."""

    root: Path

    def public(self, name: str) -> Path:
        return self.root / "all" / f"{name}.key"

    def secret(self, name: str) -> Path:
        return self.root / "all" / f"{name}.key_secret"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    @property
    def operators(self) -> Path:
        return self.root / "operators"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    def server_args(self) -> list[str]:
        return ["--secret-key", str(self.secret("broker")), "--clients", str(self.clients),
                "--operators", str(self.operators)]

    def client(self, endpoint: str, name: str | None, timeout: float = 5.0,
               server: str = "broker") -> threadhost.Client:
        if name is None:
            return threadhost.connect(endpoint, timeout=timeout)
        return threadhost.connect(endpoint, timeout=timeout, server_key=self.public(server),
                                  secret_key=self.secret(name))


def make_keys(root: Path) -> Keys:
    """Every key of :data:`KEY_NAMES` under ``root``, and the role directories."""
    for name in KEY_NAMES:
        done = run_threadhost("keys", "new", name, "--dir", str(root / "all"))
        assert done.returncode == 0, done.stderr
    for folder, names in DIRECTORIES.items():
        (root / folder).mkdir()
        for name in names:
            (root / folder / f"{name}.key").write_bytes((root / "all" / f"{name}.key")
                                                        .read_bytes())
    return Keys(root)


@dataclass
class Proc:
    """A started ``threadhost`` process and its log file."""

    proc: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it is still there 30 s later."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_threadhost(args: Sequence[str], log_path: Path,
                     env: dict[str, str] | None = None) -> Proc:
    """Start ``python -m threadhost ARGS`` (``env`` added), its output in ``log_path``."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "threadhost", *args], cwd=ROOT,
                                env=threadhost_env(env), stdout=log,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    return Proc(proc, log_path)
