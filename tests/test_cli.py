"""Unit tests for the command line (threadhost.cli): option parsing and validation, the
GateConfig that ``serve`` and ``broker`` build, the replicable check, and ``status``'s
text form and exit codes. No broker, host or socket is started: ``Broker``, ``preflight``
and the status client are replaced (one test runs the real preflight in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

import threadhost.client
from threadhost import cli
from threadhost.errors import CallTimeoutError
from threadhost.gate import GateConfig

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
MYLIB = {"adapter": "examples.mylib_adapter:Mylib", "default_policy": "idle=10s | stale=5m",
         "replicable": True}


class FakeBroker:
    """Stands in for threadhost.broker.Broker: records what it was built with."""

    built: ClassVar[list[FakeBroker]] = []

    def __init__(self, target: str | None, *, endpoint: str, config: GateConfig,
                 log_level: str, backend: str | None = None) -> None:
        self.target, self.endpoint, self.config = target, endpoint, config
        self.backend, self.log_level = backend, log_level
        FakeBroker.built.append(self)

    def run(self) -> int:
        return 0


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Broker replaced; preflight answers with ``fake["description"]`` (mylib's by default)
    and counts its calls."""
    state: dict[str, Any] = {"description": dict(MYLIB), "preflights": 0}

    def preflight(target: str) -> dict[str, Any]:
        state["preflights"] += 1
        return dict(state["description"])

    FakeBroker.built = []
    monkeypatch.setattr(cli, "Broker", FakeBroker)
    monkeypatch.setattr(cli, "preflight", preflight)
    return state


def run(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args))


def one_error_line(result: Result, code: int = 2) -> str:
    assert result.exit_code == code, (result.output, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("threadhost: error: ")
    return lines[0].removeprefix("threadhost: error: ")


def served_config(*args: str) -> GateConfig:
    result = run("serve", *args)
    assert result.exit_code == 0, (result.output, result.stderr)
    assert len(FakeBroker.built) == 1
    return FakeBroker.built[0].config


# ----------------------------------------------------------------------------- serve: parsing


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--hosts", "0", "--hosts must be an integer >= 1, got '0'"),
        ("--hosts", "-3", "--hosts must be an integer >= 1, got '-3'"),
        ("--hosts", "abc", "--hosts must be an integer >= 1, got 'abc'"),
        ("--hosts", "1.5", "--hosts must be an integer >= 1, got '1.5'"),
        ("--hosts", "", "--hosts must be an integer >= 1, got ''"),
        ("--max-maintaining", "0", "--max-maintaining must be an integer >= 1, got '0'"),
        ("--max-maintaining", "two", "--max-maintaining must be an integer >= 1, got 'two'"),
        ("--route-away-after", "0", "--route-away-after must be greater than 0, got '0'"),
        ("--route-away-after", "0ms", "--route-away-after must be greater than 0, got '0ms'"),
        ("--route-away-after", "soon", "--route-away-after: bad duration 'soon'"),
        ("--route-away-after", "-2s", "--route-away-after: bad duration '-2s'"),
        ("--heartbeat-timeout", "0", "--heartbeat-timeout must be greater than 0, got '0'"),
        ("--heartbeat-timeout", "-1", "--heartbeat-timeout: bad duration '-1'"),
        ("--fast-call-limit", "0s", "--fast-call-limit must be greater than 0, got '0s'"),
        ("--restart-window", "0", "--restart-window must be greater than 0, got '0'"),
        ("--restart-limit", "-3", "--restart-limit must be an integer >= 0, got '-3'"),
        ("--restart-limit", "x", "--restart-limit must be an integer >= 0, got 'x'"),
    ],
)
def test_serve_bad_option_one_line_exit_2_before_anything_starts(
        fake: dict[str, Any], option: str, value: str, message: str) -> None:
    result = run("serve", "examples.mylib_adapter", option, value)
    assert message in one_error_line(result)
    assert result.stdout == ""
    assert fake["preflights"] == 0 and FakeBroker.built == []


@pytest.mark.parametrize("form", [["--hosts=0"], ["--hosts", "0"]])
def test_bad_hosts_in_either_form(fake: dict[str, Any], form: list[str]) -> None:
    assert one_error_line(run("serve", "examples.mylib_adapter", *form)) == (
        "--hosts must be an integer >= 1, got '0'")


# ----------------------------------------------------------------------------- serve: wiring


