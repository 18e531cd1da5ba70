"""The host process: loads an adapter and runs every library call on one thread it owns.

Theory of operation
-------------------
``python -m threadhost.host --connect ENDPOINT --host-id ID MODULE[:CLASS]`` is started by
the broker (``threadhost serve``), never by users. It runs two threads:

* the **library thread** owns the *call socket* (DEALER, routing id ``ID``). With
  ``--lock PATH`` it first takes the slot's lock (below). It imports the adapter, runs
  ``setup`` (and ``verify``, when the adapter has one and no start-up slow call), says
  ``ready``, then loops: receive a ``call``, validate the arguments against the declared
  signature (bad input never reaches the library), run it, answer ``result`` or a typed
  ``error``. On ``shutdown`` (or SIGTERM) it finishes the current call, runs ``teardown`` —
  all on this same thread — and says ``goodbye``.
* the **main thread** never runs library code. It owns the *heartbeat socket* (DEALER,
  routing id ``ID/hb``) and sends a ``heartbeat`` every interval, carrying the id of the call
  the library thread is running, so the broker can tell "busy in a 30 s slow call" from
  "dead". It also handles signals (SIGINT is ignored: Ctrl-C reaches the whole process
  group, and the broker decides when the host stops) and exits when its parent is gone.

Proof of origin and keys (docs/protocol.md §13)
-----------------------------------------------
With ``--proof-stdin`` (``serve`` passes it) the host reads one line from its stdin — the
broker's per-run secret, never on the command line or in the environment — before loading
the adapter, and sends it as ``ready.proof`` (R62). With ``--server-key``/``--secret-key``
(attach mode, a host on another machine) both sockets are CURVE clients of the back end.

verify (docs/protocol.md §11, R54)
----------------------------------
After every slow call, whatever its outcome, the library thread runs the adapter's
``verify`` (if it defines one) before answering. If ``verify`` raises, the answer is the
``unfit`` error — ``verify failed after 'NAME': Type: message``, followed by ``('NAME' itself
failed: ...)`` when the slow call raised too — instead of the slow call's own, and the host
refuses every fast call with ``unfit`` (after checking its arguments, without calling the
library) until a later slow call passes ``verify``. At start-up, with no start-up slow call,
a failing ``verify`` ends the host: ``teardown``, ``goodbye(ok=false, code=unfit)``, exit 4.

The slot lock (``--lock PATH``, docs/protocol.md §12)
-----------------------------------------------------
Before importing the adapter the library thread takes an exclusive ``flock`` on PATH
(``serve`` passes ``<runtime dir>/<service>/slot-N.lock``), writes its pid into it, and never
releases it: the kernel does when the process exits, however it exits. While another process
holds it (the slot's previous instance, e.g. still finishing a slow call after its broker was
killed) the thread polls every 50 ms, the heartbeats carry ``busy_id`` 0 (before ``ready``:
"waiting for the previous instance of this slot to exit") and the log says so once. Stopped
meanwhile (SIGTERM, parent gone), or unable to open the file, the host says
``goodbye(ok=false, code=unavailable)`` and exits 6. After taking the lock it checks that PATH
still names the file it locked (a holder may have removed it meanwhile), else it starts again.

Broker heartbeats and re-announcement (docs/protocol.md §12, R51)
----------------------------------------------------------------
Between its own beats the main thread *listens* on the heartbeat socket. A broker sends
each host it knows a ``heartbeat`` at least every interval, ``host_id`` carrying the broker's
*instance token* (fresh for each broker run) and ``pid`` the broker's pid; a broker answers
a heartbeat from a host it does not know (attach mode, after a broker restart) with one
marked ``stranger``: "I have no ``ready`` from you". :class:`BrokerWatch` (pure, time
injected) keeps the last token and when it last heard one (the ``ready`` sent on the call
socket counts as the first sign of the broker that received it) and decides:

* a broker heartbeat marked ``stranger``: ``ready`` again — whatever the token and timing
  (a broker killed before its first heartbeat to us and replaced at once: the new one's
  heartbeats are the first we hear, soon after our ``ready``, all with one token);
* a different token (a new broker), or any token after a silence longer than the broker
  timeout (``--broker-timeout``, default 3 s = 6 intervals; meanwhile the broker may have
  declared this host dead and forgotten it, or an older broker that marks nothing been
  restarted): ``ready`` again;
* else (the same token, within the broker timeout of the last sign): nothing is answered;
* silence for the broker timeout after a broker was heard: a warning, once ("broker gone;
  waiting for a broker on ENDPOINT"). The host keeps running and keeps its sockets (ZeroMQ
  reconnects by itself).

The ``ready`` sent again is the same message (host id, pid, description, fingerprint), and
it goes on the **call socket**: the main thread sets an event, and the library thread sends
it between calls (it wakes at least every 200 ms; after the running call, if one runs).
The two sockets reconnect independently after a broker restart; a ``ready`` that travels
the call socket's own connection reaches the broker only when that connection is up, so
the broker can always route its start-up calls back (on the heartbeat socket it could
arrive first, and the broker's start-up call be dropped). A broker that already knows the
host takes it as a sign of life.

Nothing is re-announced before the library thread sent the first ``ready`` (during loading
and ``setup``), and a host that never hears a broker heartbeat (older brokers send none)
behaves as before. The ``ready`` is handed from the library thread to the main thread once:
a (message, send time) tuple assigned to one attribute after it was sent (an atomic
reference swap), never changed afterwards by either thread.

A library that holds the GIL during a long call silences the heartbeats — and the main
thread's listening: broker heartbeats queued meanwhile are read late, which counts as a
silence, so such a host may re-announce once after the call (harmless, see above). The
broker judges it by that call's deadline (see ``threadhost.gate``).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

import zmq

from threadhost import transport
from threadhost.adapter import Adapter, AdapterSpec, CallSpec, load_adapter
from threadhost.errors import (
    AdapterError,
    BadArgumentsError,
    ProtocolError,
    RemoteError,
    ThreadhostError,
    UnknownCallError,
)
from threadhost.protocol import (
    DEFAULT_MAX_SIZE,
    Call,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Ready,
    Result,
    Shutdown,
    decode_body,
    encode,
    error_reply,
)
from threadhost.transport import PROOF_FLAG, ClientKeys, decode_frames, recv_frames

__all__ = ["BrokerWatch", "Host", "main"]

log = logging.getLogger("threadhost.host")

EXIT_OK = 0
EXIT_ADAPTER = 3
EXIT_SETUP = 4
EXIT_ORPHANED = 5
EXIT_NO_LOCK = 6

#: before ``ready``, a heartbeat with this ``busy_id`` means "waiting for the previous
#: instance of this slot to exit" (docs/protocol.md §12)
WAITING_BUSY_ID = 0
_LOCK_POLL = 0.05  # seconds between attempts to take a held slot lock
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # a planted symlink must not be truncated

_ANSWERS = (Result, ErrorReply)


class BrokerWatch:
    """When a host sends its ``ready`` again (docs/protocol.md §12, R51): a pure decision
    from the broker heartbeats it hears and when (``now`` is injected, monotonic seconds).
    Only the heartbeat thread uses it."""

    def __init__(self, broker_timeout: float) -> None:
        self.broker_timeout = broker_timeout
        self.announced_at: float | None = None  # when the first ready was sent
        self.token: str | None = None  # the last broker token heard
        self.heard: float | None = None  # when it was heard
        self.gone = False  # a broker was heard, then nothing for the broker timeout

    def announced(self, at: float) -> None:
        """The first ``ready`` went out on the call socket at ``at``."""
        if self.announced_at is None:
            self.announced_at = at

    def beat(self, token: str, stranger: bool, now: float) -> str | None:
        """A broker heartbeat (``token``, its ``stranger`` mark) at ``now``: why ``ready``
        must be sent again, or None (nothing is answered)."""
        if self.announced_at is None:
            return None  # still loading or in setup: the first ready is yet to come (R37)
        last = self.heard if self.heard is not None else self.announced_at
        new_token = self.token is not None and token != self.token
        self.token, self.heard, self.gone = token, now, False
        if new_token:
            return "a new broker"
        if stranger:
            return "a broker that has no ready from this host"
        if now - last > self.broker_timeout:
            return f"a broker after {now - last:.1f}s of silence"
        return None

    def silent(self, now: float) -> bool:
        """True, once, when a broker that was heard has been silent for the broker timeout
        (the caller warns); a later heartbeat re-arms it."""
        if self.heard is None or self.gone or now - self.heard <= self.broker_timeout:
            return False
        self.gone = True
        return True


class Host:
    """One host process: a library thread and a heartbeat (main) thread."""

    def __init__(
        self,
        target: str,
        endpoint: str,
        host_id: str,
        *,
        heartbeat_interval: float = 0.5,
        broker_timeout: float = 3.0,
        max_size: int = DEFAULT_MAX_SIZE,
        lock_path: str | None = None,
        proof: str | None = None,
        keys: ClientKeys | None = None,
    ) -> None:
        self.target = target
        self.proof = proof  # the run's secret from a spawning broker (R62), sent in ready
        self.keys = keys  # CURVE keys to attach to a broker's back end (attach mode)
        self.lock_path = lock_path
        self.endpoint = endpoint
        self.host_id = host_id
        self.heartbeat_interval = heartbeat_interval
        self.broker_timeout = broker_timeout
        self.max_size = max_size
        self.ctx = zmq.Context()
        self.stop_requested = threading.Event()
        self.exit_code = EXIT_OK
        # (request id, monotonic start) of the call running on the library thread, or None.
        # Written by the library thread, read by the heartbeat thread (a tuple swap is atomic).
        self.busy: tuple[int, float] | None = None
        # (the ready sent on the call socket, monotonic time it was sent): set once by the
        # library thread after setup, read by the heartbeat thread to re-announce (R51)
        self.announced: tuple[Ready, float] | None = None
        # broker liveness as the heartbeat thread sees it (only that thread touches it)
        self.watch = BrokerWatch(broker_timeout)
        # set by the heartbeat thread: the library thread sends ``ready`` again on the call
        # socket (R51) before it waits for the next call
        self._reannounce = threading.Event()
        self._parent = os.getppid()
        # the library thread writes a byte here when it ends, so that the heartbeat thread,
        # polling its socket, stops at once (made by run)
        self._wake: socket.socket | None = None
        # the slot lock's file descriptor once taken: never closed, the kernel releases the
        # lock when the process exits, however it exits
        self._lock_fd: int | None = None
        # why this instance is unfit to serve (its verify failed after a slow call), or None
        self._unfit: str | None = None

    # ------------------------------------------------------------------ main thread

    def run(self) -> int:
        woken, self._wake = socket.socketpair()
        lib = threading.Thread(target=self._library_main, name="threadhost-library", daemon=True)
        lib.start()
        hb = transport.host_socket(self.ctx, self.endpoint, f"{self.host_id}/hb",
                                   heartbeat=True, keys=self.keys)
        poller = zmq.Poller()
        poller.register(hb, zmq.POLLIN)
        poller.register(woken, zmq.POLLIN)
        stop_since: float | None = None
        next_beat = time.monotonic()
        try:
            while lib.is_alive():
                now = time.monotonic()
                if now >= next_beat:
                    next_beat += self.heartbeat_interval
                    if next_beat <= now:  # late (a frozen process): no burst of beats
                        next_beat = now + self.heartbeat_interval
                    self._beat(hb)
                    if os.getppid() != self._parent and self.exit_code != EXIT_ORPHANED:
                        log.error("host %s: parent process gone, stopping", self.host_id)
                        self.stop_requested.set()
                        self.exit_code = EXIT_ORPHANED
                    if self.stop_requested.is_set():
                        stop_since = stop_since or now
                        if now - stop_since > 60.0:
                            log.error("host %s: library thread did not stop, exiting",
                                      self.host_id)
                            os._exit(EXIT_ORPHANED)
                wait = max(0.0, next_beat - time.monotonic())
                events = dict(poller.poll(int(wait * 1000) + 1))
                if hb in events:
                    self._listen(hb)
                if woken in events:  # the library thread is ending
                    lib.join(5.0)
                self._watch_broker(time.monotonic())
        finally:
            hb.close(linger=0)
            woken.close()
            self._wake.close()
        self.ctx.term()
        return self.exit_code

    def _beat(self, hb: zmq.Socket[bytes]) -> None:
        busy = self.busy
        beat = Heartbeat(
            host_id=self.host_id,
            pid=os.getpid(),
            busy_id=busy[0] if busy else None,
            busy_for=time.monotonic() - busy[1] if busy else 0.0,
        )
        with contextlib.suppress(zmq.Again):
            hb.send_multipart(encode(beat), zmq.NOBLOCK)

    def _listen(self, hb: zmq.Socket[bytes]) -> None:
        """Read what the broker sent to the heartbeat socket: only its heartbeats count."""
        while True:
            try:
                frames = recv_frames(hb, transport.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode_frames(frames, self.max_size)
            except ProtocolError as exc:  # nothing is answered on this socket
                log.debug("host %s: dropped a bad message on the heartbeat socket: %s",
                          self.host_id, exc)
                continue
            if type(msg) is Heartbeat:
                self._broker_beat(hb, msg, time.monotonic())
            else:
                log.debug("host %s: ignored a %r message on the heartbeat socket",
                          self.host_id, msg.kind)

    def _broker_beat(self, hb: zmq.Socket[bytes], beat: Heartbeat, now: float) -> None:
        """A heartbeat from a broker: ``ready`` again if the watch says so (R51)."""
        announced = self.announced
        if announced is not None:
            self.watch.announced(announced[1])
        back = self.watch.gone
        why = self.watch.beat(beat.host_id, beat.stranger, now)
        if back:
            log.info("host %s: a broker is back (token %s, pid %d)", self.host_id,
                     beat.host_id, beat.pid)
        if why is not None and not self._reannounce.is_set():
            log.info("host %s: %s (token %s, pid %d): sending ready again", self.host_id,
                     why, beat.host_id, beat.pid)
            self._reannounce.set()

    def _watch_broker(self, now: float) -> None:
        """Warn once when a broker that was heard falls silent for the broker timeout."""
        if self.watch.silent(now):
            log.warning("host %s: broker gone; waiting for a broker on %s", self.host_id,
                        self.endpoint)

    # ------------------------------------------------------------------ library thread

    def _library_main(self) -> None:
        sock = transport.host_socket(self.ctx, self.endpoint, self.host_id, heartbeat=False,
                                     keys=self.keys)
        try:
            self._serve(sock)
        except Exception:  # never leave the main thread waiting on a dead thread silently
            log.exception("host %s: library thread failed", self.host_id)
            self.exit_code = self.exit_code or 1
        finally:
            # a broker gets 2 s to take our last answers and goodbye; an orphan (its broker
            # died) has no one to send them to, and the slot's next instance waits for our
            # exit (the lock), so it leaves at once
            sock.close(linger=0 if self.exit_code == EXIT_ORPHANED else 2000)
            if self._wake is not None:
                with contextlib.suppress(OSError):
                    self._wake.send(b"x")

    def _send(self, sock: zmq.Socket[bytes], msg: Any) -> None:
        try:
            frames = encode(msg)
            if type(msg) in _ANSWERS and len(frames[1]) > self.max_size:
                # the broker would drop it unread and the caller would wait in vain (R18)
                raise ValueError(f"it is {len(frames[1])} bytes encoded, over the message "
                                 f"size limit of {self.max_size} bytes")
        except Exception as exc:  # an unencodable or oversized result value
            rid = getattr(msg, "id", None)
            frames = encode(
                ErrorReply(
                    id=rid,
                    code=ErrorCode.REMOTE_EXCEPTION,
                    message=f"the result could not be encoded: {exc}",
                    remote_type=type(exc).__name__,
                )
            )
        while True:
            try:
                transport.send_pair(sock, frames)
                return
            except zmq.Again:  # no broker connection yet (SNDTIMEO): wait, unless stopping
                if self.stop_requested.is_set():
                    log.warning("host %s: stopping with a %s unsent: no broker connection",
                                self.host_id, getattr(msg, "kind", "message"))
                    return

    def _serve(self, sock: zmq.Socket[bytes]) -> None:
        if self.lock_path is not None and not self._take_lock(sock, self.lock_path):
            return
        try:
            spec = load_adapter(self.target)
            instance = spec.instantiate()
        except AdapterError as exc:
            self._goodbye(sock, False, ErrorCode.ADAPTER, str(exc))
            self.exit_code = EXIT_ADAPTER
            return
        except Exception as exc:
            self._goodbye(sock, False, ErrorCode.ADAPTER, f"cannot load {self.target}: "
                          f"{type(exc).__name__}: {exc}")
            self.exit_code = EXIT_ADAPTER
            return
        try:
            instance.setup()
        except Exception as exc:
            log.error("host %s: setup failed:\n%s", self.host_id, traceback.format_exc())
            self._goodbye(sock, False, ErrorCode.REMOTE_EXCEPTION,
                          f"{spec.qualname}.setup failed: {type(exc).__name__}: {exc}")
            self.exit_code = EXIT_SETUP
            return
        if spec.has_verify and not spec.startup_calls:  # else: after the start-up slow calls
            problem = self._verify(instance)
            if problem is not None:
                text = f"{spec.qualname}.verify failed: {problem}"
                log.error("host %s: %s; not fit to serve, tearing down", self.host_id, text)
                with contextlib.suppress(Exception):
                    instance.teardown()
                self._goodbye(sock, False, ErrorCode.UNFIT, text)
                self.exit_code = EXIT_SETUP
                return
        ready = Ready(
            host_id=self.host_id,
            pid=os.getpid(),
            adapter=spec.describe(),
            fingerprint=spec.fingerprint,
            proof=self.proof,
        )
        self._send(sock, ready)
        self.announced = (ready, time.monotonic())  # the heartbeat thread may re-send it
        told = self._loop(sock, spec, instance)
        ok, text = True, ""
        try:
            instance.teardown()
        except Exception as exc:
            log.error("host %s: teardown failed:\n%s", self.host_id, traceback.format_exc())
            ok, text = False, f"{spec.qualname}.teardown failed: {type(exc).__name__}: {exc}"
        if not told:
            self._refuse_unread(sock)
        self._goodbye(sock, ok, None if ok else ErrorCode.REMOTE_EXCEPTION, text)

    def _take_lock(self, sock: zmq.Socket[bytes], path: str) -> bool:
        """Take the slot's exclusive lock (``flock`` on ``path``) before the library is
        loaded, waiting while the previous instance of the slot holds it; heartbeats say
        ``busy_id`` 0 meanwhile. False (a goodbye was sent) when stopped or unable to."""
        waiting_since: float | None = None
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _NOFOLLOW, 0o600)
            except OSError as exc:
                self._goodbye(sock, False, ErrorCode.UNAVAILABLE,
                              f"cannot open the slot lock {path}: {exc.strerror or exc}")
                self.exit_code = EXIT_NO_LOCK
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    self._goodbye(sock, False, ErrorCode.UNAVAILABLE,
                                  f"cannot lock {path}: {exc.strerror or exc}")
                    self.exit_code = EXIT_NO_LOCK
                    return False
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    self.busy = (WAITING_BUSY_ID, waiting_since)
                    log.warning("host %s: waiting for the previous instance to exit (%s held "
                                "by %s)", self.host_id, path, _holder(path))
                if self.stop_requested.is_set():
                    self.busy = None
                    self._goodbye(sock, False, ErrorCode.UNAVAILABLE,
                                  "stopped while waiting for the previous instance to exit "
                                  f"({path} held by {_holder(path)})")
                    self.exit_code = EXIT_NO_LOCK
                    return False
                time.sleep(_LOCK_POLL)
                continue
            # The lock is ours, but on the file we opened: if it was removed (or replaced)
            # meanwhile by whoever held it, another instance could lock the new file. Only a
            # lock on the file the path names now counts.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._lock_fd = fd
            self.busy = None
            if waiting_since is not None:
                log.info("host %s: the previous instance is gone after %.1fs; %s taken",
                         self.host_id, time.monotonic() - waiting_since, path)
            return True

    def _verify(self, instance: Adapter) -> str | None:
        """Run the adapter's ``verify`` (library thread): None if fit, else "Type: message"."""
        try:
            instance.verify()
        except Exception as exc:
            log.error("host %s: verify failed:\n%s", self.host_id, traceback.format_exc())
            return f"{type(exc).__name__}: {exc}"
        return None

    def _refuse_unread(self, sock: zmq.Socket[bytes]) -> None:
        """Stopping on its own (SIGTERM, parent gone), not told by its broker: calls that
        arrived and were not run are answered ``unavailable`` — they did not run, so the
        caller may retry them safely (instead of ``crashed``, outcome unknown)."""
        while True:
            try:
                frames = recv_frames(sock, transport.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode_body(frames[-1], self.max_size) if len(frames) == 2 else None
            except ProtocolError:
                continue
            if type(msg) is Call:
                self._send(sock, ErrorReply(
                    id=msg.id, code=ErrorCode.UNAVAILABLE,
                    message=f"unavailable: host {self.host_id} is stopping; the call did "
                            "not run"))

    def _goodbye(self, sock: zmq.Socket[bytes], ok: bool, code: ErrorCode | None, text: str
                 ) -> None:
        if not ok:
            log.error("host %s: %s", self.host_id, text)
        self._send(sock, Goodbye(host_id=self.host_id, ok=ok, code=code, message=text))

    def _loop(self, sock: zmq.Socket[bytes], spec: AdapterSpec, instance: Adapter) -> bool:
        """Serve calls until a stop; True if the broker said ``shutdown``."""
        max_size = self.max_size
        stopping = self.stop_requested.is_set
        reannounce = self._reannounce
        while not stopping():
            if reannounce.is_set() and self.announced is not None:
                reannounce.clear()  # on the call socket: it arrives over this connection
                self._send(sock, self.announced[0])
            try:
                frames = recv_frames(sock)  # waits up to RCVTIMEO, so a stop is seen
            except zmq.Again:
                continue
            try:
                msg = decode_frames(frames, max_size)
            except ProtocolError as exc:
                log.warning("host %s: dropped a bad message: %s", self.host_id, exc)
                if exc.request_id is not None:
                    self._send(sock, error_reply(exc.request_id, exc))
                continue
            if type(msg) is Call:
                self._send(sock, self._invoke(spec, instance, msg))
            elif type(msg) is Shutdown:
                log.info("host %s: shutdown (%s)", self.host_id, msg.reason)
                return True
            elif type(msg) is Heartbeat:  # brokers send them to ID/hb; never answered (R43)
                continue
            else:
                log.warning("host %s: ignored an unexpected %r message", self.host_id, msg.kind)
        return False

    def _invoke(self, spec: AdapterSpec, instance: Adapter, call: Call) -> Result | ErrorReply:
        decl = spec.calls.get(call.method)
        if decl is None:
            return error_reply(
                call.id, UnknownCallError(f"{spec.qualname} has no call {call.method!r}")
            )
        try:
            args, kwargs = decl.bind(call.args, call.kwargs)
        except BadArgumentsError as exc:
            return error_reply(call.id, exc)
        except ThreadhostError as exc:
            return error_reply(call.id, exc)
        if self._unfit is not None and decl.kind == "fast":
            # never a result from a state verify refused, even if a broker sends the call
            return ErrorReply(id=call.id, code=ErrorCode.UNFIT,
                              message=f"unfit: {self._unfit}; this instance serves no call "
                                      "until a slow call passes verify")
        self.busy = (call.id, time.monotonic())
        try:
            answer = self._run(spec, instance, decl, call.id, args, kwargs)
            if decl.kind == "slow" and spec.has_verify:
                answer = self._verify_after(spec, instance, decl.name, answer)
        finally:
            self.busy = None
        return answer

    def _run(self, spec: AdapterSpec, instance: Adapter, decl: CallSpec, rid: int,
             args: list[Any], kwargs: dict[str, Any]) -> Result | ErrorReply:
        try:
            value = getattr(instance, decl.name)(*args, **kwargs)
        except Exception as exc:
            return error_reply(
                rid,
                RemoteError(str(exc), remote_type=type(exc).__qualname__,
                            remote_traceback=traceback.format_exc()),
            )
        try:
            return Result(id=rid, value=decl.dump_result(value))
        except Exception as exc:
            return error_reply(
                rid,
                RemoteError(f"{spec.qualname}.{decl.name} returned a value that does not fit "
                            f"its declared return type: {exc}", remote_type=type(exc).__name__),
            )

    def _verify_after(self, spec: AdapterSpec, instance: Adapter, name: str,
                      answer: Result | ErrorReply) -> Result | ErrorReply:
        """After slow call ``name`` (answered ``answer``), whatever its outcome: run
        ``verify``; if it raises, the answer is ``unfit`` (naming both failures) and the
        instance refuses fast calls until a later slow call passes ``verify``."""
        try:
            instance.verify()
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            text = f"verify failed after {name!r}: {problem}"
            if type(answer) is ErrorReply:
                text += f" ({name!r} itself failed: {answer.message})"
            log.error("host %s: %s; not fit to serve\n%s", self.host_id, text,
                      traceback.format_exc())
            self._unfit = text
            return ErrorReply(id=answer.id, code=ErrorCode.UNFIT, message=text,
                              remote_type=type(exc).__qualname__,
                              traceback=traceback.format_exc())
        if self._unfit is not None:
            log.info("host %s: verify passed after %r: fit to serve again", self.host_id, name)
            self._unfit = None
        return answer


def _holder(path: str) -> str:
    """Who holds the slot lock at ``path``, for logs: "pid N" (each holder writes its pid
    into the file), or "another process"."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read(32).strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM us when the broker process dies (no orphans after a SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except Exception:  # best effort; the heartbeat thread also watches getppid()
        pass


def _describe(target: str) -> int:
    """Preflight for `threadhost serve`: load the adapter, print its description."""
    try:
        spec = load_adapter(target)
    except AdapterError as exc:
        print(exc, file=sys.stderr)
        return EXIT_ADAPTER
    except Exception as exc:
        print(f"cannot load adapter {target!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ADAPTER
    print(json.dumps(spec.describe(), default=str))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m threadhost.host",
        description="threadhost host process (started by `threadhost serve`).",
    )
    parser.add_argument("target", help="adapter MODULE[:CLASS]")
    parser.add_argument("--connect", help="broker back-end endpoint")
    parser.add_argument("--host-id", default="h0")
    parser.add_argument("--describe", action="store_true",
                        help="only load the adapter and print its description as JSON")
    parser.add_argument("--heartbeat", type=float, default=0.5, help="seconds between beats")
    parser.add_argument("--broker-timeout", type=float, default=3.0,
                        help="seconds without a broker heartbeat after which the broker "
                             "counts as gone (its next heartbeat gets ready again)")
    parser.add_argument("--max-size", type=int, default=DEFAULT_MAX_SIZE)
    parser.add_argument("--lock", metavar="PATH", default=None,
                        help="hold an exclusive lock (flock) on PATH from before the adapter "
                             "is loaded until the process exits, waiting while another "
                             "process holds it: one library instance per lock file")
    parser.add_argument(PROOF_FLAG, action="store_true",
                        help="read the spawning broker's per-run secret from stdin (one "
                             "line) and prove it in ready (serve mode; never on the command "
                             "line)")
    parser.add_argument("--server-key", metavar="FILE", default=None,
                        help="the broker's public key (CURVE; attach mode)")
    parser.add_argument("--secret-key", metavar="FILE", default=None,
                        help="this host's NAME.key_secret (CURVE; attach mode)")
    parser.add_argument("--log-level", default="INFO")
    ns = parser.parse_args(argv)
    if ns.describe:
        return _describe(ns.target)
    if not ns.connect:
        parser.error("--connect is required")
    from threadhost.logs import setup_logging

    setup_logging(ns.log_level, None, "host",  # THREADHOST_LOG_FORMAT, from the broker
                  f"%(asctime)s host[{os.getpid()}] %(levelname)s %(message)s")
    _die_with_parent()
    if not ns.heartbeat > 0 or not ns.broker_timeout > 0:
        parser.error("--heartbeat and --broker-timeout must be positive numbers of seconds")
    proof = None
    if ns.proof_stdin:  # read it first, then let go of the pipe (nothing else reads stdin)
        proof = sys.stdin.readline().strip() or None
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
    try:
        keys = transport.client_keys(ns.server_key, ns.secret_key)
    except ThreadhostError as exc:
        parser.error(str(exc))
    host = Host(ns.target, ns.connect, ns.host_id, heartbeat_interval=ns.heartbeat,
                broker_timeout=ns.broker_timeout, max_size=ns.max_size, lock_path=ns.lock,
                proof=proof, keys=keys)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    def on_sigterm(*_: object) -> None:
        if ns.connect and os.getppid() != host._parent:  # the parent-death signal: orphaned
            host.exit_code = EXIT_ORPHANED  # (no linger: the slot's next instance waits)
        host.stop_requested.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    return host.run()


if __name__ == "__main__":
    sys.exit(main())
