"""One library instance per host slot, across broker crashes; nothing left behind.

Rules under test (docs/reliability.md "One library instance per slot" and "Files",
docs/protocol.md §12, ``threadhost/broker.py`` module docstring):

* a host started with ``--lock PATH`` holds an exclusive ``flock`` on PATH from before it
  loads the adapter until it exits; a second host with the same PATH waits — heartbeats
  with ``busy_id`` 0, no ``ready``, a log line "waiting for the previous instance to
  exit" — and starts when the first exits; stopped while waiting it says
  ``goodbye(ok=false, code=unavailable)`` and exits 6;
* ``serve`` passes ``--lock <runtime>/<service>/slot-N.lock``: after ``kill -9`` of the
  broker while its host is inside a 20 s slow call, a new ``serve`` on the same endpoint
  started at once never has more library instances alive than ``--hosts``, and becomes
  ready after the old host exits;
* the runtime directory (``$THREADHOST_RUNTIME_DIR`` here) holds ``broker.lock``,
  ``hosts-<random>.sock`` and ``slot-N.lock``; a graceful exit leaves nothing; after a
  SIGKILL the next start on the same endpoint removes the stale socket, works, and then
  leaves nothing either; stale directories of other services are swept when nothing
  holds them; unsafe directories are refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import threadhost
from tests.conftest import ROOT, Service, free_endpoint
from tests.fake_broker import SLACK, fake_brokers
from threadhost.broker import BrokerError, RuntimeDir, service_name
from threadhost.protocol import ErrorCode, Goodbye, Heartbeat, Ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

COUNTED = "tests.adapters_instances:Counted"
WAITING = "waiting for the previous instance to exit"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(predicate: Any, limit: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what}: not met within {limit:g}s")


# --------------------------------------------------------------------------- the host's lock


def test_a_second_host_on_the_same_lock_waits_for_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "slot-0.lock"
    with fake_brokers(tmp_path, "L") as start:
        first = start("tests.conformance_adapters:Big", "--lock", str(lock))
        assert isinstance(first.first(lambda m: not isinstance(m, Heartbeat)), Ready)
        assert lock.read_text().strip() == str(first.proc.pid)  # the holder says who it is
        second = start("tests.conformance_adapters:Big", "--lock", str(lock))
        _wait(lambda: [b.busy_id for b in second.beats()].count(0) >= 5 or second.pump(0.05),
              SLACK, "5 heartbeats saying 'waiting'")
        # 0: waiting for the previous one. A beat sent before the library thread first tried
        # the lock (a loaded machine) says None: nothing runs yet; once waiting, only 0.
        beats = [b.busy_id for b in second.beats()]
        waiting = beats.index(0)
        assert set(beats[:waiting]) <= {None} and set(beats[waiting:]) == {0}, beats
        assert not [m for _, _, m in second.got if not isinstance(m, Heartbeat)]  # no ready
        assert f"{WAITING} ({lock} held by pid {first.proc.pid})" in second.log_text()
        first.proc.kill()  # however the holder ends, the kernel releases its lock
        first.proc.wait(SLACK)
        ready = second.first(lambda m: isinstance(m, Ready))
        assert ready.pid == second.proc.pid
        second.pump(0.3)
        assert second.beats()[-1].busy_id is None
        assert lock.read_text().strip() == str(second.proc.pid)


def test_a_host_stopped_while_waiting_says_goodbye_unavailable(tmp_path: Path) -> None:
    lock = tmp_path / "slot-0.lock"
    lock.touch()
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a previous instance that does not go away
        held.write(f"{os.getpid()}\n")
        held.flush()
        with fake_brokers(tmp_path, "W") as start:
            waiting = start("tests.conformance_adapters:Big", "--lock", str(lock))
            _wait(lambda: WAITING in waiting.log_text(), SLACK, "the waiting log line")
            waiting.proc.send_signal(signal.SIGTERM)
            bye = waiting.first(lambda m: not isinstance(m, Heartbeat))
            assert isinstance(bye, Goodbye)
            assert (bye.ok, bye.code) == (False, ErrorCode.UNAVAILABLE)
            assert bye.message.startswith("stopped while waiting for the previous instance "
                                          "to exit")
            assert waiting.proc.wait(SLACK) == 6


def test_a_lock_file_that_cannot_be_used_is_a_goodbye(tmp_path: Path) -> None:
    with fake_brokers(tmp_path, "N") as start:
        host = start("tests.conformance_adapters:Big", "--lock",
                     str(tmp_path / "missing" / "slot-0.lock"))
        bye = host.first(lambda m: not isinstance(m, Heartbeat))
        assert isinstance(bye, Goodbye) and bye.code is ErrorCode.UNAVAILABLE
        assert "cannot open the slot lock" in bye.message
        assert host.proc.wait(SLACK) == 6


# --------------------------------------------------------------------------- broker kill -9


class Instances:
    """Samples, every 20 ms, the processes that passed ``setup`` and are alive."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.max = 0
        self.seen: set[int] = set()
        self.exited: dict[int, float] = {}  # pid -> when it was first seen dead
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def alive(self) -> set[int]:
        pids = {int(p.name.split(".")[0]) for p in self.folder.glob("*.instance")}
        return {pid for pid in pids if _alive(pid)}

    def _run(self) -> None:
        while not self._stop.is_set():
            alive = self.alive()
            self.max = max(self.max, len(alive))
            self.seen |= alive
            now = time.monotonic()
            for pid in self.seen - alive:
                self.exited.setdefault(pid, now)
            time.sleep(0.02)

    def __enter__(self) -> Instances:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _serve(tmp_path: Path, endpoint: str, target: str, *args: str,
           env: dict[str, str]) -> Service:
    log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "threadhost", "serve", target, "--endpoint", endpoint,
           "--policy", "manual", *args]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    return Service(endpoint, proc, tmp_path / "no-config", log_path)


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Any]:
    """``serve(endpoint, target, *args)``: a ``threadhost serve`` with the runtime directory
    ``tmp_path/rt`` and instance markers in ``tmp_path/instances``; every process it or its
    hosts started is gone after the test."""
    short = Path(tempfile.mkdtemp(prefix="th-", dir="/tmp"))  # ipc paths: 107 bytes at most
    runtime = short / "rt"
    instances = tmp_path / "instances"
    instances.mkdir()
    env = {"THREADHOST_RUNTIME_DIR": str(runtime), "INSTANCES_DIR": str(instances)}
    started: list[Service] = []

    def serve(endpoint: str, target: str = COUNTED, *args: str, **extra: str) -> Service:
        svc = _serve(tmp_path, endpoint, target, *args, env={**env, **extra})
        started.append(svc)
        return svc

    serve.runtime = runtime  # type: ignore[attr-defined]
    serve.instances = instances  # type: ignore[attr-defined]
    yield serve
    for svc in started:
        with contextlib.suppress(Exception):
            svc.stop(timeout=30)
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait(10)
    for marker in instances.glob("*.instance"):  # hosts orphaned by a SIGKILLed broker
        with contextlib.suppress(psutil.NoSuchProcess, ValueError):
            psutil.Process(int(marker.name.split(".")[0])).kill()
    shutil.rmtree(short, ignore_errors=True)


