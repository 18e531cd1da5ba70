"""A ROUTER playing the broker for real host processes (``python -m threadhost.host``):
tests/test_verify.py and tests/test_single_instance.py."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from tests.conftest import ROOT
from threadhost.protocol import Call, ErrorReply, Heartbeat, Result, decode, encode

SLACK = 10.0  # wait at most this long for something that should come
INTERVAL = 0.1  # the hosts' heartbeat interval


@dataclass
class FakeBroker:
    """One ROUTER and the host process connected to it; remembers what the host sent."""

    sock: zmq.Socket[bytes]
    proc: subprocess.Popen[bytes]
    log: Path
    host_id: str
    got: list[tuple[float, str, Any]] = field(default_factory=list)  # (time, routing id, msg)
    next_id: int = 1

    def pump(self, timeout: float) -> None:
        if self.sock.poll(int(timeout * 1000)):
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                self.got.append((time.monotonic(), frames[0].decode(), decode(frames[1:])))

    def first(self, pred: Callable[[Any], bool], timeout: float = SLACK,
              ident: str | None = None) -> Any:
        """The first message (from the call socket, or ``ident``) matching ``pred``,
        removed from ``got``."""
        ident = self.host_id if ident is None else ident
        deadline = time.monotonic() + timeout
        while True:
            for i, (_, who, msg) in enumerate(self.got):
                if who == ident and pred(msg):
                    del self.got[i]
                    return msg
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing matching arrived from {ident!r}; got "
                                     f"{[m for _, _, m in self.got][-5:]}\n{self.log_text()}")
            self.pump(0.05)

    def beats(self) -> list[Heartbeat]:
        return [m for _, who, m in self.got
                if who == f"{self.host_id}/hb" and isinstance(m, Heartbeat)]

    def call(self, method: str, *args: Any) -> Any:
        rid, self.next_id = self.next_id, self.next_id + 1
        self.send(Call(id=rid, method=method, args=list(args)))
        return self.first(lambda m: isinstance(m, Result | ErrorReply) and m.id == rid)

    def send(self, msg: Any) -> None:
        self.sock.send_multipart([self.host_id.encode(), *encode(msg)])

    def log_text(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""


@contextlib.contextmanager
def fake_brokers(tmp_path: Path, host_id: str) -> Iterator[Callable[..., FakeBroker]]:
    """``start(target, *args, env={})``: a fake broker and a host process for it; all are
    stopped (hosts killed) on exit."""
    ctx = zmq.Context()
    started: list[FakeBroker] = []

    def start(target: str, *args: str, env: dict[str, str] | None = None) -> FakeBroker:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*")
        endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log = tmp_path / f"host{len(started)}.log"
        full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "threadhost.host", target, "--connect", endpoint,
                 "--host-id", host_id, "--heartbeat", str(INTERVAL), *args],
                cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        fb = FakeBroker(sock, proc, log, host_id)
        started.append(fb)
        return fb

    try:
        yield start
    finally:
        for fb in started:
            if fb.proc.poll() is None:
                fb.proc.kill()
            fb.proc.wait(10)
            fb.sock.close(linger=0)
        ctx.term()
