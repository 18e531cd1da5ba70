"""A second implementation: the Node.js host (``interop/node-host/``) against threadhost.

The host is written in JavaScript from docs/protocol.md (docs/interop.md). These tests prove
that it speaks the protocol (the conformance kit, ``--role host``), that threadhost's own
broker serves it to ``threadhost.connect`` and to a proxy generated from its Python twin
(``tests/interop_node_adapter.py``; the fingerprints match), that maintenance works across
the two implementations, and that its fingerprint algorithm agrees with threadhost's on
richer adapters than its own.

``node`` missing: every test here is skipped, saying so. ``node`` present: its npm packages
are installed (``make interop-setup`` does it; the session fixture below does it too, if
``node_modules`` is missing), and a failing install fails the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest
import zmq

import threadhost
from tests.conftest import ROOT, free_endpoint
from threadhost.adapter import load_adapter
from threadhost.conformance import assert_conformance, run_conformance
from threadhost.errors import (
    BadArgumentsError,
    BusyError,
    FingerprintMismatchError,
    TryLaterError,
    UnknownCallError,
)
from threadhost.proxygen import generate

NODE = shutil.which("node")
HOST_DIR = ROOT / "interop" / "node-host"
HOST_JS = HOST_DIR / "host.js"
TWIN = "tests.interop_node_adapter"
INTERVAL = 0.2  # the Node.js host's heartbeat interval in these tests

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(NODE is None and not os.environ.get("CI"),
                       reason="node (Node.js) is not installed: the Node.js host interop "
                       "tests need it (the CI machine has Node 20; under CI they fail)"),
]


def _installed() -> bool:
    modules = HOST_DIR / "node_modules"
    return (modules / "zeromq" / "package.json").is_file() and (
        modules / "@msgpack" / "msgpack" / "package.json").is_file()


@pytest.fixture(scope="session")
def node_host() -> list[str]:
    """The command that starts the Node.js host (``{endpoint}`` to be filled in), after
    installing its npm packages when ``node_modules`` is missing: ``npm ci`` from the
    committed package-lock.json. A failed install fails, never skips."""
    if NODE is None:
        pytest.fail("CI: node (Node.js) is not installed, and the Node.js host interop tests "
                    "must run (Debian's nodejs and npm packages)")
    with open(HOST_DIR / "package-lock.json", "rb") as lock:  # one installer at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("node is installed but npm is not: cannot install the Node.js "
                            "host's packages (run `make interop-setup`)")
            proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HOST_DIR,
                                  capture_output=True, text=True, timeout=300, check=False)
            if proc.returncode != 0 or not _installed():
                pytest.fail(f"npm ci in {HOST_DIR} failed (exit {proc.returncode}):\n"
                            f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return [NODE, str(HOST_JS), "--connect", "{endpoint}", "--heartbeat", str(INTERVAL)]


# --------------------------------------------------------------------------- the kit


@pytest.mark.timeout(120)
def test_the_node_host_passes_the_conformance_kit(node_host: list[str]) -> None:
    report = assert_conformance("tcp://127.0.0.1:*", "host", command=node_host,
                                env={"RELOAD_SECONDS": "0.8"}, probe="calc:[41]",
                                slow="reload", heartbeat_interval=INTERVAL, timeout=3.0,
                                quiet=0.25, strict=True)
    assert report.result("host.probe").detail == "calc -> 42"
    assert "busy_id=777" in report.result("host.slow-call").detail
    assert "exit code 0" in report.result("host.shutdown").detail


@pytest.mark.timeout(60)
def test_the_kit_tells_a_broken_node_host_apart(node_host: list[str]) -> None:
    """The kit really judges the Node.js host: started with a heartbeat interval 5x longer
    than the kit is told, its heartbeat check fails (the kit is not a rubber stamp)."""
    slow_beats = [*node_host[:-1], str(5 * INTERVAL)]
    report = run_conformance("tcp://127.0.0.1:*", "host", command=slow_beats,
                             select=["host.heartbeat"], heartbeat_interval=INTERVAL,
                             timeout=3.0, quiet=0.25)
    assert [r.check for r in report.failures] == ["host.heartbeat"], report.format()


# --------------------------------------------------------------------------- a raw fake broker


class RawBroker:
    """A ROUTER bound on a free port, talking raw frames to one Node.js host (plain msgpack,
    no threadhost codec): what a broker would send, and everything the host sends back."""

    HEADER = b"TH\x01"

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.host_id = b""
        self.calls: list[tuple[float, dict[str, Any]]] = []  # from the call socket
        self.beats: list[tuple[float, dict[str, Any]]] = []  # from the heartbeat socket

    def send(self, body: dict[str, Any]) -> None:
        self.router.send_multipart([self.host_id, self.HEADER,
                                    msgpack.packb(body, use_bin_type=True)])

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self.router.poll(int(left * 1000) + 1):
                continue
            ident, header, body = self.router.recv_multipart()
            assert header == self.HEADER
            msg = msgpack.unpackb(body, raw=False)
            if ident.endswith(b"/hb"):
                self.beats.append((time.monotonic(), msg))
            else:
                self.host_id = self.host_id or ident
                self.calls.append((time.monotonic(), msg))

    def until(self, predicate: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            assert time.monotonic() < deadline, f"not within {seconds:g}s: {self.calls}"
            self.pump(0.05)

    def close(self) -> None:
        self.router.close(0)
        self.ctx.term()


@pytest.mark.timeout(60)
def test_calls_queue_behind_a_running_call_and_shutdown_lets_them_finish(
        node_host: list[str], tmp_path: Path) -> None:
    """Calls arriving while reload runs are queued, not dropped, and run in order on the
    library thread; a call that does not fit is refused at once; heartbeats carry the
    running call's id; shutdown lets the running and queued calls finish, then goodbye,
    after which nothing is sent, and the process exits 0 (R38, R39, R41, R42)."""
    fake = RawBroker()
    log = tmp_path / "node-host.log"
    with open(log, "wb") as out:
        host = subprocess.Popen([p.replace("{endpoint}", fake.endpoint) for p in node_host],
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "RELOAD_SECONDS": "1.0"})
    try:
        fake.until(lambda: bool(fake.calls), 20)
        assert fake.calls[0][1]["kind"] == "ready"
        fake.send({"kind": "call", "id": 1, "method": "reload"})
        for rid in range(2, 7):
            fake.send({"kind": "call", "id": rid, "method": "calc", "args": [rid * 10]})
        fake.send({"kind": "call", "id": 7, "method": "calc", "args": [1.5]})
        fake.pump(0.5)  # reload runs now
        fake.send({"kind": "shutdown", "reason": "test"})
        fake.send({"kind": "call", "id": 8, "method": "calc", "args": [1]})  # after shutdown
        fake.until(lambda: any(m["kind"] == "goodbye" for _, m in fake.calls), 20)
        bye_at = next(t for t, m in fake.calls if m["kind"] == "goodbye")
        fake.pump(1.0)
        answers = [m for _, m in fake.calls[1:]]
        assert answers[0] == {"kind": "error", "id": 7, "code": "bad_arguments",
                              "message": answers[0]["message"], "retry_after": None,
                              "remote_type": None, "traceback": None}
        assert [(m["kind"], m["id"], m.get("value")) for m in answers[1:7]] == [
            ("result", 1, None), *[("result", rid, rid * 10 + 1) for rid in range(2, 7)]]
        assert answers[7]["kind"] == "goodbye" and answers[7]["ok"] is True, answers
        assert len(answers) == 8, answers  # call 8 (after shutdown) never answered
        busy = [m["busy_id"] for t, m in fake.beats if m["kind"] == "heartbeat"]
        assert 1 in busy, busy
        assert not [t for t, _ in fake.beats if t > bye_at + 0.1], "heartbeats after goodbye"
        assert host.wait(10) == 0, log.read_text()
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(5)
        fake.close()


# --------------------------------------------------------------------------- a real broker


def _wait(what: str, predicate: Callable[[], bool], timeout: float,
          logs: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g}s" + (f"\n{logs()}" if logs else ""))


def _stop_broker_then_host(broker: subprocess.Popen[bytes], host: subprocess.Popen[bytes]
                           ) -> None:
    """The broker first: stopping, it sends the host `shutdown`; the host is signalled only
    if it is still there after the broker is gone (signalling both at once would race the
    broker's shutdown against the host's own SIGTERM)."""
    if broker.poll() is None:
        broker.send_signal(signal.SIGTERM)
    for proc in (broker, host):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def broker_with_node_host(node_host: list[str], tmp_path: Path, reload_seconds: float
                          ) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``threadhost broker`` (attach mode) and the Node.js host attached to its back end;
    yields the client endpoint, the host process and its log file."""
    ep, bep = free_endpoint(), free_endpoint()
    broker_log = tmp_path / "broker.log"
    host_log = tmp_path / "node-host.log"
    with open(broker_log, "wb") as blog, open(host_log, "wb") as hlog:
        broker = subprocess.Popen(
            [sys.executable, "-m", "threadhost", "broker", "--endpoint", ep, "--backend", bep,
             "--log-level", "INFO"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=blog, stderr=subprocess.STDOUT)
        host = subprocess.Popen(
            [part.replace("{endpoint}", bep) for part in node_host],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=hlog, stderr=subprocess.STDOUT,
            env={**os.environ, "RELOAD_SECONDS": str(reload_seconds)})
        try:
            yield ep, host, host_log
        finally:
            _stop_broker_then_host(broker, host)


def _ready_client(ep: str, logs: Callable[[], str] | None = None) -> threadhost.Client:
    client = threadhost.connect(ep, timeout=5.0)

    def serving() -> bool:
        try:
            return bool(client.status()["state"] == "ready")
        except TryLaterError:
            return False

    _wait("the broker serves the Node.js host", serving, 30, logs)
    return client


def _import_proxy(tmp_path: Path, text: str, name: str) -> ModuleType:
    path = tmp_path / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(120)
def test_threadhost_broker_serves_the_node_host(node_host: list[str], tmp_path: Path) -> None:
    twin = load_adapter(TWIN)
    with broker_with_node_host(node_host, tmp_path, reload_seconds=2.0) as (ep, host, log):
        client = _ready_client(ep)
        with client:
            # the generic client
            assert client.calc(41) == 42
            assert client.call("calc", x=-8) == -7
            assert client.calc(2**62) == 2**62 + 1  # exact beyond 2^53 (JavaScript numbers)
            described = client.describe()
            assert described["fingerprint"] == twin.fingerprint
            assert [c["name"] for c in described["calls"]] == ["reload", "calc"]
            # refused by the Node.js host before its library runs (R39)
            for bad in (True, 5.0, "5", None):
                with pytest.raises(BadArgumentsError):
                    client.call("calc", bad)
            with pytest.raises(BadArgumentsError):
                client.call("calc", 1, 2)
            with pytest.raises(UnknownCallError):
                client.call("nope")
            assert client.calc(0) == 1  # still serving

            # a proxy generated from the Python twin: its fingerprint check passes
            proxy = _import_proxy(tmp_path, generate(TWIN), "interop_calc_proxy")
            assert twin.fingerprint == proxy.FINGERPRINT
            with proxy.Client(ep, 5.0) as typed:
                assert typed.calc(41) == 42
            # ... and a proxy of another contract is refused at connect
            stale = generate(TWIN).replace(twin.fingerprint, "0" * 64)
            other = _import_proxy(tmp_path, stale, "interop_stale_proxy")
            with pytest.raises(FingerprintMismatchError):
                other.Client(ep, 5.0)

            # maintenance: reload runs on the Node.js host, calls are busy, then served
            reply = client.maintain("reload")
            assert reply.started, reply
            with pytest.raises(BusyError):
                client.calc(1)
            assert client.status()["state"] == "maintaining"

            def served_again() -> bool:
                try:
                    return bool(client.calc(1) == 2)
                except BusyError:
                    return False

            _wait("calls are served after reload", served_again, 30)
            assert client.status()["state"] == "ready"
        assert host.poll() is None, log.read_text()
    # the broker stopped (SIGTERM): it sent shutdown; the host said goodbye and exited 0
    assert host.returncode == 0, log.read_text()
    text = log.read_text()
    assert "shutdown" in text and "goodbye (ok=true)" in text, text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("heard", [True, False], ids=["heard-first-broker", "killed-at-once"])
def test_a_restarted_broker_adopts_the_node_host_again(node_host: list[str], tmp_path: Path,
                                                       heard: bool) -> None:
    """The broker is killed and another one starts on the same endpoints; the new broker
    adopts the Node.js host again and serves calls, without the host restarting.

    ``heard-first-broker``: the host heard the first broker's heartbeats, so the new
    broker's token differs and the host sends ``ready`` again (R51). ``killed-at-once``: the
    first broker is killed right after adopting the host, before its first heartbeat to it;
    the new broker's heartbeats are the first the host hears, within the broker timeout of
    its ready, all with one token: only the ``stranger`` mark of the new broker's answer
    (it has not adopted the host) makes the host send ``ready`` again (R51, R52)."""
    ep, bep = free_endpoint(), free_endpoint()
    host_log, broker_log = tmp_path / "node-host.log", tmp_path / "broker.log"
    with open(broker_log, "wb") as blog, open(host_log, "wb") as hlog:

        def start_broker() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "threadhost", "broker", "--endpoint", ep,
                 "--backend", bep, "--log-level", "INFO"], cwd=ROOT,
                stdin=subprocess.DEVNULL, stdout=blog, stderr=subprocess.STDOUT)

        broker = start_broker()
        host = subprocess.Popen([part.replace("{endpoint}", bep) for part in node_host],
                                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=hlog,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "RELOAD_SECONDS": "0.2"})
        try:
            with _ready_client(ep) as client:
                pid = client.status()["host_pid"]
                if heard:
                    time.sleep(2.0)  # the broker heartbeats its hosts every 0.5 s
                broker.kill()
                broker.wait(10)
                broker = start_broker()
                with _ready_client(ep, lambda: host_log.read_text() + broker_log.read_text()
                                   ) as again:
                    assert again.calc(41) == 42
                    assert again.status()["host_pid"] == pid  # the same host, adopted again
            assert host.poll() is None, host_log.read_text()
            text = host_log.read_text()
            assert "sending ready again" in text, text
            if heard:
                assert "a new broker (token" in text, text
            else:  # (or after a silence, on a machine slow to start the new broker)
                assert ("a broker that has no ready from this host" in text
                        or "a broker after a silence" in text), text
        finally:
            _stop_broker_then_host(broker, host)


