"""Conformance checks for a **broker** (``threadhost conformance EP --role broker``).

The kit talks raw frames to the broker's client endpoint as any number of DEALER clients.
With ``--backend`` it also attaches to the broker's back end as a *fake host* it fully
controls: it declares a fast call ``echo`` and a slow start-up call ``reload``, so it can
hold a slow call open as long as it likes, see whether anything is forwarded while it runs,
fall silent like a library holding the GIL, or die. The broker must be in attach mode with
no host attached (``threadhost broker --endpoint EP --backend BEP``).

Checks run in list order; the ones that need the fake host in a given state reach it
through memoised preconditions (``gate_open``, ``maintaining``...), so any subset can run
on its own. The destructive ones (the host dies) come last.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from threadhost.adapter import fingerprint_of
from threadhost.conformance.core import (
    MAX_ID,
    Aborted,
    Check,
    CheckFailed,
    CheckSkipped,
    Peer,
    Session,
    describe_msg,
    header_v,
    packb,
    parse,
    sized_body,
)
from threadhost.protocol import (
    HEADER,
    Call,
    Describe,
    Description,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Maintain,
    MaintainReply,
    Message,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
    Status,
    StatusReply,
    encode,
)

__all__ = ["BROKER_CHECKS", "BrokerSession"]

UNKNOWN_CALL = "__conformance_no_such_call__"
BUSY_LATENCY = 0.5
"""Seconds within which a call the broker does not forward must be answered ("at once")."""
GATE_STATES = frozenset(
    {"starting", "startup", "ready", "maintaining", "restarting", "failed", "stopping",
     "stopped"}
)
_ANY_ID = object()  # expect_error: either the request's id or nil
STARTUP = "fake host ready, start-up slow call running"
MAINTAINING = "maintenance running on the fake host"


def fake_adapter(deadline: float) -> dict[str, Any]:
    """The adapter description the fake host sends in its ``ready``."""
    return {
        "adapter": "threadhost.conformance:FakeHost",
        "doc": "The conformance kit's fake host.",
        "default_policy": "manual",
        "replicable": True,
        "calls": [
            {"name": "reload", "kind": "slow", "doc": "", "params": [],
             "returns": {"type": "null"}, "startup": True, "policy": "manual",
             "deadline": deadline, "timeout": None},
            {"name": "echo", "kind": "fast", "doc": "",
             "params": [{"name": "x", "kind": "positional_or_keyword", "schema": {},
                         "required": False, "default": None}],
             "returns": {}, "startup": False, "policy": None, "deadline": None,
             "timeout": None},
        ],
    }


#: The fake host's fingerprint, computed as a host must (R59): deadlines do not count.
FAKE_FINGERPRINT = fingerprint_of(fake_adapter(1.0)["calls"])


class FakeHost:
    """A host the kit controls: two DEALERs on the back end (``ID`` and ``ID/hb``)."""

    def __init__(self, s: BrokerSession, host_id: str) -> None:
        assert s.backend is not None
        self.s = s
        self.host_id = host_id
        self.call = s.wire.dealer(s.backend, f"fake host {host_id}", host_id)
        self.hb = s.wire.dealer(s.backend, f"fake host {host_id}/hb", f"{host_id}/hb")
        self.interval = min(0.2, s.heartbeat_timeout / 5)
        self.silent = False
        self.silent_since: float | None = None
        self.beat_on_call = False
        """Send the heartbeats on the call socket (the broker hears the host either way)."""
        self._next_beat = 0.0
        s.wire.tickers.append(self._tick)

    def _tick(self, now: float) -> None:
        if self.silent or self.hb.closed or now < self._next_beat:
            return
        self._next_beat = now + self.interval
        sock = self.call.sock if self.beat_on_call else self.hb.sock
        with contextlib.suppress(zmq.ZMQError):  # not connected yet or queue full: next beat
            sock.send_multipart(
                encode(Heartbeat(host_id=self.host_id, pid=os.getpid())), zmq.NOBLOCK)

    def go_silent(self) -> None:
        if not self.silent:
            self.silent = True
            self.silent_since = time.monotonic()

    def send(self, msg: Message | list[bytes]) -> None:
        frames = msg if isinstance(msg, list) else encode(msg)
        self.call.send(frames, self.s.left(self.s.timeout))

    def drain(self) -> list[Message]:
        """Everything the broker sent so far (decoded), emptying the inbox."""
        out: list[Message] = []
        while (item := self.call.take()) is not None:
            out.append(parse(item[1], "a message from the broker to the host"))
        return out

    def next_call(self, timeout: float) -> Call | None:
        """The next ``call`` the broker sends (other kinds, e.g. heartbeats, are skipped)."""
        got: list[Call] = []

        def arrived() -> bool:
            for msg in self.drain():
                if isinstance(msg, Call):
                    got.append(msg)
            return bool(got)

        self.s.wait(arrived, timeout)
        if len(got) > 1:  # keep the rest for later
            for extra in got[1:]:
                self.call.inbox.appendleft((time.monotonic(), encode(extra)))
        return got[0] if got else None

    def calls_within(self, seconds: float) -> list[Call]:
        """Listen ``seconds``; the calls the broker sent meanwhile."""
        self.s.sleep(seconds)
        return [m for m in self.drain() if isinstance(m, Call)]

    def close(self) -> None:
        self.silent = True
        if self._tick in self.s.wire.tickers:
            self.s.wire.tickers.remove(self._tick)
        self.call.close()
        self.hb.close()


@dataclass
class _Maintenance:
    host: FakeHost
    call: Call
    started: float
    reply: MaintainReply


@dataclass
class _Silence:
    host_id: str
    dead: bool
    waited: float


@dataclass
class _Crash:
    host_id: str
    call_id: int
    reply: Message | None
    after: Message | None
    forwarded_after: list[Call]


class BrokerSession(Session):
    """One broker run: client sockets to ``endpoint``, fake hosts on ``backend``."""

    def __init__(self, endpoint: str, backend: str | None, *, timeout: float, quiet: float,
                 max_size: int, heartbeat_timeout: float) -> None:
        super().__init__(timeout, quiet, max_size)
        self.endpoint = endpoint
        self.backend = backend
        self.heartbeat_timeout = heartbeat_timeout
        self.slow_deadline = 2.5 * heartbeat_timeout + 0.5
        """Deadline the fake host declares for ``reload``: longer than the silence check."""
        self.tag = f"conformance-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        self._next_id = 1000
        self._startup_answered = False
        self._host1_dead = False

    # ------------------------------------------------------------------ clients

    def rid(self) -> int:
        self._next_id += 1
        return self._next_id

    def client(self) -> Peer:
        peer = self.scoped(self.wire.dealer(self.endpoint, "client"))
        if not peer.connected(self.left(self.timeout)):
            raise Aborted(
                f"nothing accepted a ZeroMQ connection at {self.endpoint} within "
                f"{self.timeout:g}s: is a broker running there, and is it its client endpoint?"
            )
        return peer

    def ask_raw(self, frames: list[bytes], client: Peer | None = None) -> tuple[list[bytes], float]:
        c = client or self.client()
        t0 = time.monotonic()
        c.send(frames, self.left(self.timeout))
        if not self.wait(lambda: bool(c.inbox), self.timeout):
            raise CheckFailed(f"no answer within {self.timeout:g}s to {_show(frames)}")
        t, reply = c.inbox.popleft()
        return reply, t - t0

    def ask(self, msg: Message | list[bytes], client: Peer | None = None) -> Message:
        frames = msg if isinstance(msg, list) else encode(msg)
        reply, _ = self.ask_raw(frames, client)
        return parse(reply, "the broker's reply", self.max_size)

    def await_reply(self, client: Peer, rid: int, timeout: float) -> Message | None:
        """The reply with id ``rid`` on ``client`` (others are discarded), or None."""
        found: list[Message] = []

        def arrived() -> bool:
            while (item := client.take()) is not None:
                msg = parse(item[1])
                if getattr(msg, "id", None) == rid:
                    found.append(msg)
            return bool(found)

        self.wait(arrived, timeout)
        return found[0] if found else None

    def expect_error(self, frames: list[bytes] | Message, codes: set[ErrorCode] | ErrorCode,
                     rid: object, what: str) -> ErrorReply:
        want = {codes} if isinstance(codes, ErrorCode) else codes
        msg = self.ask(frames if isinstance(frames, list) else encode(frames))
        if not isinstance(msg, ErrorReply):
            raise CheckFailed(f"{what}: expected an error, got {describe_msg(msg)}")
        if msg.code not in want:
            raise CheckFailed(f"{what}: expected error code {_codes(want)}, got "
                              f"{describe_msg(msg)}")
        if rid is not _ANY_ID and msg.id != rid:
            raise CheckFailed(f"{what}: expected id {rid}, got {msg.id}")
        return msg

    def status_state(self) -> str:
        msg = self.ask(Status(id=self.rid()))
        if not isinstance(msg, StatusReply):
            raise CheckFailed(f"status: expected status_reply, got {describe_msg(msg)}")
        return str(msg.status.get("state"))

    def wait_state(self, state: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.status_state() == state:
                return True
            if time.monotonic() >= deadline:
                return False
            self.sleep(0.05)

    # ------------------------------------------------------------------ fake hosts

    def _attach(self, n: int) -> FakeHost:
        if self.backend is None:
            raise CheckSkipped("needs --backend")
        host = FakeHost(self, f"{self.tag}-{n}")
        if not (host.call.connected(self.left(self.timeout))
                and host.hb.connected(self.left(self.timeout))):
            raise Aborted(f"nothing accepted a ZeroMQ connection at the back end "
                          f"{self.backend} within {self.timeout:g}s")
        return host

    def _adopt(self, host: FakeHost) -> Call:
        host.drain()
        host.send(Ready(host_id=host.host_id, pid=os.getpid(),
                        adapter=fake_adapter(self.slow_deadline), fingerprint=FAKE_FINGERPRINT))
        call = host.next_call(self.timeout)
        if call is None:
            raise CheckFailed(
                f"the broker did not start the start-up slow call 'reload' within "
                f"{self.timeout:g}s of the fake host's ready; the kit needs a broker in attach "
                f"mode with no host attached (threadhost broker --endpoint EP --backend BEP), "
                f"and no --policy"
            )
        if call.method != "reload" or call.args or call.kwargs:
            raise CheckFailed(f"expected the start-up slow call reload(), got "
                              f"{call.method}({call.args}, {call.kwargs})")
        return call

    def _open(self, host: FakeHost, startup: Call) -> None:
        host.send(Result(id=startup.id))
        if not self.wait_state("ready", self.timeout):
            raise CheckFailed(f"the gate did not open (status 'ready') within {self.timeout:g}s "
                              f"of the start-up slow call's result")

    def fake1(self) -> FakeHost:
        return self.precondition("attach a fake host", lambda: self._attach(1))

    def startup(self) -> tuple[FakeHost, Call]:
        def make() -> tuple[FakeHost, Call]:
            host = self.fake1()
            return host, self._adopt(host)

        return self.precondition(STARTUP, make)

    def gate_open(self) -> FakeHost:
        def make() -> FakeHost:
            host, call = self.startup()
            self._open(host, call)
            return host

        return self.precondition("gate open with the fake host", make)

    def maintaining(self) -> _Maintenance:
        def make() -> _Maintenance:
            host = self.gate_open()
            host.drain()
            rid = MAX_ID - 2
            reply = self.ask(Maintain(id=rid))  # method nil: the first slow call, reload
            if not isinstance(reply, MaintainReply) or reply.id != rid or not reply.started:
                raise CheckFailed(f"maintain(method=nil): expected maintain_reply(id={rid}, "
                                  f"started=true), got {describe_msg(reply)} "
                                  f"{getattr(reply, 'reason', '')!r}")
            call = host.next_call(self.timeout)
            if call is None or call.method != "reload":
                raise CheckFailed(f"after maintain, the host got {describe_msg(call)} instead "
                                  f"of the slow call reload")
            host.go_silent()  # from now on: a library holding the GIL, no heartbeats
            return _Maintenance(host, call, time.monotonic(), reply)

        return self.precondition(MAINTAINING, make)

    def host1_dead(self) -> float:
        """Seconds from the start of the held slow call to the broker giving the host up."""

        def make() -> float:
            m = self.maintaining()
            m.host.go_silent()
            limit = m.started + self.slow_deadline + max(1.0, self.heartbeat_timeout) + 1.0
            c = self.client()
            while True:
                rid = self.rid()
                msg = self.ask(Call(id=rid, method="echo", args=[rid]), c)
                if isinstance(msg, ErrorReply) and msg.code in (ErrorCode.UNAVAILABLE,
                                                                 ErrorCode.FAILED):
                    self._host1_dead = True
                    m.host.close()
                    return time.monotonic() - m.started
                if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.BUSY):
                    raise CheckFailed(f"while the slow call ran, a call got {describe_msg(msg)}")
                if time.monotonic() > limit:
                    raise CheckFailed(
                        f"the slow call ran {time.monotonic() - m.started:.1f}s, past its "
                        f"declared deadline of {self.slow_deadline:g}s, and the broker still "
                        f"answers busy"
                    )
                self.sleep(0.1)

        return self.precondition("slow call past its deadline", make)

    def live_host(self) -> FakeHost:
        """A fake host with the gate open and no slow call: host 1, or host 2 after host 1
        died in the deadline check."""
        if self._host1_dead or self.done(MAINTAINING):
            self.host1_dead()

            def make() -> FakeHost:
                host = self._attach(2)
                self._open(host, self._adopt(host))
                return host

            return self.precondition("second fake host attached, gate open", make)
        return self.gate_open()

    def silence(self) -> _Silence:
        """An idle host (no call in flight) falls silent; how long until the broker gives it
        up (its state leaves ``ready``)."""

        def make() -> _Silence:
            host = self.live_host()
            host.drain()
            host.go_silent()
            t0 = time.monotonic()
            dead = self.wait_state("restarting", 2 * self.heartbeat_timeout + self.timeout)
            waited = time.monotonic() - t0
            host.close()
            return _Silence(host.host_id, dead, waited)

        return self.precondition("idle fake host falls silent", make)

    def crash(self) -> _Crash:
        """A host exits (in attach mode: says ``goodbye``) with a call in flight."""

        def make() -> _Crash:
            self.silence()  # the previous host is gone
            host = self._attach(3)
            self._open(host, self._adopt(host))
            c = self.client()
            rid = 424242
            c.send(encode(Call(id=rid, method="echo", args=[rid])), self.left(self.timeout))
            call = host.next_call(self.timeout)
            if call is None:
                raise CheckFailed("the gate is open but a call was not forwarded to the host")
            host.send(Goodbye(host_id=host.host_id, ok=False, code=ErrorCode.ADAPTER,
                              message="the conformance kit's fake host exits"))
            reply = self.await_reply(c, rid, self.timeout)
            after: Message | None = None
            forwarded: list[Call] = []
            if reply is not None:
                rid2 = self.rid()
                after = self.ask(Call(id=rid2, method="echo", args=[rid2]), c)
                forwarded = host.calls_within(self.quiet)
            host.close()
            return _Crash(host.host_id, rid, reply, after, forwarded)

        return self.precondition("fake host exits with a call in flight", make)


def _show(frames: list[bytes]) -> str:
    try:
        msg = parse(frames)
        return describe_msg(msg)
    except CheckFailed:
        return f"{len(frames)} raw frame(s)"


def _codes(codes: set[ErrorCode]) -> str:
    return " or ".join(sorted(c.value for c in codes))


# =========================================================================== the checks

BROKER_CHECKS: list[Check[BrokerSession]] = []


def check(cid: str, requirement: str, title: str, *, needs_backend: bool = False,
          budget: Callable[[BrokerSession], float] | None = None
          ) -> Callable[[Callable[[BrokerSession], str | None]],
                        Callable[[BrokerSession], str | None]]:
    def register(func: Callable[[BrokerSession], str | None]
                 ) -> Callable[[BrokerSession], str | None]:
        kw: dict[str, Any] = {} if budget is None else {"budget": budget}
        BROKER_CHECKS.append(Check(cid, requirement, title, func, needs_backend=needs_backend,
                                   **kw))
        return func

    return register


# --------------------------------------------------------------------------- client side


@check("broker.ping", "R23", "ping is answered with pong carrying the same id")
def _ping(s: BrokerSession) -> str:
    c = s.client()
    try:
        reply, _ = s.ask_raw(encode(Ping(id=1)), c)
    except CheckFailed:  # connected, but silent: every other check would wait in vain too
        raise Aborted(f"{s.endpoint} accepted a connection but did not answer ping within "
                      f"{s.timeout:g}s: is it a broker's client endpoint (not its back "
                      f"end)?") from None
    msg = parse(reply)
    if not isinstance(msg, Pong) or msg.id != 1:
        raise CheckFailed(f"ping(id=1) was answered with {describe_msg(msg)}")
    for rid in (0, MAX_ID):
        msg = s.ask(Ping(id=rid), c)
        if not isinstance(msg, Pong) or msg.id != rid:
            raise CheckFailed(f"ping(id={rid}) was answered with {describe_msg(msg)}")
    return "ids 1, 0 and 2^64-1"


@check("broker.reply-frames", "R4", "every reply is exactly two frames (header, body)")
def _reply_frames(s: BrokerSession) -> str:
    for frames in (encode(Ping(id=2)), encode(Status(id=3)), [HEADER, b"\xc1"]):
        reply, _ = s.ask_raw(frames)
        if len(reply) != 2:
            raise CheckFailed(f"a reply to {_show(frames)} had {len(reply)} frames")
    return "pong, status_reply and error replies"


@check("broker.reply-header", "R5", "every reply starts with the header 'TH' 0x01")
def _reply_header(s: BrokerSession) -> str:
    for frames in (encode(Ping(id=4)), [HEADER, b"\xc1"], [header_v(2), packb({})]):
        reply, _ = s.ask_raw(frames)
        if not reply or reply[0] != HEADER:
            raise CheckFailed(f"reply header {reply[0][:8] if reply else b''!r}, expected "
                              f"{HEADER!r}")
    return "pong, protocol and version errors"


@check("broker.reply-body", "R6", "replies are valid msgpack maps with the declared fields")
def _reply_body(s: BrokerSession) -> str:
    kinds = []
    for msg, want in ((Ping(id=5), Pong), (Status(id=6), StatusReply),
                      (Describe(id=7), (Description, ErrorReply)),
                      (Maintain(id=8, method=UNKNOWN_CALL), MaintainReply)):
        got = s.ask(msg)  # parse() validates every field with threadhost's codec
        if not isinstance(got, want):
            raise CheckFailed(f"{msg.kind} was answered with {describe_msg(got)}")
        kinds.append(got.kind)
    return ", ".join(kinds)


@check("broker.ids", "R9", "every answer carries its request's id, 0 to 2^64-1")
def _ids(s: BrokerSession) -> str:
    c = s.client()
    for rid in (0, 1, 255, 65536, 2**32, MAX_ID):
        for msg in (Status(id=rid), Describe(id=rid), Maintain(id=rid, method=UNKNOWN_CALL)):
            got = s.ask(msg, c)
            if getattr(got, "id", None) != rid:
                raise CheckFailed(f"{msg.kind}(id={rid}) was answered with {describe_msg(got)}")
    return "status, describe, maintain; ids 0..2^64-1"


@check("broker.req-envelope", "R2", "a REQ-style empty delimiter frame is echoed")
def _req_envelope(s: BrokerSession) -> str:
    for frames in (encode(Ping(id=9)), [HEADER, b"\xc1"]):
        reply, _ = s.ask_raw([b"", *frames])
        if len(reply) != 3 or reply[0] != b"":
            raise CheckFailed(f"reply to [empty delimiter, {_show(frames)}] was "
                              f"{len(reply)} frames starting {reply[0][:8]!r}, expected the "
                              f"empty delimiter then header and body")
        parse(reply[1:])
    return "pong and error"


@check("broker.lenient-encoding", "R7", "any valid msgpack encoding and entry order is accepted")
def _lenient(s: BrokerSession) -> str:
    # map16 header, "id" first as a uint64, "kind" last as str8
    body = (b"\xde\x00\x02" + b"\xa2id" + b"\xcf" + (10).to_bytes(8, "big")
            + b"\xa4kind" + b"\xd9\x04ping")
    msg = s.ask([HEADER, body])
    if not isinstance(msg, Pong) or msg.id != 10:
        raise CheckFailed(f"a ping with kind last, a map16 header, a uint64 id and a str8 kind "
                          f"was answered with {describe_msg(msg)}")
    return "map16, kind last, uint64 id, str8"


@check("broker.unknown-fields", "R8", "unknown map entries are ignored")
def _unknown_fields(s: BrokerSession) -> str:
    msg = s.ask([HEADER, packb({"kind": "ping", "id": 11, "future": [1, {"x": b"y"}]})])
    if not isinstance(msg, Pong) or msg.id != 11:
        raise CheckFailed(f"a ping with an extra entry was answered with {describe_msg(msg)}")
    return "ping with an extra 'future' entry"


@check("broker.client-kinds", "R10", "kinds a client may not send get a protocol error")
def _client_kinds(s: BrokerSession) -> str:
    cases: list[tuple[Message, int | None]] = [
        (Result(id=12, value=1), 12),
        (Pong(id=13), 13),
        (Heartbeat(host_id="x", pid=1), None),
        (Ready(host_id="x", pid=1, adapter={}, fingerprint=""), None),
        (ErrorReply(id=17, code=ErrorCode.BUSY, message="kit"), 17),
        (Description(id=18, adapter={}, fingerprint="0" * 64), 18),
        (MaintainReply(id=19, started=True), 19),
        (StatusReply(id=20, status={"state": "ready"}), 20),
        (Shutdown(reason="a client may not stop hosts"), None),
        (Goodbye(host_id="x"), None),
    ]
    for msg, rid in cases:
        s.expect_error(msg, ErrorCode.PROTOCOL, rid, f"a client's {msg.kind}")
    return ", ".join(m.kind for m, _ in cases)


@check("broker.version", "R13", "an unsupported version gets error 'version', id nil, in v1")
def _version(s: BrokerSession) -> str:
    for v in (0, 2, 255):
        frames = [header_v(v), encode(Ping(id=14))[1]]
        reply, _ = s.ask_raw(frames)
        if reply[:1] != [HEADER]:
            raise CheckFailed(f"the answer to a version-{v} ping is not in version 1 "
                              f"(header {reply[0][:8] if reply else b''!r})")
        msg = parse(reply)
        if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.VERSION and msg.id is None):
            raise CheckFailed(f"a version-{v} ping was answered with {describe_msg(msg)}; "
                              f"expected error(code=version, id=nil)")
    return "versions 0, 2, 255"


@check("broker.bad-header", "R5", "a bad signature or header length gets a protocol error")
def _bad_header(s: BrokerSession) -> str:
    body = encode(Ping(id=15))[1]
    for header in (b"XX\x01", b"TH", b"TH\x01\x00", b"th\x01", b"\x01"):
        s.expect_error([header, body], ErrorCode.PROTOCOL, None, f"header {header!r}")
    return "5 bad headers"


@check("broker.frame-count", "R4", "a message of 1 or 3 frames gets a protocol error")
def _frame_count(s: BrokerSession) -> str:
    body = encode(Ping(id=16))[1]
    for frames in ([HEADER], [HEADER, body, b"extra"], [body]):
        s.expect_error(frames, ErrorCode.PROTOCOL, None, f"{len(frames)} frame(s)")
    return "1, 3 frames"


@check("broker.malformed", "R19",
       "malformed bodies get a protocol error with the id when readable, else nil")
def _malformed(s: BrokerSession) -> str:
    cases: list[tuple[str, bytes, int | None]] = [
        ("not msgpack", b"\xc1", None),
        ("empty body", b"", None),
        ("truncated", b"\x82\xa4kind", None),
        ("an array", packb([1, 2]), None),
        ("unknown kind", packb({"kind": "frobnicate", "id": 21}), 21),
        ("no kind", packb({"id": 22}), 22),
        ("kind not a string", packb({"kind": 5, "id": 25}), 25),
        ("call without method", packb({"kind": "call", "id": 23}), 23),
        ("args not an array", packb({"kind": "call", "id": 24, "method": "x", "args": {}}), 24),
        ("negative id", packb({"kind": "call", "id": -1, "method": "x"}), None),
        ("boolean id", packb({"kind": "call", "id": True, "method": "x"}), None),
        ("float id", packb({"kind": "ping", "id": 1.0}), None),
        ("string id", packb({"kind": "ping", "id": "1"}), None),
    ]
    for what, body, rid in cases:
        s.expect_error([HEADER, body], ErrorCode.PROTOCOL, rid, what)
    return f"{len(cases)} malformed bodies"


@check("broker.size-limit", "R16", "a body of exactly the size limit is accepted")
def _size_limit(s: BrokerSession) -> str:
    body = sized_body({"kind": "ping", "id": 26}, s.max_size)
    msg = s.ask([HEADER, body])
    if not isinstance(msg, Pong) or msg.id != 26:
        raise CheckFailed(f"a ping of exactly {s.max_size} bytes (the limit) was answered with "
                          f"{describe_msg(msg)}; if the broker's limit is smaller, pass "
                          f"--max-size")
    return f"{s.max_size}-byte ping answered"


@check("broker.oversized", "R17", "a body over the size limit gets a protocol error")
def _oversized(s: BrokerSession) -> str:
    body = sized_body({"kind": "ping", "id": 27}, s.max_size + 1)
    s.expect_error([HEADER, body], ErrorCode.PROTOCOL, _ANY_ID, f"{s.max_size + 1}-byte ping")
    return f"{s.max_size + 1}-byte ping refused"


@check("broker.vanished-client", "R1", "a client that leaves before its answer harms no one")
def _vanished(s: BrokerSession) -> str:
    for _ in range(3):
        gone = s.wire.dealer(s.endpoint, "vanishing client")
        if not gone.connected(s.left(s.timeout)):
            raise CheckFailed("could not connect")
        gone.send(encode(Status(id=28)), s.left(s.timeout))
        gone.close(linger=200)  # the request leaves, the client is gone
    s.sleep(0.1)
    msg = s.ask(Ping(id=29))
    if not isinstance(msg, Pong):
        raise CheckFailed(f"after 3 clients vanished, ping got {describe_msg(msg)}")
    return "3 clients vanished, ping still answered"


@check("broker.alive", "R20", "after malformed input the broker still serves")
def _alive(s: BrokerSession) -> str:
    c = s.client()
    for frames in ([HEADER, b"\xc1"], [b"XX\x01", b""], [HEADER], [header_v(9), b"\x00"]):
        c.send(frames, s.left(s.timeout))
    s.sleep(s.quiet)
    c.inbox.clear()
    msg = s.ask(Ping(id=30), c)
    if not isinstance(msg, Pong) or msg.id != 30:
        raise CheckFailed(f"after a burst of garbage, ping got {describe_msg(msg)}")
    state = s.status_state()
    return f"ping answered, state {state}"


@check("broker.status", "R24", "status is answered with a map whose 'state' is a gate state")
def _status(s: BrokerSession) -> str:
    msg = s.ask(Status(id=31))
    if not isinstance(msg, StatusReply) or msg.id != 31:
        raise CheckFailed(f"status got {describe_msg(msg)}")
    state = msg.status.get("state")
    if state not in GATE_STATES:
        raise CheckFailed(f"status 'state' is {state!r}, not one of {sorted(GATE_STATES)}")
    return f"state {state}"


@check("broker.describe", "R25",
       "describe gets a description, or busy/unavailable before any host was ready")
def _describe(s: BrokerSession) -> str:
    msg = s.ask(Describe(id=32))
    if isinstance(msg, Description) and msg.id == 32:
        return f"description of {msg.adapter.get('adapter')!r}, protocol {msg.protocol}"
    if (isinstance(msg, ErrorReply) and msg.id == 32
            and msg.code in (ErrorCode.BUSY, ErrorCode.UNAVAILABLE)):
        return f"no host ready yet: {msg.code.value}"
    raise CheckFailed(f"describe got {describe_msg(msg)}")


# --------------------------------------------------------------------------- the gate


@check("gate.no-host", "R29", "with no host ready, calls are refused at once, never forwarded",
       needs_backend=True)
def _no_host(s: BrokerSession) -> str:
    host = s.fake1()
    if s.done(STARTUP):
        raise CheckSkipped("the fake host is already adopted")
    host.drain()
    codes = set()
    for rid in (33, 34):
        err = s.expect_error(Call(id=rid, method="echo", args=[1]),
                             {ErrorCode.BUSY, ErrorCode.UNAVAILABLE, ErrorCode.FAILED}, rid,
                             "a call with no host ready")
        codes.add(err.code.value)
    forwarded = host.calls_within(s.quiet)
    if forwarded:
        raise CheckFailed(f"a call reached a host that never said ready: {forwarded[0]}")
    return f"answered {', '.join(sorted(codes))}"


@check("gate.version-ready", "R12", "a ready in an unsupported version is not adopted",
       needs_backend=True)
def _version_ready(s: BrokerSession) -> str:
    s.fake1()
    if s.done(STARTUP):
        raise CheckSkipped("the fake host is already adopted")
    assert s.backend is not None
    probe = s.scoped(s.wire.dealer(s.backend, "version-2 host", f"{s.tag}-v2"))
    if not probe.connected(s.left(s.timeout)):
        raise CheckFailed("could not connect to the back end")
    ready = Ready(host_id=f"{s.tag}-v2", pid=os.getpid(), adapter=fake_adapter(60.0),
                  fingerprint=FAKE_FINGERPRINT)
    probe.send([header_v(2), encode(ready)[1]], s.left(s.timeout))
    s.sleep(max(s.quiet, 0.3))
    got = [parse(f, "a message to the version-2 host") for _, f in probe.inbox]
    if any(isinstance(m, Call) for m in got):
        raise CheckFailed("the broker adopted a host whose ready was in version 2 and sent "
                          "it a call")
    return "no call sent to it"


@check("gate.startup", "R36", "after ready, the start-up slow call is sent to the host",
       needs_backend=True)
def _startup(s: BrokerSession) -> str:
    _, call = s.startup()
    state = s.status_state()
    if state != "startup":
        raise CheckFailed(f"while the start-up slow call runs, status says {state!r}, "
                          f"expected 'startup'")
    return f"reload sent (broker id {call.id}), state startup"


@check("gate.busy-startup", "R30", "during the start-up slow call, calls get busy at once",
       needs_backend=True)
def _busy_startup(s: BrokerSession) -> str:
    s.startup()
    return _expect_busy(s)


@check("gate.no-forward-startup", "R29", "nothing is forwarded during the start-up slow call",
       needs_backend=True)
def _no_forward_startup(s: BrokerSession) -> str:
    host, _ = s.startup()
    return _expect_not_forwarded(s, host)


@check("gate.open", "R36", "the gate opens when the start-up slow call answers",
       needs_backend=True)
def _open(s: BrokerSession) -> str:
    s.gate_open()
    return "state ready"


def _expect_busy(s: BrokerSession) -> str:
    c = s.client()
    latencies, hints = [], []
    for _ in range(3):
        rid = s.rid()
        reply, latency = s.ask_raw(encode(Call(id=rid, method="echo", args=[rid])), c)
        msg = parse(reply)
        if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.BUSY and msg.id == rid):
            raise CheckFailed(f"a call while a slow call runs got {describe_msg(msg)}; "
                              f"expected error(code=busy, id={rid})")
        if msg.retry_after is not None and not msg.retry_after > 0:
            raise CheckFailed(f"busy retry_after is {msg.retry_after!r}: must be nil or > 0")
        if latency > BUSY_LATENCY:
            raise CheckFailed(f"busy came after {latency * 1000:.0f} ms, not at once "
                              f"(limit {BUSY_LATENCY * 1000:.0f} ms)")
        latencies.append(latency)
        hints.append("nil" if msg.retry_after is None else f"{msg.retry_after:.2f}s")
    return (f"busy in {max(latencies) * 1000:.1f} ms max; retry_after "
            f"{', '.join(hints)}")


def _expect_not_forwarded(s: BrokerSession, host: FakeHost) -> str:
    host.drain()
    c = s.client()
    for _ in range(3):
        rid = s.rid()
        c.send(encode(Call(id=rid, method="echo", args=[rid])), s.left(s.timeout))
    s.wait(lambda: len(c.inbox) >= 3 or bool(host.call.inbox), s.timeout)
    forwarded = host.calls_within(s.quiet)
    if forwarded:
        raise CheckFailed(f"the broker forwarded {forwarded[0].method!r} (broker id "
                          f"{forwarded[0].id}) to the host while a slow call ran on it")
    return f"3 calls, none reached the host ({len(c.inbox)} answered)"


def _roundtrip(s: BrokerSession, host: FakeHost, call: Call,
               answer: Callable[[Call], Message], client: Peer | None = None,
               need_reply: bool = True) -> tuple[Call, Message | None]:
    host.drain()
    c = client or s.client()
    c.send(encode(call), s.left(s.timeout))
    got = host.next_call(s.timeout)
    if got is None:
        early = parse(c.inbox[0][1]) if c.inbox else None
        raise CheckFailed(f"the call {call.method!r} was not forwarded to the host with the "
                          f"gate open" + (f"; the client got {describe_msg(early)}"
                                          if early is not None else ""))
    host.send(answer(got))
    reply = s.await_reply(c, call.id, s.timeout if need_reply else s.quiet)
    if reply is None and need_reply:
        raise CheckFailed(f"no answer with id {call.id} reached the client within "
                          f"{s.timeout:g}s after the host answered")
    return got, reply


@check("gate.forward", "R34", "a call is forwarded with method and arguments unchanged",
       needs_backend=True)
def _forward(s: BrokerSession) -> str:
    host = s.gate_open()
    sent = Call(id=MAX_ID, method="echo", args=[42, "x", b"\x00\xff", None, 1.5, [1, {"k": True}]],
                kwargs={"opt": {"a": [1, 2]}}, timeout=2.5)
    got, _ = _roundtrip(s, host, sent, lambda c: Result(id=c.id, value=None),
                        need_reply=False)
    for name in ("method", "args", "kwargs", "timeout"):
        if getattr(got, name) != getattr(sent, name):
            raise CheckFailed(f"forwarded {name} is {getattr(got, name)!r}, the client sent "
                              f"{getattr(sent, name)!r}")
    return f"client id 2^64-1 forwarded as broker id {got.id}"


@check("gate.relay-result", "R35", "the host's result reaches the client with the client's id",
       needs_backend=True)
def _relay_result(s: BrokerSession) -> str:
    host = s.gate_open()
    value = {"n": 7, "b": b"\x01", "l": [None, 2.5, "s"]}
    _, reply = _roundtrip(s, host, Call(id=MAX_ID - 1, method="echo", args=[1]),
                          lambda c: Result(id=c.id, value=value))
    if not isinstance(reply, Result) or reply.value != value:
        raise CheckFailed(f"the client got {describe_msg(reply)} "
                          f"{getattr(reply, 'value', '')!r}, the host answered {value!r}")
    return "value and id 2^64-2 intact"


@check("gate.relay-error", "R35", "the host's error reaches the client unchanged but for the id",
       needs_backend=True)
def _relay_error(s: BrokerSession) -> str:
    host = s.gate_open()

    def boom(c: Call) -> ErrorReply:
        return ErrorReply(id=c.id, code=ErrorCode.REMOTE_EXCEPTION, message="boom",
                          remote_type="ValueError", traceback="Traceback (most recent...)")

    _, reply = _roundtrip(s, host, Call(id=35, method="echo", args=[1]), boom)
    want = boom(Call(id=35, method="echo"))
    if reply != want:
        raise CheckFailed(f"the client got {reply!r}, expected {want!r}")
    return "code, message, remote_type, traceback intact"


@check("gate.routing", "R27",
       "two clients using the same id each get their own answer (unique broker ids)",
       needs_backend=True)
def _routing(s: BrokerSession) -> str:
    host = s.gate_open()
    host.drain()
    a, b = s.client(), s.client()
    a.send(encode(Call(id=7, method="echo", args=["A"])), s.left(s.timeout))
    b.send(encode(Call(id=7, method="echo", args=["B"])), s.left(s.timeout))
    calls: list[Call] = []
    for _ in range(2):
        got = host.next_call(s.timeout)
        if got is None:
            raise CheckFailed(f"only {len(calls)} of 2 calls reached the host")
        calls.append(got)
    if calls[0].id == calls[1].id:
        raise CheckFailed(f"two outstanding calls were forwarded under the same broker id "
                          f"{calls[0].id} (R34)")
    for call in reversed(calls):  # answer in the other order
        host.send(Result(id=call.id, value=call.args[0]))
    ra, rb = s.await_reply(a, 7, s.timeout), s.await_reply(b, 7, s.timeout)
    for name, reply, want in (("A", ra, "A"), ("B", rb, "B")):
        if not isinstance(reply, Result) or reply.value != want:
            raise CheckFailed(f"client {name} got {describe_msg(reply)} "
                              f"{getattr(reply, 'value', '')!r}, expected its own value {want!r}")
    return f"broker ids {calls[0].id} and {calls[1].id}, answers routed back"


@check("gate.unknown-call", "R32",
       "undeclared, slow and private names get unknown_call and are not forwarded")
def _unknown_call(s: BrokerSession) -> str:
    host: FakeHost | None = None
    names = [UNKNOWN_CALL, "_private", "setup", "teardown", "__class__"]
    if s.backend is not None:
        host = s.gate_open()
        host.drain()
        names.append("reload")
    else:
        state = s.status_state()
        if state != "ready":
            raise CheckSkipped(f"needs an open gate: the service is {state!r} (or use --backend)")
        desc = s.ask(Describe(id=s.rid()))
        if isinstance(desc, Description):
            names += [c["name"] for c in desc.adapter.get("calls", []) if c.get("kind") == "slow"]
    for name in names:
        rid = s.rid()
        s.expect_error(Call(id=rid, method=name), ErrorCode.UNKNOWN_CALL, rid, f"call {name!r}")
    if host is not None:
        forwarded = host.calls_within(s.quiet)
        if forwarded:
            raise CheckFailed(f"{forwarded[0].method!r} was forwarded to the host")
    return ", ".join(names)


@check("gate.fingerprint", "R33", "a call with a foreign fingerprint is refused, not forwarded",
       needs_backend=True)
def _fingerprint(s: BrokerSession) -> str:
    host = s.gate_open()
    host.drain()
    s.expect_error(Call(id=36, method="echo", args=[1], fingerprint="ab" * 32),
                   ErrorCode.FINGERPRINT, 36, "a call with a foreign fingerprint")
    forwarded = host.calls_within(s.quiet)
    if forwarded:
        raise CheckFailed("the call with a foreign fingerprint was forwarded")
    _, reply = _roundtrip(s, host, Call(id=37, method="echo", args=[1],
                                        fingerprint=FAKE_FINGERPRINT),
                          lambda c: Result(id=c.id, value=1))
    if not isinstance(reply, Result):
        raise CheckFailed(f"a call with the right fingerprint got {describe_msg(reply)}")
    return "foreign refused, matching forwarded"


@check("gate.version-call", "R12", "a call in an unsupported version is never forwarded",
       needs_backend=True)
def _version_call(s: BrokerSession) -> str:
    host = s.gate_open()
    host.drain()
    s.expect_error([header_v(2), encode(Call(id=38, method="echo", args=[1]))[1]],
                   ErrorCode.VERSION, None, "a version-2 call")
    forwarded = host.calls_within(s.quiet)
    if forwarded:
        raise CheckFailed("a version-2 call was forwarded to the host")
    return "answered 'version', not forwarded"


@check("gate.describe", "R25", "describe returns the host's adapter and fingerprint",
       needs_backend=True)
def _gate_describe(s: BrokerSession) -> str:
    s.gate_open()
    msg = s.ask(Describe(id=39))
    if not isinstance(msg, Description) or msg.id != 39:
        raise CheckFailed(f"describe got {describe_msg(msg)}")
    if msg.fingerprint != FAKE_FINGERPRINT:
        raise CheckFailed(f"fingerprint {msg.fingerprint!r} is not the host's")
    names = [c.get("name") for c in msg.adapter.get("calls", [])]
    if names != ["reload", "echo"]:
        raise CheckFailed(f"described calls {names}, the host declared ['reload', 'echo']")
    return f"adapter {msg.adapter.get('adapter')!r}, protocol {msg.protocol}"


@check("gate.host-garbage", "R21",
       "malformed or stray host messages are dropped; nothing reaches clients")
def _host_garbage(s: BrokerSession) -> str:
    if s.backend is None:
        raise CheckSkipped("needs --backend")
    host = s.gate_open()
    host.drain()
    c = s.client()
    c.send(encode(Call(id=40, method="echo", args=[1])), s.left(s.timeout))
    call = host.next_call(s.timeout)
    if call is None:
        raise CheckFailed("the call was not forwarded")
    for frames in ([HEADER, b"\xc1"], [b"XX\x01", b"x"], [HEADER], [header_v(2), b"\x80"],
                   encode(Result(id=MAX_ID - 7, value="stray")),
                   encode(ErrorReply(id=None, code=ErrorCode.PROTOCOL, message="nil id")),
                   [HEADER, packb({"kind": "result", "id": call.id, "value": {1: 2}, "x": []})
                    [:-1]]):
        host.send(frames)
    s.sleep(s.quiet)
    if c.inbox:
        raise CheckFailed(f"a client got {_show(c.inbox[0][1])} after the host sent garbage")
    host.send(Result(id=call.id, value="ok"))
    reply = s.await_reply(c, 40, s.timeout)
    if not isinstance(reply, Result) or reply.value != "ok":
        raise CheckFailed(f"after the host's garbage, the real answer arrived as "
                          f"{describe_msg(reply)}")
    return "7 bad messages dropped; the real answer still routed"


@check("gate.maintain-unknown", "R26",
       "maintain of a name that is not a slow call answers started=false, starts nothing")
def _maintain_unknown(s: BrokerSession) -> str:
    host: FakeHost | None = None
    names = [UNKNOWN_CALL, "_private", "setup"]
    if s.backend is not None:
        host = s.gate_open()
        host.drain()
        names.append("echo")  # a fast call, not a slow one
    for name in names:
        rid = s.rid()
        msg = s.ask(Maintain(id=rid, method=name))
        if not isinstance(msg, MaintainReply) or msg.id != rid:
            raise CheckFailed(f"maintain({name!r}) got {describe_msg(msg)}")
        if msg.started:
            raise CheckFailed(f"maintain({name!r}) answered started=true ({msg.reason!r}), but "
                              f"the adapter has no slow call {name!r}: started MUST be true "
                              f"only when the named slow call was started")
    if host is not None:
        sent = host.calls_within(s.quiet)
        if sent:
            raise CheckFailed(f"after maintain of names that are no slow calls, the host got "
                              f"{describe_msg(sent[0])} {sent[0].method!r}")
        state = s.status_state()
        if state != "ready":
            raise CheckFailed(f"after maintain of names that are no slow calls, the state is "
                              f"{state!r}, not ready")
    return f"started=false for {', '.join(names)}"


@check("gate.maintain", "R26",
       "maintain (method nil: the first slow call) answers started=true and sends it to the "
       "host",
       needs_backend=True)
def _maintain(s: BrokerSession) -> str:
    m = s.maintaining()
    return f"maintain_reply started ({m.reply.reason!r}); reload sent as broker id {m.call.id}"


@check("gate.busy-maintaining", "R30", "during maintenance, calls get busy at once",
       needs_backend=True)
def _busy_maintaining(s: BrokerSession) -> str:
    s.maintaining()
    detail = _expect_busy(s)
    state = s.status_state()
    if state != "maintaining":
        raise CheckFailed(f"status says {state!r} while the slow call runs (R24)")
    return detail


@check("gate.ping-busy", "R23", "ping and status are answered while a slow call runs",
       needs_backend=True)
def _ping_busy(s: BrokerSession) -> str:
    s.maintaining()
    c = s.client()
    for rid in (s.rid(), s.rid()):
        reply, latency = s.ask_raw(encode(Ping(id=rid)), c)
        msg = parse(reply)
        if not isinstance(msg, Pong) or msg.id != rid:
            raise CheckFailed(f"ping(id={rid}) while a slow call runs got {describe_msg(msg)}")
        if latency > BUSY_LATENCY:
            raise CheckFailed(f"pong came after {latency * 1000:.0f} ms while a slow call ran")
    state = s.status_state()
    return f"pong at once, status {state}"


@check("gate.no-forward-maintaining", "R29", "nothing is forwarded during maintenance",
       needs_backend=True)
def _no_forward_maintaining(s: BrokerSession) -> str:
    m = s.maintaining()
    return _expect_not_forwarded(s, m.host)


@check("gate.fingerprint-busy", "R33", "a foreign fingerprint is refused first, also when busy",
       needs_backend=True)
def _fingerprint_busy(s: BrokerSession) -> str:
    s.maintaining()
    s.expect_error(Call(id=42, method="echo", args=[1], fingerprint="ab" * 32),
                   ErrorCode.FINGERPRINT, 42, "a foreign fingerprint during a slow call")
    s.expect_error(Call(id=43, method=UNKNOWN_CALL, fingerprint="ab" * 32),
                   ErrorCode.FINGERPRINT, 43, "an unknown call with a foreign fingerprint")
    return "fingerprint before busy"


@check("gate.maintain-again", "R26", "maintain while a slow call runs answers started=false",
       needs_backend=True)
def _maintain_again(s: BrokerSession) -> str:
    m = s.maintaining()
    msg = s.ask(Maintain(id=41, method="reload"))
    if not isinstance(msg, MaintainReply) or msg.id != 41 or msg.started:
        raise CheckFailed(f"a second maintain got {describe_msg(msg)} "
                          f"started={getattr(msg, 'started', None)}")
    extra = m.host.calls_within(s.quiet)
    if extra:
        raise CheckFailed("a second slow call was sent to the host while one ran")
    return f"started=false: {msg.reason!r}"


@check("gate.silent-slow-call", "R45",
       "a host silent during a slow call is not declared dead before the deadline",
       needs_backend=True, budget=lambda s: 2 * s.heartbeat_timeout + 3 * s.timeout)
def _silent_slow_call(s: BrokerSession) -> str:
    m = s.maintaining()
    m.host.go_silent()
    assert m.host.silent_since is not None
    target = m.host.silent_since + 1.5 * s.heartbeat_timeout
    s.sleep(max(0.0, target - time.monotonic()))
    rid = s.rid()
    msg = s.ask(Call(id=rid, method="echo", args=[rid]))
    silent_for = time.monotonic() - m.host.silent_since
    if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.BUSY):
        raise CheckFailed(f"after {silent_for:.1f}s without heartbeats during a slow call "
                          f"(heartbeat timeout {s.heartbeat_timeout:g}s, deadline "
                          f"{s.slow_deadline:g}s) a call got {describe_msg(msg)}, expected busy")
    return f"silent {silent_for:.1f}s > heartbeat timeout {s.heartbeat_timeout:g}s: still busy"


@check("gate.slow-deadline", "R46", "a slow call past its deadline means the host is dead",
       needs_backend=True,
       budget=lambda s: s.slow_deadline + 2 * s.heartbeat_timeout + 4 * s.timeout)
def _slow_deadline(s: BrokerSession) -> str:
    took = s.host1_dead()
    if took < s.slow_deadline - 0.25:
        raise CheckFailed(f"the host was given up {took:.2f}s into a slow call whose deadline "
                          f"is {s.slow_deadline:g}s (R45)")
    return f"given up {took:.2f}s into the slow call (deadline {s.slow_deadline:g}s)"


@check("gate.heartbeat-timeout", "R44",
       "an idle host silent for the heartbeat timeout is declared dead",
       needs_backend=True,
       budget=lambda s: s.slow_deadline + 4 * s.heartbeat_timeout + 6 * s.timeout)
def _heartbeat_timeout(s: BrokerSession) -> str:
    sil = s.silence()
    if not sil.dead:
        raise CheckFailed(f"the idle fake host fell silent and the broker still served with "
                          f"it {sil.waited:.1f}s later (heartbeat timeout assumed "
                          f"{s.heartbeat_timeout:g}s; pass --heartbeat-timeout if it differs)")
    if sil.waited < 0.5 * s.heartbeat_timeout:
        raise CheckFailed(f"the host was declared dead {sil.waited:.2f}s after its last "
                          f"heartbeat, well before the heartbeat timeout "
                          f"{s.heartbeat_timeout:g}s")
    return f"declared dead {sil.waited:.2f}s after the last heartbeat"


@check("gate.crashed", "R47",
       "on host exit the in-flight call gets 'crashed', later calls 'unavailable'",
       needs_backend=True,
       budget=lambda s: s.slow_deadline + 4 * s.heartbeat_timeout + 8 * s.timeout)
def _crashed(s: BrokerSession) -> str:
    cr = s.crash()
    r = cr.reply
    if r is None:
        raise CheckFailed("the host exited with a call in flight and the call got no answer")
    if not (isinstance(r, ErrorReply) and r.code is ErrorCode.CRASHED and r.id == cr.call_id):
        raise CheckFailed(f"the in-flight call got {describe_msg(r)}, expected "
                          f"error(code=crashed, id={cr.call_id})")
    a = cr.after
    if not (isinstance(a, ErrorReply) and a.code in (ErrorCode.UNAVAILABLE, ErrorCode.FAILED)):
        raise CheckFailed(f"a call after the host died got {describe_msg(a)}, expected "
                          f"unavailable or failed")
    if cr.forwarded_after:
        raise CheckFailed("a call was forwarded to the dead host")
    return f"crashed, then {a.code.value}; nothing sent to the dead host"


# --------------------------------------------------------------------------- broker heartbeats
# (after the destructive checks: they attach fresh fake hosts of their own)


def _calls_on(s: BrokerSession, hosts: tuple[FakeHost, ...], within: float
              ) -> list[tuple[FakeHost, Call]]:
    """The calls any of ``hosts`` received within ``within`` s (at least one, if any)."""
    found: list[tuple[FakeHost, Call]] = []

    def arrived() -> bool:
        for h in hosts:
            found.extend((h, m) for m in h.drain() if isinstance(m, Call))
        return bool(found)

    if not arrived() and within > 0:
        s.wait(arrived, within)
    return found


def _broker_beats(s: BrokerSession, host: FakeHost, within: float) -> list[Heartbeat]:
    """Heartbeats the broker sent to ``host``'s heartbeat socket within ``within`` s."""
    got: list[Heartbeat] = []

    def arrived() -> bool:
        while (item := host.hb.take()) is not None:
            msg = parse(item[1], "a message from the broker to a heartbeat socket")
            if isinstance(msg, Heartbeat):
                got.append(msg)
        return len(got) >= 2

    s.wait(arrived, within)
    return got


