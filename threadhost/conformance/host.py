"""Conformance checks for a **host** (``threadhost conformance EP --role host``).

The kit is a *fake broker*: it binds a ROUTER on the endpoint and waits for a host to
connect its two DEALERs (``ID`` for calls, ``ID/hb`` for heartbeats) — a host the user
starts (``threadhost host MODULE --connect EP``), or one the kit starts itself
(``--spawn MODULE`` or ``--exec "COMMAND {endpoint}"`` for other implementations). It then
sends raw frames and watches both sockets, and plays a broker's heartbeats to ``ID/hb``
to see that the host announces itself again to a new broker (R51).

The kit never runs library code of its own accord: a fast call is made only with
``--probe NAME:JSON_ARGS`` and a slow call only with ``--slow NAME``; checks that need them
are skipped otherwise. When the slow call leaves the instance unfit (the adapter's
``verify`` failed, R54), the probe is made again and must be refused with ``unfit``.
Arguments that do not fit (``bad_arguments``) and undeclared names (``unknown_call``) must
be refused by the host before any library code runs. The last check sends ``shutdown``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Message,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
    Status,
    encode,
)

__all__ = ["HOST_CHECKS", "HostSession", "spawn_command"]

UNKNOWN_CALL = "__conformance_no_such_call__"


def spawn_command(target: str) -> list[str]:
    """The command ``--spawn TARGET`` runs: this Python's ``threadhost host``."""
    return [sys.executable, "-m", "threadhost", "host", target, "--connect", "{endpoint}"]


@dataclass
class _Beat:
    at: float
    routing_id: str
    msg: Heartbeat | None
    problem: str | None