def _kill9_during_slow_call(serving: Any, hosts: int, reload_seconds: float) -> None:
    endpoint = free_endpoint()
    extra = {"RELOAD_SECONDS": str(reload_seconds)}
    old = serving(endpoint, COUNTED, "--hosts", str(hosts), **extra)
    old.wait_state("ready")
    _wait(lambda: len(old.host_pids()) == hosts and len(
        list(serving.instances.glob("*.instance"))) == hosts, 30, f"{hosts} instances")
    with Instances(serving.instances) as instances:
        with threadhost.connect(endpoint, timeout=5.0) as c:
            assert c.maintain().started
        reloading = _wait(lambda: list(serving.instances.glob("*.reloading")), 10,
                          "a host inside its slow call")
        in_call = int(reloading[0].name.split(".")[0])
        old.proc.kill()  # kill -9 the broker: its hosts get SIGTERM (parent death)
        old.proc.wait(10)
        killed_at = time.monotonic()
        new = serving(endpoint, COUNTED, "--hosts", str(hosts), **extra)  # at once
        _wait(lambda: WAITING in new.log(), 15, "the new host waiting for the old one")
        assert _alive(in_call), "the old host should still be inside its slow call"
        new.wait_state("ready", limit=reload_seconds + 40)
        ready_at = time.monotonic()
        _wait(lambda: not _alive(in_call) and len(instances.alive()) == hosts,
              reload_seconds + 30, f"the old host gone, {hosts} new instances")
        time.sleep(0.1)
        assert instances.max <= hosts, f"{instances.max} library instances alive at once"
        if hosts == 1:  # the service waited for the old instance of its only slot
            assert instances.exited[in_call] <= ready_at + 0.05
            assert ready_at - killed_at > reload_seconds / 2
        with threadhost.connect(endpoint, timeout=5.0) as c:
            pids = {c.call("pid") for _ in range(20)}
        assert in_call not in pids and pids <= instances.alive()
    assert new.stop() == 0
    _wait(lambda: not list(serving.runtime.iterdir()), 10, "an empty runtime directory")


def test_kill9_of_the_broker_during_a_20s_slow_call_never_runs_two_instances(
        serving: Any) -> None:
    _kill9_during_slow_call(serving, hosts=1, reload_seconds=20)