@check("gate.broker-heartbeat", "R52",
       "the broker sends heartbeats to a known host's heartbeat socket",
       needs_backend=True, budget=lambda s: 6 * s.timeout + 1.5 * s.heartbeat_timeout + 5.0)
def _broker_heartbeat(s: BrokerSession) -> str:
    host = s._attach(10)
    try:
        s._open(host, s._adopt(host))
        host.hb.inbox.clear()
        t0 = time.monotonic()
        beats = _broker_beats(s, host, 3.0)
        if len(beats) < 2:
            raise CheckFailed(f"{len(beats)} broker heartbeat(s) reached the host's heartbeat "
                              f"socket in {time.monotonic() - t0:.1f}s; expected one at "
                              f"least every 0.5 s")
        if any(b.host_id == host.host_id for b in beats):
            raise CheckFailed("a broker heartbeat carries the host's id, not the broker's "
                              "instance token")
        return f"{len(beats)} heartbeats in {time.monotonic() - t0:.1f}s, token " \
               f"{beats[0].host_id!r}"
    finally:
        _leave(s, host)  # leave cleanly (not a failure of the pool), gone before the next check


@check("gate.stranger-heartbeat", "R52",
       "a heartbeat from an unknown host is answered with a broker heartbeat marked stranger",
       needs_backend=True, budget=lambda s: 2 * s.timeout + 3.0)