class HostSession(Session):
    """One host run: a ROUTER bound on ``endpoint`` playing the broker."""

    def __init__(self, endpoint: str, *, command: Sequence[str] | None,
                 env: Mapping[str, str] | None, probe: tuple[str, Any] | None,
                 slow: str | None, slow_timeout: float, heartbeat_interval: float,
                 wait: float, timeout: float, quiet: float, max_size: int) -> None:
        super().__init__(timeout, quiet, max_size)
        self.endpoint = endpoint
        self.command = list(command) if command is not None else None
        self.env = env
        self.probe = probe
        self.slow = slow
        self.slow_timeout = slow_timeout
        self.interval = heartbeat_interval
        self.connect_wait = wait
        self.router: Peer | None = None
        self.bound = endpoint
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.host_id: str | None = None
        self.inbox: deque[tuple[float, list[bytes]]] = deque()
        self.first: tuple[float, list[bytes]] | None = None
        self.beats: list[_Beat] = []
        self.announcements: list[tuple[float, Ready]] = []  # ready on the heartbeat socket
        self.others: list[str] = []
        self.slow_answer: Message | None = None  # the answer to the --slow call, once made
        self._id = 100

    def rid(self) -> int:
        self._id += 1
        return self._id

    def begin_check(self, budget: float) -> None:
        super().begin_check(budget)
        self.inbox.clear()  # late answers to an earlier check must not count for this one

    # ------------------------------------------------------------------ wire

    def _dispatch(self, now: float, frames: list[bytes]) -> None:
        ident = frames[0].decode("utf-8", "replace")
        payload = frames[1:]
        if ident.endswith("/hb"):
            if self.host_id is not None and ident != f"{self.host_id}/hb":
                self.others.append(ident)
                return
            try:
                msg = parse(payload, "a heartbeat")
            except CheckFailed as exc:
                self.beats.append(_Beat(now, ident, None, str(exc)))
                return
            if isinstance(msg, Heartbeat):
                self.beats.append(_Beat(now, ident, msg, None))
            elif isinstance(msg, Ready):  # a re-announcement to a (new) broker, R51
                self.announcements.append((now, msg))
            else:
                self.beats.append(_Beat(now, ident, None,
                                        f"the heartbeat socket sent {describe_msg(msg)}"))
            return
        if self.host_id is None:
            self.host_id = ident
            self.first = (now, payload)
            return
        if ident != self.host_id:
            self.others.append(ident)
            return
        self.inbox.append((now, payload))

    def send(self, msg: Message | list[bytes]) -> None:
        assert self.router is not None and self.host_id is not None
        frames = msg if isinstance(msg, list) else encode(msg)
        self.router.send([self.host_id.encode(), *frames], self.left(self.timeout))

    def send_hb(self, msg: Message) -> None:
        """Send to the host's heartbeat socket ``ID/hb`` (broker heartbeats go there, R52)."""
        assert self.router is not None and self.host_id is not None
        self.router.send([f"{self.host_id}/hb".encode(), *encode(msg)],
                         self.left(self.timeout))

    def answers_within(self, seconds: float) -> list[Message]:
        self.sleep(seconds)
        return self.drain()

    def drain(self) -> list[Message]:
        out = []
        while self.inbox:
            out.append(parse(self.inbox.popleft()[1], "a message from the host", self.max_size))
        return out

    def await_answer(self, rid: int, timeout: float) -> Message | None:
        found: list[Message] = []
        kept: list[tuple[float, list[bytes]]] = []

        def arrived() -> bool:
            while self.inbox:
                item = self.inbox.popleft()
                msg = parse(item[1], "a message from the host", self.max_size)
                if getattr(msg, "id", None) == rid:
                    found.append(msg)
                else:
                    kept.append(item)
            return bool(found)

        self.wait(arrived, timeout)
        self.inbox.extendleft(reversed(kept))
        return found[0] if found else None

    def ask(self, msg: Message | list[bytes], rid: int, what: str) -> Message:
        self.send(msg)
        got = self.await_answer(rid, self.timeout)
        if got is None:
            raise CheckFailed(f"{what}: no answer with id {rid} within {self.timeout:g}s")
        return got

    def expect_error(self, msg: Message | list[bytes], code: ErrorCode, rid: int,
                     what: str) -> ErrorReply:
        got = self.ask(msg, rid, what)
        if not (isinstance(got, ErrorReply) and got.code is code):
            raise CheckFailed(f"{what}: expected error(code={code.value}, id={rid}), got "
                              f"{describe_msg(got)}")
        return got

    def alive(self, what: str) -> None:
        rid = self.rid()
        self.expect_error(Call(id=rid, method=UNKNOWN_CALL), ErrorCode.UNKNOWN_CALL, rid,
                          f"after {what}, a call")

    # ------------------------------------------------------------------ start-up

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return ("; last output: " + " | ".join(lines[-3:])) if lines else ""

    def _start(self) -> str:
        self.router, self.bound = self.wire.router(self.endpoint, "fake broker")
        self.router.on_message = self._dispatch
        if self.command is not None:
            cmd = [part.replace("{endpoint}", self.bound) for part in self.command]
            env = dict(os.environ)
            env.update(self.env or {})
            extra = env.get("PYTHONPATH", "").split(os.pathsep)
            paths = [os.getcwd(), *(p for p in extra if p)]
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
            self._log = tempfile.TemporaryFile()  # noqa: SIM115  # closed in close()
            try:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                             stderr=subprocess.STDOUT, env=env)
            except OSError as exc:
                raise Aborted(f"cannot start the host {cmd[0]!r}: {exc}") from None

        def arrived() -> bool:
            return self.host_id is not None or (self.proc is not None
                                                and self.proc.poll() is not None)

        self.wire.wait(arrived, self.left(self.connect_wait))
        if self.host_id is None:
            if self.proc is not None and self.proc.poll() is not None:
                raise Aborted(f"the host process exited with code {self.proc.returncode} "
                              f"before it connected{self._log_tail()}")
            if self.beats:
                raise Aborted(f"a heartbeat socket connected ({self.beats[0].routing_id!r}) "
                              f"but no ready arrived on a call socket within "
                              f"{self.connect_wait:g}s{self._log_tail()}")
            raise Aborted(f"no host connected to {self.bound} within {self.connect_wait:g}s "
                          f"(start one with: threadhost host MODULE --connect {self.bound})")
        return self.host_id

    def connected(self) -> str:
        return self.precondition("a host connected", self._start)

    def ready(self) -> Ready:
        def make() -> Ready:
            self.connected()
            assert self.first is not None
            msg = parse(self.first[1], "the host's first message")
            if isinstance(msg, Goodbye):
                raise Aborted(f"the host said goodbye instead of ready (ok={msg.ok}, "
                              f"code={msg.code}): {msg.message}{self._log_tail()}")
            if not isinstance(msg, Ready):
                raise CheckFailed(f"the host's first message was {describe_msg(msg)}, "
                                  f"expected ready")
            return msg

        return self.precondition("the host said ready", make)

    def fast_calls(self) -> list[dict[str, Any]]:
        calls = self.ready().adapter.get("calls", [])
        return [c for c in calls if isinstance(c, dict) and c.get("kind") == "fast"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
        super().close()


# =========================================================================== the checks

HOST_CHECKS: list[Check[HostSession]] = []


def check(cid: str, requirement: str, title: str, *,
          budget: Callable[[HostSession], float] | None = None
          ) -> Callable[[Callable[[HostSession], str | None]],
                        Callable[[HostSession], str | None]]:
    def register(func: Callable[[HostSession], str | None]
                 ) -> Callable[[HostSession], str | None]:
        kw: dict[str, Any] = {} if budget is None else {"budget": budget}
        HOST_CHECKS.append(Check(cid, requirement, title, func, **kw))
        return func

    return register


@check("host.sockets", "R3", "the host connects a call socket ID and a heartbeat socket ID/hb",
       budget=lambda s: s.connect_wait + 4 * s.interval + 2 * s.timeout)
def _sockets(s: HostSession) -> str:
    host_id = s.connected()
    s.ready()  # a host that said goodbye instead stops the run here, with its reason
    if host_id.endswith("/hb") or not host_id:
        raise CheckFailed(f"the call socket's routing id {host_id!r} is empty or ends in '/hb'")
    want = f"{host_id}/hb"
    s.wait(lambda: any(b.routing_id == want for b in s.beats), 2 * s.interval + s.quiet)
    if not any(b.routing_id == want for b in s.beats):
        seen = sorted(set(s.others))
        raise CheckFailed(f"no message from a heartbeat socket {want!r}"
                          + (f"; other routing ids seen: {seen}" if seen else ""))
    return f"routing ids {host_id!r} and {want!r}"


@check("host.ready", "R37", "the host's first message is ready, naming its routing id",
       budget=lambda s: s.connect_wait + 2 * s.timeout)
def _ready(s: HostSession) -> str:
    msg = s.ready()
    if msg.host_id != s.host_id:
        raise CheckFailed(f"ready.host_id is {msg.host_id!r}, the routing id is {s.host_id!r}")
    if msg.pid <= 0 or not msg.fingerprint or not isinstance(msg.adapter.get("calls"), list):
        raise CheckFailed(f"ready lacks a pid, fingerprint or adapter calls: {msg!r}")
    names = [c.get("name") for c in msg.adapter["calls"] if isinstance(c, dict)]
    return f"pid {msg.pid}, adapter {msg.adapter.get('adapter')!r}, calls {names}"


@check("host.fingerprint", "R58", "ready's fingerprint is the one its adapter description gives",
       budget=lambda s: s.connect_wait + 2 * s.timeout)
def _fingerprint(s: HostSession) -> str:
    from threadhost.adapter import fingerprint_of

    msg = s.ready()
    calls = msg.adapter.get("calls")
    try:
        want = fingerprint_of(calls)  # type: ignore[arg-type]
    except Exception as exc:  # a description the algorithm cannot read
        raise CheckFailed(f"cannot compute a fingerprint from the description's calls: "
                          f"{type(exc).__name__}: {exc}") from None
    if msg.fingerprint != want:
        raise CheckFailed(f"ready.fingerprint is {msg.fingerprint!r}; the description's calls "
                          f"give {want!r} (docs/protocol.md, \"The adapter fingerprint\")")
    return f"fingerprint {want[:16]}... matches the description"


@check("host.heartbeat", "R41", "idle heartbeats arrive at least every interval, busy_id nil",
       budget=lambda s: max(0.5, 3 * s.interval) + 2 * s.timeout)
def _heartbeat(s: HostSession) -> str:
    ready = s.ready()
    window = max(0.5, 3 * s.interval)
    t0 = time.monotonic()
    s.sleep(window)
    t1 = time.monotonic()
    beats = [b for b in s.beats if t0 <= b.at <= t1]
    for b in beats:
        if b.problem is not None:
            raise CheckFailed(b.problem)
        assert b.msg is not None
        if b.msg.host_id != s.host_id or b.msg.pid != ready.pid:
            raise CheckFailed(f"heartbeat host_id={b.msg.host_id!r} pid={b.msg.pid}, expected "
                              f"{s.host_id!r} and {ready.pid}")
        if b.msg.busy_id is not None:
            raise CheckFailed(f"an idle host's heartbeat says busy_id={b.msg.busy_id}")
    gap = _max_gap([b.at for b in beats], t0, t1)
    if gap > 2 * s.interval:
        raise CheckFailed(f"{len(beats)} heartbeats in {window:.1f}s, longest gap {gap:.2f}s > "
                          f"2 x interval {s.interval:g}s (pass --heartbeat-interval if the "
                          f"host's differs)")
    return f"{len(beats)} heartbeats in {window:.1f}s, longest gap {gap:.2f}s"


def _max_gap(times: list[float], start: float, end: float) -> float:
    points = [start, *times, end]
    return max(b - a for a, b in itertools.pairwise(points))


@check("host.ids", "R9", "answers carry the call's id, 0 to 2^64-1")
def _ids(s: HostSession) -> str:
    s.ready()
    for rid in (0, 1, 2**32, MAX_ID):
        got = s.ask(Call(id=rid, method=UNKNOWN_CALL), rid, f"call(id={rid})")
        if not isinstance(got, Result | ErrorReply):
            raise CheckFailed(f"call(id={rid}) was answered with {describe_msg(got)}")
    return "ids 0, 1, 2^32, 2^64-1"


@check("host.answer-once", "R38", "every call is answered exactly once, also when pipelined")
def _answer_once(s: HostSession) -> str:
    s.ready()
    ids = [s.rid() for _ in range(5)]
    for rid in ids:
        s.send(Call(id=rid, method=UNKNOWN_CALL))
    got: list[Message] = []

    def five() -> bool:
        got.extend(s.drain())
        return len(got) >= 5

    s.wait(five, s.timeout)
    got.extend(s.answers_within(s.quiet))
    seen = [getattr(m, "id", None) for m in got]
    if sorted(x for x in seen if x is not None) != ids or len(seen) != 5:
        raise CheckFailed(f"5 pipelined calls (ids {ids}) were answered with ids {seen}")
    return "5 pipelined calls, 5 answers"


@check("host.unknown-call", "R39", "undeclared names get unknown_call")
def _unknown_call(s: HostSession) -> str:
    s.ready()
    names = [UNKNOWN_CALL, "setup", "teardown", "_private", "__init__", "__class__"]
    for name in names:
        rid = s.rid()
        s.expect_error(Call(id=rid, method=name), ErrorCode.UNKNOWN_CALL, rid, f"call {name!r}")
    return ", ".join(names)


@check("host.bad-arguments", "R39", "arguments that do not fit get bad_arguments")
def _bad_arguments(s: HostSession) -> str:
    fast = s.fast_calls()
    if not fast:
        raise CheckSkipped("the adapter declares no fast call")
    name = str(fast[0]["name"])
    nparams = len(fast[0].get("params", []))
    cases: list[tuple[list[Any], dict[str, Any]]] = [
        ([], {"__conformance_bogus__": 1}),
        ([None] * (nparams + 3), {}),
    ]
    for args, kwargs in cases:
        rid = s.rid()
        s.expect_error(Call(id=rid, method=name, args=args, kwargs=kwargs),
                       ErrorCode.BAD_ARGUMENTS, rid, f"{name} with arguments that do not fit")
    s.alive("bad arguments")
    return f"{name}: unknown keyword, {nparams + 3} positional arguments"


@check("host.probe", "R38", "a fast call (--probe) is answered once with its id")
def _probe(s: HostSession) -> str:
    s.ready()
    if s.probe is None:
        raise CheckSkipped("pass --probe NAME:JSON_ARGS to let the kit make a real call")
    name, params = s.probe
    args = params if isinstance(params, list) else []
    kwargs = params if isinstance(params, dict) else {}
    rid = MAX_ID - 3
    got = s.ask(Call(id=rid, method=name, args=args, kwargs=kwargs), rid, f"probe {name}")
    if not isinstance(got, Result | ErrorReply):
        raise CheckFailed(f"probe {name} was answered with {describe_msg(got)}")
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"after the answer to {name}, the host also sent "
                          f"{describe_msg(extra[0])}")
    if isinstance(got, ErrorReply):
        return f"{name} -> error {got.code.value}: {got.message[:60]}"
    return f"{name} -> {got.value!r}"[:100]


