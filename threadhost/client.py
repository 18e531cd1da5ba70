"""Clients: ``threadhost.connect(endpoint)`` and its asyncio twin.

Both speak through one sans-IO core (:class:`RequestCore`): it numbers requests, builds the
frames (refusing, before anything is sent, a value the protocol cannot carry), and turns a
reply into a value or a typed exception, discarding any reply whose id is not the one
awaited (a late answer to an earlier, timed-out call is never taken for this call's answer).
Messages go through the protocol codec (:mod:`threadhost.protocol`, msgspec); pydantic is
not imported for it.

* :class:`Client` (sync) is safe to share between threads: each thread that calls gets its
  own DEALER socket on the client's endpoint (created on its first call), so threads never
  wait for each other and every call keeps its own timeout.
* :class:`AsyncClient` pipelines many calls on one ``zmq.asyncio`` socket: it sends without
  blocking and one reader task, woken by the socket's file descriptor, delivers every reply
  already queued per wake-up.

**Attribute calls.** ``lib.calc(5)`` is ``lib.call("calc", 5)`` on both clients (``await``
it on the asyncio one). No adapter call is ever shadowed by a client member: once the client
knows the served adapter's calls (from a ``describe``, which the first use of a member that
talks to the service makes), a public attribute that names one of them *is* that call, also
when the client has a member of that name (``status``, ``close``, ``timeout``...). The
client's own members are always reachable through the class: ``Client.status(lib)``,
``Client.close(lib)``. ``dir(lib)`` lists the adapter's calls. See docs/proxy.md.

**No service.** Sockets use ``IMMEDIATE`` (a request is never queued for a broker that is
not connected, so a restarted broker never receives a stale request) and ``LINGER=0``;
ZeroMQ reconnects by itself, so a client survives a broker restart on the same endpoint.
When a call finds no connection, it waits for one and watches the socket's connection
attempts (a ZeroMQ socket monitor): after a short grace for a service that is starting
(:data:`NO_SERVICE_GRACE`), an attempt that fails (nothing listens, or the peer does not
speak ZMTP), or no connection within the timeout, raises
:class:`~threadhost.UnavailableError` ("no service at ...") — the request was not sent. A
request that was sent and not answered in time raises
:class:`~threadhost.CallTimeoutError` (it may have run). Every call returns or raises
within its timeout.

**CURVE** (``server_key=``, ``secret_key=``; docs/security.md): the socket's connection
events are watched from before its first connection until a call goes through; a refused
handshake (unknown key, CURVE on one side only) raises
:class:`~threadhost.AuthenticationError` at once, connections dropped during the handshake
(a wrong server key) raise it at the end of the call's timeout. Nothing was sent.

**Retry** (opt-in, :class:`Retry`): calls refused with
:class:`~threadhost.TryLaterError` (busy, unavailable, no service) are retried after the
error's ``retry_after`` while that ends before the retry's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import decimal
import enum
import itertools
import math
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar, cast

import zmq
import zmq.asyncio
from zmq.backend import zmq_poll

from threadhost import transport
from threadhost.errors import (
    BadArgumentsError,
    CallTimeoutError,
    ProtocolError,
    ThreadhostError,
    TryLaterError,
    UnavailableError,
)
from threadhost.protocol import (
    DEFAULT_MAX_SIZE,
    HEADER,
    Describe,
    Description,
    Maintain,
    MaintainReply,
    Ping,
    Pong,
    Result,
    Status,
    StatusReply,
    encode,
    encode_call,
    exception_from_error,
)
from threadhost.transport import (
    ClientKeys,
    client_keys,
    decode_frames,
    recv_frames,
    send_frame,
)

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client", "RequestCore", "Retry", "connect"]

DEFAULT_TIMEOUT = 10.0
#: Longest wait of ``dir(client)`` (and of ``close()``) for the served adapter's calls.
LEARN_TIMEOUT = 1.0
#: A call that finds no connection waits this long (or its timeout, if shorter) for a
#: service that may be starting; after that, the next failed connection attempt raises
#: UnavailableError ("no service at ...").
NO_SERVICE_GRACE = 1.0
_MIN_RETRY_WAIT = 0.01
#: A service that could not tell its calls (no host ready yet) is not asked again sooner.
_ASK_AGAIN_AFTER = 1.0

# plain ints: pyzmq's send_multipart/recv_multipart do enum arithmetic on every frame
_NOBLOCK = transport.NOBLOCK
_MORE_NOBLOCK = transport.MORE_NOBLOCK
_POLLIN = transport.POLLIN

_F = TypeVar("_F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- values


_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_KEY_TYPES = (str, int, float, bool, bytes, type(None))
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})
_MAX_DEPTH = 500


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _uncarriable(value: Any, path: str, depth: int = 0) -> tuple[str, str] | None:
    """``(path, reason)`` of the first value inside ``value`` the protocol cannot carry,
    or None. Models and dataclasses are looked into (the codec sends their
    fields)."""
    if depth > _MAX_DEPTH:
        return path, f"values nested more than {_MAX_DEPTH} levels deep cannot be carried"
    if value is None or isinstance(value, bool | float | str | bytes | bytearray):
        return None
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return path, (
            f"int {_short(value)} is out of range: the protocol carries integers from "
            "-2**63 to 2**64-1 (send a str, or bytes)"
        )
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _uncarriable(item, f"{path}[{index}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}[{_short(key)}]"
            if not isinstance(key, _KEY_TYPES):
                return where, (
                    f"a map key must be a str, int, float, bool, bytes or None, "
                    f"not {type(key).__name__}"
                )
            found = _uncarriable(key, where, depth + 1) or _uncarriable(item, where, depth + 1)
            if found:
                return found
        return None
    if isinstance(value, set | frozenset):
        return path, f"{type(value).__name__} {_short(value)} cannot be carried (send a list)"
    if isinstance(value, datetime.datetime):
        if value.utcoffset() is None:
            return path, (
                f"naive datetime {_short(value)} cannot be carried: the protocol carries an "
                "instant (give it a tzinfo, e.g. datetime.UTC)"
            )
        return None
    if isinstance(value, datetime.date | uuid.UUID):
        return None
    if isinstance(value, decimal.Decimal):
        if value.is_finite():
            return None
        return path, f"Decimal {_short(value)} cannot be carried (only finite decimals)"
    if isinstance(value, enum.Enum):
        return _uncarriable(value.value, path, depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _uncarriable(fields, path, depth + 1)
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump) and hasattr(type(value), "model_fields"):
        try:
            return _uncarriable(dump(mode="python"), path, depth + 1)
        except Exception:  # its own serializer refused it: say so below
            pass
    return path, (
        f"{type(value).__qualname__} {_short(value)} cannot be carried (the protocol "
        "carries None, bool, int, float, str, bytes, lists, tuples, dicts, enums, "
        "aware datetimes, dates, UUIDs, Decimals, pydantic models and dataclasses)"
    )


def _refuse_arguments(
    method: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any], exc: Exception
) -> BadArgumentsError:
    found = _uncarriable(list(args), "args") or _uncarriable(kwargs, "kwargs")
    if found is None:
        return BadArgumentsError(f"{method}: the arguments cannot be carried: {exc}")
    path, reason = found
    return BadArgumentsError(f"{method}: {path}: {reason}")


class RequestCore:
    """Sans-IO request/reply bookkeeping shared by the sync and async clients."""

    def __init__(self, fingerprint: str | None = None, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.fingerprint = fingerprint
        self.max_size = max_size
        #: the next request id (a bound C method: no Python frame per call)
        self.next_id: Callable[[], int] = itertools.count(1).__next__

    def call_frames(
        self, rid: int, method: str, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any],
        timeout: float | None,
    ) -> list[bytes]:
        """The frames of a call; :class:`BadArgumentsError` (nothing sent) for a value the
        protocol cannot carry (``2**70``, a set, an arbitrary object, at any depth)."""
        if type(method) is not str:
            raise TypeError(f"a call name must be a str, not {type(method).__name__}")
        # msgspec would pack a set (as an array) or a naive datetime (as a string): values
        # other than plain scalars are checked before (walked by _uncarriable), scalars
        # only when packing fails (the common call: its types are checked in C, no walk)
        if not _PLAIN.issuperset(map(type, args)) or (
            kwargs and not _PLAIN.issuperset(map(type, kwargs.values()))
        ):
            found = _uncarriable(list(args), "args") or _uncarriable(kwargs, "kwargs")
            if found is not None:
                raise BadArgumentsError(f"{method}: {found[0]}: {found[1]}")
        try:
            return [HEADER, encode_call(rid, method, list(args), kwargs,
                                        None if timeout is None else float(timeout),
                                        self.fingerprint)]
        except (TypeError, ValueError, OverflowError) as exc:  # 2**70, an object()...
            raise _refuse_arguments(method, args, kwargs, exc) from None

    def parse(self, frames: list[bytes]) -> Any:
        """Decode a reply into a :mod:`threadhost.protocol` message; raise ProtocolError for
        garbage."""
        return decode_frames(frames, self.max_size)

    @staticmethod
    def reply_id(msg: Any) -> int | None:
        return getattr(msg, "id", None)

    @staticmethod
    def outcome(msg: Any) -> Any:
        """The value carried by a reply, or raise the typed error it carries."""
        kind = msg.kind
        if kind == "result":
            return msg.value
        if kind == "error":
            raise exception_from_error(msg)
        return msg


def _fast_calls(msg: Description) -> frozenset[str]:
    """The client-callable call names of a ``describe`` answer."""
    calls = msg.adapter.get("calls", []) if isinstance(msg.adapter, dict) else []
    return frozenset(
        str(c["name"]) for c in calls
        if isinstance(c, dict) and c.get("kind") == "fast" and isinstance(c.get("name"), str)
    )


# --------------------------------------------------------------------------- retry


@dataclasses.dataclass(frozen=True)
class Retry:
    """Opt-in retry: ``threadhost.connect(ep, retry=threadhost.Retry(deadline=5.0))``.

    A call refused with :class:`~threadhost.TryLaterError` — :class:`~threadhost.BusyError`
    (a slow call runs), :class:`~threadhost.UnavailableError` (no host ready, or no service
    at the endpoint) — is made again after the error's ``retry_after`` (``default_wait``
    when the error has none), as long as that wait ends before ``deadline`` seconds after
    the call began; otherwise the last error is raised at once (with a note saying so).
    The deadline bounds the whole call: each attempt waits at most the call's timeout or
    the time left, whichever is shorter. Nothing else is retried: after a
    :class:`~threadhost.CallTimeoutError` or :class:`~threadhost.HostCrashedError` the
    call may have run.
    """

    deadline: float
    default_wait: float = 0.1

    def __post_init__(self) -> None:
        for name in ("deadline", "default_wait"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 < value < math.inf
            ):
                raise ValueError(f"Retry {name} must be a positive number of seconds, "
                                 f"not {value!r}")

    def wait(self, exc: TryLaterError, deadline: float, attempts: int, began: float
             ) -> float | None:
        """Seconds to wait before the next attempt, or None (give up: note why on exc)."""
        wait = exc.retry_after if exc.retry_after is not None else self.default_wait
        wait = max(float(wait), _MIN_RETRY_WAIT)
        now = time.monotonic()
        if now + wait < deadline:
            return wait
        exc.add_note(
            f"threadhost.Retry: gave up after {attempts} attempt(s) in {now - began:.2f}s: "
            f"waiting {wait:.2f}s more would pass the {self.deadline:g}s deadline"
        )
        return None


def _check_retry(retry: Retry | None) -> Retry | None:
    if retry is not None and not isinstance(retry, Retry):
        raise TypeError(f"retry must be a threadhost.Retry or None, not {retry!r}")
    return retry


def _check_timeout(timeout: float, what: str = "timeout") -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
        0 < timeout < math.inf
    ):
        raise ValueError(f"{what} must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


# --------------------------------------------------------------------------- members


class _Own:
    """A member of a client that gives way to an adapter call of the same name.

    Once the client knows the served adapter's calls, an instance attribute that names one
    of them is that call. Before that, a member with ``learns`` set asks the service on
    first use (a ``describe``); others are the client's own. Through the class
    (``Client.status``) it is always the client's own function.
    """

    def __init__(self, fn: Callable[..., Any], *, learns: bool = False, quiet: bool = False,
                 value: bool = False) -> None:
        self.fn = fn
        self.name = fn.__name__
        self.learns = learns
        self.quiet = quiet
        self.value = value
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.fn
        calls = obj._t.calls
        if calls is not None:
            if self.name in calls:
                return obj._adapter_call(self.name)
        elif self.learns:
            return obj._learning(self.name, self.fn, self.quiet)
        if self.value:
            return self.fn(obj)
        method = MethodType(self.fn, obj)
        if calls is not None:  # settled for good: found directly from now on
            obj.__dict__[self.name] = method
        return method


def _asks(fn: _F) -> _F:
    """A member that talks to the service: its first use learns the served calls."""
    return cast(_F, _Own(fn, learns=True))


def _closes(fn: _F) -> _F:
    """``close``: learns the served calls if it can (briefly), else is the client's own."""
    return cast(_F, _Own(fn, learns=True, quiet=True))


