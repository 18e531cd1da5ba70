"""The broker: the I/O shell around :class:`threadhost.gate.Gate`.

Theory of operation
-------------------
One thread, one ``zmq_poll``, no callbacks. Each turn of the loop is
**poll → decode → gate → act**:

* the *front end* is a ROUTER bound to the public endpoint (default
  ``tcp://127.0.0.1:6000``); any number of DEALER (or REQ) clients connect to it;
* the *back end* is a ROUTER bound to a private ``ipc://`` endpoint in the service's
  runtime directory (below); hosts connect to it with two DEALERs each (``ID`` for calls,
  ``ID/hb`` for heartbeats), so more than one host can attach;
* a self-pipe (``signal.set_wakeup_fd``) wakes the poll at once on SIGINT, SIGTERM and
  SIGCHLD, so shutdown and host deaths are seen without polling delays.

Each turn takes one message from each ready socket (clients and hosts take turns; the poll
is cheaper than draining to ``zmq.Again``). Messages are decoded with the protocol codec
(:mod:`threadhost.protocol`, msgspec): the broker process never imports pydantic,
and hands freed heap back to the system after each pause in client traffic
(``malloc_trim``). All decisions are the gate's; this module
only decodes frames, feeds the gate with ``time.monotonic()``, and carries out the
actions it returns: send (never blocking: ROUTER_MANDATORY + NOBLOCK, a vanished peer is
dropped), start a host process (``python -m threadhost.host``), kill one, log, stop.
A malformed client message is answered with a typed ``protocol`` error; a malformed host
message is logged and dropped. Nothing a peer sends can raise out of the loop.

Security (docs/security.md, docs/protocol.md §13)
-------------------------------------------------
Every socket is made by :mod:`threadhost.transport`. With keys, the front end is a CURVE
server checked by pyzmq's authenticator (started before the bind); each request's role is
read from its connection's ZAP user id: ``maintain`` from a caller is answered
``permission_denied`` here, a caller's ``status`` is reduced here, the gate sees neither.
An attach-mode back end with host keys is a CURVE server too. Endpoints others could reach
are refused without CURVE (unless ``insecure``). In spawn mode each run draws a secret,
written to each host's stdin (``--proof-stdin``); a host's ``ready`` must carry it, and
until it has, only heartbeats and a goodbye of a host this broker started pass: anything
else is dropped and logged (R62).

The runtime directory (spawn mode)
----------------------------------
A service keeps its files in one directory that is the same for every run on the same
client endpoint, so that a run after a crash finds what the crashed one left:
``$THREADHOST_RUNTIME_DIR`` if set, else ``$XDG_RUNTIME_DIR/threadhost`` (when that is a
directory of ours), else ``<tempdir>/threadhost-<uid>``; in it ``<service>/``, the service
named after the bound client endpoint (``tcp://127.0.0.1:6000`` -> ``tcp-127.0.0.1-6000``).
Both are created 0700 and refused unless they are directories owned by this user that no one
else may enter. In the service directory:

* ``broker.lock`` — the broker holds an exclusive ``flock`` on it while it runs: proof that
  no other live broker uses the directory (``ipc://`` binds prove nothing: they replace a
  socket file of a live process);
* ``hosts-<random>.sock`` — the back end of this run. A fresh name each run: the hosts of a
  crashed broker, still finishing a call, would otherwise reconnect to the new broker with
  the routing ids of its own new hosts (``h1``...). Socket files left by a crashed run are
  removed before binding, once the client endpoint is bound and ``broker.lock`` is held;
* ``slot-<N>.lock`` — one per pool slot, passed to the host as ``--lock``: the host holds it
  from before the adapter is loaded until it exits (the kernel releases it even after
  SIGKILL), and a new host for the slot waits for it. At most one library instance per slot
  is alive, whatever happened to the broker.

A lock file is unlinked only by a process that holds its lock, and a process that took a
lock checks that the path still names the file it locked (else it takes the lock again), so
removing files never lets two processes hold "the same" lock. On a graceful exit the broker
removes its socket, every slot lock no live host holds, ``broker.lock`` and the directory
(kept while a host of an earlier run still holds its slot lock). At start it also removes
other services' directories that nothing holds any more (left by crashed runs on endpoints
that are not used again, e.g. ``tcp://127.0.0.1:*``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

# hmac.compare_digest, without hmac's import of OpenSSL (broker memory)
from _operator import _compare_digest
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

try:  # hashlib's own blake2b, without hashlib's import of OpenSSL (broker memory)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _blake2b

from threadhost import transport
from threadhost.errors import ProtocolError, ThreadhostError
from threadhost.gate import (
    Action,
    Gate,
    GateConfig,
    KillHost,
    Log,
    StartHost,
    Stopped,
    ToClient,
    ToHost,
)
from threadhost.policy import Policy, parse_policy
from threadhost.protocol import (
    DEFAULT_MAX_SIZE,
    HEADER,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Ready,
    Status,
    StatusReply,
    encode_body,
    protocol_error,
)
from threadhost.transport import KeyRing, ServerKeys, decode_frames, recv_frames

__all__ = [
    "DEFAULT_ENDPOINT",
    "RUNTIME_ENV",
    "Broker",
    "BrokerError",
    "RuntimeDir",
    "runtime_root",
    "service_name",
]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:6000"
RUNTIME_ENV = "THREADHOST_RUNTIME_DIR"

_NOBLOCK = transport.NOBLOCK
_POLLIN = transport.POLLIN

log = logging.getLogger("threadhost.broker")


class BrokerError(ThreadhostError):
    """Raised when the broker cannot start (endpoint in use, bad endpoint...)."""

    code = "broker"


_TRIM_AFTER_IDLE = 0.25


def _malloc_trim() -> Callable[[], None] | None:
    """glibc's ``malloc_trim(0)``, or None where there is none (musl, macOS...).

    A burst (thousands of calls in flight, many clients) grows the heap; freed, it stays
    mapped and fragmented. The broker calls this once per pause in client traffic (after
    0.25 s without a client message): a long-running broker then holds what it uses, not
    its high-water mark (~7 MB less after a benchmark's load; docs/performance.md). It takes
    ~0.1 ms on the broker's small heap (1 ms on a 60 MB fragmented one), only when idle."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int

    def trim() -> None:
        fn(0)

    return trim


def _first(a: int | None, b: int | None) -> int | None:
    """The first exit code decided (0 is a decision too)."""
    return a if a is not None else b


# --------------------------------------------------------------------------- runtime directory

_BROKER_LOCK = "broker.lock"
_SOCKET = re.compile(r"hosts-[0-9a-f]+\.sock")
_SLOT_LOCK = re.compile(r"slot-\d+\.lock")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def runtime_root() -> Path:
    """Where services keep their runtime directories (see the module docstring)."""
    explicit = os.environ.get(RUNTIME_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        with contextlib.suppress(OSError):
            st = os.stat(xdg)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
                return Path(xdg) / "threadhost"
    return Path(tempfile.gettempdir()) / f"threadhost-{os.getuid()}"


def service_name(endpoint: str) -> str:
    """A file name for the service on ``endpoint``: ``tcp://127.0.0.1:6000`` ->
    ``tcp-127.0.0.1-6000`` (other characters become ``-``; long names end in a hash)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", endpoint.replace("://", "-", 1)).strip(".-")
    if len(name) > 48 or not name:
        digest = _blake2b(endpoint.encode("utf-8", "replace"), digest_size=6).hexdigest()
        name = f"{name[:32].rstrip('.-')}-{digest}".lstrip("-")
    return name


def _private_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing; refuse it unless it is a directory of ours that
    no one else may enter (a planted directory or symlink must not receive our sockets)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise BrokerError(f"runtime directory {path} is not a directory")
    if st.st_uid != os.getuid():
        raise BrokerError(f"runtime directory {path} belongs to uid {st.st_uid}, not to "
                          f"this user ({os.getuid()})")
    if st.st_mode & 0o077:
        raise BrokerError(f"runtime directory {path} is open to others (mode "
                          f"{stat.S_IMODE(st.st_mode):o}); expected 700: chmod 700 {path}")


def _lock_now(path: Path, *, create: bool) -> int | None:
    """An fd holding an exclusive flock on the file ``path`` names *now*, or None when
    another process holds it (or, without ``create``, there is no such file)."""
    while True:
        flags = os.O_RDWR | os.O_CLOEXEC | _NOFOLLOW | (os.O_CREAT if create else 0)
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            if not create:
                return None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            same = False
        if same:
            return fd
        os.close(fd)  # unlinked or replaced while we waited: lock what the path names now


def _unlink_if_free(path: Path) -> bool:
    """Remove lock file ``path`` if no process holds it (unlinking it while holding it)."""
    try:
        fd = _lock_now(path, create=False)
    except OSError:
        return False
    if fd is None:
        return not path.exists()
    try:
        path.unlink()
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class RuntimeDir:
    """A service's runtime directory, held (``broker.lock``) by this broker while it runs."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd
        self.socket: Path | None = None

    @classmethod
    def open(cls, endpoint: str, root: Path | None = None) -> RuntimeDir:
        """Create or reuse the directory of the service on ``endpoint`` and hold it; a
        directory held by another live broker is a :class:`BrokerError`."""
        root = runtime_root() if root is None else root
        path = root / service_name(endpoint)
        deadline = time.monotonic() + 1.0
        for _ in range(100):  # another broker's clean-up may hold or remove it briefly
            try:
                _private_dir(root)
                _private_dir(path)
                fd = _lock_now(path / _BROKER_LOCK, create=True)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BrokerError(f"cannot use runtime directory {path}: "
                                  f"{exc.strerror or exc}") from None
            if fd is None:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                raise BrokerError(f"another broker is serving {endpoint} (it holds "
                                  f"{path / _BROKER_LOCK})")
            held = cls(path, fd)
            held._remove_stale_sockets()
            _sweep(root, keep=path)
            return held
        raise BrokerError(f"cannot hold runtime directory {path}: it keeps disappearing")

    def _remove_stale_sockets(self) -> None:
        """Socket files of earlier runs: no live broker listens on them (we hold the lock)."""
        for entry in os.scandir(self.path):
            if _SOCKET.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    log.info("removed %s, left by an earlier run", entry.path)

    def backend(self) -> str:
        """A fresh ``ipc://`` endpoint in the directory for this run's back end."""
        socket_path = self.path / f"hosts-{os.urandom(4).hex()}.sock"
        limit = getattr(zmq, "IPC_PATH_MAX_LEN", 107) or 107
        if len(os.fsencode(socket_path)) > limit:
            raise BrokerError(f"cannot listen on ipc://{socket_path}: the path is longer than "
                              f"an ipc socket allows ({limit} bytes); set {RUNTIME_ENV} to a "
                              f"shorter directory")
        self.socket = socket_path
        return f"ipc://{socket_path}"

    def slot_lock(self, slot: int) -> str:
        """The lock file of pool slot ``slot`` (the host takes it: ``--lock``)."""
        return str(self.path / f"slot-{slot}.lock")

    def close(self) -> None:
        """Graceful exit, hosts gone: remove our socket, every slot lock no process holds,
        ``broker.lock`` and the directory if nothing else is left in it."""
        if self._fd is None:
            return
        if self.socket is not None:
            with contextlib.suppress(OSError):
                self.socket.unlink()
        kept = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path):
                if _SLOT_LOCK.fullmatch(entry.name) and _unlink_if_free(Path(entry.path)):
                    continue
                if entry.name != _BROKER_LOCK:
                    kept.append(entry.name)
        if not kept:
            with contextlib.suppress(OSError):
                (self.path / _BROKER_LOCK).unlink()  # we hold it: safe (see _lock_now)
            with contextlib.suppress(OSError):
                self.path.rmdir()
        else:
            log.info("kept %s: %s still in use", self.path, ", ".join(sorted(kept)))
        os.close(self._fd)
        self._fd = None


def _sweep(root: Path, keep: Path) -> None:
    """Remove service directories under ``root`` that crashed runs left and nothing holds:
    no broker holds their ``broker.lock`` and no host any ``slot-N.lock``. Anything else
    in such a directory (or a lock in use) keeps it. Holding its ``broker.lock`` while at
    it keeps a broker starting there meanwhile out (it retries, see ``RuntimeDir.open``)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            if (path == keep or not entry.is_dir(follow_symlinks=False)
                    or entry.stat(follow_symlinks=False).st_uid != os.getuid()
                    or not _known(os.listdir(path))):
                continue
            fd = _lock_now(path / _BROKER_LOCK, create=True)
        except OSError:
            continue
        if fd is None:
            continue  # a live broker holds it
        slots: list[int] = []
        try:
            names = os.listdir(path)  # again: now that no broker can start there
            if not _known(names):
                continue
            for n in names:
                if _SLOT_LOCK.fullmatch(n):
                    slot_fd = _lock_now(path / n, create=False)
                    if slot_fd is None:
                        break  # a host of that run is still alive: its lock must stay
                    slots.append(slot_fd)
            else:
                for n in names:  # every lock file is held by us: safe (see _lock_now)
                    if n != _BROKER_LOCK:
                        os.unlink(path / n)
                (path / _BROKER_LOCK).unlink()
                path.rmdir()
                log.info("removed %s, left by a crashed run", path)
        except OSError:
            continue
        finally:
            for slot_fd in slots:
                os.close(slot_fd)
            os.close(fd)


def _known(names: list[str]) -> bool:
    return all(n == _BROKER_LOCK or _SOCKET.fullmatch(n) or _SLOT_LOCK.fullmatch(n)
               for n in names)


# --------------------------------------------------------------------------- the broker


@dataclass
class _Proc:
    host_id: str
    popen: subprocess.Popen[bytes]


class Broker:
    """Serve adapter ``target`` on ``endpoint`` until stopped. See the module docstring."""

    def __init__(
        self,
        target: str | None,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        backend: str | None = None,
        config: GateConfig | None = None,
        make_policy: Callable[[str], Policy] = parse_policy,
        max_size: int = DEFAULT_MAX_SIZE,
        heartbeat_interval: float = 0.5,
        log_level: str = "INFO",
        host_env: dict[str, str] | None = None,
        runtime_root: str | Path | None = None,
        metrics: str | None = None,
        server_keys: ServerKeys | None = None,
        keyring: KeyRing | None = None,
        insecure: bool = False,
    ) -> None:
        self.target = target
        self.endpoint = endpoint
        self.backend = backend
        self.config = config or GateConfig()
        if target is None:  # attach mode: hosts are started elsewhere and connect to backend
            if backend is None:
                raise ValueError("attach mode (no target) needs a backend endpoint")
            self.config = dataclasses.replace(self.config, spawn=False)
        self.make_policy = make_policy
        self.max_size = max_size
        self.heartbeat_interval = heartbeat_interval
        self.log_level = log_level
        self.host_env = host_env
        self.metrics_listen = metrics  # HOST:PORT for Prometheus metrics, or None
        self.metrics_endpoint: tuple[str, int] | None = None
        self.stop_reason: str | None = None
        """Why the service stopped (the last ``Stopped`` action), for the CLI's last line."""
        self.procs: dict[str, _Proc] = {}
        self._host_routes: dict[str, tuple[bytes]] = {}  # host id -> its routing envelope
        self._signals: list[int] = []
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self.runtime_root = None if runtime_root is None else Path(runtime_root)
        self.runtime: RuntimeDir | None = None  # spawn mode: held from bind to clean-up
        self.bound_endpoint: str | None = None
        self.bound_backend: str | None = None
        # security (docs/security.md): CURVE keys, the allowed keys per role
        self.server_keys = server_keys
        self.keyring = keyring
        self.insecure = insecure
        if keyring is not None and server_keys is None:
            raise ValueError("a keyring needs the server's keys (CURVE)")
        # CURVE on the front end when client or operator keys are given; on an attach-mode
        # back end when host keys are given
        self._front_keys = server_keys if keyring is not None and (
            keyring.clients or keyring.operators) else None
        self._back_keys = server_keys if keyring is not None and keyring.hosts and (
            target is None) else None
        self._roles = keyring if self._front_keys is not None else None
        self._guard: transport.Guard | None = None
        # spawn mode: the run's secret, given to each host on its stdin; a host's ready
        # must carry it (R62). Hosts that proved themselves, by routing id (host id).
        self._secret: str | None = os.urandom(16).hex() if target is not None else None
        self._proven: set[str] = set()
        self._refusals = 0  # requests refused or messages dropped for security: logged sparingly
        self._refused_seen: set[tuple[str, str]] = set()

    @property
    def front_public_key(self) -> bytes | None:
        """The front end's CURVE public key (z85), or None when clients connect without
        CURVE. Keys added to ``keyring`` before :meth:`run` are allowed (``serve
        --dashboard`` adds its dashboard's)."""
        return self._front_keys.public if self._front_keys is not None else None

    # ------------------------------------------------------------------ set-up

    def check_endpoints(self) -> None:
        """Refuse endpoints others could reach without CURVE (docs/security.md): a
        non-loopback TCP front end needs keys, an attach-mode back end needs host keys,
        unless ``insecure``. One-line :class:`BrokerError`."""
        if self.insecure:
            return
        if self._front_keys is None and not transport.is_local_endpoint(self.endpoint):
            raise BrokerError(
                f"refusing to listen on {self.endpoint} without CURVE: anyone who reaches "
                "it could call, maintain and read status; give --secret-key with --clients/"
                "--operators (see docs/security.md), bind 127.0.0.1, or pass --insecure")
        if (self.target is None and self.backend is not None and self._back_keys is None
                and not transport.is_local_endpoint(self.backend)):
            raise BrokerError(
                f"refusing to accept hosts on {self.backend} without CURVE: any process that "
                "reaches it could register as a host; give --secret-key with --hosts-keys, "
                "bind 127.0.0.1, or pass --insecure")

    def _bind(self) -> tuple[zmq.Socket[bytes], zmq.Socket[bytes], str]:
        self.check_endpoints()
        ctx = self._ctx = zmq.Context()
        if self.keyring is not None:  # before any bind: a CURVE server without ZAP is open
            self._guard = transport.Guard(ctx, self.keyring)
        try:
            transport.prepare_ipc(self.endpoint)
            front = transport.front_socket(ctx, self.endpoint, self.max_size, self._front_keys)
        except ValueError as exc:
            self._stop_guard()
            raise BrokerError(f"cannot listen on {self.endpoint}: {exc}") from None
        except zmq.ZMQError as exc:
            self._stop_guard()
            raise BrokerError(f"cannot listen on {self.endpoint}: {exc.strerror}") from None
        self.bound_endpoint = transport.last_endpoint(front)
        backend = self.backend or ""
        try:
            if self.target is not None:  # spawn mode: slot locks (and the back end) there
                self.runtime = RuntimeDir.open(self.bound_endpoint, self.runtime_root)
            backend = self.backend if self.backend is not None else self._private_backend()
            transport.prepare_ipc(backend)
            back = transport.back_socket(ctx, backend, self._back_keys)
        except (zmq.ZMQError, BrokerError, ValueError) as exc:
            front.close()
            self._stop_guard()
            if self.runtime is not None:
                self.runtime.close()
                self.runtime = None
            if isinstance(exc, BrokerError):
                raise
            why = exc.strerror if isinstance(exc, zmq.ZMQError) else str(exc)
            raise BrokerError(f"cannot listen on {backend}: {why}") from None
        self.bound_backend = transport.last_endpoint(back)
        return front, back, backend

    def _stop_guard(self) -> None:
        if self._guard is not None:
            self._guard.stop()
            self._guard = None

    def _private_backend(self) -> str:
        assert self.runtime is not None, "attach mode needs a backend endpoint"
        return self.runtime.backend()

    def _start_host(self, host_id: str, backend: str, slot: int = 0) -> None:
        assert self.target is not None
        cmd = [
            sys.executable,
            "-m",
            "threadhost.host",
            self.target,
            "--connect",
            backend,
            "--host-id",
            host_id,
            "--heartbeat",
            str(self.heartbeat_interval),
            "--max-size",
            str(self.max_size),
            "--log-level",
            self.log_level,
        ]
        if self.runtime is not None:  # one library instance per slot, across broker crashes
            cmd += ["--lock", self.runtime.slot_lock(slot)]
        if self._secret is not None:  # proof of origin, on stdin: never in argv or environ
            cmd.append(transport.PROOF_FLAG)
        env = dict(os.environ if self.host_env is None else self.host_env)
        # the adapter module must import in the host as it does here (cwd and sys.path)
        paths = [os.getcwd(), *(p for p in sys.path if p)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        popen = subprocess.Popen(cmd, stdin=subprocess.PIPE if self._secret else
                                 subprocess.DEVNULL, env=env)
        if popen.stdin is not None:
            try:
                popen.stdin.write(f"{self._secret}\n".encode())
                popen.stdin.close()
            except OSError:  # it died at once: its exit is reaped as usual
                pass
        self.procs[host_id] = _Proc(host_id, popen)
        log.info("started host %s (pid %d)", host_id, popen.pid)

    # ------------------------------------------------------------------ main loop

    def run(self, on_ready: Callable[[str], None] | None = None) -> int:
        """Serve until stopped; returns the process exit code. ``on_ready`` is called with
        the bound endpoint once sockets are listening."""
        metrics = None
        if self.metrics_listen is not None:  # prometheus_client only when asked for
            try:
                from threadhost.metrics import Metrics
            except ImportError:
                raise BrokerError("--metrics needs prometheus_client: "
                                  "pip install 'threadhost[metrics]'") from None
            metrics = Metrics()
            try:
                self.metrics_endpoint = metrics.serve(self.metrics_listen)
            except (OSError, ValueError) as exc:
                raise BrokerError(f"cannot serve metrics on {self.metrics_listen}: "
                                  f"{exc}") from None
            log.info("metrics on http://%s:%d/metrics", *self.metrics_endpoint)
        front, back, backend = self._bind()
        rsock, wsock = socket.socketpair()
        rsock.setblocking(False)
        wsock.setblocking(False)
        old_fd = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
        old_handlers = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        }
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(back, zmq.POLLIN)
        poller.register(rsock, zmq.POLLIN)
        now = time.monotonic()
        gate = Gate(self.config, self.make_policy, now,
                    info={"broker_pid": os.getpid(), "endpoint": self.bound_endpoint},
                    token=f"broker-{os.getpid()}-{os.urandom(6).hex()}",
                    observer=metrics.observe if metrics is not None else None)
        snapshot_at = now  # next status snapshot for the metrics' gauges
        exit_code: int | None = None
        stop_signals = 0
        if self.target is None:
            log.info("listening on %s, hosts attach to %s", self.bound_endpoint,
                     self.bound_backend)
        else:
            log.info("listening on %s, serving %s", self.bound_endpoint, self.target)
        if on_ready is not None:
            on_ready(self.bound_endpoint or self.endpoint)
        try:
            exit_code = self._act(gate.start(now), front, back, backend)
            # The gate's next wake-up is recomputed after each tick, not per message: calls
            # and replies only ever move deadlines later (or start ones far in the future),
            # and next_wakeup is capped at one second, so a cached value is never too late.
            wake_at = gate.next_wakeup(now)
            trim = _malloc_trim()
            trim_at: float | None = None  # when to hand freed heap back to the system
            rfd = rsock.fileno()
            items: list[tuple[Any, int]] = [(front, _POLLIN), (back, _POLLIN), (rfd, _POLLIN)]
            poll = zmq.zmq_poll
            monotonic = time.monotonic
            while exit_code is None:
                now = monotonic()
                due = wake_at if trim_at is None else min(wake_at, trim_at)
                timeout_ms = max(0, int((due - now) * 1000) + 1)
                on_front = on_back = on_signal = False
                for sock, _ in poll(items, timeout_ms):
                    if sock is front:
                        on_front = True
                    elif sock is back:
                        on_back = True
                    else:
                        on_signal = True
                if on_front:  # client traffic (host heartbeats do not count)
                    if trim is not None:
                        trim_at = monotonic() + _TRIM_AFTER_IDLE  # now: after the poll
                elif trim_at is not None and monotonic() >= trim_at:
                    trim_at = None
                    if trim is not None:
                        trim()
                if on_signal:
                    with contextlib.suppress(BlockingIOError):
                        rsock.recv(4096)
                    signals, self._signals = self._signals, []
                    for sig in signals:
                        if sig == signal.SIGCHLD:
                            continue
                        stop_signals += 1
                        name = signal.Signals(sig).name
                        now = monotonic()
                        if stop_signals == 1:
                            acts = gate.shutdown(now, f"{name} received")
                        else:
                            acts = gate.force_stop(now, f"second signal ({name}): forced stop")
                        exit_code = _first(exit_code, self._act(acts, front, back, backend))
                    exit_code = _first(exit_code, self._reap(gate, front, back, backend))
                if on_front:
                    exit_code = _first(exit_code, self._on_front(gate, front, back, backend))
                if on_back:
                    exit_code = _first(exit_code, self._on_back(gate, front, back, backend))
                now = monotonic()
                if exit_code is None and (now >= wake_at or gate.needs_tick):
                    exit_code = self._act(gate.tick(now), front, back, backend)
                    wake_at = gate.next_wakeup(now)
                    if metrics is not None and now >= snapshot_at:
                        metrics.update(gate.status(now))
                        snapshot_at = now + 1.0
        finally:
            signal.set_wakeup_fd(old_fd)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            self._cleanup(front, back)
            rsock.close()
            wsock.close()
        return exit_code

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._signals.append(signum)

    def _on_front(
        self, gate: Gate, front: zmq.Socket[bytes], back: zmq.Socket[bytes], backend: str
    ) -> int | None:
        """Handle one client message."""
        who: str | None = None
        try:
            if self._roles is None:
                # one message per ready socket per poll, not drained until zmq.Again (a
                # raised exception, ~6 µs): the poll it returns to is needed anyway
                frames = recv_frames(front, _NOBLOCK)
            else:
                frames, who = transport.recv_frames_user(front, _NOBLOCK)
        except zmq.Again:  # the poll said readable; never seen, but never fatal either
            return None
        now = time.monotonic()
        if len(frames) == 3 and frames[1] == HEADER:  # a DEALER's message: the common case
            route: tuple[bytes, ...] = (frames[0],)
            payload = frames[1:]
        elif len(frames) > 1 and frames[1] == b"":  # REQ-style envelope
            route = (frames[0], b"")
            payload = frames[2:]
        else:
            route = (frames[0],)
            payload = frames[1:]
        try:
            msg = decode_frames(payload, self.max_size)
        except ProtocolError as exc:
            return self._act(gate.bad_client_message(route, exc), front, back, backend)
        if self._roles is not None and self._denied(gate, front, route, msg, who, now):
            return None
        return self._act(gate.client_message(now, route, msg), front, back, backend)

    def _denied(self, gate: Gate, front: zmq.Socket[bytes], route: tuple[bytes, ...],
                msg: Any, who: str | None, now: float) -> bool:
        """Roles on a CURVE front end (docs/protocol.md §13): True when this broker answered
        the request itself (refused, or a caller's reduced status)."""
        assert self._roles is not None
        role = self._roles.role(who)
        if role == transport.OPERATOR_ROLE:
            return False
        kind = getattr(msg, "kind", "")
        rid = getattr(msg, "id", None)
        rid = rid if isinstance(rid, int) else None
        if role is None or transport.needs_operator(kind):
            self._security_log((kind, who or "?"),
                               "refused %r from key %s (%s): it needs an operator key", kind,
                               who or "?", role or "unknown")
            self._send(front, route, ErrorReply(
                id=rid, code=ErrorCode.PERMISSION_DENIED,
                message=f"permission denied: {kind} needs an operator key"))
            return True
        if type(msg) is Status:
            self._send(front, route, StatusReply(
                id=msg.id, status=transport.reduced_status(gate.status(now))))
            return True
        return False

    def _on_back(
        self, gate: Gate, front: zmq.Socket[bytes], back: zmq.Socket[bytes], backend: str
    ) -> int | None:
        """Handle one host message."""
        try:
            frames = recv_frames(back, _NOBLOCK)
        except zmq.Again:
            return None
        ident = frames[0].decode("utf-8", "replace")
        host_id = ident[:-3] if ident.endswith("/hb") else ident
        try:
            if len(frames) != 3:
                raise protocol_error(f"expected 2 frames (header, body), got {len(frames) - 1}")
            msg = decode_frames(frames[1:], self.max_size)
        except ProtocolError as exc:
            return self._act(gate.bad_host_message(host_id, exc), front, back, backend)
        if self._secret is not None and host_id not in self._proven and not self._proves(
                host_id, msg):
            return None
        return self._act(gate.host_message(time.monotonic(), host_id, msg), front, back, backend)

    def _proves(self, host_id: str, msg: Any) -> bool:
        """Spawn mode, a host that has not proved itself yet: its ``ready`` must carry the
        run's secret (then it is proven); before that only heartbeats and a goodbye of a
        host this broker started pass. Anything else is dropped and logged (R62)."""
        kind = type(msg)
        started = host_id in self.procs
        if kind is Ready:
            proof = msg.proof if isinstance(msg.proof, str) else ""
            assert self._secret is not None
            if started and _compare_digest(proof.encode(), self._secret.encode()):
                self._proven.add(host_id)
                return True
            self._security_log(("ready", host_id), "dropped a ready from %r: %s", host_id,
                               "no proof that this broker started it" if started
                               else "not a host this broker started")
            return False
        if started and kind in (Heartbeat, Goodbye):
            return True
        name = str(getattr(msg, "kind", "?"))
        self._security_log((name, host_id), "dropped a %r message from %r: not a host that "
                           "proved it was started by this broker", name, host_id)
        return False

    def _security_log(self, what: tuple[str, str], text: str, *args: Any) -> None:
        """A warning the first time for each (kind, peer) — up to 100 of them — then one
        in 1000 refusals: a loop of forged or refused requests must not flood the log."""
        self._refusals += 1
        n = self._refusals
        seen = self._refused_seen
        if what not in seen and len(seen) < 100:
            seen.add(what)
            log.warning(text, *args)
        elif n % 1000 == 0:
            log.warning(text + f" ({n} security refusals so far)", *args)

    def _reap(
        self, gate: Gate, front: zmq.Socket[bytes], back: zmq.Socket[bytes], backend: str
    ) -> int | None:
        for host_id, proc in list(self.procs.items()):
            rc = proc.popen.poll()
            if rc is None:
                continue
            del self.procs[host_id]
            self._proven.discard(host_id)
            how = f"killed by signal {signal.Signals(-rc).name}" if rc < 0 else f"exit code {rc}"
            log.info("host %s (pid %d) ended: %s", host_id, proc.popen.pid, how)
            code = self._act(gate.host_exited(time.monotonic(), host_id, how), front, back,
                             backend)
            if code is not None:
                return code
        return None

    def _send(self, sock: zmq.Socket[bytes], route: tuple[bytes, ...], msg: Any) -> None:
        try:
            transport.send_routed(sock, route, encode_body(msg))
        except zmq.ZMQError as exc:  # peer gone (EHOSTUNREACH) or its queue is full (EAGAIN)
            log.debug("dropped a message to a vanished peer: %s", exc)
        except Exception as exc:  # an unencodable value must not kill the broker
            log.error("could not encode %s: %s", type(msg).__name__, exc)

    def _act(
        self,
        actions: list[Action],
        front: zmq.Socket[bytes],
        back: zmq.Socket[bytes],
        backend: str,
    ) -> int | None:
        exit_code: int | None = None
        for action in actions:
            if type(action) is ToHost:
                key = (action.host_id + "/hb") if action.heartbeat_socket else action.host_id
                route = self._host_routes.get(key)
                if route is None:
                    route = self._host_routes[key] = (key.encode(),)
                self._send(back, route, action.message)
            elif type(action) is ToClient:
                self._send(front, action.route, action.message)
            elif type(action) is StartHost:
                log.info("starting host %s: %s", action.host_id, action.reason)
                try:
                    self._start_host(action.host_id, backend, action.slot)
                except OSError as exc:
                    log.error("cannot start host: %s", exc)
                    exit_code = 1
            elif type(action) is KillHost:
                proc = self.procs.get(action.host_id)
                log.warning("killing host %s: %s", action.host_id, action.reason)
                if proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.popen.kill()
            elif type(action) is Log:
                getattr(log, action.level, log.info)("%s", action.text)
            elif type(action) is Stopped:
                log.info("stopped: %s", action.reason)
                self.stop_reason = action.reason
                exit_code = action.exit_code
        return exit_code

    def _cleanup(self, front: zmq.Socket[bytes], back: zmq.Socket[bytes]) -> None:
        for proc in self.procs.values():
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)
        self.procs.clear()
        front.close(linger=0)
        back.close(linger=0)
        self._stop_guard()
        if self._ctx is not None:
            self._ctx.term()
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