@check("host.lenient-encoding", "R7", "any valid msgpack encoding and entry order is accepted")
def _lenient(s: HostSession) -> str:
    s.ready()
    method = UNKNOWN_CALL.encode()
    body = (b"\xde\x00\x03" + b"\xa2id" + b"\xcf" + (61).to_bytes(8, "big")
            + b"\xa6method" + b"\xd9" + bytes([len(method)]) + method
            + b"\xa4kind" + b"\xd9\x04call")
    s.expect_error([HEADER, body], ErrorCode.UNKNOWN_CALL, 61,
                   "a call with kind last, map16, uint64 id")
    return "map16, kind last, uint64 id, str8"


@check("host.unknown-fields", "R8", "unknown map entries are ignored")
def _unknown_fields(s: HostSession) -> str:
    s.ready()
    body = packb({"kind": "call", "id": 62, "method": UNKNOWN_CALL, "future": {"x": [1]}})
    s.expect_error([HEADER, body], ErrorCode.UNKNOWN_CALL, 62, "a call with an extra entry")
    return "call with an extra 'future' entry"


@check("host.malformed", "R22",
       "malformed input: protocol error when the id is readable, else dropped")
def _malformed(s: HostSession) -> str:
    s.ready()
    readable: list[tuple[str, bytes, int]] = [
        ("call without method", packb({"kind": "call", "id": 31}), 31),
        ("unknown kind", packb({"kind": "frobnicate", "id": 32}), 32),
        ("args not an array", packb({"kind": "call", "id": 33, "method": "x", "args": {}}), 33),
    ]
    for what, body, rid in readable:
        s.expect_error([HEADER, body], ErrorCode.PROTOCOL, rid, what)
    unreadable: list[list[bytes]] = [
        [HEADER, b"\xc1"], [HEADER], [HEADER, packb([1])], [b"XX\x01", b"\x80"],
        [HEADER, packb({"kind": "call", "id": -5, "method": "x"})],
    ]
    for frames in unreadable:
        s.send(frames)
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"the host answered input without a readable id with "
                          f"{describe_msg(extra[0])}; it must drop it")
    s.alive("malformed input")
    return f"{len(readable)} answered with their id, {len(unreadable)} dropped"