def test_kill9_with_a_pool_never_runs_more_instances_than_hosts(serving: Any) -> None:
    _kill9_during_slow_call(serving, hosts=2, reload_seconds=8)


# --------------------------------------------------------------------------- runtime directory


def _service_dir(serving: Any, endpoint: str) -> Path:
    return serving.runtime / service_name(endpoint)  # type: ignore[no-any-return]


def test_graceful_exit_leaves_nothing_behind(serving: Any) -> None:
    endpoint = free_endpoint()
    svc = serving(endpoint, COUNTED)
    svc.wait_state("ready")
    folder = _service_dir(serving, endpoint)
    names = sorted(p.name for p in folder.iterdir())
    assert names[0] == "broker.lock" and names[2] == "slot-0.lock", names
    assert names[1].startswith("hosts-") and names[1].endswith(".sock")
    assert (folder.stat().st_mode & 0o777, serving.runtime.stat().st_mode & 0o777) == (
        0o700, 0o700)
    assert svc.stop() == 0
    assert list(serving.runtime.iterdir()) == []


def test_after_a_broker_sigkill_the_next_start_cleans_up_and_works(serving: Any) -> None:
    endpoint = free_endpoint()
    old = serving(endpoint, COUNTED)
    old.wait_state("ready")
    host = old.host_pids()[0]
    folder = _service_dir(serving, endpoint)
    stale = next(folder.glob("hosts-*.sock"))
    old.proc.kill()
    old.proc.wait(10)
    _wait(lambda: not _alive(host), 15, "the orphaned host exits")
    assert stale.exists()  # nothing can clean up after a SIGKILL...
    new = serving(endpoint, COUNTED)
    new.wait_state("ready")  # ...but the next start on the endpoint does
    assert not stale.exists()
    assert len(list(folder.glob("hosts-*.sock"))) == 1
    with threadhost.connect(endpoint, timeout=5.0) as c:
        assert c.call("pid") != host
    assert new.stop() == 0
    assert list(serving.runtime.iterdir()) == []


def test_stale_directories_of_other_services_are_swept_unless_held(serving: Any) -> None:
    serving.runtime.mkdir(mode=0o700)
    crashed, held, foreign = (serving.runtime / n for n in (
        "tcp-127.0.0.1-1", "tcp-127.0.0.1-2", "tcp-127.0.0.1-3"))
    for folder in (crashed, held, foreign):
        folder.mkdir(mode=0o700)
        for name in ("broker.lock", "slot-0.lock", "slot-1.lock", "hosts-0123abcd.sock"):
            (folder / name).write_text("1\n")
    (foreign / "notes.txt").write_text("not ours\n")
    with (held / "slot-1.lock").open("r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a host of that crashed run still alive
        svc = serving(free_endpoint(), COUNTED)
        svc.wait_state("ready")
    assert not crashed.exists()
    assert len(list(held.iterdir())) == len(list(foreign.iterdir())) - 1 == 4  # untouched
    assert svc.stop() == 0


def test_service_names() -> None:
    assert service_name("tcp://127.0.0.1:6000") == "tcp-127.0.0.1-6000"
    assert service_name("tcp://[::1]:6000") == "tcp----1--6000"
    long = service_name("ipc:///" + "x" * 200 + "/front.sock")
    assert len(long) <= 48 and long.startswith("ipc--xxx")
    assert long != service_name("ipc:///" + "x" * 201 + "/front.sock")


def test_a_runtime_directory_too_deep_for_an_ipc_socket_is_explained(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    held = RuntimeDir.open("tcp://127.0.0.1:1", deep)
    try:
        with pytest.raises(BrokerError, match="set THREADHOST_RUNTIME_DIR to a shorter"):
            held.backend()
    finally:
        held.close()


def test_unsafe_or_busy_runtime_directories_are_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    with pytest.raises(BrokerError, match="is open to others"):
        RuntimeDir.open("tcp://127.0.0.1:1", loose)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BrokerError, match="is not a directory"):
        RuntimeDir.open("tcp://127.0.0.1:1", tmp_path / "link")
    root = tmp_path / "rt"
    held = RuntimeDir.open("tcp://127.0.0.1:1", root)
    try:
        t0 = time.monotonic()
        with pytest.raises(BrokerError, match="another broker is serving"):
            RuntimeDir.open("tcp://127.0.0.1:1", root)
        assert 0.9 < time.monotonic() - t0 < 5
    finally:
        held.close()
    assert list(root.iterdir()) == []
    if os.getuid() == 0:  # only root can give a directory away
        other = tmp_path / "other"
        other.mkdir(mode=0o700)
        os.chown(other, 1, 1)
        with pytest.raises(BrokerError, match="belongs to uid 1"):
            RuntimeDir.open("tcp://127.0.0.1:1", other)
