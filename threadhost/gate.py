"""The broker's gate and supervisor brain: a pure state machine (no sockets, no clock).

Theory of operation
-------------------
The broker shell feeds the gate *events* — a client request arrived, the host said ready,
answered, sent a heartbeat, said goodbye, its process exited, the clock reached a wake-up
time — each with ``now`` (monotonic seconds). The gate answers with a list of *actions*
(send this to that client, send this to the host, start a host, kill the host, log) and
changes nothing else. Every rule of threadhost lives here and is unit-tested in microseconds.

Service states (``GateState``)::

    starting ──ready──▶ startup ──startup slow calls done──▶ ready ◀──slow done── maintaining
       ▲                  │                                     │  └──policy/manual──▶┘
       │                  └────────────── host died ────────────┤
       └──── restarting ◀───────────────── host died ───────────┘ (restart budget left)
                 └── budget exhausted ──▶ failed        any state ──shutdown──▶ stopping

* ``ready``: fast calls are forwarded to the host; replies are routed back by request id.
* ``startup`` / ``maintaining``: a slow call runs on the library thread; every fast call is
  answered at once with ``busy`` (``retry_after`` from measured slow-call durations) and
  never reaches the host. ``starting`` (first start) answers ``busy`` too.
* ``restarting``: the host died; calls get ``unavailable`` with ``retry_after``; calls that
  were in flight got ``crashed`` (outcome unknown). A new host is started; it runs setup
  and the start-up slow calls again before the gate reopens.
* ``failed``: more than ``restart_limit`` restarts within ``restart_window``; calls get the
  permanent ``failed`` error.
* ``stopping``: shutdown requested; new calls get ``unavailable``; the host finishes what it
  has, runs teardown and says goodbye.

Liveness: the host's heartbeats come from a thread that never runs library code. While a
slow call runs, a library holding the GIL can silence them, so the host is then judged by
the slow call's deadline, not by heartbeats.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from threadhost.errors import (
    FingerprintMismatchError,
    UnknownCallError,
)
from threadhost.policy import Policy
from threadhost.wire import (
    Call,
    Describe,
    Description,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Heartbeat,
    Maintain,
    MaintainReply,
    Ping,
    Pong,
    Ready,
    Result,
    Shutdown,
    Status,
    StatusReply,
    error_reply,
)

__all__ = [
    "Action",
    "Gate",
    "GateConfig",
    "GateState",
    "KillHost",
    "Log",
    "StartHost",
    "Stopped",
    "ToClient",
    "ToHost",
]


class GateState(enum.StrEnum):
    STARTING = "starting"
    STARTUP = "startup"
    READY = "ready"
    MAINTAINING = "maintaining"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class ToClient:
    """Send ``message`` to the client whose routing envelope is ``route``."""

    route: tuple[bytes, ...]
    message: Any


@dataclass(frozen=True, slots=True)
class ToHost:
    """Send ``message`` to the host ``host_id``."""

    host_id: str
    message: Any


@dataclass(frozen=True, slots=True)
class StartHost:
    """Start a new host process named ``host_id``."""

    host_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class KillHost:
    """Kill host ``host_id`` at once (SIGKILL); its exit is reported back as an event."""

    host_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Log:
    level: str  # "info" | "warning" | "error"
    text: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The service is finished; the shell exits with ``exit_code``."""

    exit_code: int
    reason: str


Action: TypeAlias = ToClient | ToHost | StartHost | KillHost | Log | Stopped


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class GateConfig:
    """Tunables of the gate; every duration is in seconds."""

    policy: str | None = None
    """Overrides the adapter's default policy for slow calls that declare none."""
    policies: Mapping[str, str] = field(default_factory=dict)
    """Per slow-call policy overrides (by call name)."""
    heartbeat_timeout: float = 3.0
    """No heartbeat for this long (outside a slow call) means the host is hung or dead."""
    fast_call_limit: float = 60.0
    """A fast call running longer than this gets the host killed and restarted."""
    slow_call_deadline: float = 120.0
    """Deadline of a slow call that declares none (and whose policy sets none)."""
    startup_timeout: float = 60.0
    """From host start to ``ready`` (import + setup)."""
    shutdown_timeout: float = 60.0
    """From shutdown request to goodbye before the host is killed."""
    restart_limit: int = 5
    restart_window: float = 60.0
    min_retry_after: float = 0.05
    fail_fast_on_first_start: bool = True
    """If the very first host fails before it is ready, stop (exit non-zero) instead of
    restarting: a broken adapter or library install will not heal by itself."""
    spawn: bool = True
    """Start host processes (``serve``). ``False`` is *attach mode* (``threadhost broker``):
    hosts are started by someone else and attach to the back end; the first ``ready`` from
    an unknown host is adopted when no host is attached, and a dead host is replaced by the
    next one that attaches."""


