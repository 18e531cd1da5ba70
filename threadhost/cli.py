"""The ``threadhost`` command line (also ``python -m threadhost``).

Conventions (docs/cli.md):

* the endpoint: client-side commands (``status``, ``maintain``, ``call``, ``describe``) take
  it as an optional first argument or ``--endpoint``; ``serve`` and ``broker`` take
  ``--endpoint``; the back end that hosts attach to is ``--backend`` (``broker`` and ``host``;
  ``host --connect`` is its old spelling). ``THREADHOST_ENDPOINT`` / ``THREADHOST_BACKEND``
  are the defaults, and every common option has a ``THREADHOST_*`` variable, listed in each
  command's ``--help``. Precedence: command line, environment, ``--config`` file, default.
* ``-v`` / ``-q`` (before or after the command): log level DEBUG / WARNING for ``serve``,
  ``broker`` and ``host``; more / less output for the others.
* every error is one line on stderr, ``threadhost: error: ...``, never a traceback (``-v``
  adds the traceback of an unexpected one). Exit status: 0 success, 1 error, 2 usage (a bad
  option, value, endpoint, adapter or config file), 3 ``status`` of a failed service,
  75 (EX_TEMPFAIL) ``call``/``describe``/``maintain`` refused for now (busy, unavailable;
  ``maintain`` also when not started with a ``retry_after``: the line ends with
  ``(retry after N.Ns)``).
* start-up is lean: listing commands and ``status`` import neither pydantic, the broker nor
  the proxy generator (the modules of a command load when it runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

import click
from click.core import ParameterSource

if TYPE_CHECKING:
    from threadhost.client import Client
    from threadhost.errors import TryLaterError

__all__ = ["main"]

#: The client endpoint when none is given (the same as ``threadhost.broker.DEFAULT_ENDPOINT``).
DEFAULT_ENDPOINT = "tcp://127.0.0.1:6000"
#: ``call``/``describe``/``maintain`` were refused for now (busy, unavailable): try later.
EXIT_TRY_LATER = 75
#: ``threadhost serve --example NAME`` -> the adapter module in ``examples/``.
EXAMPLES = {"mylib": "mylib_adapter"}

ENV_ENDPOINT = "THREADHOST_ENDPOINT"
ENV_BACKEND = "THREADHOST_BACKEND"
ENV_TIMEOUT = "THREADHOST_TIMEOUT"
ENV_LOG_LEVEL = "THREADHOST_LOG_LEVEL"
#: CURVE keys of clients and attached hosts: the service's public key, our key pair
ENV_SERVER_KEY = "THREADHOST_SERVER_KEY"
ENV_SECRET_KEY = "THREADHOST_SECRET_KEY"
#: CURVE keys of serve/broker: the server's key pair, the allowed public keys per role
ENV_BROKER_SECRET_KEY = "THREADHOST_BROKER_SECRET_KEY"
ENV_CLIENTS = "THREADHOST_CLIENTS"
ENV_OPERATORS = "THREADHOST_OPERATORS"
ENV_HOSTS_KEYS = "THREADHOST_HOSTS_KEYS"
ENV_INSECURE = "THREADHOST_INSECURE"

_LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
_TRANSPORTS = ("tcp", "ipc", "inproc", "pgm", "epgm", "ws", "wss", "udp", "tipc", "vmci",
               "norm")
_LITERAL_WORDS = "threadhost.literal_words"
_verbosity = 0  # -1 (-q), 0, +1 (-v): set while parsing, read by the error handler


def _one_line(text: object) -> str:
    lines = [part.strip() for part in str(text).splitlines() if part.strip()]
    return "; ".join(lines) or "error"


def _fail(message: object, code: int = 2) -> NoReturn:
    click.echo(f"threadhost: error: {_one_line(message)}", err=True)
    sys.exit(code)


def _note(message: str) -> None:
    """A line on stderr with -v."""
    if _verbosity > 0:
        click.echo(f"threadhost: {message}", err=True)


# ----------------------------------------------------------------------------- option values


def _option_name(param: click.Parameter) -> str:
    """``--hosts``; an option with several long names: ``--backend/--connect``."""
    long = [opt for opt in param.opts if opt.startswith("--")]
    if len(long) > 1:
        return "/".join(long)
    return max(param.opts, key=len) if param.opts else str(param.name)


def _source_name(ctx: click.Context, param: click.Parameter) -> str:
    """How the user spelled ``param``: its option name, or its environment variable when the
    value came from there."""
    envvar = getattr(param, "envvar", None)
    if param.name and envvar and ctx.get_parameter_source(param.name) is (
            ParameterSource.ENVIRONMENT):
        return envvar if isinstance(envvar, str) else str(envvar[0])
    return _option_name(param)


def _positive_duration(ctx: click.Context, param: click.Parameter, value: str | None
                       ) -> float | None:
    """A duration that must be > 0; anything else exits with one line (exit 2)."""
    if value is None:
        return None
    from threadhost.policy import PolicyError, parse_duration

    name = _source_name(ctx, param)
    try:
        seconds = parse_duration(value)
    except PolicyError as exc:
        _fail(f"{name}: {exc}")
    if seconds <= 0:
        _fail(f"{name} must be greater than 0, got {value!r}")
    return seconds


def _listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``HOST:PORT`` for an HTTP listener (metrics); anything else: one line, exit 2."""
    if value is None:
        return None
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        _fail(f"{_option_name(param)}: expected HOST:PORT (e.g. 127.0.0.1:9464), "
              f"got {value!r}")
    return value


def _int_at_least(minimum: int) -> Callable[[click.Context, click.Parameter, str | None],
                                            int | None]:
    """A callback for an integer option taken as a string: click's own errors are several
    lines of usage; these are one line (exit 2)."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or number < minimum:
            _fail(f"{_source_name(ctx, param)} must be an integer >= {minimum}, got {value!r}")
        return number

    return check


def _fraction(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A number > 0 and <= 1 (``0.5``, or ``50%``); anything else: one line, exit 2."""
    if value is None:
        return None
    text = value.strip()
    try:
        number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        number = None
    if number is None or not 0 < number <= 1:
        _fail(f"{_source_name(ctx, param)} must be a fraction > 0 and <= 1 (e.g. 0.5 or 50%), "
              f"got {value!r}")
    return number


_MAINTAIN_BUDGET_HELP = ("manual maintenance (maintain requests) may keep the service busy at "
                         "most this share of the time; 1: no limit [default: 0.5]")


def check_endpoint(value: str, where: str, *, bind: bool = False) -> str:
    """``value`` if it is a ZeroMQ endpoint (``TRANSPORT://ADDRESS``; a tcp one needs a port,
    ``*`` only where the command binds), else exit 2 with one line naming ``where``."""
    scheme, sep, address = value.partition("://")
    problem = None
    if not sep or not scheme or not address.strip():
        problem = f"expected TRANSPORT://ADDRESS, e.g. {DEFAULT_ENDPOINT}"
    elif scheme not in _TRANSPORTS:
        problem = f"unknown transport {scheme!r} (tcp, ipc, inproc, ...)"
    elif scheme == "tcp":
        host, colon, port = address.rpartition(":")
        if not colon or not host:
            problem = "a tcp endpoint needs HOST:PORT, e.g. tcp://127.0.0.1:6000"
        elif port == "*":
            if not bind:
                problem = "port '*' (any free port) only where the endpoint is bound"
        elif not port.isdigit() or not 0 < int(port) <= 65535:
            problem = f"port {port!r} is not a number from 1 to 65535"
    if problem:
        _fail(f"{where}: bad endpoint {value!r}: {problem}")
    return value


