"""``verify``: an adapter's own check that its library instance is fit to serve (R54).

Rules under test (docs/protocol.md §11, R37, R54; docs/adapters.md "verify"):

* the hook: optional (the base's is a no-op), a plain method taking only ``self``, never
  declared ``@fast``/``@slow`` nor client-callable; described as ``verify`` (bool), not
  fingerprinted;
* at start-up with no start-up slow call, ``verify`` runs before ``ready``; if it raises the
  host tears down, says ``goodbye(ok=false, code=unfit, "Class.verify failed: Type: msg")``
  and exits 4;
* after every slow call, whatever its outcome, ``verify`` runs; if it raises, the slow call
  is answered ``unfit`` ("verify failed after 'NAME': Type: msg", plus the slow call's own
  failure when it failed too) and fast calls are refused with ``unfit`` until a later slow
  call passes ``verify``;
* mylib's adapter: a configuration that mylib applies without complaint but that is
  incomplete (no ``offset``) or insane (negative ``offset``) fails ``verify``;
* the conformance kit's ``host.verify`` passes our host, fit or unfit, and fails a host that
  serves fast calls after answering ``unfit``.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import threadhost
from examples import mylib
from examples.mylib_adapter import Mylib
from tests.conftest import ROOT
from tests.fake_broker import SLACK, FakeBroker, fake_brokers
from threadhost.adapter import Adapter, fast, inspect_adapter, load_adapter, slow
from threadhost.conformance import run_conformance
from threadhost.errors import AdapterError, UnknownCallError
from threadhost.protocol import ErrorCode, Goodbye, Heartbeat, Ready, Result, Shutdown, encode

HOST_ID = "V"


# --------------------------------------------------------------------------- the hook


def _adapter(**attrs: Any) -> type[Adapter]:
    def echo(self: Adapter, x: int) -> int:
        return x

    return type("Lib", (Adapter,), {**attrs, "echo": fast(echo)})


def test_verify_is_optional_and_described_without_changing_the_fingerprint() -> None:
    Adapter().verify()  # the base's: a no-op
    plain = inspect_adapter(_adapter())
    assert plain.has_verify is False and plain.describe()["verify"] is False

    def verify(self: Adapter) -> None:
        raise RuntimeError("never fit")

    checked = inspect_adapter(_adapter(verify=verify))
    assert checked.has_verify is True and checked.describe()["verify"] is True
    assert checked.fingerprint == plain.fingerprint
    assert load_adapter("examples.mylib_adapter").has_verify is True
    assert inspect_adapter(type("Child", (Mylib,), {})).has_verify is True  # inherited


def test_verify_is_not_client_callable() -> None:
    def verify(self: Adapter) -> None:
        pass

    spec = inspect_adapter(_adapter(verify=verify))
    with pytest.raises(UnknownCallError, match=re.escape(
            "Lib has no client-callable call 'verify' (verify is run by the host")):
        spec.client_call("verify")


@pytest.mark.parametrize("decorator", [fast, slow])
def test_verify_cannot_be_declared_a_call(decorator: Any) -> None:
    def verify(self: Adapter) -> None:
        pass

    with pytest.raises(AdapterError, match=re.escape(
            "Lib.verify: verify runs on the library thread after start-up and after every "
            "slow call; it cannot be declared")):
        inspect_adapter(_adapter(verify=decorator(verify)))


async def _async_hook(self: Adapter) -> None:
    pass


def _generator_hook(self: Adapter) -> Iterator[None]:
    yield None


def _hook_with_argument(self: Adapter, strict: bool) -> None:
    pass


def _hook_with_default(self: Adapter, strict: bool = True) -> None:
    pass


@pytest.mark.parametrize("hook", ["verify", "setup", "teardown"])
@pytest.mark.parametrize(("value", "message"), [
    (staticmethod(lambda: None), "must be a plain method (def {h}(self) -> None), not a "
                                 "staticmethod"),
    (classmethod(lambda cls: None), "must be a plain method (def {h}(self) -> None), not a "
                                    "classmethod"),
    (property(lambda self: None), "must be a plain method (def {h}(self) -> None), not a "
                                  "property"),
    ("yes", "must be a plain method (def {h}(self) -> None), got 'yes'"),
    (_async_hook, ": async methods cannot run on the library thread"),
    (_generator_hook, "must be a plain method (def {h}(self) -> None), not a generator"),
    (_hook_with_argument, "takes no arguments besides self (the host calls {h}()); "
                          "remove 'strict'"),
])
def test_lifecycle_hooks_are_validated(hook: str, value: Any, message: str) -> None:
    with pytest.raises(AdapterError, match=re.escape(f"Lib.{hook}" + message.format(h=hook))
                       if message.startswith(":") else
                       re.escape(f"Lib.{hook} " + message.format(h=hook))):
        inspect_adapter(_adapter(**{hook: value}))


def test_hooks_may_take_optional_arguments() -> None:
    assert inspect_adapter(_adapter(verify=_hook_with_default)).has_verify is True


# --------------------------------------------------------------------------- mylib's verify


@pytest.fixture
def mylib_on_this_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                         ) -> Iterator[Callable[[str | None], None]]:
    """mylib initialised on this (the main) thread; ``read(text)`` writes ``text`` as the
    configuration file (None: no file) and runs readConfig without its nap."""
    monkeypatch.setattr(random, "uniform", lambda low, high: 0.0)
    monkeypatch.delenv(mylib.CONFIG_ENV, raising=False)
    mylib.init()

    def read(text: str | None, path: Path = tmp_path / "test-verify-mylib.toml") -> None:
        if text is None:
            monkeypatch.delenv(mylib.CONFIG_ENV, raising=False)
        else:
            path.write_text(text)
            monkeypatch.setenv(mylib.CONFIG_ENV, str(path))
        mylib.readConfig()

    try:
        yield read
    finally:
        mylib.uninit()


def test_mylib_verify_accepts_defaults_and_complete_files(
        mylib_on_this_thread: Callable[[str | None], None]) -> None:
    mylib_on_this_thread(None)
    Mylib().verify()
    assert mylib.state().configured and mylib.state().source is None
    mylib_on_this_thread("offset = 0\nread_max_seconds = 0\n")
    Mylib().verify()
    assert mylib.state().keys == {"offset", "read_max_seconds"}


def test_mylib_verify_refuses_what_mylib_takes_silently(
        mylib_on_this_thread: Callable[[str | None], None]) -> None:
    with pytest.raises(RuntimeError, match="no configuration: readConfig has not completed"):
        Mylib().verify()  # init() alone: no readConfig yet
    mylib_on_this_thread("read_max_seconds = 0\n")  # mylib uses the default offset
    assert mylib.calc(1) == 2
    with pytest.raises(ValueError, match=r"test-verify-mylib.toml does not set offset \(mylib "
                                         r"would use the default, 1\)"):
        Mylib().verify()
    mylib_on_this_thread("offset = -5\nread_max_seconds = 0\n")
    assert mylib.calc(1) == -4
    with pytest.raises(ValueError, match="offset = -5 is negative"):
        Mylib().verify()
    mylib_on_this_thread("offset = 3\nread_max_seconds = 0\n")
    Mylib().verify()


def test_mylib_state_stays_hostile(tmp_path: Path) -> None:
    code = """
        import threading
        from examples import mylib
        mylib.init()
        threading.Thread(target=mylib.state).start()
        import time; time.sleep(5)
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode < 0 and "state() called from thread" in result.stderr


