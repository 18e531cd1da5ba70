"""Unit tests for threadhost.policy: fake clocks only, no sleeps, no sockets."""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadhost.policy import (
    CompositePolicy,
    CronPolicy,
    EveryPolicy,
    FilePolicy,
    IdlePolicy,
    ManualPolicy,
    Policy,
    PolicyError,
    StalePolicy,
    check_policy,
    format_duration,
    parse_duration,
    parse_policy,
)

pytestmark = pytest.mark.timeout(10)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "policies.md"


# --------------------------------------------------------------------------- helpers


@dataclass
class FakeFiles:
    """An injectable ``read_file``: path -> bytes, None = missing. Counts reads."""

    content: dict[str, bytes | None] = field(default_factory=dict)
    reads: int = 0

    def __call__(self, path: str) -> bytes | None:
        self.reads += 1
        return self.content.get(path)


@dataclass
class Sim:
    """Drive a policy like the broker does, in 10 ms ticks of fake monotonic time
    (``t = ms / 1000``, so tick times compare exactly with decimal literals).

    ``calls(t)`` says whether a client call arrives at tick ``t``; calls during a slow
    call are rejected (BusyError) and so never reach ``on_call``. ``events(t)`` may
    mutate the world (files, wall clock) before the policy looks. Records the start
    time and reason of every slow call.
    """

    policy: Policy
    slow_duration: float = 0.0
    calls: Callable[[float], bool] = lambda t: False
    events: Callable[[float], None] = lambda t: None
    fired: list[tuple[float, str]] = field(default_factory=list)

    def run(self, until: float, start: float = 0.0) -> list[tuple[float, str]]:
        self.policy.start(start)
        slow_end: float | None = None
        for ms in range(round(start * 1000), round(until * 1000) + 1, 10):
            t = ms / 1000
            self.events(t)
            if slow_end is not None and t >= slow_end:
                self.policy.on_slow_finished(t)
                slow_end = None
            if slow_end is not None:
                continue
            if self.calls(t):
                self.policy.on_call(t)
            wake = self.policy.next_wakeup(t)
            reason = self.policy.poll(t)
            if reason is not None:
                # next_wakeup must never be later than the moment poll becomes due
                assert wake is not None and wake <= t + 1e-9, (t, wake, reason)
                self.fired.append((t, reason))
                self.policy.on_slow_started(t)
                slow_end = t + self.slow_duration
                if self.slow_duration == 0:
                    self.policy.on_slow_finished(t)
                    slow_end = None
        return self.fired


def every_ms(period_ms: int) -> Callable[[float], bool]:
    return lambda t: round(t * 1000) % period_ms == 0


