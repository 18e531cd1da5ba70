"""Unit tests for threadhost.config (TOML + pydantic)."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from threadhost.config import ConfigError, ServeConfig, load_config

pytestmark = pytest.mark.timeout(10)

FULL = """\
adapter = "examples.mylib_adapter:MyLibAdapter"
endpoint = "tcp://127.0.0.1:5555"
policy = "idle=10s | stale=5m | cron=0 3 * * *"
fast_call_limit = "30s"
log_level = "info"

[policies]
readConfig = "idle=10s | stale=5m | file=/etc/mylib.conf"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_full_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL))
    assert cfg == ServeConfig(
        adapter="examples.mylib_adapter:MyLibAdapter",
        endpoint="tcp://127.0.0.1:5555",
        policy="idle=10s | stale=5m | cron=0 3 * * *",
        policies={"readConfig": "idle=10s | stale=5m | file=/etc/mylib.conf"},
        fast_call_limit="30s",
        log_level="INFO",
    )
    assert cfg.fast_call_limit_seconds == 30.0


def test_empty_config_is_all_defaults(tmp_path: Path) -> None:
    cfg = load_config(str(write(tmp_path, "")))
    assert cfg.adapter is None and cfg.policy is None and cfg.policies == {}
    assert cfg.fast_call_limit_seconds is None


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, 'policy = "manual"\n'))
    with pytest.raises(pydantic.ValidationError):
        cfg.policy = "idle=1s"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('polcy = "idle=10s"\n', "unknown key 'polcy'"),
        ("[server]\nport = 1\n", "unknown key 'server'"),
        ('policy = "idel=10s"\n', "policy: bad policy term 'idel=10s': unknown key 'idel'"),
        ('policy = "idle=ten"\n', "policy: bad duration 'ten' in 'idle=ten'"),
        ('policy = ""\n', "policy: empty policy spec"),
        ("policy = 10\n", "policy: Input should be a valid string"),
        (
            '[policies]\nreadConfig = "cron=0 3 * *"\n',
            "policies: readConfig: bad cron expression '0 3 * *'",
        ),
        ('policies = "idle=1s"\n', "policies: Input should be a valid dictionary"),
        ('adapter = "my lib"\n', "adapter: expected MODULE[:CLASS], got 'my lib'"),
        ('adapter = "mod:Cls:x"\n', "adapter: expected MODULE[:CLASS]"),
        ('endpoint = " "\n', "endpoint: must not be empty"),
        ('fast_call_limit = "soon"\n', "fast_call_limit: bad duration 'soon'"),
        ('fast_call_limit = "0s"\n', "fast_call_limit: bad duration '0s': must be greater than 0"),
        ('log_level = "loud"\n', "log_level: expected one of debug, info"),
        ("hosts = 0\n", "hosts: Input should be greater than or equal to 1"),
        ("hosts = -2\n", "hosts: Input should be greater than or equal to 1"),
        ("hosts = 1.5\n", "hosts: Input should be a valid integer"),
        ("hosts = 2.0\n", "hosts: Input should be a valid integer"),
        ('hosts = "2"\n', "hosts: Input should be a valid integer"),
        ("hosts = true\n", "hosts: Input should be a valid integer"),
        ("max_maintaining = 0\n", "max_maintaining: Input should be greater than or equal to 1"),
        ('max_maintaining = "1"\n', "max_maintaining: Input should be a valid integer"),
        ('route_away_after = "0s"\n',
         "route_away_after: bad duration '0s': must be greater than 0"),
        ('route_away_after = "soon"\n', "route_away_after: bad duration 'soon'"),
        ("route_away_after = 2\n", "route_away_after: Input should be a valid string"),
        ('heartbeat_timeout = "0"\n',
         "heartbeat_timeout: bad duration '0': must be greater than 0"),
        ("restart_limit = -3\n", "restart_limit: Input should be greater than or equal to 0"),
        ('polcy = 1\npolicy = "x=1"\n', "(and 1 more error)"),
    ],
)
def test_bad_config_one_line_naming_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = str(info.value)
    assert line.startswith(f"config {path}: ")
    assert message in line
    assert "\n" not in line


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"^config .*nope\.toml: file not found$"):
        load_config(path)


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'policy = "idle=10s"\nendpoint =\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"config {path}: invalid TOML: ")
    assert "line 2" in str(info.value)
    assert "\n" not in str(info.value)


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("level", ["debug", "INFO", "Warning", "error", "critical"])
def test_log_levels_normalised(level: str) -> None:
    assert ServeConfig(log_level=level).log_level == level.upper()


def test_python_m_threadhost_config_prints_resolved_settings(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    import json

    from threadhost.config import main

    cfg = tmp_path / "serve.toml"
    cfg.write_text('adapter = "examples.mylib_adapter"\nfast_call_limit = "90s"\n'
                   'restart_limit = 2\nlog_level = "debug"\n[policies]\nread_config = "manual"\n')
    assert main([str(cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "adapter": "examples.mylib_adapter", "endpoint": None, "policy": None,
        "policies": {"read_config": "manual"}, "log_level": "DEBUG", "fast_call_limit": 90.0,
        "heartbeat_timeout": None, "restart_window": None, "restart_limit": 2,
        "hosts": None, "max_maintaining": None, "route_away_after": None,
        "maintain_budget": None,
        "secret_key": None, "clients": None, "operators": None, "hosts_keys": None,
        "insecure": None,
    }
    cfg.write_text('polcy = "x"\n')
    assert main([str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("unknown key 'polcy'") and len(err.splitlines()) == 1


def test_security_keys(tmp_path: Path) -> None:
    text = ('secret_key = "/k/broker.key_secret"\nclients = "/k/clients"\n'
            'operators = "/k/ops"\nhosts_keys = "/k/hosts"\ninsecure = false\n')
    cfg = load_config(write(tmp_path, text))
    assert (cfg.secret_key, cfg.clients, cfg.operators, cfg.hosts_keys, cfg.insecure) == (
        "/k/broker.key_secret", "/k/clients", "/k/ops", "/k/hosts", False)
    with pytest.raises(ConfigError, match="insecure"):
        load_config(write(tmp_path, 'insecure = "maybe"\n'))


def test_pool_keys(tmp_path: Path) -> None:
    text = 'hosts = 3\nmax_maintaining = 2\nroute_away_after = "1500ms"\n'
    cfg = load_config(write(tmp_path, text))
    assert (cfg.hosts, cfg.max_maintaining, cfg.route_away_after) == (3, 2, "1500ms")
    assert cfg.seconds("route_away_after") == 1.5


def test_pool_keys_default_to_unset(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.hosts is None and cfg.max_maintaining is None and cfg.route_away_after is None


def test_python_m_threadhost_config_resolves_pool_keys(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    import json

    from threadhost.config import main

    cfg = write(tmp_path, 'hosts = 4\nmax_maintaining = 2\nroute_away_after = "250ms"\n'
                          "restart_limit = 0\n")
    assert main([str(cfg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["hosts"], out["max_maintaining"], out["route_away_after"]) == (4, 2, 0.25)
    assert out["restart_limit"] == 0