def _stranger_heartbeat(s: BrokerSession) -> str:
    host = s._attach(11)  # beats on its own, never says ready
    try:
        beats = _broker_beats(s, host, 2.5)
        if not beats:
            raise CheckFailed("an attached host that only sent heartbeats got no broker "
                              "heartbeat within 2.5 s, so it cannot learn that a broker is "
                              "there and announce itself")
        unmarked = [b for b in beats if b.stranger is not True]
        if unmarked:
            raise CheckFailed(f"{len(unmarked)} of the {len(beats)} heartbeat(s) answering a "
                              "host that never said ready are not marked stranger: the host "
                              "cannot tell it must announce itself again (R52)")
        return f"answered with {len(beats)} heartbeat(s) marked stranger"
    finally:
        host.close()


@dataclass
class _SocketLife:
    """A host adopted, beating on its call socket only for 2.5 heartbeat timeouts."""

    silent_for: float
    state: str
    reply: Message | None
    on_call: list[str]
    """Kinds the broker sent to the call socket."""
    on_hb: list[str]
    """Kinds the broker sent to the heartbeat socket."""
    after_ready: list[Call]
    """Calls the broker sent after the host's ``ready`` again (on ``ID/hb``, R51)."""
    state_after_ready: str
    served_after_ready: Message | None


