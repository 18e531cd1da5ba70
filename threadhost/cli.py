"""The ``threadhost`` command line (also ``python -m threadhost``)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any, ClassVar, NoReturn

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
@click.option("--heartbeat-timeout", callback=_duration, default=None,
              help="declare a silent host dead after this long [default: 3s]")
@click.option("--fast-call-limit", callback=_duration, default=None,
              help="kill and restart a host whose fast call runs longer [default: 60s]")
@click.option("--restart-limit", type=int, default=None,
              help="host restarts allowed within --restart-window [default: 5]")
@click.option("--restart-window", callback=_duration, default=None,
              help="window for --restart-limit [default: 60s]")
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def serve(
    target: str | None,
    endpoint: str | None,
    policy: str | None,
    config_file: str | None,
    heartbeat_timeout: float | None,
    fast_call_limit: float | None,
    restart_limit: int | None,
    restart_window: float | None,
    log_level: str | None,
) -> None:
    """Serve adapter TARGET (MODULE or MODULE:CLASS) until Ctrl-C or SIGTERM."""
    policies: dict[str, str] = {}
    if config_file is not None:
        cfg = load_config_isolated(config_file)
        target = target or cfg["adapter"]
        endpoint = endpoint or cfg["endpoint"]
        policy = policy or cfg["policy"]
        policies = dict(cfg["policies"])
        log_level = log_level or cfg["log_level"]
        fast_call_limit = fast_call_limit or cfg["fast_call_limit"]
        heartbeat_timeout = heartbeat_timeout or cfg["heartbeat_timeout"]
        restart_window = restart_window or cfg["restart_window"]
        if restart_limit is None:
            restart_limit = cfg["restart_limit"]
    if not target:
        _fail("no adapter given: threadhost serve MODULE[:CLASS]")
    if policy is not None:
        try:
            check_policy(policy)
        except PolicyError as exc:
            _fail(str(exc))
    description = preflight(target)
    if policy is None:
        default = description.get("default_policy")
        if default:
            try:
                check_policy(default)
            except PolicyError as exc:
                _fail(f"{description.get('adapter')}.default_policy: {exc}")
    level = (log_level or "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s threadhost[%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    base = GateConfig()
    config = GateConfig(
        policy=policy,
        policies=policies,
        heartbeat_timeout=heartbeat_timeout or base.heartbeat_timeout,
        fast_call_limit=fast_call_limit or base.fast_call_limit,
        restart_limit=restart_limit if restart_limit is not None else base.restart_limit,
        restart_window=restart_window or base.restart_window,
    )
    broker = Broker(target, endpoint=endpoint or DEFAULT_ENDPOINT, config=config,
                    log_level=level)
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


def _format_status(st: dict[str, Any]) -> str:
    lines = [f"state:        {st.get('state')}"]
    m = st.get("maintenance")
    if m:
        exp = m.get("expected")
        lines.append(
            f"maintaining:  {m['call']} ({m['reason']}) for {m['elapsed']:.1f}s"
            + (f", expected {exp:.1f}s" if exp is not None else "")
        )
    lines += [
        f"adapter:      {st.get('adapter')}",
        f"host pid:     {st.get('host_pid')}",
        f"generation:   {st.get('generation')}",
        f"restarts:     {st.get('restart_count')}"
        + (f" (last: {st['last_restart_reason']})" if st.get("last_restart_reason") else ""),
    ]
    if st.get("failed_reason"):
        lines.append(f"failed:       {st['failed_reason']}")
    counters = st.get("counters", {})
    lines.append("counters:     " + ", ".join(f"{k}={v}" for k, v in counters.items()))
    return "\n".join(lines)


@main.command()
@click.argument("endpoint", default=DEFAULT_ENDPOINT)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@click.option("--timeout", callback=_duration, default="5s", help="answer timeout [default: 5s]")
def status(endpoint: str, as_json: bool, timeout: float) -> None:
    """Show the state of the service at ENDPOINT."""
    from threadhost.client import Client

    with Client(endpoint, timeout) as client:
        try:
            st = client.status()
        except ThreadhostError as exc:
            _fail(str(exc), 1)
    click.echo(json.dumps(st, indent=2, sort_keys=True) if as_json else _format_status(st))


@main.command()
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="client endpoint")
@click.option("--backend", required=True, help="endpoint hosts attach to, e.g. tcp://127.0.0.1:6002")
@click.option("--policy", default=None, help="maintenance policy (overrides the adapter's)")
@click.option("--heartbeat-timeout", callback=_duration, default=None,
              help="declare a silent host dead after this long [default: 3s]")
@click.option("--log-level", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def broker(endpoint: str, backend: str, policy: str | None, heartbeat_timeout: float | None,
           log_level: str) -> None:
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
    config = GateConfig(policy=policy, spawn=False,
                        heartbeat_timeout=heartbeat_timeout or base.heartbeat_timeout)
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
@click.option("--log-level", default="INFO",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def host(target: str, endpoint: str, host_id: str | None, log_level: str) -> None:
    """Run a host process for adapter TARGET that attaches to a broker's back end."""
    from threadhost.host import main as host_main

    sys.path.insert(0, os.getcwd())
    sys.exit(host_main([target, "--connect", endpoint, "--host-id",
                        host_id or f"host-{os.getpid()}", "--log-level", log_level]))