def test_serve_defaults(fake: dict[str, Any]) -> None:
    config = served_config("examples.mylib_adapter")
    base = GateConfig()
    assert config.hosts == 1 and config.spawn is True
    assert config.max_maintaining == base.max_maintaining == 1
    assert config.route_away_after is None
    assert (config.heartbeat_timeout, config.fast_call_limit) == (base.heartbeat_timeout,
                                                                  base.fast_call_limit)
    assert (config.restart_limit, config.restart_window) == (base.restart_limit,
                                                             base.restart_window)
    broker = FakeBroker.built[0]
    assert broker.target == "examples.mylib_adapter"
    assert broker.endpoint == "tcp://127.0.0.1:6000"


def test_serve_pool_options(fake: dict[str, Any]) -> None:
    config = served_config("examples.mylib_adapter", "--hosts", "3", "--max-maintaining", "2",
                           "--route-away-after", "500ms", "--heartbeat-timeout", "2s",
                           "--fast-call-limit", "1m", "--restart-limit", "0",
                           "--restart-window", "10s")
    assert config.hosts == 3
    assert config.max_maintaining == 2
    assert config.route_away_after == 0.5
    assert config.heartbeat_timeout == 2.0
    assert config.fast_call_limit == 60.0
    assert config.restart_limit == 0  # 0 is a value, not "use the default"
    assert config.restart_window == 10.0


def test_non_replicable_adapter_refused_with_two_hosts(fake: dict[str, Any]) -> None:
    fake["description"] = {"adapter": "examples.foo:Foo", "replicable": False}
    result = run("serve", "examples.foo:Foo", "--hosts", "2")
    assert one_error_line(result) == (
        "examples.foo:Foo is not replicable (replicable = False): it cannot run with --hosts 2")
    assert FakeBroker.built == []


def test_missing_replicable_key_means_not_replicable(fake: dict[str, Any]) -> None:
    fake["description"] = {"adapter": "examples.foo:Foo"}
    line = one_error_line(run("serve", "examples.foo:Foo", "--hosts", "4"))
    assert line == ("examples.foo:Foo is not replicable (replicable = False): "
                    "it cannot run with --hosts 4")
    assert FakeBroker.built == []


def test_non_replicable_adapter_serves_with_one_host(fake: dict[str, Any]) -> None:
    fake["description"] = {"adapter": "examples.foo:Foo", "replicable": False}
    assert served_config("examples.foo:Foo", "--hosts", "1").hosts == 1
    FakeBroker.built = []
    assert served_config("examples.foo:Foo").hosts == 1


def test_replicable_adapter_serves_a_pool(fake: dict[str, Any]) -> None:
    assert served_config("examples.mylib_adapter", "--hosts", "2").hosts == 2


def test_non_replicable_refused_by_the_real_preflight(tmp_path: Path) -> None:
    """End to end through ``python -m threadhost``: the real ``--describe`` subprocess says
    replicable = False, and nothing is started (no endpoint is ever bound: the command
    returns at once with one line)."""
    (tmp_path / "solo_lib.py").write_text(
        "import threadhost\n\n"
        "class Solo(threadhost.Adapter):\n"
        "    @threadhost.fast\n"
        "    def calc(self, x: int) -> int:\n"
        "        return x\n"
    )
    env = {**cli._child_env(), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "threadhost", "serve", "solo_lib", "--hosts",
                           "2", "--endpoint", "tcp://127.0.0.1:1"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "threadhost: error: solo_lib:Solo is not replicable (replicable = False): "
        "it cannot run with --hosts 2"]
    assert proc.stdout == ""


# ----------------------------------------------------------------------------- serve: --config


def settings(**values: Any) -> dict[str, Any]:
    """What ``python -m threadhost.config`` prints: every key, None when unset."""
    keys = ("adapter", "endpoint", "policy", "log_level", "fast_call_limit",
            "heartbeat_timeout", "restart_window", "restart_limit", "hosts", "max_maintaining",
            "route_away_after")
    out: dict[str, Any] = dict.fromkeys(keys)
    out["policies"] = {}
    out.update(values)
    return out


def test_config_file_fills_what_the_command_line_leaves_unset(
        fake: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "load_config_isolated", lambda path: settings(
        adapter="examples.mylib_adapter", hosts=3, max_maintaining=2, route_away_after=1.5,
        heartbeat_timeout=2.0, restart_limit=0, restart_window=30.0, fast_call_limit=9.0))
    config = served_config("--config", "serve.toml")
    assert (config.hosts, config.max_maintaining, config.route_away_after) == (3, 2, 1.5)
    assert (config.heartbeat_timeout, config.fast_call_limit) == (2.0, 9.0)
    assert (config.restart_limit, config.restart_window) == (0, 30.0)


