"""Client side of :mod:`benchmarks.faults`: processes that call without pause and record
every call, and a raw control socket for the campaign itself.

The callers speak the protocol on a bare ZeroMQ ``DEALER`` (the same socket options as
:class:`threadhost.Client`: ``IMMEDIATE``, reconnect every 100 ms) rather than through the
client library, so that *every* reply is seen, including a second one to the same request
or one that comes after the caller gave up: each request id gets a count of the answers it
received over the whole run (0: lost, 1: answered exactly once, 2+: duplicated), whatever
the client library would have shown.

A caller process runs one call at a time, ``calc(x)`` with a fresh ``x`` each time, until
told to stop; then it keeps reading for a while (late answers still count), aggregates its
calls over the campaign's windows (one per round) and sends the aggregate back.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import multiprocessing as mp
import time
import traceback
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

X_STRIDE = 10**8  # caller w calls calc(w * X_STRIDE + i)


def _socket(ctx: Any, endpoint: str) -> Any:
    import zmq

    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 100)
    sock.connect(endpoint)
    return sock


class Raw:
    """A bare protocol socket: :meth:`send` a message (``None`` while no broker is
    connected: nothing was sent), :meth:`read` every reply that has arrived."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self._zmq = zmq
        self.ctx = zmq.Context()
        self.sock = _socket(self.ctx, endpoint)
        self.next_id = 0
        self.protocol_errors = 0

    def send(self, msg: Any) -> bool:
        from threadhost import protocol

        zmq = self._zmq
        header, body = protocol.encode(msg)
        try:
            self.sock.send(header, zmq.SNDMORE | zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.sock.send(body, zmq.NOBLOCK)
        return True

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def read(self, wait: float) -> list[Any]:
        """Replies already here, or the first ones within ``wait`` seconds."""
        from threadhost import protocol

        zmq = self._zmq
        out: list[Any] = []
        if not self.sock.poll(max(0, int(wait * 1000))):
            return out
        while True:
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return out
            try:
                out.append(protocol.decode(frames))
            except Exception:
                self.protocol_errors += 1

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


class Control(Raw):
    """The campaign's own requests: status, maintain, and fault calls (``work``,
    ``crash``) whose answers are counted like the callers'."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint)
        self.calls: dict[int, dict[str, Any]] = {}  # fault calls by id
        self.pending: dict[int, Any] = {}  # control replies by id

    def _pump(self, wait: float) -> None:
        for msg in self.read(wait):
            rid = getattr(msg, "id", None)
            if rid in self.calls:
                c = self.calls[rid]
                c["answers"] += 1
                if c["answers"] == 1:
                    c["t_answer"] = time.monotonic()
                    c["outcome"] = "ok" if msg.kind == "result" else str(msg.code)
                    c["value"] = getattr(msg, "value", None)
            elif rid is not None:
                self.pending[rid] = msg

    def request(self, msg_type: Any, timeout: float = 2.0, **fields: Any) -> Any:
        """Send a control request and wait for its reply (None: no broker, or no reply)."""
        deadline = time.monotonic() + timeout
        rid = self.new_id()
        while not self.send(msg_type(id=rid, **fields)):
            if time.monotonic() > deadline:
                return None
            self._pump(0.01)
        while time.monotonic() < deadline:
            self._pump(min(0.05, max(0.0, deadline - time.monotonic())))
            if rid in self.pending:
                return self.pending.pop(rid)
        return None

    def status(self, timeout: float = 2.0) -> dict[str, Any] | None:
        from threadhost import protocol

        reply = self.request(protocol.Status, timeout)
        return None if reply is None or reply.kind != "status_reply" else dict(reply.status)

    def maintain(self, timeout: float = 2.0) -> bool:
        from threadhost import protocol

        reply = self.request(protocol.Maintain, timeout, method=None)
        return reply is not None and reply.kind == "maintain_reply" and bool(reply.started)

    def fault_call(self, method: str, args: list[Any], timeout: float = 30.0) -> int:
        """Send a fault call (``work``/``crash``) without waiting; its id."""
        from threadhost import protocol

        rid = self.new_id()
        deadline = time.monotonic() + 5.0
        call = protocol.Call(id=rid, method=method, args=args, timeout=timeout)
        while not self.send(call):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no broker to send {method} to")
            self._pump(0.01)
        self.calls[rid] = {"method": method, "args": args, "t_sent": time.monotonic(),
                           "answers": 0, "outcome": None, "value": None, "t_answer": None}
        return rid

    def wait_answer(self, rid: int, limit: float) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while self.calls[rid]["answers"] == 0 and time.monotonic() < deadline:
            self._pump(0.02)
        return self.calls[rid]

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(0.02)


# --------------------------------------------------------------------------- callers


def _aggregate(t_send: list[float], t_first: list[float], answers: list[int],
               outcome: list[str | None], offset: list[int | None], unsent: list[float],
               windows: list[tuple[float, float, float]], timeout: float) -> list[dict[str, Any]]:
    """Each window ``(start, end, fault_at)``: the calls sent in it, how often each was
    answered, outcomes, the offsets of the results (by the earliest answer carrying each)
    and the first good answer to a call sent after ``fault_at``."""
    out = []
    for start, end, fault_at in windows:
        lo = bisect.bisect_left(t_send, start)
        hi = bisect.bisect_left(t_send, end)
        outcomes: Counter[str] = Counter()
        offsets: dict[int, list[float]] = {}  # offset -> [count, first answer time]
        n_answers: Counter[int] = Counter()
        late = 0
        first_ok: float | None = None
        max_latency = 0.0
        for i in range(lo, hi):
            n = answers[i]
            n_answers[min(n, 2)] += 1
            if n == 0:
                outcomes["no answer"] += 1
                continue
            outcomes[outcome[i] or "?"] += 1
            lat = t_first[i] - t_send[i]
            max_latency = max(max_latency, lat)
            if lat > timeout:
                late += 1
            if outcome[i] == "ok":
                off = offset[i]
                assert off is not None
                rec = offsets.setdefault(off, [0, math.inf])
                rec[0] += 1
                rec[1] = min(rec[1], t_first[i])
                if t_send[i] >= fault_at and (first_ok is None or t_first[i] < first_ok):
                    first_ok = t_first[i]
        out.append({
            "calls": hi - lo,
            "answered_once": n_answers[1],
            "no_answer": n_answers[0],
            "answered_twice_or_more": n_answers[2],
            "answered_late": late,
            "outcomes": dict(outcomes),
            "offsets": {str(k): v for k, v in offsets.items()},
            "first_ok_after_fault": first_ok,
            "max_latency": max_latency,
            "unsent": bisect.bisect_left(unsent, end) - bisect.bisect_left(unsent, start),
        })
    return out


def _caller(conn: Connection, endpoint: str, wid: int, timeout: float, think: float,
            drain: float) -> None:
    from threadhost import protocol

    raw = Raw(endpoint)
    t_send: list[float] = []
    t_first: list[float] = []
    answers: list[int] = []
    outcome: list[str | None] = []
    offset: list[int | None] = []
    xs: list[int] = []
    unsent: list[float] = []
    stray = 0
    clock = time.monotonic

    def take(msgs: list[Any]) -> None:
        nonlocal stray
        now = clock()
        for msg in msgs:
            rid = getattr(msg, "id", None)
            if rid is None or not 1 <= rid <= len(t_send):
                stray += 1
                continue
            i = rid - 1
            answers[i] += 1
            if answers[i] == 1:
                t_first[i] = now
                if msg.kind == "result":
                    outcome[i] = "ok"
                    v = msg.value
                    offset[i] = v - xs[i] if type(v) is int else None
                    if offset[i] is None:
                        outcome[i] = "non-int result"
                else:
                    outcome[i] = str(msg.code)

    try:
        conn.send("ready")
        stop: Any = None
        while stop is None:
            if conn.poll():
                stop = conn.recv()
                break
            i = len(t_send)
            x = wid * X_STRIDE + i
            if not raw.send(protocol.Call(id=i + 1, method="calc", args=[x], timeout=timeout)):
                unsent.append(clock())
                take(raw.read(0.005))
                continue
            t_send.append(clock())
            t_first.append(math.nan)
            answers.append(0)
            outcome.append(None)
            offset.append(None)
            xs.append(x)
            deadline = t_send[-1] + timeout
            while answers[i] == 0:
                left = deadline - clock()
                if left <= 0:
                    break
                take(raw.read(left))
            if think > 0:
                time.sleep(think)
        end = clock() + drain  # late and duplicate answers still count
        while clock() < end:
            take(raw.read(0.02))
        windows = stop
        result = {
            "wid": wid,
            "calls": len(t_send),
            "stray_replies": stray,
            "protocol_errors": raw.protocol_errors,
            "windows": _aggregate(t_send, t_first, answers, outcome, offset, unsent,
                                  windows, timeout),
        }
        conn.send(("ok", result))
    except Exception:
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        raw.close()
        conn.close()


class Callers:
    """``n`` caller processes (forkserver, like :class:`benchmarks.hosts_clients.Clients`)
    calling ``endpoint`` from :meth:`start` until :meth:`stop`."""

    def __init__(self, n: int, endpoint: str, *, timeout: float, think: float,
                 drain: float = 1.5) -> None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["benchmarks.faults_clients", "threadhost.protocol", "zmq"])
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for wid in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_caller, args=(child, endpoint, wid, timeout, think, drain),
                            name=f"faults-caller-{wid}", daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        for c in self.conns:
            if not c.poll(60) or c.recv() != "ready":
                raise RuntimeError("a caller process did not start")

    def stop(self, windows: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
        for c in self.conns:
            c.send(windows)
        results = []
        errors = []
        for c in self.conns:
            status, value = c.recv()
            if status != "ok":
                errors.append(value)
            results.append(value)
        self.close()
        if errors:
            raise RuntimeError("\n".join(errors))
        return results

    def close(self) -> None:
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join(5)
        for c in self.conns:
            c.close()