def _socket_life(s: BrokerSession) -> _SocketLife:
    def make() -> _SocketLife:
        host = s._attach(12)
        on_call: list[str] = []
        on_hb: list[str] = []

        def note_call(now: float, frames: list[bytes]) -> None:
            on_call.append(_kind_of(frames))
            host.call.inbox.append((now, frames))

        host.call.on_message = note_call
        host.hb.on_message = lambda now, frames: on_hb.append(_kind_of(frames))
        try:
            s._open(host, s._adopt(host))
            host.beat_on_call = True  # the heartbeat socket falls silent, the call socket not
            t0 = time.monotonic()
            s.sleep(2.5 * s.heartbeat_timeout)
            state = s.status_state()
            silent_for = time.monotonic() - t0
            reply: Message | None = None
            after_ready: list[Call] = []
            again_state, again = "", None
            if state == "ready":
                rid = s.rid()
                _, reply = _roundtrip(s, host, Call(id=rid, method="echo", args=[rid]),
                                      lambda c: Result(id=c.id, value=rid))
                host.beat_on_call = False
                host.hb.send(encode(Ready(host_id=host.host_id, pid=os.getpid(),
                                          adapter=fake_adapter(s.slow_deadline),
                                          fingerprint=FAKE_FINGERPRINT)), s.left(s.timeout))
                after_ready = host.calls_within(s.quiet + 0.3)
                for call in after_ready:  # answer them: the broker is to leave cleanly
                    host.send(Result(id=call.id))
                again_state = s.status_state()
                if again_state == "ready":
                    rid = s.rid()
                    _, again = _roundtrip(s, host, Call(id=rid, method="echo", args=[rid]),
                                          lambda c: Result(id=c.id, value=rid))
            return _SocketLife(silent_for, state, reply, on_call, on_hb, after_ready,
                               again_state, again)
        finally:
            host.beat_on_call = False
            _leave(s, host)

    return s.precondition("a host beats on its call socket only", make)


