"""Client side of :mod:`benchmarks.hosts`: the tasks its client processes run.

The processes are a :class:`benchmarks.pool.Pool` whose workers run this module's
``TASKS`` (not :mod:`benchmarks.clients`'): outcomes are counted by type here, because a
pool's callers see ``HostCrashedError`` and ``CallTimeoutError`` as well as ``BusyError``.
Every task takes and returns plain data.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.pool import Pool

TIMEOUT = 10.0  # the client timeout (threadhost.connect's default)

_clients: dict[tuple[str, float], Any] = {}


def _client(endpoint: str, timeout: float = TIMEOUT) -> Any:
    import threadhost

    c = _clients.get((endpoint, timeout))
    if c is None:
        c = _clients[(endpoint, timeout)] = threadhost.connect(endpoint, timeout=timeout)
    return c


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def load(endpoint: str, start_at: float, duration: float, method: str = "calc",
         args: tuple[Any, ...] = (5,), expect: Any = 6, latencies: bool = False,
         timeout: float = TIMEOUT) -> dict[str, Any]:
    """Call back to back from ``start_at`` for ``duration`` seconds (a call made before the
    end is waited for). Every outcome counted by type (``ok`` or the exception's class
    name); failures with their wall time; the time spent turned away (from a ``BusyError``
    to the next answer); each call's start time and latency on request."""
    import threadhost

    lib = _client(endpoint, timeout)
    deadline = time.time() + 30
    while True:  # connected and warm before the start
        try:
            lib.call(method, *args)
            break
        except threadhost.TryLaterError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)
    _sleep_until(start_at)
    end = start_at + duration
    outcomes: Counter[str] = Counter()
    failures: list[tuple[float, str]] = []
    lat: list[int] = []
    starts: list[float] = []
    wrong = 0
    busy_since: float | None = None
    busy_total = 0.0
    clock = time.perf_counter_ns
    now = time.time
    while True:
        t = now()
        if t >= end:
            break
        t0 = clock()
        try:
            value = lib.call(method, *args)
        except threadhost.ThreadhostError as exc:
            name = type(exc).__name__
            outcomes[name] += 1
            failures.append((now(), name))
            if isinstance(exc, threadhost.BusyError) and busy_since is None:
                busy_since = t
            continue
        finally:
            if latencies:
                lat.append(clock() - t0)
                starts.append(t)
        outcomes["ok"] += 1
        wrong += value != expect
        if busy_since is not None:
            busy_total += now() - busy_since
            busy_since = None
    if busy_since is not None:
        busy_total += end - busy_since
    return {"outcomes": dict(outcomes), "failures": failures[:1000], "wrong": wrong,
            "busy_s": busy_total, "lat_ns": lat, "starts": starts}


def call_once(endpoint: str, method: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """One call with a long timeout; its value or the exception's class name."""
    import threadhost

    try:
        return {"value": _client(endpoint, timeout=120.0).call(method, *args)}
    except threadhost.ThreadhostError as exc:
        return {"error": type(exc).__name__}


def close() -> dict[str, Any]:
    """Close this process's clients (the next task connects again)."""
    for c in _clients.values():
        c.close()
    n = len(_clients)
    _clients.clear()
    return {"closed": n}


def ping() -> str:
    return "pong"


TASKS: dict[str, Callable[..., Any]] = {"ping": ping, "load": load, "call_once": call_once,
                                        "close": close}


def _worker(conn: Connection) -> None:
    try:
        while True:
            try:
                name, kwargs = conn.recv()
            except EOFError:
                break
            if name is None:
                break
            try:
                conn.send(("ok", TASKS[name](**kwargs)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        close()
        conn.close()


class Clients(Pool):
    """A :class:`benchmarks.pool.Pool` whose workers run this module's tasks."""

    def __init__(self, size: int) -> None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["benchmarks.hosts_clients", "threadhost",
                                    "threadhost.client"])
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for i in range(size):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child,), name=f"bench-client-{i}", daemon=True)
            p.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(p)
        self.run([(i, "ping", {}) for i in range(size)])