_T = TypeVar("_T")


def _pick(given: _T | None, from_file: Any, default: _T) -> _T:
    """The command line wins over the config file, which wins over the default; ``0`` and
    ``""`` are values, not "unset"."""
    if given is not None:
        return given
    if from_file is not None:
        value: _T = from_file
        return value
    return default


# ----------------------------------------------------------------------------- verbosity


def _set_verbosity(delta: int) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        global _verbosity
        if not value:
            return
        if _verbosity not in (0, delta):
            raise click.UsageError("-v and -q exclude each other", ctx)
        _verbosity = delta

    return callback


_F = TypeVar("_F", bound=Callable[..., Any])


def _verbosity_options(f: _F) -> _F:
    """``-v``/``-q``, on the group and on each command (``threadhost -v serve`` and
    ``threadhost serve -v`` are the same)."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, is_eager=True,
                     callback=_set_verbosity(-1),
                     help="less output (serve/broker/host: log level WARNING)")(f)
    f = click.option("-v", "--verbose", is_flag=True, expose_value=False, is_eager=True,
                     callback=_set_verbosity(+1),
                     help="more output (serve/broker/host: log level DEBUG; errors: the "
                          "traceback of an unexpected one)")(f)
    return f


def _log_level(ctx: click.Context, given: str | None, from_file: str | None = None) -> str:
    """--log-level on the command line, else -v/-q, else THREADHOST_LOG_LEVEL, else the
    config file, else INFO."""
    if given is not None and ctx.get_parameter_source("log_level") is (
            ParameterSource.COMMANDLINE):
        return given.upper()
    if _verbosity:
        return "DEBUG" if _verbosity > 0 else "WARNING"
    return (given or from_file or "INFO").upper()


def _log_level_option(f: _F) -> _F:
    return click.option(
        "--log-level", default=None, envvar=ENV_LOG_LEVEL, show_envvar=True,
        type=click.Choice(_LOG_LEVELS, case_sensitive=False),
        help="[default: INFO; -v DEBUG, -q WARNING]")(f)


# ----------------------------------------------------------------------------- helper processes


def _child_env() -> dict[str, str]:
    """The environment of a helper process: it imports what this process imports."""
    env = dict(os.environ)
    paths = [os.getcwd(), *(p for p in sys.path if p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _run_helper(args: list[str], what: str) -> str:
    """Run ``python ARGS`` in a throw-away process; its stdout, or exit 2 with the last line
    of its stderr."""
    import subprocess

    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=_child_env(), stdin=subprocess.DEVNULL, timeout=120)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        _fail(lines[-1] if lines else what)
    return proc.stdout


def load_config_isolated(path: str) -> dict[str, Any]:
    """Validate a ``serve`` config file in a throw-away process (pydantic never enters the
    broker's own process: ~12 MB less) and return its settings, durations in seconds; or
    exit with the file's one-line error."""
    settings: dict[str, Any] = json.loads(
        _run_helper(["-m", "threadhost.config", path], f"cannot read config {path}"))
    return settings


def preflight(target: str) -> dict[str, Any]:
    """Load the adapter in a throw-away process (never in the broker's own process) and
    return its description, or exit with the loader's one-line error."""
    description: dict[str, Any] = json.loads(
        _run_helper(["-m", "threadhost.host", "--describe", target],
                    f"cannot load adapter {target!r}"))
    return description


def example_target(name: str) -> str:
    """The adapter module of bundled example ``name``: ``threadhost.examples.*`` in an
    installed wheel, ``examples.*`` in a checkout (whichever imports)."""
    import importlib.util

    module = EXAMPLES[name]
    if os.getcwd() not in sys.path:  # a checkout, as for any MODULE (hosts get the cwd too)
        sys.path.append(os.getcwd())
    for package in ("threadhost.examples", "examples"):
        try:
            found = importlib.util.find_spec(f"{package}.{module}") is not None
        except ImportError:
            found = False
        if found:
            return f"{package}.{module}"
    _fail(f"example {name!r} not found: neither threadhost.examples.{module} nor "
          f"examples.{module} can be imported")


# ----------------------------------------------------------------------------- the group


class _Group(click.Group):
    """Commands whose modules load only when run: listing commands imports neither pydantic
    nor the proxy generator. Every error is one line (see the module docstring)."""

    lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "proxy": ("threadhost.proxygen:proxy_command",
                  "Generate a typed proxy module for adapter TARGET (MODULE or MODULE:CLASS)."),
        "conformance": ("threadhost.conformance:conformance_command",
                        "Check that the broker (or host) at ENDPOINT speaks the threadhost "
                        "protocol."),
        "dashboard": ("threadhost.dashboard.command:dashboard_command",
                      "Serve a live web dashboard of the service at ENDPOINT (needs "
                      "threadhost[dashboard])."),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, _, attr = self.lazy[cmd_name][0].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, without importing the lazy commands."""
        rows: list[tuple[str, str]] = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        for name in names:
            if name in self.lazy:
                text = self.lazy[name][1]
                rows.append((name, text if len(text) <= limit
                             else text[:limit - 3].rsplit(" ", 1)[0] + "..."))
                continue
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        global _verbosity
        _verbosity = 0
        prog_name = prog_name or "threadhost"  # also under python -m threadhost
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        except click.ClickException as exc:
            line = exc.format_message()
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                line += f" (see '{exc.ctx.command_path} --help')"
            _fail(line, exc.exit_code)
        except click.Abort:
            _fail("interrupted", 130)
        except Exception as exc:
            _unexpected(exc)
        sys.exit(code if isinstance(code, int) else 0)


def _unexpected(exc: Exception) -> NoReturn:
    """An error no command handled: one line (and its traceback with -v)."""
    from threadhost.errors import ThreadhostError, TryLaterError

    if _verbosity > 0:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, TryLaterError):
        _try_later(exc)
    if isinstance(exc, ThreadhostError):
        _fail(exc, 1)
    _fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 1)


@click.group(name="threadhost", cls=_Group,
             context_settings={"help_option_names": ["-h", "--help"],
                               "max_content_width": 100})
@click.version_option(package_name="threadhost")
@_verbosity_options
def main() -> None:
    """threadhost: host a thread-hostile, slow, crash-prone library behind a busy-aware broker.

    \b
    Endpoints: THREADHOST_ENDPOINT (default tcp://127.0.0.1:6000) for every command that
    takes one; clients also take it as their first argument. Every error is one line on
    stderr. Exit status: 0 ok, 1 error, 2 usage, 3 failed service (status), 75 try later
    (call, describe, maintain). See docs/cli.md.
    """


# ----------------------------------------------------------------------------- security


def _gate_options(f: _F) -> _F:
    """The gate tunables that ``serve`` and ``broker`` both take (threadhost.gate.GateConfig)."""
    for decorator in reversed([
        click.option("--max-maintaining", metavar="N", callback=_int_at_least(1), default=None,
                     envvar="THREADHOST_MAX_MAINTAINING", show_envvar=True,
                     help="hosts that may run a slow call at the same time during a rollout "
                          "[default: 1]"),
        click.option("--route-away-after", metavar="DURATION", callback=_positive_duration,
                     default=None, envvar="THREADHOST_ROUTE_AWAY_AFTER", show_envvar=True,
                     help="a host whose fast call has run longer gets no new calls "
                          "[default: derived from measured fast calls]"),
        click.option("--maintain-budget", metavar="FRACTION", callback=_fraction, default=None,
                     envvar="THREADHOST_MAINTAIN_BUDGET", show_envvar=True,
                     help=_MAINTAIN_BUDGET_HELP),
        click.option("--heartbeat-timeout", metavar="DURATION", callback=_positive_duration,
                     default=None, envvar="THREADHOST_HEARTBEAT_TIMEOUT", show_envvar=True,
                     help="declare a silent host dead after this long [default: 3s]"),
    ]):
        f = decorator(f)
    return f


def _server_security_options(f: _F) -> _F:
    """CURVE options of ``serve`` and ``broker`` (docs/security.md)."""
    for decorator in reversed([
        click.option("--secret-key", "secret_key", metavar="FILE", default=None,
                     envvar=ENV_BROKER_SECRET_KEY, show_envvar=True,
                     help="the service's NAME.key_secret (threadhost keys new): CURVE on "
                          "the endpoint (clients need its NAME.key)"),
        click.option("--clients", "clients_dir", metavar="DIR", default=None,
                     envvar=ENV_CLIENTS, show_envvar=True,
                     help="public keys (*.key) allowed to call, describe, ping and read a "
                          "reduced status"),
        click.option("--operators", "operators_dir", metavar="DIR", default=None,
                     envvar=ENV_OPERATORS, show_envvar=True,
                     help="public keys allowed to do that and maintain, shut down and read "
                          "the full status"),
        click.option("--hosts-keys", "hosts_dir", metavar="DIR", default=None,
                     envvar=ENV_HOSTS_KEYS, show_envvar=True,
                     help="public keys of hosts allowed to attach to --backend (broker)"),
        click.option("--insecure", is_flag=True, default=None, envvar=ENV_INSECURE,
                     show_envvar=True,
                     help="allow a non-loopback endpoint without CURVE (anyone who reaches "
                          "it is trusted)"),
    ]):
        f = decorator(f)
    return f


def _client_key_options(f: _F) -> _F:
    """``--server-key`` / ``--secret-key`` of client commands and ``host``."""
    f = click.option("--secret-key", "secret_key", metavar="FILE", default=None,
                     envvar=ENV_SECRET_KEY, show_envvar=True,
                     help="your NAME.key_secret (CURVE; with --server-key)")(f)
    f = click.option("--server-key", "server_key", metavar="FILE", default=None,
                     envvar=ENV_SERVER_KEY, show_envvar=True,
                     help="the service's public key file NAME.key (CURVE)")(f)
    return f


def _server_security(
    secret_key: str | None, clients: str | None, operators: str | None, hosts: str | None,
    insecure: bool | None, cfg: dict[str, Any] | None = None, *, attach: bool,
) -> tuple[Any, Any, bool]:
    """(ServerKeys or None, KeyRing or None, insecure) from the options (and the config
    file's keys); one line and exit 2 for anything wrong."""
    cfg = cfg or {}
    secret_key = _pick(secret_key, cfg.get("secret_key"), None)
    clients = _pick(clients, cfg.get("clients"), None)
    operators = _pick(operators, cfg.get("operators"), None)
    hosts = _pick(hosts, cfg.get("hosts_keys"), None)
    insecure = bool(_pick(insecure, cfg.get("insecure"), False))
    if hosts is not None and not attach:
        _fail("--hosts-keys: serve starts its own hosts (each proves it with a per-run "
              "secret); hosts that attach need `threadhost broker`")
    if secret_key is None:
        given = [name for name, v in (("--clients", clients), ("--operators", operators),
                                      ("--hosts-keys", hosts)) if v is not None]
        if given:
            _fail(f"{given[0]} needs --secret-key (the service's NAME.key_secret)")
        return None, None, insecure
    if clients is None and operators is None and hosts is None:
        _fail("--secret-key needs the keys allowed in: --clients DIR and/or --operators DIR"
              + (" (or --hosts-keys DIR)" if attach else ""))
    from threadhost.errors import ThreadhostError
    from threadhost.transport import KeyRing, server_keys

    try:
        keys = server_keys(secret_key)
        ring = KeyRing.from_dirs(clients, operators, hosts)
    except ThreadhostError as exc:
        _fail(exc)
    for name, folder, found in (("--clients", clients, ring.clients),
                                ("--operators", operators, ring.operators),
                                ("--hosts-keys", hosts, ring.hosts)):
        if folder is not None and not found:
            _note(f"{name} {folder}: no public keys (*.key) there; nobody gets that role")
    return keys, ring, insecure


def _client_keys(server_key: str | None, secret_key: str | None) -> Any:
    """The client's CURVE keys, or None; one line and exit 2 for a bad key file."""
    from threadhost.errors import ThreadhostError
    from threadhost.transport import client_keys

    try:
        return client_keys(server_key, secret_key)
    except ThreadhostError as exc:
        _fail(exc)


@main.group()
def keys() -> None:
    """CURVE key pairs (zmq.auth certificates) for the service, clients, operators and hosts.

    \b
    threadhost keys new broker --dir keys/      # keys/broker.key, keys/broker.key_secret
    threadhost keys show keys/broker.key        # prints the public key
    Give a client its NAME.key_secret and the service's NAME.key; put the client's NAME.key
    in the service's --clients (or --operators) directory. See docs/security.md.
    """


@keys.command("new")
@click.argument("name")
@click.option("--dir", "directory", metavar="DIR", default=".", show_default=True,
              help="where to write NAME.key and NAME.key_secret")
def keys_new(name: str, directory: str) -> None:
    """Write a new key pair: DIR/NAME.key (public) and DIR/NAME.key_secret (mode 0600)."""
    from threadhost.errors import ThreadhostError
    from threadhost.transport import new_keys

    try:
        public, secret = new_keys(name, directory)
    except ThreadhostError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(f"cannot write keys in {directory}: {exc.strerror or exc}")
    click.echo(f"{public}\n{secret}")


@keys.command("show")
@click.argument("file", metavar="FILE")
def keys_show(file: str) -> None:
    """Print the public key held in FILE (NAME.key or NAME.key_secret)."""
    from pathlib import Path

    from threadhost.errors import ThreadhostError
    from threadhost.transport import load_public_key

    try:
        click.echo(load_public_key(Path(file)).decode("ascii"))
    except ThreadhostError as exc:
        _fail(exc)


# ----------------------------------------------------------------------------- serve


@main.command()
@click.argument("target", required=False, metavar="[MODULE[:CLASS]]")
@click.option("--example", type=click.Choice(sorted(EXAMPLES)), default=None,
              help="serve a bundled example adapter instead of MODULE (mylib: the seed's "
                   "library)")
@click.option("--endpoint", metavar="URL", default=None, envvar=ENV_ENDPOINT, show_envvar=True,
              help=f"where clients connect [default: {DEFAULT_ENDPOINT}]")
@click.option("--policy", metavar="SPEC", default=None, envvar="THREADHOST_POLICY",
              show_envvar=True, help='maintenance policy, e.g. "idle=10s | stale=5m"')
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              default=None, envvar="THREADHOST_CONFIG", show_envvar=True,
              help="TOML file with serve settings (command line and environment win)")
@click.option("--hosts", metavar="N", callback=_int_at_least(1), default=None,
              envvar="THREADHOST_HOSTS", show_envvar=True,
              help="host processes, each its own library instance; N > 1 needs a "
                   "replicable adapter [default: 1]")
@_gate_options
@click.option("--fast-call-limit", metavar="DURATION", callback=_positive_duration,
              default=None, envvar="THREADHOST_FAST_CALL_LIMIT", show_envvar=True,
              help="kill and restart a host whose fast call runs longer [default: 60s]")
@click.option("--restart-limit", metavar="N", callback=_int_at_least(0), default=None,
              envvar="THREADHOST_RESTART_LIMIT", show_envvar=True,
              help="host restarts allowed within --restart-window [default: 5]")
@click.option("--restart-window", metavar="DURATION", callback=_positive_duration,
              default=None, envvar="THREADHOST_RESTART_WINDOW", show_envvar=True,
              help="window for --restart-limit [default: 60s]")
@click.option("--metrics", metavar="HOST:PORT", callback=_listen, default=None,
              envvar="THREADHOST_METRICS", show_envvar=True,
              help="expose Prometheus metrics at http://HOST:PORT/metrics "
                   "(needs threadhost[metrics])")
@click.option("--dashboard", metavar="HOST:PORT", callback=_listen, default=None,
              envvar="THREADHOST_DASHBOARD", show_envvar=True,
              help="serve the live web dashboard at http://HOST:PORT/ too "
                   "(needs threadhost[dashboard])")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              envvar="THREADHOST_LOG_FORMAT", show_envvar=True,
              help="log lines as text or one JSON object per line [default: text]")
@_server_security_options
@_log_level_option
@_verbosity_options
@click.pass_context
def serve(
    ctx: click.Context,
    target: str | None,
    example: str | None,
    endpoint: str | None,
    policy: str | None,
    config_file: str | None,
    hosts: int | None,
    max_maintaining: int | None,
    route_away_after: float | None,
    maintain_budget: float | None,
    heartbeat_timeout: float | None,
    fast_call_limit: float | None,
    restart_limit: int | None,
    restart_window: float | None,
    metrics: str | None,
    dashboard: str | None,
    log_format: str | None,
    secret_key: str | None,
    clients_dir: str | None,
    operators_dir: str | None,
    hosts_dir: str | None,
    insecure: bool | None,
    log_level: str | None,
) -> None:
    """Serve adapter MODULE[:CLASS] (or --example NAME) until Ctrl-C or SIGTERM.

    A non-loopback --endpoint needs CURVE (--secret-key with --clients/--operators) or
    --insecure; see docs/security.md."""
    if target and example:
        raise click.UsageError("give MODULE[:CLASS] or --example, not both", ctx)
    if endpoint is not None:
        check_endpoint(endpoint, _source_name(ctx, _param(ctx, "endpoint")), bind=True)
    if dashboard is not None:
        _check_dashboard(ctx)
    if policy is not None:
        from threadhost.policy import PolicyError, check_policy

        try:
            check_policy(policy)
        except PolicyError as exc:
            _fail(exc)
    cfg: dict[str, Any] = {}
    if config_file is not None:
        cfg = load_config_isolated(config_file)
    if example:
        target = example_target(example)
    target = _pick(target, cfg.get("adapter"), None)
    if endpoint is None and cfg.get("endpoint") is not None:
        check_endpoint(cfg["endpoint"], f"endpoint (config {config_file})", bind=True)
    endpoint = _pick(endpoint, cfg.get("endpoint"), DEFAULT_ENDPOINT)
    policy = _pick(policy, cfg.get("policy"), None)
    policies: dict[str, str] = dict(cfg.get("policies") or {})
    level = _log_level(ctx, log_level, cfg.get("log_level"))
    pool_size = _pick(hosts, cfg.get("hosts"), 1)
    if hosts is not None:
        pool_source = f"{_source_name(ctx, _param(ctx, 'hosts'))} {pool_size}"
    else:
        pool_source = f"hosts = {pool_size} (config {config_file})"
    server_keys, keyring, insecure = _server_security(
        secret_key, clients_dir, operators_dir, hosts_dir, insecure, cfg, attach=False)
    if dashboard is not None:
        _check_dashboard_listen(ctx, dashboard, insecure)
    if not target:
        _fail("no adapter given: threadhost serve MODULE[:CLASS] (or --example mylib)")
    description = preflight(target)
    if pool_size > 1 and description.get("replicable") is not True:
        name = description.get("adapter") or target
        _fail(f"{name} is not replicable (replicable = {description.get('replicable', False)}):"
              f" it cannot run with {pool_source}")
    if policy is None:
        default = description.get("default_policy")
        if default:
            from threadhost.policy import PolicyError, check_policy

            try:
                check_policy(default)
            except PolicyError as exc:
                _fail(f"{description.get('adapter')}.default_policy: {exc}")
    _basic_logging(level, log_format)
    from threadhost.broker import Broker, BrokerError
    from threadhost.gate import GateConfig

    base = GateConfig()
    config = GateConfig(
        policy=policy,
        policies=policies,
        hosts=pool_size,
        max_maintaining=_pick(max_maintaining, cfg.get("max_maintaining"),
                              base.max_maintaining),
        route_away_after=_pick(route_away_after, cfg.get("route_away_after"),
                               base.route_away_after),
        maintain_budget=_pick(maintain_budget, cfg.get("maintain_budget"), base.maintain_budget),
        heartbeat_timeout=_pick(heartbeat_timeout, cfg.get("heartbeat_timeout"),
                                base.heartbeat_timeout),
        fast_call_limit=_pick(fast_call_limit, cfg.get("fast_call_limit"), base.fast_call_limit),
        restart_limit=_pick(restart_limit, cfg.get("restart_limit"), base.restart_limit),
        restart_window=_pick(restart_window, cfg.get("restart_window"), base.restart_window),
    )
    broker = Broker(target, endpoint=endpoint, config=config, log_level=level,
                    metrics=metrics, server_keys=server_keys, keyring=keyring,
                    insecure=insecure)
    try:
        broker.check_endpoints()
    except BrokerError as exc:
        _fail(exc)
    web = None
    if dashboard is not None:
        web = _start_dashboard(endpoint, dashboard, _dashboard_keys(broker), insecure)
    try:
        code = broker.run()
    except BrokerError as exc:
        _fail(exc)
    finally:
        if web is not None:
            _stop_helper(web)
    if code != 0 and broker.stop_reason:  # the last line says why (e.g. a failed start-up)
        click.echo(f"threadhost: error: {broker.stop_reason}", err=True)
    sys.exit(code)


def client_endpoint_of(bound: str) -> str:
    """Where a client on this machine connects to a service bound at ``bound``:
    ``tcp://*:6000`` and ``tcp://0.0.0.0:6000`` -> ``tcp://127.0.0.1:6000``."""
    scheme, _, address = bound.partition("://")
    host, colon, port = address.rpartition(":")
    if scheme == "tcp" and colon and host in ("*", "0.0.0.0"):
        return f"tcp://127.0.0.1:{port}"
    if scheme == "tcp" and colon and host in ("[::]", "::"):
        return f"tcp://[::1]:{port}"
    return bound


def _check_dashboard(ctx: click.Context) -> None:
    """``serve --dashboard`` can run: its extra is installed (else one line, exit 2)."""
    from threadhost.dashboard import EXTRA_HINT
    from threadhost.dashboard.command import missing_extra

    if missing_extra():
        _fail(f"{_source_name(ctx, _param(ctx, 'dashboard'))}: {EXTRA_HINT}", 2)


def _check_dashboard_listen(ctx: click.Context, listen: str, insecure: bool) -> None:
    """``serve --dashboard`` on an address others can reach needs ``--insecure``: anyone
    who can open the page acts with the dashboard's key (one line, exit 2)."""
    from threadhost.dashboard import listen_is_local, open_listen_refusal

    if not insecure and not listen_is_local(listen):
        _fail(open_listen_refusal(_source_name(ctx, _param(ctx, "dashboard")), listen), 2)


def _dashboard_keys(broker: Any) -> tuple[bytes, bytes] | None:
    """``serve --dashboard`` with CURVE on the front end: a key pair made for this run's
    dashboard, its public key allowed as an operator's (the dashboard offers maintenance).
    Returns (the service's public key, the dashboard's secret key), or None without CURVE.
    Called before ``broker.run()``: the authenticator reads the operators' keys then."""
    server_public = broker.front_public_key
    if server_public is None:
        return None
    import zmq

    public, secret = zmq.curve_keypair()
    broker.keyring.operators.add(bytes(public))
    return bytes(server_public), bytes(secret)


def _start_dashboard(endpoint: str, listen: str, keys: tuple[bytes, bytes] | None = None,
                     insecure: bool = False) -> Any:
    """``serve --dashboard``: the dashboard in a process of its own (it is a client of the
    served endpoint, like any other), stopped with the service. With CURVE, ``keys``
    (the service's public key, the dashboard's secret key) go to it through its stdin, a
    pipe written once and closed: never on its command line or in its environment."""
    import subprocess

    from threadhost.dashboard import KEYS_STDIN_FLAG

    if endpoint.endswith(":*"):
        _fail("--dashboard needs a fixed --endpoint port, not '*'")
    args = [sys.executable, "-m", "threadhost", "dashboard", client_endpoint_of(endpoint),
            "--listen", listen, "--exit-with", str(os.getpid())]
    if insecure:
        args.append("--insecure")  # serve checked --dashboard against it already
    if keys is not None:
        args.append(KEYS_STDIN_FLAG)
    env = _child_env()
    for name in (ENV_ENDPOINT, ENV_SERVER_KEY, ENV_SECRET_KEY, ENV_INSECURE,
                 "THREADHOST_DASHBOARD"):  # everything it needs is on its command line
        env.pop(name, None)
    proc = subprocess.Popen(args, env=env,
                            stdin=subprocess.DEVNULL if keys is None else subprocess.PIPE)
    if keys is not None and proc.stdin is not None:
        with contextlib.suppress(OSError):  # a child that died at once says why itself
            proc.stdin.write(keys[0] + b"\n" + keys[1] + b"\n")
            proc.stdin.close()
    return proc


def _stop_helper(proc: Any) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _param(ctx: click.Context, name: str) -> click.Parameter:
    return next(p for p in ctx.command.params if p.name == name)


def _basic_logging(level: str, log_format: str | None = None) -> None:
    from threadhost.logs import ENV_LOG_FORMAT, setup_logging

    if log_format is not None:
        os.environ[ENV_LOG_FORMAT] = log_format  # the host processes log the same way
    setup_logging(level, log_format, "broker",
                  "%(asctime)s threadhost[%(process)d] %(levelname)s %(message)s")


# ----------------------------------------------------------------------------- clients


def _endpoint_options(f: _F) -> _F:
    """``[ENDPOINT]`` as the first argument, or ``--endpoint``, or THREADHOST_ENDPOINT."""
    f = click.option("--endpoint", "endpoint_option", metavar="URL", default=None,
                     envvar=ENV_ENDPOINT, show_envvar=True,
                     help=f"the service (or give it as the first argument) "
                          f"[default: {DEFAULT_ENDPOINT}]")(f)
    return f


def _timeout_option(default: str) -> Callable[[_F], _F]:
    return click.option("--timeout", metavar="DURATION", callback=_positive_duration,
                        default=default, envvar=ENV_TIMEOUT, show_envvar=True,
                        help=f"answer timeout [default: {default}]")


def _client_endpoint(ctx: click.Context, positional: str | None, option: str | None) -> str:
    """The endpoint of a client command: the first argument, else --endpoint (or
    THREADHOST_ENDPOINT), else the default; checked."""
    if positional is not None:
        if (option is not None and option != positional
                and ctx.get_parameter_source("endpoint_option") is ParameterSource.COMMANDLINE):
            raise click.UsageError(
                f"two endpoints: {positional!r} and --endpoint {option!r}", ctx)
        return check_endpoint(positional, "ENDPOINT")
    if option is not None:
        return check_endpoint(option, _source_name(ctx, _param(ctx, "endpoint_option")))
    return DEFAULT_ENDPOINT


def _connect(endpoint: str, timeout: float, server_key: str | None = None,
             secret_key: str | None = None) -> Client:
    """A client of ``endpoint``. The commands call its members through the class
    (``type(client).status(client)``): an adapter call named ``status`` cannot shadow them."""
    import zmq

    from threadhost.client import Client

    _client_keys(server_key, secret_key)  # a bad key file: one line, exit 2
    try:
        return Client(endpoint, timeout, server_key=server_key, secret_key=secret_key)
    except zmq.ZMQError as exc:
        _fail(f"bad endpoint {endpoint!r}: {exc.strerror}")


def _try_later(exc: TryLaterError) -> NoReturn:
    """Exit 75 with the error and when to retry."""
    line = _one_line(exc)
    if exc.retry_after is not None:
        line += f" (retry after {exc.retry_after:.1f}s)"
    _fail(line, EXIT_TRY_LATER)


def _answered(endpoint: str, t0: float) -> None:
    import time

    _note(f"{endpoint} answered in {(time.perf_counter() - t0) * 1000:.1f} ms")


@main.command()
@click.argument("endpoint", required=False)
@_endpoint_options
@click.option("--call", "method", default=None, help="slow call to run [default: the first]")
@_timeout_option("5s")
@_client_key_options
@_verbosity_options
@click.pass_context
def maintain(ctx: click.Context, endpoint: str | None, endpoint_option: str | None,
             method: str | None, timeout: float, server_key: str | None,
             secret_key: str | None) -> None:
    """Ask the service at ENDPOINT to run its slow call now.

    \b
    Exit status: 0 started; 75 not started for now — the service said when to ask
    again (rate limit, min_gap, a round running...: the line ends with
    "(retry after N.Ns)"), or busy/unavailable; 1 not started otherwise (the reason is
    printed) or no answer; 2 usage.
    """
    import time

    from threadhost.errors import ThreadhostError, TryLaterError

    endpoint = _client_endpoint(ctx, endpoint, endpoint_option)
    with _connect(endpoint, timeout, server_key, secret_key) as client:
        t0 = time.perf_counter()
        try:
            reply = type(client).maintain(client, method)
        except TryLaterError as exc:
            _try_later(exc)
        except ThreadhostError as exc:
            _fail(exc, 1)
        _answered(endpoint, t0)
    retry = None if reply.started else reply.retry_after
    if _verbosity >= 0:
        reason = reply.reason
        if reply.started:
            click.echo(reason if reason.startswith("started") else f"started: {reason}")
        elif retry is not None:
            click.echo(f"not started: {reason} (retry after {retry:.1f}s)")
        else:
            click.echo(f"not started: {reason}")
    sys.exit(0 if reply.started else 1 if retry is None else EXIT_TRY_LATER)


def _span(seconds: float, decimals: int = 1) -> str:
    """3.14 -> '3.1s' (decimals=2: '3.14s'), 754 -> '12m 34s', 11040 -> '3h 04m'."""
    if seconds < 60:
        return f"{seconds:.{decimals}f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _last_maintenance(m: Any) -> str:
    """'read_config ok 0.52s, 3.1s ago' (or '-' when the host has run none)."""
    if not isinstance(m, dict):
        return "-"
    ok = m.get("ok")
    text = f"{m.get('call') or '?'} " + ("ok" if ok is True else "failed" if ok is False else "?")
    duration, ended_ago = _number(m.get("duration")), _number(m.get("ended_ago"))
    if duration is not None:
        text += f" {_span(duration, 2 if duration < 10 else 1)}"
    if ended_ago is not None:
        text += f", {_span(ended_ago)} ago"
    return text


_HOST_COLUMNS = ("id", "pid", "state", "generation", "in flight", "restarts", "last maintenance")


def _hosts_table(hosts: list[Any]) -> list[str]:
    """The ``hosts`` of a status as an aligned table, one row per host."""

    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    rows = [list(_HOST_COLUMNS)]
    for h in hosts:
        if not isinstance(h, dict):
            continue
        rows.append([cell(h.get("id")), cell(h.get("pid")), cell(h.get("state")),
                     cell(h.get("generation")), cell(h.get("in_flight")),
                     cell(h.get("restarts")), _last_maintenance(h.get("last_maintenance"))])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HOST_COLUMNS))]
    return ["  " + "  ".join(text.ljust(w) for text, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def _format_status(st: dict[str, Any]) -> str:
    """The text form of ``threadhost status``: summary lines, then a table of the hosts.
    Tolerates missing keys and ``None`` values (an older broker sends no ``hosts``). A
    caller's reduced status (a CURVE service, docs/security.md) is three lines."""
    lines = [f"state:        {st.get('state')}"]
    if st.get("reduced") is True:
        return "\n".join([*lines, f"adapter:      {st.get('adapter')}",
                          "(a reduced status: an operator key shows hosts, maintenance and "
                          "counters)"])
    m = st.get("maintenance")
    if m is not None and not isinstance(m, dict):  # spec-valid: any value (§4, status_reply)
        lines.append(f"maintaining:  {m}")
    elif isinstance(m, dict):
        text = f"maintaining:  {m.get('call')}"
        if m.get("reason"):
            text += f" ({m['reason']})"
        if m.get("host"):
            text += f" on {m['host']}"
        elapsed, expected = _number(m.get("elapsed")), _number(m.get("expected"))
        if elapsed is not None:
            text += f" for {elapsed:.1f}s"
        if expected is not None:
            text += f", expected {expected:.1f}s"
        lines.append(text)
    lines += [
        f"adapter:      {st.get('adapter')}",
        f"host pid:     {st.get('host_pid')}",
        f"generation:   {st.get('generation')}",
        f"restarts:     {st.get('restart_count')}"
        + (f" (last: {st['last_restart_reason']})" if st.get("last_restart_reason") else ""),
    ]
    if st.get("failed_reason"):
        lines.append(f"failed:       {st['failed_reason']}")
    slow = st.get("slow_calls")
    if isinstance(slow, dict):
        for name, sc in slow.items():
            if not isinstance(sc, dict):
                continue
            due = _number(sc.get("next_due_in"))
            when = (f"next due in {due:.1f}s" if due is not None
                    else "running now" if isinstance(st.get("rollout"), dict)
                    and st["rollout"].get("state") == "running"
                    and st["rollout"].get("call") == name else "not scheduled")
            lines.append(f"slow call:    {name}: policy {sc.get('policy')!r}, {when}")
    rollout = st.get("rollout")
    if isinstance(rollout, dict) and rollout.get("state") == "halted":
        lines.append(f"rollout:      halted on {rollout.get('host')}: {rollout.get('reason')}"
                     f" (retry in {_number(rollout.get('retry_in')) or 0:.0f}s)")
    quarantined = st.get("quarantined")
    if isinstance(quarantined, list) and quarantined:
        lines.append("quarantined:  " + ", ".join(
            f"{q.get('method')} ({q.get('kills')} kills)" for q in quarantined
            if isinstance(q, dict)))
    counters = st.get("counters")
    counters = counters if isinstance(counters, dict) else {}
    lines.append(("counters:     " + ", ".join(f"{k}={v}" for k, v in counters.items()))
                 .rstrip())
    hosts = st.get("hosts")
    if isinstance(hosts, list):
        if any(isinstance(h, dict) for h in hosts):
            lines.append("hosts:")
            lines += _hosts_table(hosts)
            lines += [f"  {h.get('id')}: {h['note']}" for h in hosts
                      if isinstance(h, dict) and h.get("note")]
        else:
            lines.append("hosts:        none")
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    """JSON for the msgpack values JSON lacks: bin as hex, a timestamp as ISO 8601, map keys
    and any other value (an ext...) as their text."""
    if isinstance(value, bytes | bytearray):
        return value.hex()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return repr(value)


def _json_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_keys(v) for v in value]
    return value


def status_json(st: dict[str, Any]) -> str:
    """``threadhost status --json``: every spec-valid status map prints (any msgpack value
    in an informative entry, docs/protocol.md §4)."""
    return json.dumps(_json_keys(st), indent=2, sort_keys=True, default=_json_default)


@main.command()
@click.argument("endpoint", required=False)
@_endpoint_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_timeout_option("5s")
@_client_key_options
@_verbosity_options
@click.pass_context
def status(ctx: click.Context, endpoint: str | None, endpoint_option: str | None,
           as_json: bool, timeout: float, server_key: str | None,
           secret_key: str | None) -> None:
    """Show the state of the service at ENDPOINT and of each of its hosts (-q: the state
    only).

    \b
    Exit status:
      0  the service answered and has not failed (serving, starting, maintaining...)
      3  the service answered and is failed (restart limit reached; see "failed:")
      1  no answer (nothing listening, timeout) or an error reply
      2  usage (a bad option or endpoint)
    """
    import time

    from threadhost.errors import ThreadhostError

    endpoint = _client_endpoint(ctx, endpoint, endpoint_option)
    with _connect(endpoint, timeout, server_key, secret_key) as client:
        t0 = time.perf_counter()
        try:
            st = type(client).status(client)
        except ThreadhostError as exc:
            _fail(exc, 1)
        _answered(endpoint, t0)
    if as_json:
        click.echo(status_json(st))
    elif _verbosity < 0:
        click.echo(st.get("state"))
    else:
        click.echo(_format_status(st))
    sys.exit(3 if st.get("state") == "failed" else 0)


# ----------------------------------------------------------------------------- call, describe


def parse_value(word: str) -> Any:
    """A command-line argument as a JSON value; a word that is not valid JSON is a string
    (``5`` -> 5, ``[1, 2]`` -> [1, 2], ``null`` -> None, ``abc`` -> 'abc', ``'"5"'`` -> '5')."""
    try:
        return json.loads(word)
    except ValueError:
        return word


def _is_number(word: str) -> bool:
    value = parse_value(word)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def jsonable(value: Any) -> Any:
    """A result as JSON-able data: bytes as base64 text, tuples as lists, keys as text."""
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(jsonable(k)): jsonable(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def format_result(value: Any, as_json: bool) -> str:
    """``--json``: one line of JSON. Otherwise a string as it is, anything else as indented
    JSON."""
    if as_json:
        return json.dumps(jsonable(value), ensure_ascii=False)
    if isinstance(value, str):
        return value
    return json.dumps(jsonable(value), indent=2, ensure_ascii=False)


class _CallCommand(click.Command):
    """Words after ``--`` are arguments even when they start with '-'; before it, only a
    negative number may."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            ctx.meta[_LITERAL_WORDS] = len(args) - args.index("--") - 1
        return super().parse_args(ctx, args)


@main.command(cls=_CallCommand, context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, metavar="[ENDPOINT] METHOD [ARG]...")
@click.option("--kw", "keywords", multiple=True, metavar="NAME=VALUE",
              help="a keyword argument (repeatable); VALUE is read as ARG is")
@click.option("--json", "as_json", is_flag=True, help="print the result as one line of JSON")
@_endpoint_options
@_timeout_option("10s")
@_client_key_options
@_verbosity_options
@click.pass_context
def call(ctx: click.Context, words: tuple[str, ...], keywords: tuple[str, ...],
         as_json: bool, endpoint_option: str | None, timeout: float, server_key: str | None,
         secret_key: str | None) -> None:
    """Call METHOD of the service and print the result (-q: print nothing).

    \b
    ENDPOINT is the first word if it contains "://" (tcp://127.0.0.1:6000), else
    --endpoint, THREADHOST_ENDPOINT or the default. Each ARG is a JSON value; a word that
    is not valid JSON is a string:
      threadhost call calc 5                        -> calc(5)
      threadhost call tcp://10.0.0.5:6000 calc 5    -> the same call on another service
      threadhost call lookup alice '[1, 2]' --kw strict=true
      threadhost call echo '"5"'                    -> echo("5") (a string)
      threadhost call calc -- -5                    -> after --, words may start with '-'
    A string result prints as it is, anything else as JSON (--json: always one line of JSON;
    bytes are base64 text).

    \b
    Exit status:
      0   the call returned
      75  refused for now: busy (a slow call runs) or unavailable; the line ends with
          "(retry after N.Ns)" when the service knows
      1   any other error (unknown call, bad arguments, the library raised, no answer...)
      2   usage
    """
    import time

    from threadhost.errors import RemoteError, ThreadhostError, TryLaterError

    literal = ctx.meta.get(_LITERAL_WORDS, 0)
    for word in words[:len(words) - literal]:
        if word.startswith("-") and not _is_number(word):
            raise click.UsageError(
                f"no such option: {word} (an argument that starts with '-' goes after '--')",
                ctx)
    rest = list(words)
    positional = rest.pop(0) if rest and "://" in rest[0] else None
    endpoint = _client_endpoint(ctx, positional, endpoint_option)
    if not rest:
        raise click.UsageError("missing METHOD", ctx)
    method, args = rest[0], [parse_value(word) for word in rest[1:]]
    kwargs: dict[str, Any] = {}
    for item in keywords:
        name, eq, value = item.partition("=")
        if not eq or not name.isidentifier():
            raise click.UsageError(f"--kw expects NAME=VALUE, got {item!r}", ctx)
        if name in kwargs:
            raise click.UsageError(f"--kw {name} given twice", ctx)
        kwargs[name] = parse_value(value)
    with _connect(endpoint, timeout, server_key, secret_key) as client:
        t0 = time.perf_counter()
        try:
            result = type(client).request(client, method, args, kwargs)
        except TryLaterError as exc:
            _try_later(exc)
        except RemoteError as exc:
            if _verbosity > 0 and exc.remote_traceback:
                click.echo(exc.remote_traceback.rstrip(), err=True)
            _fail(exc, 1)
        except ThreadhostError as exc:
            _fail(exc, 1)
        _answered(endpoint, t0)
    if _verbosity >= 0:
        click.echo(format_result(result, as_json))


_SIMPLE_TYPES = {"integer": "int", "number": "float", "boolean": "bool", "null": "None"}


def type_text(schema: Any) -> str:
    """A JSON schema (as adapters describe parameters and results) as a Python-like type:
    ``{"type": "integer"}`` -> ``int``, a model or an enum -> its title, ``anyOf`` -> ``A | B``."""
    if not isinstance(schema, dict) or not schema:
        return "Any"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return " | ".join(dict.fromkeys(type_text(s) for s in schema[key]))
    title = schema.get("title")
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if isinstance(schema.get("enum"), list):
        return str(title) if title else (
            "Literal[" + ", ".join(repr(v) for v in schema["enum"]) + "]")
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(type_text({**schema, "type": k}) for k in kind)
    if kind == "string":
        return "bytes" if schema.get("format") == "binary" else "str"
    if kind in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[kind]
    if kind == "array":
        if isinstance(schema.get("prefixItems"), list):
            return "tuple[" + ", ".join(type_text(s) for s in schema["prefixItems"]) + "]"
        return f"list[{type_text(schema['items'])}]" if "items" in schema else "list"
    if kind == "object":
        if title and "properties" in schema:
            return str(title)
        extra = schema.get("additionalProperties")
        return f"dict[str, {type_text(extra)}]" if isinstance(extra, dict) else "dict"
    return str(title) if title else "Any"


def signature_text(call_description: dict[str, Any]) -> str:
    """``calc(x: int) -> int`` from a call's description."""
    params = [p for p in call_description.get("params") or [] if isinstance(p, dict)]
    parts: list[str] = []
    starred = False
    for i, p in enumerate(params):
        kind = p.get("kind")
        text = f"{p.get('name')}: {type_text(p.get('schema'))}"
        if kind == "var_positional":
            text, starred = "*" + text, True
        elif kind == "var_keyword":
            text = "**" + text
        elif kind == "keyword_only" and not starred:
            parts.append("*")
            starred = True
        if "default" in p:
            text += f" = {p['default']!r}"
        elif p.get("required") is False:
            text += " = ..."
        parts.append(text)
        if kind == "positional_only" and (
                i + 1 == len(params) or params[i + 1].get("kind") != "positional_only"):
            parts.append("/")
    returns = type_text(call_description.get("returns"))
    return f"{call_description.get('name')}({', '.join(parts)}) -> {returns}"


def format_description(d: dict[str, Any]) -> str:
    """The text form of ``threadhost describe``."""
    fingerprint = str(d.get("fingerprint") or "")
    lines = [f"{d.get('adapter')}" + (f"  (fingerprint {fingerprint[:12]})" if fingerprint
                                      else "")]
    if d.get("doc"):
        lines.append(f"  {str(d['doc']).strip().splitlines()[0]}")
    facts = []
    if d.get("default_policy"):
        facts.append(f"default policy: {d['default_policy']}")
    if d.get("replicable") is True:
        facts.append("replicable")
    if facts:
        lines.append("  " + "; ".join(facts))
    calls = [c for c in d.get("calls") or [] if isinstance(c, dict)]
    for kind, heading in (("fast", "calls (threadhost call METHOD ARG...):"),
                          ("slow", "slow calls (run by the broker; threadhost maintain "
                                   "--call NAME):")):
        chosen = [c for c in calls if c.get("kind") == kind]
        if not chosen:
            continue
        lines += ["", heading]
        for c in chosen:
            options = [k if v is True else f"{k} {v}" for k in ("startup", "policy", "deadline",
                                                                "timeout")
                       if (v := c.get(k)) not in (None, False)]
            lines.append(f"  {signature_text(c)}"
                         + (f"  [{', '.join(options)}]" if options else ""))
            if c.get("doc"):
                lines.append(f"      {str(c['doc']).strip().splitlines()[0]}")
    return "\n".join(lines)


@main.command()
@click.argument("endpoint", required=False)
@_endpoint_options
@click.option("--json", "as_json", is_flag=True, help="print the description as JSON")
@_timeout_option("5s")
@_client_key_options
@_verbosity_options
@click.pass_context
def describe(ctx: click.Context, endpoint: str | None, endpoint_option: str | None,
             as_json: bool, timeout: float, server_key: str | None,
             secret_key: str | None) -> None:
    """List the calls of the service at ENDPOINT with their signatures (-q: the names of
    its fast calls only).

    \b
    Exit status: 0 described, 75 refused for now, 1 no answer or an error, 2 usage.
    """
    import time

    from threadhost.errors import ThreadhostError, TryLaterError

    endpoint = _client_endpoint(ctx, endpoint, endpoint_option)
    with _connect(endpoint, timeout, server_key, secret_key) as client:
        t0 = time.perf_counter()
        try:
            description = type(client).describe(client)
        except TryLaterError as exc:
            _try_later(exc)
        except ThreadhostError as exc:
            _fail(exc, 1)
        _answered(endpoint, t0)
    if as_json:
        click.echo(json.dumps(description, indent=2))
    elif _verbosity < 0:
        for c in description.get("calls") or []:
            if isinstance(c, dict) and c.get("kind") == "fast":
                click.echo(c.get("name"))
    else:
        click.echo(format_description(description))


# ----------------------------------------------------------------------------- attach mode


@main.command()
@click.option("--endpoint", metavar="URL", default=DEFAULT_ENDPOINT, show_default=True,
              envvar=ENV_ENDPOINT, show_envvar=True, help="where clients connect")
@click.option("--backend", metavar="URL", required=True, envvar=ENV_BACKEND, show_envvar=True,
              help="where hosts attach, e.g. tcp://127.0.0.1:6002")
@click.option("--policy", metavar="SPEC", default=None, envvar="THREADHOST_POLICY",
              show_envvar=True, help="maintenance policy (overrides the adapter's)")
@click.option("--hosts", metavar="N", callback=_int_at_least(1), default=None,
              envvar="THREADHOST_HOSTS", show_envvar=True,
              help="adopt at most N attached hosts [default: no limit]")
@_gate_options
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              default=None, envvar="THREADHOST_CONFIG", show_envvar=True,
              help="TOML file; broker reads its security keys (secret_key, clients, "
                   "operators, hosts_keys, insecure)")
@_server_security_options
@_log_level_option
@_verbosity_options
@click.pass_context
def broker(ctx: click.Context, endpoint: str, backend: str, policy: str | None,
           hosts: int | None, max_maintaining: int | None, route_away_after: float | None,
           maintain_budget: float | None, heartbeat_timeout: float | None,
           config_file: str | None, secret_key: str | None,
           clients_dir: str | None, operators_dir: str | None, hosts_dir: str | None,
           insecure: bool | None, log_level: str | None) -> None:
    """Run only the broker (attach mode): hosts started elsewhere with `threadhost host`
    attach to its --backend. Used by the conformance kit and for hosts on other machines.

    A non-loopback --endpoint needs --secret-key with --clients/--operators, and a
    non-loopback --backend needs --secret-key with --hosts-keys (or --insecure); see
    docs/security.md and docs/deployment.md."""
    check_endpoint(endpoint, _source_name(ctx, _param(ctx, "endpoint")), bind=True)
    check_endpoint(backend, _source_name(ctx, _param(ctx, "backend")), bind=True)
    cfg = load_config_isolated(config_file) if config_file is not None else {}
    server_keys, keyring, insecure = _server_security(
        secret_key, clients_dir, operators_dir, hosts_dir, insecure, cfg, attach=True)
    if policy is not None:
        from threadhost.policy import PolicyError, check_policy

        try:
            check_policy(policy)
        except PolicyError as exc:
            _fail(exc)
    level = _log_level(ctx, log_level)
    _basic_logging(level)
    from threadhost.broker import Broker, BrokerError
    from threadhost.gate import GateConfig

    base = GateConfig()
    config = GateConfig(
        policy=policy,
        spawn=False,
        hosts=hosts,
        max_maintaining=_pick(max_maintaining, None, base.max_maintaining),
        route_away_after=route_away_after,
        maintain_budget=_pick(maintain_budget, None, base.maintain_budget),
        heartbeat_timeout=_pick(heartbeat_timeout, None, base.heartbeat_timeout),
    )
    b = Broker(None, endpoint=endpoint, backend=backend, config=config, log_level=level,
               server_keys=server_keys, keyring=keyring, insecure=insecure)
    try:
        b.check_endpoints()
        code = b.run()
    except BrokerError as exc:
        _fail(exc)
    sys.exit(code)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target", metavar="MODULE[:CLASS]")
@click.option("--backend", "--connect", "endpoint", metavar="URL", required=True,
              envvar=ENV_BACKEND, show_envvar=True,
              help="the broker's --backend (--connect: the old spelling)")
@click.option("--host-id", default=None, help="routing id [default: host-PID]")
@click.option("--broker-timeout", metavar="DURATION", callback=_positive_duration, default=None,
              envvar="THREADHOST_BROKER_TIMEOUT", show_envvar=True,
              help="no broker heartbeat for this long: the broker is gone; the host waits "
                   "and announces itself to the next one [default: 3s]")
@click.option("--lock", metavar="PATH", default=None,
              help="hold this lock file (flock) from before the library loads until exit; "
                   "a second host with the same PATH waits: one library instance per PATH")
@_client_key_options
@_log_level_option
@_verbosity_options
@click.pass_context
def host(ctx: click.Context, target: str, endpoint: str, host_id: str | None,
         broker_timeout: float | None, lock: str | None, server_key: str | None,
         secret_key: str | None, log_level: str | None) -> None:
    """Run a host process for adapter MODULE[:CLASS] that attaches to a broker's back end.
    It announces itself again to a new broker on the same endpoint (after a broker
    restart)."""
    check_endpoint(endpoint, _source_name(ctx, _param(ctx, "endpoint")))
    from threadhost.host import main as host_main

    extra: list[str] = []
    if broker_timeout is not None:
        extra = ["--broker-timeout", str(broker_timeout)]
    if lock is not None:
        extra += ["--lock", lock]
    _client_keys(server_key, secret_key)  # a bad key file: one line, exit 2
    if server_key is not None and secret_key is not None:
        extra += ["--server-key", server_key, "--secret-key", secret_key]
    sys.path.insert(0, os.getcwd())
    sys.exit(host_main([target, "--connect", endpoint, "--host-id",
                        host_id or f"host-{os.getpid()}", "--log-level",
                        _log_level(ctx, log_level), *extra]))
