"""Clients: ``threadhost.connect(endpoint)`` and its asyncio twin.

Both speak through one sans-IO core (:class:`RequestCore`): it numbers requests, builds the
frames, and turns a reply into a value or a typed exception, discarding any reply whose id
is not the one awaited (a late answer to an earlier, timed-out call is never taken for this
call's answer). The sync :class:`Client` adds a DEALER socket guarded by a lock (one socket,
one request at a time, safe to share between threads); :class:`AsyncClient` adds a
``zmq.asyncio`` socket and can pipeline many calls: it sends without blocking and one
reader task, woken by the socket's file descriptor, delivers every reply already queued
per wake-up. Messages go through the lean codec (:mod:`threadhost.wire`); pydantic is
imported only for a value msgpack cannot pack natively or a reply only the reference
codec can judge.

Every call returns or raises within its timeout. Sockets use ``IMMEDIATE`` (requests are
never queued for a broker that is not connected, so a restarted broker never receives a
stale request) and ``LINGER=0``; ZeroMQ reconnects by itself, so a client survives a broker
restart on the same endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import zmq
import zmq.asyncio

from threadhost.errors import (
    CallTimeoutError,
    ProtocolError,
    ThreadhostError,
)
from threadhost.wire import (
    DEFAULT_MAX_SIZE,
    HEADER,
    Describe,
    Description,
    Maintain,
    MaintainReply,
    Ping,
    Pong,
    Status,
    StatusReply,
    check_header,
    decode_body,
    encode,
    encode_call,
    exception_from_error,
    protocol_error,
)

__all__ = ["DEFAULT_TIMEOUT", "AsyncClient", "Client", "RequestCore", "connect"]

DEFAULT_TIMEOUT = 10.0
_RECONNECT_IVL_MS = 100
_RECONNECT_IVL_MAX_MS = 1000

# plain ints: pyzmq's send_multipart/recv_multipart do enum arithmetic on every frame
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_RCVTIMEO = int(zmq.RCVTIMEO)
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)


class RequestCore:
    """Sans-IO request/reply bookkeeping shared by the sync and async clients."""

    def __init__(self, fingerprint: str | None = None, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.fingerprint = fingerprint
        self.max_size = max_size
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def call_frames(
        self, rid: int, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        timeout: float | None,
    ) -> list[bytes]:
        if type(method) is not str:
            raise TypeError(f"a call name must be a str, not {type(method).__name__}")
        try:
            return [HEADER, encode_call(rid, method, list(args), kwargs,
                                        None if timeout is None else float(timeout),
                                        self.fingerprint)]
        except (TypeError, ValueError, OverflowError):
            # a value msgpack cannot pack natively (a dataclass, a model...): the reference
            # codec turns it into plain data, or raises its own error
            from threadhost.protocol import Call
            from threadhost.protocol import encode as encode_model

            return encode_model(
                Call(id=rid, method=method, args=list(args), kwargs=kwargs, timeout=timeout,
                     fingerprint=self.fingerprint)
            )

    def parse(self, frames: list[bytes]) -> Any:
        """Decode a reply into a :mod:`threadhost.wire` message; raise ProtocolError for
        garbage."""
        if len(frames) != 2:
            raise protocol_error(f"expected 2 frames (header, body), got {len(frames)}")
        if frames[0] != HEADER:
            check_header(frames[0])
        return decode_body(frames[1], self.max_size)

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


def _configure(sock: zmq.Socket[Any]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.RECONNECT_IVL, _RECONNECT_IVL_MS)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, _RECONNECT_IVL_MAX_MS)


class _Method:
    __slots__ = ("_client", "_name")

    def __init__(self, client: Client, name: str) -> None:
        self._client = client
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.request(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<threadhost remote call {self._name!r}>"


class Client:
    """A synchronous threadhost client. Thread-safe; use as a context manager.

    ``lib.calc(5)`` and ``lib.call("calc", 5)`` are the same call. ``timeout`` (seconds) bounds
    every call; ``fingerprint`` (set by generated proxies) makes the service refuse the call
    with :class:`~threadhost.FingerprintMismatchError` if it serves another adapter schema.
    """

    def __init__(
        self,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        fingerprint: str | None = None,
        context: zmq.Context[Any] | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.endpoint = endpoint
        self.timeout = timeout
        self._core = RequestCore(fingerprint, max_size)
        self.late_replies = 0  # replies to earlier calls that had timed out, dropped
        self._ctx = context or zmq.Context.instance()
        self._lock = threading.Lock()
        self._rcvtimeo = -1  # the socket's RCVTIMEO (ms), -1: libzmq's default (forever)
        self._sock: zmq.Socket[Any] | None = self._ctx.socket(zmq.DEALER)
        _configure(self._sock)
        self._sock.connect(endpoint)

    # ------------------------------------------------------------------ calls

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``method`` with the client's default timeout."""
        return self.request(method, args, kwargs)

    def request(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Call ``method`` with explicit ``args``/``kwargs`` and an optional per-call timeout."""
        t = self.timeout if timeout is None else timeout
        core = self._core
        with self._lock:
            rid = core.next_id()
            frames = core.call_frames(rid, method, tuple(args), kwargs or {}, t)
            return core.outcome(self._roundtrip(rid, frames, t, method))

    def _roundtrip(
        self, rid: int, frames: list[bytes], timeout: float, what: str,
    ) -> Any:
        sock = self._sock
        if sock is None:
            raise ThreadhostError("client is closed")
        monotonic = time.monotonic
        deadline = monotonic() + timeout
        header, body = frames
        while True:  # send; IMMEDIATE makes this fail while no broker is connected
            try:
                sock.send(header, _MORE_NOBLOCK)  # a refused message fails on its first frame
                break
            except zmq.Again:
                remaining = deadline - monotonic()
                if remaining <= 0 or not sock.poll(int(remaining * 1000) + 1, zmq.POLLOUT):
                    raise CallTimeoutError(
                        f"{what}: no broker reachable at {self.endpoint} within {timeout:g}s"
                    ) from None
        sock.send(body, _NOBLOCK)
        recv = sock.recv
        parse = self._core.parse
        full_ms = int(timeout * 1000) + 1
        while True:  # a blocking recv bounded by RCVTIMEO: no Poller built per call
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise CallTimeoutError(
                    f"{what}: no answer from {self.endpoint} within {timeout:g}s"
                )
            # setsockopt costs ~2 µs: while less than 2 ms of the timeout are spent (a call's
            # first wait, the common case) the wait is the whole timeout, the same value
            # call after call, set only when it changes; the overshoot is under 2 ms
            wait_ms = int(remaining * 1000) + 1
            if full_ms - wait_ms <= 2:
                wait_ms = full_ms
            if wait_ms != self._rcvtimeo:
                sock.setsockopt(_RCVTIMEO, wait_ms)
                self._rcvtimeo = wait_ms
            try:
                frame = recv(0, copy=False)
            except zmq.Again:
                continue  # timed out: the loop raises
            reply = [frame.bytes]
            while frame.more:
                frame = recv(0, copy=False)
                reply.append(frame.bytes)
            try:
                msg = parse(reply)
            except ProtocolError as exc:
                if exc.request_id in (None, rid):
                    raise
                continue
            if getattr(msg, "id", None) == rid:
                return msg
            if msg.kind == "error" and msg.id is None:
                raise exception_from_error(msg)
            self.late_replies += 1  # a late reply to an earlier call that timed out: drop it

    def _control(self, make: Callable[[int], Any], timeout: float | None) -> Any:
        t = self.timeout if timeout is None else timeout
        with self._lock:
            rid = self._core.next_id()
            msg = make(rid)
            return RequestCore.outcome(
                self._roundtrip(rid, encode(msg), t, msg.kind)
            )

    def describe(self, timeout: float | None = None) -> dict[str, Any]:
        """The served adapter's description (calls, signatures, fingerprint)."""
        msg: Description = self._control(lambda i: Describe(id=i), timeout)
        return {**msg.adapter, "fingerprint": msg.fingerprint}

    def fingerprint(self, timeout: float | None = None) -> str:
        """The served adapter's schema fingerprint."""
        msg: Description = self._control(lambda i: Describe(id=i), timeout)
        return msg.fingerprint

    def maintain(self, method: str | None = None, timeout: float | None = None) -> MaintainReply:
        """Ask the broker to run a slow call now; the reply says whether it started."""
        reply: MaintainReply = self._control(lambda i: Maintain(id=i, method=method), timeout)
        return reply

    def status(self, timeout: float | None = None) -> dict[str, Any]:
        """The service status (state, host pid, generation, counters...)."""
        reply: StatusReply = self._control(lambda i: Status(id=i), timeout)
        return reply.status

    def ping(self, timeout: float | None = None) -> float:
        """Round-trip time to the broker in seconds."""
        t0 = time.perf_counter()
        reply = self._control(lambda i: Ping(id=i), timeout)
        assert isinstance(reply, Pong)
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ plumbing

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = self.__dict__[name] = _Method(self, name)  # found directly from now on
        return method

    def close(self) -> None:
        """Close the socket. Idempotent."""
        with self._lock:
            if self._sock is not None:
                self._sock.close(linger=0)
                self._sock = None

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<threadhost.Client {self.endpoint} timeout={self.timeout:g}s>"


def connect(
    endpoint: str = "tcp://127.0.0.1:6000",
    timeout: float = DEFAULT_TIMEOUT,
    *,
    fingerprint: str | None = None,
) -> Client:
    """Connect to a threadhost service: ``lib = threadhost.connect(); lib.calc(5)``.

    Connecting is lazy and never blocks; the first call raises
    :class:`~threadhost.CallTimeoutError` if nothing answers within ``timeout``.
    """
    return Client(endpoint, timeout, fingerprint=fingerprint)


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class AsyncClient:
    """An asyncio threadhost client: ``async with AsyncClient(ep) as c: await c.call("calc", 5)``.

    Many calls may be awaited concurrently (pipelined on one socket); a single reader task
    routes replies to their futures by request id.
    """

    def __init__(
        self,
        endpoint: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        fingerprint: str | None = None,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.endpoint = endpoint
        self.timeout = timeout
        self._core = RequestCore(fingerprint, max_size)
        self._ctx = zmq.asyncio.Context.instance()
        self._sock: zmq.asyncio.Socket | None = self._ctx.socket(zmq.DEALER)
        _configure(self._sock)
        self._sock.connect(endpoint)
        # the same socket without the asyncio wrapper: sends and receives that cannot block
        # (NOBLOCK) go straight to libzmq instead of through a Future each
        self._raw: zmq.Socket[bytes] | None = zmq.Socket.shadow(self._sock.underlying)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # set to wake the reader
        self._check_scheduled = False
        self._portable: bool | None = None  # True: the loop cannot watch the socket's fd

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        """Deliver every reply already queued, then wait for the socket to be readable
        again (one wake-up per batch of replies, not one Future per reply); ends when
        nothing is pending."""
        sock, raw = self._sock, self._raw
        if sock is None or raw is None:
            return
        if self._portable:
            await self._read_loop_portable(sock)
            return
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        fd = cast(int, raw.get(zmq.FD))
        loop.add_reader(fd, wake.set)
        try:
            recv = raw.recv
            get = raw.get
            while self._pending and self._raw is not None:
                try:
                    while True:
                        frame = recv(_NOBLOCK, copy=False)
                        frames = [frame.bytes]
                        while frame.more:
                            frame = recv(_NOBLOCK, copy=False)
                            frames.append(frame.bytes)
                        self._deliver(frames)
                except zmq.Again:
                    pass
                if not self._pending:
                    return
                # ZMQ_FD is edge-triggered: clear, then look at EVENTS (which also resets
                # the edge) before sleeping, so no reply that arrived meanwhile is missed
                wake.clear()
                if cast(int, get(_EVENTS)) & _POLLIN:
                    continue
                await wake.wait()
        except zmq.ZMQError:
            return
        finally:
            self._wake = None
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)

    def _check_events(self) -> None:
        """After sends: a send makes libzmq process pending commands, which can consume
        the FD's edge of a reply that arrived meanwhile; look at EVENTS once per loop
        iteration (however many calls were sent in it) and wake the reader if needed."""
        self._check_scheduled = False
        raw, wake = self._raw, self._wake
        if raw is not None and wake is not None and cast(int, raw.get(_EVENTS)) & _POLLIN:
            wake.set()

    async def _read_loop_portable(self, sock: zmq.asyncio.Socket) -> None:
        while self._pending and self._raw is not None:
            try:
                frames = await sock.recv_multipart()
            except zmq.ZMQError:
                return
            self._deliver(frames)

    def _deliver(self, frames: list[bytes]) -> None:
        try:
            msg = self._core.parse(frames)
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

    def _watchable(self, loop: asyncio.AbstractEventLoop, raw: zmq.Socket[bytes]) -> bool:
        """Whether ``loop`` can watch the socket's file descriptor (selector loops, uvloop);
        Windows' proactor loop cannot: the client then sends and receives through
        ``zmq.asyncio`` alone (slower, same behaviour)."""
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

    async def _send_portable(self, frames: list[bytes], deadline: float, what: str,
                             timeout: float) -> None:
        sock = self._sock
        if sock is None:
            raise ThreadhostError("client is closed")
        try:
            await asyncio.wait_for(sock.send_multipart(frames),
                                   max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise CallTimeoutError(
                f"{what}: no broker reachable at {self.endpoint} within {timeout:g}s"
            ) from None

    async def _roundtrip(self, rid: int, frames: list[bytes], timeout: float, what: str) -> Any:
        raw = self._raw
        if raw is None:
            raise ThreadhostError("client is closed")
        loop = asyncio.get_running_loop()
        if not self._watchable(loop, raw):
            return await self._roundtrip_portable(rid, frames, timeout, what)
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = fut
        deadline = time.monotonic() + timeout
        expiry: asyncio.TimerHandle | None = None
        header, body = frames
        try:
            while True:  # IMMEDIATE makes this fail while no broker is connected
                try:
                    raw.send(header, _MORE_NOBLOCK)  # a refused message fails on frame one
                    break
                except zmq.Again:
                    if time.monotonic() >= deadline:
                        raise CallTimeoutError(
                            f"{what}: no broker reachable at {self.endpoint} within {timeout:g}s"
                        ) from None
                    await asyncio.sleep(0.01)
                    if self._raw is None:
                        raise ThreadhostError("client is closed") from None
            raw.send(body, _NOBLOCK)
            self._ensure_reader()
            if not self._check_scheduled:
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

    async def _roundtrip_portable(self, rid: int, frames: list[bytes], timeout: float,
                                  what: str) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending[rid] = fut
        deadline = time.monotonic() + timeout
        try:
            await self._send_portable(frames, deadline, what, timeout)
            self._ensure_reader()
            try:
                return await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise CallTimeoutError(
                    f"{what}: no answer from {self.endpoint} within {timeout:g}s"
                ) from None
        finally:
            self._pending.pop(rid, None)

    async def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        return await self.request(method, args, kwargs)

    async def request(
        self,
        method: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        t = self.timeout if timeout is None else timeout
        rid = self._core.next_id()
        frames = self._core.call_frames(rid, method, tuple(args), kwargs or {}, t)
        return RequestCore.outcome(await self._roundtrip(rid, frames, t, method))

    async def _control(self, make: Callable[[int], Any], what: str, timeout: float | None) -> Any:
        t = self.timeout if timeout is None else timeout
        rid = self._core.next_id()
        return RequestCore.outcome(await self._roundtrip(rid, encode(make(rid)), t, what))

    async def describe(self, timeout: float | None = None) -> dict[str, Any]:
        msg: Description = await self._control(lambda i: Describe(id=i), "describe", timeout)
        return {**msg.adapter, "fingerprint": msg.fingerprint}

    async def fingerprint(self, timeout: float | None = None) -> str:
        msg: Description = await self._control(lambda i: Describe(id=i), "describe", timeout)
        return msg.fingerprint

    async def maintain(self, method: str | None = None, timeout: float | None = None
                       ) -> MaintainReply:
        reply: MaintainReply = await self._control(
            lambda i: Maintain(id=i, method=method), "maintain", timeout)
        return reply

    async def status(self, timeout: float | None = None) -> dict[str, Any]:
        reply: StatusReply = await self._control(lambda i: Status(id=i), "status", timeout)
        return reply.status

    async def close(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        self._reader = None
        self._raw = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ThreadhostError("client is closed"))
        self._pending.clear()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
