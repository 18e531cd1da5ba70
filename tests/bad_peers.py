"""Peers for tests/test_conformance.py: a from-scratch host, and deliberately wrong ones.

``python -m tests.bad_peers host --connect EP [--flaw FLAW]``
    *MiniHost*: a host written from docs/protocol.md with nothing but pyzmq and msgpack (no
    threadhost import), to show that an independent implementation passes the kit. It serves
    ``add(a: int, b: int)``, a slow start-up ``reload`` (0.6 s) and ``runs()``, the number of times
    ``add`` ran (the kit's ``--counter``). A ``--flaw`` breaks one rule on purpose: ``no-echo``
    (answers carry id+1), ``no-heartbeat`` (no ID/hb socket), ``runs-other-versions`` (ignores the
    version byte), ``answers-twice``, ``no-goodbye`` (ignores shutdown), ``no-re-announce`` (ignores
    broker heartbeats: never sends ready again to a new broker), ``always-re-announce`` (answers
    every broker heartbeat with ready), ``ignores-stranger`` (re-announces for a new token or a
    silence, not for a broker heartbeat marked ``stranger``), ``bogus-fingerprint`` (its ready says
    fingerprint ``"x"``), ``runs-bad-types`` (checks only the arity: runs ``add`` with wrongly typed
    arguments and answers ``bad_arguments`` when it raises), ``drops-while-busy`` (calls that
    arrived while a call ran are dropped), ``answers-broker-kinds`` (answers ``describe``,
    ``maintain``, ``error``... with a protocol error; ignores only ``ping``, ``pong``, ``result``
    and ``status``), ``talks-after-goodbye`` (a heartbeat on the call socket after goodbye),
    ``abandons-on-shutdown`` (a shutdown during ``reload`` gets goodbye at once, ``reload`` is never
    answered), ``takes-unknown-codes`` (ignores an ``error`` whose code §5 lacks, instead of
    answering ``protocol``), ``runs-other-versions-quietly`` (runs a call in another version without
    answering it), ``answers-hb-garbage`` (answers input on its heartbeat socket that is not a
    broker heartbeat with a protocol error), ``runs-newest-first`` (calls that arrived while
    ``reload`` ran are run newest first), ``drops-queued-on-shutdown`` (a shutdown that arrived
    while ``reload`` ran gets goodbye at once after it; the calls that arrived before the shutdown
    are never answered).

``python -m tests.bad_peers broker --endpoint EP --backend BEP --flaw FLAW``
    threadhost's own broker in attach mode with one rule broken by a patch: ``no-echo``
    (client ids +1), ``forward-busy`` (forwards calls while a slow call runs),
    ``silent-on-garbage`` (drops malformed client messages), ``ignores-version`` (reads any
    version as 1), ``no-liveness`` (never declares a host dead), ``no-broker-heartbeat``
    (never sends hosts heartbeats), ``unmarked-stranger`` (answers an unknown host's
    heartbeat without the ``stranger`` mark), ``maintain-all`` (a maintenance round takes every host
    out of rotation at once), ``serves-bad-start`` (opens a host whose start-up slow call
    failed), ``no-quarantine`` (never quarantines a poison call), ``no-halt`` (a maintenance
    round goes on after an unfit canary), ``maintain-anything`` (``maintain`` of a name that
    is no slow call answers ``started: true`` and starts nothing), ``hb-only-life`` (only
    messages on a host's heartbeat socket count as signs of life), ``drops-client-kinds``
    (answers only the client kinds ``result``, ``pong``, ``heartbeat`` and ``ready``
    with a protocol error; drops the other kinds clients do not send),
    ``beats-on-call-socket`` (sends its heartbeats to a host's call socket too),
    ``maintain-needs-name`` (``maintain`` with ``method`` nil starts nothing),
    ``no-ping-when-busy`` (answers ``ping`` with ``busy`` while a slow call runs),
    ``restarts-on-ready`` (a serving host's ready again gets its start-up slow call again).

:func:`echo_router` (in-process): a ROUTER that sends every message back.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import msgpack
import zmq

HEADER = b"TH\x01"
MAX_SIZE = 1 << 20
MAX_ID = (1 << 64) - 1
UNKNOWN = "__no_such_call__"
CALLS = [
    {"name": "reload", "kind": "slow", "doc": "", "params": [], "returns": {"type": "null"},
     "startup": True, "policy": None, "deadline": 30.0, "timeout": None},
    {"name": "add", "kind": "fast", "doc": "",
     "params": [{"name": "a", "kind": "positional_or_keyword",
                 "schema": {"type": "integer"}, "required": True},
                {"name": "b", "kind": "positional_or_keyword",
                 "schema": {"type": "integer"}, "required": True}],
     "returns": {"type": "integer"}, "startup": False, "policy": None, "deadline": None,
     "timeout": None},
    {"name": "runs", "kind": "fast", "doc": "", "params": [], "returns": {"type": "integer"},
     "startup": False, "policy": None, "deadline": None, "timeout": None},
]


def fingerprint(calls: list[dict[str, Any]]) -> str:
    """The schema fingerprint, as docs/protocol.md defines it (these schemas carry no
    ``description`` texts to leave out)."""
    contract = [{"name": c["name"], "kind": c["kind"], "params": c["params"],
                 "returns": c["returns"]} for c in calls]
    text = json.dumps({"fingerprint": 1, "calls": contract}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


#: §5's error codes: an ``error`` with another code is malformed (R11).
ERROR_CODES = frozenset({"busy", "unavailable", "failed", "timeout", "crashed", "unknown_call",
                         "bad_arguments", "remote_exception", "protocol", "version",
                         "fingerprint", "adapter", "poisoned", "unfit", "permission_denied"})

class _Abandon(Exception):
    """``abandons-on-shutdown``: a shutdown arrived while reload ran."""


def _pack(body: dict[str, Any]) -> list[bytes]:
    return [HEADER, msgpack.packb(body, use_bin_type=True)]


def _kind(frames: list[bytes]) -> object:
    """The ``kind`` of a well-framed version-1 message, else None."""
    if len(frames) != 2 or frames[0] != HEADER:
        return None
    try:
        body = msgpack.unpackb(frames[1])
    except Exception:
        return None
    return body.get("kind") if isinstance(body, dict) else None


class MiniHost:
    def __init__(self, endpoint: str, flaw: str | None, interval: float = 0.25,
                 broker_timeout: float = 3.0) -> None:
        self.endpoint = endpoint
        self.flaw = flaw
        self.interval = interval
        self.broker_timeout = broker_timeout
        self.host_id = f"mini-{os.getpid()}"
        self.ctx = zmq.Context()
        self.busy: int | None = None
        self.done = threading.Event()
        self.announced: tuple[list[bytes], float] | None = None  # (ready frames, sent at)
        self.token: str | None = None  # the last broker heartbeat's token, and when
        self.heard: float | None = None
        self.runs = 0  # how many times add ran
        self.pending: deque[list[bytes]] = deque()  # read while reload ran (a flaw's)

    def _error(self, rid: int | None, code: str, message: str) -> dict[str, Any]:
        return {"kind": "error", "id": rid, "code": code, "message": message}

    def _read(self, frames: list[bytes]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(message, error answer): at most one is set; both None means drop."""
        if len(frames) != 2 or len(frames[0]) != 3 or frames[0][:2] != b"TH":
            return None, None
        if frames[0][2] != 1 and self.flaw != "runs-other-versions":
            return None, None
        if len(frames[1]) > MAX_SIZE:
            return None, None
        try:
            body = msgpack.unpackb(frames[1], raw=False, strict_map_key=False)
        except Exception:
            return None, None
        if not isinstance(body, dict):
            return None, None
        rid = body.get("id")
        if type(rid) is not int or not 0 <= rid <= MAX_ID:
            return None, None
        kind = body.get("kind")
        if kind == "call":
            if not isinstance(body.get("method"), str) or not isinstance(body.get("args", []),
                                                                          list):
                return None, self._error(rid, "protocol", "invalid call")
            if not isinstance(body.get("kwargs", {}), dict):
                return None, self._error(rid, "protocol", "invalid call")
            return body, None
        if (kind == "error" and body.get("code") not in ERROR_CODES
                and self.flaw != "takes-unknown-codes"):
            return None, self._error(rid, "protocol", "error code not in §5")  # R11
        if kind in ("ping", "pong", "result", "error", "status", "describe", "maintain",
                    "description", "status_reply", "maintain_reply"):
            if self.flaw == "answers-broker-kinds" and kind not in ("ping", "pong", "result",
                                                                    "status"):
                return None, self._error(rid, "protocol", f"a host does not take {kind!r}")
            return None, None  # well-formed kinds a host does not receive: ignore
        return None, self._error(rid, "protocol", f"unknown kind {kind!r}")

    def _reload(self, sock: zmq.Socket[bytes]) -> None:
        end = time.monotonic() + 0.6
        while (left := end - time.monotonic()) > 0:
            if self.flaw != "abandons-on-shutdown":
                time.sleep(left)
            elif sock.poll(int(left * 1000) + 1):
                frames = sock.recv_multipart()
                if _kind(frames) == "shutdown":
                    raise _Abandon
                self.pending.append(frames)

    def _invoke(self, call: dict[str, Any], sock: zmq.Socket[bytes]) -> dict[str, Any]:
        rid = call["id"]
        if self.flaw == "no-echo":
            rid = (rid + 1) % (MAX_ID + 1)
        name, args, kwargs = call["method"], call.get("args", []), call.get("kwargs", {})
        if name == "reload":
            self.busy = call["id"]
            try:
                self._reload(sock)
            finally:
                self.busy = None
            return {"kind": "result", "id": rid, "value": None}
        if name == "runs":
            if args or kwargs:
                return self._error(rid, "bad_arguments", "runs() takes no arguments")
            return {"kind": "result", "id": rid, "value": self.runs}
        if name != "add":
            return self._error(rid, "unknown_call", f"no call {name!r}")
        bound = dict(zip(("a", "b"), args, strict=False))
        if len(args) > 2 or set(kwargs) - {"a", "b"} or set(bound) & set(kwargs):
            return self._error(rid, "bad_arguments", "add(a: int, b: int)")
        bound.update(kwargs)
        if set(bound) != {"a", "b"}:
            return self._error(rid, "bad_arguments", "add(a: int, b: int)")
        if self.flaw != "runs-bad-types" and not all(type(v) is int for v in bound.values()):
            return self._error(rid, "bad_arguments", "add(a: int, b: int)")
        self.runs += 1  # the library runs
        try:
            value = bound["a"] + bound["b"]
        except TypeError as exc:  # runs-bad-types: too late, the library already ran
            return self._error(rid, "bad_arguments", str(exc))
        return {"kind": "result", "id": rid, "value": value}

    def _library(self) -> None:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, self.host_id.encode())
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(self.endpoint)
        print_ = "x" if self.flaw == "bogus-fingerprint" else fingerprint(CALLS)
        ready = _pack({"kind": "ready", "host_id": self.host_id, "pid": os.getpid(),
                       "adapter": {"adapter": "mini", "calls": CALLS}, "fingerprint": print_})
        sock.send_multipart(ready)
        self.announced = (ready, time.monotonic())
        goodbye = _pack({"kind": "goodbye", "host_id": self.host_id, "ok": True})
        try:
            while True:
                if self.pending:
                    frames = self.pending.popleft()
                elif sock.poll(10_000):
                    frames = sock.recv_multipart()
                else:
                    return
                if (self.flaw == "runs-other-versions-quietly" and len(frames) == 2
                        and frames[0][:2] == b"TH" and frames[0] != HEADER):
                    with contextlib.suppress(Exception):
                        self._invoke(msgpack.unpackb(frames[1]), sock)  # and no answer
                    continue
                if _kind(frames) == "shutdown" and self.flaw != "no-goodbye":
                    sock.send_multipart(goodbye)
                    if self.flaw == "talks-after-goodbye":
                        sock.send_multipart(_pack({"kind": "heartbeat",
                                                   "host_id": self.host_id,
                                                   "pid": os.getpid()}))
                    return
                msg, err = self._read(frames)
                if err is not None:
                    sock.send_multipart(_pack(err))
                elif msg is not None:
                    try:
                        answer = _pack(self._invoke(msg, sock))
                    except _Abandon:
                        sock.send_multipart(goodbye)
                        return
                    sock.send_multipart(answer)
                    if self.flaw == "answers-twice":
                        sock.send_multipart(answer)
                    if self.flaw == "drops-while-busy" and msg["method"] in ("reload", "add"):
                        while sock.poll(0):  # what arrived meanwhile is lost
                            sock.recv_multipart()
                    if (self.flaw in ("runs-newest-first", "drops-queued-on-shutdown")
                            and msg["method"] == "reload"):
                        arrived = []
                        while sock.poll(0):  # what arrived while reload ran
                            arrived.append(sock.recv_multipart())
                        if self.flaw == "runs-newest-first":
                            arrived.reverse()
                        elif any(_kind(f) == "shutdown" for f in arrived):
                            sock.send_multipart(goodbye)  # the calls before it: lost
                            return
                        self.pending.extend(arrived)
        finally:
            sock.close()
            self.done.set()

    def _broker_said(self, hb: zmq.Socket[bytes]) -> None:
        """Broker heartbeats on ID/hb: ready again for a new broker (R51), else nothing."""
        while True:
            try:
                frames = hb.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now = time.monotonic()
            try:
                body = msgpack.unpackb(frames[1]) if len(frames) == 2 else None
            except Exception:
                body = None
            if (frames[0] != HEADER or not isinstance(body, dict)
                    or body.get("kind") != "heartbeat" or self.announced is None):
                if self.flaw == "answers-hb-garbage":
                    with contextlib.suppress(zmq.Again):
                        hb.send_multipart(_pack(self._error(None, "protocol", "not a heartbeat")),
                                          zmq.NOBLOCK)
                continue  # malformed, another kind, or still before ready: dropped
            token = str(body.get("host_id", ""))
            ready, sent_at = self.announced
            last = self.heard if self.heard is not None else sent_at
            new = (self.token is not None and token != self.token) or (
                now - last > self.broker_timeout) or (
                body.get("stranger") is True and self.flaw != "ignores-stranger")
            self.token, self.heard = token, now
            if self.flaw == "always-re-announce" or (new and self.flaw != "no-re-announce"):
                with contextlib.suppress(zmq.Again):
                    hb.send_multipart(ready, zmq.NOBLOCK)

    def run(self) -> int:
        threading.Thread(target=self._library, daemon=True).start()
        hb = None
        if self.flaw != "no-heartbeat":
            hb = self.ctx.socket(zmq.DEALER)
            hb.setsockopt(zmq.ROUTING_ID, f"{self.host_id}/hb".encode())
            hb.setsockopt(zmq.LINGER, 0)
            hb.connect(self.endpoint)
        next_beat = time.monotonic() + self.interval
        while not self.done.is_set():
            left = next_beat - time.monotonic()
            if hb is None:
                self.done.wait(max(0.0, left))
            elif left > 0 and hb.poll(int(left * 1000) + 1):
                self._broker_said(hb)
                continue
            if time.monotonic() < next_beat:
                continue
            next_beat += self.interval
            if hb is not None:
                with contextlib.suppress(zmq.Again):
                    hb.send_multipart(_pack({"kind": "heartbeat", "host_id": self.host_id,
                                             "pid": os.getpid(), "busy_id": self.busy}),
                                      zmq.NOBLOCK)
        if hb is not None:
            hb.close()
        self.ctx.term()
        return 0


