"""pytest plugin and test helpers for adapter authors (registered as the ``pytest11`` entry
point ``threadhost``, so installing threadhost makes them available in every test suite).

* ``threadhost_service`` — a fixture returning a factory that serves an adapter in a real
  ``threadhost serve`` subprocess on a free loopback port, waits until it is ready, and always
  stops it at teardown; when the test fails, the service's log is attached to the report
  (section ``threadhost service log``).
* :func:`in_process` — run an adapter's calls in this process on one dedicated library
  thread, without sockets or a broker: ``with in_process("examples.mylib_adapter") as lib:
  lib.calc(5)``.
* :class:`FakeClock` — a hand-driven monotonic clock, and :meth:`FakeClock.run` to drive a
  :mod:`threadhost.policy` policy the way the broker does and see when it fires.

pytest imports every plugin at start-up, so this module imports only the standard library and
pytest at import time; zmq, pydantic and the adapter machinery are imported when used.
See docs/testing.md ("Testing your adapter").
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from threadhost.adapter import Adapter, AdapterSpec, CallSpec
    from threadhost.client import Client
    from threadhost.policy import Policy

__all__ = [
    "LOG_SECTION",
    "FakeClock",
    "InProcess",
    "ThreadhostService",
    "free_endpoint",
    "in_process",
    "threadhost_service",
]

#: The title of the report section that carries a failing test's service log.
LOG_SECTION = "threadhost service log"
#: At most this many characters of a service's log go into a report (the end of the log).
LOG_LIMIT = 50_000

_SERVICES = pytest.StashKey[list["ThreadhostService"]]()


def free_endpoint(host: str = "127.0.0.1") -> str:
    """``tcp://127.0.0.1:PORT`` with a port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    return f"tcp://{host}:{port}"


# ----------------------------------------------------------------------------- the service