# --------------------------------------------------------------------------- the fingerprint


def _node_canonical(requests: list[dict[str, Any]]) -> list[str]:
    if NODE is None:
        pytest.fail("CI: node (Node.js) is not installed, and the Node.js host interop tests "
                    "must run (Debian's nodejs and npm packages)")
    proc = subprocess.run([NODE, str(HOST_DIR / "tools" / "canonical.js")],
                          input=msgpack.packb(requests, use_bin_type=True),
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


@pytest.mark.timeout(60)
def test_the_node_fingerprint_agrees_with_threadhost_on_rich_adapters(
        node_host: list[str]) -> None:
    """The JavaScript fingerprint (interop/node-host/lib/fingerprint.js) equals threadhost's
    for adapters with nested schemas, defaults, enums, models and docstrings, and its
    canonical JSON equals Python's ``json.dumps(sort_keys=True, ensure_ascii=True)`` on the
    hard cases: code-point key order beyond U+FFFF, escapes, floats against integers."""
    targets = ["examples.mylib_adapter", "tests.proxy_types_adapter:Types",
               "tests.proxy_types_adapter:MixinEnum", "tests.adapters_for_tests:Everything",
               "tests.conformance_adapters:Big", TWIN]
    specs = [load_adapter(t) for t in targets]
    values: list[Any] = [
        {"é": "ü\x7f\n\t\x01\"\\/", "\U0001F600": 1, "\uffff": 2, "B": True, "a": None},
        [1.0, 0.1, 1e-05, 1e16, 1.5e16, -0.0, 1e100, 5e-324, 123456789.125, 100.0],
        [0, -1, 2**53 + 1, 2**63, -(2**63), 2**64 - 1],
        {"nested": {"z": [], "y": {}, "x": [{"b": 1, "a": 2}]}},
    ]
    got = _node_canonical([{"calls": [c.describe() for c in s.calls.values()]} for s in specs]
                          + [{"value": v} for v in values])
    assert got[:len(specs)] == [s.fingerprint for s in specs]
    assert got[len(specs):] == [json.dumps(v, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=True) for v in values]


# --------------------------------------------------------------------------- golden vectors


def _typed(value: Any) -> Any:
    """``value`` with every scalar tagged by its type, so that 1 and 1.0 (and True) differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.timeout(60)
def test_the_node_codec_reads_and_writes_the_golden_vectors(node_host: list[str]) -> None:
    """docs/protocol.md §14 through the Node.js host's codec (interop/node-host/lib/codec.js):
    every example decodes to its fields and encodes back to exactly its bytes, every variant
    decodes to its fields, every reject is rejected with its code and readable id."""
    from threadhost.tools import golden

    if NODE is None:
        pytest.fail("CI: node (Node.js) is not installed, and the Node.js host interop tests "
                    "must run (Debian's nodejs and npm packages)")
    vectors = golden.load()
    examples, variants, rejects = vectors["messages"], vectors["variants"], vectors["rejects"]
    requests = [{"frames": [bytes.fromhex(v["header"]), bytes.fromhex(v["body"])]}
                for v in examples + variants]
    requests += [{"frames": [bytes.fromhex(f) for f in r["frames"]],
                  "max_size": r.get("max_size")} for r in rejects]
    proc = subprocess.run([NODE, str(HOST_DIR / "tools" / "vectors.js")],
                          input=msgpack.packb(requests, use_bin_type=True),
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    results = msgpack.unpackb(proc.stdout, raw=False)
    assert len(results) == len(requests)
    for vector, got in zip(examples + variants, results, strict=False):
        assert got["ok"], (vector["name"], got)
        assert _typed(got["msg"]) == _typed(golden.from_json(vector["fields"])), vector["name"]
    for vector, got in zip(examples, results, strict=False):
        assert got["body"].hex() == vector["body"], vector["name"]  # the canonical encoding
    for vector, got in zip(rejects, results[len(examples) + len(variants):], strict=True):
        assert not got["ok"], (vector["name"], got)
        assert (got["error"], got["id"]) == (vector["error"], vector["id"]), vector["name"]


@pytest.mark.timeout(60)
def test_the_node_host_unit_tests_pass(node_host: list[str]) -> None:
    """``npm test`` in interop/node-host: the codec, the argument checks and the canonical
    form, without sockets."""
    if NODE is None:
        pytest.fail("CI: node (Node.js) is not installed, and the Node.js host interop tests "
                    "must run (Debian's nodejs and npm packages)")
    proc = subprocess.run([NODE, "--test", "test/"], cwd=HOST_DIR, capture_output=True,
                          text=True, timeout=50, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout
