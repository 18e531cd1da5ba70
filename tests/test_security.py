"""Security end to end (docs/security.md): real `threadhost serve` / `broker` / `host`
processes over real sockets, CURVE keys made with `threadhost keys new`.

* wrong, unknown or missing keys execute nothing (an adapter that counts executions);
* a caller key may not maintain; an operator key may; callers read a reduced status;
* a byte-forwarding relay sees no plaintext when CURVE is on (and does when it is off);
* a fake host from another process gets no call; an attached host with a host key does;
* endpoints others could reach are refused without CURVE; ``ipc://`` takeovers refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import threadhost
from tests.conftest import ROOT, free_endpoint
from tests.keys_helpers import Keys, Proc, run_threadhost, start_threadhost

TARGET = "tests.adapters_security:Counted"
MARKER = "plaintext-marker-7f3a9c"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A short runtime directory (ipc paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="th-sec-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def procs(tmp_path: Path, run_dir: Path) -> Iterator[Any]:
    started: list[Proc] = []
    env = {"SECURITY_COUNT_FILE": str(tmp_path / "count"),
           "THREADHOST_RUNTIME_DIR": str(run_dir)}

    def start(*args: str, name: str = "proc", extra_env: dict[str, str] | None = None
              ) -> Proc:
        p = start_threadhost(args, tmp_path / f"{name}-{len(started)}.log",
                             {**env, **(extra_env or {})})
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        p.stop()


def _counts(tmp_path: Path) -> tuple[int, int]:
    path = tmp_path / "count"
    lines = path.read_text().split() if path.exists() else []
    return lines.count("call"), lines.count("maintain")


def _wait_ready(client: threadhost.Client, proc: Proc, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, proc.log()
        try:
            last = threadhost.Client.status(client)
            if last.get("state") == "ready":
                return
        except threadhost.TryLaterError as exc:
            last = exc
        except threadhost.CallTimeoutError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"never ready: {last}\n{proc.log()}")


# --------------------------------------------------------------------------- keys and roles


def test_wrong_keys_execute_nothing_and_right_keys_work(keys: Keys, procs: Any,
                                                        tmp_path: Path) -> None:
    endpoint = free_endpoint()
    svc = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                *keys.server_args(), name="serve")
    with keys.client(endpoint, "olga") as operator:
        _wait_ready(operator, svc)
        # no key, an unknown key, a wrong server key: the handshake fails, typed, in time
        # (a wrong server key is only told at the end of the client's timeout: a short one)
        for name, server, timeout in ((None, "broker", 4.0), ("eve", "broker", 4.0),
                                      ("alice", "eve", 2.0)):
            with keys.client(endpoint, name, timeout=timeout, server=server) as lib:
                for attempt in (lambda: lib.work(MARKER),
                                lambda: threadhost.Client.maintain(lib),
                                lambda: threadhost.Client.status(lib)):
                    t0 = time.monotonic()
                    with pytest.raises(threadhost.AuthenticationError, match="handshake"):
                        attempt()
                    assert time.monotonic() - t0 < timeout + 3.0  # within its timeout
        # a caller key: calls no, maintain no (typed), status reduced
        with keys.client(endpoint, "alice") as caller:
            with pytest.raises(threadhost.PermissionDeniedError, match="operator"):
                threadhost.Client.maintain(caller)
            with pytest.raises(threadhost.PermissionDeniedError):
                threadhost.Client.maintain(caller, "refresh")
            reduced = threadhost.Client.status(caller)
            assert reduced["reduced"] is True and reduced["state"] == "ready"
            assert "hosts" not in reduced and "counters" not in reduced
            assert "broker_pid" not in reduced
            assert _counts(tmp_path) == (0, 0)
            # the right keys work
            assert caller.work("abc") == "ABC"
            assert threadhost.Client.describe(caller)["fingerprint"]
            assert threadhost.Client.ping(caller) > 0
        assert _counts(tmp_path) == (1, 0)
        reply = threadhost.Client.maintain(operator)
        assert reply.started, reply
        full = threadhost.Client.status(operator)
        assert "hosts" in full and "counters" in full and "reduced" not in full
        # the one host may still run refresh: busy until it ends, so retry while busy
        assert operator.with_retry(threadhost.Retry(deadline=20.0)).work("x") == "X"
    deadline = time.monotonic() + 10
    while _counts(tmp_path) != (2, 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _counts(tmp_path) == (2, 1)
    assert "refused 'maintain'" in svc.log()


def test_cli_takes_keys_from_options_and_environment(keys: Keys, procs: Any,
                                                     tmp_path: Path) -> None:
    endpoint = free_endpoint()
    svc = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                *keys.server_args(), name="serve")
    with keys.client(endpoint, "olga") as operator:
        _wait_ready(operator, svc)
    done = run_threadhost("call", endpoint, "work", "hi", "--server-key",
                       str(keys.public("broker")), "--secret-key", str(keys.secret("alice")))
    assert (done.returncode, done.stdout.strip()) == (0, "HI"), done.stderr
    env = {"THREADHOST_SERVER_KEY": str(keys.public("broker")),
           "THREADHOST_SECRET_KEY": str(keys.secret("alice"))}
    done = run_threadhost("maintain", endpoint, env=env)
    assert done.returncode == 1 and "permission denied" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run_threadhost("status", endpoint, env=env)
    assert done.returncode == 0 and "reduced status" in done.stdout, done.stdout
    assert "host pid" not in done.stdout
    done = run_threadhost("status", endpoint, "--timeout", "3s")  # no key at all
    assert done.returncode == 1 and "handshake failed" in done.stderr, done.stderr
    env["THREADHOST_SECRET_KEY"] = str(keys.secret("olga"))
    done = run_threadhost("maintain", endpoint, env=env)
    assert done.returncode == 0, done.stderr
    assert _counts(tmp_path)[0] == 1


def test_async_client_with_keys(keys: Keys, procs: Any) -> None:
    endpoint = free_endpoint()
    svc = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                *keys.server_args(), name="serve")
    with keys.client(endpoint, "olga") as operator:
        _wait_ready(operator, svc)

    async def main() -> None:
        async with threadhost.AsyncClient(endpoint, 4.0, server_key=keys.public("broker"),
                                          secret_key=keys.secret("alice")) as lib:
            assert await lib.work("a") == "A"
            with pytest.raises(threadhost.PermissionDeniedError):
                await threadhost.AsyncClient.maintain(lib)
        async with threadhost.AsyncClient(endpoint, 4.0, server_key=keys.public("broker"),
                                          secret_key=keys.secret("eve")) as bad:
            with pytest.raises(threadhost.AuthenticationError):
                await bad.work("a")

    asyncio.run(main())


# --------------------------------------------------------------------------- encryption


class Relay:
    """Forwards bytes between a listening socket and ``target``; keeps what it saw."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("tcp://").rpartition(":")
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen = bytearray()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:  # the service is not up yet: the client will reconnect
                conn.close()
                continue
            threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        with a, b:
            while not self.stopped.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.1)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    with self.lock:
                        self.seen += data
                    (b if src is a else a).sendall(data)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()


