"""Bad input to every command: one line on stderr, the documented exit status, no traceback,
nothing on stdout (docs/cli.md, "Errors and exit status").

Each row runs in-process through click's CliRunner; rows marked ``PROC`` also run as a real
``python -m threadhost`` process (what a user sees: the real exit status and stderr, with no
test harness catching anything). No row starts a broker or a host: every one is refused
before.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import free_endpoint
from threadhost import cli

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PROC = "proc"  # also run as a real process
ANY = "threadhost: error: "  # rows whose line comes from elsewhere set their own prefix

# a free port: nothing listens there (a client command gets "no service" at once)
NOBODY = free_endpoint()


def bad_config(tmp: Path, text: str, name: str) -> str:
    """A config file in ``tmp`` (written when ``tmp`` exists: the rows are also built at
    collection time, with a placeholder folder, for their ids)."""
    path = tmp / name
    if tmp.is_dir():
        path.write_text(text)
    return str(path)


# (id, args, env, exit status, text the line must contain, flags)
Row = tuple[str, list[str], dict[str, str], int, str, tuple[str, ...]]


def rows(tmp: Path) -> list[Row]:
    adapter = "examples.mylib_adapter"
    backend = "tcp://127.0.0.1:1"
    return [
        # --- the group
        ("unknown command", ["nosuchcmd"], {}, 2, "No such command 'nosuchcmd'", (PROC,)),
        ("unknown global option", ["--bogus"], {}, 2, "No such option '--bogus'", ()),
        ("-v and -q", ["-v", "-q", "status"], {}, 2, "-v and -q exclude each other", ()),
        ("-v then command -q", ["-v", "status", "-q"], {}, 2, "-v and -q exclude", ()),
        # --- conformance (it waited forever on a bogus endpoint)
        ("conformance bogus endpoint", ["conformance", "bogus-endpoint"], {}, 2,
         "ENDPOINT: bad endpoint 'bogus-endpoint'", (PROC,)),
        ("conformance bogus backend", ["conformance", "tcp://127.0.0.1:1", "--backend", "no"],
         {}, 2, "--backend: bad endpoint 'no'", ()),
        # --- status
        ("status bogus endpoint", ["status", "bogus-endpoint"], {}, 2,
         "ENDPOINT: bad endpoint 'bogus-endpoint': expected TRANSPORT://ADDRESS", (PROC,)),
        ("status unknown transport", ["status", "bogus://x"], {}, 2,
         "unknown transport 'bogus'", ()),
        ("status tcp without port", ["status", "tcp://127.0.0.1"], {}, 2, "needs HOST:PORT",
         ()),
        ("status port out of range", ["status", "tcp://127.0.0.1:70000"], {}, 2,
         "port '70000' is not a number from 1 to 65535", ()),
        ("status port zero", ["status", "tcp://127.0.0.1:0"], {}, 2, "port '0'", ()),
        ("status wildcard port", ["status", "tcp://127.0.0.1:*"], {}, 2, "port '*'", ()),
        ("status bogus --endpoint", ["status", "--endpoint", "nowhere"], {}, 2,
         "--endpoint: bad endpoint 'nowhere'", ()),
        ("status bogus env endpoint", ["status"], {"THREADHOST_ENDPOINT": "nowhere"}, 2,
         "THREADHOST_ENDPOINT: bad endpoint 'nowhere'", (PROC,)),
        ("status two endpoints", ["status", "tcp://127.0.0.1:5", "--endpoint",
                                  "tcp://127.0.0.1:6"], {}, 2, "two endpoints", ()),
        ("status timeout 0", ["status", "--timeout", "0"], {}, 2,
         "--timeout must be greater than 0, got '0'", (PROC,)),
        ("status timeout negative", ["status", "--timeout", "-1s"], {}, 2,
         "--timeout: bad duration '-1s'", ()),
        ("status timeout words", ["status", "--timeout", "soon"], {}, 2,
         "--timeout: bad duration 'soon'", ()),
        ("status env timeout 0", ["status"], {"THREADHOST_TIMEOUT": "0"}, 2,
         "THREADHOST_TIMEOUT must be greater than 0, got '0'", ()),
        ("status unknown option", ["status", "--bogus"], {}, 2, "No such option '--bogus'",
         (PROC,)),
        ("status extra argument", ["status", "tcp://127.0.0.1:5", "more"], {}, 2,
         "unexpected extra argument", ()),
        ("status nobody listening", ["status", NOBODY, "--timeout", "2s"], {}, 1,
         "no service at", (PROC,)),
        # --- maintain
        ("maintain bogus endpoint", ["maintain", "bogus-endpoint"], {}, 2,
         "bad endpoint 'bogus-endpoint'", (PROC,)),
        ("maintain timeout 0", ["maintain", "--timeout", "0s"], {}, 2,
         "--timeout must be greater than 0", ()),
        ("maintain nobody listening", ["maintain", NOBODY, "--timeout", "2s"], {}, 75,
         "no service at", ()),
        # --- call
        ("call no method", ["call"], {}, 2, "missing METHOD", (PROC,)),
        ("call endpoint only", ["call", "tcp://127.0.0.1:5"], {}, 2, "missing METHOD", ()),
        ("call bogus endpoint word", ["call", "bogus://x", "calc", "5"], {}, 2,
         "unknown transport 'bogus'", ()),
        ("call tcp without port", ["call", "tcp://localhost", "calc"], {}, 2,
         "needs HOST:PORT", ()),
        ("call bogus --endpoint", ["call", "--endpoint", "bogus-endpoint", "calc", "5"], {}, 2,
         "bad endpoint 'bogus-endpoint'", (PROC,)),
        ("call two endpoints", ["call", "tcp://127.0.0.1:5", "calc", "--endpoint",
                                "tcp://127.0.0.1:6"], {}, 2, "two endpoints", ()),
        ("call kw without =", ["call", "calc", "--kw", "5"], {}, 2,
         "--kw expects NAME=VALUE, got '5'", ()),
        ("call kw bad name", ["call", "calc", "--kw", "1x=5"], {}, 2, "--kw expects NAME=VALUE",
         ()),
        ("call kw twice", ["call", "calc", "--kw", "x=1", "--kw", "x=2"], {}, 2,
         "--kw x given twice", ()),
        ("call unknown option", ["call", "calc", "--jsn", "5"], {}, 2,
         "no such option: --jsn", (PROC,)),
        ("call timeout 0", ["call", "calc", "--timeout", "0"], {}, 2,
         "--timeout must be greater than 0", ()),
        ("call nobody listening", ["call", NOBODY, "calc", "5", "--timeout", "2s"], {}, 75,
         "no service at", (PROC,)),
        # --- describe
        ("describe bogus endpoint", ["describe", "bogus-endpoint"], {}, 2,
         "bad endpoint 'bogus-endpoint'", (PROC,)),
        ("describe timeout negative", ["describe", "--timeout", "-5"], {}, 2,
         "--timeout: bad duration '-5'", ()),
        ("describe nobody listening", ["describe", NOBODY, "--timeout", "2s"], {}, 75,
         "no service at", ()),
        # --- serve
        ("serve no adapter", ["serve"], {}, 2, "no adapter given", (PROC,)),
        ("serve unknown adapter module", ["serve", "no_such_module_xyz"], {}, 2,
         "no_such_module_xyz", (PROC,)),
        ("serve not an adapter", ["serve", "examples.mylib"], {}, 2,
         "no threadhost.Adapter subclass", ()),
        ("serve unknown class", ["serve", f"{adapter}:Nope"], {}, 2, "Nope", ()),
        ("serve bad policy", ["serve", adapter, "--policy", "idel=10s"], {}, 2, "idel", (PROC,)),
        ("serve bad policy duration", ["serve", adapter, "--policy", "idle=ten"], {}, 2, "ten",
         ()),
        ("serve bad env policy", ["serve", adapter], {"THREADHOST_POLICY": "idel=10s"}, 2,
         "idel", ()),
        ("serve bogus endpoint", ["serve", adapter, "--endpoint", "bogus-endpoint"], {}, 2,
         "--endpoint: bad endpoint 'bogus-endpoint'", (PROC,)),
        ("serve unknown transport", ["serve", adapter, "--endpoint", "bogus://x"], {}, 2,
         "bogus://x", ()),
        ("serve bogus env endpoint", ["serve", adapter], {"THREADHOST_ENDPOINT": "x"}, 2,
         "THREADHOST_ENDPOINT: bad endpoint 'x'", ()),
        ("serve hosts 0", ["serve", adapter, "--hosts", "0"], {}, 2,
         "--hosts must be an integer >= 1, got '0'", (PROC,)),
        ("serve hosts negative", ["serve", adapter, "--hosts", "-2"], {}, 2,
         "--hosts must be an integer >= 1", ()),
        ("serve env hosts 0", ["serve", adapter], {"THREADHOST_HOSTS": "0"}, 2,
         "THREADHOST_HOSTS must be an integer >= 1, got '0'", (PROC,)),
        ("serve max-maintaining 0", ["serve", adapter, "--max-maintaining", "0"], {}, 2,
         "--max-maintaining must be an integer >= 1", ()),
        ("serve heartbeat-timeout 0", ["serve", adapter, "--heartbeat-timeout", "0"], {}, 2,
         "--heartbeat-timeout must be greater than 0", (PROC,)),
        ("serve fast-call-limit 0", ["serve", adapter, "--fast-call-limit", "0"], {}, 2,
         "--fast-call-limit must be greater than 0", ()),
        ("serve restart-limit negative", ["serve", adapter, "--restart-limit", "-3"], {}, 2,
         "--restart-limit must be an integer >= 0, got '-3'", (PROC,)),
        ("serve restart-window 0", ["serve", adapter, "--restart-window", "0"], {}, 2,
         "--restart-window must be greater than 0", ()),
        ("serve route-away-after bad", ["serve", adapter, "--route-away-after", "soon"], {}, 2,
         "--route-away-after: bad duration 'soon'", ()),
        ("serve env fast-call-limit 0", ["serve", adapter],
         {"THREADHOST_FAST_CALL_LIMIT": "0s"}, 2,
         "THREADHOST_FAST_CALL_LIMIT must be greater than 0", ()),
        ("serve bad log level", ["serve", adapter, "--log-level", "LOUD"], {}, 2,
         "'LOUD' is not one of", ()),
        ("serve bad env log level", ["serve", adapter], {"THREADHOST_LOG_LEVEL": "LOUD"}, 2,
         "'LOUD' is not one of", ()),
        ("serve missing config file", ["serve", adapter, "--config", str(tmp / "nope.toml")],
         {}, 2, "file not found", (PROC,)),
        ("serve missing env config file", ["serve", adapter],
         {"THREADHOST_CONFIG": str(tmp / "nope.toml")}, 2, "file not found", ()),
        ("serve config not toml", ["serve", "--config", bad_config(tmp, "adapter = ", "a.toml")],
         {}, 2, "invalid TOML", ()),
        ("serve config unknown key",
         ["serve", "--config", bad_config(tmp, 'adaptor = "x"\n', "b.toml")], {}, 2,
         "unknown key 'adaptor'", ()),
        ("serve config bad hosts",
         ["serve", "--config", bad_config(tmp, f'adapter = "{adapter}"\nhosts = 0\n', "c.toml")],
         {}, 2, "hosts: Input should be greater than or equal to 1", ()),
        ("serve config bad endpoint",
         ["serve", "--config",
          bad_config(tmp, f'adapter = "{adapter}"\nendpoint = "nowhere"\n', "d.toml")], {}, 2,
         "bad endpoint 'nowhere'", ()),
        ("serve config is a directory", ["serve", adapter, "--config", str(tmp)], {}, 2,
         "is a directory", ()),
        ("serve unknown example", ["serve", "--example", "nope"], {}, 2, "'nope' is not", ()),
        ("serve example and module", ["serve", adapter, "--example", "mylib"], {}, 2,
         "give MODULE[:CLASS] or --example, not both", ()),
        ("serve unknown option", ["serve", adapter, "--bogus"], {}, 2, "No such option", ()),
        # --- broker
        ("broker no backend", ["broker"], {}, 2, "Missing option '--backend'", (PROC,)),
        ("broker bogus backend", ["broker", "--backend", "bogus"], {}, 2,
         "--backend: bad endpoint 'bogus'", ()),
        ("broker bogus env backend", ["broker"], {"THREADHOST_BACKEND": "bogus"}, 2,
         "THREADHOST_BACKEND: bad endpoint 'bogus'", ()),
        ("broker bogus endpoint", ["broker", "--backend", backend, "--endpoint", "x"], {}, 2,
         "--endpoint: bad endpoint 'x'", ()),
        ("broker bad policy", ["broker", "--backend", backend, "--policy", "idel=1s"], {}, 2,
         "idel", ()),
        ("broker hosts 0", ["broker", "--backend", backend, "--hosts", "0"], {}, 2,
         "--hosts must be an integer >= 1", ()),
        ("broker heartbeat-timeout 0", ["broker", "--backend", backend,
                                        "--heartbeat-timeout", "0"], {}, 2,
         "--heartbeat-timeout must be greater than 0", ()),
        # --- host
        ("host no adapter", ["host"], {}, 2, "Missing argument", ()),
        ("host no backend", ["host", adapter], {}, 2, "Missing option '--backend'", ()),
        ("host bogus --connect", ["host", adapter, "--connect", "bogus"], {}, 2,
         "--backend/--connect: bad endpoint 'bogus'", (PROC,)),
        ("host bogus --backend", ["host", adapter, "--backend", "tcp://h"], {}, 2,
         "--backend/--connect: bad endpoint 'tcp://h'", ()),
        ("host broker-timeout 0", ["host", adapter, "--backend", backend,
                                   "--broker-timeout", "0"], {}, 2,
         "--broker-timeout must be greater than 0", ()),
        # --- proxy and conformance (their own modules; errors still one line)
        ("proxy unknown adapter module", ["proxy", "no_such_mod", "-o", str(tmp / "p.py")], {},
         2, "no_such_mod", (PROC,)),
        ("proxy -o and --check", ["proxy", adapter, "-o", str(tmp / "p.py"), "--check",
                                  str(tmp / "q.py")], {}, 2, "not both", ()),
        ("conformance no endpoint", ["conformance"], {}, 2, "missing ENDPOINT", ()),
        ("conformance bad role", ["conformance", "--role", "nope"], {}, 2, "'nope' is not one of",
         ()),
        # --- dashboard (its own module, the web stack loaded only to serve)
        ("dashboard bogus endpoint", ["dashboard", "bogus-endpoint"], {}, 2,
         "ENDPOINT: bad endpoint 'bogus-endpoint'", (PROC,)),
        ("dashboard bogus env endpoint", ["dashboard"], {"THREADHOST_ENDPOINT": "tcp://h"}, 2,
         "THREADHOST_ENDPOINT: bad endpoint 'tcp://h'", ()),
        ("dashboard bad --listen", ["dashboard", "--listen", "8765"], {}, 2,
         "--listen: expected HOST:PORT", ()),
        ("serve bad --dashboard", ["serve", adapter, "--dashboard", "nowhere"], {}, 2,
         "--dashboard: expected HOST:PORT", ()),
        ("conformance caller key alone", ["conformance", "tcp://127.0.0.1:1", "--caller-key",
                                          str(tmp / "a.key_secret")], {}, 2,
         "--caller-key needs --server-key and --secret-key", ()),
        # --- keys and security options (docs/security.md)
        ("keys show missing file", ["keys", "show", str(tmp / "none.key")], {}, 2,
         "cannot read key file", (PROC,)),
        ("keys new bad name", ["keys", "new", "../x", "--dir", str(tmp)], {}, 2,
         "bad key name", ()),
        ("serve secret-key without clients", ["serve", adapter, "--secret-key",
                                              str(tmp / "b.key_secret")], {}, 2,
         "--secret-key needs the keys allowed in", ()),
        ("serve clients without secret-key", ["serve", adapter, "--clients", str(tmp)], {}, 2,
         "--clients needs --secret-key", ()),
        ("serve hosts-keys", ["serve", adapter, "--secret-key", str(tmp / "b.key_secret"),
                              "--hosts-keys", str(tmp)], {}, 2,
         "--hosts-keys: serve starts its own hosts", ()),
        ("serve every interface without keys", ["serve", adapter, "--endpoint",
                                                "tcp://*:6123"], {}, 2,
         "refusing to listen on tcp://*:6123 without CURVE", (PROC,)),
        ("broker every interface without keys", ["broker", "--backend", backend,
                                                 "--endpoint", "tcp://0.0.0.0:6124"], {}, 2,
         "without CURVE", ()),
        ("broker hosts-keys without secret-key", ["broker", "--backend", backend,
                                                  "--hosts-keys", str(tmp)], {}, 2,
         "--hosts-keys needs --secret-key", ()),
        ("broker missing secret key file", ["broker", "--backend", backend, "--secret-key",
                                            str(tmp / "none.key_secret"), "--clients",
                                            str(tmp)], {}, 2, "cannot read key file", ()),
        ("call server key only", ["call", "calc", "--server-key", str(tmp / "s.key")], {}, 2,
         "both", ()),
        ("status missing key files", ["status"],
         {"THREADHOST_SERVER_KEY": str(tmp / "s.key"),
          "THREADHOST_SECRET_KEY": str(tmp / "c.key_secret")}, 2, "cannot read key file", ()),
        ("host server key only", ["host", adapter, "--backend", backend, "--server-key",
                                  str(tmp / "s.key")], {}, 2, "both", ()),
    ]


def _rows() -> list[Row]:
    # built once at collection with placeholder paths; each test rebuilds with its tmp_path
    return rows(Path("/nonexistent-tmp"))


ROW_IDS = [r[0] for r in _rows()]
PROC_IDS = [r[0] for r in _rows() if PROC in r[5]]


def row(name: str, tmp: Path) -> Row:
    return next(r for r in rows(tmp) if r[0] == name)


@pytest.fixture(autouse=True)
def _no_threadhost_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("THREADHOST_"):
            monkeypatch.delenv(key)


def check_one_line(code: int, stdout: str, stderr: str, want_code: int, text: str,
                   prefix: str = ANY) -> None:
    assert code == want_code, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(prefix), lines[0]
    assert text in lines[0], lines[0]
    assert stdout == ""


@pytest.mark.parametrize("name", ROW_IDS)
def test_bad_input_in_process(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                              ) -> None:
    monkeypatch.chdir(ROOT)
    _, args, env, code, text, _ = row(name, tmp_path)
    result = CliRunner().invoke(cli.main, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    check_one_line(result.exit_code, result.stdout, result.stderr, code, text)


@pytest.mark.parametrize("name", PROC_IDS)
def test_bad_input_real_process(name: str, tmp_path: Path) -> None:
    _, args, env, code, text, _ = row(name, tmp_path)
    full_env: dict[str, Any] = {k: v for k, v in os.environ.items()
                                if not k.startswith("THREADHOST_")}
    proc = subprocess.run([sys.executable, "-m", "threadhost", *args], cwd=ROOT,
                          env={**full_env, **env}, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    check_one_line(proc.returncode, proc.stdout, proc.stderr, code, text)


def test_every_command_has_a_row() -> None:
    """A new command gets rows here too."""
    commands = set(cli.main.list_commands(None))  # type: ignore[arg-type]
    covered = {args[0] for _, args, *_ in _rows() if args and not args[0].startswith("-")}
    assert commands <= covered, commands - covered


def test_host_with_an_unknown_adapter_module_is_one_line(tmp_path: Path) -> None:
    """The host process reports a module it cannot import with one log line (its own
    format) and exit status 3, before it ever reaches a broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADHOST_")}
    proc = subprocess.run([sys.executable, "-m", "threadhost", "host", "no_such_module_xyz",
                           "--backend", free_endpoint()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "cannot import adapter module 'no_such_module_xyz'" in lines[0]


def test_unexpected_error_is_one_line_and_v_adds_the_traceback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (an exception no command handles) is one line too; -v adds its traceback."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(cli, "_client_endpoint", broken)
    result = CliRunner().invoke(cli.main, ["status"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["threadhost: error: KeyError: 'boom'"]
    verbose = CliRunner().invoke(cli.main, ["-v", "status"])
    assert verbose.exit_code == 1
    assert "Traceback" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == "threadhost: error: KeyError: 'boom'"