def times(fired: list[tuple[float, str]]) -> list[float]:
    return [t for t, _ in fired]


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("2.5", 2.5),
        (" 3 ", 3.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("0", 0.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["ten", "", "10x", "-5s", "1h30m", "inf", "nan", "s", "1e3"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(PolicyError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1h"), (300, "5m"), (90, "90s"), (10, "10s"), (0.5, "500ms"), (2.5, "2.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=10**7))
def test_format_parse_roundtrip(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


# --------------------------------------------------------------------------- idle / stale


@pytest.mark.parametrize(
    ("calls", "due_at"),
    [
        ([3.0], 13.0),
        ([3.0, 8.0], 18.0),
        ([9.5], 19.5),
    ],
)
def test_idle_due_after_quiet_period(calls: list[float], due_at: float) -> None:
    """Due ``idle`` after the last call. (The case without any call moved to
    test_idle_is_disarmed_at_start: since idle fires once per idle period, the start no
    longer arms it.)"""
    p = IdlePolicy(10.0)
    p.start(0.0)
    for t in calls:
        p.on_call(t)
    assert p.next_wakeup(0.0) == pytest.approx(due_at)
    assert p.poll(due_at - 0.01) is None
    assert p.poll(due_at) == "idle 10s"


def test_idle_is_disarmed_at_start() -> None:
    """The start counts as just maintained (the start-up slow call has just run): idle
    waits for the first call. (Until the once-per-idle-period change it was due ``idle``
    after the start.)"""
    p = IdlePolicy(10.0)
    p.start(0.0)
    assert p.next_wakeup(0.0) is None
    assert p.poll(10.0) is None
    assert p.poll(1000.0) is None
    p.on_call(1000.0)
    assert p.next_wakeup(1000.0) == pytest.approx(1010.0)
    assert p.poll(1010.0) == "idle 10s"


def test_idle_stays_disarmed_after_slow_call_and_is_quiet_while_it_runs() -> None:
    """Changed on purpose: idle fires once per idle period. It used to re-arm when a slow
    call ended (due at 70 here); now it stays disarmed until the next client call."""
    p = IdlePolicy(10.0)
    assert p.poll(100.0) is None  # not started: never due
    p.start(0.0)
    p.on_call(1.0)
    p.on_slow_started(10.0)
    assert p.poll(50.0) is None
    assert p.next_wakeup(50.0) is None
    p.on_slow_finished(60.0)
    assert p.next_wakeup(60.0) is None
    assert p.poll(70.0) is None
    assert p.poll(1000.0) is None
    p.on_call(1000.0)
    assert p.poll(1009.9) is None
    assert p.poll(1010.0) == "idle 10s"


def test_stale_ignores_traffic() -> None:
    p = StalePolicy(30.0)
    p.start(0.0)
    for t in range(1, 30):
        p.on_call(float(t))
    assert p.poll(29.9) is None
    assert p.poll(30.0) == "stale 30s"
    p.on_slow_started(30.0)
    p.on_slow_finished(35.0)
    assert p.next_wakeup(35.0) == pytest.approx(65.0)


def test_idle_alone_starves_under_steady_traffic() -> None:
    sim = Sim(parse_policy("idle=1s"), calls=every_ms(200))
    assert sim.run(until=60.0) == []


def test_stale_rescues_idle_under_steady_traffic() -> None:
    sim = Sim(parse_policy("idle=1s | stale=3s"), calls=every_ms(200), slow_duration=0.5)
    fired = sim.run(until=60.0)
    assert {reason for _, reason in fired} == {"stale 3s"}
    assert times(fired)[0] == pytest.approx(3.0)
    gaps = [b - a for a, b in zip(times(fired), times(fired)[1:], strict=False)]
    # 3 s from the end of one slow call (0.5 s long) to the start of the next
    assert all(g == pytest.approx(3.5) for g in gaps)
    assert len(fired) == 17


def test_idle_fires_once_when_traffic_stops() -> None:
    """Changed on purpose: idle used to repeat every 1 s while quiet (10.8, 11.8, ...);
    now it fires once per idle period and ``stale`` alone bounds the age afterwards."""
    sim = Sim(parse_policy("idle=1s | stale=3s"), calls=lambda t: t < 10 and every_ms(200)(t))
    fired = sim.run(until=20.0)
    # last call at 9.8: idle once at 10.8, then stale every 3 s from the end of the last
    assert [(t, r) for t, r in fired if t > 9.8] == [
        (10.8, "idle 1s"),
        (13.8, "stale 3s"),
        (16.8, "stale 3s"),
        (19.8, "stale 3s"),
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=200))
def test_idle_or_stale_never_waits_longer_than_stale(call_ms: list[int]) -> None:
    calls = {round(ms / 10) * 10 for ms in call_ms}
    sim = Sim(parse_policy("idle=1s | stale=3s"), calls=lambda t: round(t * 1000) in calls)
    starts = [0.0, *times(sim.run(until=20.0))]
    late = 0.011  # one 10 ms tick: float sums like 1.06 + 3 land just after a tick
    assert all(b - a <= 3.0 + late for a, b in itertools.pairwise(starts))
    assert 20.0 - starts[-1] <= 3.0 + late


def busy_seconds(fired: list[tuple[float, str]], slow: float, until: float) -> float:
    return sum(min(slow, until - t) for t, _ in fired)


def test_idle_service_does_not_reload_back_to_back() -> None:
    """The users' complaint: with the default ``idle=10s | stale=5m`` and a 15 s readConfig,
    an idle service re-read its configuration every 25 s (idle re-armed when each reload
    ended): in this simulation 24 reloads and 360 s busy out of 606 s of silence (users
    measured ~347 s). Now idle waits for a call, and only ``stale`` reloads a quiet
    service."""
    sim = Sim(parse_policy("idle=10s | stale=5m"), slow_duration=15.0)
    fired = sim.run(until=606.0)
    assert fired == [(300.0, "stale 5m")]
    assert len(fired) <= 2
    assert busy_seconds(fired, 15.0, 606.0) == pytest.approx(15.0)


def test_idle_fires_exactly_once_after_a_burst_then_silence() -> None:
    sim = Sim(
        parse_policy("idle=10s | stale=5m"),
        slow_duration=15.0,
        calls=lambda t: t <= 30.0 and every_ms(1000)(t),  # a call a second up to 30 s
    )
    fired = sim.run(until=636.0)
    # idle 10 s after the last call (30 -> 40, ends 55); then stale 5 m after that end
    assert fired == [(40.0, "idle 10s"), (355.0, "stale 5m")]
    assert [r for _, r in fired].count("idle 10s") == 1


def test_idle_rearms_with_each_new_burst() -> None:
    sim = Sim(
        parse_policy("idle=10s | stale=5m"),
        slow_duration=15.0,
        calls=lambda t: (t <= 5.0 or 100.0 <= t <= 105.0) and every_ms(1000)(t),
    )
    assert sim.run(until=200.0) == [(15.0, "idle 10s"), (115.0, "idle 10s")]


def test_idle_call_during_slow_call_counts_from_its_end() -> None:
    """A call that comes in while a slow call runs arms idle: due at
    ``max(last call, end of the slow call) + idle``, never while the slow call runs."""
    p = IdlePolicy(10.0)
    p.start(0.0)
    p.on_slow_started(100.0)  # e.g. a manual maintain
    p.on_call(101.0)  # an in-flight call that got through
    assert p.next_wakeup(200.0) is None  # never due while the slow call runs
    assert p.poll(200.0) is None
    p.on_slow_finished(200.0)
    assert p.next_wakeup(200.0) == pytest.approx(210.0)  # not at once (101 + 10 is long past)
    assert p.poll(209.9) is None
    assert p.poll(210.0) == "idle 10s"
    # a call during a short slow call, later than its end minus idle: counted from the call
    p.on_slow_started(210.0)
    p.on_call(211.0)
    p.on_slow_finished(211.0)
    p.on_call(215.0)
    assert p.next_wakeup(215.0) == pytest.approx(225.0)


def test_idle_manual_slow_call_disarms_it() -> None:
    p = parse_policy("idle=10s | stale=1h")
    p.start(0.0)
    p.on_call(5.0)
    assert p.next_wakeup(5.0) == pytest.approx(15.0)
    p.on_slow_started(8.0)  # threadhost maintain: the state is fresh again
    p.on_slow_finished(9.0)
    assert p.poll(15.0) is None
    assert p.next_wakeup(15.0) == pytest.approx(3609.0)  # only stale is armed


# --------------------------------------------------------------------------- every


def test_every_without_jitter_measures_from_end_of_slow_call() -> None:
    sim = Sim(parse_policy("every=10m"), slow_duration=30.0)
    assert times(sim.run(until=2000.0)) == pytest.approx([600.0, 1230.0, 1860.0])
    assert sim.fired[0][1] == "every 10m"


def test_every_with_jitter_uses_injected_rng() -> None:
    sim = Sim(parse_policy("every=10m~30s", rng=random.Random(42)))
    fired = times(sim.run(until=6000.0))
    expected_rng = random.Random(42)
    expected, t = [], 0.0
    while True:
        t += 600.0 + expected_rng.uniform(0.0, 30.0)
        if t > 6000.0:
            break
        expected.append(t)
    # ticks are 10 ms, so each fire is at most one tick late and shifts the next one
    assert len(fired) == len(expected) == 9
    intervals = [b - a for a, b in zip([0.0, *fired], fired, strict=False)]
    assert all(600.0 <= i <= 630.01 for i in intervals)
    assert len({round(i, 1) for i in intervals}) > 1  # really jittered
    assert sim.fired[0][1] == "every 10m~30s"


def test_every_same_seed_same_schedule() -> None:
    a = Sim(parse_policy("every=1m~1m", rng=random.Random(7))).run(until=1000.0)
    b = Sim(parse_policy("every=1m~1m", rng=random.Random(7))).run(until=1000.0)
    c = Sim(parse_policy("every=1m~1m", rng=random.Random(8))).run(until=1000.0)
    assert a == b
    assert a != c


def test_every_policy_direct() -> None:
    p = EveryPolicy(60.0, jitter=10.0, rng=random.Random(1))
    p.start(100.0)
    due = p.next_wakeup(100.0)
    assert due is not None and 160.0 <= due <= 170.0
    assert p.poll(due - 0.001) is None
    assert p.poll(due) == "every 1m~10s"


# --------------------------------------------------------------------------- cron


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


@dataclass
class FakeWall:
    """Wall clock = base + fake monotonic ``now`` (+ jumps)."""

    base: float
    now: float = 0.0
    jump: float = 0.0

    def __call__(self) -> float:
        return self.base + self.now + self.jump


def test_cron_fires_crossing_3am_utc() -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 59, 30))
    p = CronPolicy("0 3 * * *", wall_clock=wall, tz=UTC)
    p.start(0.0)
    assert p.next_wakeup(0.0) == pytest.approx(30.0)
    wall.now = 29.9
    assert p.poll(29.9) is None
    wall.now = 30.0
    assert p.poll(30.0) == "cron 0 3 * * *"
    assert p.next_wakeup(30.0) == pytest.approx(30.0)
    p.on_slow_started(30.0)
    wall.now = 40.0
    p.on_slow_finished(40.0)
    assert p.poll(40.0) is None
    assert p.next_wakeup(40.0) == pytest.approx(30.0 + 86400.0)