def _local(fn: _F) -> _F:
    """A member that does not talk to the service: gives way once the calls are known."""
    return cast(_F, _Own(fn))


def _value(fn: Callable[[Any], Any]) -> Any:
    """A read-only value member (like a property) that gives way to an adapter call."""
    return _Own(fn, value=True)


# --------------------------------------------------------------------------- sockets


class _Watch:
    """The connection attempts of one socket, from a ZeroMQ socket monitor read without
    blocking. ``failures`` counts failed attempts (nothing accepted the connection, or the
    peer failed the ZMTP handshake); ``refused`` says why the security handshake failed
    (the key was refused, CURVE on one side only...), raised as AuthenticationError."""

    def __init__(self, monitor: zmq.Socket[Any], secure: bool = False) -> None:
        self.sock = monitor
        self.secure = secure
        self.failures = 0
        self.refused_handshake = False
        self.refused: str | None = None
        self.connected = False  # a handshake succeeded at least once
        self.dropped = 0  # CURVE: connections dropped before any handshake succeeded

    def read(self) -> None:
        while True:
            try:
                frames = self.sock.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return
            found = transport.read_event(frames)
            if found is None:
                continue
            event, value = found
            if event == transport.EV_SUCCEEDED:
                self.connected = True
                self.refused = None
            elif event == transport.EV_CLOSED:
                self.failures += 1
            elif event in transport.HANDSHAKE_FAILED:
                why = transport.auth_failure(event, value, self.secure)
                if why is not None:
                    self.refused = why
                elif not self.connected and event == transport.EV_NO_DETAIL:
                    # dropped during the handshake with no reason given: with keys, perhaps
                    # a wrong server key; without, perhaps a service that requires CURVE
                    # (its mechanism-mismatch event does not always reach us): judged at
                    # the deadline, unless a clearer event comes first
                    self.dropped += 1
                    continue
                self.failures += 1
                self.refused_handshake = True

    def check_refused(self, what: str, endpoint: str) -> None:
        """Raise AuthenticationError when the security handshake was refused."""
        if self.refused is not None:
            raise transport.authentication_error(what, endpoint, self.refused)

    def no_service(self, what: str, endpoint: str, timeout: float | None) -> ThreadhostError:
        """The error of a call that found no connection (``timeout``: it waited that long;
        None: a connection attempt failed). A CURVE client whose connections were all
        dropped during the handshake (a wrong server key: the server cannot read our hello
        and says nothing) gets AuthenticationError at the end of its wait."""
        if timeout is not None and not self.connected and self.dropped:
            if self.secure:
                why = (f"no connection within {timeout:g}s: the connection was dropped during "
                       f"the CURVE handshake {self.dropped} time(s) (wrong server key?)")
            else:
                why = (f"no connection within {timeout:g}s: the service closed the connection "
                       f"during the handshake {self.dropped} time(s): it requires CURVE keys "
                       "(give server_key and secret_key, --server-key/--secret-key), or it is "
                       "not a threadhost service")
            return transport.authentication_error(what, endpoint, why)
        if timeout is None:
            if self.refused_handshake:
                why = "the peer there does not speak the threadhost protocol (handshake failed)"
            else:
                why = "nothing accepted the connection"
        else:  # nothing answered the connection attempt, or no protocol handshake
            why = f"no connection within {timeout:g}s"
        return UnavailableError(f"{what}: no service at {endpoint}: {why}; the call was not sent")

    def close(self) -> None:
        self.sock.close(linger=0)