@dataclass(slots=True)
class _InFlight:
    route: tuple[bytes, ...] | None  # None: a slow call the broker itself started
    client_id: int
    method: str
    started: float
    slow: bool


@dataclass(slots=True)
class _SlowCall:
    name: str
    policy: Policy
    deadline: float
    estimate: float | None = None  # EWMA of measured durations
    last_end: float = float("-inf")
    runs: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass(slots=True)
class _Host:
    host_id: str
    started: float
    pid: int | None = None
    ready: bool = False
    last_heartbeat: float = 0.0
    busy_id: int | None = None
    killed: str | None = None  # reason, once a kill was requested


_EWMA = 0.5


class Gate:
    """The broker's pure decision core. See the module docstring for the rules."""

    def __init__(
        self,
        config: GateConfig,
        make_policy: Callable[[str], Policy],
        now: float,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.info = dict(info or {})  # static facts shown in status (e.g. broker_pid)
        self._make_policy = make_policy
        self.state = GateState.STARTING
        self.host: _Host | None = None
        self._host_seq = 0
        self._next_id = 1
        self._inflight: dict[int, _InFlight] = {}
        self._fast: frozenset[str] = frozenset()
        self._all_calls: frozenset[str] = frozenset()
        self._slow: dict[str, _SlowCall] = {}
        self._startup_queue: deque[str] = deque()
        self._startup_names: tuple[str, ...] = ()
        self._running_slow: tuple[int, str, float, str] | None = None  # id, name, started, why
        self._last_slow_end: float | None = None
        self._adapter: dict[str, Any] = {}
        self.fingerprint = ""
        self._ever_ready = False
        self._restarts: deque[float] = deque()
        self.restart_count = 0
        self.last_restart_reason: str | None = None
        self.failed_reason: str | None = None
        self._stop_deadline: float | None = None
        self._stop_exit_code = 0
        self.started_at = now
        self.generation = 0
        self.counters: dict[str, int] = {
            "served": 0,
            "rejected_busy": 0,
            "rejected_unavailable": 0,
            "errors": 0,
            "crashed": 0,
            "protocol_errors": 0,
        }
        self.last_maintenance: dict[str, Any] | None = None
        self._start_estimate: float | None = None  # measured host start (spawn to ready)
        self.wake_dirty = True
        """Set when an event may have moved the next wake-up earlier (state changes, slow
        calls starting or ending); the shell then ticks and recomputes ``next_wakeup``.
        Plain calls and replies never set it: they only move deadlines later."""

    # ------------------------------------------------------------------ lifecycle

    def start(self, now: float) -> list[Action]:
        """The shell is up: start the first host (attach mode: wait for one)."""
        if not self.config.spawn:
            return [Log("info", "waiting for a host to attach")]
        return [self._new_host(now, "initial start")]

    def _new_host(self, now: float, reason: str) -> StartHost:
        self.wake_dirty = True
        self._host_seq += 1
        host_id = f"h{self._host_seq}"
        self.host = _Host(host_id=host_id, started=now, last_heartbeat=now)
        return StartHost(host_id, reason)

    def shutdown(self, now: float, reason: str = "shutdown requested") -> list[Action]:
        """Begin a graceful shutdown: refuse new calls, let the host finish and tear down."""
        self.wake_dirty = True
        if self.state in (GateState.STOPPING, GateState.STOPPED):
            return []
        self.state = GateState.STOPPING
        self._stop_deadline = now + self.config.shutdown_timeout
        actions: list[Action] = [Log("info", f"stopping: {reason}")]
        host = self.host
        if host is None:
            return [*actions, *self._stopped(1 if self.failed_reason else 0, reason)]
        if host.ready:
            actions.append(ToHost(host.host_id, Shutdown(reason=reason)))
        else:
            actions.append(KillHost(host.host_id, "shutdown before the host was ready"))
            host.killed = "shutdown"
        return actions

    def force_stop(self, now: float, reason: str) -> list[Action]:
        """Second signal: kill the host now and finish."""
        self.wake_dirty = True
        actions: list[Action] = []
        if self.host is not None and self.host.killed is None:
            self.host.killed = reason
            actions.append(KillHost(self.host.host_id, reason))
        actions.extend(self._fail_inflight(ErrorCode.UNAVAILABLE, "service stopped"))
        self._stop_exit_code = 1
        self.state = GateState.STOPPING
        if self.host is None:
            actions.extend(self._stopped(1, reason))
        return actions

    def _stopped(self, exit_code: int, reason: str) -> list[Action]:
        self.state = GateState.STOPPED
        return [Stopped(exit_code, reason)]

    # ------------------------------------------------------------------ client events

    def client_message(self, now: float, route: tuple[bytes, ...], msg: Any) -> list[Action]:
        """A decoded request from a client. Returns what to send where."""
        if type(msg) is Call:
            return self._client_call(now, route, msg)
        if type(msg) is Ping:
            return [ToClient(route, Pong(id=msg.id))]
        if type(msg) is Status:
            return [ToClient(route, StatusReply(id=msg.id, status=self.status(now)))]
        if type(msg) is Describe:
            if not self._adapter:
                return [ToClient(route, self._try_later_reply(now, msg.id))]
            return [
                ToClient(
                    route,
                    Description(id=msg.id, adapter=self._adapter, fingerprint=self.fingerprint),
                )
            ]
        if type(msg) is Maintain:
            return self._manual_maintain(now, route, msg)
        self.counters["protocol_errors"] += 1
        rid = getattr(msg, "id", None)
        return [
            ToClient(
                route,
                ErrorReply(
                    id=rid if isinstance(rid, int) else None,
                    code=ErrorCode.PROTOCOL,
                    message=f"a client may not send {getattr(msg, 'kind', '?')!r} messages",
                ),
            )
        ]

    def _client_call(self, now: float, route: tuple[bytes, ...], call: Call) -> list[Action]:
        if (
            call.fingerprint is not None
            and self.fingerprint
            and call.fingerprint != self.fingerprint
        ):  # a stale proxy learns that first, whatever the state (busy, unknown call...)
            self.counters["errors"] += 1
            return [
                ToClient(
                    route,
                    error_reply(
                        call.id,
                        FingerprintMismatchError(
                            f"the proxy was generated for adapter fingerprint "
                            f"{call.fingerprint[:12]}… but the service runs "
                            f"{self.fingerprint[:12]}…; regenerate it with `threadhost proxy`"
                        ),
                    ),
                )
            ]
        if self.state is not GateState.READY:
            return [ToClient(route, self._try_later_reply(now, call.id))]
        if call.method not in self._fast:
            self.counters["errors"] += 1
            return [ToClient(route, self._unknown_call(call))]
        host = self.host
        assert host is not None  # READY implies a ready host
        hid = self._next_id
        self._next_id = hid + 1
        self._inflight[hid] = _InFlight(route, call.id, call.method, now, False)
        for slow in self._slow.values():
            slow.policy.on_call(now)
        return [
            ToHost(
                host.host_id,
                Call(
                    id=hid,
                    method=call.method,
                    args=call.args,
                    kwargs=call.kwargs,
                    timeout=call.timeout,
                ),
            )
        ]

    def _unknown_call(self, call: Call) -> ErrorReply:
        name = self._adapter.get("adapter", "the adapter")
        if call.method in self._all_calls:
            text = f"{call.method!r} is a slow call of {name}; only the broker runs it"
        else:
            text = f"{name} has no client-callable call {call.method!r}"
        return error_reply(call.id, UnknownCallError(text))

    def _try_later_reply(self, now: float, rid: int) -> ErrorReply:
        # built directly, not through an exception: this is the hot path of a busy service
        state = self.state
        if state is GateState.FAILED:
            self.counters["errors"] += 1
            return ErrorReply(rid, ErrorCode.FAILED, f"service failed: {self.failed_reason}")
        if state in (GateState.STARTUP, GateState.MAINTAINING, GateState.STARTING):
            self.counters["rejected_busy"] += 1
            if self._running_slow is not None:
                _, name, started, _ = self._running_slow
                return ErrorReply(
                    rid,
                    ErrorCode.BUSY,
                    f"busy: slow call {name!r} running for {now - started:.1f}s",
                    self._retry_after(now),
                )
            return ErrorReply(rid, ErrorCode.BUSY, "busy: the service is starting")
        self.counters["rejected_unavailable"] += 1
        if state is GateState.RESTARTING:
            text = f"unavailable: restarting the host ({self.last_restart_reason})"
        else:
            text = "unavailable: the service is shutting down"
        return ErrorReply(rid, ErrorCode.UNAVAILABLE, text, self._restart_estimate(now))

    def _retry_after(self, now: float) -> float | None:
        """Seconds until the running slow call (and any start-up calls queued after it) is
        expected to end, from measured durations; ``None`` without measurements."""
        if self._running_slow is None:
            return None
        _, name, started, _ = self._running_slow
        est = self._slow[name].estimate if name in self._slow else None
        if est is None:
            return None
        remaining = est - (now - started)
        for queued in self._startup_queue:
            q = self._slow.get(queued)
            if q is not None and q.estimate is not None:
                remaining += q.estimate
        return round(max(remaining, self.config.min_retry_after), 3)

    def _restart_estimate(self, now: float) -> float | None:
        """Seconds until a restarting host is expected to be ready: its measured start time
        plus the measured start-up slow calls; ``None`` without measurements."""
        if self._start_estimate is None:
            return None
        elapsed = now - self.host.started if self.host is not None else 0.0
        total = self._start_estimate - elapsed
        for name in self._startup_names:
            est = self._slow[name].estimate if name in self._slow else None
            if est is None:
                return None
            total += est
        return round(max(total, self.config.min_retry_after), 3)

    def _manual_maintain(self, now: float, route: tuple[bytes, ...], msg: Maintain) -> list[Action]:
        self.wake_dirty = True
        def answer(started: bool, reason: str) -> list[Action]:
            return [ToClient(route, MaintainReply(id=msg.id, started=started, reason=reason))]

        if not self._slow:
            if not self._adapter:
                return answer(False, f"not ready: service is {self.state.value}")
            return answer(False, "the adapter declares no slow call")
        name = msg.method or next(iter(self._slow))
        slow = self._slow.get(name)
        if slow is None:
            return answer(False, f"no slow call named {name!r} (have: {', '.join(self._slow)})")
        if self._running_slow is not None:
            return answer(False, f"already running: {self._running_slow[1]!r}")
        if self.state is not GateState.READY:
            return answer(False, f"not ready: service is {self.state.value}")
        gap = getattr(slow.policy, "min_gap", None)
        if gap is not None and self._last_slow_end is not None:
            wait = self._last_slow_end + gap - now
            if wait > 0:
                return answer(False, f"too soon: min_gap {gap:g}s, retry in {wait:.1f}s")
        return [*self._start_slow(now, name, "manual"), *answer(True, f"started {name!r}")]

    # ------------------------------------------------------------------ host events

    def host_message(self, now: float, host_id: str, msg: Any) -> list[Action]:
        """A decoded message from host ``host_id`` (stale hosts are ignored)."""
        host = self.host
        if host is None or host.host_id != host_id:
            if (
                host is None
                and not self.config.spawn
                and type(msg) is Ready
                and self.state not in (GateState.STOPPING, GateState.STOPPED, GateState.FAILED)
            ):
                host = self.host = _Host(host_id=host_id, started=now, last_heartbeat=now)
            else:
                return []
        host.last_heartbeat = now  # any message proves the host's I/O is alive
        kind = type(msg)
        if kind is Result or kind is ErrorReply:
            return self._host_answer(now, msg)
        if kind is Heartbeat:
            host.last_heartbeat = now
            host.busy_id = msg.busy_id
            return []
        if kind is Ready:
            return self._host_ready(now, host, msg)
        if kind is Goodbye:
            return self._host_goodbye(now, host, msg)
        return [Log("warning", f"host {host_id} sent an unexpected {msg.kind!r} message")]

    def _host_ready(self, now: float, host: _Host, msg: Ready) -> list[Action]:
        self.wake_dirty = True
        if host.ready or self.state in (GateState.STOPPING, GateState.STOPPED):
            return []
        host.ready = True
        host.pid = msg.pid
        took = now - host.started
        self._start_estimate = (
            took if self._start_estimate is None
            else _EWMA * took + (1 - _EWMA) * self._start_estimate
        )
        host.last_heartbeat = now
        actions = self._configure_adapter(now, msg)
        if any(isinstance(a, Log) and a.level == "error" for a in actions):
            return [*actions, *self.shutdown(now, "invalid policy")]
        self.state = GateState.STARTUP
        self._startup_queue = deque(self._startup_names)
        actions.append(Log("info", f"host {host.host_id} (pid {msg.pid}) ready"))
        return [*actions, *self._next_startup(now)]

    def _configure_adapter(self, now: float, msg: Ready) -> list[Action]:
        self._adapter = dict(msg.adapter)
        self.fingerprint = msg.fingerprint
        calls = self._adapter.get("calls", [])
        self._fast = frozenset(c["name"] for c in calls if c.get("kind") == "fast")
        self._all_calls = frozenset(c["name"] for c in calls)
        default = self.config.policy or self._adapter.get("default_policy") or "manual"
        self._slow = {}
        actions: list[Action] = []
        for c in calls:
            if c.get("kind") != "slow":
                continue
            name = c["name"]
            spec = self.config.policies.get(name) or (
                c.get("policy") if self.config.policy is None else None
            )
            spec = spec or default
            try:
                policy = self._make_policy(spec)
            except ValueError as exc:
                actions.append(Log("error", f"slow call {name!r}: {exc}"))
                continue
            deadline = (
                c.get("deadline")
                or getattr(policy, "deadline", None)
                or self.config.slow_call_deadline
            )
            self._slow[name] = _SlowCall(name, policy, float(deadline))
            actions.append(Log("info", f"slow call {name!r}: policy {spec!r}"))
        self._startup_names = tuple(
            c["name"] for c in calls if c.get("kind") == "slow" and c.get("startup")
        )
        return actions

    def _next_startup(self, now: float) -> list[Action]:
        if self._startup_queue:
            return self._start_slow(now, self._startup_queue.popleft(), "startup")
        self.state = GateState.READY
        self._ever_ready = True
        for slow in self._slow.values():
            slow.policy.start(now)
        return [Log("info", "gate open: ready for calls")]

    def _start_slow(self, now: float, name: str, why: str) -> list[Action]:
        self.wake_dirty = True
        host = self.host
        assert host is not None
        hid = self._next_id
        self._next_id = hid + 1
        self._inflight[hid] = _InFlight(None, hid, name, now, True)
        self._running_slow = (hid, name, now, why)
        if self.state is GateState.READY:
            self.state = GateState.MAINTAINING
        own = self._slow.get(name)
        if own is not None:  # each slow call's policy measures its own runs
            own.policy.on_slow_started(now)
        return [
            Log("info", f"slow call {name!r} started ({why})"),
            ToHost(host.host_id, Call(id=hid, method=name)),
        ]

    def _host_answer(self, now: float, msg: Result | ErrorReply) -> list[Action]:
        rid = msg.id
        if rid is None:
            self.counters["protocol_errors"] += 1
            text = msg.message if isinstance(msg, ErrorReply) else ""
            return [Log("warning", f"host error without request id: {text}")]
        entry = self._inflight.pop(rid, None)
        if entry is None:
            return []
        if entry.slow:
            return self._slow_finished(now, entry, msg)
        assert entry.route is not None
        if type(msg) is Result:
            self.counters["served"] += 1
            out: Result | ErrorReply = Result(id=entry.client_id, value=msg.value)
        else:
            self.counters["errors"] += 1
            out = dataclasses.replace(msg, id=entry.client_id)
        return [ToClient(entry.route, out)]

    def _slow_finished(
        self, now: float, entry: _InFlight, msg: Result | ErrorReply
    ) -> list[Action]:
        self.wake_dirty = True
        _, name, started, why = self._running_slow or (entry.client_id, entry.method, now, "?")
        self._running_slow = None
        duration = now - started
        self._last_slow_end = now
        slow = self._slow.get(name)
        actions: list[Action] = []
        ok = type(msg) is Result
        if slow is not None:
            slow.runs += 1
            slow.estimate = (
                duration
                if slow.estimate is None
                else _EWMA * duration + (1 - _EWMA) * slow.estimate
            )
            if not ok:
                slow.failures += 1
                slow.last_error = getattr(msg, "message", "")
        if ok:
            self.generation += 1
            actions.append(Log("info", f"slow call {name!r} done in {duration:.2f}s"))
        else:
            actions.append(
                Log(
                    "warning",
                    f"slow call {name!r} failed after {duration:.2f}s: "
                    f"{getattr(msg, 'message', '')} (keeping the previous state)",
                )
            )
        self.last_maintenance = {
            "call": name,
            "reason": why,
            "ok": ok,
            "duration": round(duration, 6),
            "ended_ago_from": now,
        }
        if slow is not None:
            slow.policy.on_slow_finished(now)
            slow.last_end = now
        if self.state is GateState.STARTUP:
            return [*actions, *self._next_startup(now)]
        if self.state is GateState.MAINTAINING:
            self.state = GateState.READY
        return actions

    def _host_goodbye(self, now: float, host: _Host, msg: Goodbye) -> list[Action]:
        self.wake_dirty = True
        if not self.config.spawn:  # an attached host's goodbye is its exit
            how = "said goodbye" if msg.ok else f"failed: {msg.message}"
            return self.host_exited(now, host.host_id, how)
        if msg.ok:
            return [Log("info", f"host {host.host_id} said goodbye")]
        level = "error"
        text = f"host {host.host_id} failed: {msg.message}"
        if not self._ever_ready and self.config.fail_fast_on_first_start:
            self.failed_reason = msg.message
            return [Log(level, text), *self._stop_after_host(1)]
        return [Log(level, text)]

    def _stop_after_host(self, exit_code: int) -> list[Action]:
        self._stop_exit_code = exit_code
        self.state = GateState.STOPPING
        return []

    def host_exited(self, now: float, host_id: str, how: str) -> list[Action]:
        """The host process ``host_id`` is gone (``how``: e.g. "exit code 0", "signal 6")."""
        self.wake_dirty = True
        host = self.host
        if host is None or host.host_id != host_id:
            return []
        self.host = None
        if self.state is GateState.STOPPING:
            failed = self._fail_inflight(ErrorCode.UNAVAILABLE, "service stopped")
            return [*failed, *self._stopped(self._stop_exit_code, f"host {how}")]
        reason = host.killed or f"host process exited ({how})"
        actions: list[Action] = [Log("error", f"host {host_id} died: {reason}")]
        actions.extend(
            self._fail_inflight(
                ErrorCode.CRASHED, f"the host died during the call ({reason}); outcome unknown"
            )
        )
        self._running_slow = None
        self._startup_queue.clear()
        if not self._ever_ready and self.config.fail_fast_on_first_start and self.config.spawn:
            self.failed_reason = reason
            return [*actions, *self._stopped(1, f"the host failed before it was ready: {reason}")]
        return [*actions, *self._restart(now, reason)]

    def _fail_inflight(self, code: ErrorCode, text: str) -> list[Action]:
        actions: list[Action] = []
        for entry in self._inflight.values():
            if entry.route is None:
                continue
            self.counters["crashed" if code is ErrorCode.CRASHED else "errors"] += 1
            actions.append(
                ToClient(entry.route, ErrorReply(id=entry.client_id, code=code, message=text))
            )
        self._inflight.clear()
        return actions

    def _restart(self, now: float, reason: str) -> list[Action]:
        window = self.config.restart_window
        while self._restarts and self._restarts[0] <= now - window:
            self._restarts.popleft()
        if len(self._restarts) >= self.config.restart_limit:
            self.state = GateState.FAILED
            self.failed_reason = (
                f"{len(self._restarts) + 1} host failures within {window:g}s "
                f"(limit {self.config.restart_limit}); last: {reason}"
            )
            return [Log("error", f"giving up: {self.failed_reason}")]
        self._restarts.append(now)
        self.restart_count += 1
        self.last_restart_reason = reason
        self.state = GateState.RESTARTING
        if not self.config.spawn:
            return [Log("info", "waiting for a host to attach")]
        return [self._new_host(now, reason)]

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Action]:
        """The clock reached a wake-up time (or any loop turn): deadlines and policies."""
        actions: list[Action] = []
        host = self.host
        state = self.state
        if host is not None and host.killed is None:
            why = self._liveness_problem(now, host)
            if why is not None:
                host.killed = why
                if state is GateState.STOPPING:
                    self._stop_exit_code = 1
                actions.append(KillHost(host.host_id, why))
                if not self.config.spawn:  # not ours to kill: consider it gone
                    actions.extend(self.host_exited(now, host.host_id, why))
                return actions
        if state is GateState.READY and self._running_slow is None:
            due = [
                (slow.last_end, name, reason)
                for name, slow in self._slow.items()
                if (reason := slow.policy.poll(now)) is not None
            ]
            if due:  # one at a time; the one that waited longest goes first (no starvation)
                _, name, reason = min(due, key=lambda d: (d[0], d[1]))
                actions.extend(self._start_slow(now, name, reason))
        return actions

    def _liveness_problem(self, now: float, host: _Host) -> str | None:
        cfg = self.config
        if self.state is GateState.STOPPING:
            if self._stop_deadline is not None and now >= self._stop_deadline:
                return f"no goodbye within the shutdown timeout ({cfg.shutdown_timeout:g}s)"
            return None
        if not host.ready:
            if now - host.started > cfg.startup_timeout:
                return f"not ready within the start-up timeout ({cfg.startup_timeout:g}s)"
            return None
        if self._running_slow is not None:
            _, name, started, _ = self._running_slow
            deadline = self._slow[name].deadline if name in self._slow else cfg.slow_call_deadline
            if now - started > deadline:
                return f"slow call {name!r} ran past its deadline ({deadline:g}s)"
            return None  # heartbeats may stop while a GIL-holding slow call runs
        if now - host.last_heartbeat > cfg.heartbeat_timeout:
            return f"no heartbeat for {cfg.heartbeat_timeout:g}s"
        oldest = self._oldest_fast(now)
        if oldest is not None and now - oldest.started > cfg.fast_call_limit:
            return f"fast call {oldest.method!r} hung for more than {cfg.fast_call_limit:g}s"
        return None

    def _oldest_fast(self, now: float) -> _InFlight | None:
        for entry in self._inflight.values():  # insertion order: oldest first
            if not entry.slow:
                return entry
        return None

    def next_wakeup(self, now: float) -> float:
        """Monotonic time of the next event the gate must be ticked for."""
        cfg = self.config
        times = [now + 1.0]
        host = self.host
        if host is not None and host.killed is None:
            if self.state is GateState.STOPPING and self._stop_deadline is not None:
                times.append(self._stop_deadline)
            elif not host.ready:
                times.append(host.started + cfg.startup_timeout)
            elif self._running_slow is not None:
                _, name, started, _ = self._running_slow
                slow = self._slow.get(name)
                times.append(started + (slow.deadline if slow else cfg.slow_call_deadline))
            else:
                times.append(host.last_heartbeat + cfg.heartbeat_timeout)
                oldest = self._oldest_fast(now)
                if oldest is not None:
                    times.append(oldest.started + cfg.fast_call_limit)
        if self.state is GateState.READY and self._running_slow is None:
            for slow in self._slow.values():
                t = slow.policy.next_wakeup(now)
                if t is not None:
                    times.append(t)
        return min(times)

    # ------------------------------------------------------------------ introspection

    def status(self, now: float) -> dict[str, Any]:
        """A JSON-able snapshot for ``threadhost status``."""
        host = self.host
        out: dict[str, Any] = {
            **self.info,
            "state": self.state.value,
            "adapter": self._adapter.get("adapter"),
            "fingerprint": self.fingerprint or None,
            "uptime": round(now - self.started_at, 3),
            "host_pid": host.pid if host is not None else None,
            "host_pids": [host.pid] if host is not None and host.pid is not None else [],
            "host_id": host.host_id if host is not None else None,
            "generation": self.generation,
            "restart_count": self.restart_count,
            "last_restart_reason": self.last_restart_reason,
            "failed_reason": self.failed_reason,
            "in_flight": sum(1 for e in self._inflight.values() if not e.slow),
            "counters": dict(self.counters),
        }
        if self._running_slow is not None:
            _, name, started, why = self._running_slow
            est = self._slow[name].estimate if name in self._slow else None
            out["maintenance"] = {
                "call": name,
                "reason": why,
                "elapsed": round(now - started, 3),
                "expected": round(est, 3) if est is not None else None,
            }
        if self.last_maintenance is not None:
            last = dict(self.last_maintenance)
            last["ended_ago"] = round(now - last.pop("ended_ago_from"), 3)
            out["last_maintenance"] = last
        out["slow_calls"] = {
            name: {
                "runs": s.runs,
                "failures": s.failures,
                "estimate": round(s.estimate, 3) if s.estimate is not None else None,
                "deadline": s.deadline,
                "last_error": s.last_error,
            }
            for name, s in self._slow.items()
        }
        return out