def test_cron_in_composite_sim() -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 0, 0))

    def tick(t: float) -> None:
        wall.now = t

    policy = parse_policy("cron=0 3 * * *", wall_clock=wall, tz=UTC)
    sim = Sim(policy, slow_duration=20.0, events=tick)
    assert sim.run(until=3 * 3600.0) == [(3600.0, "cron 0 3 * * *")]


@pytest.mark.parametrize(
    ("tz", "expected_wait"),
    [
        (UTC, 3600.0),  # 02:00 UTC -> 03:00 UTC
        (timezone(timedelta(hours=2)), 82800.0),  # 04:00 local -> 03:00 local next day
        (timezone(timedelta(hours=-1)), 7200.0),  # 01:00 local -> 03:00 local
    ],
)
def test_cron_uses_given_timezone(tz: timezone, expected_wait: float) -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 0, 0))
    p = CronPolicy("0 3 * * *", wall_clock=wall, tz=tz)
    p.start(500.0)  # monotonic origin is arbitrary
    assert p.next_wakeup(500.0) == pytest.approx(500.0 + expected_wait)


def test_cron_fire_time_passing_during_slow_call_triggers_afterwards() -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 59, 0))
    p = CronPolicy("0 3 * * *", wall_clock=wall, tz=UTC)
    p.start(0.0)
    wall.now = 50.0
    p.on_slow_started(50.0)  # started by another term at 02:59:50
    wall.now = 80.0
    p.on_slow_finished(80.0)  # 03:00 passed while it ran
    assert p.poll(80.0) == "cron 0 3 * * *"