class _Conn:
    """One thread's socket of a sync client."""

    __slots__ = ("lock", "rcvtimeo", "secure", "sock", "thread", "watch")

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, keys: ClientKeys | None = None
                 ) -> None:
        sock = transport.client_socket(ctx, endpoint, keys, connect=False)
        self.sock: zmq.Socket[Any] | None = sock
        self.secure = keys is not None
        self.watch: _Watch | None = None
        self.watching()  # before connecting: a refused handshake is seen from the first one
        sock.connect(endpoint)
        self.lock = threading.Lock()
        self.rcvtimeo = -1  # the socket's RCVTIMEO (ms), -1: libzmq's default (forever)
        self.thread = threading.current_thread()

    def watching(self) -> _Watch:
        if self.watch is None:
            assert self.sock is not None
            self.watch = _Watch(transport.monitor(self.sock), self.secure)
        return self.watch

    def unwatch(self) -> None:
        """Stop the monitor (connected now): a monitor nobody reads fills up and then
        blocks its socket's I/O (libzmq); a later call without a connection starts one."""
        watch, self.watch = self.watch, None
        if watch is not None:
            if self.sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    self.sock.disable_monitor()
            watch.close()

    def close(self) -> None:
        self.unwatch()
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close(linger=0)


class _SyncTransport:
    """What a sync :class:`Client` and its views share: the endpoint, the request core,
    one socket per calling thread, and what is known of the served adapter."""

    def __init__(self, endpoint: str, core: RequestCore, ctx: zmq.Context[Any],
                 keys: ClientKeys | None = None) -> None:
        self.endpoint = endpoint
        self.core = core
        self.ctx = ctx
        self.keys = keys
        self.calls: frozenset[str] | None = None  # the served fast calls, once known
        self.untold_until = 0.0  # the service could not tell them: not asked again before
        self.closed = False
        self.late_replies = 0  # replies to earlier calls that had timed out, dropped
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[_Conn] = []

    def conn(self) -> _Conn:
        """This thread's socket (made on its first call)."""
        try:
            conn: _Conn = self._local.conn
        except AttributeError:
            conn = self._new_conn()
        return conn

    def _new_conn(self) -> _Conn:
        with self._lock:
            if self.closed:
                raise ThreadhostError("client is closed")
            conn = _Conn(self.ctx, self.endpoint, self.keys)
            # sockets of threads that have ended are idle for good: close them
            for old in [c for c in self._conns if not c.thread.is_alive()]:
                if old.lock.acquire(blocking=False):
                    try:
                        old.close()
                    finally:
                        old.lock.release()
                    self._conns.remove(old)
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    def roundtrip(self, rid: int, frames: list[bytes], timeout: float, what: str) -> Any:
        if self.closed:
            raise ThreadhostError("client is closed")
        try:
            conn: _Conn = self._local.conn
        except AttributeError:
            conn = self._new_conn()
        with conn.lock:
            try:
                return self._exchange(conn, rid, frames, timeout, what)
            finally:
                if self.closed:  # closed by another thread during this call
                    conn.close()

    def _exchange(self, conn: _Conn, rid: int, frames: list[bytes], timeout: float,
                  what: str) -> Any:
        sock = conn.sock
        if sock is None:
            raise ThreadhostError("client is closed")
        deadline = time.monotonic() + timeout
        # the reply is awaited by a blocking recv bounded by RCVTIMEO (no Poller built per
        # call). A call sent at once waits first for its whole timeout (the sends took
        # microseconds): the same value call after call, so the option is set only when it
        # changes (setting it costs more than all the rest of the wait's bookkeeping)
        wait_ms = int(timeout * 1000) + 1
        try:  # IMMEDIATE makes this fail while no broker is connected
            send_frame(sock, frames[0], _MORE_NOBLOCK)  # a refused message fails on frame one
        except zmq.Again:
            self._send_when_connected(conn, sock, frames[0], deadline, timeout, what)
            wait_ms = int(max(deadline - time.monotonic(), 0.0) * 1000) + 1
        send_frame(sock, frames[1], _NOBLOCK)
        if conn.watch is not None:  # connected: no monitor left unread (see unwatch)
            conn.unwatch()
        max_size = self.core.max_size
        while True:
            if wait_ms != conn.rcvtimeo:
                transport.set_recv_timeout(sock, wait_ms)
                conn.rcvtimeo = wait_ms
            try:
                msg = decode_frames(recv_frames(sock), max_size)
            except zmq.Again:
                pass  # timed out: raised below
            except ProtocolError as exc:
                if exc.request_id in (None, rid):
                    raise
            else:
                if getattr(msg, "id", None) == rid:
                    return msg
                if msg.kind == "error" and msg.id is None:
                    raise exception_from_error(msg)
                self.late_replies += 1  # a late reply to an earlier call that timed out: drop it
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallTimeoutError(
                    f"{what}: no answer from {self.endpoint} within {timeout:g}s"
                )
            wait_ms = int(remaining * 1000) + 1

    def _send_when_connected(self, conn: _Conn, sock: zmq.Socket[Any], header: bytes,
                             deadline: float, timeout: float, what: str) -> None:
        """No connection now: wait for one, within the deadline; UnavailableError when a
        connection attempt fails meanwhile or none is made in time."""
        watch = conn.watching()
        watch.read()  # what happened before this call is not this call's business
        watch.check_refused(what, self.endpoint)
        seen = watch.failures
        grace_end = time.monotonic() + NO_SERVICE_GRACE
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLOUT)
        poller.register(watch.sock, zmq.POLLIN)
        while True:
            try:
                send_frame(sock, header, _MORE_NOBLOCK)
                return
            except zmq.Again:
                pass
            watch.read()
            watch.check_refused(what, self.endpoint)
            now = time.monotonic()
            if watch.failures > seen:
                if now >= grace_end:
                    raise watch.no_service(what, self.endpoint, None)
                seen = watch.failures  # perhaps a service starting: wait a little
            remaining = deadline - now
            if remaining <= 0:
                raise watch.no_service(what, self.endpoint, timeout)
            poller.poll(int(remaining * 1000) + 1)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            # a socket in use by a call is closed by its thread when the call ends
            if conn.lock.acquire(blocking=False):
                try:
                    conn.close()
                finally:
                    conn.lock.release()


