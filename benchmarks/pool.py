"""A pool of long-lived client processes, one pipe each, that run :mod:`benchmarks.clients`
tasks on request.

Concurrent clients are real separate processes (no GIL shared with each other or with the
orchestrator). They are started once through a ``forkserver`` that has already imported the
client code (no ZeroMQ context exists before the fork: each worker makes its own), so 64
clients start in a second instead of re-importing pydantic 64 times.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from multiprocessing.connection import Connection
from typing import Any


def _worker(conn: Connection) -> None:
    from benchmarks import clients

    try:
        while True:
            try:
                name, kwargs = conn.recv()
            except EOFError:
                break
            if name is None:
                break
            try:
                conn.send(("ok", clients.TASKS[name](**kwargs)))
            except Exception:
                conn.send(("error", traceback.format_exc()))
    finally:
        try:
            clients.close_all()
            clients.release_idle()
        finally:
            conn.close()


class WorkerError(RuntimeError):
    """A task failed in a worker process."""


class Pool:
    """``size`` worker processes; :meth:`run` sends tasks to chosen workers and waits."""

    def __init__(self, size: int) -> None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["benchmarks.clients", "threadhost", "threadhost.client"])
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

    @property
    def size(self) -> int:
        return len(self.conns)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def run(self, tasks: list[tuple[int, str, dict[str, Any]]]) -> list[Any]:
        """Run ``(worker index, task name, kwargs)`` tasks at once; their results in order."""
        self.submit(tasks)
        return self.collect(tasks)

    def submit(self, tasks: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Start tasks (at most one per worker); :meth:`collect` waits for their results."""
        for index, name, kwargs in tasks:
            self.conns[index].send((name, kwargs))

    def collect(self, tasks: list[tuple[int, str, dict[str, Any]]]) -> list[Any]:
        results = []
        errors = []
        for index, name, _ in tasks:
            status, value = self.conns[index].recv()
            if status != "ok":
                errors.append(f"worker {index}, task {name}:\n{value}")
            results.append(value)
        if errors:
            raise WorkerError("\n".join(errors))
        return results

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send((None, {}))
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        for conn in self.conns:
            conn.close()