def test_cron_follows_wall_clock_jumps() -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 0, 0))
    p = CronPolicy("0 3 * * *", wall_clock=wall, tz=UTC)
    p.start(0.0)
    wall.jump = 3600.0  # NTP step forward: it is now 03:00
    assert p.next_wakeup(0.0) == pytest.approx(0.0)
    assert p.poll(0.0) == "cron 0 3 * * *"
    p.on_slow_started(0.0)
    wall.now = 1.0
    p.on_slow_finished(1.0)
    assert p.next_wakeup(1.0) == pytest.approx(1.0 + 86399.0)  # tomorrow 03:00
    wall.jump = -3600.0  # stepped back: it is 01:00:01, next fire is 03:00 today
    assert p.next_wakeup(1.0) == pytest.approx(1.0 + 7199.0)


# --------------------------------------------------------------------------- file

PATH = "/etc/mylib.conf"


def file_sim(
    script: Callable[[float, FakeFiles], None],
    spec: str = f"file={PATH}",
    slow_duration: float = 0.0,
    until: float = 20.0,
) -> tuple[list[tuple[float, str]], FakeFiles]:
    files = FakeFiles({PATH: b"v1"})
    sim = Sim(
        parse_policy(spec, read_file=files),
        slow_duration=slow_duration,
        events=lambda t: script(t, files),
    )
    return sim.run(until=until), files


def test_file_no_trigger_at_start_and_polls_at_interval() -> None:
    fired, files = file_sim(lambda t, f: None, until=10.0)
    assert fired == []
    assert 19 <= files.reads <= 22  # every 0.5 s, not every tick


def test_file_change_detected_after_debounce() -> None:
    def script(t: float, f: FakeFiles) -> None:
        if t == 3.0:
            f.content[PATH] = b"v2"

    fired, _ = file_sim(script)
    # seen at the 3.0 read, confirmed unchanged 0.5 s later
    assert fired == [(3.5, f"file {PATH} changed")]


def test_file_custom_debounce() -> None:
    def script(t: float, f: FakeFiles) -> None:
        if t == 3.0:
            f.content[PATH] = b"v2"

    fired, _ = file_sim(script, spec=f"file={PATH}~2s")
    assert times(fired) == [pytest.approx(5.0)]


def test_file_half_written_does_not_fire_until_stable() -> None:
    def script(t: float, f: FakeFiles) -> None:
        if 2.0 <= t < 6.0:  # an editor/writer still appending: different at every poll
            f.content[PATH] = b"v2" + b"x" * round(t * 100)

    fired, _ = file_sim(script)
    assert len(fired) == 1
    assert fired[0][0] == pytest.approx(6.5)  # last change seen at 5.5, stable at 6.0/6.5


def test_file_atomic_rename_missing_briefly_is_no_change() -> None:
    def script(t: float, f: FakeFiles) -> None:
        f.content[PATH] = None if 3.0 <= t < 3.6 else b"v1"

    fired, _ = file_sim(script)
    assert fired == []


def test_file_rename_with_new_content_fires_once() -> None:
    def script(t: float, f: FakeFiles) -> None:
        if 3.0 <= t < 3.6:
            f.content[PATH] = None
        elif t >= 3.6:
            f.content[PATH] = b"v2"

    fired, _ = file_sim(script)
    assert times(fired) == [pytest.approx(4.5)]


def test_file_missing_at_start_then_created_sets_baseline() -> None:
    def script(t: float, f: FakeFiles) -> None:
        f.content[PATH] = None if t < 2.0 else (b"v1" if t < 5.0 else b"v2")

    fired, _ = file_sim(script)
    assert times(fired) == [pytest.approx(5.5)]  # the first content is the baseline


def test_file_change_reverted_before_debounce_is_no_change() -> None:
    def script(t: float, f: FakeFiles) -> None:
        f.content[PATH] = b"v2" if 3.0 <= t < 3.2 else b"v1"

    fired, _ = file_sim(script)
    assert fired == []


