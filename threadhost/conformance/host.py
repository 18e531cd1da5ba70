"""Conformance checks for a **host** (``threadhost conformance EP --role host``).

The kit is a *fake broker*: it binds a ROUTER on the endpoint and waits for a host to
connect its two DEALERs (``ID`` for calls, ``ID/hb`` for heartbeats) — a host the user
starts (``threadhost host MODULE --connect EP``), or one the kit starts itself
(``--spawn MODULE`` or ``--exec "COMMAND {endpoint}"`` for other implementations). It then
sends raw frames and watches both sockets, and plays a broker's heartbeats to ``ID/hb``
to see that the host announces itself again to a new broker (R51).

The kit never runs library code of its own accord: a fast call is made only with
``--probe NAME:JSON_ARGS`` and a slow call only with ``--slow NAME``; checks that need them
are skipped otherwise. While the slow call runs the kit sends more calls, each of which
must be answered once after it (R38). When the slow call leaves the instance unfit (the
adapter's ``verify`` failed, R54), the probe is made again and must be refused with
``unfit``. Arguments that do not fit (``bad_arguments``: wrong arity, unknown keywords,
values of a type the parameter's JSON schema does not admit) and undeclared names
(``unknown_call``) must be refused by the host before any library code runs; with
``--counter NAME`` (a fast call returning how many library calls ran) the kit sees that
none did (R39). The fingerprint of ``ready`` is recomputed from its description (R37).
The last checks send ``shutdown`` — while the slow call runs, with ``--slow``: it must be
answered before ``goodbye`` — and listen for anything after ``goodbye`` (R42).
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
from dataclasses import dataclass, field
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
    wrong_value,
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

__all__ = ["HOST_CHECKS", "HostSession", "spawn_command"]

UNKNOWN_CALL = "__conformance_no_such_call__"


def spawn_command(target: str) -> list[str]:
    """The command ``--spawn TARGET`` runs: this Python's ``threadhost host``."""
    return [sys.executable, "-m", "threadhost", "host", target, "--connect", "{endpoint}"]


@dataclass
class _SlowRun:
    """The ``--slow`` call, and calls sent while it ran."""

    rid: int
    t0: float
    t1: float
    answer: Message
    queued: list[int]
    """Ids of calls sent while the slow call ran (empty: it ended before they could be)."""
    answers: dict[int, list[Message]]
    """Every answer each of them got."""
    probes: list[int] = field(default_factory=list)
    """Ids of the probe calls among them, in the order they were sent."""
    order: list[int] = field(default_factory=list)
    """Ids of their answers, in the order the answers arrived."""