class ThreadhostService:
    """One ``threadhost serve`` subprocess (made by the ``threadhost_service`` fixture).

    Its stdout and stderr go to ``log_path`` (read it with :meth:`log`).
    """

    def __init__(
        self,
        target: str,
        *,
        log_path: Path,
        policy: str | None = "manual",
        hosts: int | None = None,
        config: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.target = target
        self.endpoint = free_endpoint()
        self.log_path = log_path
        self._clients: list[Client] = []
        cmd = [sys.executable, "-m", "threadhost", "serve", target, "--endpoint", self.endpoint]
        if policy is not None:
            cmd += ["--policy", policy]
        if hosts is not None:
            cmd += ["--hosts", str(hosts)]
        if config is not None:
            cmd += ["--config", os.fspath(config)]
        cmd += list(args)
        self.command = cmd
        full_env = {**os.environ, **(env or {})}
        # the test's working directory first, so that a test suite's own adapter modules import
        path = [os.fspath(cwd) if cwd is not None else os.getcwd()]
        if full_env.get("PYTHONPATH"):
            path.append(full_env["PYTHONPATH"])
        full_env["PYTHONPATH"] = os.pathsep.join(path)
        with open(log_path, "w") as log:
            self.proc: subprocess.Popen[bytes] = subprocess.Popen(
                cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
            )

    def __repr__(self) -> str:
        return f"<ThreadhostService {self.target} at {self.endpoint} pid {self.proc.pid}>"

    def client(self, timeout: float = 5.0) -> Client:
        """A :class:`threadhost.Client` of this service (closed when the service stops)."""
        from threadhost.client import connect

        c = connect(self.endpoint, timeout=timeout)
        self._clients.append(c)
        return c

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """The service's status (``threadhost status --json``'s fields: ``state``, ...)."""
        from threadhost.client import Client, connect

        with connect(self.endpoint, timeout=timeout) as c:
            return Client.status(c)  # the service's, whatever the adapter's calls are named

    def wait_ready(self, limit: float = 30.0) -> dict[str, Any]:
        """Wait until the service's state is ``ready``; return that status.

        Raises ``AssertionError`` (with the log) if the process exits or ``limit`` passes.
        """
        from threadhost.errors import ThreadhostError

        deadline = time.monotonic() + limit
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"threadhost serve {self.target} exited with {self.proc.returncode} "
                    f"before it was ready:\n{self.log()}"
                )
            try:
                last = self.status(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                if isinstance(last, dict) and last.get("state") == "ready":
                    return last
            except ThreadhostError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(
            f"threadhost serve {self.target} not ready within {limit}s; last status: {last!r}"
            f"\n{self.log()}"
        )

    def log(self) -> str:
        """What the service wrote so far (its log goes to stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _children(self) -> list[Any]:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is in threadhost[test]
            return []
        try:
            return list(psutil.Process(self.proc.pid).children(recursive=True))
        except psutil.Error:
            return []

    def stop(self, timeout: float = 30.0) -> int:
        """Stop the service with SIGTERM (SIGKILL after ``timeout``); its exit code.

        Calling it again returns the same code.
        """
        for c in self._clients:
            with contextlib.suppress(Exception):
                c.close()
        self._clients.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def _teardown(self) -> None:
        """Stop the service and kill anything it left behind (hosts of a failed stop)."""
        children = self._children()
        with contextlib.suppress(Exception):
            self.stop()
        for child in children:
            with contextlib.suppress(Exception):
                child.kill()


@pytest.fixture
def threadhost_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ThreadhostService]]:
    """A factory serving an adapter for this test in a real ``threadhost serve`` process::

        svc = threadhost_service("examples.mylib_adapter", policy="manual", hosts=2)
        assert svc.client().calc(5) == 6

    Arguments: the target (``"module"`` or ``"module:Class"``), ``policy`` (default
    ``"manual"``; ``None``: the adapter's default), ``hosts``, ``config`` (a ``serve`` TOML
    settings file), ``env`` (added to the environment), ``args`` (more ``serve`` options),
    ``cwd``, ``ready`` (default True: wait until ready) and ``limit`` (seconds to wait).
    Every service is stopped at teardown; a failing test's report gets each one's log.
    """
    services: list[ThreadhostService] = []
    request.node.stash[_SERVICES] = services
    directory = tmp_path_factory.mktemp("threadhost-service")

    def factory(
        target: str,
        *,
        policy: str | None = "manual",
        hosts: int | None = None,
        config: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        ready: bool = True,
        limit: float = 30.0,
    ) -> ThreadhostService:
        svc = ThreadhostService(
            target, log_path=directory / f"serve-{len(services)}.log", policy=policy,
            hosts=hosts, config=config, env=env, args=args, cwd=cwd,
        )
        services.append(svc)
        if ready:
            svc.wait_ready(limit)
        return svc

    yield factory
    for svc in services:
        svc._teardown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the log of every service the test started to a failing test's report."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    for svc in item.stash.get(_SERVICES, []):
        text = svc.log()
        if len(text) > LOG_LIMIT:
            text = f"[... {len(text) - LOG_LIMIT} characters cut ...]\n{text[-LOG_LIMIT:]}"
        header = f"{svc.target} at {svc.endpoint} (pid {svc.proc.pid}, {svc.log_path})\n"
        report.sections.append((LOG_SECTION, header + text))


# ----------------------------------------------------------------------------- in process


class _LibraryThread:
    """One thread that runs every function given to :meth:`run`, in order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[], Any], Future[Any]] | None
        ] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def run(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is self.thread:
            return fn()
        future: Future[Any] = Future()
        self._jobs.put((fn, future))
        return future.result()

    def stop(self) -> None:
        self._jobs.put(None)
        self.thread.join()


class InProcess:
    """An adapter instance whose every call runs on one library thread (see :func:`in_process`).

    ``lib.NAME(...)`` is ``lib.call("NAME", ...)`` for every declared call, fast or slow.
    """

    def __init__(self, spec: AdapterSpec, library: _LibraryThread) -> None:
        self.spec = spec
        self._library = library
        self.instance: Adapter | None = None
        #: why the instance is unfit (``verify`` failed after a slow call), else None
        self.unfit: str | None = None

    @property
    def thread(self) -> threading.Thread:
        """The library thread: ``setup``, every call, ``verify`` and ``teardown`` run on it."""
        return self._library.thread

    def run_on_library_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the library thread and return its result (or raise its error)."""
        return self._library.run(fn)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in self.__dict__.get("spec", _NoSpec).calls:
            raise AttributeError(f"{type(self).__name__} has no call or attribute {name!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, *args, **kwargs)

        call.__name__ = name
        return call

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.spec.calls})

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run call ``name`` on the library thread, checked like the host checks it.

        Arguments are validated against the declared signature (:class:`BadArgumentsError`),
        the result against the declared return type (:class:`AdapterError`) and returned in
        its wire form (what ``threadhost.connect(...)`` would return); an exception the
        method raises is raised as is. After a slow call, ``verify`` runs (if the adapter
        defines it); if it fails, :class:`UnfitError` is raised and fast calls raise it
        until a later slow call passes ``verify``.
        """
        from threadhost.errors import UnfitError, UnknownCallError

        decl = self.spec.calls.get(name)
        if decl is None:
            raise UnknownCallError(f"{self.spec.qualname} has no call {name!r}")
        bound_args, bound_kwargs = decl.bind(list(args), dict(kwargs))
        if decl.kind == "fast" and self.unfit is not None:
            raise UnfitError(f"unfit: {self.unfit}; this instance serves no call until a slow "
                             "call passes verify")
        if decl.kind == "fast":
            return self._library.run(lambda: self._invoke(decl, bound_args, bound_kwargs))
        try:
            result = self._library.run(lambda: self._invoke(decl, bound_args, bound_kwargs))
        except Exception as exc:
            self._verify_after(name, exc)
            raise
        self._verify_after(name, None)
        return result

    def _invoke(self, decl: CallSpec, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return decl.dump_result(getattr(self.instance, decl.name)(*args, **kwargs))

    def _verify_after(self, name: str, failure: BaseException | None) -> None:
        if not self.spec.has_verify:
            return
        from threadhost.errors import UnfitError

        try:
            self._library.run(lambda: self.instance.verify())  # type: ignore[union-attr]
        except Exception as exc:
            text = f"verify failed after {name!r}: {type(exc).__name__}: {exc}"
            if failure is not None:
                text += f" ({name!r} itself failed: {type(failure).__name__}: {failure})"
            self.unfit = text
            raise UnfitError(text) from exc
        self.unfit = None


class _NoSpec:
    calls: dict[str, Any] = {}  # noqa: RUF012 - a read-only stand-in


@contextlib.contextmanager
def in_process(
    target: str | type[Adapter], *, startup: bool = True
) -> Iterator[InProcess]:
    """Load an adapter and run it in this process on one dedicated library thread.

    ``target`` is ``"module"``, ``"module:Class"`` or an Adapter subclass. On entering, the
    library thread creates the instance and runs ``setup``, then (``startup=True``) the
    start-up slow calls, each followed by ``verify`` — or ``verify`` alone when there are
    none — like a host before it reports ready. On leaving, ``teardown`` runs on that same
    thread, also when the block raised. No sockets, no broker, no policy: slow calls run
    only when the test calls them.
    """
    from threadhost.adapter import inspect_adapter, load_adapter

    spec = load_adapter(target) if isinstance(target, str) else inspect_adapter(target)
    library = _LibraryThread(f"threadhost-library-{spec.name}")
    lib = InProcess(spec, library)
    try:
        def create() -> None:
            lib.instance = spec.instantiate()
            lib.instance.setup()

        library.run(create)
        try:
            startup_calls = spec.startup_calls if startup else ()
            for decl in startup_calls:
                lib.call(decl.name)
            if spec.has_verify and startup and not startup_calls:
                lib._verify_after("setup", None)
            yield lib
        finally:
            library.run(lambda: lib.instance.teardown())  # type: ignore[union-attr]
    finally:
        library.stop()


# ----------------------------------------------------------------------------- fake clock


class FakeClock:
    """A monotonic clock that moves only when told to: ``clock.now``, ``clock.advance(s)``.

    Calling the clock returns ``now``, so it can stand in for ``time.monotonic`` (or, with an
    epoch ``start``, for the ``wall_clock`` of :func:`~threadhost.policy.parse_policy`).
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        #: ``(time, reason)`` of every firing seen by :meth:`run`, across runs
        self.history: list[tuple[float, str]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (not negative); the new ``now``."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock does not go back ({seconds}s)")
        self.now += seconds
        return self.now

    def run(
        self,
        policy: Policy,
        *,
        until: float,
        calls: Iterable[float] = (),
        slow_seconds: float = 0.0,
        start: bool = True,
        max_steps: int = 100_000,
    ) -> list[float]:
        """Drive ``policy`` like the broker from ``now`` to ``until``; the times it fired.

        ``calls`` are the (absolute) times of client calls: each one the broker would accept
        is told to the policy (``on_call``); one that falls inside a slow call is refused
        (busy) and not told. When the policy is due, the slow call runs for ``slow_seconds``
        (``on_slow_started``, then ``on_slow_finished``). ``start=True`` calls
        ``policy.start(now)`` first (the service became ready). The clock ends at ``until``.
        """
        pending = sorted(calls)
        fired: list[float] = []
        if start:
            policy.start(self.now)
        for _ in range(max_steps):
            while pending and pending[0] < self.now:  # refused during the last slow call
                pending.pop(0)
            wake = policy.next_wakeup(self.now)
            moments = [t for t in (wake, pending[0] if pending else None) if t is not None]
            if not moments or min(moments) > until:
                self.now = max(self.now, until)
                return fired
            self.now = max(self.now, min(moments))
            while pending and pending[0] <= self.now:
                pending.pop(0)
                policy.on_call(self.now)
            reason = policy.poll(self.now)
            if reason is not None:
                fired.append(self.now)
                self.history.append((self.now, reason))
                policy.on_slow_started(self.now)
                self.now += slow_seconds
                policy.on_slow_finished(self.now)
        raise RuntimeError(f"{policy!r} did not settle within {max_steps} steps")