def _kind_of(frames: list[bytes]) -> str:
    try:
        return str(getattr(parse(frames), "kind", "?"))
    except CheckFailed:
        return "malformed"


@check("gate.call-socket-life", "R44",
       "messages on the call socket count as signs of life: a host that beats there only is "
       "not declared dead",
       needs_backend=True,
       budget=lambda s: 8 * s.timeout + 4.5 * s.heartbeat_timeout + 5.0)
def _call_socket_life(s: BrokerSession) -> str:
    life = _socket_life(s)
    if life.state != "ready":
        raise CheckFailed(f"a host whose heartbeats came on its call socket only was given "
                          f"up after {life.silent_for:.1f}s (state {life.state!r}): a broker "
                          f"MUST count any message from a host, on either socket, as a sign "
                          f"of life")
    if not isinstance(life.reply, Result):
        raise CheckFailed(f"a call to the host got {describe_msg(life.reply)}")
    return (f"heartbeats on the call socket only for {life.silent_for:.1f}s (heartbeat "
            f"timeout {s.heartbeat_timeout:g}s): still served")


@check("gate.ready-again", "R52",
       "a known host's ready again (on ID/hb) is a sign of life only: no start-up again",
       needs_backend=True,
       budget=lambda s: 8 * s.timeout + 4.5 * s.heartbeat_timeout + 5.0)
