"""Client side of the benchmark: what runs inside the worker processes.

Each system under test gets a *caller*: the way a user of that design calls ``calc(5)``.

* ``threadhost`` — ``threadhost.connect(endpoint)`` and ``lib.calc(5)``, as the README shows;
  pipelined: one :class:`threadhost.AsyncClient` with many concurrent awaits, and (``raw``)
  one DEALER that keeps a window of ``Call`` frames in flight (``threadhost.protocol``);
* ``seed`` — the seed's own ``mylib_proxy`` (one per process: it is a module with globals);
* ``floor`` / ``direct`` — a DEALER sending one msgpack frame ``[id, "calc", [5]]``.

Every task takes plain arguments and returns plain data (lists of nanosecond latencies,
counts), so the orchestrator can pickle them across the pool. Tasks that run "together"
start at a common wall-clock instant ``start_at`` and stop at ``start_at + duration``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import msgpack
import zmq

SYSTEMS = ("threadhost", "seed", "floor", "direct")
_TIMEOUT_MS = 10_000


class BenchError(RuntimeError):
    """A system under test did not answer as expected."""


# --------------------------------------------------------------------------- callers


class _ThreadhostCaller:
    def __init__(self, endpoint: str) -> None:
        import threadhost

        self.busy_error = threadhost.BusyError
        self.lib = threadhost.connect(endpoint, timeout=_TIMEOUT_MS / 1000)

    def calc(self) -> bool:
        """One call; True when answered 6, False when answered busy."""
        try:
            value = self.lib.calc(5)
        except self.busy_error:
            return False
        if value != 6:
            raise BenchError(f"threadhost: calc(5) returned {value!r}")
        return True

    def close(self) -> None:
        self.lib.close()


class _SeedCaller:
    _open = False

    def __init__(self, endpoint: str) -> None:
        from benchmarks.seed import mylib_proxy

        if _SeedCaller._open:
            raise BenchError("the seed's proxy is a module: one client per process")
        self.proxy = mylib_proxy
        mylib_proxy.init(endpoint)
        # harness guard, not part of the seed: a dead seed fails the run instead of hanging it
        assert mylib_proxy._socket is not None
        mylib_proxy._socket.setsockopt(zmq.RCVTIMEO, _TIMEOUT_MS)
        _SeedCaller._open = True

    def calc(self) -> bool:
        try:
            value = self.proxy.calc(5)
        except zmq.Again:
            raise BenchError("seed: no answer within 10 s") from None
        if value is None:
            return False  # CALC-FAIL
        if value != 6:
            raise BenchError(f"seed: calc(5) returned {value!r}")
        return True

    def close(self) -> None:
        self.proxy.uninit()
        _SeedCaller._open = False


class _MsgpackCaller:
    """The hand-written client of baselines (c) and (d)."""

    def __init__(self, endpoint: str, ctx: zmq.Context[Any]) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, _TIMEOUT_MS)
        self.sock.connect(endpoint)
        self.ids = itertools.count(1)
        self.packb = msgpack.Packer(use_bin_type=True).pack

    def calc(self) -> bool:
        rid = next(self.ids)
        self.sock.send(self.packb([rid, "calc", [5]]))
        try:
            got, value = msgpack.unpackb(self.sock.recv())
        except zmq.Again:
            raise BenchError("no answer within 10 s") from None
        if got != rid or value != 6:
            raise BenchError(f"calc(5) returned {value!r} for id {got} (sent {rid})")
        return True

    def close(self) -> None:
        self.sock.close(linger=0)


_callers: dict[tuple[str, str, int], Any] = {}
_ctx: zmq.Context[Any] | None = None


def _context() -> zmq.Context[Any]:
    global _ctx
    if _ctx is None:
        _ctx = zmq.Context()
        _ctx.setsockopt(zmq.LINGER, 0)
    return _ctx


def _new_caller(system: str, endpoint: str) -> Any:
    if system == "threadhost":
        return _ThreadhostCaller(endpoint)
    if system == "seed":
        return _SeedCaller(endpoint)
    if system in ("floor", "direct"):
        return _MsgpackCaller(endpoint, _context())
    raise ValueError(f"unknown system {system!r}")


def caller(system: str, endpoint: str, slot: int = 0) -> Any:
    """The cached caller ``slot`` of ``system`` in this process (connections stay open
    between tasks, as a long-running program's would)."""
    key = (system, endpoint, slot)
    c = _callers.get(key)
    if c is None:
        c = _callers[key] = _new_caller(system, endpoint)
    return c


def close_all() -> None:
    for c in _callers.values():
        c.close()
    _callers.clear()


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


# --------------------------------------------------------------------------- tasks


def ping(**_: Any) -> str:
    return "pong"


def seq(system: str, endpoint: str, n: int, warmup: int) -> dict[str, Any]:
    """``n`` sequential calls after ``warmup``; every call's latency."""
    c = caller(system, endpoint)
    for _ in range(warmup):
        c.calc()
    lat = []
    failed = 0
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        ok = c.calc()
        lat.append(clock() - t0)
        failed += not ok
    return {"lat_ns": lat, "failed": failed}


def closed_loop(
    system: str, endpoint: str, start_at: float, duration: float, slot: int = 0
) -> dict[str, Any]:
    """Call back to back from ``start_at``; count the answers that arrive within
    ``duration`` seconds (``calls``: every call made, warm-up included, for CPU costs)."""
    c = caller(system, endpoint, slot)
    c.calc()  # connected and warm before the start
    _sleep_until(start_at)
    end = start_at + duration
    count = failed = calls = 0
    now = time.time
    while True:
        ok = c.calc()
        calls += 1
        if now() > end:
            break
        count += 1
        failed += not ok
    return {"count": count, "failed": failed, "calls": calls + 1}


def paced(
    system: str,
    endpoint: str,
    slots: list[int],
    period: float,
    start_at: float,
    duration: float,
    total: int,
) -> dict[str, Any]:
    """Clients ``slots`` (of ``total``) each call once per ``period``, their calls spread
    evenly over the period across all clients; every call's latency."""
    clients = [(slot, caller(system, endpoint, slot)) for slot in slots]
    for _, c in clients:
        c.calc()
    schedule = sorted(
        (start_at + (slot / total) * period + k * period, i)
        for i, (slot, _) in enumerate(clients)
        for k in range(max(1, int(duration / period)))
    )
    lat = []
    failed = 0
    clock = time.perf_counter_ns
    for when, i in schedule:
        _sleep_until(when)
        t0 = clock()
        failed += not clients[i][1].calc()
        lat.append(clock() - t0)
    return {"lat_ns": lat, "failed": failed}


def busy_probe(
    system: str,
    endpoint: str,
    start_at: float,
    duration: float,
    pause: float,
    expect_busy: bool = True,
    every_call: bool = False,
) -> dict[str, Any]:
    """Sequential calls every ``pause`` seconds during a slow call; the latency of each
    *busy* answer (stops early once the service answers a call again). ``every_call``: a
    system without a gate, whose calls are all answered — the latency of every call, for
    the whole ``duration`` (the same load shape, as a reference)."""
    c = caller(system, endpoint)
    _sleep_until(start_at)
    end = start_at + duration
    lat = []
    answered = 0
    clock = time.perf_counter_ns
    while time.time() < end:
        t0 = clock()
        ok = c.calc()
        dt = clock() - t0
        if every_call:
            lat.append(dt)
        elif ok:
            answered += 1
            if expect_busy:
                break
        else:
            lat.append(dt)
        if pause:
            time.sleep(pause)
    return {"lat_ns": lat, "answered": answered}


def busy_hammer(
    system: str, endpoint: str, start_at: float, duration: float, slot: int = 0,
    every_call: bool = False,
) -> dict[str, Any]:
    """Back-to-back calls during a slow call; count and latency of the busy answers
    (``every_call``: of every call, for the whole ``duration``, on a system without a
    gate)."""
    c = caller(system, endpoint, slot)
    _sleep_until(start_at)
    end = start_at + duration
    lat = []
    clock = time.perf_counter_ns
    while time.time() < end:
        t0 = clock()
        ok = c.calc()
        lat.append(clock() - t0)
        if ok and not every_call:
            break
    return {"lat_ns": lat}


def until_answered(system: str, endpoint: str, limit: float) -> dict[str, Any]:
    """Call every 50 ms until a call is answered (not busy); how long that took."""
    c = caller(system, endpoint)
    t0 = time.time()
    while not c.calc():
        if time.time() - t0 > limit:
            raise BenchError(f"{system}: still busy after {limit:g}s")
        time.sleep(0.05)
    return {"waited": time.time() - t0}


# -- pipelining ------------------------------------------------------------------------------


def pipelined_async(endpoint: str, start_at: float, duration: float, window: int) -> dict[str, Any]:
    """threadhost.AsyncClient: ``window`` coroutines calling back to back on one client."""
    import threadhost

    async def main() -> dict[str, Any]:
        async with threadhost.AsyncClient(endpoint, timeout=_TIMEOUT_MS / 1000) as lib:
            for _ in range(3):
                await lib.call("calc", 5)
            _sleep_until(start_at)
            end = start_at + duration
            loop_time = time.time
            counts = [0] * window

            async def worker(i: int) -> None:
                while loop_time() < end:
                    value = await lib.call("calc", 5)
                    if value != 6:
                        raise BenchError(f"threadhost async: calc(5) returned {value!r}")
                    counts[i] += 1

            await asyncio.gather(*(worker(i) for i in range(window)))
            return {
                "count": sum(counts),
                "elapsed": time.time() - start_at,
                "calls": sum(counts) + 3,
            }

    return asyncio.run(main())


def _raw_codec(system: str) -> tuple[Any, Any, Any]:
    """(socket type, encode(rid) -> frames, decode(frames) -> (rid, ok)) for raw pipelining."""
    if system == "threadhost":
        from threadhost.protocol import Call, Result, decode, encode

        def enc_th(rid: int) -> list[bytes]:
            return encode(Call(id=rid, method="calc", args=[5]))

        def dec_th(frames: list[bytes]) -> tuple[int | None, bool]:
            msg = decode(frames)
            return msg.id, type(msg) is Result and msg.value == 6  # type: ignore[union-attr]

        return zmq.DEALER, enc_th, dec_th
    if system == "seed":

        def enc_seed(rid: int) -> list[bytes]:
            return [b"CALC", b"5"]

        def dec_seed(frames: list[bytes]) -> tuple[int | None, bool]:
            return None, frames == [b"CALC-RESULT", b"6"]  # no request ids: in order

        return zmq.PAIR, enc_seed, dec_seed
    packb = msgpack.Packer(use_bin_type=True).pack

    def enc_mp(rid: int) -> list[bytes]:
        return [packb([rid, "calc", [5]])]

    def dec_mp(frames: list[bytes]) -> tuple[int | None, bool]:
        rid, value = msgpack.unpackb(frames[0])
        return rid, value == 6

    return zmq.DEALER, enc_mp, dec_mp


def pipelined_raw(
    system: str, endpoint: str, start_at: float, duration: float, window: int
) -> dict[str, Any]:
    """One socket keeps ``window`` calls in flight: send, and send another per answer."""
    kind, enc, dec = _raw_codec(system)
    if system == "seed":  # the seed's PAIR takes one peer: reuse the proxy's connection
        c = caller(system, endpoint)
        sock = c.proxy._socket
        own = False
    else:
        sock = _context().socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, _TIMEOUT_MS)
        sock.connect(endpoint)
        own = True
    try:
        ids = itertools.count(1)
        sock.send_multipart(enc(next(ids)))  # warm-up: connected before the start
        dec(sock.recv_multipart())
        _sleep_until(start_at)
        end = start_at + duration
        outstanding = 0
        count = bad = 0
        for _ in range(window):
            sock.send_multipart(enc(next(ids)))
            outstanding += 1
        now = time.time
        while outstanding:
            try:
                _, ok = dec(sock.recv_multipart())
            except zmq.Again:
                raise BenchError(f"{system}: pipelined answer missing") from None
            outstanding -= 1
            count += 1
            bad += not ok
            if now() < end:
                sock.send_multipart(enc(next(ids)))
                outstanding += 1
        return {
            "count": count,
            "failed": bad,
            "elapsed": time.time() - start_at,
            "calls": count + 1,
        }
    finally:
        if own:
            sock.close(linger=0)


# -- idle clients ----------------------------------------------------------------------------

_idle: list[Any] = []


def hold_idle(system: str, endpoint: str, n: int) -> dict[str, Any]:
    """Open ``n`` more clients, make one call on each, and keep them connected."""
    for _ in range(n):
        c = _new_caller(system, endpoint)
        c.calc()
        _idle.append(c)
    return {"held": len(_idle)}


def close_callers() -> dict[str, Any]:
    """Close the cached callers of this process (they reconnect on next use), except the
    seed's: its PAIR broker takes one client for its whole life."""
    closed = [key for key in _callers if key[0] != "seed"]
    for key in closed:
        _callers.pop(key).close()
    return {"closed": len(closed)}


def release_idle() -> dict[str, Any]:
    n = len(_idle)
    for c in _idle:
        c.close()
    _idle.clear()
    return {"released": n}


TASKS = {
    f.__name__: f
    for f in (
        ping,
        seq,
        closed_loop,
        paced,
        busy_probe,
        busy_hammer,
        until_answered,
        pipelined_async,
        pipelined_raw,
        hold_idle,
        close_callers,
        release_idle,
    )
}