@check("host.unexpected-kinds", "R10", "kinds a host does not receive are ignored")
def _unexpected(s: HostSession) -> str:
    s.ready()
    for msg in (Ping(id=51), Pong(id=52), Result(id=53), Status(id=54)):
        s.send(msg)
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"the host answered a broker-bound kind with {describe_msg(extra[0])}")
    s.alive("unexpected kinds")
    return "ping, pong, result, status ignored"


@check("host.version", "R14", "a call in an unsupported version is dropped, not run")
def _version(s: HostSession) -> str:
    s.ready()
    for v in (0, 2):
        s.send([header_v(v), encode(Call(id=40 + v, method=UNKNOWN_CALL))[1]])
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"the host answered a call in another version with "
                          f"{describe_msg(extra[0])}")
    s.alive("calls in versions 0 and 2")
    return "versions 0 and 2 dropped"


@check("host.size-limit", "R16", "a body at the limit is accepted, over it not decoded")
def _size_limit(s: HostSession) -> str:
    s.ready()
    at = sized_body({"kind": "call", "id": 71, "method": UNKNOWN_CALL}, s.max_size)
    s.expect_error([HEADER, at], ErrorCode.UNKNOWN_CALL, 71, f"a {s.max_size}-byte call")
    over = sized_body({"kind": "call", "id": 72, "method": UNKNOWN_CALL}, s.max_size + 1)
    s.send([HEADER, over])
    for msg in s.answers_within(s.quiet):
        if not (isinstance(msg, ErrorReply) and msg.code is ErrorCode.PROTOCOL):
            raise CheckFailed(f"a call over the size limit was decoded and answered with "
                              f"{describe_msg(msg)}")
    s.alive("an oversized call")
    return f"{s.max_size} bytes answered, {s.max_size + 1} refused"