# --------------------------------------------------------------------------- bad brokers


def _patch_broker(flaw: str) -> None:
    import msgspec.structs

    from threadhost import broker as B
    from threadhost import gate as G
    from threadhost.protocol import ErrorCode, ErrorReply

    if flaw == "no-echo":
        send = B.Broker._send

        def send_wrong_id(self: Any, sock: Any, route: Any, msg: Any) -> None:
            if sock.getsockopt_string(zmq.LAST_ENDPOINT) == self.bound_endpoint and isinstance(
                    getattr(msg, "id", None), int):
                msg = msgspec.structs.replace(msg, id=(msg.id + 1) % (MAX_ID + 1))
            send(self, sock, route, msg)

        B.Broker._send = send_wrong_id  # type: ignore[method-assign]
    elif flaw == "forward-busy":
        from threadhost.gate import core as GC

        client_call = G.Gate._client_call

        def pick_any(hosts: Any, now: float, route_away_after: float) -> Any:
            # any live host that said ready, in a slow call or not
            return next((h for h in hosts if h.killed is None
                         and h.state is not G.HostState.STARTING), None)

        GC.pick = pick_any  # type: ignore[assignment]

        def forward_anyway(self: Any, now: float, route: Any, call: Any) -> Any:
            if self.state in (G.GateState.STARTUP, G.GateState.MAINTAINING):
                saved, self.state = self.state, G.GateState.READY
                try:
                    return client_call(self, now, route, call)
                finally:
                    self.state = saved
            return client_call(self, now, route, call)

        G.Gate._client_call = forward_anyway  # type: ignore[method-assign]
    elif flaw == "silent-on-garbage":
        send = B.Broker._send

        def drop_protocol_errors(self: Any, sock: Any, route: Any, msg: Any) -> None:
            if isinstance(msg, ErrorReply) and msg.code is ErrorCode.PROTOCOL:
                return
            send(self, sock, route, msg)

        B.Broker._send = drop_protocol_errors  # type: ignore[method-assign]
    elif flaw == "ignores-version":
        from threadhost import transport as T  # the broker checks headers through it

        check_header = T.check_header

        def any_version(header: bytes) -> None:
            if header[:2] != b"TH":
                check_header(header)

        T.check_header = any_version
    elif flaw == "no-liveness":
        from threadhost.gate import core as GC

        GC.liveness_problem = lambda *args, **kwargs: None  # type: ignore[assignment]
    elif flaw == "no-broker-heartbeat":
        from threadhost.gate import core as GC

        tick = GC.Gate.tick

        def tick_without_beats(self: Any, now: float) -> Any:
            return [a for a in tick(self, now) if not getattr(a, "heartbeat_socket", False)]

        GC.Gate.tick = tick_without_beats  # type: ignore[method-assign]
    elif flaw == "unmarked-stranger":
        from threadhost.gate import core as GC

        beat = GC.Gate._beat

        def never_marked(self: Any, *, stranger: bool = False) -> Any:
            return beat(self)

        GC.Gate._beat = never_marked  # type: ignore[method-assign]
    elif flaw == "maintain-all":
        from threadhost.gate import maintenance as GM

        def take_all(self: Any, hosts: Any, max_maintaining: int, in_rotation: int) -> Any:
            taken = [h for h in self.pending if h in hosts]
            self.pending = []
            self.active.extend(taken)
            return taken

        GM.Rollout.take_next = take_all  # type: ignore[method-assign]
    elif flaw == "serves-bad-start":
        from threadhost.gate import core as GC
        from threadhost.protocol import Result

        finished = GC.Gate._slow_finished

        def open_anyway(self: Any, now: float, host: Any, slow: Any, msg: Any) -> Any:
            if slow.startup and isinstance(msg, ErrorReply):
                msg = Result(id=msg.id)  # as if the failed start-up had worked
            return finished(self, now, host, slow, msg)

        GC.Gate._slow_finished = open_anyway  # type: ignore[method-assign]
    elif flaw == "no-quarantine":
        from threadhost.gate import poison as GP

        GP.Quarantine.charge = lambda *args, **kwargs: False  # type: ignore[method-assign]
    elif flaw == "no-halt":
        from threadhost.gate import core as GC

        def go_on(self: Any, now: float, rollout: Any, host_id: str, reason: str) -> Any:
            rollout.host_done(host_id, False)
            return self._advance_rollout(now)

        GC.Gate._halt = go_on  # type: ignore[method-assign]
    elif flaw == "drops-client-kinds":
        from threadhost.gate import core as GC

        client_message = GC.Gate.client_message
        answered = ("call", "ping", "status", "describe", "maintain", "result", "pong",
                    "heartbeat", "ready")

        def drop_others(self: Any, now: float, route: Any, msg: Any) -> Any:
            if getattr(msg, "kind", None) not in answered:
                return []
            return client_message(self, now, route, msg)

        GC.Gate.client_message = drop_others  # type: ignore[method-assign]
    elif flaw == "beats-on-call-socket":
        from threadhost.gate import core as GC

        tick = GC.Gate.tick

        def tick_both_sockets(self: Any, now: float) -> Any:
            out = tick(self, now)
            return out + [dataclasses.replace(a, heartbeat_socket=False) for a in out
                          if getattr(a, "heartbeat_socket", False)]

        GC.Gate.tick = tick_both_sockets  # type: ignore[method-assign]
    elif flaw == "restarts-on-ready":
        from threadhost.gate import core as GC

        host_ready = GC.Gate._host_ready

        def start_again(self: Any, now: float, host: Any, msg: Any) -> Any:
            if host.state is G.HostState.READY and self._schedule.startup_names:
                name = self._schedule.startup_names[0]
                return self._send_slow(now, host, name, "startup", startup=True)
            return host_ready(self, now, host, msg)

        GC.Gate._host_ready = start_again  # type: ignore[method-assign]
    elif flaw == "no-ping-when-busy":
        from threadhost.gate import core as GC

        client_message = GC.Gate.client_message

        def busy_ping(self: Any, now: float, route: Any, msg: Any) -> Any:
            if getattr(msg, "kind", None) == "ping" and self.state is G.GateState.MAINTAINING:
                return [GC.ToClient(route, self._refuse(now, msg.id))]
            return client_message(self, now, route, msg)

        GC.Gate.client_message = busy_ping  # type: ignore[method-assign]
    elif flaw == "maintain-needs-name":
        from threadhost.gate import core as GC

        maintain = GC.Gate._manual_maintain

        def refuse_nil(self: Any, now: float, route: Any, msg: Any) -> Any:
            out = maintain(self, now, route, msg.__class__(id=msg.id, method=UNKNOWN))
            return out if msg.method is None else maintain(self, now, route, msg)

        GC.Gate._manual_maintain = refuse_nil  # type: ignore[method-assign]
    elif flaw == "maintain-anything":
        from threadhost.gate import core as GC

        maintain = GC.Gate._manual_maintain

        def say_started(self: Any, now: float, route: Any, msg: Any) -> Any:
            out = maintain(self, now, route, msg)
            if msg.method is not None and msg.method not in self._schedule.calls:
                reply = out[-1].message  # started=false: no such slow call; say true anyway
                out[-1] = GC.ToClient(route, type(reply)(id=reply.id, started=True,
                                                         reason="sure"))
            return out

        GC.Gate._manual_maintain = say_started  # type: ignore[method-assign]
    elif flaw == "hb-only-life":
        from threadhost.gate import core as GC

        recv = B.recv_frames
        last = {"ident": b""}

        def recv_noting(sock: Any, flags: int = 0) -> list[bytes]:
            frames = recv(sock, flags)
            last["ident"] = frames[0]
            return frames

        B.recv_frames = recv_noting
        host_message = GC.Gate.host_message

        def hb_socket_only(self: Any, now: float, host_id: str, msg: Any) -> Any:
            host = self.pool.get(host_id)
            before = None if host is None else host.last_heartbeat
            out = host_message(self, now, host_id, msg)
            if host is not None and before is not None and not last["ident"].endswith(b"/hb"):
                host.last_heartbeat = before  # the call socket does not count
            return out

        GC.Gate.host_message = hb_socket_only  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown broker flaw {flaw!r}")