@dataclass
class _Shutdown:
    """What the host sent after ``shutdown``."""

    running: int | None
    """Id of the ``--slow`` call running when ``shutdown`` was sent, if any."""
    note: str
    msgs: list[Message]
    """Everything on the call socket after ``shutdown`` was sent, in order."""
    bye_at: float | None
    exit_code: int | None
    exit_problem: str | None
    queued: int | None = None
    """Id of the probe sent after the ``--slow`` call and before ``shutdown``, if any."""


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
                 wait: float, timeout: float, quiet: float, max_size: int,
                 counter: str | None = None) -> None:
        super().__init__(timeout, quiet, max_size)
        self.endpoint = endpoint
        self.command = list(command) if command is not None else None
        self.env = env
        self.probe = probe
        self.slow = slow
        self.slow_timeout = slow_timeout
        self.counter = counter
        """A fast call without arguments returning how many library calls ran (R39)."""
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
        if self.first is not None and _is_ready(payload):  # ready again on the call socket
            with contextlib.suppress(CheckFailed):
                msg = parse(payload, "a ready")
                if isinstance(msg, Ready):
                    self.announcements.append((now, msg))
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

    def probe_call(self, rid: int) -> Call:
        assert self.probe is not None
        name, params = self.probe
        return Call(id=rid, method=name, args=params if isinstance(params, list) else [],
                    kwargs=params if isinstance(params, dict) else {})

    def count(self) -> int:
        """The ``--counter`` call's answer: how many library calls ran."""
        assert self.counter is not None
        rid = self.rid()
        got = self.ask(Call(id=rid, method=self.counter), rid, f"the counter {self.counter}")
        value = getattr(got, "value", None)
        if not isinstance(got, Result) or type(value) is not int:
            raise CheckFailed(f"the counter {self.counter}() was answered with "
                              f"{describe_msg(got)} {value!r}, not a result with an integer")
        return value

    def counter_step(self) -> tuple[int, int]:
        """(what the counter adds by running itself: 0 or 1, its latest value)."""
        first = self.count()
        last = self.count()
        if last - first not in (0, 1):
            raise CheckFailed(f"the counter {self.counter}() moved from {first} to {last} "
                              f"with nothing else running: it cannot show whether the "
                              f"library ran")
        return last - first, last

    def _busy_with(self, rid: int, since: float) -> bool:
        return any(b.at >= since and b.msg is not None and b.msg.busy_id == rid
                   for b in self.beats)

    def slow_run(self) -> _SlowRun:
        """Run the ``--slow`` call once; while it runs (the host's heartbeats say so), send
        three calls to an undeclared name and the probe: each must be answered, once,
        after it (R38)."""

        def make() -> _SlowRun:
            self.ready()
            assert self.slow is not None
            self.drain()
            rid = 777
            got: list[tuple[float, Message]] = []

            def pull() -> None:
                while self.inbox:
                    at, frames = self.inbox.popleft()
                    got.append((at, parse(frames, "a message from the host", self.max_size)))

            def answered() -> bool:
                pull()
                return any(getattr(m, "id", None) == rid for _, m in got)

            t0 = time.monotonic()
            self.send(Call(id=rid, method=self.slow))
            self.wait(lambda: answered() or self._busy_with(rid, t0),
                      min(self.slow_timeout, 2 * self.interval + self.timeout))
            queued: list[int] = []
            probes: list[int] = []
            if not answered():
                queued = [self.rid() for _ in range(3)]
                for q in queued:
                    self.send(Call(id=q, method=UNKNOWN_CALL))
                if self.probe is not None:  # three runnable calls: their order (R38)
                    for _ in range(3):
                        queued.append(self.rid())
                        probes.append(queued[-1])
                        self.send(self.probe_call(queued[-1]))
            self.wait(answered, max(0.0, t0 + self.slow_timeout - time.monotonic()))
            if not answered():
                raise CheckFailed(f"slow call {self.slow!r} not answered within "
                                  f"{self.slow_timeout:g}s (--slow-timeout)")
            t1, answer = next((at, m) for at, m in got if getattr(m, "id", None) == rid)

            def all_answered() -> bool:
                pull()
                ids = {getattr(m, "id", None) for _, m in got}
                return all(q in ids for q in queued)

            self.wait(all_answered, self.timeout)
            self.sleep(self.quiet)
            pull()
            answers = {q: [m for _, m in got if getattr(m, "id", None) == q] for q in queued}
            order = [i for _, m in got if (i := getattr(m, "id", None)) in queued]
            return _SlowRun(rid, t0, t1, answer, queued, answers, probes, order)

        return self.precondition("the slow call ran", make)

    def shutdown_run(self) -> _Shutdown:
        """``shutdown`` — while the ``--slow`` call runs, when given — then a call; collect
        what the host sends until it has said goodbye, fallen silent and exited."""

        def make() -> _Shutdown:
            self.ready()
            self.drain()
            running: int | None = None
            note = "pass --slow to send shutdown while a call runs"
            if self.slow is not None:
                rid = 779
                t0 = time.monotonic()
                self.send(Call(id=rid, method=self.slow))
                self.wait(lambda: bool(self.inbox) or self._busy_with(rid, t0),
                          min(self.slow_timeout, 2 * self.interval + self.timeout))
                if self.inbox:
                    note = (f"{self.slow} was answered before shutdown could be sent: too "
                            f"short to send shutdown while it runs")
                else:
                    running, note = rid, f"shutdown sent while {self.slow} ran"
            msgs: list[Message] = []
            queued: int | None = None
            if running is not None and self.probe is not None:
                queued = 778  # arrives before shutdown: answered before goodbye (R42)
                self.send(self.probe_call(queued))
            self.send(Shutdown(reason="conformance kit"))
            self.send(Call(id=79, method=UNKNOWN_CALL))

            def goodbye() -> bool:
                msgs.extend(self.drain())
                return any(isinstance(m, Goodbye) for m in msgs)

            self.wait(goodbye, 2 * self.timeout + (self.slow_timeout if running else 0.0))
            bye_at = time.monotonic() if goodbye() else None
            if bye_at is not None:
                self.sleep(max(self.quiet, 2 * self.interval + 0.2))
                msgs.extend(self.drain())
            code: int | None = None
            problem: str | None = None
            if self.proc is not None and bye_at is not None:
                try:
                    code = self.proc.wait(self.left(2 * self.timeout))
                except subprocess.TimeoutExpired:
                    problem = (f"the host process did not exit within {2 * self.timeout:g}s "
                               f"of its goodbye")
                with contextlib.suppress(Exception):
                    msgs.extend(self.drain())
            return _Shutdown(running, note, msgs, bye_at, code, problem, queued)

        return self.precondition("shutdown sent", make)

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