@check("host.broker-heartbeat", "R43", "heartbeats from the broker are ignored")
def _broker_heartbeat(s: HostSession) -> str:
    s.ready()
    for _ in range(3):
        s.send(Heartbeat())
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"the host answered a broker heartbeat with {describe_msg(extra[0])}")
    return "3 heartbeats, no answer"


def _announced_after(s: HostSession, t: float) -> list[Ready]:
    return [m for at, m in s.announcements if at >= t]


def _beat_for(s: HostSession, token: str, seconds: float, until: Callable[[], bool]) -> bool:
    """Play a live broker with instance token ``token``: a heartbeat to ``ID/hb`` every
    interval (never a silence the host could take for a gone broker) until ``until()``
    holds (True) or ``seconds`` passed (False)."""
    deadline = time.monotonic() + s.left(seconds)
    while True:
        s.send_hb(Heartbeat(host_id=token, pid=os.getpid()))
        step = min(s.interval, deadline - time.monotonic())
        if s.wait(until, max(0.0, step)):
            return True
        if time.monotonic() >= deadline:
            return until()


@check("host.re-announce", "R51",
       "a broker heartbeat with a new token gets ready again on ID/hb; the same token not",
       budget=lambda s: 3 * s.timeout + 3 * s.quiet + 8 * s.interval + 2.0)
