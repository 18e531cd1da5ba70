"""threadhost.testing: the pytest plugin (a served adapter per test, its log in a failing
test's report), adapters run in-process on one library thread, and the fake policy clock."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import threadhost
from threadhost.errors import AdapterError, BadArgumentsError, UnfitError, UnknownCallError
from threadhost.policy import Policy, parse_policy
from threadhost.testing import FakeClock, ThreadhostService, in_process

from .conftest import ROOT, write_mylib_config

pytest_plugins = ["pytester"]


@pytest.fixture
def quick_mylib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mylib configuration whose readConfig takes no time (the default takes up to 30 s)."""
    config = write_mylib_config(tmp_path / "mylib.toml", offset=1)
    monkeypatch.setenv("MYLIB_CONFIG", str(config))
    return config


# ----------------------------------------------------------------------------- the plugin


@pytest.mark.timeout(10)
def test_the_plugin_is_registered_by_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("threadhost")
    assert plugin is not None and plugin.__name__ == "threadhost.testing"


@pytest.mark.timeout(20)
def test_importing_the_plugin_stays_light() -> None:
    heavy = "('zmq', 'pydantic', 'threadhost.adapter')"
    code = f"import sys, threadhost.testing; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=15, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_threadhost_service_serves_a_ready_adapter(threadhost_service: Any, tmp_path: Path) -> None:
    config = write_mylib_config(tmp_path / "mylib.toml", offset=7)
    svc: ThreadhostService = threadhost_service(
        "examples.mylib_adapter", policy="manual", hosts=2, env={"MYLIB_CONFIG": str(config)}
    )
    assert svc.endpoint.startswith("tcp://127.0.0.1:")
    status = svc.status()
    assert status["state"] == "ready"
    lib = svc.client(timeout=5.0)
    assert lib.calc(5) == 12
    assert svc.wait_ready(limit=5)["state"] == "ready"
    assert svc.log() != ""
    assert svc.stop() == 0
    assert svc.stop() == 0  # again: the same code


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_a_service_that_cannot_start_fails_the_wait_with_its_log(threadhost_service: Any) -> None:
    with pytest.raises(AssertionError, match="exited with") as info:
        threadhost_service("no_such_module_for_threadhost")
    assert "no_such_module_for_threadhost" in str(info.value)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_failing_test_reports_the_service_log(pytester: pytest.Pytester) -> None:
    config = write_mylib_config(pytester.path / "mylib.toml", offset=1)
    pytester.makepyfile(
        test_served=f"""
        import os, signal
        ENV = {{"MYLIB_CONFIG": {str(config)!r}}}

        def test_fails(threadhost_service):
            svc = threadhost_service("examples.mylib_adapter", env=ENV)
            assert svc.client().calc(5) == 6
            assert False, "deliberate failure"

        def test_passes(threadhost_service):
            svc = threadhost_service("examples.mylib_adapter", env=ENV)
            assert svc.client().calc(5) == 6

        def test_leaves_nothing_behind(threadhost_service):
            svc = threadhost_service("examples.mylib_adapter", env=ENV)
            open("pid", "w").write(str(svc.proc.pid))
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA",
                                           "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    failures = out.split("= FAILURES =", 1)[1].split("= PASSES =", 1)[0]
    assert "threadhost service log" in failures
    assert "deliberate failure" in failures
    assert "examples.mylib_adapter at tcp://127.0.0.1:" in failures
    assert "ready" in failures  # the broker's own lines
    # a passing test gets no log section
    passes = out.split("= PASSES =", 1)[1] if "= PASSES =" in out else ""
    assert "threadhost service log" not in passes
    pid = int((pytester.path / "pid").read_text())
    psutil = pytest.importorskip("psutil")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# ----------------------------------------------------------------------------- in process


@pytest.mark.timeout(20)
def test_in_process_runs_mylib_calls(quick_mylib: Path) -> None:
    with in_process("examples.mylib_adapter") as lib:
        assert lib.calc(5) == 6
        write_mylib_config(quick_mylib, offset=40)
        assert lib.read_config() is None  # a slow call, then verify
        assert lib.calc(2) == 42
        assert lib.call("calc", x=1) == 41
        assert lib.thread is not threading.current_thread()
        assert "calc" in dir(lib)


@pytest.mark.timeout(20)
def test_in_process_validates_like_the_host(quick_mylib: Path) -> None:
    with in_process("examples.mylib_adapter:Mylib") as lib:
        with pytest.raises(BadArgumentsError, match="calc"):
            lib.calc("5")  # mylib would abort the process: the signature check stops it
        with pytest.raises(BadArgumentsError):
            lib.calc(1, 2)
        with pytest.raises(UnknownCallError):
            lib.call("nope")
        with pytest.raises(AttributeError):
            lib.nope  # noqa: B018
        with pytest.raises(BadArgumentsError):
            lib.calc(True)  # bool is not int on the wire either
        assert lib.calc(1) == 2


@pytest.mark.timeout(20)
def test_in_process_checks_results_raises_errors_and_verifies() -> None:
    class Odd(threadhost.Adapter):
        ok = True
        events: list[tuple[str, int]] = []  # noqa: RUF012

        def setup(self) -> None:
            self.events.append(("setup", threading.get_ident()))

        def teardown(self) -> None:
            self.events.append(("teardown", threading.get_ident()))

        def verify(self) -> None:
            if not Odd.ok:
                raise ValueError("not ok")

        @threadhost.slow
        def reload(self) -> None:
            self.events.append(("reload", threading.get_ident()))

        @threadhost.fast
        def wrong(self) -> int:
            return "text"  # type: ignore[return-value]

        @threadhost.fast
        def boom(self) -> int:
            raise KeyError("k")

        @threadhost.fast
        def pair(self, a: int, b: str = "x") -> tuple[int, str]:
            self.events.append(("pair", threading.get_ident()))
            return a, b

    with in_process(Odd) as lib:
        with pytest.raises(AdapterError, match="declared return type"):
            lib.wrong()
        with pytest.raises(KeyError):
            lib.boom()
        assert lib.pair(1) == [1, "x"]  # the wire form, as a client gets it
        Odd.ok = False
        with pytest.raises(UnfitError, match="not ok"):
            lib.reload()
        with pytest.raises(UnfitError):
            lib.pair(2)
        Odd.ok = True
        lib.reload()
        assert lib.unfit is None
        assert lib.pair(3, b="y") == [3, "y"]
    threads = {ident for _, ident in Odd.events}
    names = [name for name, _ in Odd.events]
    assert names[0] == "setup" and names[-1] == "teardown"
    assert len(threads) == 1 and threading.get_ident() not in threads


@pytest.mark.timeout(20)
def test_in_process_tears_down_when_the_block_raises(quick_mylib: Path) -> None:
    with pytest.raises(RuntimeError, match="in the block"), \
            in_process("examples.mylib_adapter") as lib:
        lib.calc(1)
        raise RuntimeError("in the block")
    # uninit ran: a second instance can init again (mylib aborts on a double init)
    with in_process("examples.mylib_adapter") as lib:
        assert lib.calc(1) == 2


WITNESS = """
import os, sys, threading
from examples import mylib
from threadhost.testing import in_process

with in_process("examples.mylib_adapter") as lib:
    for i in range(50):
        assert lib.calc(i) == i + 1
    lib.read_config()
    assert lib.calc(1) == 2
    assert lib.thread.ident != threading.get_ident()
    print("calls ok", flush=True)
    if sys.argv[1:] == ["foreign"]:
        mylib.calc(1)  # the negative control: mylib kills a caller on a foreign thread
print("torn down", flush=True)
"""


@pytest.mark.timeout(30)
def test_mylib_witnesses_that_every_call_runs_on_one_thread(tmp_path: Path) -> None:
    """mylib aborts the process when any call comes from another thread than init's: a clean
    exit proves setup, the start-up readConfig, every call and uninit ran on one thread; the
    negative control proves the witness would have noticed."""
    script = tmp_path / "witness.py"
    script.write_text(WITNESS)
    env = {"MYLIB_CONFIG": str(write_mylib_config(tmp_path / "mylib.toml")),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    good = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=20, cwd=ROOT, env=env)
    assert good.returncode == 0, good.stderr
    assert good.stdout.split() == ["calls", "ok", "torn", "down"]
    bad = subprocess.run([sys.executable, str(script), "foreign"], capture_output=True,
                         text=True, timeout=20, cwd=ROOT, env=env)
    assert bad.returncode < 0 and "calls ok" in bad.stdout
    assert "mylib: fatal: calc() called from thread" in bad.stderr


# ----------------------------------------------------------------------------- fake clock


@pytest.mark.timeout(10)
def test_fake_clock_basics() -> None:
    clock = FakeClock()
    assert clock.now == 0.0 and clock() == 0.0
    assert clock.advance(2.5) == 2.5 and clock.now == 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert FakeClock(start=100).now == 100.0


@pytest.mark.timeout(10)
def test_fake_clock_runs_a_quiet_policy_on_stale_alone() -> None:
    clock = FakeClock()
    fired = clock.run(parse_policy("idle=10s | stale=5m"), until=1000)
    assert fired == [300.0, 600.0, 900.0]
    assert clock.now == 1000.0
    assert [reason for _, reason in clock.history] == [clock.history[0][1]] * 3
    assert "stale" in clock.history[0][1]


@pytest.mark.timeout(10)
def test_fake_clock_idle_is_armed_by_calls_and_slow_calls_take_time() -> None:
    clock = FakeClock()
    policy = parse_policy("idle=10s | stale=5m")
    # a call at 5 arms idle (due 15); the reload takes 30 s (to 45); the call at 20 is
    # refused busy and arms nothing; stale counts from the end of each slow call
    fired = clock.run(policy, until=1000, calls=[5, 20], slow_seconds=30)
    assert fired == [15.0, 345.0, 675.0]
    assert "idle" in clock.history[0][1]


@pytest.mark.timeout(10)
def test_fake_clock_continues_where_it_stopped() -> None:
    clock = FakeClock()
    policy = parse_policy("idle=10s | stale=5m")
    assert clock.run(policy, until=100, calls=[50, 55]) == [65.0]
    clock.advance(10)  # nothing happens between runs unless told
    assert clock.run(policy, until=400, calls=[200], start=False) == [210.0]
    assert clock.now == 400.0


@pytest.mark.timeout(10)
def test_fake_clock_with_a_manual_policy_never_fires() -> None:
    clock = FakeClock()
    assert clock.run(parse_policy("manual"), until=10_000, calls=[1, 2, 3]) == []


@pytest.mark.timeout(10)
def test_fake_clock_stops_a_policy_that_never_settles() -> None:
    class Stuck(Policy):  # always "wake me now", never due
        def next_wakeup(self, now: float) -> float | None:
            return now

        def poll(self, now: float) -> str | None:
            return None

    with pytest.raises(RuntimeError, match="did not settle"):
        FakeClock().run(Stuck(), until=10, max_steps=100)


def test_docs_describe_the_plugin() -> None:
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split("## Testing your adapter", 1)[1]
    for name in ("threadhost_service", "in_process", "FakeClock", "threadhost service log"):
        assert name in section, name


@pytest.mark.timeout(10)
def test_fake_clock_as_the_wall_clock_of_a_cron_policy() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    clock = FakeClock(start=start)
    policy = parse_policy("cron=0 3 * * *", wall_clock=clock, tz=UTC)
    fired = clock.run(policy, until=start + 3 * 86400)
    assert [(t - start) / 3600 for t in fired] == [3.0, 27.0, 51.0]