@check("host.fingerprint", "R59", "ready's fingerprint is the one its adapter description gives",
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


def _typed_wrongly(call: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any], list[str]] | None:
    """Arguments for ``call`` with the right arity and a value of a type its signature does
    not admit for every parameter whose type the kit can tell (None: no such parameter)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    wrong: list[str] = []
    for p in call.get("params", []):
        if not isinstance(p, dict):
            continue
        bad = wrong_value(p.get("schema"))
        if bad is None and not p.get("required", True) and p.get("kind") != "positional_only":
            continue  # leave it at its default
        value = bad[0] if bad is not None else None
        if bad is not None:
            wrong.append(str(p.get("name")))
        if p.get("kind") == "positional_only":
            args.append(value)
        else:
            kwargs[str(p.get("name"))] = value
    return (args, kwargs, wrong) if wrong else None


@check("host.bad-types", "R39",
       "arguments of types the signature does not admit get bad_arguments, and no library "
       "code runs (--counter)",
       budget=lambda s: 8 * s.timeout)
def _bad_types(s: HostSession) -> str:
    fast = s.fast_calls()
    names = [str(c.get("name")) for c in fast]
    if s.counter is not None and s.counter not in names:
        raise CheckFailed(f"--counter {s.counter!r} is not a fast call of the adapter "
                          f"(fast calls: {names})")

    count = s.count
    step = 0  # what the counter adds by running itself (0 or 1)
    last = 0
    if s.counter is not None:
        step, last = s.counter_step()
    tried: list[str] = []
    for call in fast:
        name = str(call.get("name"))
        if name == s.counter:
            continue
        built = _typed_wrongly(call)
        if built is None:
            continue
        args, kwargs, wrong = built
        rid = s.rid()
        s.expect_error(Call(id=rid, method=name, args=args, kwargs=kwargs),
                       ErrorCode.BAD_ARGUMENTS, rid,
                       f"{name} with wrongly typed {', '.join(wrong)}")
        tried.append(f"{name}({', '.join(wrong)})")
        if s.counter is not None:
            now = count()
            if now - last != step:
                raise CheckFailed(f"{name} with wrongly typed {', '.join(wrong)} was refused "
                                  f"with bad_arguments, but the library ran: the counter "
                                  f"{s.counter}() went from {last} to {now}")
            last = now
    if not tried:
        raise CheckSkipped("no fast call declares a parameter whose type the kit can "
                           "contradict (JSON schema 'type' or 'anyOf' of types)")
    detail = f"refused {', '.join(tried)}"[:90]
    if s.counter is None:
        return detail + "; pass --counter to see that no library code ran"
    if s.probe is not None:
        name, params = s.probe
        rid = s.rid()
        ran = s.ask(Call(id=rid, method=name, args=params if isinstance(params, list) else [],
                         kwargs=params if isinstance(params, dict) else {}), rid,
                    f"probe {name}")
        now = count()
        if isinstance(ran, Result) and now - last <= step:
            raise CheckFailed(f"the counter {s.counter}() did not move when probe {name} ran "
                              f"({last} -> {now}): it does not count library runs")
    return detail + f"; counter {s.counter} unmoved"


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
        # validity before direction (R10, R11): an error with a code §5 lacks is malformed
        ("error with an unknown code", packb({"kind": "error", "id": 34, "code": "nope"}), 34),
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


def _kinds_hosts_do_not_receive() -> list[Message]:
    """One well-formed message of every kind a host never receives (§4: it receives only
    ``call``, ``shutdown`` and broker ``heartbeat``s)."""
    return [
        Result(id=51, value=1), ErrorReply(id=52, code=ErrorCode.PROTOCOL, message="kit"),
        Describe(id=53), Description(id=54, adapter={}, fingerprint="0" * 64),
        Maintain(id=55, method="reload"), MaintainReply(id=56, started=False),
        Status(id=57), StatusReply(id=58, status={"state": "ready"}), Ping(id=59),
        Pong(id=60), Ready(host_id="conformance-kit", pid=1, adapter={}, fingerprint=""),
        Goodbye(host_id="conformance-kit"),
    ]


@check("host.unexpected-kinds", "R10",
       "every kind a host does not receive is ignored (not answered)")
def _unexpected(s: HostSession) -> str:
    s.ready()
    sent = _kinds_hosts_do_not_receive()
    for msg in sent:
        s.send(msg)
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"the host answered a kind hosts do not receive with "
                          f"{describe_msg(extra[0])} (sent: "
                          f"{', '.join(m.kind for m in sent)})")
    s.alive("unexpected kinds")
    return f"{len(sent)} kinds ignored"


@check("host.heartbeat-garbage", "R22",
       "malformed input and other kinds on the heartbeat socket are dropped",
       budget=lambda s: 3 * s.timeout + 2 * s.quiet + 4 * s.interval)
def _heartbeat_garbage(s: HostSession) -> str:
    s.ready()
    hb = f"{s.host_id}/hb"
    if not s.wait(lambda: any(b.routing_id == hb for b in s.beats), 2 * s.interval + s.timeout):
        raise CheckFailed(f"no heartbeat from {hb!r}: the heartbeat socket is missing (R3)")
    s.drain()
    s.announcements.clear()
    assert s.router is not None
    frames: list[list[bytes]] = [
        [HEADER, b"\xc1"], [HEADER], [b"XX\x01", b"\x80"], [HEADER, packb([1])],
        [HEADER, packb({"kind": "frobnicate", "id": 91})],
        encode(Call(id=92, method=UNKNOWN_CALL)), encode(Ping(id=93)),
        encode(Status(id=94)), encode(Result(id=95, value=1)),
    ]
    t0 = time.monotonic()
    for f in frames:
        s.router.send([hb.encode(), *f], s.left(s.timeout))
    s.sleep(max(s.quiet, 2 * s.interval))
    said = [b.problem for b in s.beats if b.at >= t0 and b.problem is not None]
    if said:
        raise CheckFailed(f"after malformed input on {hb}: {said[0]}")
    if s.announcements:
        raise CheckFailed(f"the host answered input on {hb} with ready")
    extra = s.drain()
    if extra:
        raise CheckFailed(f"after input on {hb}, the call socket sent {describe_msg(extra[0])}")
    if not any(b.at >= t0 and b.msg is not None for b in s.beats):
        raise CheckFailed(f"the heartbeats stopped after malformed input on {hb}")
    s.alive(f"input on {hb}")
    return f"{len(frames)} messages dropped; heartbeats go on"


@check("host.version", "R14", "a call in an unsupported version is dropped, not run")
def _version(s: HostSession) -> str:
    s.ready()
    counted = s.probe is not None and s.counter is not None
    step, before = s.counter_step() if counted else (0, 0)
    for v in (0, 2):
        s.send([header_v(v), encode(Call(id=40 + v, method=UNKNOWN_CALL))[1]])
        if counted:  # the probe, which runs library code when it is run
            s.send([header_v(v), encode(s.probe_call(s.rid()))[1]])
    extra = s.answers_within(s.quiet)
    if extra:
        raise CheckFailed(f"the host answered a call in another version with "
                          f"{describe_msg(extra[0])}")
    s.alive("calls in versions 0 and 2")
    if not counted:
        return "versions 0 and 2 dropped; pass --probe and --counter to see that none ran"
    after = s.count()
    if after - before != step:
        assert s.probe is not None
        raise CheckFailed(f"the probe {s.probe[0]} sent in versions 0 and 2 was not answered, "
                          f"but it ran: the counter {s.counter}() went from {before} to "
                          f"{after}")
    return f"versions 0 and 2 dropped; counter {s.counter} unmoved by the probe in them"


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


def _is_ready(payload: list[bytes]) -> bool:
    """Cheaply: does this (header, body) look like a ``ready`` (its kind near the start)?"""
    return len(payload) == 2 and b"ready" in payload[1][:16]


def _announced_after(s: HostSession, t: float) -> list[Ready]:
    return [m for at, m in s.announcements if at >= t]


def _beat_for(s: HostSession, token: str, seconds: float, until: Callable[[], bool], *,
              stranger: bool = False) -> bool:
    """Play a live broker with instance token ``token``: a heartbeat to ``ID/hb`` every
    interval (never a silence the host could take for a gone broker) until ``until()``
    holds (True) or ``seconds`` passed (False)."""
    deadline = time.monotonic() + s.left(seconds)
    while True:
        s.send_hb(Heartbeat(host_id=token, pid=os.getpid(), stranger=stranger))
        step = min(s.interval, deadline - time.monotonic())
        if s.wait(until, max(0.0, step)):
            return True
        if time.monotonic() >= deadline:
            return until()


@check("host.re-announce", "R51",
       "a broker heartbeat with a new token, or marked stranger, gets ready again; the same "
       "token not",
       budget=lambda s: 4 * s.timeout + 4 * s.quiet + 12 * s.interval + 2.0)
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
    if not got:
        raise CheckFailed(f"a broker heartbeat with a new token got no ready on the call "
                          f"socket or {s.host_id}/hb within {s.timeout:g}s")
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
    # the same broker (token) says it has no ready from this host: a broker killed before
    # its first heartbeat and replaced at once looks exactly like this
    t2 = time.monotonic()
    marked = _beat_for(s, new, s.timeout, lambda: bool(_announced_after(s, t2)), stranger=True)
    if not marked:
        raise CheckFailed(f"a broker heartbeat marked stranger (with the token it already "
                          f"knew) got no ready within {s.timeout:g}s")
    if _announced_after(s, t2)[0] != first:
        raise CheckFailed("the ready sent again for a stranger mark differs from the first")
    return (f"ready again {took:.2f}s after a new token, the same message; the same token "
            f"again: no answer; marked stranger: ready again")


@check("host.slow-call", "R41", "heartbeats continue during a call and carry its id (--slow)",
       budget=lambda s: s.slow_timeout + 4 * s.interval + 4 * s.timeout)
def _slow_call(s: HostSession) -> str:
    s.ready()
    if s.slow is None:
        raise CheckSkipped("pass --slow NAME to let the kit run a slow call")
    run = s.slow_run()
    rid, t0, t1 = run.rid, run.t0, run.t1
    if not isinstance(run.answer, Result | ErrorReply):
        raise CheckFailed(f"slow call answered with {describe_msg(run.answer)}")
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


@check("host.calls-while-busy", "R38",
       "calls that arrive while a call runs are each answered once after it (--slow)",
       budget=lambda s: s.slow_timeout + 4 * s.interval + 4 * s.timeout)
def _calls_while_busy(s: HostSession) -> str:
    s.ready()
    if s.slow is None:
        raise CheckSkipped("pass --slow NAME to let the kit send calls while a slow call runs")
    run = s.slow_run()
    if not run.queued:
        raise CheckSkipped(f"{s.slow} was answered before the kit saw it run (a heartbeat "
                           f"with its busy_id): too short to send calls meanwhile")
    lost = [q for q, a in run.answers.items() if not a]
    if lost:
        raise CheckFailed(f"{len(lost)} of {len(run.queued)} calls sent while {s.slow} ran "
                          f"were never answered (ids {lost}): a host MUST answer every call, "
                          f"also those that arrive while one runs")
    twice = [q for q, a in run.answers.items() if len(a) > 1]
    if twice:
        raise CheckFailed(f"calls sent while {s.slow} ran were answered more than once "
                          f"(ids {twice})")
    kinds = [describe_msg(a[0]).split("(")[0] for a in run.answers.values()]
    return f"{len(run.queued)} calls sent while {s.slow} ran, each answered once ({kinds[-1]})"


@check("host.run-order", "R38",
       "calls that arrive while a call runs are run and answered in arrival order "
       "(--slow, --probe)",
       budget=lambda s: s.slow_timeout + 4 * s.interval + 4 * s.timeout)
def _run_order(s: HostSession) -> str:
    s.ready()
    if s.slow is None or s.probe is None:
        raise CheckSkipped("pass --slow NAME and --probe to send runnable calls while a slow "
                           "call runs")
    run = s.slow_run()
    if not run.probes:
        raise CheckSkipped(f"{s.slow} was answered before the kit saw it run (a heartbeat "
                           f"with its busy_id): too short to send calls meanwhile")
    got = [i for i in run.order if i in run.probes]
    if len(got) != len(run.probes):
        raise CheckFailed(f"of the probes sent while {s.slow} ran (ids {run.probes}), the "
                          f"host answered {got} (see host.calls-while-busy)")
    if got != run.probes:
        raise CheckFailed(f"probes sent while {s.slow} ran as ids {run.probes} were answered "
                          f"in the order {got}: a host runs calls in the order they arrive")
    return f"{len(got)} probes answered in arrival order"


@check("host.verify", "R54",
       "a slow call that leaves the instance unfit is answered unfit, and fast calls refused "
       "(--slow, --probe)",
       budget=lambda s: s.slow_timeout + 4 * s.interval + 5 * s.timeout)
def _verify(s: HostSession) -> str:
    ready = s.ready()
    if s.slow is None:
        raise CheckSkipped("pass --slow NAME to let the kit run a slow call")
    got = s.slow_run().answer
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


def _shutdown_budget(s: HostSession) -> float:
    return 6 * s.timeout + 4 * s.interval + (s.slow_timeout if s.slow else 0.0)


@check("host.shutdown", "R42",
       "shutdown: goodbye, no call run after it, heartbeats stop, process exits",
       budget=_shutdown_budget)
def _shutdown(s: HostSession) -> str:
    sd = s.shutdown_run()
    bye = next((m for m in sd.msgs if isinstance(m, Goodbye)), None)
    if bye is None or sd.bye_at is None:
        raise CheckFailed(f"no goodbye within {2 * s.timeout:g}s of shutdown"
                          + (f" (and of the end of {s.slow})" if sd.running else "")
                          + (f"; got {describe_msg(sd.msgs[0])}" if sd.msgs else ""))
    if bye.host_id != s.host_id:
        raise CheckFailed(f"goodbye.host_id is {bye.host_id!r}, expected {s.host_id!r}")
    answered = [m for m in sd.msgs if getattr(m, "id", None) == 79]
    if answered:
        raise CheckFailed(f"a call sent after shutdown was answered: {describe_msg(answered[0])}")
    late = [b for b in s.beats if b.at > sd.bye_at + 2 * s.interval + 0.1]
    if late:
        raise CheckFailed(f"heartbeats went on {late[-1].at - sd.bye_at:.2f}s after goodbye")
    detail = f"goodbye ok={bye.ok}" + (f" ({bye.message})" if bye.message else "")
    if sd.exit_problem is not None:
        raise CheckFailed(sd.exit_problem)
    if sd.exit_code is not None:
        if sd.exit_code != 0 and bye.ok:
            raise CheckFailed(f"the host process exited with code {sd.exit_code} after "
                              f"goodbye(ok=true){s._log_tail()}")
        detail += f", exit code {sd.exit_code}"
    return detail


@check("host.shutdown-finishes", "R42",
       "shutdown while a call runs: the call is finished and answered before goodbye (--slow)",
       budget=_shutdown_budget)
def _shutdown_finishes(s: HostSession) -> str:
    if s.slow is None:
        raise CheckSkipped("pass --slow NAME to send shutdown while a slow call runs")
    sd = s.shutdown_run()
    if sd.running is None:
        raise CheckSkipped(sd.note)
    kinds = [describe_msg(m) for m in sd.msgs]
    answer = next((i for i, m in enumerate(sd.msgs) if getattr(m, "id", None) == sd.running),
                  None)
    bye = next((i for i, m in enumerate(sd.msgs) if isinstance(m, Goodbye)), None)
    if answer is None:
        raise CheckFailed(f"shutdown arrived while {s.slow} ran and the call was never "
                          f"answered (the host sent: {', '.join(kinds) or 'nothing'}): a host "
                          f"MUST finish the running call")
    if bye is not None and answer > bye:
        raise CheckFailed(f"{s.slow} was answered after goodbye (the host sent: "
                          f"{', '.join(kinds)})")
    return f"{sd.note}: answered {describe_msg(sd.msgs[answer])}, then goodbye"


@check("host.after-goodbye", "R42", "nothing arrives on the call socket after goodbye",
       budget=_shutdown_budget)
def _after_goodbye(s: HostSession) -> str:
    sd = s.shutdown_run()
    bye = next((i for i, m in enumerate(sd.msgs) if isinstance(m, Goodbye)), None)
    if bye is None:
        raise CheckFailed("no goodbye after shutdown (see host.shutdown)")
    after = sd.msgs[bye + 1:]
    if after:
        raise CheckFailed(f"after goodbye the call socket sent "
                          f"{', '.join(describe_msg(m) for m in after)}: a host sends nothing "
                          f"after goodbye")
    return f"silent for {max(s.quiet, 2 * s.interval + 0.2):.2f}s after goodbye"


@check("host.shutdown-queued", "R42",
       "a call that arrived before shutdown, behind a running call, is answered before "
       "goodbye (--slow, --probe)",
       budget=_shutdown_budget)
def _shutdown_queued(s: HostSession) -> str:
    if s.slow is None or s.probe is None:
        raise CheckSkipped("pass --slow NAME and --probe to queue a call behind a running "
                           "one before shutdown")
    sd = s.shutdown_run()
    if sd.queued is None:
        raise CheckSkipped(sd.note)
    answer = next((i for i, m in enumerate(sd.msgs) if getattr(m, "id", None) == sd.queued),
                  None)
    bye = next((i for i, m in enumerate(sd.msgs) if isinstance(m, Goodbye)), None)
    kinds = ", ".join(describe_msg(m) for m in sd.msgs) or "nothing"
    if answer is None:
        raise CheckFailed(f"a probe sent while {s.slow} ran, before shutdown, was never "
                          f"answered (the host sent: {kinds}): a host MUST answer every call "
                          f"received before shutdown")
    if bye is not None and answer > bye:
        raise CheckFailed(f"the probe sent before shutdown was answered after goodbye (the "
                          f"host sent: {kinds})")
    return f"answered {describe_msg(sd.msgs[answer])} before goodbye"