def _re_announce(s: HostSession) -> str:
    first = s.ready()
    hb = f"{s.host_id}/hb"
    # the fake broker can reach ID/hb only once that socket has said something
    if not s.wait(lambda: any(b.routing_id == hb for b in s.beats), 2 * s.interval + s.timeout):
        raise CheckFailed(f"no heartbeat from {hb!r} to answer: the heartbeat socket is "
                          f"missing (R3), so no broker heartbeat can reach it")
    s.drain()
    # a first broker: the host may take it for the one its ready went to (no answer), or
    # — if that ready is older than its broker timeout — for a new one (ready again)
    s.announcements.clear()
    old = f"conformance-{os.getpid()}-{os.urandom(4).hex()}-a"
    _beat_for(s, old, max(s.quiet, 2 * s.interval), lambda: False)
    new = old[:-1] + "b"
    t0 = time.monotonic()
    got = _beat_for(s, new, s.timeout, lambda: bool(_announced_after(s, t0)))
    on_call = [m for m in s.drain() if isinstance(m, Ready)]
    if not got:
        where = " (on the call socket; it belongs on ID/hb)" if on_call else ""
        raise CheckFailed(f"a broker heartbeat with a new token got no ready on "
                          f"{s.host_id}/hb within {s.timeout:g}s{where}")
    again = _announced_after(s, t0)[0]
    if again != first:
        diff = [f for f in ("host_id", "pid", "fingerprint", "adapter")
                if getattr(again, f) != getattr(first, f)]
        raise CheckFailed(f"the ready sent again differs from the first one in "
                          f"{', '.join(diff) or 'its fields'}")
    took = time.monotonic() - t0
    t1 = time.monotonic()
    _beat_for(s, new, max(s.quiet, 3 * s.interval), lambda: False)
    extra = _announced_after(s, t1)
    answers = [m for m in s.drain() if not isinstance(m, Heartbeat)]
    if extra or answers:
        what = "ready again" if extra else describe_msg(answers[0])
        raise CheckFailed(f"heartbeats with the token it already announced itself to were "
                          f"answered with {what} (R43: only a new broker gets ready)")
    return (f"ready again on {s.host_id}/hb {took:.2f}s after a new token, the same "
            f"message; the same token again: no answer")