# --------------------------------------------------------------------------- both clients


class _Transport(Protocol):
    """What the members both clients share read of their transport."""

    endpoint: str
    calls: frozenset[str] | None
    late_replies: int

    @property
    def closed(self) -> bool: ...


class _ClientBase:
    """What :class:`Client` and :class:`AsyncClient` share: their settings, their views,
    the value members, and how an attribute naming an adapter call becomes that call."""

    _t: _Transport
    _method_type: ClassVar[type[_Method] | type[_AsyncMethod]]
    _repr_name: ClassVar[str]

    def _settings(self, timeout: float, retry: Retry | None) -> None:
        self._timeout = _check_timeout(timeout)
        self._forced: float | None = None
        self._retry = _check_retry(retry)

    @property
    def _current_timeout(self) -> float:
        """The timeout of calls made through this client or view (a view's own first)."""
        return self._forced if self._forced is not None else self._timeout

    def _view(self, forced: float | None, retry: Retry | None) -> Self:
        view = object.__new__(type(self))
        view._t = self._t
        view._timeout = self._timeout
        view._forced = forced
        view._retry = retry
        return view

    def _with_timeout(self, timeout: float) -> Self:
        return self._view(_check_timeout(timeout), self._retry)

    def _adapter_call(self, name: str) -> Any:
        method = self.__dict__.get(name)
        if not isinstance(method, self._method_type):
            method = self.__dict__[name] = self._method_type(self, name)  # type: ignore[arg-type]
        return method  # found directly from now on

    @_local
    def with_retry(self, retry: Retry | None) -> Self:
        """This client with another :class:`Retry` (None: no retry) for the calls made
        through it: same connection, same timeout. Closing it closes the client."""
        return self._view(self._forced, _check_retry(retry))

    if TYPE_CHECKING:
        endpoint: str
        timeout: float
        closed: bool
        late_replies: int
    else:

        @_value
        def endpoint(self) -> str:
            """The endpoint this client connects to."""
            return self._t.endpoint

        @_value
        def timeout(self) -> float:
            """The timeout of calls made through this client (or view)."""
            return self._current_timeout

        @_value
        def closed(self) -> bool:
            """Whether the client is closed."""
            return self._t.closed

        @_value
        def late_replies(self) -> int:
            """Replies to earlier calls that had timed out, dropped so far."""
            return self._t.late_replies

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._adapter_call(name)

    def __repr__(self) -> str:
        return (f"<threadhost.{self._repr_name} {self._t.endpoint} "
                f"timeout={self._current_timeout:g}s>")


