"""A host listens for broker heartbeats and re-announces itself to a new broker (R51).

No real broker here: a ROUTER bound in the test plays it, and a real host process
(``python -m threadhost.host ... --connect EP --host-id X``) is started against it and
killed at teardown. Rules under test (docs/protocol.md §12, ``threadhost/host.py``):

(a) the host's first ``ready`` arrives on the call socket ``X``;
(b) a broker heartbeat (token A) soon after that ``ready`` is not answered;
(c) a heartbeat with another token B makes the host send ``ready`` again, on its call
    socket ``X`` (so that it travels the connection the broker's start-up calls take back),
    the same message (host id, pid, description, fingerprint); B again is not answered;
(d) after a silence longer than the broker timeout the host warns once ("broker gone"),
    keeps running, and the next heartbeat — even with the *same* token — gets ``ready``
    again (a broker restarted quickly cannot be told apart otherwise);
(e) nothing is re-announced while the host is still in ``setup``;
(f) a broker killed before its first heartbeat to the host, replaced at once on the same
    endpoint: the new one answers the host's heartbeats marked ``stranger`` and the host
    sends ``ready`` again at once — though those are the first broker heartbeats it ever
    hears, soon after its ``ready``, all with one token — and serves the new broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.conftest import ROOT
from threadhost.protocol import Call, Heartbeat, Ready, Result, decode, encode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HOST_ID = "X"
INTERVAL = 0.1  # the host's heartbeat interval in these tests
BROKER_TIMEOUT = 1.5  # the host's --broker-timeout: generous against scheduling hiccups
SLACK = 5.0  # wait at most this long for something that should come


@dataclass
class FakeBroker:
    """A ROUTER playing the broker; remembers what the host sent, by socket."""

    sock: zmq.Socket[bytes]
    endpoint: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    got: list[tuple[float, str, Any]] = field(default_factory=list)  # (time, routing id, msg)

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if not self.sock.poll(max(0, int(left * 1000))):
                return
            while True:
                try:
                    frames = self.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.got.append((time.monotonic(), frames[0].decode(), decode(frames[1:])))
            if time.monotonic() >= deadline:
                return

    def wait_for(self, pred: Callable[[str, Any], bool], timeout: float = SLACK,
                 after: float = 0.0, beat: str | None = None) -> tuple[str, Any] | None:
        """The first message since ``after`` matching ``pred``; beats with token ``beat``
        every interval meanwhile (a live broker keeps beating)."""
        deadline = time.monotonic() + timeout
        while True:
            for at, ident, msg in self.got:
                if at >= after and pred(ident, msg):
                    return ident, msg
            if time.monotonic() >= deadline:
                return None
            if beat is not None:
                self.beat(beat)
            self.pump(min(INTERVAL, max(0.0, deadline - time.monotonic())))

    def beat(self, token: str, stranger: bool = False) -> None:
        frames = encode(Heartbeat(host_id=token, pid=os.getpid(), stranger=stranger))
        self.sock.send_multipart([f"{HOST_ID}/hb".encode(), *frames])

    def restart(self) -> None:
        """Kill this broker (its ROUTER goes, unsent messages dropped) and start a new one
        on the same endpoint at once; what the old one received is forgotten."""
        ctx = self.sock.context
        self.sock.close(linger=0)
        self.got.clear()
        for _ in range(100):  # the port is free once the old socket's close is processed
            sock = ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 0)
            try:
                sock.bind(self.endpoint)
            except zmq.ZMQError:
                sock.close(linger=0)
                time.sleep(0.02)
                continue
            self.sock = sock
            return
        raise AssertionError(f"cannot bind {self.endpoint} again")

    def listen(self, seconds: float, beat: str | None = None) -> list[tuple[str, Any]]:
        """What the host sent in ``seconds`` besides its own heartbeats, beating meanwhile."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if beat is not None:
                self.beat(beat)
            self.pump(INTERVAL)
        return [(ident, msg) for at, ident, msg in self.got
                if at >= start and not isinstance(msg, Heartbeat)]

    def log_text(self) -> str:
        assert self.log is not None
        return self.log.read_text("utf-8", "replace")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Callable[..., FakeBroker]]:
    ctx = zmq.Context()
    started: list[FakeBroker] = []

    def start(target: str = "tests.conformance_adapters:Big", env: dict[str, str] | None = None,
              broker_timeout: float = BROKER_TIMEOUT) -> FakeBroker:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind("tcp://127.0.0.1:*")
        fb = FakeBroker(sock, sock.getsockopt_string(zmq.LAST_ENDPOINT))
        fb.log = tmp_path / f"host{len(started)}.log"
        full_env = {**os.environ, **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        with fb.log.open("wb") as out:
            fb.proc = subprocess.Popen(
                [sys.executable, "-m", "threadhost.host", target, "--connect", fb.endpoint,
                 "--host-id", HOST_ID, "--heartbeat", str(INTERVAL),
                 "--broker-timeout", str(broker_timeout)],
                cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT)
        started.append(fb)
        return fb

    try:
        yield start
    finally:
        for fb in started:
            if fb.proc is not None and fb.proc.poll() is None:
                fb.proc.kill()
            if fb.proc is not None:
                fb.proc.wait(10)
            fb.sock.close(linger=0)
        ctx.term()


def _ready_on(ident: str) -> Callable[[str, Any], bool]:
    return lambda i, m: i == ident and isinstance(m, Ready)


def _first_ready(fb: FakeBroker) -> Ready:
    found = fb.wait_for(lambda i, m: i in (HOST_ID, f"{HOST_ID}/hb")
                        and not isinstance(m, Heartbeat), timeout=30)
    assert found is not None, f"no ready within 30 s; host log:\n{fb.log_text()}"
    ident, msg = found
    assert (ident, type(msg)) == (HOST_ID, Ready), (found, fb.log_text())  # (a)
    assert isinstance(msg, Ready)
    return msg


def test_host_re_announces_to_a_new_broker_and_after_a_silence(
        broker: Callable[..., FakeBroker]) -> None:
    fb = broker()
    first = _first_ready(fb)
    assert first.host_id == HOST_ID and first.fingerprint
    assert first.adapter["adapter"] == "tests.conformance_adapters:Big"
    assert first.adapter["replicable"] is False

    # (b) the broker that got the ready beats: nothing is answered
    assert fb.listen(1.0, beat="broker-A") == []

    # (c) a new broker (another token): ready again, on the call socket, the same one
    t_b = time.monotonic()
    again = fb.wait_for(_ready_on(HOST_ID), after=t_b, beat="broker-B")
    assert again is not None, f"no ready on X after token B; log:\n{fb.log_text()}"
    assert again[1] == first
    assert fb.listen(1.0, beat="broker-B") == []  # B is known now

    # (d) silence longer than the broker timeout: a warning, once; the host keeps going
    t_quiet = time.monotonic()
    fb.pump(BROKER_TIMEOUT + 1.5)
    assert fb.proc is not None and fb.proc.poll() is None
    own = [at for at, i, m in fb.got if at > t_quiet + BROKER_TIMEOUT and isinstance(m, Heartbeat)]
    assert own, "the host stopped its own heartbeats while the broker was silent"
    fb.pump(1.0)
    log = fb.log_text()
    assert log.count(f"broker gone; waiting for a broker on {fb.endpoint}") == 1, log
    assert not [m for at, _, m in fb.got if at > t_quiet and not isinstance(m, Heartbeat)]

    # ... then the same token again: treated as a new broker (it may have restarted)
    t_back = time.monotonic()
    back = fb.wait_for(_ready_on(HOST_ID), after=t_back, beat="broker-B")
    assert back is not None, f"no ready after the silence; log:\n{fb.log_text()}"
    assert back[1] == first
    assert fb.listen(1.0, beat="broker-B") == []

    # the library thread is untouched: calls still go to the call socket
    fb.sock.send_multipart([HOST_ID.encode(), *encode(Call(id=7, method="big", args=[3]))])
    answer = fb.wait_for(lambda i, m: i == HOST_ID and getattr(m, "id", None) == 7,
                         beat="broker-B")
    assert answer is not None and answer[1] == Result(id=7, value=b"xxx")


def test_the_first_broker_heartbeat_long_after_ready_gets_ready_again(
        broker: Callable[..., FakeBroker]) -> None:
    # a broker that never beat (an older one) was replaced by one that does: the ready went
    # to the old broker, so a first heartbeat after a silence counts as a new broker
    fb = broker()
    first = _first_ready(fb)
    fb.pump(BROKER_TIMEOUT + 1.0)
    assert "broker gone" not in fb.log_text()  # never heard a broker: nothing to report
    found = fb.wait_for(_ready_on(HOST_ID), after=time.monotonic(), beat="broker-new")
    assert found is not None and found[1] == first, fb.log_text()
    assert fb.listen(1.0, beat="broker-new") == []


def test_no_re_announcement_during_setup(broker: Callable[..., FakeBroker]) -> None:
    fb = broker("tests.conformance_adapters:SlowSetup", env={"SLOW_SETUP_SECONDS": "2"})
    # the heartbeat socket connects before setup ends: beat at it with changing tokens
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.5:
        fb.beat(f"broker-{n % 2}")
        n += 1
        fb.pump(INTERVAL)
    assert any(i == f"{HOST_ID}/hb" for _, i, _ in fb.got), "no heartbeat socket yet"
    assert not [(i, m) for _, i, m in fb.got if not isinstance(m, Heartbeat)], fb.got
    first = _first_ready(fb)  # on the call socket, once setup is done
    assert first.adapter["adapter"] == "tests.conformance_adapters:SlowSetup"
    assert [(i, type(m)) for _, i, m in fb.got if isinstance(m, Ready)] == [(HOST_ID, Ready)]


def test_a_host_that_hears_no_broker_heartbeat_is_unchanged(
        broker: Callable[..., FakeBroker]) -> None:
    fb = broker(broker_timeout=0.5)
    _first_ready(fb)
    assert fb.listen(2.0) == []
    assert fb.proc is not None and fb.proc.poll() is None
    assert "broker gone" not in fb.log_text()
    beats = [m for _, i, m in fb.got if i == f"{HOST_ID}/hb"]
    assert beats and all(isinstance(m, Heartbeat) and m.host_id == HOST_ID for m in beats)


def test_broker_timeout_must_be_positive() -> None:
    proc = subprocess.run([sys.executable, "-m", "threadhost.host",
                           "tests.conformance_adapters:Big", "--connect", "tcp://127.0.0.1:1",
                           "--broker-timeout", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--broker-timeout" in proc.stderr


@pytest.mark.timeout(240)
@pytest.mark.parametrize("run", range(3))
def test_a_broker_killed_before_its_first_heartbeat_is_replaced_and_readopts(
        broker: Callable[..., FakeBroker], run: int) -> None:
    # (f) deterministic: the first broker never beats; the broker timeout is long (60 s), so
    # no silence rule can explain a re-announcement — only the stranger mark
    fb = broker(broker_timeout=60.0)
    first = _first_ready(fb)
    fb.restart()  # before any heartbeat to the host: a new broker on the same endpoint
    t0 = time.monotonic()
    # the new broker answers the heartbeats of a host it has not adopted, marked stranger;
    # every one of them carries the same token, the first ever heard by the host
    found: tuple[str, Any] | None = None
    while found is None and time.monotonic() - t0 < 15.0:
        fb.pump(INTERVAL)
        if any(i == f"{HOST_ID}/hb" and isinstance(m, Heartbeat) for _, i, m in fb.got):
            fb.beat("broker-new", stranger=True)
        found = next(((i, m) for _, i, m in fb.got if isinstance(m, Ready)), None)
    assert found is not None, f"not re-announced to the new broker; log:\n{fb.log_text()}"
    assert found == (HOST_ID, first)  # on the call socket: a call back is routable now
    # adopted: the new broker's plain beats get nothing more (once the stranger beats in
    # flight until the ready arrived are answered), and its call is served
    fb.pump(1.0)
    assert fb.listen(1.0, beat="broker-new") == []
    fb.sock.send_multipart([HOST_ID.encode(), *encode(Call(id=9, method="big", args=[2]))])
    answer = fb.wait_for(lambda i, m: i == HOST_ID and getattr(m, "id", None) == 9,
                         beat="broker-new")
    assert answer is not None and answer[1] == Result(id=9, value=b"xx"), fb.log_text()


@pytest.mark.timeout(120)
def test_a_broker_forgets_an_attached_host_whose_call_socket_it_cannot_reach(
        tmp_path: Path) -> None:
    # R52, the broker's side: a host whose ready reached the broker over its heartbeat
    # socket while its call socket is not connected (here: it has none). A call the broker
    # cannot route to it is answered at once (unavailable: it did not run) instead of
    # waiting for its deadline, and the host is forgotten: its next heartbeat is answered
    # as a stranger's, so that it announces itself again
    import threadhost
    from tests.conftest import free_endpoint
    from threadhost.adapter import load_adapter
    from threadhost.errors import ThreadhostError

    spec = load_adapter("tests.conformance_adapters:Big")
    ready = Ready(host_id=HOST_ID, pid=os.getpid(), adapter=spec.describe(),
                  fingerprint=spec.fingerprint)
    ep, bep = free_endpoint(), free_endpoint()
    log = tmp_path / "broker.log"
    ctx = zmq.Context()
    hb = ctx.socket(zmq.DEALER)
    hb.setsockopt(zmq.ROUTING_ID, f"{HOST_ID}/hb".encode())
    hb.setsockopt(zmq.LINGER, 0)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "threadhost", "broker", "--endpoint", ep,
                                 "--backend", bep, "--log-level", "INFO"], cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        hb.connect(bep)

        def beat_until_stranger(timeout: float) -> Heartbeat | None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                hb.send_multipart(encode(Heartbeat(host_id=HOST_ID, pid=os.getpid())))
                if hb.poll(int(INTERVAL * 1000)):
                    msg = decode(hb.recv_multipart())
                    if isinstance(msg, Heartbeat) and msg.stranger:
                        return msg
            return None

        nudge = beat_until_stranger(30.0)  # the broker is up and does not know the host
        assert nudge is not None, log.read_text()
        hb.send_multipart(encode(ready))  # on the heartbeat socket only
        with threadhost.connect(ep, timeout=30.0) as client:
            deadline = time.monotonic() + 30
            while client.status()["state"] != "ready":
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            t0 = time.monotonic()
            with pytest.raises(ThreadhostError) as caught:
                client.call("big", 3)
            took = time.monotonic() - t0
        assert getattr(caught.value, "code", None) == "unavailable", caught.value
        assert took < 20.0, took  # not the 60 s fast-call limit; generous for loaded CI
        assert "cannot route a 'call' to its call socket" in log.read_text()
        # forgotten: its heartbeats are a stranger's again (no ready from it is held)
        assert beat_until_stranger(10.0) is not None, log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        hb.close(linger=0)
        ctx.term()
