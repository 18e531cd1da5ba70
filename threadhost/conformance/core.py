"""Machinery shared by the conformance kit's suites (the public face is ``conformance.py``).

* :class:`Check` — a check as data: id, the requirement of ``docs/protocol.md`` it proves,
  a one-line title, and the function that runs it. A suite is an ordered list of checks.
* :class:`Wire` — one thread, one ``zmq.Poller``, every socket of a run. ``wait`` pumps all
  sockets (and the tickers, e.g. a fake host's heartbeat) until a predicate holds or the
  time is up, so a fake peer keeps beating while a check waits for a reply. No threads.
* :class:`Session` — per-run state: options, the wire, the current check's deadline (every
  wait is clipped to it, so no check can hang), memoised preconditions, per-check sockets.
* raw-frame helpers: the canonical encoder is :func:`threadhost.protocol.encode`; malformed
  and oddly encoded frames are built here by hand.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgpack
import zmq

from threadhost import transport
from threadhost.errors import ProtocolError
from threadhost.protocol import HEADER, MAX_REQUEST_ID, ErrorReply, Message, decode

__all__ = [
    "MAX_ID",
    "Aborted",
    "Blocked",
    "Check",
    "CheckFailed",
    "CheckSkipped",
    "Peer",
    "Session",
    "Wire",
    "describe_msg",
    "packb",
    "parse",
    "sized_body",
    "wrong_value",
]

MAX_ID = MAX_REQUEST_ID
_LOOSE_MAX = 1 << 30  # the kit decodes what it receives without a size limit of its own

S = TypeVar("S", bound="Session")


class CheckFailed(Exception):
    """The peer violated the requirement; the message says how."""


class CheckSkipped(Exception):
    """The check cannot run here (an option is missing, the adapter has no such call...)."""


class Blocked(Exception):
    """A precondition already failed in an earlier check; reported as a skip."""


class Aborted(Exception):
    """Nothing to talk to (no broker listening, no host connected): stop the run."""


@dataclass(frozen=True)
class Check(Generic[S]):
    """One conformance check: ``func(session)`` returns a detail line or raises."""

    id: str
    requirement: str
    title: str
    func: Callable[[S], str | None]
    budget: Callable[[S], float] = field(default=lambda s: 4 * s.timeout)
    """Upper bound on the check's run time (seconds); every wait is clipped to it."""
    needs_backend: bool = False


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def parse(frames: list[bytes], what: str = "reply", max_size: int | None = None) -> Message:
    """Decode with threadhost's codec; a :class:`CheckFailed` names what was wrong.
    With ``max_size``, a larger body fails too: no sender may exceed its peer's limit (R18)."""
    if max_size is not None and len(frames) == 2 and len(frames[1]) > max_size:
        raise CheckFailed(f"{what} has a body of {len(frames[1])} bytes, over the limit of "
                          f"{max_size}: a sender MUST NOT exceed its receiver's limit (R18)")
    try:
        return decode(frames, max_size=_LOOSE_MAX)
    except ProtocolError as exc:
        raise CheckFailed(f"{what} is not a valid threadhost message: {exc} "
                          f"(frames: {_preview(frames)})") from None


def _preview(frames: Iterable[bytes]) -> str:
    return "[" + ", ".join(repr(bytes(f[:24])) + ("..." if len(f) > 24 else "")
                           for f in frames) + "]"


def describe_msg(msg: Any) -> str:
    """A short human description of a decoded message for failure details."""
    if msg is None:
        return "nothing"
    if isinstance(msg, ErrorReply):
        return f"error(code={msg.code.value}, id={msg.id}, message={msg.message[:80]!r})"
    kind = getattr(msg, "kind", type(msg).__name__)
    rid = getattr(msg, "id", None)
    return f"{kind}(id={rid})" if rid is not None else str(kind)