# --------------------------------------------------------------------------- the host


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Callable[..., FakeBroker]]:
    with fake_brokers(tmp_path, HOST_ID) as start:
        yield lambda target="tests.conformance_adapters:Unfit", **env: start(target, env=env)


def _not_beat(msg: Any) -> bool:
    return not isinstance(msg, Heartbeat)


def test_a_failing_startup_verify_means_goodbye_unfit_and_exit_4(
        host: Callable[..., FakeBroker]) -> None:
    fb = host(UNFIT_STARTUP="1")
    first = fb.first(_not_beat)
    assert isinstance(first, Goodbye), first
    assert (first.ok, first.code) == (False, ErrorCode.UNFIT)
    assert first.message == "Unfit.verify failed: RuntimeError: bad state after 0 reloads"
    assert fb.proc.wait(SLACK) == 4
    assert "verify failed" in fb.log.read_text()


def test_a_slow_call_that_leaves_a_bad_state_is_answered_unfit(
        host: Callable[..., FakeBroker]) -> None:
    fb = host(UNFIT_RELOADS="bad,ok")
    ready = fb.first(_not_beat)
    assert isinstance(ready, Ready) and ready.adapter["verify"] is True  # verify passed first
    assert fb.call("echo", 7).value == 7
    unfit = fb.call("reload")
    assert unfit.code is ErrorCode.UNFIT
    assert unfit.message == "verify failed after 'reload': RuntimeError: bad state after 1 reloads"
    assert unfit.remote_type == "RuntimeError" and "verify" in (unfit.traceback or "")
    for method, args in (("echo", [8]), ("reloads", [])):  # no fast call reaches the library
        refused = fb.call(method, *args)
        assert refused.code is ErrorCode.UNFIT, refused
        assert refused.message.startswith("unfit: verify failed after 'reload'")
    assert fb.call("echo", "x").code is ErrorCode.BAD_ARGUMENTS  # arguments checked first
    assert fb.call("nope").code is ErrorCode.UNKNOWN_CALL
    assert isinstance(fb.call("reload"), Result)  # a reload that passes verify: fit again
    assert fb.call("echo", 9).value == 9
    assert fb.call("reloads").value == 2


def test_both_failures_are_named_and_a_failed_reload_that_stays_fit_keeps_its_error(
        host: Callable[..., FakeBroker]) -> None:
    fb = host(UNFIT_RELOADS="raise,raise-bad")
    assert isinstance(fb.first(_not_beat), Ready)
    own = fb.call("reload")  # the state stays good: the slow call's own error
    assert own.code is ErrorCode.REMOTE_EXCEPTION and own.message == "reload 1 failed"
    assert fb.call("echo", 1).value == 1
    both = fb.call("reload")
    assert both.code is ErrorCode.UNFIT
    assert both.message == ("verify failed after 'reload': RuntimeError: bad state after 2 "
                            "reloads ('reload' itself failed: reload 2 failed)")
    fb.sock.send_multipart([HOST_ID.encode(), *encode(Shutdown(reason="test"))])
    bye = fb.first(lambda m: isinstance(m, Goodbye))
    assert bye.ok is True  # an unfit instance still tears down cleanly
    assert fb.proc.wait(SLACK) == 0


def test_verify_runs_after_the_startup_slow_call_not_before_ready(
        host: Callable[..., FakeBroker], tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("read_max_seconds = 0\n")  # no offset: mylib takes it, verify does not
    fb = host("examples.mylib_adapter", MYLIB_CONFIG=str(config))
    assert isinstance(fb.first(_not_beat), Ready)  # verify waits for the start-up call
    answer = fb.call("read_config")
    assert answer.code is ErrorCode.UNFIT
    assert answer.message.startswith("verify failed after 'read_config': ValueError: ")
    assert answer.message.endswith("bad.toml does not set offset (mylib would use the "
                                   "default, 1)")
    assert fb.call("calc", 1).code is ErrorCode.UNFIT  # never 2, from the bad state
    config.write_text("offset = 4\nread_max_seconds = 0\n")
    assert isinstance(fb.call("read_config"), Result)
    assert fb.call("calc", 1).value == 5


# --------------------------------------------------------------------------- the kit


def test_kit_host_verify_passes_unfit_and_fit_hosts() -> None:
    report = run_conformance("tcp://127.0.0.1:*", role="host",
                             spawn="tests.conformance_adapters:Unfit", probe=("echo", [1]),
                             slow="reload", heartbeat_interval=0.5, timeout=3.0, quiet=0.15,
                             select=["host.slow-call", "host.verify"])
    result = report.result("host.verify")
    assert result is not None and result.status == "PASS", report.format()
    assert "reload -> unfit: RuntimeError: bad state after 1 reloads" in result.detail
    assert result.detail.endswith("then echo -> unfit")
    fit = run_conformance("tcp://127.0.0.1:*", role="host",
                          spawn="tests.conformance_adapters:Unfit", probe=("echo", [1]),
                          slow="reload", env={"UNFIT_RELOADS": "ok"}, timeout=3.0,
                          quiet=0.15, select=["host.verify"])
    result = fit.result("host.verify")
    assert result is not None and result.status == "PASS", fit.format()
    assert "fit (the adapter has a verify)" in result.detail


WRONG_HOST = """
import sys
import threadhost.host as h
original = h.Host._verify_after
def forgetful(self, *args):  # answers unfit, then serves fast calls anyway
    answer = original(self, *args)
    self._unfit = None
    return answer
h.Host._verify_after = forgetful
sys.exit(h.main(["tests.conformance_adapters:Unfit", "--connect", sys.argv[1]]))
"""


def test_kit_host_verify_fails_a_host_that_serves_after_unfit() -> None:
    report = run_conformance("tcp://127.0.0.1:*", role="host",
                             command=[sys.executable, "-c", WRONG_HOST, "{endpoint}"],
                             probe=("echo", [1]), slow="reload", timeout=3.0, quiet=0.15,
                             select=["host.verify"])
    result = report.result("host.verify")
    assert result is not None and result.status == "FAIL", report.format()
    assert "an unfit instance must refuse fast calls with unfit" in result.detail


# --------------------------------------------------------------------------- end to end


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_serve_does_not_start_from_a_configuration_verify_rejects(
        service_factory: Any) -> None:
    svc = service_factory(offset=-3)  # mylib applies it; mylib's verify does not
    assert svc.proc.wait(30) != 0
    assert "verify failed after 'read_config': ValueError: " in svc.log()
    assert "offset = -3 is negative" in svc.log()


@pytest.mark.e2e
@pytest.mark.timeout(90)
def test_a_reload_verify_rejects_is_never_served(service_factory: Any) -> None:
    svc = service_factory(offset=5)
    svc.wait_state("ready")
    lib = svc.client(timeout=5.0)
    assert lib.calc(1) == 6
    svc.config.write_text("read_min_seconds = 0\nread_max_seconds = 0\n")  # no offset: 1
    with threadhost.connect(svc.endpoint, timeout=5.0) as c:
        assert c.maintain().started
    results: list[Any] = []
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        try:
            results.append(lib.calc(1))
        except threadhost.ThreadhostError as exc:
            results.append(type(exc).__name__)
        time.sleep(0.01)
    assert 2 not in results, results  # x + the default offset: the state verify refused
    assert any(isinstance(r, str) for r in results), results