def _ready_again(s: BrokerSession) -> str:
    life = _socket_life(s)
    if life.state != "ready":
        raise CheckSkipped("needs gate.call-socket-life to pass first")
    if life.after_ready:
        raise CheckFailed(f"after a known, serving host sent its ready again (as to a new "
                          f"broker, R51), the broker sent it {describe_msg(life.after_ready[0])} "
                          f"{life.after_ready[0].method!r}: a ready from a known host MUST be "
                          f"a sign of life only")
    if life.state_after_ready != "ready" or not isinstance(life.served_after_ready, Result):
        raise CheckFailed(f"after a known host's ready again, the state is "
                          f"{life.state_after_ready!r} and a call got "
                          f"{describe_msg(life.served_after_ready)}")
    return "nothing sent; still ready and serving"


@check("gate.host-sockets", "R3",
       "calls go to the host's call socket, broker heartbeats to ID/hb only",
       needs_backend=True,
       budget=lambda s: 8 * s.timeout + 4.5 * s.heartbeat_timeout + 5.0)
def _host_sockets(s: BrokerSession) -> str:
    life = _socket_life(s)
    stray_hb = sorted({k for k in life.on_hb if k != "heartbeat"})
    if stray_hb:
        raise CheckFailed(f"the broker sent {', '.join(stray_hb)} to the heartbeat socket "
                          f"ID/hb; only its heartbeats go there")
    stray_call = sorted({k for k in life.on_call if k == "heartbeat"})
    if stray_call:
        raise CheckFailed("the broker sent heartbeats to the call socket; they go to ID/hb")
    if "call" not in life.on_call:
        raise CheckFailed(f"no call reached the call socket (it got: "
                          f"{', '.join(life.on_call) or 'nothing'})")
    if "heartbeat" not in life.on_hb:
        raise CheckFailed("no broker heartbeat reached ID/hb (R52)")
    return (f"call socket: {', '.join(sorted(set(life.on_call)))}; ID/hb: "
            f"{life.on_hb.count('heartbeat')} heartbeats")