def test_file_edits_during_slow_call_detected_afterwards() -> None:
    def script(t: float, f: FakeFiles) -> None:
        if t == 3.0:
            f.content[PATH] = b"v2"  # triggers the slow call at 3.5
        if t == 5.0:
            f.content[PATH] = b"v3"  # edited while the 10 s slow call runs

    fired, _ = file_sim(script, slow_duration=10.0, until=30.0)
    # after the slow call ends at 13.5 the new content is seen and settles 0.5 s later
    assert times(fired) == [pytest.approx(3.5), pytest.approx(14.0)]


def test_file_unsettled_edit_when_slow_call_starts_is_detected_afterwards() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    files.content[PATH] = b"v2-half"
    assert p.poll(0.5) is None  # candidate, not yet settled
    p.on_slow_started(0.6)  # started for another reason; read the half-written file
    files.content[PATH] = b"v2"
    p.on_slow_finished(5.0)
    assert p.next_wakeup(5.0) == 5.0
    assert p.poll(5.0) is None
    assert p.poll(5.5) == f"file {PATH} changed"


def test_file_settled_content_becomes_baseline_at_slow_start() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    files.content[PATH] = b"v2"
    p.poll(0.5)
    assert p.poll(1.0) == f"file {PATH} changed"
    p.on_slow_started(1.0)
    p.on_slow_finished(2.0)
    assert p.poll(2.0) is None
    assert p.poll(10.0) is None  # v2 was loaded: no repeat trigger


def test_file_policy_is_quiet_while_slow_call_runs() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    p.on_slow_started(1.0)
    reads = files.reads
    files.content[PATH] = b"v2"
    assert p.next_wakeup(5.0) is None
    assert p.poll(5.0) is None
    assert files.reads == reads


def test_file_real_reader(tmp_path: Path) -> None:
    conf = tmp_path / "mylib.conf"
    conf.write_bytes(b"a=1")
    p = parse_policy(f"file={conf}")
    p.start(0.0)
    conf.write_bytes(b"a=2")
    assert p.poll(0.5) is None
    assert p.poll(1.0) == f"file {conf} changed"
    conf.unlink()
    p.on_slow_started(1.0)
    p.on_slow_finished(1.0)
    assert p.poll(1.0) is None  # missing is not a change


# --------------------------------------------------------------------------- manual, composite


def test_manual_never_fires() -> None:
    p = parse_policy("manual")
    assert isinstance(p.terms[0], ManualPolicy)
    assert Sim(p, calls=every_ms(1000)).run(until=100.0) == []
    assert p.next_wakeup(100.0) is None


def test_composite_returns_first_due_terms_reason() -> None:
    # a call at the start arms idle (the start alone no longer does)
    p = parse_policy("idle=10s | stale=10s")
    p.start(0.0)
    p.on_call(0.0)
    assert p.poll(10.0) == "idle 10s"
    p = parse_policy("stale=10s | idle=10s")
    p.start(0.0)
    p.on_call(0.0)
    assert p.poll(10.0) == "stale 10s"


def test_composite_is_quiet_while_slow_call_runs() -> None:
    p = parse_policy("idle=1s | stale=2s")
    p.start(0.0)
    p.on_slow_started(0.5)  # manual trigger
    assert p.poll(100.0) is None
    assert p.next_wakeup(100.0) is None
    p.on_slow_finished(100.0)
    # idle stays disarmed after a slow call until the next call: stale's 2 s are next
    # (before the once-per-idle-period change idle re-armed here: 101.0)
    assert p.next_wakeup(100.0) == pytest.approx(102.0)


def test_composite_starts_lazily() -> None:
    # stale, not idle: idle is no longer armed by the start (once per idle period)
    p = parse_policy("stale=5s")
    assert p.next_wakeup(100.0) == pytest.approx(105.0)
    assert p.poll(104.0) is None
    assert p.poll(105.0) == "stale 5s"


def test_min_gap_holds_back_triggers_and_says_why() -> None:
    p = parse_policy("stale=5s | min_gap=30s")
    assert p.min_gap == 30.0
    p.start(0.0)
    assert p.poll(5.0) == "stale 5s"  # no slow call yet: no gap
    p.on_slow_started(5.0)
    p.on_slow_finished(10.0)
    assert p.poll(15.0) is None
    assert p.waiting is not None
    assert "stale 5s" in p.waiting and "min_gap 30s" in p.waiting and "25.0s left" in p.waiting
    assert p.next_wakeup(15.0) == pytest.approx(40.0)
    assert p.poll(39.9) is None
    assert p.poll(40.0) == "stale 5s"
    assert p.waiting is None


def test_min_gap_in_sim_spaces_slow_calls() -> None:
    sim = Sim(parse_policy("stale=1s | min_gap=4s"), slow_duration=1.0)
    fired = times(sim.run(until=30.0))
    assert fired[0] == pytest.approx(1.0)
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert all(g == pytest.approx(5.0) for g in gaps)  # 1 s slow call + 4 s gap