# --------------------------------------------------------------------------- sync client


class _Method:
    __slots__ = ("_client", "_name")

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client._request(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<threadhost remote call {self._name!r}>"


class Client(_ClientBase):
    """A synchronous threadhost client; shareable between threads; a context manager.

    ``lib.calc(5)`` and ``lib.call("calc", 5)`` are the same call. ``timeout`` (seconds)
    bounds every call; ``retry`` (a :class:`Retry`) retries calls refused as busy or
    unavailable; ``fingerprint`` (set by generated proxies) makes the service refuse the
    call with :class:`~threadhost.FingerprintMismatchError` if it serves another adapter
    schema. ``lib.with_timeout(2.0)`` and ``lib.with_retry(...)`` are views of the same
    connection with other settings.

    Each thread that calls gets its own socket, so threads do not wait for each other and
    every call keeps its own timeout. A public attribute naming one of the served adapter's
    calls is that call, even if the client has a member of that name; ``Client.close(lib)``
    (through the class) is always the client's own member.
    """

    _t: _SyncTransport
    _method_type = _Method
    _repr_name = "Client"

    def __init__(
        self,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        fingerprint: str | None = None,
        context: zmq.Context[Any] | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        retry: Retry | None = None,
        server_key: str | bytes | os.PathLike[str] | None = None,
        secret_key: str | bytes | os.PathLike[str] | None = None,
    ) -> None:
        self._settings(timeout, retry)
        self._t = _SyncTransport(endpoint, RequestCore(fingerprint, max_size),
                                 context or zmq.Context.instance(),
                                 client_keys(server_key, secret_key))
        self._t.conn()  # this thread's socket starts connecting now

    # ------------------------------------------------------------------ calls

    def _request(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        declared: float | None = None,
    ) -> Any:
        """Make the adapter call ``method``. The timeout is ``timeout``, else the view's
        (``with_timeout``), else ``declared`` (an adapter's ``@fast(timeout=...)``), else
        the client's."""
        if timeout is None:
            timeout = self._forced if self._forced is not None else (
                declared if declared is not None else self._timeout)
        retry = self._retry
        if retry is None:  # the hot path: _attempt inlined
            t = self._t
            core = t.core
            rid = core.next_id()
            msg = t.roundtrip(rid, core.call_frames(rid, method, args, kwargs or {}, timeout),
                              timeout, method)
            return msg.value if type(msg) is Result else RequestCore.outcome(msg)
        args = tuple(args)
        kwargs = kwargs or {}
        began = time.monotonic()
        deadline = began + retry.deadline
        attempts = 0
        while True:
            try:
                return self._attempt(method, args, kwargs,
                                     min(timeout, max(deadline - time.monotonic(), 0.001)))
            except TryLaterError as exc:
                attempts += 1
                wait = retry.wait(exc, deadline, attempts, began)
                if wait is None:
                    raise
                time.sleep(wait)

    def _attempt(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                 timeout: float) -> Any:
        t = self._t
        rid = t.core.next_id()
        frames = t.core.call_frames(rid, method, args, kwargs, timeout)
        return RequestCore.outcome(t.roundtrip(rid, frames, timeout, method))

    def _control(self, make: Callable[[int], Any], timeout: float | None) -> Any:
        return RequestCore.outcome(self._control_reply(make, timeout))

    def _control_reply(self, make: Callable[[int], Any], timeout: float | None,
                       what: str | None = None) -> Any:
        t = self._t
        if timeout is None:
            timeout = self._current_timeout
        rid = t.core.next_id()
        msg = make(rid)
        reply = t.roundtrip(rid, encode(msg), timeout, what or msg.kind)
        if isinstance(reply, Description):
            t.calls = _fast_calls(reply)
        return reply

    def _describe(self, timeout: float | None = None) -> Description:
        msg: Description = self._control(lambda i: Describe(id=i), timeout)
        return msg

    # ------------------------------------------------------------------ members that give way

    def _learning(self, name: str, own: Callable[..., Any], quiet: bool) -> Callable[..., Any]:
        def first_use(*args: Any, **kwargs: Any) -> Any:
            calls = self._learn(name, quiet)
            if calls is not None and name in calls:
                return self._adapter_call(name)(*args, **kwargs)
            return own(self, *args, **kwargs)

        first_use.__doc__ = own.__doc__
        return first_use

    def _learn(self, what: str, quiet: bool) -> frozenset[str] | None:
        """The served fast calls (asking the service once); None when the service answered
        but cannot tell (no adapter loaded yet). Errors of an unanswered question are
        raised, or give None when ``quiet``."""
        t = self._t
        if t.calls is not None:
            return t.calls
        if t.untold_until > time.monotonic():
            return None
        timeout = min(self._timeout, LEARN_TIMEOUT) if quiet else None
        try:
            reply = self._control_reply(lambda i: Describe(id=i), timeout, what)
        except ThreadhostError:
            if quiet:
                return None
            raise
        if isinstance(reply, Description):
            return t.calls
        t.untold_until = time.monotonic() + _ASK_AGAIN_AFTER  # no adapter loaded yet
        return None

    @_asks
    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` with the client's default timeout."""
        return self._request(method, args, kwargs)

    @_asks
    def request(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method`` with explicit ``args``/``kwargs`` and an optional per-call timeout."""
        return self._request(method, args, kwargs,
                             timeout=None if timeout is None else _check_timeout(timeout))

    @_asks
    def describe(self, timeout: float | None = None) -> dict[str, Any]:
        """The served adapter's description (calls, signatures, fingerprint)."""
        msg = self._describe(timeout)
        return {**msg.adapter, "fingerprint": msg.fingerprint}

    @_asks
    def fingerprint(self, timeout: float | None = None) -> str:
        """The served adapter's schema fingerprint."""
        return self._describe(timeout).fingerprint

    @_asks
    def maintain(self, method: str | None = None, timeout: float | None = None) -> MaintainReply:
        """Ask the broker to run a slow call now (``method``; None: the adapter's first).

        Returns the :class:`~threadhost.protocol.MaintainReply`: ``started`` (bool),
        ``reason`` (str) and ``retry_after`` — when not started, the seconds after which
        asking again may succeed (the manual-maintenance rate limit, a policy's
        ``min_gap``, a round already running...), or None when the broker cannot tell (or
        is older than the field). A refusal is an answer, not an exception."""
        reply: MaintainReply = self._control(lambda i: Maintain(id=i, method=method), timeout)
        return reply

    @_asks
    def status(self, timeout: float | None = None) -> dict[str, Any]:
        """The service status (state, host pid, generation, counters...)."""
        reply: StatusReply = self._control(lambda i: Status(id=i), timeout)
        return reply.status

    @_asks
    def ping(self, timeout: float | None = None) -> float:
        """Round-trip time to the broker in seconds."""
        t0 = time.perf_counter()
        reply = self._control(lambda i: Ping(id=i), timeout)
        assert isinstance(reply, Pong)
        return time.perf_counter() - t0

    @_local
    def with_timeout(self, timeout: float) -> Client:
        """This client with another timeout for the calls made through it
        (``lib.with_timeout(2.0).calc(5)``): same sockets, same retry; it overrides an
        adapter's ``@fast(timeout=...)``. Closing it closes the client."""
        return self._with_timeout(timeout)

    @_closes
    def close(self) -> None:
        """Close the client (all its sockets; a call in progress in another thread ends
        first). Idempotent. Views made by ``with_timeout``/``with_retry`` share it."""
        self._t.close()

    # ------------------------------------------------------------------ plumbing

    def __dir__(self) -> list[str]:
        calls = self._t.calls
        if calls is None and not self._t.closed:
            with contextlib.suppress(ThreadhostError):
                self._control_reply(lambda i: Describe(id=i),
                                    min(self._timeout, LEARN_TIMEOUT))
            calls = self._t.calls
        return sorted(set(super().__dir__()) | (calls or frozenset()))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self._t.close()


def connect(
    endpoint: str = "tcp://127.0.0.1:6000",
    timeout: float = DEFAULT_TIMEOUT,
    *,
    fingerprint: str | None = None,
    retry: Retry | None = None,
    server_key: str | bytes | os.PathLike[str] | None = None,
    secret_key: str | bytes | os.PathLike[str] | None = None,
) -> Client:
    """Connect to a threadhost service: ``lib = threadhost.connect(); lib.calc(5)``.

    Connecting is lazy and never blocks; a call raises
    :class:`~threadhost.UnavailableError` ("no service at ...") if nothing accepts the
    connection, and :class:`~threadhost.CallTimeoutError` if nothing answers within
    ``timeout``. ``retry=threadhost.Retry(deadline=...)`` retries busy/unavailable calls.

    CURVE (docs/security.md): ``server_key`` is the service's public key (its ``.key``
    file, or the 40-character key) and ``secret_key`` this client's key pair (its
    ``.key_secret`` file, or the secret key). A refused key raises
    :class:`~threadhost.AuthenticationError`: nothing was sent.
    """
    return Client(endpoint, timeout, fingerprint=fingerprint, retry=retry,
                  server_key=server_key, secret_key=secret_key)


# --------------------------------------------------------------------------- asyncio client


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class _AsyncTransport:
    """What an :class:`AsyncClient` and its views share: one socket, the pending calls and
    what delivers their replies, and what is known of the served adapter.

    Replies are delivered by a reader callback on the socket's file descriptor, registered
    with the running loop on the first call and kept while the client is open (moved if
    the client is used from another loop): a call costs no task, no add/remove of a
    reader. An open client is thus referenced by its loop until it is closed or the loop
    is (as a ``zmq.asyncio`` socket is). Where the loop cannot watch a file descriptor
    (Windows' proactor loop), a reader task receives through ``zmq.asyncio`` instead."""

    def __init__(self, endpoint: str, core: RequestCore, keys: ClientKeys | None = None
                 ) -> None:
        self.endpoint = endpoint
        self.core = core
        self.calls: frozenset[str] | None = None
        self.untold_until = 0.0
        self.late_replies = 0
        self.secure = keys is not None
        self._ctx = zmq.asyncio.Context.instance()
        sock = transport.client_socket(self._ctx, endpoint, keys, connect=False)
        self.sock: zmq.asyncio.Socket | None = sock
        # the same socket without the asyncio wrapper: sends and receives that cannot block
        # (NOBLOCK) go straight to libzmq instead of through a Future each
        self.raw: zmq.Socket[bytes] | None = zmq.Socket.shadow(self.sock.underlying)
        self._watch: _Watch | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        # the socket, polled without waiting: whether a reply is queued (a poll costs less
        # than the zmq.Again raised by a receive that finds none, or than reading EVENTS)
        self._poll_items = [(self.raw, _POLLIN)]
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop watching the fd
        self._fd: int | None = None
        self._reader: asyncio.Task[None] | None = None  # portable: the reader task
        self._check_scheduled = False
        self._portable: bool | None = None  # True: the loop cannot watch the socket's fd
        self._watching()  # before connecting: a refused handshake is seen from the first one
        sock.connect(endpoint)

    @property
    def closed(self) -> bool:
        return self.raw is None

    def _watching(self) -> _Watch:
        if self._watch is None:
            assert self.sock is not None
            monitor = transport.monitor(self.sock)
            self._watch = _Watch(zmq.Socket.shadow(monitor.underlying), self.secure)
            self._monitor = monitor  # keeps the PAIR socket (and its shadow) alive
        return self._watch

    def _unwatch(self) -> None:
        """Stop the monitor (as :meth:`_Conn.unwatch`)."""
        if self._watch is not None:
            if self.sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    self.sock.disable_monitor()
            self._watch.close()
            if self._monitor is not None:
                self._monitor.close(linger=0)
            self._watch = self._monitor = None

    def _attach(self, loop: asyncio.AbstractEventLoop, raw: zmq.Socket[bytes]) -> bool:
        """Deliver replies from ``loop`` (the running one) from now on: its reader callback
        on the socket's file descriptor replaces that of any earlier loop. False when
        ``loop`` cannot watch a file descriptor (see :meth:`_watchable`)."""
        if not self._watchable(loop, raw):
            return False
        if self._fd is None:
            self._fd = cast(int, raw.get(zmq.FD))
        self._detach()
        loop.add_reader(self._fd, self._readable)
        self._loop = loop
        loop.call_soon(self._readable)  # replies that came while no loop watched the fd
        return True

    def _watchable(self, loop: asyncio.AbstractEventLoop, raw: zmq.Socket[bytes]) -> bool:
        """Whether ``loop`` can watch the socket's file descriptor (selector loops, uvloop);
        Windows' proactor loop cannot: the client then receives through ``zmq.asyncio``
        alone (slower, same behaviour)."""
        if self._portable is None:
            fd = cast(int, raw.get(zmq.FD))
            try:
                loop.add_reader(fd, lambda: None)
            except NotImplementedError:
                self._portable = True
            else:
                loop.remove_reader(fd)
                self._portable = False
        return not self._portable

    def _detach(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and self._fd is not None:
            with contextlib.suppress(Exception):  # that loop may be closed, or gone
                loop.remove_reader(self._fd)

    def _readable(self) -> None:
        """Deliver every reply already queued: one wake-up per batch of replies. ZMQ_FD is
        edge-triggered: the poll before each receive (which also resets the edge) sees a
        reply that arrived meanwhile."""
        raw = self.raw
        if raw is None:
            return
        items = self._poll_items
        try:
            while zmq_poll(items, 0):
                self._deliver(recv_frames(raw, _NOBLOCK))
        except zmq.ZMQError:  # closed meanwhile (or, never seen, the poll lied: Again)
            return

    def _check_events(self) -> None:
        """After sends while other calls are pending: a send makes libzmq process pending
        commands, which can consume the FD's edge of a reply to one of them that arrived
        meanwhile; look once per loop iteration (however many calls were sent in it)."""
        self._check_scheduled = False
        if self._loop is not None:
            self._readable()

    def _ensure_reader(self) -> None:
        """Portable mode: a reader task while calls are pending."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop_portable())

    async def _read_loop_portable(self) -> None:
        sock = self.sock
        while sock is not None and self._pending and self.raw is not None:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return
            self._deliver(frames)

    def _deliver(self, frames: list[bytes]) -> None:
        try:
            msg = self.core.parse(frames)
        except ProtocolError as exc:
            fut = self._pending.pop(exc.request_id, None) if exc.request_id else None
            if fut is not None and not fut.done():
                fut.set_exception(exc)
            return
        rid = getattr(msg, "id", None)
        if rid is None and msg.kind == "error":
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(exception_from_error(msg))
            self._pending.clear()
            return
        fut = self._pending.pop(rid, None) if rid is not None else None
        if fut is not None and not fut.done():
            fut.set_result(msg)
        else:
            self.late_replies += 1

    async def _send(self, raw: zmq.Socket[bytes], frames: list[bytes], deadline: float,
                    timeout: float, what: str, portable: bool) -> None:
        header, body = frames
        watch: _Watch | None = None
        seen = 0
        grace_end = time.monotonic() + NO_SERVICE_GRACE
        while True:  # IMMEDIATE makes this fail while no broker is connected
            try:
                if portable:  # through zmq.asyncio, which then looks after its reader
                    sock = self.sock
                    if sock is None:
                        raise ThreadhostError("client is closed")
                    await sock.send_multipart(frames, flags=_NOBLOCK)
                    return
                send_frame(raw, header, _MORE_NOBLOCK)  # a refused message fails on frame one
                break
            except zmq.Again:
                pass
            if watch is None:
                watch = self._watching()
                watch.read()  # what happened before this call is not this call's business
                seen = watch.failures
            else:
                watch.read()
            watch.check_refused(what, self.endpoint)
            if watch.failures > seen:
                if time.monotonic() >= grace_end:
                    raise watch.no_service(what, self.endpoint, None)
                seen = watch.failures  # perhaps a service starting: wait a little
            if time.monotonic() >= deadline:
                raise watch.no_service(what, self.endpoint, timeout)
            await asyncio.sleep(0.01)
            if self.raw is None:
                raise ThreadhostError("client is closed")
        send_frame(raw, body, _NOBLOCK)

    async def roundtrip(self, rid: int, frames: list[bytes], timeout: float, what: str) -> Any:
        raw = self.raw
        if raw is None:
            raise ThreadhostError("client is closed")
        loop = asyncio.get_running_loop()
        portable = loop is not self._loop and not self._attach(loop, raw)
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = fut
        deadline = time.monotonic() + timeout
        expiry: asyncio.TimerHandle | None = None
        try:
            try:  # the hot path: the first frame goes at once (else: no connection now)
                if portable:
                    raise zmq.Again
                send_frame(raw, frames[0], _MORE_NOBLOCK)
            except zmq.Again:
                await self._send(raw, frames, deadline, timeout, what, portable)
            else:
                send_frame(raw, frames[1], _NOBLOCK)
            if self._watch is not None:  # connected: no monitor left unread
                self._unwatch()
            if portable:
                self._ensure_reader()
            elif len(self._pending) > 1 and not self._check_scheduled:
                # (with no other call pending, no reply that matters can be queued yet:
                # a send processes libzmq's commands when it starts, before the message
                # leaves; a late reply to a timed-out call waits for the next wake-up)
                self._check_scheduled = True
                loop.call_soon(self._check_events)
            # one timer per call instead of wait_for, which wraps every call in more futures
            expiry = loop.call_at(loop.time() + max(0.0, deadline - time.monotonic()),
                                  _expire, fut)
            try:
                return await fut
            except TimeoutError:
                raise CallTimeoutError(
                    f"{what}: no answer from {self.endpoint} within {timeout:g}s"
                ) from None
        finally:
            if expiry is not None:
                expiry.cancel()
            self._pending.pop(rid, None)

    async def close(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._reader = None
        self._detach()
        self.raw = None
        if self.sock is not None:
            self._unwatch()
            self.sock.close(linger=0)
            self.sock = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ThreadhostError("client is closed"))
        self._pending.clear()


class _AsyncMethod:
    __slots__ = ("_client", "_name")

    def __init__(self, client: AsyncClient, name: str) -> None:
        self._client = client
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        return self._client._request(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<threadhost remote call {self._name!r} (asyncio)>"


class AsyncClient(_ClientBase):
    """An asyncio threadhost client: ``async with AsyncClient(ep) as lib: await lib.calc(5)``.

    The same calls as :class:`Client`, awaited: ``await lib.calc(5)``,
    ``await lib.call("calc", 5)``, ``await lib.status()``... Many calls may be awaited
    concurrently (pipelined on one socket); a single reader task routes replies to their
    futures by request id. Members give way to the served adapter's calls as on
    :class:`Client` (``await AsyncClient.close(lib)`` is always the client's own).
    """

    _t: _AsyncTransport
    _method_type = _AsyncMethod
    _repr_name = "AsyncClient"

    def __init__(
        self,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        fingerprint: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
        retry: Retry | None = None,
        server_key: str | bytes | os.PathLike[str] | None = None,
        secret_key: str | bytes | os.PathLike[str] | None = None,
    ) -> None:
        self._settings(timeout, retry)
        self._t = _AsyncTransport(endpoint, RequestCore(fingerprint, max_size),
                                  client_keys(server_key, secret_key))

    # ------------------------------------------------------------------ calls

    async def _request(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        declared: float | None = None,
    ) -> Any:
        """As :meth:`Client._request`, awaited."""
        if timeout is None:
            timeout = self._forced if self._forced is not None else (
                declared if declared is not None else self._timeout)
        args = tuple(args)
        kwargs = kwargs or {}
        retry = self._retry
        if retry is None:  # the hot path: _attempt inlined
            t = self._t
            rid = t.core.next_id()
            frames = t.core.call_frames(rid, method, args, kwargs, timeout)
            return RequestCore.outcome(await t.roundtrip(rid, frames, timeout, method))
        began = time.monotonic()
        deadline = began + retry.deadline
        attempts = 0
        while True:
            try:
                return await self._attempt(
                    method, args, kwargs, min(timeout, max(deadline - time.monotonic(), 0.001)))
            except TryLaterError as exc:
                attempts += 1
                wait = retry.wait(exc, deadline, attempts, began)
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    async def _attempt(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                       timeout: float) -> Any:
        t = self._t
        rid = t.core.next_id()
        frames = t.core.call_frames(rid, method, args, kwargs, timeout)
        return RequestCore.outcome(await t.roundtrip(rid, frames, timeout, method))

    async def _control(self, make: Callable[[int], Any], timeout: float | None) -> Any:
        return RequestCore.outcome(await self._control_reply(make, timeout))

    async def _control_reply(self, make: Callable[[int], Any], timeout: float | None,
                             what: str | None = None) -> Any:
        t = self._t
        if timeout is None:
            timeout = self._current_timeout
        rid = t.core.next_id()
        msg = make(rid)
        reply = await t.roundtrip(rid, encode(msg), timeout, what or msg.kind)
        if isinstance(reply, Description):
            t.calls = _fast_calls(reply)
        return reply

    async def _describe(self, timeout: float | None = None) -> Description:
        msg: Description = await self._control(lambda i: Describe(id=i), timeout)
        return msg

    # ------------------------------------------------------------------ members that give way

    def _learning(self, name: str, own: Callable[..., Any], quiet: bool) -> Callable[..., Any]:
        async def first_use(*args: Any, **kwargs: Any) -> Any:
            calls = await self._learn(name, quiet)
            if calls is not None and name in calls:
                return await self._adapter_call(name)(*args, **kwargs)
            return await own(self, *args, **kwargs)

        first_use.__doc__ = own.__doc__
        return first_use

    async def _learn(self, what: str, quiet: bool) -> frozenset[str] | None:
        """As :meth:`Client._learn`, awaited."""
        t = self._t
        if t.calls is not None:
            return t.calls
        if t.untold_until > time.monotonic():
            return None
        if quiet and t.closed:
            return None
        timeout = min(self._timeout, LEARN_TIMEOUT) if quiet else None
        try:
            reply = await self._control_reply(lambda i: Describe(id=i), timeout, what)
        except ThreadhostError:
            if quiet:
                return None
            raise
        if isinstance(reply, Description):
            return t.calls
        t.untold_until = time.monotonic() + _ASK_AGAIN_AFTER  # no adapter loaded yet
        return None

    @_asks
    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` with the client's default timeout."""
        return await self._request(method, args, kwargs)

    @_asks
    async def request(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method`` with explicit ``args``/``kwargs`` and an optional per-call timeout."""
        return await self._request(method, args, kwargs,
                                   timeout=None if timeout is None else _check_timeout(timeout))

    @_asks
    async def describe(self, timeout: float | None = None) -> dict[str, Any]:
        """The served adapter's description (calls, signatures, fingerprint)."""
        msg = await self._describe(timeout)
        return {**msg.adapter, "fingerprint": msg.fingerprint}

    @_asks
    async def fingerprint(self, timeout: float | None = None) -> str:
        """The served adapter's schema fingerprint."""
        return (await self._describe(timeout)).fingerprint

    @_asks
    async def maintain(self, method: str | None = None, timeout: float | None = None
                       ) -> MaintainReply:
        """Ask the broker to run a slow call now; the reply's ``started``, ``reason`` and
        ``retry_after`` are those of :meth:`Client.maintain`."""
        reply: MaintainReply = await self._control(
            lambda i: Maintain(id=i, method=method), timeout)
        return reply

    @_asks
    async def status(self, timeout: float | None = None) -> dict[str, Any]:
        """The service status (state, host pid, generation, counters...)."""
        reply: StatusReply = await self._control(lambda i: Status(id=i), timeout)
        return reply.status

    @_asks
    async def ping(self, timeout: float | None = None) -> float:
        """Round-trip time to the broker in seconds."""
        t0 = time.perf_counter()
        reply = await self._control(lambda i: Ping(id=i), timeout)
        assert isinstance(reply, Pong)
        return time.perf_counter() - t0

    @_local
    def with_timeout(self, timeout: float) -> AsyncClient:
        """This client with another timeout for the calls made through it
        (``await lib.with_timeout(2.0).calc(5)``); same socket. Closing it closes the
        client."""
        return self._with_timeout(timeout)

    @_closes
    async def close(self) -> None:
        """Close the client; pending calls fail. Idempotent."""
        await self._t.close()

    # ------------------------------------------------------------------ plumbing

    def __dir__(self) -> list[str]:
        """Members and, once known (after any describe or first use of a member that asks
        the service), the served adapter's calls."""
        return sorted(set(super().__dir__()) | (self._t.calls or frozenset()))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._t.close()
