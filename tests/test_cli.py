"""Unit tests for the command line (threadhost.cli): option parsing and validation, the
GateConfig that ``serve`` and ``broker`` build, the replicable check, and ``status``'s
text form and exit codes. No broker, host or socket is started: ``Broker``, ``preflight``
and the status client are replaced (one test runs the real preflight in a subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import click
import pytest
from click.testing import CliRunner, Result

import threadhost.client
from threadhost import cli
from threadhost.errors import CallTimeoutError
from threadhost.gate import GateConfig
from threadhost.protocol import MaintainReply

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parent.parent
MYLIB = {"adapter": "examples.mylib_adapter:Mylib", "default_policy": "idle=10s | stale=5m",
         "replicable": True}


class FakeBroker:
    """Stands in for threadhost.broker.Broker: records what it was built with."""

    built: ClassVar[list[FakeBroker]] = []

    def __init__(self, target: str | None, *, endpoint: str, config: GateConfig,
                 log_level: str, backend: str | None = None,
                 metrics: str | None = None, server_keys: Any = None, keyring: Any = None,
                 insecure: bool = False) -> None:
        self.target, self.endpoint, self.config = target, endpoint, config
        self.backend, self.log_level, self.metrics = backend, log_level, metrics
        self.server_keys, self.keyring, self.insecure = server_keys, keyring, insecure
        self.stop_reason: str | None = None
        FakeBroker.built.append(self)

    def check_endpoints(self) -> None:
        pass

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

    import threadhost.broker

    FakeBroker.built = []
    monkeypatch.setattr(threadhost.broker, "Broker", FakeBroker)
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

    def __init__(self, endpoint: str, timeout: float, server_key: Any = None,
                 secret_key: Any = None) -> None:
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


# ============================================================================ conventions
# (issue 15: one endpoint spelling, THREADHOST_* variables, -v/-q, call, describe, lean
# start-up). Bad input of every command: tests/test_cli_bad_input.py.


@pytest.fixture(autouse=True)
def _no_threadhost_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("THREADHOST_"):
            monkeypatch.delenv(key)


def test_default_endpoint_is_the_brokers() -> None:
    from threadhost.broker import DEFAULT_ENDPOINT

    assert cli.DEFAULT_ENDPOINT == DEFAULT_ENDPOINT


def test_serve_endpoint_from_the_environment(fake: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "examples.mylib_adapter"],
                                env={"THREADHOST_ENDPOINT": "tcp://127.0.0.1:7001"})
    assert result.exit_code == 0, result.stderr
    assert FakeBroker.built[0].endpoint == "tcp://127.0.0.1:7001"
    FakeBroker.built = []
    result = CliRunner().invoke(cli.main, ["serve", "examples.mylib_adapter", "--endpoint",
                                           "tcp://127.0.0.1:7002"],
                                env={"THREADHOST_ENDPOINT": "tcp://127.0.0.1:7001"})
    assert FakeBroker.built[0].endpoint == "tcp://127.0.0.1:7002"  # the command line wins


def test_serve_options_from_the_environment(fake: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli.main, ["serve", "examples.mylib_adapter"], env={
        "THREADHOST_HOSTS": "3", "THREADHOST_POLICY": "manual",
        "THREADHOST_MAX_MAINTAINING": "2", "THREADHOST_ROUTE_AWAY_AFTER": "2s",
        "THREADHOST_HEARTBEAT_TIMEOUT": "4s", "THREADHOST_FAST_CALL_LIMIT": "9s",
        "THREADHOST_RESTART_LIMIT": "0", "THREADHOST_RESTART_WINDOW": "30s",
        "THREADHOST_LOG_LEVEL": "error"})
    assert result.exit_code == 0, result.stderr
    (broker,) = FakeBroker.built
    config = broker.config
    assert (config.hosts, config.policy, config.max_maintaining) == (3, "manual", 2)
    assert (config.route_away_after, config.heartbeat_timeout) == (2.0, 4.0)
    assert (config.fast_call_limit, config.restart_limit, config.restart_window) == (
        9.0, 0, 30.0)
    assert broker.log_level == "ERROR"


def test_environment_wins_over_the_config_file(fake: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "load_config_isolated", lambda path: settings(
        adapter="examples.mylib_adapter", hosts=3, endpoint="tcp://127.0.0.1:7003"))
    result = CliRunner().invoke(cli.main, ["serve"], env={
        "THREADHOST_CONFIG": "serve.toml", "THREADHOST_HOSTS": "2"})
    assert result.exit_code == 0, result.stderr
    assert FakeBroker.built[0].config.hosts == 2
    assert FakeBroker.built[0].endpoint == "tcp://127.0.0.1:7003"  # from the file


def test_serve_example_resolves_in_a_checkout(fake: dict[str, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert cli.example_target("mylib") == "examples.mylib_adapter"
    config = served_config("--example", "mylib")
    assert FakeBroker.built[0].target == "examples.mylib_adapter" and config.hosts == 1


@pytest.mark.parametrize(
    ("args", "env", "level"),
    [
        ([], {}, "INFO"),
        (["-v"], {}, "DEBUG"),
        (["-q"], {}, "WARNING"),
        (["--log-level", "error"], {}, "ERROR"),
        ([], {"THREADHOST_LOG_LEVEL": "error"}, "ERROR"),
        (["-v"], {"THREADHOST_LOG_LEVEL": "error"}, "DEBUG"),  # -v wins over the variable
        (["-q", "--log-level", "debug"], {}, "DEBUG"),  # --log-level wins over -q
    ],
)
@pytest.mark.parametrize("where", ["group", "command"])
def test_log_level_of_serve_and_broker(fake: dict[str, Any], args: list[str],
                                       env: dict[str, str], level: str, where: str) -> None:
    flags = [a for a in args if a in ("-v", "-q")]
    rest = [a for a in args if a not in ("-v", "-q")]
    for command in (["serve", "examples.mylib_adapter"],
                    ["broker", "--backend", "tcp://127.0.0.1:6002"]):
        FakeBroker.built = []
        argv = ([*flags, *command, *rest] if where == "group" else [*command, *flags, *rest])
        result = CliRunner().invoke(cli.main, argv, env=env)
        assert result.exit_code == 0, result.stderr
        assert FakeBroker.built[0].log_level == level, argv


def test_broker_endpoints_from_the_environment(fake: dict[str, Any]) -> None:
    result = CliRunner().invoke(cli.main, ["broker"], env={
        "THREADHOST_ENDPOINT": "tcp://127.0.0.1:7004", "THREADHOST_BACKEND": "ipc:///tmp/be",
        "THREADHOST_HOSTS": "2"})
    assert result.exit_code == 0, result.stderr
    (broker,) = FakeBroker.built
    assert (broker.endpoint, broker.backend, broker.config.hosts) == (
        "tcp://127.0.0.1:7004", "ipc:///tmp/be", 2)


@pytest.fixture
def host_argv(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    import threadhost.host

    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr(threadhost.host, "main", fake_main)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command inserts the cwd
    return seen


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--backend", "tcp://127.0.0.1:6002"], {}),
        (["--connect", "tcp://127.0.0.1:6002"], {}),  # the old spelling
        ([], {"THREADHOST_BACKEND": "tcp://127.0.0.1:6002"}),
    ],
)
def test_host_backend_spellings(host_argv: list[list[str]], args: list[str],
                                env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli.main, ["host", "examples.mylib_adapter", *args,
                                           "--host-id", "h7"], env=env)
    assert result.exit_code == 0, result.stderr
    assert host_argv == [["examples.mylib_adapter", "--connect", "tcp://127.0.0.1:6002",
                          "--host-id", "h7", "--log-level", "INFO"]]


def test_host_quiet_and_broker_timeout(host_argv: list[list[str]]) -> None:
    result = CliRunner().invoke(cli.main, ["-q", "host", "examples.mylib_adapter", "--backend",
                                           "tcp://127.0.0.1:6002", "--broker-timeout", "2s"],
                                env={"THREADHOST_BROKER_TIMEOUT": "9s"})
    assert result.exit_code == 0, result.stderr
    argv = host_argv[0]
    assert argv[argv.index("--log-level") + 1] == "WARNING"
    assert argv[argv.index("--broker-timeout") + 1] == "2.0"


def commands_with_options() -> list[str]:
    return ["serve", "status", "maintain", "call", "describe", "broker", "host"]


@pytest.mark.parametrize("command", commands_with_options())
def test_help_lists_the_environment_variables(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # unwrapped
    cmd = cli.main.commands[command]
    envvars = [p.envvar for p in cmd.params if isinstance(p, click.Option) and p.envvar]
    assert envvars, command
    for envvar in envvars:
        assert f"env var: {envvar}" in text, (command, envvar)
    assert "-v, --verbose" in text and "-q, --quiet" in text


def test_every_endpoint_option_has_the_same_variable() -> None:
    for name, cmd in cli.main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option) and "--endpoint" in p.opts:
                assert p.envvar == "THREADHOST_ENDPOINT", name
            if isinstance(p, click.Option) and "--backend" in p.opts:
                assert p.envvar == "THREADHOST_BACKEND", name
            if isinstance(p, click.Option) and "--timeout" in p.opts:
                assert p.envvar == "THREADHOST_TIMEOUT", name


# ----------------------------------------------------------------------------- client endpoints


class Recorder:
    """Stands in for threadhost.client.Client in status/maintain/call/describe: records the
    endpoint, timeout and requests; answers with ``Recorder.answer`` (raised if an
    exception)."""

    made: ClassVar[list[Recorder]] = []
    answer: ClassVar[Any] = None

    def __init__(self, endpoint: str, timeout: float, server_key: Any = None,
                 secret_key: Any = None) -> None:
        self.endpoint, self.timeout = endpoint, timeout
        self.requests: list[tuple[str, Any, Any]] = []
        Recorder.made.append(self)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _answer(self, what: str, *args: Any) -> Any:
        self.requests.append((what, *args))
        if isinstance(Recorder.answer, BaseException):
            raise Recorder.answer
        return Recorder.answer

    def request(self, method: str, args: Any = (), kwargs: Any = None) -> Any:
        return self._answer(method, list(args), dict(kwargs or {}))

    def status(self) -> Any:
        return self._answer("<status>")

    def describe(self) -> Any:
        return self._answer("<describe>")

    def maintain(self, method: str | None = None) -> Any:
        return self._answer("<maintain>", method)

    def __getattr__(self, name: str) -> Any:  # an adapter call named like a member...
        raise AssertionError(f"the CLI used lib.{name}: it must call through the class")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[Recorder]:
    monkeypatch.setattr(threadhost.client, "Client", Recorder)
    Recorder.made, Recorder.answer = [], None
    return Recorder


@pytest.mark.parametrize(
    ("args", "env", "endpoint"),
    [
        ([], {}, "tcp://127.0.0.1:6000"),
        (["tcp://127.0.0.1:7010"], {}, "tcp://127.0.0.1:7010"),
        (["--endpoint", "tcp://127.0.0.1:7011"], {}, "tcp://127.0.0.1:7011"),
        ([], {"THREADHOST_ENDPOINT": "ipc:///tmp/th.sock"}, "ipc:///tmp/th.sock"),
        (["tcp://127.0.0.1:7012"], {"THREADHOST_ENDPOINT": "tcp://127.0.0.1:7013"},
         "tcp://127.0.0.1:7012"),  # the argument wins over the variable
        (["tcp://127.0.0.1:7014", "--endpoint", "tcp://127.0.0.1:7014"], {},
         "tcp://127.0.0.1:7014"),  # the same twice is fine
    ],
)
@pytest.mark.parametrize("command", ["status", "maintain", "describe", "call"])
def test_client_endpoint(recorder: type[Recorder], command: str, args: list[str],
                         env: dict[str, str], endpoint: str) -> None:
    recorder.answer = {"state": "ready"} if command == "status" else (
        MaintainReplyStub() if command == "maintain" else {"calls": []})
    argv = [command, *args, *(["calc", "5"] if command == "call" else [])]
    result = CliRunner().invoke(cli.main, argv, env=env)
    assert result.exit_code == 0, result.stderr
    assert recorder.made[0].endpoint == endpoint


class MaintainReplyStub:
    def __init__(self, started: bool = True, reason: str = "'read_config' on 1 host",
                 retry_after: float | None = None) -> None:
        self.started, self.reason, self.retry_after = started, reason, retry_after


def test_client_timeouts(recorder: type[Recorder]) -> None:
    recorder.answer = {"state": "ready"}
    assert run("status").exit_code == 0
    assert run("status", "--timeout", "250ms").exit_code == 0
    result = CliRunner().invoke(cli.main, ["status"], env={"THREADHOST_TIMEOUT": "7s"})
    assert result.exit_code == 0
    assert run("call", "calc", "5").exit_code == 0
    assert [r.timeout for r in recorder.made] == [5.0, 0.25, 7.0, 10.0]


# ----------------------------------------------------------------------------- call


@pytest.mark.parametrize(
    ("word", "value"),
    [("5", 5), ("-2.5", -2.5), ("true", True), ("null", None), ("[1, 2]", [1, 2]),
     ('{"a": 1}', {"a": 1}), ("alice", "alice"), ('"5"', "5"), ("", ""), ("1e3", 1000.0),
     ("tcp://x", "tcp://x"), ("[1, 2", "[1, 2"), ("hello world", "hello world")],
)
def test_parse_value(word: str, value: Any) -> None:
    assert cli.parse_value(word) == value
    assert type(cli.parse_value(word)) is type(value)


@pytest.mark.parametrize(
    ("argv", "endpoint", "sent"),
    [
        (["calc", "5"], "tcp://127.0.0.1:6000", ("calc", [5], {})),
        (["tcp://127.0.0.1:7020", "calc", "5"], "tcp://127.0.0.1:7020", ("calc", [5], {})),
        (["ipc:///tmp/x.sock", "calc"], "ipc:///tmp/x.sock", ("calc", [], {})),
        (["calc", "-5"], "tcp://127.0.0.1:6000", ("calc", [-5], {})),
        (["calc", "-2.5e1"], "tcp://127.0.0.1:6000", ("calc", [-25.0], {})),
        (["echo", "--", "--not-an-option", "-x"], "tcp://127.0.0.1:6000",
         ("echo", ["--not-an-option", "-x"], {})),
        (["lookup", "alice", "[1, 2]", "--kw", "strict=true", "--kw", "name=bob",
          "--kw", "empty="], "tcp://127.0.0.1:6000",
         ("lookup", ["alice", [1, 2]], {"strict": True, "name": "bob", "empty": ""})),
        (["status"], "tcp://127.0.0.1:6000", ("status", [], {})),  # an adapter call
        (["--endpoint", "tcp://127.0.0.1:7021", "calc", "1"], "tcp://127.0.0.1:7021",
         ("calc", [1], {})),
    ],
)
def test_call_arguments(recorder: type[Recorder], argv: list[str], endpoint: str,
                        sent: tuple[Any, ...]) -> None:
    recorder.answer = 6
    result = run("call", *argv)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "6\n"
    (client,) = recorder.made
    assert client.endpoint == endpoint
    assert client.requests == [sent]


@pytest.mark.parametrize(
    ("value", "text", "as_json"),
    [
        (6, "6", "6"),
        ("hello", "hello", '"hello"'),
        (None, "null", "null"),
        ([1, "a"], '[\n  1,\n  "a"\n]', '[1, "a"]'),
        ({"a": [1, 2]}, '{\n  "a": [\n    1,\n    2\n  ]\n}', '{"a": [1, 2]}'),
        (b"\x00\xff", '"AP8="', '"AP8="'),
        ({1: (b"a", 2.5)}, '{\n  "1": [\n    "YQ==",\n    2.5\n  ]\n}', '{"1": ["YQ==", 2.5]}'),
        ("é", "é", '"é"'),
    ],
)
def test_call_prints_the_result(recorder: type[Recorder], value: Any, text: str,
                                as_json: str) -> None:
    recorder.answer = value
    assert run("call", "f").stdout == text + "\n"
    assert run("call", "f", "--json").stdout == as_json + "\n"
    assert run("-q", "call", "f").stdout == ""


def test_call_busy_exits_75_with_retry_after(recorder: type[Recorder]) -> None:
    from threadhost.errors import BusyError, UnavailableError

    recorder.answer = BusyError("busy: slow call 'read_config' running for 1.2s",
                                retry_after=2.06)
    result = run("call", "calc", "5")
    assert one_error_line(result, 75) == (
        "busy: slow call 'read_config' running for 1.2s (retry after 2.1s)")
    recorder.answer = UnavailableError("unavailable: starting", retry_after=None)
    assert one_error_line(run("call", "calc", "5"), 75) == "unavailable: starting"
    assert one_error_line(run("describe"), 75) == "unavailable: starting"
    assert one_error_line(run("maintain"), 75) == "unavailable: starting"
    assert one_error_line(run("status"), 1) == "unavailable: starting"  # status: 1, as before


@pytest.mark.parametrize(
    "error",
    [
        "UnknownCallError('Mylib has no client-callable call nope')",
        "BadArgumentsError('Mylib.calc: argument x:\\n  Input should be a valid integer')",
        "RemoteError('boom', remote_type='ValueError', remote_traceback='Traceback...')",
        "CallTimeoutError('calc: no answer within 1s')",
        "ServiceFailedError('failed: restart limit')",
    ],
)
def test_call_errors_exit_1_one_line(recorder: type[Recorder], error: str) -> None:
    import threadhost.errors as errors

    recorder.answer = eval(error, vars(errors))
    line = one_error_line(run("call", "calc", "5"), 1)
    assert "\n" not in line and "Traceback" not in line
    if "BadArguments" in error:
        assert line == "Mylib.calc: argument x:; Input should be a valid integer"
    if "RemoteError" in error:
        assert line == "ValueError: boom"


def test_call_v_prints_the_remote_traceback(recorder: type[Recorder]) -> None:
    from threadhost.errors import RemoteError

    recorder.answer = RemoteError("boom", remote_type="ValueError",
                                  remote_traceback="Traceback (most recent call last):\n  x\n")
    result = run("-v", "call", "calc", "5")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["Traceback (most recent call last):", "  x",
                                          "threadhost: error: ValueError: boom"]


def test_call_v_says_how_long_it_took(recorder: type[Recorder]) -> None:
    recorder.answer = 6
    result = run("call", "-v", "calc", "5")
    assert result.stdout == "6\n"
    assert re.fullmatch(r"threadhost: tcp://127\.0\.0\.1:6000 answered in [\d.]+ ms\n",
                        result.stderr)


# ----------------------------------------------------------------------------- describe, status,
# maintain output


def mylib_description() -> dict[str, Any]:
    from threadhost.adapter import load_adapter

    return load_adapter("examples.mylib_adapter").describe()


def test_describe_text(recorder: type[Recorder]) -> None:
    recorder.answer = mylib_description()
    result = run("describe")
    assert result.exit_code == 0, result.stderr
    fingerprint = recorder.answer["fingerprint"][:12]
    lines = result.stdout.splitlines()
    assert lines[0] == f"examples.mylib_adapter:Mylib  (fingerprint {fingerprint})"
    assert lines[1:3] == ["  mylib hosted by threadhost.",
                          "  default policy: idle=10s | stale=5m; replicable"]
    assert "calls (threadhost call METHOD ARG...):" in lines
    assert "  calc(x: int) -> int" in lines
    assert "      Return x + offset." in lines
    slow = lines.index("slow calls (run by the broker; threadhost maintain --call NAME):")
    assert lines[slow + 1] == "  read_config() -> None  [startup]"
    assert lines.index("  calc(x: int) -> int") < slow


def test_describe_json_and_quiet(recorder: type[Recorder]) -> None:
    recorder.answer = mylib_description()
    assert json.loads(run("describe", "--json").stdout) == recorder.answer
    assert run("describe", "-q").stdout == "calc\n"


def test_signatures_of_every_kind_of_parameter() -> None:
    from threadhost.adapter import load_adapter

    calls = {c["name"]: c for c in load_adapter("tests.proxy_types_adapter:Types").describe()
             ["calls"]}
    expected = {
        "echo_bytes": "echo_bytes(b: bytes) -> bytes",
        "echo_dict": "echo_dict(d: dict[str, list[float]]) -> dict[str, list[float]]",
        "echo_tuple": "echo_tuple(t: tuple[int, str, bytes]) -> tuple[int, str, bytes]",
        "echo_optional": "echo_optional(x: int | None = None) -> int | None",
        "echo_literal": "echo_literal(mode: Literal['fast', 'safe', 3]) -> "
                        "Literal['fast', 'safe', 3]",
        "echo_color": "echo_color(c: Color = 'green') -> Color",
        "echo_mode": "echo_mode(m: Mode | None = 'safe') -> Mode | None",
        "points": "points(n: int) -> list[Point]",
        "scale": "scale(x: int, /, y: int = 1, *, factor: float = 1.0, label: str = '') -> str",
        "nothing": "nothing() -> None",
    }
    for name, text in expected.items():
        assert cli.signature_text(calls[name]) == text


@pytest.mark.parametrize(
    ("schema", "text"),
    [({}, "Any"), (None, "Any"), ({"type": ["integer", "null"]}, "int | None"),
     ({"type": "array"}, "list"), ({"type": "object"}, "dict"), ({"const": "x"}, "Literal['x']"),
     ({"title": "Thing"}, "Thing"), ({"type": "mystery"}, "Any"),
     ({"oneOf": [{"type": "string"}, {"type": "string"}]}, "str")],
)
def test_type_text_edges(schema: Any, text: str) -> None:
    assert cli.type_text(schema) == text


def test_signature_with_star_args() -> None:
    assert cli.signature_text({"name": "f", "params": [
        {"name": "a", "kind": "var_positional", "schema": {"type": "integer"}},
        {"name": "b", "kind": "keyword_only", "schema": {}, "required": False},
        {"name": "c", "kind": "var_keyword", "schema": {"type": "string"}}],
        "returns": {"type": "null"}}) == "f(*a: int, b: Any = ..., **c: str) -> None"


def test_format_description_tolerates_missing_keys() -> None:
    assert cli.format_description({}) == "None"
    text = cli.format_description({"adapter": "m:A", "calls": [
        {"name": "x", "kind": "slow", "policy": "idle=1s", "deadline": 30}, "junk"]})
    assert text.splitlines()[-1] == "  x() -> Any  [policy idle=1s, deadline 30]"


def test_status_quiet_prints_the_state(recorder: type[Recorder]) -> None:
    recorder.answer = two_hosts_status("ready")
    assert run("status", "-q").stdout == "ready\n"
    recorder.answer = two_hosts_status("failed")
    result = run("-q", "status")
    assert (result.exit_code, result.stdout) == (3, "failed\n")


@pytest.mark.parametrize(
    ("started", "reason", "printed"),
    [
        (True, "'read_config' on 1 host", "started: 'read_config' on 1 host"),
        (True, "started 'read_config'", "started 'read_config'"),  # an older broker's wording
        (False, "already running: 'read_config'", "not started: already running: "
                                                   "'read_config'"),
    ],
)
def test_maintain_output(recorder: type[Recorder], started: bool, reason: str,
                         printed: str) -> None:
    recorder.answer = MaintainReplyStub(started, reason)
    result = run("maintain", "--call", "read_config")
    assert (result.exit_code, result.stdout) == (0 if started else 1, printed + "\n")
    assert recorder.made[0].requests == [("<maintain>", "read_config")]
    quiet = run("maintain", "-q")
    assert (quiet.exit_code, quiet.stdout) == (0 if started else 1, "")


RATE_LIMITED = ("rate-limited: manual maintenance may keep the service busy 50% of the time "
                "at most; retry in 2.0s")


@pytest.mark.parametrize(
    ("reason", "retry_after", "printed"),
    [
        (RATE_LIMITED, 2.0, f"not started: {RATE_LIMITED} (retry after 2.0s)"),
        ("too soon: min_gap 30s, retry in 21.0s", 21.0,
         "not started: too soon: min_gap 30s, retry in 21.0s (retry after 21.0s)"),
        ("already running: 'read_config'", 3.5,
         "not started: already running: 'read_config' (retry after 3.5s)"),
    ],
)
def test_maintain_refused_with_a_retry_time_exits_75(recorder: type[Recorder], reason: str,
                                                     retry_after: float, printed: str) -> None:
    # the real reply type, so that the CLI reads the field the protocol declares
    recorder.answer = MaintainReply(id=1, started=False, reason=reason, retry_after=retry_after)
    result = run("maintain")
    assert (result.exit_code, result.stdout, result.stderr) == (75, printed + "\n", "")
    quiet = run("maintain", "-q")
    assert (quiet.exit_code, quiet.stdout) == (75, "")


@pytest.mark.parametrize("reason", ["already running: 'read_config'",  # not measured yet
                                    "no slow call named 'nope' (have: read_config)"])
def test_maintain_refused_without_a_retry_time_exits_1(recorder: type[Recorder],
                                                       reason: str) -> None:
    recorder.answer = MaintainReply(id=1, started=False, reason=reason)
    result = run("maintain")
    assert (result.exit_code, result.stdout) == (1, f"not started: {reason}\n")


def test_a_started_maintain_ignores_a_retry_time(recorder: type[Recorder]) -> None:
    recorder.answer = MaintainReply(id=1, started=True, reason="'read_config' on 1 host",
                                    retry_after=5.0)  # a confused broker: started wins
    result = run("maintain")
    assert (result.exit_code, result.stdout) == (0, "started: 'read_config' on 1 host\n")


# ----------------------------------------------------------------------------- start-up


def imported_modules(*args: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "threadhost", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          stdin=subprocess.DEVNULL,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith("THREADHOST_")})
    return {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


# (threadhost.protocol is the one codec, msgspec without pydantic: the client needs it)
HEAVY = {"pydantic", "threadhost.proxygen", "threadhost.conformance", "threadhost.broker",
         "threadhost.gate", "threadhost.adapter", "threadhost.config"}


@pytest.mark.parametrize("args", [["--help"], ["status", "--help"], ["serve", "--help"],
                                  ["status", "tcp://127.0.0.1:1", "--timeout", "1s"]])
def test_listing_commands_and_status_import_nothing_heavy(args: list[str]) -> None:
    modules = imported_modules(*args)
    assert "threadhost.cli" in modules and "click" in modules
    assert not modules & HEAVY, modules & HEAVY


def test_lazy_commands_help_without_importing_them() -> None:
    for name, (_target, short) in cli._Group.lazy.items():
        command = cli.main.get_command(click.Context(cli.main), name)
        assert command is not None
        assert command.get_short_help_str(10**6) == short, name
    listing = run("--help").stdout
    assert "proxy        Generate a typed proxy module" in listing
    assert "conformance  Check that the broker (or host) at ENDPOINT" in listing


def test_status_text_names_a_waiting_host() -> None:
    from threadhost.cli import _format_status

    text = _format_status({"state": "ready", "hosts": [
        {"id": "h3", "pid": 7, "state": "waiting", "generation": 0, "in_flight": 0,
         "restarts": 1, "last_maintenance": None,
         "note": "waiting for the previous instance to exit"}]})
    assert "h3: waiting for the previous instance to exit" in text


_GATE_FIELD = {"--max-maintaining": "max_maintaining", "--maintain-budget": "maintain_budget",
               "--heartbeat-timeout": "heartbeat_timeout", "--fast-call-limit": "fast_call_limit",
               "--restart-limit": "restart_limit", "--restart-window": "restart_window"}


@pytest.mark.parametrize("command", ["serve", "broker"])
def test_the_defaults_in_help_are_the_gates_own(command: str) -> None:
    """--help states the gate's defaults in words; they must be GateConfig's values (the
    help text is written by hand to keep --help from importing the gate)."""
    params = {p.opts[0]: p for p in cli.main.commands[command].params
              if isinstance(p, click.Option)}
    shown = 0
    for flag, field in _GATE_FIELD.items():
        if flag not in params:
            continue
        match = re.search(r"\[default: ([0-9.]+)(s?)\]", params[flag].help or "")
        assert match, f"{command} {flag}: no default in its help"
        assert float(match.group(1)) == getattr(GateConfig(), field), (command, flag)
        shown += 1
    assert shown >= (6 if command == "serve" else 3)