def test_deadline_is_an_attribute_only() -> None:
    p = parse_policy("idle=10s | deadline=2m")
    assert p.deadline == 120.0
    assert p.min_gap is None
    assert len(p.terms) == 1
    assert parse_policy("idle=10s").deadline is None
    assert parse_policy("manual | deadline=30s").deadline == 30.0


def test_parse_builds_terms() -> None:
    p = parse_policy("idle=10s | stale=1h | cron=0  3 * * * | file=/etc/mylib.conf | min_gap=1m")
    assert isinstance(p, CompositePolicy)
    assert [type(t) for t in p.terms] == [IdlePolicy, StalePolicy, CronPolicy, FilePolicy]
    assert [t.term for t in p.terms] == [
        "idle=10s",
        "stale=1h",
        "cron=0 3 * * *",
        "file=/etc/mylib.conf",
    ]
    assert p.spec == "idle=10s | stale=1h | cron=0  3 * * * | file=/etc/mylib.conf | min_gap=1m"
    assert p.min_gap == 60.0


@pytest.mark.parametrize(
    ("value", "path", "debounce"),
    [
        ("/etc/x.conf", "/etc/x.conf", 0.5),
        ("/etc/x.conf~2s", "/etc/x.conf", 2.0),
        ("/etc/x.conf ~ 100ms", "/etc/x.conf", 0.1),
        ("/etc/backup~", "/etc/backup~", 0.5),
        ("/etc/a~b.conf", "/etc/a~b.conf", 0.5),
        ("/etc/x.conf~0", "/etc/x.conf", 0.0),
    ],
)
def test_parse_file_debounce(value: str, path: str, debounce: float) -> None:
    (term,) = parse_policy(f"file={value}").terms
    assert isinstance(term, FilePolicy)
    assert (term.path, term.debounce) == (path, debounce)