@check("host.slow-call", "R41", "heartbeats continue during a call and carry its id (--slow)",
       budget=lambda s: s.slow_timeout + 4 * s.interval + 2 * s.timeout)
def _slow_call(s: HostSession) -> str:
    s.ready()
    if s.slow is None:
        raise CheckSkipped("pass --slow NAME to let the kit run a slow call")
    rid = 777
    t0 = time.monotonic()
    s.send(Call(id=rid, method=s.slow))
    got = s.await_answer(rid, s.slow_timeout)
    t1 = time.monotonic()
    s.slow_answer = got
    if got is None:
        raise CheckFailed(f"slow call {s.slow!r} not answered within {s.slow_timeout:g}s "
                          f"(--slow-timeout)")
    if not isinstance(got, Result | ErrorReply):
        raise CheckFailed(f"slow call answered with {describe_msg(got)}")
    during = [b for b in s.beats if t0 < b.at < t1 and b.msg is not None]
    gap = _max_gap([b.at for b in during], t0, t1)
    if t1 - t0 < 2 * s.interval + 0.1:
        raise CheckSkipped(f"{s.slow} took {t1 - t0:.2f}s: too short to watch heartbeats "
                           f"during it (needs > 2 intervals)")
    if gap > 2 * s.interval:
        raise CheckFailed(f"during {s.slow} ({t1 - t0:.1f}s) the longest heartbeat gap was "
                          f"{gap:.2f}s > 2 x interval {s.interval:g}s")
    busy = [b for b in during if b.msg is not None and b.msg.busy_id == rid]
    if not busy:
        raise CheckFailed(f"no heartbeat during {s.slow} ({t1 - t0:.1f}s) carried "
                          f"busy_id={rid}")
    wrong = [b for b in during[1:] if b.msg is not None and b.msg.busy_id not in (rid, None)]
    if wrong:
        raise CheckFailed(f"a heartbeat during {s.slow} carried busy_id={wrong[0].msg.busy_id}"  # type: ignore[union-attr]
                          )
    s.wait(lambda: any(b.at > t1 and b.msg is not None and b.msg.busy_id is None
                       for b in s.beats), 3 * s.interval)
    if not any(b.at > t1 and b.msg is not None and b.msg.busy_id is None for b in s.beats):
        raise CheckFailed(f"after {s.slow} ended, heartbeats still carry a busy_id")
    return (f"{s.slow} took {t1 - t0:.2f}s; {len(busy)} heartbeats with busy_id={rid}, "
            f"longest gap {gap:.2f}s")


@check("host.verify", "R54",
       "a slow call that leaves the instance unfit is answered unfit, and fast calls refused "
       "(--slow, --probe)",
       budget=lambda s: s.slow_timeout + 3 * s.timeout)