@pytest.mark.parametrize("curve", [True, False], ids=["curve", "plain"])
def test_a_relay_sees_no_plaintext_with_curve(keys: Keys, procs: Any, curve: bool) -> None:
    endpoint = free_endpoint()
    svc = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                *(keys.server_args() if curve else []), name="serve")
    relay = Relay(endpoint)
    try:
        with keys.client(relay.endpoint, "alice" if curve else None, timeout=10) as lib:
            _wait_ready(lib, svc)
            assert lib.work(MARKER) == MARKER.upper()
        with relay.lock:
            seen = bytes(relay.seen)
    finally:
        relay.close()
    assert len(seen) > 200  # the relay did carry the traffic
    assert (MARKER.encode() in seen) is not curve
    assert (MARKER.upper().encode() in seen) is not curve


# --------------------------------------------------------------------------- hosts

_FAKE_HOST = r"""
import os, sys, time, zmq
from threadhost.protocol import Ready, Result, Heartbeat, encode, decode
backend, host_id, out, adapter_fp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ctx = zmq.Context()
socks = []
for rid in (host_id, host_id + "/hb"):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, rid.encode())
    s.connect(backend)
    socks.append(s)
def send(s, msg):
    try:
        s.send_multipart(encode(msg), zmq.NOBLOCK)
    except zmq.Again:  # not connected (a CURVE back end refuses us): nothing to send to
        pass
calls = 0
end = time.monotonic() + float(os.environ.get("FAKE_SECONDS", "8"))  # or the test says stop
ready = Ready(host_id=host_id, pid=os.getpid(), adapter={"adapter": "fake", "calls": [
    {"name": "work", "kind": "fast"}]}, fingerprint=adapter_fp, proof="forged")
while time.monotonic() < end and not os.path.exists(out + ".stop"):
    for s in socks:
        send(s, ready)
        send(s, Heartbeat(host_id=host_id, pid=os.getpid()))
        while s.poll(0):
            msg = decode(s.recv_multipart())
            if msg.kind == "call":
                calls += 1
                send(s, Result(id=msg.id, value="FORGED"))
    # an unasked result too, for calls in flight on the real host
    for rid in range(1, 20):
        send(socks[0], Result(id=rid, value="FORGED"))
    if not os.path.exists(out + ".up"):
        open(out + ".up", "w").close()  # connected and announced: the test may go on
    time.sleep(0.1)
with open(out, "w") as f:
    f.write(str(calls))
"""


