"""Maintenance policies: *when* should the broker run the slow call?

Theory of operation
-------------------
A policy is a pure deadline calculator. It never sleeps, starts threads or opens sockets;
time is injected. ``now`` is always a monotonic float (``time.monotonic()`` in
production, a fake clock in tests). The broker drives a policy like this::

    policy = parse_policy("idle=10s | stale=5m")
    policy.start(now)                  # once, when the service becomes ready
    policy.on_call(now)                # each accepted client call (cheap)
    wake = policy.next_wakeup(now)     # sleep until then (None = no automatic trigger)
    reason = policy.poll(now)          # "idle 10s" -> run the slow call now, else None
    policy.on_slow_started(now)        # around every slow call, automatic or manual
    policy.on_slow_finished(now)

Each term of a spec (``idle=10s``, ``stale=5m``, ``cron=0 3 * * *``, ``file=PATH`` ...)
is one :class:`Policy`; :class:`CompositePolicy` combines them: any due term triggers,
subject to the ``min_gap`` guard. ``deadline`` is only carried as an attribute; the
broker acts on an overrun. While a slow call runs the composite is never due.

``idle`` fires once per idle period: only a client call arms it (due = ``max(last call,
end of the last slow call) + idle``); a slow call, and the start, disarm it until the
next call. ``stale``/``every`` count from the start or the end of the last slow call, so
``stale`` alone bounds the age of a quiet service.

``cron`` needs wall-clock time: it computes the next fire time as epoch seconds and maps
it onto the monotonic scale by the offset ``wall - now`` taken each time it is asked, so
a wall-clock jump is noticed at the next evaluation. ``file`` polls an injected reader
and compares content digests; a new content must be seen unchanged for a debounce
period before it counts, and a missing file is not a change.
"""

from __future__ import annotations

import abc
import os
import random
import re
import time
from collections.abc import Callable
from datetime import datetime, tzinfo

try:  # hashlib's own blake2b, without hashlib's import of OpenSSL (~3.5 MB in the broker)
    from _blake2 import blake2b as _blake2b
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _blake2b

__all__ = [
    "KEYS",
    "CompositePolicy",
    "CronPolicy",
    "EveryPolicy",
    "FilePolicy",
    "IdlePolicy",
    "ManualPolicy",
    "Policy",
    "PolicyError",
    "StalePolicy",
    "check_policy",
    "format_duration",
    "parse_duration",
    "parse_policy",
    "read_file_bytes",
]

KEYS = ("idle", "every", "cron", "file", "stale", "manual", "min_gap", "deadline")
FILE_POLL_INTERVAL = 0.5
FILE_DEBOUNCE = 0.5


class PolicyError(ValueError):
    """A policy spec or duration is invalid; the one-line message names the bad term."""


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?")


def parse_duration(text: str) -> float:
    """Seconds in ``500ms``, ``10s``, ``5m``, ``1h``, ``1d`` or plain ``2.5`` (seconds)."""
    match = _DURATION_RE.fullmatch(text.strip())
    if match is None:
        raise PolicyError(f"bad duration {text!r} (expected e.g. 500ms, 10s, 5m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """Short human form: 3600 -> '1h', 90 -> '90s', 0.5 -> '500ms'."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    if seconds < 1 and (seconds * 1000).is_integer():  # mutate: skip[with '<='] - 1 is "1s"
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def read_file_bytes(path: str) -> bytes | None:
    """The default reader for ``file=``: the file's bytes, or None if missing/unreadable."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


class Policy(abc.ABC):
    """One term of a maintenance policy. All times are monotonic seconds."""

    term: str = ""  # normalised spec text of this term, e.g. "idle=10s"

    def start(self, now: float) -> None:  # noqa: B027 - optional hook
        """The service became ready (after the start-up slow call, if any)."""

    @abc.abstractmethod
    def next_wakeup(self, now: float) -> float | None:
        """Monotonic time at which :meth:`poll` should next be called; None = never."""

    @abc.abstractmethod
    def poll(self, now: float) -> str | None:
        """The reason if maintenance is due now, else None."""

    def on_call(self, now: float) -> None:  # noqa: B027 - optional hook
        """A client call was accepted."""

    def on_slow_started(self, now: float) -> None:  # noqa: B027 - optional hook
        """A slow call (automatic or manual) started."""

    def on_slow_finished(self, now: float) -> None:  # noqa: B027 - optional hook
        """A slow call ended (successfully or not)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.term!r}>"


class _CountdownPolicy(Policy):
    """Due ``_period()`` seconds after the start or the end of the last slow call.

    Not due before :meth:`start` nor while a slow call runs.
    """

    def __init__(self, term: str) -> None:
        self.term = term
        self.reason = term.replace("=", " ", 1)  # "idle=10s" -> "idle 10s"
        self._due: float | None = None

    @abc.abstractmethod
    def _period(self) -> float: ...

    def start(self, now: float) -> None:
        self._due = now + self._period()

    def on_slow_started(self, now: float) -> None:
        self._due = None

    def on_slow_finished(self, now: float) -> None:
        self._due = now + self._period()

    def next_wakeup(self, now: float) -> float | None:
        return self._due

    def poll(self, now: float) -> str | None:
        return self.reason if self._due is not None and now >= self._due else None


class IdlePolicy(Policy):
    """Due once per idle period: ``idle`` seconds after the last client call, then not
    again until another call comes in.

    Only a client call arms it: due = ``max(last call, end of the last slow call) + idle``.
    A slow call (automatic or manual) disarms it, and it stays disarmed after the slow call
    ends until the next :meth:`on_call`; :meth:`start` counts as "just maintained" (the
    start-up slow call has just run), so it is disarmed until the first call. A call that
    comes in while a slow call runs arms it, counted from the end of that slow call at the
    earliest. Never due while a slow call runs; until :meth:`start` (or a slow call's
    end) the start-up counts as one.
    """

    def __init__(self, idle: float) -> None:
        self.term = f"idle={format_duration(idle)}"
        self.reason = self.term.replace("=", " ", 1)  # "idle=10s" -> "idle 10s"
        self.idle = idle
        self._last_call: float | None = None  # last call since maintenance; None = disarmed
        self._slow_end = float("-inf")  # end of the last slow call
        self._running = True  # until start(): the service is still starting up

    def start(self, now: float) -> None:
        self._last_call = None
        self._running = False

    def on_call(self, now: float) -> None:
        self._last_call = now

    def on_slow_started(self, now: float) -> None:
        self._last_call = None
        self._running = True

    def on_slow_finished(self, now: float) -> None:
        self._running = False
        self._slow_end = now

    def next_wakeup(self, now: float) -> float | None:
        if self._running or self._last_call is None:
            return None
        return max(self._last_call, self._slow_end) + self.idle

    def poll(self, now: float) -> str | None:
        due = self.next_wakeup(now)
        return self.reason if due is not None and now >= due else None


class StalePolicy(_CountdownPolicy):
    """Due when the last finished slow call (or the start) is older than ``max_age``,
    whatever the traffic: the rescue for ``idle`` under a busy program."""

    def __init__(self, max_age: float) -> None:
        super().__init__(f"stale={format_duration(max_age)}")
        self.max_age = max_age

    def _period(self) -> float:
        return self.max_age


class EveryPolicy(_CountdownPolicy):
    """Due ``interval`` (+ uniform random ``[0, jitter]``) after the start or the end of
    the previous slow call."""

    def __init__(
        self, interval: float, jitter: float = 0.0, rng: random.Random | None = None
    ) -> None:
        term = f"every={format_duration(interval)}"
        super().__init__(term + (f"~{format_duration(jitter)}" if jitter else ""))
        self.interval = interval
        self.jitter = jitter
        self._rng = rng if rng is not None else random.Random()

    def _period(self) -> float:
        return self.interval + (self._rng.uniform(0.0, self.jitter) if self.jitter else 0.0)


class CronPolicy(Policy):
    """Due at the fire times of a 5-field cron expression, in local time (or ``tz``).

    A slow call covers the fire times up to its start; a fire time that passes while it
    runs triggers again afterwards.
    """

    def __init__(
        self,
        expr: str,
        *,
        wall_clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
    ) -> None:
        self.expr = expr
        self.term = f"cron={expr}"
        self._wall_clock = wall_clock
        self._tz = tz
        self._next_fire: float | None = None  # epoch seconds
        # epoch the next fire was computed from
        self._base: float = 0.0  # mutate: skip - set by _compute before it is read
        self._slow_started_wall: float | None = None

    def _compute(self, wall: float) -> None:
        base = datetime.fromtimestamp(wall, self._tz)  # naive local time when tz is None
        self._base = wall
        from croniter import croniter  # imported on first use: it weighs ~2.5 MB

        self._next_fire = croniter(self.expr, base).get_next(datetime).timestamp()

    def start(self, now: float) -> None:
        self._compute(self._wall_clock())

    def on_slow_started(self, now: float) -> None:
        self._slow_started_wall = self._wall_clock()

    def on_slow_finished(self, now: float) -> None:
        started = self._slow_started_wall
        self._slow_started_wall = None
        self._compute(started if started is not None else self._wall_clock())

    def _wall(self) -> float:
        wall = self._wall_clock()
        # wall clock went backwards: recompute from the new time (equal: same result)
        if wall < self._base:  # mutate: skip[with '<=']
            self._compute(wall)
        return wall

    def next_wakeup(self, now: float) -> float | None:
        if self._next_fire is None:
            return None
        wall = self._wall()  # may recompute _next_fire
        return now + (self._next_fire - wall)

    def poll(self, now: float) -> str | None:
        if self._next_fire is not None and self._wall() >= self._next_fire:
            return f"cron {self.expr}"
        return None


class FilePolicy(Policy):
    """Due when the content of ``path`` changed and then stayed unchanged for ``debounce``.

    The first successful read is the baseline. A missing/unreadable file is no
    observation (editors' rename dance) but drops a pending candidate. A slow call makes
    the content that was stable when it *started* the new baseline, so edits made while
    it ran are detected afterwards.
    """

    def __init__(
        self,
        path: str,
        *,
        debounce: float = FILE_DEBOUNCE,
        poll_interval: float = FILE_POLL_INTERVAL,
        read_file: Callable[[str], bytes | None] = read_file_bytes,
    ) -> None:
        self.path = path
        self.debounce = debounce
        self.poll_interval = poll_interval
        self.term = f"file={path}" + (
            f"~{format_duration(debounce)}" if debounce != FILE_DEBOUNCE else ""
        )
        self._read_file = read_file
        self._baseline: bytes | None = None  # digest of the last stable content
        self._candidate: bytes | None = None  # digest of a new, not yet settled content
        # first and last read that saw the candidate unchanged (read only with a candidate)
        self._candidate_since = 0.0  # mutate: skip - set with every candidate
        self._candidate_seen = 0.0  # mutate: skip - set with every candidate
        self._next_read: float | None = None
        self._running = False  # mutate: skip[True] - before start() nothing is read anyway

    def _read(self, now: float) -> None:
        data = self._read_file(self.path)
        next_read = self._next_read = now + self.poll_interval
        if data is None:
            self._candidate = None
            return
        digest = _blake2b(data, digest_size=16).digest()  # mutate: skip[17] - any size works
        if self._baseline is None or digest == self._baseline:
            self._baseline = digest
            self._candidate = None
        else:
            if digest != self._candidate:
                self._candidate, self._candidate_since = digest, now
            self._candidate_seen = now
            if not self._settled():  # look again as soon as it could have settled
                confirm = self._candidate_since + self.debounce
                self._next_read = min(next_read, max(confirm, now))

    def _settled(self) -> bool:
        return (
            self._candidate is not None
            and self._candidate_seen - self._candidate_since >= self.debounce
        )

    def start(self, now: float) -> None:
        self._running = False
        self._read(now)

    def on_slow_started(self, now: float) -> None:
        self._running = True
        if self._settled():
            self._baseline = self._candidate
        self._candidate = None

    def on_slow_finished(self, now: float) -> None:
        self._running = False
        self._next_read = now  # look again right away

    def next_wakeup(self, now: float) -> float | None:
        if self._running:
            return None
        return now if self._settled() else self._next_read

    def poll(self, now: float) -> str | None:
        if self._running or self._next_read is None:
            return None
        if now >= self._next_read:
            self._read(now)
        return f"file {self.path} changed" if self._settled() else None


class ManualPolicy(Policy):
    """Never due: maintenance runs only on request (``threadhost maintain``)."""

    term = "manual"

    def next_wakeup(self, now: float) -> float | None:
        return None

    def poll(self, now: float) -> str | None:
        return None


class CompositePolicy(Policy):
    """Any due term triggers, but not within ``min_gap`` after the last slow call ended.

    ``waiting`` explains a trigger held back by ``min_gap`` (else None). ``deadline`` is
    the per-slow-call time limit the broker enforces (None = no limit). The composite
    starts itself at the first :meth:`poll`/:meth:`next_wakeup` if :meth:`start` was not
    called.
    """

    def __init__(
        self,
        terms: tuple[Policy, ...],
        *,
        min_gap: float | None = None,
        deadline: float | None = None,
        spec: str = "",
    ) -> None:
        self.terms = terms
        self.min_gap = min_gap
        self.deadline = deadline
        self.spec = spec
        self.term = spec
        self.waiting: str | None = None
        self._call_terms = tuple(t for t in terms if type(t).on_call is not Policy.on_call)
        self._started = False
        self._running = False  # mutate: skip - start() sets it before it is read
        self._last_finished: float | None = None

    def start(self, now: float) -> None:
        self._started = True
        self._running = False
        self.waiting = None
        for t in self.terms:
            t.start(now)

    def _gap_end(self, now: float) -> float | None:
        """End of the min_gap window if it is still open at ``now``."""
        if self.min_gap is None or self._last_finished is None:
            return None
        end = self._last_finished + self.min_gap
        return end if now < end else None

    def next_wakeup(self, now: float) -> float | None:
        if not self._started:
            self.start(now)
        if self._running:
            return None
        gap_end = self._gap_end(now)
        best: float | None = None
        for t in self.terms:
            w = t.next_wakeup(now)
            if w is None:
                continue
            if gap_end is not None and w <= now:
                w = gap_end  # due but held back: look again when the gap closes
            best = w if best is None else min(best, w)
        return best

    def poll(self, now: float) -> str | None:
        if not self._started:
            self.start(now)
        self.waiting = None
        if self._running:
            return None
        reason: str | None = None
        for t in self.terms:  # poll every term: file terms must keep reading
            r = t.poll(now)
            if reason is None:
                reason = r
        if reason is None:
            return None
        gap_end = self._gap_end(now)
        if gap_end is not None:
            assert self.min_gap is not None
            self.waiting = (
                f"{reason}: waiting for min_gap {format_duration(self.min_gap)}"
                f" ({gap_end - now:.1f}s left)"
            )
            return None
        return reason

    def on_call(self, now: float) -> None:
        for t in self._call_terms:
            t.on_call(now)

    def on_slow_started(self, now: float) -> None:
        self._running = True
        self.waiting = None
        for t in self.terms:
            t.on_slow_started(now)

    def on_slow_finished(self, now: float) -> None:
        self._running = False
        self._last_finished = now
        for t in self.terms:
            t.on_slow_finished(now)


def _duration(text: str, term: str, *, positive: bool = True) -> float:
    try:
        value = parse_duration(text)
    except PolicyError:
        raise PolicyError(f"bad duration {text!r} in {term!r}") from None
    if positive and value <= 0:
        raise PolicyError(f"bad duration {text!r} in {term!r}: must be greater than 0")
    return value


def _split_tilde(value: str) -> tuple[str, str | None]:
    """``"10m~30s"`` -> ``("10m", "30s")``; no ``~`` -> ``(value, None)``."""
    head, sep, tail = value.rpartition("~")
    return (head.strip(), tail.strip()) if sep else (value, None)