def test_command_line_wins_over_config_file(fake: dict[str, Any],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "load_config_isolated", lambda path: settings(
        adapter="examples.mylib_adapter", hosts=3, max_maintaining=2, route_away_after=1.5,
        restart_limit=4))
    config = served_config("--config", "serve.toml", "--hosts", "1", "--max-maintaining", "1",
                           "--route-away-after", "250ms", "--restart-limit", "0")
    assert (config.hosts, config.max_maintaining, config.route_away_after) == (1, 1, 0.25)
    assert config.restart_limit == 0


def test_hosts_from_config_file_refused_for_non_replicable(
        fake: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    fake["description"] = {"adapter": "examples.foo:Foo", "replicable": False}
    monkeypatch.setattr(cli, "load_config_isolated",
                        lambda path: settings(adapter="examples.foo:Foo", hosts=2))
    line = one_error_line(run("serve", "--config", "serve.toml"))
    assert line == ("examples.foo:Foo is not replicable (replicable = False): "
                    "it cannot run with hosts = 2 (config serve.toml)")
    assert FakeBroker.built == []
    # the command line's --hosts 1 wins: served
    assert served_config("--config", "serve.toml", "--hosts", "1").hosts == 1


def test_real_config_file(fake: dict[str, Any], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real ``python -m threadhost.config`` subprocess."""
    monkeypatch.chdir(ROOT)
    path = tmp_path / "serve.toml"
    path.write_text('adapter = "examples.mylib_adapter"\nhosts = 2\nmax_maintaining = 1\n'
                    'route_away_after = "2s"\nrestart_limit = 0\n')
    config = served_config("--config", str(path))
    assert (config.hosts, config.max_maintaining, config.route_away_after) == (2, 1, 2.0)
    assert config.restart_limit == 0
    path.write_text('adapter = "examples.mylib_adapter"\nhosts = 0\n')
    FakeBroker.built, fake["preflights"] = [], 0
    line = one_error_line(run("serve", "--config", str(path)))
    assert line == f"config {path}: hosts: Input should be greater than or equal to 1"
    assert FakeBroker.built == [] and fake["preflights"] == 0


# ----------------------------------------------------------------------------- broker (attach)


def test_broker_defaults_to_no_host_limit(fake: dict[str, Any]) -> None:
    result = run("broker", "--backend", "tcp://127.0.0.1:6002")
    assert result.exit_code == 0, result.stderr
    (broker,) = FakeBroker.built
    assert broker.target is None and broker.backend == "tcp://127.0.0.1:6002"
    assert broker.config.hosts is None and broker.config.spawn is False
    assert broker.config.heartbeat_timeout == GateConfig().heartbeat_timeout


def test_broker_hosts_limit_and_pool_options(fake: dict[str, Any]) -> None:
    result = run("broker", "--backend", "tcp://127.0.0.1:6002", "--hosts", "2",
                 "--max-maintaining", "2", "--route-away-after", "3s",
                 "--heartbeat-timeout", "1s")
    assert result.exit_code == 0, result.stderr
    config = FakeBroker.built[0].config
    assert (config.hosts, config.spawn, config.max_maintaining) == (2, False, 2)
    assert (config.route_away_after, config.heartbeat_timeout) == (3.0, 1.0)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--hosts", "0", "--hosts must be an integer >= 1, got '0'"),
        ("--hosts", "-1", "--hosts must be an integer >= 1, got '-1'"),
        ("--hosts", "1.5", "--hosts must be an integer >= 1, got '1.5'"),
        ("--heartbeat-timeout", "0", "--heartbeat-timeout must be greater than 0, got '0'"),
        ("--route-away-after", "0s", "--route-away-after must be greater than 0, got '0s'"),
    ],
)
def test_broker_bad_option(fake: dict[str, Any], option: str, value: str,
                           message: str) -> None:
    result = run("broker", "--backend", "tcp://127.0.0.1:6002", option, value)
    assert one_error_line(result) == message
    assert FakeBroker.built == []


# ----------------------------------------------------------------------------- status


def two_hosts_status(state: str = "maintaining") -> dict[str, Any]:
    return {
        "state": state,
        "adapter": "examples.mylib_adapter:Mylib",
        "broker_pid": 100,
        "host_pid": 41872,
        "host_pids": [41872, 41873],
        "generation": 25,
        "restart_count": 1,
        "last_restart_reason": "host process exited (killed by signal SIGABRT)",
        "failed_reason": None,
        "maintenance": {"call": "read_config", "reason": "idle 10s", "host": "host-2",
                        "elapsed": 1.234, "expected": 2.9},
        "counters": {"served": 10422, "rejected_busy": 0},
        "hosts": [
            {"id": "host-1", "pid": 41872, "state": "ready", "generation": 13, "in_flight": 2,
             "restarts": 1, "last_maintenance": {"call": "read_config", "reason": "idle 10s",
                                                 "ok": True, "duration": 0.523,
                                                 "ended_ago": 3.14}},
            {"id": "host-2", "pid": 41873, "state": "maintaining", "generation": 12,
             "in_flight": 0, "restarts": 0, "last_maintenance": None},
        ],
    }


def test_format_status_two_hosts() -> None:
    text = cli._format_status(two_hosts_status())
    assert text == "\n".join([
        "state:        maintaining",
        "maintaining:  read_config (idle 10s) on host-2 for 1.2s, expected 2.9s",
        "adapter:      examples.mylib_adapter:Mylib",
        "host pid:     41872",
        "generation:   25",
        "restarts:     1 (last: host process exited (killed by signal SIGABRT))",
        "counters:     served=10422, rejected_busy=0",
        "hosts:",
        "  id      pid    state        generation  in flight  restarts  last maintenance",
        "  host-1  41872  ready        13          2          1         "
        "read_config ok 0.52s, 3.1s ago",
        "  host-2  41873  maintaining  12          0          0         -",
    ])


def test_format_status_older_broker_without_hosts() -> None:
    st = two_hosts_status("ready")
    del st["hosts"], st["maintenance"]
    text = cli._format_status(st)
    assert "hosts" not in text and "maintaining:" not in text
    assert text.splitlines()[0] == "state:        ready"


def test_format_status_tolerates_missing_keys_and_none() -> None:
    text = cli._format_status({
        "state": "failed", "failed_reason": "5 host failures within 60s", "counters": None,
        "maintenance": {"call": "read_config", "elapsed": None, "expected": None},
        "hosts": [
            {"id": "host-1", "pid": None, "state": "stopping"},
            {},
            "garbage",
            {"id": "host-3", "last_maintenance": {"call": "read_config", "ok": False,
                                                  "duration": None, "ended_ago": 4000.0}},
        ],
    })
    lines = text.splitlines()
    assert "maintaining:  read_config" in lines
    assert "failed:       5 host failures within 60s" in lines
    assert "counters:" in lines
    rows = lines[lines.index("hosts:") + 2:]
    assert rows[0].split() == ["host-1", "-", "stopping", "-", "-", "-", "-"]
    assert rows[1].split() == ["-"] * 7
    assert rows[2].split()[0] == "host-3"
    assert rows[2].endswith("read_config failed, 1h 06m ago")
    assert all(line == line.rstrip() for line in lines)


def test_format_status_empty_pool() -> None:
    text = cli._format_status({"state": "failed", "hosts": []})
    assert "hosts:        none" in text.splitlines()


@pytest.mark.parametrize(
    ("seconds", "decimals", "text"),
    [(0.523, 2, "0.52s"), (3.14, 1, "3.1s"), (42.0, 1, "42.0s"), (754.0, 1, "12m 34s"),
     (11040.0, 2, "3h 04m")],
)
def test_span(seconds: float, decimals: int, text: str) -> None:
    assert cli._span(seconds, decimals) == text


class FakeClient:
    """Stands in for threadhost.client.Client in ``status``."""

    reply: ClassVar[dict[str, Any] | Exception] = {}

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def status(self) -> dict[str, Any]:
        if isinstance(FakeClient.reply, Exception):
            raise FakeClient.reply
        return FakeClient.reply


@pytest.fixture
def status_reply(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    monkeypatch.setattr(threadhost.client, "Client", FakeClient)
    return FakeClient


@pytest.mark.parametrize(
    ("state", "code"),
    [("ready", 0), ("maintaining", 0), ("starting", 0), ("startup", 0), ("restarting", 0),
     ("stopping", 0), ("failed", 3)],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_status_exit_code(status_reply: type[FakeClient], state: str, code: int,
                          as_json: bool) -> None:
    status_reply.reply = two_hosts_status(state)
    result = run("status", "tcp://127.0.0.1:6000", *(["--json"] if as_json else []))
    assert result.exit_code == code, result.stderr
    if as_json:
        assert json.loads(result.output) == two_hosts_status(state)
    else:
        assert result.output.startswith(f"state:        {state}\n")
        assert "  host-2  41873  maintaining" in result.output


def test_status_cannot_ask_exits_1(status_reply: type[FakeClient]) -> None:
    status_reply.reply = CallTimeoutError("no answer from tcp://127.0.0.1:6000 within 5.0s")
    assert one_error_line(run("status"), code=1) == (
        "no answer from tcp://127.0.0.1:6000 within 5.0s")


def test_status_help_documents_exit_codes() -> None:
    result = run("status", "--help")
    assert result.exit_code == 0
    for line in ("0  the service answered and has not failed",
                 "3  the service answered and is failed", "1  no answer"):
        assert line in result.output