BAD_SPECS = [
    ("", "empty policy spec"),
    ("   ", "empty policy spec"),
    ("idel=10s", "bad policy term 'idel=10s': unknown key 'idel' (expected one of idle, every,"),
    ("idle=ten", "bad duration 'ten' in 'idle=ten'"),
    ("idle=10s | idle=5s", "bad policy term 'idle=5s': duplicate key 'idle'"),
    ("idle=10s ||", "empty term"),
    ("idle", "bad policy term 'idle': expected idle=VALUE"),
    ("idle=", "bad policy term 'idle=': expected idle=VALUE"),
    ("idle=0s", "bad duration '0s' in 'idle=0s': must be greater than 0"),
    ("stale=-1m", "bad duration '-1m' in 'stale=-1m'"),
    ("every=10m~x", "bad duration 'x' in 'every=10m~x'"),
    ("cron=0 3 * *", "bad cron expression '0 3 * *' in 'cron=0 3 * *': need 5 fields"),
    ("cron=0 3 * * * *", "need 5 fields"),
    ("cron=61 3 * * *", "bad cron expression '61 3 * * *'"),
    ("cron=0 3 31 2 *", "bad cron expression '0 3 31 2 *'"),
    ("file=", "expected file=VALUE"),
    ("manual=yes", "'manual' takes no value"),
    ("manual | idle=10s", "'manual' cannot be combined"),
    ("min_gap=10s", "no trigger term"),
    ("idle=10s | deadline=0", "bad duration '0' in 'deadline=0'"),
    ("idle=10s | min_gap=soon", "bad duration 'soon' in 'min_gap=soon'"),
    ("IDLE=10s", "unknown key 'IDLE'"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_specs_name_the_bad_term(spec: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(spec)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    with pytest.raises(PolicyError):
        check_policy(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "idle=10s",
        "idle=10s | stale=5m",
        "manual",
        "every=10m~30s | min_gap=1m | deadline=2m",
        "cron=*/5 * * * mon-fri",
        "file=/does/not/exist",
        " idle = 2.5 | stale=500ms ",
    ],
)
def test_check_policy_accepts(spec: str) -> None:
    check_policy(spec)


def test_policy_error_is_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


def test_every_term_is_a_policy() -> None:
    for cls in (IdlePolicy, EveryPolicy, CronPolicy, FilePolicy, StalePolicy, ManualPolicy):
        assert issubclass(cls, Policy)
    assert issubclass(CompositePolicy, Policy)


# --------------------------------------------------------------------------- edges
# Behaviour pinned after `make mutate` (docs/testing.md) showed that no test noticed a change.


class _BarePolicy(Policy):
    def next_wakeup(self, now: float) -> float | None:
        return None

    def poll(self, now: float) -> str | None:
        return None


def test_policy_base_class_defaults_and_reprs() -> None:
    p = _BarePolicy()
    assert p.term == ""
    assert repr(p) == "<_BarePolicy ''>"
    p.start(0.0)  # the optional hooks are no-ops
    p.on_call(1.0)
    p.on_slow_started(2.0)
    p.on_slow_finished(3.0)
    assert repr(IdlePolicy(10.0)) == "<IdlePolicy 'idle=10s'>"
    assert ManualPolicy().term == "manual"
    composite = parse_policy("idle=10s | stale=5m")
    assert composite.term == composite.spec == "idle=10s | stale=5m"
    assert repr(composite) == "<CompositePolicy 'idle=10s | stale=5m'>"
    assert composite.waiting is None


def test_format_duration_days_and_one_second() -> None:
    assert format_duration(86400) == "1d"
    assert format_duration(172800) == "2d"
    assert format_duration(1) == "1s"


@pytest.mark.parametrize("cls", [StalePolicy, EveryPolicy])
def test_countdown_not_due_before_start_nor_while_slow_call_runs(
    cls: type[StalePolicy] | type[EveryPolicy],
) -> None:
    p = cls(5.0)
    assert p.next_wakeup(100.0) is None
    assert p.poll(100.0) is None
    p.start(0.0)
    p.on_slow_started(5.0)
    assert p.next_wakeup(50.0) is None
    assert p.poll(50.0) is None
    p.on_slow_finished(50.0)
    assert p.next_wakeup(50.0) == 55.0


def test_every_default_has_no_jitter_and_jitter_draws_from_zero() -> None:
    p = EveryPolicy(60.0)
    assert (p.term, p.jitter) == ("every=1m", 0.0)
    p.start(100.0)
    assert p.next_wakeup(100.0) == 160.0
    p = EveryPolicy(60.0, jitter=10.0, rng=random.Random(1))
    p.start(100.0)
    draw = random.Random(1).uniform(0.0, 10.0)
    assert p.next_wakeup(100.0) == pytest.approx(100.0 + 60.0 + draw)


def test_every_zero_jitter_is_accepted() -> None:
    (term,) = parse_policy("every=10m~0s").terms
    assert isinstance(term, EveryPolicy)
    assert (term.term, term.jitter) == ("every=10m", 0.0)


def test_idle_not_due_before_start_even_with_calls() -> None:
    p = IdlePolicy(10.0)
    p.on_call(1.0)
    assert p.next_wakeup(100.0) is None
    assert p.poll(100.0) is None


def test_idle_slow_call_finished_before_start_leaves_it_disarmed() -> None:
    p = IdlePolicy(10.0)
    p.on_slow_finished(5.0)
    assert p.next_wakeup(5.0) is None
    assert p.poll(100.0) is None


def test_idle_start_again_disarms_it_and_ends_an_unfinished_slow_call() -> None:
    """The gate starts the policies again when a new host is ready (after a crash): it has
    just run the start-up slow call, perhaps without an on_slow_finished for the old one."""
    p = IdlePolicy(10.0)
    p.start(0.0)
    p.on_call(5.0)
    p.start(8.0)  # restarted: the configuration was just read again
    assert p.poll(100.0) is None
    p.on_slow_started(110.0)
    p.start(120.0)  # the host died during that slow call
    p.on_call(121.0)
    assert p.next_wakeup(121.0) == 131.0
    assert p.poll(131.0) == "idle 10s"


def test_cron_not_started_is_never_due() -> None:
    p = CronPolicy("0 3 * * *", wall_clock=FakeWall(utc(2024, 1, 1, 3, 0, 0)), tz=UTC)
    assert p.next_wakeup(0.0) is None
    assert p.poll(0.0) is None


def test_cron_slow_call_start_time_is_used_once() -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 59, 50))
    p = CronPolicy("0 3 * * *", wall_clock=wall, tz=UTC)
    p.start(0.0)
    p.on_slow_started(0.0)  # 02:59:50
    wall.now = 20.0
    p.on_slow_finished(20.0)  # 03:00:10: 03:00 passed while it ran
    assert p.poll(20.0) == "cron 0 3 * * *"
    wall.now = 30.0
    p.on_slow_finished(30.0)  # a finish the policy saw no start of: counts from now
    assert p.poll(30.0) is None
    assert p.next_wakeup(30.0) == pytest.approx(30.0 + 86400.0 - 20.0)  # 03:00:20 -> tomorrow


def test_cron_finish_without_start_counts_from_now() -> None:
    wall = FakeWall(utc(2024, 1, 1, 2, 59, 0))
    p = CronPolicy("0 3 * * *", wall_clock=wall, tz=UTC)
    p.start(0.0)
    wall.now = 120.0  # 03:01
    p.on_slow_finished(120.0)
    assert p.poll(120.0) is None
    assert p.next_wakeup(120.0) == pytest.approx(120.0 + 86400.0 - 60.0)


def test_file_policy_not_started_reads_nothing() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    assert p.next_wakeup(5.0) is None
    assert p.poll(5.0) is None
    assert files.reads == 0


def test_file_missing_read_drops_a_pending_candidate() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    files.content[PATH] = b"v2"
    assert p.poll(0.5) is None  # a candidate, seen once
    files.content[PATH] = None
    assert p.poll(1.0) is None  # missing: the candidate is dropped
    files.content[PATH] = b"v2"
    assert p.poll(1.5) is None  # v2 again: a new candidate that must settle again
    assert p.poll(2.0) == f"file {PATH} changed"


def test_file_revert_to_baseline_drops_the_candidate() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    files.content[PATH] = b"v2"
    assert p.poll(0.5) is None
    files.content[PATH] = b"v1"
    assert p.poll(1.0) is None  # back to the baseline
    files.content[PATH] = b"v2"
    assert p.poll(1.5) is None  # v2 again: must settle again
    assert p.poll(2.0) == f"file {PATH} changed"


def test_file_short_debounce_confirms_before_the_next_regular_read() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, debounce=0.25, poll_interval=1.0, read_file=files)
    p.start(0.0)
    files.content[PATH] = b"v2"
    assert p.poll(1.0) is None
    assert p.next_wakeup(1.0) == 1.25  # not 2.0, the next regular read
    assert p.poll(1.25) == f"file {PATH} changed"


def test_file_unsettled_candidate_is_forgotten_when_a_slow_call_starts() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    files.content[PATH] = b"v2"
    assert p.poll(0.5) is None  # unsettled when the slow call starts: it may have read half
    p.on_slow_started(0.6)
    p.on_slow_finished(5.0)
    assert p.poll(5.0) is None  # the same v2, seen anew: it must settle again
    assert p.poll(5.5) == f"file {PATH} changed"


def test_file_start_again_after_an_unfinished_slow_call_reads_again() -> None:
    files = FakeFiles({PATH: b"v1"})
    p = FilePolicy(PATH, read_file=files)
    p.start(0.0)
    p.on_slow_started(1.0)
    p.start(2.0)  # a new host is ready; the old one died during the slow call
    files.content[PATH] = b"v2"
    assert p.next_wakeup(2.0) == 2.5
    assert p.poll(2.5) is None
    assert p.poll(3.0) == f"file {PATH} changed"


def test_parse_file_expands_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    (term,) = parse_policy("file=~/mylib.conf").terms
    assert isinstance(term, FilePolicy)
    assert term.path == "/home/someone/mylib.conf"


def test_composite_lazy_start_by_poll() -> None:
    p = parse_policy("stale=5s")
    assert p.poll(100.0) is None
    assert p.poll(105.0) == "stale 5s"


def test_composite_next_wakeup_skips_terms_without_one() -> None:
    p = parse_policy("stale=5m | idle=10s")  # idle has none until a call
    p.start(0.0)
    assert p.next_wakeup(0.0) == 300.0


def test_composite_is_quiet_while_slow_call_runs_even_for_cron() -> None:
    """A cron term keeps its fire time during a slow call; the composite holds it back."""
    wall = FakeWall(utc(2024, 1, 1, 2, 59, 50))
    p = parse_policy("cron=0 3 * * *", wall_clock=wall, tz=UTC)
    p.start(0.0)
    p.on_slow_started(0.0)  # e.g. threadhost maintain at 02:59:50
    wall.now = 30.0  # 03:00:20, still running
    assert p.next_wakeup(30.0) is None
    assert p.poll(30.0) is None
    p.on_slow_finished(30.0)
    assert p.poll(30.0) == "cron 0 3 * * *"


def test_composite_waiting_only_for_a_due_trigger() -> None:
    p = parse_policy("stale=5s | min_gap=30s")
    p.start(0.0)
    p.on_slow_started(1.0)
    p.on_slow_finished(2.0)
    assert p.poll(3.0) is None
    assert p.waiting is None  # inside the gap, but nothing is due


def test_composite_waiting_cleared_by_slow_call_and_by_start() -> None:
    p = parse_policy("stale=5s | min_gap=30s")
    p.start(0.0)
    p.on_slow_started(1.0)
    p.on_slow_finished(2.0)
    assert p.poll(7.0) is None
    assert p.waiting is not None
    p.on_slow_started(8.0)  # a manual slow call
    assert p.waiting is None
    p.on_slow_finished(9.0)
    assert p.poll(14.0) is None
    assert p.waiting is not None
    p.start(15.0)  # a new host is ready
    assert p.waiting is None


def test_composite_start_again_ends_an_unfinished_slow_call() -> None:
    p = parse_policy("stale=5s")
    p.start(0.0)
    p.on_slow_started(1.0)
    p.start(10.0)  # the host died during the slow call; a new one is ready
    assert p.next_wakeup(10.0) == 15.0
    assert p.poll(15.0) == "stale 5s"


# --------------------------------------------------------------------------- docs


def test_docs_python_examples_run() -> None:
    if not DOCS.exists():
        pytest.skip("docs/policies.md not present")
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), {"__name__": "__docs__"})