def sized_body(fields: dict[str, Any], size: int) -> bytes:
    """A msgpack body of exactly ``size`` bytes: ``fields`` plus an unknown ``pad`` entry
    (receivers ignore unknown entries, R8)."""
    pad = max(0, size - len(packb({**fields, "pad": b""})))
    for _ in range(8):
        body = packb({**fields, "pad": b"\x00" * pad})
        if len(body) == size:
            return body
        pad = max(0, pad + size - len(body))
    raise ValueError(f"cannot build a body of exactly {size} bytes")


def _json_types(schema: Any, root: Any = None, depth: int = 0) -> set[str] | None:
    """The JSON types a schema admits, when its ``type``/``anyOf``/``oneOf`` say so (a
    ``$ref`` to ``#/$defs/NAME`` of the ``root`` schema followed); None when the kit cannot
    tell (``{}``, ``allOf``, ...)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 16:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(root, dict):
        defs = root.get("$defs")
        target = defs.get(ref[len("#/$defs/"):]) if isinstance(defs, dict) else None
        return _json_types(target, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list) and all(isinstance(k, str) for k in kind):
        return set(kind)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            found: set[str] = set()
            for branch in branches:
                types = _json_types(branch, root, depth + 1)
                if types is None:
                    return None
                found |= types
            return found
    return None


_WRONG: tuple[tuple[str, Any], ...] = (
    ("object", {"__conformance__": [1]}),
    ("array", [["__conformance__"]]),
    ("string", "__conformance__"),
    ("null", None),
)


def wrong_value(schema: Any) -> tuple[Any] | None:
    """A value of a JSON type the parameter schema does not admit (a map for an ``integer``,
    say), as a 1-tuple; None when the kit cannot tell which types it admits. No declared
    type accepts such a value, whatever its strictness (docs/protocol.md, R39)."""
    types = _json_types(schema)
    if types is None:
        return None
    for kind, value in _WRONG:
        if kind not in types:
            return (value,)
    return None


# --------------------------------------------------------------------------- sockets


class Peer:
    """One socket of the run and what arrived on it (arrival time, frames)."""

    def __init__(self, wire: Wire, sock: zmq.Socket[bytes], label: str) -> None:
        self.wire = wire
        self.sock = sock
        self.label = label
        self.inbox: deque[tuple[float, list[bytes]]] = deque()
        self.on_message: Callable[[float, list[bytes]], None] | None = None
        self.closed = False

    def send(self, frames: list[bytes], timeout: float) -> None:
        """Send without ever blocking longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                if time.monotonic() >= deadline:
                    raise CheckFailed(f"{self.label}: could not send within {timeout:g}s "
                                      f"(no peer connected)") from None
                self.wire.pump(0.01)
            except zmq.ZMQError as exc:  # ROUTER_MANDATORY: peer unknown or gone
                raise CheckFailed(f"{self.label}: cannot send: {exc.strerror}") from None

    def connected(self, timeout: float) -> bool:
        """Whether the socket can send (IMMEDIATE: a ZMTP handshake with a peer completed)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.sock.poll(0, zmq.POLLOUT):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.wire.pump(min(left, 0.02))

    def take(self) -> tuple[float, list[bytes]] | None:
        return self.inbox.popleft() if self.inbox else None

    def close(self, linger: int = 0) -> None:
        self.wire.forget(self, linger)


class Wire:
    """Every socket of one run, pumped from one thread."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.poller = zmq.Poller()
        self.peers: dict[zmq.Socket[bytes], Peer] = {}
        self.tickers: list[Callable[[float], None]] = []
        self.keys: dict[str, transport.ClientKeys] = {}
        """CURVE keys of the kit's sockets, by endpoint (``--server-key``/``--secret-key``:
        the broker's front end)."""

    def dealer(self, endpoint: str, label: str, routing_id: str | None = None, *,
               keys: transport.ClientKeys | None = None, secure: bool = True) -> Peer:
        """A DEALER to ``endpoint``: with ``keys``, else (``secure``) the run's keys for
        that endpoint, if any."""
        sock = transport.probe_dealer(self.ctx, endpoint, routing_id,
                                      keys=keys or (self.keys.get(endpoint) if secure
                                                    else None))
        return self._add(sock, label)

    def router(self, endpoint: str, label: str) -> tuple[Peer, str]:
        """Bind a ROUTER; returns the peer and the bound endpoint (``*`` ports resolved)."""
        try:
            sock = transport.probe_router(self.ctx, endpoint)
        except zmq.ZMQError as exc:
            raise Aborted(f"cannot listen on {endpoint}: {exc.strerror}") from None
        return self._add(sock, label), transport.last_endpoint(sock)

    def _add(self, sock: zmq.Socket[bytes], label: str) -> Peer:
        peer = Peer(self, sock, label)
        self.peers[sock] = peer
        self.poller.register(sock, zmq.POLLIN)
        return peer

    def forget(self, peer: Peer, linger: int = 0) -> None:
        if peer.closed:
            return
        peer.closed = True
        self.peers.pop(peer.sock, None)
        self.poller.unregister(peer.sock)
        peer.sock.close(linger=linger)

    def pump(self, timeout: float) -> None:
        """One poll of every socket (at most ``timeout`` s), then the tickers."""
        events = dict(self.poller.poll(max(0, int(timeout * 1000))))
        now = time.monotonic()
        for sock in events:
            peer = self.peers.get(sock)
            while peer is not None and not peer.closed:
                try:
                    frames = peer.sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if peer.on_message is not None:
                    peer.on_message(now, frames)
                else:
                    peer.inbox.append((now, frames))
        for tick in list(self.tickers):
            tick(now)

    def wait(self, until: Callable[[], bool], timeout: float) -> bool:
        """Pump until ``until()`` holds (True) or ``timeout`` passed (False)."""
        deadline = time.monotonic() + timeout
        while True:
            if until():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pump(min(left, 0.02))

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass while pumping."""
        self.wait(lambda: False, seconds)

    def close(self) -> None:
        for peer in list(self.peers.values()):
            self.forget(peer)
        self.tickers.clear()
        self.ctx.term()


# --------------------------------------------------------------------------- session


T = TypeVar("T")


class Session:
    """State of one run. Suites subclass it with role-specific helpers."""

    def __init__(self, timeout: float, quiet: float, max_size: int) -> None:
        self.timeout = timeout
        """How long to wait for an expected answer."""
        self.quiet = quiet
        """How long to listen to prove that nothing (more) arrives."""
        self.max_size = max_size
        self.wire = Wire()
        self.deadline = float("inf")
        self._memo: dict[str, tuple[bool, Any]] = {}
        self._scoped: list[Peer] = []

    # per-check scope, driven by the runner
    def begin_check(self, budget: float) -> None:
        self.deadline = time.monotonic() + budget

    def end_check(self) -> None:
        for peer in self._scoped:
            peer.close()
        self._scoped.clear()
        self.deadline = float("inf")

    def scoped(self, peer: Peer) -> Peer:
        self._scoped.append(peer)
        return peer

    def left(self, want: float) -> float:
        """``want`` clipped to the check's remaining budget; fails when the budget is gone."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise CheckFailed("the check ran out of its time budget")
        return min(want, left)

    def wait(self, until: Callable[[], bool], timeout: float) -> bool:
        return self.wire.wait(until, self.left(timeout))

    def sleep(self, seconds: float) -> None:
        self.wire.sleep(self.left(seconds))

    def done(self, name: str) -> bool:
        """Whether precondition ``name`` was attempted (successfully or not)."""
        return name in self._memo

    def precondition(self, name: str, make: Callable[[], T]) -> T:
        """Run ``make`` once per session; a failure fails this check and blocks later ones."""
        if name in self._memo:
            ok, value = self._memo[name]
            if ok:
                return value  # type: ignore[no-any-return]
            raise Blocked(name)
        try:
            value = make()
        except (CheckFailed, CheckSkipped) as exc:
            self._memo[name] = (False, str(exc))
            raise type(exc)(f"{name}: {exc}") from None
        self._memo[name] = (True, value)
        return value

    def close(self) -> None:
        self.wire.close()


def header_v(version: int) -> bytes:
    return HEADER[:2] + bytes([version])