def _verify(s: HostSession) -> str:
    ready = s.ready()
    if s.slow is None:
        raise CheckSkipped("pass --slow NAME to let the kit run a slow call")
    got = s.slow_answer
    if got is None:  # host.slow-call did not run (--select) or got no answer: ask once more
        rid = 778
        s.send(Call(id=rid, method=s.slow))
        got = s.slow_answer = s.await_answer(rid, s.slow_timeout)
        if got is None:
            raise CheckFailed(f"slow call {s.slow!r} not answered within {s.slow_timeout:g}s "
                              f"(--slow-timeout)")
    has_verify = ready.adapter.get("verify", False)
    if not (isinstance(got, ErrorReply) and got.code is ErrorCode.UNFIT):
        return (f"{s.slow} answered {describe_msg(got)}: fit (the adapter "
                f"{'has a verify' if has_verify is True else 'declares no verify'})")
    want = f"verify failed after {s.slow!r}: "
    if not got.message.startswith(want):
        raise CheckFailed(f"the unfit answer to {s.slow} says {got.message!r}; it must begin "
                          f"with {want!r}")
    if has_verify is not True:
        raise CheckFailed(f"{s.slow} was answered unfit, but the adapter description says "
                          f"verify={has_verify!r}")
    detail = f"{s.slow} -> unfit: {got.message[len(want):][:50]}"
    if s.probe is None:
        return detail + "; pass --probe to see a fast call refused"
    name, params = s.probe
    rid = MAX_ID - 4
    refused = s.ask(Call(id=rid, method=name, args=params if isinstance(params, list) else [],
                         kwargs=params if isinstance(params, dict) else {}),
                    rid, f"probe {name} after an unfit answer")
    if not (isinstance(refused, ErrorReply) and refused.code is ErrorCode.UNFIT):
        raise CheckFailed(f"after {s.slow} was answered unfit, probe {name} was answered with "
                          f"{describe_msg(refused)}; an unfit instance must refuse fast calls "
                          f"with unfit")
    return detail + f"; then {name} -> unfit"


@check("host.shutdown", "R42",
       "shutdown: goodbye, no call run after it, heartbeats stop, process exits",
       budget=lambda s: 6 * s.timeout + 4 * s.interval)
def _shutdown(s: HostSession) -> str:
    s.ready()
    s.drain()
    s.send(Shutdown(reason="conformance kit"))
    s.send(Call(id=79, method=UNKNOWN_CALL))
    msgs: list[Message] = []

    def goodbye() -> bool:
        msgs.extend(s.drain())
        return any(isinstance(m, Goodbye) for m in msgs)

    s.wait(goodbye, 2 * s.timeout)
    bye_at = time.monotonic()
    bye = next((m for m in msgs if isinstance(m, Goodbye)), None)
    if bye is None:
        raise CheckFailed(f"no goodbye within {2 * s.timeout:g}s of shutdown"
                          + (f"; got {describe_msg(msgs[0])}" if msgs else ""))
    if bye.host_id != s.host_id:
        raise CheckFailed(f"goodbye.host_id is {bye.host_id!r}, expected {s.host_id!r}")
    msgs.extend(s.answers_within(max(s.quiet, 2 * s.interval + 0.2)))
    answered = [m for m in msgs if getattr(m, "id", None) == 79]
    if answered:
        raise CheckFailed(f"a call sent after shutdown was answered: {describe_msg(answered[0])}")
    late = [b for b in s.beats if b.at > bye_at + 2 * s.interval + 0.1]
    if late:
        raise CheckFailed(f"heartbeats went on {late[-1].at - bye_at:.2f}s after goodbye")
    detail = f"goodbye ok={bye.ok}" + (f" ({bye.message})" if bye.message else "")
    if s.proc is not None:
        try:
            rc = s.proc.wait(s.left(2 * s.timeout))
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"the host process did not exit within {2 * s.timeout:g}s of "
                              f"its goodbye") from None
        if rc != 0 and bye.ok:
            raise CheckFailed(f"the host process exited with code {rc} after goodbye(ok=true)"
                              f"{s._log_tail()}")
        detail += f", exit code {rc}"
    with contextlib.suppress(Exception):
        s.drain()
    return detail
