"""Manual maintenance is rate-limited: ``--maintain-budget`` (``serve``, ``broker``, the
config file) reaches the gate, and end to end a client looping ``maintain`` as fast as it can
keeps a one-host service busy at most about half of the time — and much more with the limit
off (so the measurement can fail). The gate's rule itself is pinned in
tests/test_gate_ratelimit.py."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import threadhost
from threadhost import cli
from threadhost.config import ConfigError, load_config
from threadhost.config import main as config_main
from threadhost.errors import BusyError
from threadhost.gate import GateConfig
from threadhost.testing import ThreadhostService

# --------------------------------------------------------------------------- options


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[GateConfig]]:
    """``Broker`` replaced by a recorder of its GateConfig; no preflight subprocess."""
    configs: list[GateConfig] = []

    class Recorder:
        stop_reason = None

        def __init__(self, target: str | None, *, config: GateConfig, **kw: Any) -> None:
            configs.append(config)

        def check_endpoints(self) -> None:
            pass

        def run(self) -> int:
            return 0

    import threadhost.broker

    monkeypatch.setattr(threadhost.broker, "Broker", Recorder)
    monkeypatch.setattr(cli, "preflight", lambda target: {"adapter": target, "replicable": True})
    monkeypatch.delenv("THREADHOST_MAINTAIN_BUDGET", raising=False)
    yield configs


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env)


BROKER = ("broker", "--backend", "tcp://127.0.0.1:1")


@pytest.mark.parametrize("command", [("serve", "examples.mylib_adapter"), BROKER])
@pytest.mark.parametrize(("given", "value"), [
    ((), 0.5), (("--maintain-budget", "0.25"), 0.25), (("--maintain-budget", "1"), 1.0),
    (("--maintain-budget", "80%"), 0.8), (("--maintain-budget=0.001",), 0.001),
])
def test_maintain_budget_reaches_the_gate(built: list[GateConfig], command: tuple[str, ...],
                                          given: tuple[str, ...], value: float) -> None:
    result = run(*command, *given)
    assert result.exit_code == 0, result.stderr
    assert [c.maintain_budget for c in built] == [value]


def test_maintain_budget_from_the_environment(built: list[GateConfig]) -> None:
    assert run("serve", "examples.mylib_adapter",
               env={"THREADHOST_MAINTAIN_BUDGET": "0.75"}).exit_code == 0
    assert built[0].maintain_budget == 0.75


@pytest.mark.parametrize("command", [("serve", "examples.mylib_adapter"), BROKER])
@pytest.mark.parametrize("value", ["0", "-0.5", "1.5", "101%", "half", "nan", ""])
def test_bad_maintain_budget_is_one_line_exit_2(built: list[GateConfig],
                                                command: tuple[str, ...], value: str) -> None:
    result = run(*command, "--maintain-budget", value)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"threadhost: error: --maintain-budget must be a fraction > 0 and <= 1 (e.g. 0.5 or "
        f"50%), got {value!r}"]
    assert built == []


def test_maintain_budget_in_the_config_file(tmp_path: Path, built: list[GateConfig],
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "serve.toml"
    path.write_text('adapter = "examples.mylib_adapter"\nmaintain_budget = 0.2\n')
    assert load_config(path).maintain_budget == 0.2
    assert config_main([str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["maintain_budget"] == 0.2
    monkeypatch.setattr(cli, "load_config_isolated", lambda p: {
        "adapter": "examples.mylib_adapter", "maintain_budget": 0.2})
    assert run("serve", "--config", str(path)).exit_code == 0
    assert run("serve", "--config", str(path), "--maintain-budget", "0.9").exit_code == 0
    assert [c.maintain_budget for c in built] == [0.2, 0.9]  # the command line wins


@pytest.mark.parametrize(("text", "message"), [
    ("maintain_budget = 0\n", "maintain_budget: Input should be greater than 0"),
    ("maintain_budget = 1.5\n", "maintain_budget: Input should be less than or equal to 1"),
    ('maintain_budget = "half"\n', "maintain_budget: Input should be a valid number"),
])
def test_bad_maintain_budget_in_the_config_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "serve.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"config {path}: {message}")


# --------------------------------------------------------------------------- end to end

SLOW_CALL = 0.3  # seconds of mylib's read_config
LOOP = 6.0  # seconds of the maintain loop


def hammer(svc: ThreadhostService, seconds: float = LOOP) -> dict[str, Any]:
    """For ``seconds``: one thread sends ``maintain`` as fast as it can, another calls
    ``calc`` every 5 ms. Returns the share of the time the service spent in manual
    maintenance (from ``status``: busy seconds / elapsed) and the calls' outcomes."""
    stop = threading.Event()
    counts: Counter[str] = Counter()
    errors: list[BaseException] = []

    def loop(body: Callable[[threadhost.Client], None]) -> None:
        try:
            with threadhost.connect(svc.endpoint, timeout=5.0) as c:
                while not stop.is_set():
                    body(c)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    def maintain(c: threadhost.Client) -> None:
        counts["started" if threadhost.Client.maintain(c).started else "not started"] += 1

    def call(c: threadhost.Client) -> None:
        try:
            c.calc(1)
            counts["served"] += 1
        except BusyError:
            counts["busy"] += 1
        time.sleep(0.005)

    before = svc.status()["manual_maintenance"]["busy"]
    threads = [threading.Thread(target=loop, args=(f,)) for f in (maintain, call)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(30)
    status = svc.wait_ready()  # a round still running counts until it ends
    elapsed = time.monotonic() - t0
    assert not errors, errors
    busy = status["manual_maintenance"]["busy"] - before
    calls = counts["served"] + counts["busy"]
    return {"busy_share": busy / elapsed, "busy_seconds": busy, "elapsed": elapsed,
            "refused_share": counts["busy"] / max(1, calls), **counts}


@pytest.fixture
def mylib_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "mylib.toml"
    config.write_text(f"offset = 1\nread_min_seconds = {SLOW_CALL}\n"
                      f"read_max_seconds = {SLOW_CALL}\n")
    return {"MYLIB_CONFIG": str(config)}


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_maintain_loop_keeps_a_one_host_service_busy_at_most_half_of_the_time(
        threadhost_service: Callable[..., ThreadhostService], mylib_env: dict[str, str]) -> None:
    limited = threadhost_service("examples.mylib_adapter", env=mylib_env)  # the default: 0.5
    with_limit = hammer(limited)
    limited.stop()
    print("default budget:", with_limit)
    unlimited = threadhost_service("examples.mylib_adapter", env=mylib_env,
                                   args=["--maintain-budget", "1"])
    without = hammer(unlimited)
    print("--maintain-budget 1:", without)
    # each manual round is followed by as long without one: busy <= 1/2 (+ one round at
    # the edge of the window, and scheduling slack on a loaded machine)
    assert with_limit["busy_share"] <= 0.5 + 0.1, with_limit
    assert with_limit["started"] >= 3, with_limit  # maintenance itself still works
    assert with_limit["not started"] > with_limit["started"], with_limit
    assert with_limit["served"] > 0, with_limit
    # the same loop without the limit: the service is busy nearly all the time
    assert without["busy_share"] >= 0.8, without
    assert without["refused_share"] > with_limit["refused_share"], (with_limit, without)