def _backend_socket(run_dir: Path, limit: float = 20.0) -> str:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = sorted(run_dir.rglob("hosts-*.sock"))
        if found:
            return f"ipc://{found[0]}"
        time.sleep(0.05)
    raise AssertionError(f"no back-end socket under {run_dir}")


def test_a_fake_host_from_another_process_gets_no_call(procs: Any, tmp_path: Path,
                                                        run_dir: Path) -> None:
    """Spawn mode: a same-user process squats the next host id on the back end and sends
    forged ``ready``/``result`` messages; not one call reaches it, no forged result
    reaches a client (R62)."""
    endpoint = free_endpoint()
    svc = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual", name="serve")
    with threadhost.connect(endpoint, timeout=5) as lib:
        _wait_ready(lib, svc)
        fp = threadhost.Client.fingerprint(lib)
        backend = _backend_socket(run_dir)
        out = tmp_path / "fake-calls"
        fakes = [subprocess.Popen([sys.executable, "-c", _FAKE_HOST, backend, host_id,
                                   str(out) + host_id, fp], cwd=ROOT,
                                  env={**os.environ, "FAKE_SECONDS": "30"})
                 for host_id in ("h2", "h9")]
        try:
            deadline = time.monotonic() + 30
            while not all(Path(f"{out}{h}.up").exists() for h in ("h2", "h9")):
                assert time.monotonic() < deadline, "the fake hosts never started"
                time.sleep(0.05)
            time.sleep(0.3)  # their first messages reach the broker
            status = threadhost.Client.status(lib)
            os.kill(status["host_pid"], signal.SIGKILL)  # the next host will be h2
            results = []
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                with contextlib.suppress(threadhost.ThreadhostError):
                    results.append(lib.work("abc"))
                time.sleep(0.05)
        finally:
            for host_id in ("h2", "h9"):  # they tried all along; now they may report
                Path(f"{out}{host_id}.stop").touch()
            for fake in fakes:
                fake.wait(30)
        assert "FORGED" not in results
        for host_id in ("h2", "h9"):
            assert (tmp_path / f"fake-calls{host_id}").read_text() == "0"
        hosts = [h["id"] for h in threadhost.Client.status(lib)["hosts"]]
        assert "h9" not in hosts
    assert "dropped a ready from 'h9'" in svc.log()
    assert "dropped a ready from 'h2'" in svc.log()


