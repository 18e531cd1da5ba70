"""The gate: the broker's pure decision core for a pool of hosts (no sockets, no clock).

The shell feeds it events — a client message, a host message, a host process exited, the
clock reached a wake-up time, a shutdown signal — each with ``now`` (monotonic seconds),
and carries out the actions it returns (:mod:`threadhost.gate.actions`). The rules live in
small parts, each unit-tested on its own: :mod:`~threadhost.gate.routing` (admission and
routing), :mod:`~threadhost.gate.supervision` (liveness, the restart budget),
:mod:`~threadhost.gate.maintenance` (policies, measured durations, the staggered rollout),
:mod:`~threadhost.gate.states` (the transition tables), :mod:`~threadhost.gate.pool` (the
host records). This class wires them to the protocol's messages.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgspec.structs

from threadhost.errors import FingerprintMismatchError, ProtocolError, UnknownCallError
from threadhost.gate.actions import Action, KillHost, Log, StartHost, Stopped, ToClient, ToHost
from threadhost.gate.attach import Nudges, adoption_refused
from threadhost.gate.config import GateConfig
from threadhost.gate.maintenance import ManualBudget, Rollout, Schedule
from threadhost.gate.measure import Estimate
from threadhost.gate.poison import Quarantine, call_key
from threadhost.gate.pool import FastCall, HostRecord, Pool, SlowRun
from threadhost.gate.report import (
    ago,
    halted_view,
    host_view,
    rollout_view,
    running_view,
    slow_calls_view,
)
from threadhost.gate.routing import FastCallStats, Refusal, is_stuck, pick, refusal
from threadhost.gate.states import (
    SERVICE_TRANSITIONS,
    GateState,
    HostState,
    advance,
    service_state,
)
from threadhost.gate.supervision import RestartBudget, liveness_deadline, liveness_problem
from threadhost.policy import Policy
from threadhost.protocol import (
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

__all__ = ["OTHER_METHOD", "Gate", "Observer"]

Observer = Callable[[str, str, str, float], None]
"""Told each outcome: (``"call"`` or ``"slow"``, method, outcome — ``ok`` or an error code —,
seconds from forwarding to the answer, 0 for calls refused at once). For metrics."""
OTHER_METHOD = "(other)"
"""The method label of calls to names the adapter does not declare (bounded labels)."""

_CODES = {"busy": ErrorCode.BUSY, "unavailable": ErrorCode.UNAVAILABLE,
          "failed": ErrorCode.FAILED}
_COUNTER = {"busy": "rejected_busy", "unavailable": "rejected_unavailable", "failed": "errors"}
_READY = HostState.READY


def _tenths_up(seconds: float) -> float:
    """``seconds`` rounded up to a tenth (float noise first rounded away: 0.3 stays 0.3)."""
    return math.ceil(round(seconds * 10, 6)) / 10


class Gate:
    """The broker's decision core. See the package docstring for the rules."""

    def __init__(
        self,
        config: GateConfig,
        make_policy: Callable[[str], Policy],
        now: float,
        info: Mapping[str, Any] | None = None,
        token: str = "broker",
        observer: Observer | None = None,
    ) -> None:
        self.config = config
        self.info = dict(info or {})  # static facts shown in status (e.g. broker_pid)
        self.token = token  # this broker run's instance token, sent in broker heartbeats
        self._observe = observer  # told every call's outcome (metrics); None: nobody
        self._make_policy = make_policy
        self.state = GateState.STARTING
        self.pool = Pool(config.hosts if not config.spawn else config.hosts or 1)
        self._next_id = 1
        self._adapter: dict[str, Any] = {}
        self.fingerprint = ""
        self._fast: frozenset[str] = frozenset()
        self._all_calls: frozenset[str] = frozenset()
        self._schedule = Schedule()
        self._rollout: Rollout | None = None
        self._round = 0
        self._ever_ready = False
        self._failed = False
        self._stopping = False
        self._stopped = False
        self._budget = RestartBudget(config.restart_limit, config.restart_window)
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
            "rejected_poisoned": 0,
        }
        self.last_maintenance: dict[str, Any] | None = None
        # fast calls answered by a host and their summed forward-to-answer time (status
        # `call_seconds`: a client's mean latency over an interval is Δsum / Δcount)
        self.call_seconds: dict[str, float] = {"count": 0, "sum": 0.0}
        self._start_estimate = Estimate()  # measured host start (spawn/attach to ready)
        self._fast_stats = FastCallStats(config.fast_call_limit, config.route_away_after)
        self._beat_at = now  # next broker -> host heartbeat
        self._nudges = Nudges(config.heartbeat_interval)  # answers to unknown hosts
        self._refused: set[str] = set()  # attached hosts refused (logged once)
        self._quarantine = Quarantine(config.poison_kills, config.poison_window)
        self._halted: dict[str, Any] | None = None  # the last halted maintenance round
        self._manual = ManualBudget(config.maintain_budget)  # rate limit of `maintain`
        self._dirty = True

    # ------------------------------------------------------------------ read-only views

    @property
    def needs_tick(self) -> bool:
        """An event may have moved the next wake-up earlier: tick and recompute it.
        Plain calls and replies never set it (they only move deadlines later)."""
        return self._dirty

    @property
    def restart_count(self) -> int:
        return self._budget.spent

    @property
    def route_away_after(self) -> float:
        return self._fast_stats.route_away_after

    # ------------------------------------------------------------------ lifecycle

    def start(self, now: float) -> list[Action]:
        """The shell is up: start the pool's hosts (attach mode: wait for them)."""
        self._dirty = True
        if not self.config.spawn:
            return [Log("info", "waiting for hosts to attach")]
        return [self._spawn(now, slot, "initial start") for slot in range(self.config.hosts or 1)]

    def _spawn(self, now: float, slot: int, reason: str) -> StartHost:
        self._dirty = True
        host = self.pool.add(self.pool.next_id(), slot, now)
        return StartHost(host.host_id, reason, slot)

    def shutdown(self, now: float, reason: str = "shutdown requested") -> list[Action]:
        """Begin a graceful shutdown: refuse new calls, let hosts finish and tear down."""
        self._dirty = True
        if self._stopping or self._stopped:
            return []
        self._stopping = True
        self._stop_deadline = now + self.config.shutdown_timeout
        actions: list[Action] = [Log("info", f"stopping: {reason}")]
        self._rollout = None
        if not len(self.pool):
            actions.extend(self._finish(1 if self.failed_reason else 0, reason))
            return actions
        for host in self.pool:
            actions.extend(self._stop_host(host, reason))
        self._sync(now)
        return actions

    def _stop_host(self, host: HostRecord, reason: str) -> list[Action]:
        if host.killed is not None or host.state is HostState.STOPPING:
            return []
        if host.state is HostState.STARTING:
            host.killed = "shutdown before the host was ready"
            return [KillHost(host.host_id, host.killed)]
        host.move(HostState.STOPPING)
        return [ToHost(host.host_id, Shutdown(reason=reason))]

    def force_stop(self, now: float, reason: str) -> list[Action]:
        """Second signal: kill every host now and finish."""
        self._dirty = True
        self._stopping = True
        self._stop_exit_code = 1
        self._rollout = None
        actions: list[Action] = []
        for host in self.pool:
            if host.killed is None:
                host.killed = reason
                actions.append(KillHost(host.host_id, reason))
            actions.extend(self._fail_calls(host, ErrorCode.UNAVAILABLE, "service stopped"))
        if not len(self.pool):
            actions.extend(self._finish(1, reason))
        else:
            self._sync(now)
        return actions

    def _finish(self, exit_code: int, reason: str) -> list[Action]:
        self._stopping = True
        self._stopped = True
        self.state = advance(SERVICE_TRANSITIONS, self.state, GateState.STOPPED)
        return [Stopped(exit_code, reason)]

    def _sync(self, now: float) -> None:
        """Move the service state to what the hosts call for (checked by the table)."""
        new = service_state(
            self.state,
            (h.state for h in self.pool if h.killed is None),
            ever_ready=self._ever_ready,
            failed=self._failed,
            stopping=self._stopping,
            stopped=self._stopped,
        )
        if new is self.state:
            return
        old = self.state
        self.state = advance(SERVICE_TRANSITIONS, old, new)
        self._dirty = True
        if new is GateState.READY and old in (
            GateState.STARTING, GateState.STARTUP, GateState.RESTARTING
        ):
            self._ever_ready = True
            self._schedule.start_policies(now)  # a fresh state: countdowns start now

    # ------------------------------------------------------------------ client events

    def client_message(self, now: float, route: tuple[bytes, ...], msg: Any) -> list[Action]:
        """A decoded request from a client. Returns what to send where."""
        kind = type(msg)
        if kind is Call:
            actions = self._client_call(now, route, msg)
            if self._observe is not None and type(actions[0]) is ToClient:  # refused at once
                method = msg.method if msg.method in self._fast else OTHER_METHOD
                self._observe("call", method, actions[0].message.code.value, 0.0)
            return actions
        if kind is Ping:
            return [ToClient(route, Pong(id=msg.id))]
        if kind is Status:
            return [ToClient(route, StatusReply(id=msg.id, status=self.status(now)))]
        if kind is Describe:
            if not self._adapter:
                return [ToClient(route, self._refuse(now, msg.id))]
            return [ToClient(route, Description(id=msg.id, adapter=self._adapter,
                                                fingerprint=self.fingerprint))]
        if kind is Maintain:
            return self._manual_maintain(now, route, msg)
        self.counters["protocol_errors"] += 1
        rid = getattr(msg, "id", None)
        return [ToClient(route, ErrorReply(
            id=rid if isinstance(rid, int) else None,
            code=ErrorCode.PROTOCOL,
            message=f"a client may not send {getattr(msg, 'kind', '?')!r} messages",
        ))]

    def bad_client_message(self, route: tuple[bytes, ...], exc: ProtocolError) -> list[Action]:
        """A client sent something that does not decode: a typed ``protocol`` error."""
        self.counters["protocol_errors"] += 1
        return [ToClient(route, error_reply(exc.request_id, exc))]

    def bad_host_message(self, host_id: str, exc: ProtocolError) -> list[Action]:
        """A host sent something that does not decode: logged and dropped."""
        self.counters["protocol_errors"] += 1
        return [Log("warning", f"dropped a bad message from host {host_id}: {exc}")]

    def _client_call(self, now: float, route: tuple[bytes, ...], call: Call) -> list[Action]:
        if call.fingerprint is not None and self.fingerprint and (
            call.fingerprint != self.fingerprint
        ):  # a stale proxy learns that first, whatever the state (busy, unknown call...)
            self.counters["errors"] += 1
            return [ToClient(route, error_reply(call.id, FingerprintMismatchError(
                f"the proxy was generated for adapter fingerprint {call.fingerprint[:12]}… "
                f"but the service runs {self.fingerprint[:12]}…; regenerate it with "
                "`threadhost proxy`")))]
        state = self.state
        if state is not GateState.READY and state is not GateState.MAINTAINING:
            return [ToClient(route, self._refuse(now, call.id))]
        if call.method not in self._fast:
            self.counters["errors"] += 1
            return [ToClient(route, self._unknown_call(call))]
        if call.method in self._quarantine.methods and self._quarantine.is_poisoned(
                key := call_key(call.method, call.args, call.kwargs)):
            self.counters["rejected_poisoned"] += 1
            q = self._quarantine.poisoned[key]
            return [ToClient(route, ErrorReply(
                call.id, ErrorCode.POISONED,
                f"poisoned: this {call.method!r} call killed {q['kills']} hosts within "
                f"{self._quarantine.window:g}s; refused until the service restarts"))]
        host = pick(self.pool.hosts.values(), now, self._fast_stats.route_away_after)
        if host is None:
            return [ToClient(route, self._refuse(now, call.id))]
        hid = self._next_id
        self._next_id = hid + 1
        host.calls[hid] = FastCall(route, call.id, call.method, now, call.args, call.kwargs)
        host.last_used = hid
        self._schedule.on_call(now)
        return [ToHost(host.host_id, Call(id=hid, method=call.method, args=call.args,
                                          kwargs=call.kwargs, timeout=call.timeout))]

    def _unknown_call(self, call: Call) -> ErrorReply:
        name = self._adapter.get("adapter", "the adapter")
        if call.method in self._all_calls:
            text = f"{call.method!r} is a slow call of {name}; only the broker runs it"
        else:
            text = f"{name} has no client-callable call {call.method!r}"
        return error_reply(call.id, UnknownCallError(text))

    def _refuse(self, now: float, rid: int) -> ErrorReply:
        # built directly, not through an exception: this is the hot path of a busy service
        what, text, retry = self._refusal(now)
        self.counters[_COUNTER[what]] += 1
        return ErrorReply(rid, _CODES[what], text, retry)

    def _refusal(self, now: float) -> Refusal:
        """Why no host can take a call now, and when to try again."""
        return refusal(
            now, self.pool, self.state,
            route_away_after=self._fast_stats.route_away_after,
            expected_free=lambda h: self._expected_free(h, now),
            failed_reason=self.failed_reason,
            restart_reason=self.last_restart_reason,
            min_retry_after=self.config.min_retry_after,
        )

    def _expected_free(self, host: HostRecord, now: float) -> float | None:
        """Seconds until ``host`` is expected to take calls, from measurements, or None."""
        sched = self._schedule
        if host.state is HostState.STARTING:
            start = self._start_estimate.remaining(now - host.started)
            rest = sched.startup_total(sched.startup_names)
            return None if start is None or rest is None else start + rest
        if host.slow is not None:
            left = sched.remaining(host.slow.name, now - host.slow.started)
            rest = sched.startup_total(host.startup_queue) if host.slow.startup else 0.0
            return None if left is None or rest is None else left + rest
        if host.state is HostState.DRAINING and self._rollout is not None:
            return sched.remaining(self._rollout.name, 0.0)
        return None

    def _manual_maintain(self, now: float, route: tuple[bytes, ...], msg: Maintain
                         ) -> list[Action]:
        """Start the slow call ``msg`` names, or say why not — and, when the refusal has a
        known end, when to ask again (``retry_after``, rounded up to a tenth of a second)."""
        self._dirty = True

        def answer(started: bool, reason: str, retry: float | None = None) -> list[Action]:
            if retry is not None:
                retry = _tenths_up(max(retry, self.config.min_retry_after))
            return [ToClient(route, MaintainReply(id=msg.id, started=started, reason=reason,
                                                  retry_after=retry))]

        calls = self._schedule.calls
        if not calls:
            if not self._adapter:
                return answer(False, f"not ready: service is {self.state.value}",
                              self._until_serving(now))
            return answer(False, "the adapter declares no slow call")
        name = msg.method or next(iter(calls))
        slow = calls.get(name)
        if slow is None:
            return answer(False, f"no slow call named {name!r} (have: {', '.join(calls)})")
        gap = getattr(slow.policy, "min_gap", None)
        if self._rollout is not None:
            return answer(False, f"already running: {self._rollout.name!r}",
                          self._after_round(now, gap))
        if self.state is not GateState.READY:
            return answer(False, f"not ready: service is {self.state.value}",
                          self._until_serving(now))
        last = self._schedule.last_slow_end
        gap_left = 0.0 if gap is None or last is None else last + gap - now
        wait = self._manual.wait(now)
        if gap_left > 0 and gap_left >= wait:  # of two holds, the longer one says when
            left = _tenths_up(gap_left)
            return answer(False, f"too soon: min_gap {gap:g}s, retry in {left:.1f}s", left)
        if wait > 0:
            left = _tenths_up(wait)
            return answer(False, f"rate-limited: manual maintenance may keep the service busy "
                                 f"{self._manual.share:.0%} of the time at most; retry in "
                                 f"{left:.1f}s", left)
        actions = self._begin_rollout(now, name, "manual", manual=True)
        self._sync(now)
        assert self._rollout is not None
        n = len(self._rollout.pending) + len(self._rollout.active) + len(self._rollout.done)
        return [*actions, *answer(True, f"{name!r} on {n} host{'s' if n != 1 else ''}")]

    def _until_serving(self, now: float) -> float | None:
        """A ``maintain`` refused because the service is not ready: when a host is
        expected to take calls (as a refused call's ``retry_after``), or None."""
        return self._refusal(now)[2]

    def _after_round(self, now: float, gap: float | None) -> float | None:
        """A ``maintain`` refused because a round runs: the round's expected rest, plus
        what will hold the next request back after it (the rate limit's pause after a
        manual round, the requested call's ``min_gap``); None when nothing is measured."""
        rollout = self._rollout
        assert rollout is not None
        call = self._schedule.calls.get(rollout.name)
        rest = rollout.expected_rest(
            now, self.pool.hosts, None if call is None else call.estimate.value,
            self.config.max_maintaining)
        if rest is None:
            return None
        after = self._manual.pause(now - rollout.started + rest) if rollout.manual else 0.0
        return rest + max(after, gap or 0.0)

    # ------------------------------------------------------------------ host events

    def host_message(self, now: float, host_id: str, msg: Any) -> list[Action]:
        """A decoded message from host ``host_id`` (either of its sockets)."""
        host = self.pool.get(host_id)
        kind = type(msg)
        if host is None or host.killed is not None:
            if host is None and not self.config.spawn:
                return self._stranger(now, host_id, msg)
            return []
        host.last_heartbeat = now  # any message proves the host's I/O is alive
        if kind is Result or kind is ErrorReply:
            return self._host_answer(now, host, msg)
        if kind is Heartbeat:
            if host.state is HostState.STARTING:  # busy_id 0 before ready: waiting for the
                waiting = msg.busy_id == 0        # previous instance of its slot to exit
                if host.waiting and not waiting:
                    host.started = now  # its start (and start-up timeout) begins now
                host.waiting = waiting
            return []
        if kind is Ready:
            return self._host_ready(now, host, msg)
        if kind is Goodbye:
            return self._host_goodbye(now, host, msg)
        return [Log("warning", f"host {host_id} sent an unexpected {msg.kind!r} message")]

    def _stranger(self, now: float, host_id: str, msg: Any) -> list[Action]:
        """Attach mode: a message from a host not in the pool."""
        closing = self.state.value if self._stopping or self._failed else None
        if type(msg) is Ready:
            why = adoption_refused(
                closing=closing, pool_fingerprint=self.fingerprint,
                fingerprint=msg.fingerprint, adapter=self._adapter, attached=len(self.pool),
                room=self.pool.free_slot() is not None, limit=self.config.hosts)
            if why is None:
                self._refused.discard(host_id)
                slot = self.pool.free_slot()
                assert slot is not None
                host = self.pool.add(host_id, slot, now)
                self._dirty = True
                return [Log("info", f"adopted attached host {host_id} (pid {msg.pid})"),
                        *self._host_ready(now, host, msg)]
            if host_id in self._refused:
                return []
            self._refused.add(host_id)
            return [Log("warning", f"refused attached host {host_id} (pid {msg.pid}): {why}")]
        if (type(msg) is Heartbeat and host_id not in self._refused and closing is None
                and self._nudges.due(host_id, now)):  # a (new) broker is here: say ready
            return [ToHost(host_id, self._beat(stranger=True), heartbeat_socket=True)]
        return []

    def _beat(self, *, stranger: bool = False) -> Heartbeat:
        """A broker heartbeat; ``stranger``: to a host not adopted, "send ready" (R52)."""
        return Heartbeat(host_id=self.token, pid=int(self.info.get("broker_pid", 0)),
                         stranger=stranger)

    def _host_ready(self, now: float, host: HostRecord, msg: Ready) -> list[Action]:
        if host.state is not HostState.STARTING or self._stopping:
            return []  # a second ready (re-announcement) from a host we know: nothing new
        self._dirty = True
        actions: list[Action] = []
        if not self._adapter:
            actions.extend(self._configure_adapter(now, msg))
            if self._stopping:
                return actions
        elif msg.fingerprint != self.fingerprint:
            host.killed = (f"adapter fingerprint {msg.fingerprint[:12]}… differs from the "
                           f"pool's {self.fingerprint[:12]}…")
            return [Log("error", f"host {host.host_id}: {host.killed}"),
                    KillHost(host.host_id, host.killed)]
        host.pid = msg.pid
        self._start_estimate.add(now - host.started)
        host.move(HostState.STARTUP)
        host.startup_queue = deque(self._schedule.startup_names)
        actions.append(Log("info", f"host {host.host_id} (pid {msg.pid}) ready"))
        actions.extend(self._next_startup(now, host))
        self._sync(now)
        return actions

    def _configure_adapter(self, now: float, msg: Ready) -> list[Action]:
        self._adapter = dict(msg.adapter)
        self.fingerprint = msg.fingerprint
        calls = self._adapter.get("calls", [])
        self._fast = frozenset(c["name"] for c in calls if c.get("kind") == "fast")
        self._all_calls = frozenset(c["name"] for c in calls)
        cfg = self.config
        self._schedule, errors = Schedule.from_description(
            self._adapter, policy=cfg.policy, policies=cfg.policies,
            default_deadline=cfg.slow_call_deadline, make_policy=self._make_policy)
        actions: list[Action] = [Log("error", e) for e in errors]
        actions += [Log("info", f"slow call {c.name!r}: policy {c.spec!r}")
                    for c in self._schedule.calls.values()]
        if cfg.spawn and (cfg.hosts or 1) > 1 and not self._adapter.get("replicable", False):
            errors.append("not replicable")
            actions.append(Log("error", f"{self._adapter.get('adapter')} is not replicable: "
                                        f"it cannot run with {cfg.hosts} hosts"))
        if errors:
            self.failed_reason = errors[-1]
            self._stop_exit_code = 1
            actions.extend(self.shutdown(now, "invalid configuration"))
        return actions

    def _next_startup(self, now: float, host: HostRecord) -> list[Action]:
        if host.startup_queue:
            name = host.startup_queue.popleft()
            return self._send_slow(now, host, name, "startup", startup=True)
        host.move(_READY)
        host.epoch = self._round  # it read the newest state there is
        return [Log("info", f"host {host.host_id} open for calls")]

    def _send_slow(self, now: float, host: HostRecord, name: str, why: str, *, startup: bool
                   ) -> list[Action]:
        self._dirty = True
        rid = self._next_id
        self._next_id = rid + 1
        host.slow = SlowRun(rid, name, now, why, startup)
        return [Log("info", f"slow call {name!r} started on {host.host_id} ({why})"),
                ToHost(host.host_id, Call(id=rid, method=name))]

    def _host_answer(self, now: float, host: HostRecord, msg: Result | ErrorReply
                     ) -> list[Action]:
        rid = msg.id
        if rid is None:
            self.counters["protocol_errors"] += 1
            text = msg.message if isinstance(msg, ErrorReply) else ""
            return [Log("warning", f"host error without request id: {text}")]
        entry = host.calls.pop(rid, None)
        if entry is None:
            slow = host.slow
            if slow is not None and slow.rid == rid:
                return self._slow_finished(now, host, slow, msg)
            return []
        self._fast_stats.record(now - entry.started)
        self.call_seconds["count"] += 1
        self.call_seconds["sum"] += now - entry.started
        if type(msg) is ErrorReply and msg.code is ErrorCode.UNFIT:  # its verify failed
            reason = f"host {host.host_id} is unfit: {msg.message}"
            self.counters["rejected_unavailable"] += 1
            out_unfit = ErrorReply(entry.client_id, ErrorCode.UNAVAILABLE,
                                   f"unavailable: {reason}; the call did not run")
            if self._observe is not None:
                self._observe("call", entry.method, "unavailable", now - entry.started)
            retired: list[Action] = [ToClient(entry.route, out_unfit)]
            if host.killed is None:
                retired.extend(self._retire(now, host, reason))
            self._sync(now)
            return retired
        if type(msg) is Result:
            self.counters["served"] += 1
            out: Result | ErrorReply = Result(id=entry.client_id, value=msg.value)
        else:
            self.counters["errors"] += 1
            out = msgspec.structs.replace(msg, id=entry.client_id)
        if self._observe is not None:
            outcome = msg.code.value if isinstance(msg, ErrorReply) else "ok"
            self._observe("call", entry.method, outcome, now - entry.started)
        actions: list[Action] = [ToClient(entry.route, out)]
        if host.state is HostState.DRAINING and not host.calls and self._rollout is not None:
            actions.extend(self._begin_host_maintenance(now, host))
            self._sync(now)
        return actions

    def _slow_finished(self, now: float, host: HostRecord, slow: SlowRun,
                       msg: Result | ErrorReply) -> list[Action]:
        self._dirty = True
        host.slow = None
        duration = now - slow.started
        ok = type(msg) is Result
        error = None if ok else getattr(msg, "message", "")
        call = self._schedule.calls.get(slow.name)
        if call is not None:
            call.measure(duration, error)
        record = {"call": slow.name, "reason": slow.why, "ok": ok,
                  "duration": round(duration, 6), "ended_ago_from": now}
        host.last_maintenance = record
        actions: list[Action] = []
        unfit = not ok and getattr(msg, "code", None) is ErrorCode.UNFIT
        if self._observe is not None:
            self._observe("slow", slow.name, "ok" if ok else "unfit" if unfit else "error",
                          duration)
        if ok:
            self.generation += 1
            host.generation += 1
            if not slow.startup:
                host.epoch = self._rollout.round if self._rollout is not None else self._round
            actions.append(Log("info", f"slow call {slow.name!r} done on {host.host_id} "
                                       f"in {duration:.2f}s"))
        if host.state is HostState.STOPPING:
            pass  # shut down meanwhile: it only finishes what it runs
        elif slow.startup:
            self._schedule.last_slow_end = now  # min_gap counts from any slow call
            if ok:
                actions.extend(self._next_startup(now, host))
            else:  # a start-up that fails is not ready: this host never gets a call
                actions.extend(self._retire(now, host, f"start-up slow call {slow.name!r} failed "
                                                  f"on {host.host_id}: {error}"))
        else:
            actions.extend(self._maintenance_answered(now, host, slow, ok, unfit, error))
        self._sync(now)
        return actions

    def _maintenance_answered(self, now: float, host: HostRecord, slow: SlowRun, ok: bool,
                              unfit: bool, error: str | None) -> list[Action]:
        """A maintenance slow call was answered. Fine: back in rotation, the round goes on.
        ``verify`` failed (``unfit``): the host is replaced. Failed in a pool: the round
        halts — the other hosts keep the state they have — and the host is replaced. Failed
        with one host whose ``verify`` passed: it keeps serving its previous state."""
        rollout = self._rollout
        actions: list[Action] = []
        alone = sum(1 for h in self.pool if h.killed is None) <= 1
        if ok or (not unfit and alone):
            if not ok:
                actions.append(Log("warning", f"slow call {slow.name!r} failed on "
                                              f"{host.host_id}: {error} (verify passed: "
                                              "keeping the previous state)"))
            host.move(_READY)
            if rollout is not None:
                rollout.host_done(host.host_id, ok)
                actions.extend(self._advance_rollout(now))
            return actions
        if unfit:  # the host's message says it: "verify failed after 'NAME': ..."
            reason = f"{error} (on {host.host_id})"
        else:
            reason = f"slow call failed on {host.host_id} after {slow.name!r}: {error}"
        if rollout is not None:  # first: nothing may go on to the next host
            actions.extend(self._halt(now, rollout, host.host_id, reason))
        actions.extend(self._retire(now, host, reason))
        return actions

    def _retire(self, now: float, host: HostRecord, reason: str) -> list[Action]:
        """Take ``host`` out of service for good: killed, and replaced once it exited
        (which counts against the restart budget)."""
        host.killed = reason
        self.last_restart_reason = reason
        actions: list[Action] = [Log("error", f"host {host.host_id} is not fit to serve: "
                                              f"{reason}")]
        if self.config.spawn:
            return [*actions, KillHost(host.host_id, reason)]
        # attached: not ours to kill; ask it to stop, and it is gone for us now (a departure
        # we asked for: the restart budget, which is about deaths, is not charged)
        host.left = True
        actions.append(ToHost(host.host_id, Shutdown(reason=f"not fit to serve: {reason}")))
        return [*actions, *self.host_exited(now, host.host_id, reason)]

    def _halt(self, now: float, rollout: Rollout, host_id: str, reason: str) -> list[Action]:
        """Stop a maintenance round: hosts not yet maintained keep their state; the policy
        may try again after a back-off."""
        rollout.host_done(host_id, False)
        untouched = list(rollout.pending)
        rollout.pending.clear()
        rollout.halted = reason
        wait = self._schedule.hold(rollout.name, now, self.config.halt_backoff,
                                   self.config.halt_backoff_max)
        self._halted = {"state": "halted", "call": rollout.name, "host": host_id,
                        "reason": reason, "untouched": untouched, "at": now,
                        "retry_at": now + wait}
        actions: list[Action] = [Log("error", f"maintenance {rollout.name!r} halted: {reason}; "
                                              f"{len(untouched)} host(s) keep their state; "
                                              f"retry in {wait:g}s")]
        actions.extend(self._advance_rollout(now))  # finishes it once no host is active
        return actions

    def _host_goodbye(self, now: float, host: HostRecord, msg: Goodbye) -> list[Action]:
        self._dirty = True
        host.left = msg.ok
        if not self.config.spawn:  # an attached host's goodbye is its exit
            how = "said goodbye" if msg.ok else f"failed: {msg.message}"
            return self.host_exited(now, host.host_id, how)
        if host.state is not HostState.STOPPING:  # it is leaving: no new calls
            host.move(HostState.STOPPING)
            self._sync(now)
        if msg.ok:
            return [Log("info", f"host {host.host_id} said goodbye")]
        actions: list[Action] = [Log("error", f"host {host.host_id} failed: {msg.message}")]
        if not self._ever_ready and self.config.fail_fast_on_first_start:
            self.failed_reason = msg.message
            actions.extend(self._give_up_start(now))
        return actions

    def host_unreachable(self, now: float, host_id: str, msg: Any) -> list[Action]:
        """The shell could not route ``msg`` to host ``host_id``'s call socket (its ROUTER
        has no connection by that id: ``EHOSTUNREACH``). Attach mode: the host is forgotten
        at once instead of waiting for the unsent call's deadline (a start-up slow call: 120
        s by default) — a call that was not sent did not run (``unavailable``), the others
        on that connection are ``crashed`` — and its next heartbeat, answered as a
        stranger's, makes it send ``ready`` again (R52). Spawn mode: the host is ours and
        its liveness rules judge it; nothing changes."""
        host = self.pool.get(host_id)
        if self.config.spawn or host is None or host.killed is not None:
            return []
        actions: list[Action] = []
        entry = host.calls.pop(msg.id, None) if type(msg) is Call else None
        if entry is not None:
            self.counters["errors"] += 1
            actions.append(ToClient(entry.route, ErrorReply(
                id=entry.client_id, code=ErrorCode.UNAVAILABLE,
                message=f"unavailable: host {host_id} is not connected; the call did not "
                        "run")))
        host.left = True  # not the host's failure: no restart is charged for it
        host.killed = ("its call socket is not connected (the call to it could not be "
                       "routed); forgotten until it sends ready again")
        actions.extend(self.host_exited(now, host_id, host.killed))
        return actions

    def _give_up_start(self, now: float) -> list[Action]:
        """A host failed before the gate ever opened (serve): stop with exit 1."""
        self._stop_exit_code = 1
        self._stopping = True
        self._stop_deadline = now + self.config.shutdown_timeout
        actions: list[Action] = []
        for other in self.pool:
            if other.killed is None:
                other.killed = "the service is giving up its start"
                actions.append(KillHost(other.host_id, other.killed))
        self._sync(now)
        return actions

    def host_exited(self, now: float, host_id: str, how: str) -> list[Action]:
        """The host process ``host_id`` is gone (``how``: e.g. "exit code 0", "signal 6")."""
        host = self.pool.remove(host_id)
        if host is None:
            return []
        self._dirty = True
        self._nudges.forget(host_id)
        if self._stopping:
            actions = self._fail_calls(host, ErrorCode.UNAVAILABLE, "service stopped")
            if not len(self.pool):
                actions.extend(self._finish(self._stop_exit_code, f"host {how}"))
            else:
                self._sync(now)
            return actions
        reason = host.killed or f"host process exited ({how})"
        actions = [Log("error", f"host {host_id} died: {reason}")]
        running = host.oldest_call()  # the fast call it was running, if any
        if running is not None and self._quarantine.charge(
                call_key(running.method, running.args, running.kwargs), running.method, now,
                reason):
            actions.append(Log("error", f"quarantined a {running.method!r} call: it killed "
                                        f"{self._quarantine.kills} hosts within "
                                        f"{self._quarantine.window:g}s"))
        actions.extend(self._fail_calls(
            host, ErrorCode.CRASHED, f"the host died during the call ({reason}); outcome unknown"))
        if self._failed:
            self._sync(now)
            return actions
        if not self._ever_ready and self.config.fail_fast_on_first_start and self.config.spawn:
            self.failed_reason = reason
            actions.extend(self._give_up_start(now))
            if not len(self.pool):
                actions.extend(self._finish(1, f"the host failed before it was ready: {reason}"))
            return actions
        actions.extend(self._replace(now, host, reason))  # first: the rollout counts it
        if self._rollout is not None:
            self._rollout.host_done(host_id, False)
            actions.extend(self._advance_rollout(now))
        self._sync(now)
        return actions

    def _fail_calls(self, host: HostRecord, code: ErrorCode, text: str) -> list[Action]:
        actions: list[Action] = []
        for entry in host.calls.values():
            self.counters["crashed" if code is ErrorCode.CRASHED else "errors"] += 1
            if self._observe is not None:
                self._observe("call", entry.method, code.value, 0.0)
            actions.append(ToClient(entry.route, ErrorReply(id=entry.client_id, code=code,
                                                            message=text)))
        host.calls.clear()
        host.slow = None
        return actions

    def _replace(self, now: float, dead: HostRecord, reason: str) -> list[Action]:
        if not dead.left and not self._budget.allow(now):
            self._failed = True
            self._stop_exit_code = 1  # a failed service exits 1, however it is stopped
            self.failed_reason = self._budget.exhausted_reason(now, reason)
            self._rollout = None
            actions: list[Action] = [Log("error", f"giving up: {self.failed_reason}")]
            for host in self.pool:  # the survivors stop: a failed service serves nothing
                actions.extend(self._stop_host(host, "the service failed"))
                actions.extend(self._fail_calls(host, ErrorCode.FAILED,
                                                f"service failed: {self.failed_reason}"))
            return actions
        self.last_restart_reason = reason
        if not self.config.spawn:
            return [Log("info", "waiting for a host to attach")]
        return [self._spawn(now, dead.slot, reason)]

    # ------------------------------------------------------------------ maintenance

    def _begin_rollout(self, now: float, name: str, reason: str, *, manual: bool = False
                       ) -> list[Action]:
        self._round += 1
        pending = [h.host_id for h in self.pool if h.state is _READY and h.killed is None]
        self._rollout = Rollout(name, reason, self._round, now, pending, manual=manual)
        call = self._schedule.calls[name]
        call.policy.on_slow_started(now)
        return [Log("info", f"maintenance {name!r} ({reason}) over {len(pending)} host(s)"),
                *self._advance_rollout(now)]

    def _advance_rollout(self, now: float) -> list[Action]:
        rollout = self._rollout
        if rollout is None:
            return []
        actions: list[Action] = []
        if not self._stopping:
            away = self._fast_stats.route_away_after
            ready = [h for h in self.pool if h.state is _READY and h.killed is None]
            stuck = frozenset(h.host_id for h in ready if is_stuck(h, now, away))
            for host_id in rollout.take_next(self.pool.hosts, self.config.max_maintaining,
                                             len(ready) - len(stuck), stuck):
                host = self.pool.hosts[host_id]
                host.move(HostState.DRAINING)
                if not host.calls:
                    actions.extend(self._begin_host_maintenance(now, host))
        if rollout.finished:
            self._rollout = None
            call = self._schedule.calls.get(rollout.name)
            if call is not None:
                call.policy.on_slow_finished(now)
                call.last_end = now
            self._schedule.last_slow_end = now
            if rollout.manual:
                self._manual.charge(rollout.started, now)
            ok = not rollout.failed
            self.last_maintenance = {
                "call": rollout.name, "reason": rollout.reason, "ok": ok,
                "duration": round(now - rollout.started, 6), "ended_ago_from": now,
                "hosts": len(rollout.done) + len(rollout.failed),
                "failed_hosts": len(rollout.failed), "halted": rollout.halted is not None}
            if ok:
                self._halted = None
                self._schedule.release(rollout.name)
            actions.append(Log("info" if ok else "warning",
                               f"maintenance {rollout.name!r} finished: {len(rollout.done)} "
                               f"host(s) ok, {len(rollout.failed)} failed"))
        return actions

    def _begin_host_maintenance(self, now: float, host: HostRecord) -> list[Action]:
        rollout = self._rollout
        assert rollout is not None
        host.move(HostState.MAINTAINING)
        return self._send_slow(now, host, rollout.name, rollout.reason, startup=False)

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Action]:
        """The clock reached a wake-up time: liveness, heartbeats, maintenance."""
        self._dirty = False
        actions: list[Action] = []
        for host in list(self.pool):
            if host.killed is not None:
                continue
            deadline = self._slow_deadline(host)
            why = liveness_problem(host, now, self.config, deadline,
                                   self._stop_deadline if self._stopping else None)
            if why is None:
                continue
            host.killed = why
            if self._stopping:
                self._stop_exit_code = 1
            actions.append(KillHost(host.host_id, why))
            if not self.config.spawn:  # not ours to kill: consider it gone
                actions.extend(self.host_exited(now, host.host_id, why))
        if now >= self._beat_at:
            self._beat_at = now + self.config.heartbeat_interval
            beat = self._beat()
            actions.extend(ToHost(h.host_id, beat, heartbeat_socket=True)
                           for h in self.pool if h.killed is None)
        if self._rollout is not None:
            actions.extend(self._advance_rollout(now))
        elif self.state is GateState.READY:
            due = self._schedule.due(now)
            if due is not None:
                actions.extend(self._begin_rollout(now, *due))
        self._sync(now)
        return actions

    def _slow_deadline(self, host: HostRecord) -> float:
        slow = host.slow
        if slow is None:
            return self.config.slow_call_deadline
        return self._schedule.deadline(slow.name, self.config.slow_call_deadline)

    def next_wakeup(self, now: float) -> float:
        """Monotonic time of the next event the gate must be ticked for."""
        times = [now + 1.0, self._beat_at]
        stop = self._stop_deadline if self._stopping else None
        for host in self.pool:
            if host.killed is None:
                times.append(liveness_deadline(host, self.config, self._slow_deadline(host),
                                               stop))
        if self._rollout is None and self.state is GateState.READY:
            t = self._schedule.next_wakeup(now)
            if t is not None:
                times.append(t)
        return min(times)

    # ------------------------------------------------------------------ introspection

    def status(self, now: float) -> dict[str, Any]:
        """A JSON-able snapshot for ``threadhost status``."""
        hosts = sorted(self.pool, key=lambda h: h.slot)
        first = next(iter(hosts), None)
        away = self._fast_stats.route_away_after
        out: dict[str, Any] = {
            **self.info,
            "state": self.state.value,
            "adapter": self._adapter.get("adapter"),
            "fingerprint": self.fingerprint or None,
            "uptime": round(now - self.started_at, 3),
            "host_pid": first.pid if first is not None else None,
            "host_pids": [h.pid for h in hosts if h.pid is not None],
            "host_id": first.host_id if first is not None else None,
            "hosts": [host_view(h, now, away, self.pool.restarts[h.slot]) for h in hosts],
            "pool_size": self.config.hosts,
            "generation": self.generation,
            "restart_count": self.restart_count,
            "last_restart_reason": self.last_restart_reason,
            "failed_reason": self.failed_reason,
            "in_flight": sum(len(h.calls) for h in hosts),
            "route_away_after": round(away, 3),
            "counters": dict(self.counters),
            "call_seconds": {"count": int(self.call_seconds["count"]),
                             "sum": round(self.call_seconds["sum"], 6)},
        }
        for host in hosts:
            running = running_view(host, now, self._schedule.calls)
            if running is not None:
                out["maintenance"] = running
                break
        if self._rollout is not None:
            out["rollout"] = rollout_view(self._rollout, now)
        elif self._halted is not None:
            out["rollout"] = halted_view(self._halted, now)
            if self._schedule.next_due(self._halted["call"], now) is None:
                out["rollout"]["retry_in"] = None  # its policy never retries by itself
        if self._quarantine.poisoned:
            out["quarantined"] = self._quarantine.view(now)
        if self.last_maintenance is not None:
            out["last_maintenance"] = ago(self.last_maintenance, now)
        manual = self._manual
        out["manual_maintenance"] = {"budget": manual.share, "rounds": manual.rounds,
                                     "busy": round(manual.busy, 3),
                                     "retry_in": round(manual.wait(now), 3)}
        out["slow_calls"] = slow_calls_view(self._schedule.calls)
        for name, view in out["slow_calls"].items():
            due = self._schedule.next_due(name, now)
            view["next_due_in"] = None if due is None or self._rollout is not None else round(
                max(0.0, due - now), 3)
        return out