def parse_policy(
    spec: str,
    *,
    wall_clock: Callable[[], float] = time.time,
    read_file: Callable[[str], bytes | None] = read_file_bytes,
    rng: random.Random | None = None,
    tz: tzinfo | None = None,
) -> CompositePolicy:
    """Parse ``"idle=10s | stale=1h | cron=0 3 * * * | file=/etc/mylib.conf"``.

    Raises :class:`PolicyError` with one line naming the bad term.
    """
    raw_terms = [t.strip() for t in spec.split("|")]
    if not spec.strip():
        raise PolicyError("empty policy spec")
    seen: set[str] = set()
    terms: list[Policy] = []
    guards: dict[str, float] = {}
    for raw in raw_terms:
        if not raw:
            raise PolicyError(f"bad policy spec {spec!r}: empty term between '|'")
        key, sep, value = (s.strip() for s in raw.partition("="))
        if key not in KEYS:
            raise PolicyError(
                f"bad policy term {raw!r}: unknown key {key!r} (expected one of {', '.join(KEYS)})"
            )
        if key in seen:
            raise PolicyError(f"bad policy term {raw!r}: duplicate key {key!r}")
        seen.add(key)
        if key == "manual":
            if sep:
                raise PolicyError(f"bad policy term {raw!r}: 'manual' takes no value")
            terms.append(ManualPolicy())
            continue
        if not sep or not value:
            raise PolicyError(f"bad policy term {raw!r}: expected {key}=VALUE")
        if key in ("min_gap", "deadline"):
            guards[key] = _duration(value, raw, positive=key == "deadline")
        elif key == "idle":
            terms.append(IdlePolicy(_duration(value, raw)))
        elif key == "stale":
            terms.append(StalePolicy(_duration(value, raw)))
        elif key == "every":
            interval, jitter = _split_tilde(value)
            terms.append(
                EveryPolicy(
                    _duration(interval, raw),
                    _duration(jitter, raw, positive=False) if jitter is not None else 0.0,
                    rng,
                )
            )
        elif key == "cron":
            expr = " ".join(value.split())
            _check_cron(expr, raw)
            terms.append(CronPolicy(expr, wall_clock=wall_clock, tz=tz))
        else:  # file
            path, debounce = value, FILE_DEBOUNCE
            head, tail = _split_tilde(value)
            if tail is not None and head and _DURATION_RE.fullmatch(tail):
                path, debounce = head, _duration(tail, raw, positive=False)
            path = os.path.expanduser(path)
            terms.append(FilePolicy(path, debounce=debounce, read_file=read_file))
    if not terms:
        raise PolicyError(f"bad policy spec {spec!r}: no trigger term (use 'manual' for none)")
    if len(terms) > 1 and "manual" in seen:
        raise PolicyError(
            f"bad policy spec {spec!r}: 'manual' cannot be combined with other triggers"
        )
    return CompositePolicy(
        tuple(terms),
        min_gap=guards.get("min_gap"),
        deadline=guards.get("deadline"),
        spec=" | ".join(raw_terms),
    )


def _check_cron(expr: str, term: str) -> None:
    fields = len(expr.split())
    if fields != 5:
        raise PolicyError(
            f"bad cron expression {expr!r} in {term!r}: need 5 fields"
            f" (minute hour day-of-month month day-of-week), got {fields}"
        )
    try:  # also rejects expressions that never fire, like "0 3 31 2 *"
        from croniter import croniter

        croniter(expr, datetime(2000, 1, 1)).get_next(datetime)  # mutate: skip[2001] - any base
    except (ValueError, KeyError) as exc:
        raise PolicyError(f"bad cron expression {expr!r} in {term!r}: {exc}") from None


def check_policy(spec: str) -> None:
    """Validate ``spec`` without touching files or clocks; raises :class:`PolicyError`."""
    parse_policy(
        spec,
        wall_clock=lambda: 0.0,  # mutate: skip[with 1.0] - parsing never reads the clock
        read_file=lambda _path: None,
    )