def test_attached_host_with_a_host_key_serves_and_a_keyless_one_cannot_attach(
        keys: Keys, procs: Any, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    backend = free_endpoint()
    broker = procs("broker", "--endpoint", endpoint, "--backend", backend,
                   *keys.server_args(), "--hosts-keys", str(keys.hosts), name="broker")
    host = procs("host", TARGET, "--connect", backend, "--server-key",
                 str(keys.public("broker")), "--secret-key", str(keys.secret("hostkey")),
                 "--host-id", "remote1", name="host")
    rogue = procs("host", TARGET, "--connect", backend, "--server-key",
                  str(keys.public("broker")), "--secret-key", str(keys.secret("rogue")),
                  "--host-id", "rogue1", name="rogue",
                  extra_env={"SECURITY_COUNT_FILE": str(tmp_path / "rogue-count")})
    out = tmp_path / "fake-calls"
    fake = subprocess.Popen([sys.executable, "-c", _FAKE_HOST, backend, "fake1", str(out),
                             "0" * 64], cwd=ROOT, env={**os.environ, "FAKE_SECONDS": "30"})
    try:
        with keys.client(endpoint, "olga", timeout=10) as lib:
            _wait_ready(lib, broker)
            deadline = time.monotonic() + 30  # the fake host tries before the calls start
            while not Path(f"{out}.up").exists():
                assert time.monotonic() < deadline and fake.poll() is None, "no fake host"
                time.sleep(0.05)
            for n in range(20):
                assert lib.work(f"x{n}") == f"X{n}"
            ids = [h["id"] for h in threadhost.Client.status(lib)["hosts"]]
            assert ids == ["remote1"], (ids, host.log())
    finally:
        Path(f"{out}.stop").touch()  # it tried during every call; now it may report
        fake.wait(30)
    assert out.read_text() == "0"
    assert _counts(tmp_path) == (20, 0)
    assert not (tmp_path / "rogue-count").exists()
    assert host.proc.poll() is None and broker.proc.poll() is None
    # a host whose key is refused never connects: a SIGTERM still stops it at once (its
    # ready was stuck in a blocking send to a broker it can never reach)
    started = time.monotonic()
    rogue.stop()
    assert rogue.proc.returncode is not None and time.monotonic() - started < 15, rogue.log()


# --------------------------------------------------------------------------- safe defaults


@pytest.mark.parametrize("endpoint", ["tcp://*:{port}", "tcp://0.0.0.0:{port}"])
def test_binding_every_interface_without_curve_is_refused(endpoint: str) -> None:
    port = free_endpoint().rsplit(":", 1)[1]
    ep = endpoint.format(port=port)
    done = run_threadhost("serve", TARGET, "--endpoint", ep)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "without CURVE" in done.stderr and "--insecure" in done.stderr
    done = run_threadhost("broker", "--endpoint", "tcp://127.0.0.1:" + port, "--backend", ep)
    assert done.returncode == 2 and "without CURVE" in done.stderr, done.stderr


def test_insecure_allows_it(procs: Any) -> None:
    port = free_endpoint().rsplit(":", 1)[1]
    svc = procs("serve", TARGET, "--endpoint", f"tcp://0.0.0.0:{port}", "--insecure",
                "--policy", "manual", name="serve")
    with threadhost.connect(f"tcp://127.0.0.1:{port}", timeout=5) as lib:
        _wait_ready(lib, svc)
        assert lib.work("q") == "Q"


def test_a_second_service_on_a_live_ipc_path_is_refused_and_a_stale_one_replaced(
        procs: Any, tmp_path: Path) -> None:
    sock = tmp_path / "ipc" / "svc.sock"
    endpoint = f"ipc://{sock}"
    first = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                  name="first")
    with threadhost.connect(endpoint, timeout=5) as lib:
        _wait_ready(lib, first)
        done = run_threadhost("serve", TARGET, "--endpoint", endpoint)
        assert done.returncode == 2, done.stderr
        assert "another service is listening" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert lib.work("still") == "STILL"  # the first one keeps its clients
    os.kill(first.proc.pid, signal.SIGKILL)  # a crash: its socket file stays behind
    first.proc.wait(10)
    assert sock.exists()
    second = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                   name="second")
    with threadhost.connect(endpoint, timeout=5) as lib:
        _wait_ready(lib, second)
        assert lib.work("new") == "NEW"


def test_a_connected_client_keeps_no_monitor(keys: Keys, procs: Any) -> None:
    """A monitor nobody reads fills up and then blocks its socket (libzmq): once a call
    went through, the client stops watching its connection."""
    endpoint = free_endpoint()
    svc = procs("serve", TARGET, "--endpoint", endpoint, "--policy", "manual",
                *keys.server_args(), name="serve")
    with keys.client(endpoint, "alice") as lib:
        _wait_ready(lib, svc)
        assert lib.work("m") == "M"
        assert lib._t.conn().watch is None

    async def main() -> None:
        async with threadhost.AsyncClient(endpoint, 5.0, server_key=keys.public("broker"),
                                          secret_key=keys.secret("alice")) as alib:
            assert alib._t._watch is not None  # watching from before the first connection
            assert await alib.work("n") == "N"
            assert alib._t._watch is None

    asyncio.run(main())


def test_generated_proxies_take_keys(keys: Keys, procs: Any, tmp_path: Path) -> None:
    from examples import mylib_proxy
    from tests.conftest import write_mylib_config

    config = write_mylib_config(tmp_path / "mylib.toml")
    endpoint = free_endpoint()
    svc = procs("serve", "examples.mylib_adapter", "--endpoint", endpoint, "--policy",
                "manual", *keys.server_args(), name="serve",
                extra_env={"MYLIB_CONFIG": str(config)})
    with keys.client(endpoint, "alice") as lib:
        _wait_ready(lib, svc)
    key_args = {"server_key": str(keys.public("broker")),
                "secret_key": str(keys.secret("alice"))}
    with mylib_proxy.Client(endpoint, 5.0, **key_args) as typed:
        assert typed.calc(5) == 6
    mylib_proxy.init(endpoint, 5.0, **key_args)
    try:
        assert mylib_proxy.calc(5) == 6
    finally:
        mylib_proxy.uninit()
    with pytest.raises(threadhost.AuthenticationError):
        mylib_proxy.Client(endpoint, 3.0)  # no key: the fingerprint check cannot connect

    async def main() -> None:
        async with mylib_proxy.AsyncClient(endpoint, 5.0, **key_args) as alib:
            assert await alib.calc(5) == 6

    asyncio.run(main())
