"""The ``threadhost`` command line (also ``python -m threadhost``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, TypeVar

import click

from threadhost.broker import DEFAULT_ENDPOINT, Broker, BrokerError
from threadhost.errors import ThreadhostError
from threadhost.gate import GateConfig
from threadhost.policy import PolicyError, check_policy, parse_duration

__all__ = ["main"]


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"threadhost: error: {message}", err=True)
    sys.exit(code)


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except PolicyError as exc:
        raise click.BadParameter(str(exc)) from None


def _option_name(param: click.Parameter) -> str:
    return max(param.opts, key=len) if param.opts else str(param.name)


def _positive_duration(ctx: click.Context, param: click.Parameter, value: str | None
                       ) -> float | None:
    """A duration that must be > 0; anything else exits with one line (exit 2)."""
    if value is None:
        return None
    name = _option_name(param)
    try:
        seconds = parse_duration(value)
    except PolicyError as exc:
        _fail(f"{name}: {exc}")
    if seconds <= 0:
        _fail(f"{name} must be greater than 0, got {value!r}")
    return seconds


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
            _fail(f"{_option_name(param)} must be an integer >= {minimum}, got {value!r}")
        return number

    return check


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


def _child_env() -> dict[str, str]:
    """The environment of a helper process: it imports what this process imports."""
    env = dict(os.environ)
    paths = [os.getcwd(), *(p for p in sys.path if p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def load_config_isolated(path: str) -> dict[str, Any]:
    """Validate a ``serve`` config file in a throw-away process (pydantic never enters the
    broker's own process: ~12 MB less) and return its settings, durations in seconds; or
    exit with the file's one-line error."""
    proc = subprocess.run(
        [sys.executable, "-m", "threadhost.config", path],
        capture_output=True,
        text=True,
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        _fail(lines[-1] if lines else f"cannot read config {path}")
    settings: dict[str, Any] = json.loads(proc.stdout)
    return settings


def preflight(target: str) -> dict[str, Any]:
    """Load the adapter in a throw-away process (never in the broker's own process) and
    return its description, or exit with the loader's one-line error."""
    proc = subprocess.run(
        [sys.executable, "-m", "threadhost.host", "--describe", target],
        capture_output=True,
        text=True,
        env=_child_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        _fail(lines[-1] if lines else f"cannot load adapter {target!r}")
    description: dict[str, Any] = json.loads(proc.stdout)
    return description


class _LazyGroup(click.Group):
    """Commands whose modules load only when run (or listed): ``serve`` stays lean."""

    lazy: ClassVar[dict[str, str]] = {
        "proxy": "threadhost.proxygen:proxy_command",
        "conformance": "threadhost.conformance:conformance_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, _, attr = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="threadhost")
def main() -> None:
    """threadhost: host a thread-hostile, slow, crash-prone library behind a busy-aware broker."""


@main.command()
@click.argument("target", required=False)
@click.option("--endpoint", default=None, help=f"client endpoint [default: {DEFAULT_ENDPOINT}]")
@click.option("--policy", default=None, help='maintenance policy, e.g. "idle=10s | stale=5m"')
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML file with serve settings (command-line options win)")
@click.option("--hosts", metavar="N", callback=_int_at_least(1), default=None,
              help="host processes, each its own library instance; N > 1 needs a "
                   "replicable adapter [default: 1]")
@click.option("--max-maintaining", metavar="N", callback=_int_at_least(1), default=None,
              help="hosts that may run a slow call at the same time during a rollout "
                   "[default: 1]")
@click.option("--route-away-after", metavar="DURATION", callback=_positive_duration,
              default=None,
              help="a host whose fast call has run longer gets no new calls "
                   "[default: derived from measured fast calls]")
@click.option("--heartbeat-timeout", metavar="DURATION", callback=_positive_duration,
              default=None, help="declare a silent host dead after this long [default: 3s]")
@click.option("--fast-call-limit", metavar="DURATION", callback=_positive_duration,
              default=None,
              help="kill and restart a host whose fast call runs longer [default: 60s]")
@click.option("--restart-limit", metavar="N", callback=_int_at_least(0), default=None,
              help="host restarts allowed within --restart-window [default: 5]")
@click.option("--restart-window", metavar="DURATION", callback=_positive_duration,
              default=None, help="window for --restart-limit [default: 60s]")
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def serve(
    target: str | None,
    endpoint: str | None,
    policy: str | None,
    config_file: str | None,
    hosts: int | None,
    max_maintaining: int | None,
    route_away_after: float | None,
    heartbeat_timeout: float | None,
    fast_call_limit: float | None,
    restart_limit: int | None,
    restart_window: float | None,
    log_level: str | None,
) -> None:
    """Serve adapter TARGET (MODULE or MODULE:CLASS) until Ctrl-C or SIGTERM."""
    cfg: dict[str, Any] = {}
    if config_file is not None:
        cfg = load_config_isolated(config_file)
    base = GateConfig()
    target = _pick(target, cfg.get("adapter"), None)
    endpoint = _pick(endpoint, cfg.get("endpoint"), DEFAULT_ENDPOINT)
    policy = _pick(policy, cfg.get("policy"), None)
    policies: dict[str, str] = dict(cfg.get("policies") or {})
    level = _pick(log_level, cfg.get("log_level"), "INFO").upper()
    pool_size = _pick(hosts, cfg.get("hosts"), 1)
    if hosts is not None:
        pool_source = f"--hosts {pool_size}"
    else:
        pool_source = f"hosts = {pool_size} (config {config_file})"
    if not target:
        _fail("no adapter given: threadhost serve MODULE[:CLASS]")
    if policy is not None:
        try:
            check_policy(policy)
        except PolicyError as exc:
            _fail(str(exc))
    description = preflight(target)
    if pool_size > 1 and description.get("replicable") is not True:
        name = description.get("adapter") or target
        _fail(f"{name} is not replicable (replicable = {description.get('replicable', False)}):"
              f" it cannot run with {pool_source}")
    if policy is None:
        default = description.get("default_policy")
        if default:
            try:
                check_policy(default)
            except PolicyError as exc:
                _fail(f"{description.get('adapter')}.default_policy: {exc}")
    logging.basicConfig(
        level=level,
        format="%(asctime)s threadhost[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    config = GateConfig(
        policy=policy,
        policies=policies,
        hosts=pool_size,
        max_maintaining=_pick(max_maintaining, cfg.get("max_maintaining"),
                              base.max_maintaining),
        route_away_after=_pick(route_away_after, cfg.get("route_away_after"),
                               base.route_away_after),
        heartbeat_timeout=_pick(heartbeat_timeout, cfg.get("heartbeat_timeout"),
                                base.heartbeat_timeout),
        fast_call_limit=_pick(fast_call_limit, cfg.get("fast_call_limit"), base.fast_call_limit),
        restart_limit=_pick(restart_limit, cfg.get("restart_limit"), base.restart_limit),
        restart_window=_pick(restart_window, cfg.get("restart_window"), base.restart_window),
    )
    broker = Broker(target, endpoint=endpoint, config=config, log_level=level)
    try:
        code = broker.run()
    except BrokerError as exc:
        _fail(str(exc))
    sys.exit(code)


@main.command()
@click.argument("endpoint", default=DEFAULT_ENDPOINT)
@click.option("--call", "method", default=None, help="slow call to run [default: the first]")
@click.option("--timeout", callback=_duration, default="5s", help="answer timeout [default: 5s]")
def maintain(endpoint: str, method: str | None, timeout: float) -> None:
    """Ask the service at ENDPOINT to run its slow call now (exit 0 if it started)."""
    from threadhost.client import Client

    with Client(endpoint, timeout) as client:
        try:
            reply = client.maintain(method)
        except ThreadhostError as exc:
            _fail(str(exc), 1)
    click.echo(("started: " if reply.started else "not started: ") + reply.reason)
    sys.exit(0 if reply.started else 1)


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
    Tolerates missing keys and ``None`` values (an older broker sends no ``hosts``)."""
    lines = [f"state:        {st.get('state')}"]
    m = st.get("maintenance")
    if isinstance(m, dict):
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
    counters = st.get("counters")
    counters = counters if isinstance(counters, dict) else {}
    lines.append(("counters:     " + ", ".join(f"{k}={v}" for k, v in counters.items()))
                 .rstrip())
    hosts = st.get("hosts")
    if isinstance(hosts, list):
        if any(isinstance(h, dict) for h in hosts):
            lines.append("hosts:")
            lines += _hosts_table(hosts)
        else:
            lines.append("hosts:        none")
    return "\n".join(lines)


@main.command()
@click.argument("endpoint", default=DEFAULT_ENDPOINT)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--timeout", callback=_duration, default="5s", help="answer timeout [default: 5s]")
def status(endpoint: str, as_json: bool, timeout: float) -> None:
    """Show the state of the service at ENDPOINT and of each of its hosts.

    \b
    Exit status:
      0  the service answered and has not failed (serving, starting, maintaining...)
      3  the service answered and is failed (restart limit reached; see "failed:")
      1  no answer (nothing listening, timeout) or an error reply
    """
    from threadhost.client import Client

    with Client(endpoint, timeout) as client:
        try:
            st = client.status()
        except ThreadhostError as exc:
            _fail(str(exc), 1)
    click.echo(json.dumps(st, indent=2, sort_keys=True) if as_json else _format_status(st))
    sys.exit(3 if st.get("state") == "failed" else 0)


@main.command()
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="client endpoint")
@click.option("--backend", required=True, help="endpoint hosts attach to, e.g. tcp://127.0.0.1:6002")
@click.option("--policy", default=None, help="maintenance policy (overrides the adapter's)")
@click.option("--hosts", metavar="N", callback=_int_at_least(1), default=None,
              help="adopt at most N attached hosts [default: no limit]")
@click.option("--max-maintaining", metavar="N", callback=_int_at_least(1), default=None,
              help="hosts that may run a slow call at the same time during a rollout "
                   "[default: 1]")
@click.option("--route-away-after", metavar="DURATION", callback=_positive_duration,
              default=None,
              help="a host whose fast call has run longer gets no new calls "
                   "[default: derived from measured fast calls]")
@click.option("--heartbeat-timeout", metavar="DURATION", callback=_positive_duration,
              default=None, help="declare a silent host dead after this long [default: 3s]")
@click.option("--log-level", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def broker(endpoint: str, backend: str, policy: str | None, hosts: int | None,
           max_maintaining: int | None, route_away_after: float | None,
           heartbeat_timeout: float | None, log_level: str) -> None:
    """Run only the broker (attach mode): hosts started elsewhere with `threadhost host`
    connect to BACKEND. Used by the conformance kit and for hosts on other machines."""
    if policy is not None:
        try:
            check_policy(policy)
        except PolicyError as exc:
            _fail(str(exc))
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s threadhost[%(process)d] %(levelname)s %(message)s")
    base = GateConfig()
    config = GateConfig(
        policy=policy,
        spawn=False,
        hosts=hosts,
        max_maintaining=_pick(max_maintaining, None, base.max_maintaining),
        route_away_after=route_away_after,
        heartbeat_timeout=_pick(heartbeat_timeout, None, base.heartbeat_timeout),
    )
    b = Broker(None, endpoint=endpoint, backend=backend, config=config, log_level=log_level)
    try:
        code = b.run()
    except BrokerError as exc:
        _fail(str(exc))
    sys.exit(code)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("target")
@click.option("--connect", "endpoint", required=True, help="the broker's back-end endpoint")
@click.option("--host-id", default=None, help="routing id [default: host-PID]")
@click.option("--broker-timeout", callback=_positive_duration, default=None,
              help="no broker heartbeat for this long: the broker is gone; the host waits "
                   "and announces itself to the next one [default: 3s]")
@click.option("--log-level", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def host(target: str, endpoint: str, host_id: str | None, broker_timeout: float | None,
         log_level: str) -> None:
    """Run a host process for adapter TARGET that attaches to a broker's back end. It
    announces itself again to a new broker on the same endpoint (after a broker restart)."""
    from threadhost.host import main as host_main

    extra: list[str] = []
    if broker_timeout is not None:
        extra = ["--broker-timeout", str(broker_timeout)]
    sys.path.insert(0, os.getcwd())
    sys.exit(host_main([target, "--connect", endpoint, "--host-id",
                        host_id or f"host-{os.getpid()}", "--log-level", log_level, *extra]))