def run_broker(endpoint: str, backend: str, flaw: str, heartbeat_timeout: float) -> int:
    import logging

    from threadhost.broker import Broker
    from threadhost.gate import GateConfig

    _patch_broker(flaw)
    logging.basicConfig(level=logging.ERROR)
    config = GateConfig(spawn=False, hosts=None, heartbeat_timeout=heartbeat_timeout)
    return Broker(None, endpoint=endpoint, backend=backend, config=config).run()


# --------------------------------------------------------------------------- echo


@contextlib.contextmanager
def echo_router(endpoint: str) -> Iterator[str]:
    """A ROUTER on ``endpoint`` that sends every message straight back (in a thread)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if sock.poll(50):
                sock.send_multipart(sock.recv_multipart())

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield sock.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        stop.set()
        t.join(5)
        sock.close()
        ctx.term()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bad_peers")
    sub = parser.add_subparsers(dest="what", required=True)
    h = sub.add_parser("host")
    h.add_argument("--connect", required=True)
    h.add_argument("--flaw", default=None)
    b = sub.add_parser("broker")
    b.add_argument("--endpoint", required=True)
    b.add_argument("--backend", required=True)
    b.add_argument("--flaw", required=True)
    b.add_argument("--heartbeat-timeout", type=float, default=1.0)
    ns = parser.parse_args(argv)
    if ns.what == "host":
        return MiniHost(ns.connect, ns.flaw).run()
    return run_broker(ns.endpoint, ns.backend, ns.flaw, ns.heartbeat_timeout)


if __name__ == "__main__":
    sys.exit(main())