@check("gate.drain", "R29",
       "a host with a call in flight when maintenance begins gets no new call, and the slow "
       "call only after that call is answered",
       needs_backend=True,
       budget=lambda s: 10 * s.timeout + 1.5 * s.heartbeat_timeout + 3.0)
def _drain(s: BrokerSession) -> str:
    host = s._attach(13)
    try:
        s._open(host, s._adopt(host))
        c = s.client()
        held = s.rid()
        c.send(encode(Call(id=held, method="echo", args=[held])), s.left(s.timeout))
        first = host.next_call(s.timeout)
        if first is None:
            raise CheckFailed("the gate is open but a call was not forwarded to the host")
        reply = s.ask(Maintain(id=s.rid(), method="reload"))
        if not isinstance(reply, MaintainReply) or not reply.started:
            raise CheckFailed(f"maintain with a call in flight: {describe_msg(reply)} "
                              f"{getattr(reply, 'reason', '')!r}")
        rid = s.rid()
        c.send(encode(Call(id=rid, method="echo", args=[rid])), s.left(s.timeout))
        early = host.calls_within(s.quiet)
        msg = s.await_reply(c, rid, s.timeout)
        if early:
            what = ("the slow call reload" if early[0].method == "reload"
                    else f"the call {early[0].method!r}")
            raise CheckFailed(f"while its call {first.id} was still in flight, the host being "
                              f"drained for maintenance was sent {what}")
        if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.BUSY):
            raise CheckFailed(f"a call while the only host drains for maintenance got "
                              f"{describe_msg(msg)}, expected busy")
        host.send(Result(id=first.id, value=held))
        if not isinstance(s.await_reply(c, held, s.timeout), Result):
            raise CheckFailed("the call in flight was not answered after the host answered it")
        slow = host.next_call(s.timeout)
        if slow is None or slow.method != "reload":
            raise CheckFailed(f"after the last call in flight was answered, the host got "
                              f"{describe_msg(slow)} instead of the slow call reload")
        host.send(Result(id=slow.id))
        return "no call and no slow call while a call was in flight; then reload"
    finally:
        _leave(s, host)


# --------------------------------------------------------------------------- pools


def _open_both(s: BrokerSession, a: FakeHost, b: FakeHost) -> None:
    """Host ``a`` adopted and serving, then ``b`` too (skipped if the broker takes one)."""
    s._open(a, s._adopt(a))
    b.drain()
    b.send(Ready(host_id=b.host_id, pid=os.getpid(), adapter=fake_adapter(s.slow_deadline),
                 fingerprint=FAKE_FINGERPRINT))
    startup = b.next_call(s.timeout)
    if startup is None:
        raise CheckSkipped("the broker did not adopt a second host of a replicable "
                           "adapter (one host per broker, or --hosts 1)")
    b.send(Result(id=startup.id))
    s.sleep(0.2)


def _listed_hosts(s: BrokerSession, client: Peer | None) -> set[str] | None:
    """The host ids in the broker's status (its informative ``hosts`` entry: a list of maps
    with an ``id``), or None when it shows no such list or does not answer."""
    try:
        msg = s.ask(Status(id=s.rid()), client)
    except (CheckFailed, Aborted):
        return None
    hosts = msg.status.get("hosts") if isinstance(msg, StatusReply) else None
    if not isinstance(hosts, list):
        return None
    return {h["id"] for h in hosts if isinstance(h, dict) and isinstance(h.get("id"), str)}


def _leave(s: BrokerSession, *hosts: FakeHost) -> None:
    """The hosts leave cleanly (goodbye ok: not failures of the pool), then are gone: gone
    from the broker's status when it listed them there (a host it no longer lists it has
    forgotten already), else (or at the latest) after the time a broker that ignored the
    goodbye takes to give silent hosts up."""
    ids = {h.host_id for h in hosts}
    client: Peer | None = None
    with contextlib.suppress(CheckFailed, Aborted):
        client = s.client()
    listed = _listed_hosts(s, client) if client is not None else None
    for h in hosts:
        with contextlib.suppress(Exception):
            h.send(Goodbye(host_id=h.host_id, ok=True, message="leaving"))
        h.close()
    limit = time.monotonic() + 1.5 * s.heartbeat_timeout + 0.5
    watch = ids & listed if listed is not None else set()
    if watch:  # the status tracks them (those it no longer lists it forgot): watch them go
        while time.monotonic() < limit:
            now_listed = _listed_hosts(s, client)
            if now_listed is not None and not watch & now_listed:
                return
            s.sleep(min(0.05, max(0.0, limit - time.monotonic())))
    s.sleep(max(0.0, limit - time.monotonic()))


@check("gate.pool", "R53",
       "with two hosts: least-loaded routing, staggered maintenance without busy",
       needs_backend=True, budget=lambda s: 12 * s.timeout + 1.5 * s.heartbeat_timeout + 5.0)
def _pool(s: BrokerSession) -> str:
    a, b = s._attach(20), s._attach(21)
    try:
        _open_both(s, a, b)
        c = s.client()
        for rid in (1, 2):
            c.send(encode(Call(id=rid, method="echo", args=[rid])), s.left(s.timeout))
        got_a, got_b = a.next_call(s.timeout), b.next_call(s.timeout)
        if got_a is None or got_b is None:
            raise CheckFailed(f"two calls with two idle hosts: host A got {describe_msg(got_a)},"
                              f" host B got {describe_msg(got_b)}; each should get one")
        a.send(Result(id=got_a.id, value=1))
        b.send(Result(id=got_b.id, value=2))
        answered: set[int] = set()

        def both() -> bool:
            while (item := c.take()) is not None:
                answered.add(getattr(parse(item[1]), "id", -1))
            return {1, 2} <= answered

        if not s.wait(both, s.timeout):
            raise CheckFailed(f"answers to calls 1 and 2: got ids {sorted(answered)}")
        reply = s.ask(Maintain(id=s.rid(), method="reload"))
        if not isinstance(reply, MaintainReply) or not reply.started:
            raise CheckFailed(f"maintain: {describe_msg(reply)}")
        reloads = _calls_on(s, (a, b), s.timeout)
        s.sleep(s.quiet)
        reloads += _calls_on(s, (a, b), 0.0)
        if len(reloads) != 1 or reloads[0][1].method != "reload":
            raise CheckFailed(f"after maintain, the hosts got {len(reloads)} call(s): "
                              f"{', '.join(describe_msg(m) for _, m in reloads) or 'none'}; "
                              f"expected reload on exactly one host")
        maint, first = reloads[0]
        other = b if maint is a else a
        rid = s.rid()
        msg: Message | None
        c.send(encode(Call(id=rid, method="echo", args=[rid])), s.left(s.timeout))
        fwd = other.next_call(s.timeout)
        if fwd is None:
            msg = s.await_reply(c, rid, s.timeout)
            raise CheckFailed(f"during maintenance of one host of two, a call got "
                              f"{describe_msg(msg)} instead of going to the other host")
        if fwd.method == "reload":
            raise CheckFailed("both hosts were taken out for maintenance at once")
        other.send(Result(id=fwd.id, value=3))
        msg = s.await_reply(c, rid, s.timeout)
        if not isinstance(msg, Result):
            raise CheckFailed(f"the call during maintenance got {describe_msg(msg)}")
        maint.send(Result(id=first.id))
        second = other.next_call(s.timeout)
        if second is None or second.method != "reload":
            raise CheckFailed(f"after the first host's slow call, the second host got "
                              f"{describe_msg(second)} instead of reload")
        other.send(Result(id=second.id))
        return "one call per idle host; reload on one host at a time, calls served meanwhile"
    finally:
        _leave(s, a, b)


# --------------------------------------------------------------------------- bad states


def _shutdown_within(s: BrokerSession, host: FakeHost, within: float) -> bool:
    got: list[Message] = []

    def arrived() -> bool:
        got.extend(m for m in host.drain() if isinstance(m, Shutdown))
        return bool(got)

    return s.wait(arrived, within)


@check("gate.startup-failure", "R55",
       "a host whose start-up slow call fails is never in rotation, and is given up",
       needs_backend=True, budget=lambda s: 6 * s.timeout + 2.0)
def _startup_failure(s: BrokerSession) -> str:
    host = s._attach(30)
    try:
        startup = s._adopt(host)
        host.send(ErrorReply(id=startup.id, code=ErrorCode.REMOTE_EXCEPTION,
                             message="the kit's start-up fails"))
        told = _shutdown_within(s, host, s.timeout)
        c = s.client()
        for _ in range(3):
            rid = s.rid()
            msg = s.ask(Call(id=rid, method="echo", args=[rid]), c)
            if isinstance(msg, Result):
                raise CheckFailed("a call was answered with a result by a host whose start-up "
                                  "slow call failed")
        forwarded = host.calls_within(s.quiet)
        if forwarded:
            raise CheckFailed(f"{len(forwarded)} call(s) were forwarded to a host whose "
                              f"start-up slow call failed")
        if not told:
            raise CheckFailed("the attached host whose start-up failed was not sent shutdown")
        return "not in rotation; sent shutdown"
    finally:
        host.close()


@check("gate.poison", "R57",
       "a call that killed hosts twice is refused with 'poisoned', never forwarded",
       needs_backend=True,
       budget=lambda s: s.slow_deadline + 4 * s.heartbeat_timeout + 14 * s.timeout)
def _poison(s: BrokerSession) -> str:
    first = s.crash()  # echo(424242) was in flight when host 3 exited: one death
    if first.reply is None:
        raise CheckSkipped("needs gate.crashed to pass first")
    rid = 424242
    host = s._attach(31)
    try:
        s._open(host, s._adopt(host))
        c = s.client()
        c.send(encode(Call(id=s.rid(), method="echo", args=[rid])), s.left(s.timeout))
        if host.next_call(s.timeout) is None:
            raise CheckFailed("the gate is open but a call was not forwarded to the host")
        host.send(Goodbye(host_id=host.host_id, ok=False, code=ErrorCode.ADAPTER,
                          message="the kit's host dies again"))
        s.sleep(0.3)
    finally:
        host.close()
    host = s._attach(32)
    try:
        s._open(host, s._adopt(host))
        host.drain()
        msg = s.ask(Call(id=s.rid(), method="echo", args=[rid]))
        if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.POISONED):
            raise CheckFailed(f"the call that killed two hosts got {describe_msg(msg)}, "
                              f"expected error(code=poisoned)")
        if host.calls_within(s.quiet):
            raise CheckFailed("the poisoned call was forwarded")
        other = s.rid()
        c = s.client()
        c.send(encode(Call(id=other, method="echo", args=[rid + 1])), s.left(s.timeout))
        fwd = host.next_call(s.timeout)
        if fwd is None:
            raise CheckFailed("a call with other arguments was not forwarded")
        host.send(Result(id=fwd.id, value=rid + 1))
        return "poisoned at once; other arguments still served"
    finally:
        _leave(s, host)


def _halted_round(s: BrokerSession, ids: tuple[int, int], code: ErrorCode) -> str:
    a, b = s._attach(ids[0]), s._attach(ids[1])
    try:
        _open_both(s, a, b)
        reply = s.ask(Maintain(id=s.rid(), method="reload"))
        if not isinstance(reply, MaintainReply) or not reply.started:
            raise CheckFailed(f"maintain: {describe_msg(reply)}")
        reloads = _calls_on(s, (a, b), s.timeout)
        if len(reloads) != 1:
            raise CheckFailed(f"after maintain, {len(reloads)} reload call(s); expected one")
        canary, call = reloads[0]
        other = b if canary is a else a
        text = ("verify failed after 'reload': the kit says so" if code is ErrorCode.UNFIT
                else "the kit's reload fails")
        canary.send(ErrorReply(id=call.id, code=code, message=text))
        if other.calls_within(s.quiet + 0.5):
            raise CheckFailed(f"the round went on to the next host after the first host's "
                              f"slow call answered {code.value}")
        if not _shutdown_within(s, canary, s.timeout):
            raise CheckFailed(f"the host whose slow call answered {code.value} was not sent "
                              f"shutdown (attach mode)")
        c = s.client()
        for _ in range(3):
            rid = s.rid()
            c.send(encode(Call(id=rid, method="echo", args=[rid])), s.left(s.timeout))
            fwd = other.next_call(s.timeout)
            if fwd is None:
                raise CheckFailed("a call was not forwarded to the host that kept its state")
            other.send(Result(id=fwd.id, value=rid))
        if canary.calls_within(s.quiet):
            raise CheckFailed(f"a call was forwarded to the host whose slow call answered "
                              f"{code.value}")
        return f"round halted after {code.value} on the first host; the other kept serving"
    finally:
        _leave(s, a, b)


@check("gate.canary", "R56",
       "with two hosts, a slow call answered 'unfit' stops the round and retires the host",
       needs_backend=True, budget=lambda s: 12 * s.timeout + 1.5 * s.heartbeat_timeout + 5.0)
def _canary(s: BrokerSession) -> str:
    return _halted_round(s, (40, 41), ErrorCode.UNFIT)


@check("gate.canary-error", "R56",
       "with two hosts, a slow call answered 'error' stops the round",
       needs_backend=True, budget=lambda s: 12 * s.timeout + 1.5 * s.heartbeat_timeout + 5.0)
def _canary_error(s: BrokerSession) -> str:
    return _halted_round(s, (42, 43), ErrorCode.REMOTE_EXCEPTION)
