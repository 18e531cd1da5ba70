"""``threadhost dashboard [ENDPOINT] [--listen 127.0.0.1:8765]``: the command (a lazy
command of :mod:`threadhost.cli`). Importing it needs neither Starlette nor uvicorn; run
without them, it prints one line naming the extra and exits 2."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from typing import Any

import click

from threadhost import cli
from threadhost.dashboard import (
    DEFAULT_LISTEN,
    EXTRA_HINT,
    KEYS_STDIN_FLAG,
    listen_is_local,
    open_listen_refusal,
)

__all__ = ["dashboard_command", "missing_extra", "run_dashboard"]


def missing_extra() -> bool:
    """Starlette or uvicorn cannot be imported."""
    try:
        importlib.import_module("starlette")
        importlib.import_module("uvicorn")
    except ImportError:
        return True
    return False


def _watch_parent(pid: int, stop: Any) -> None:
    """Stop when process ``pid`` (the ``serve`` that started this dashboard) is gone."""

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            except PermissionError:
                continue
            if os.getppid() != pid:
                break
        stop()

    threading.Thread(target=watch, name="threadhost-dashboard-parent", daemon=True).start()


def run_dashboard(endpoint: str, listen: str, *, client_options: dict[str, Any] | None = None,
                  exit_with: int | None = None, log_level: str = "warning") -> int:
    """Serve the dashboard of ``endpoint`` on ``listen`` (``HOST:PORT``) until Ctrl-C or
    SIGTERM (or until process ``exit_with`` is gone). ``client_options``: extra arguments
    of its client (``server_key``, ``secret_key``)."""
    import uvicorn

    from threadhost.dashboard.app import Settings, create_app
    from threadhost.metrics import parse_listen
    from threadhost.transport import http_listener

    host, port = parse_listen(listen)
    # bound here, not by uvicorn: a port in use is an OSError the command reports in one line
    sock = http_listener(host, port)
    port = sock.getsockname()[1]
    server: uvicorn.Server | None = None
    app = create_app(Settings(endpoint, client_options=dict(client_options or {})),
                     stopping=lambda: server is not None and server.should_exit)
    # open pages hold their event streams forever: stop waiting for them after a second
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=1))
    if exit_with is not None:
        def stop() -> None:
            server.should_exit = True

        _watch_parent(exit_with, stop)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"threadhost: dashboard of {endpoint} on http://{shown}:{port}/", err=True)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _read_keys(stream: Any) -> tuple[str, str]:
    """The two lines ``serve --dashboard`` writes to the child's stdin (a pipe, then
    closed): the service's public key and the dashboard's secret key (z85). Kept in memory
    only: never on a command line, in the environment or in a file."""
    lines = [stream.readline().strip() for _ in range(2)]
    with contextlib.suppress(OSError):
        stream.close()
    if not all(lines):
        cli._fail(f"{KEYS_STDIN_FLAG}: expected two keys on stdin", 2)
    return lines[0], lines[1]


@click.command(name="dashboard")
@click.argument("endpoint", required=False)
@cli._endpoint_options
@click.option("--listen", metavar="HOST:PORT", callback=cli._listen, default=DEFAULT_LISTEN,
              envvar="THREADHOST_DASHBOARD", show_envvar=True, show_default=True,
              help="where the page is served (loopback by default: anyone who can open it "
                   "can call the service)")
@click.option("--exit-with", metavar="PID", type=int, default=None, hidden=True,
              help="stop when process PID is gone (serve --dashboard)")
@click.option("--insecure", is_flag=True, default=False, envvar=cli.ENV_INSECURE,
              show_envvar=True,
              help="allow a --listen address other than loopback (anyone who can open the "
                   "page acts with the dashboard's key)")
@cli._client_key_options
@click.option(KEYS_STDIN_FLAG, "keys_stdin", is_flag=True, default=False, hidden=True,
              help="read the service's public key and our secret key from stdin, a line "
                   "each (serve --dashboard with CURVE)")
@cli._verbosity_options
@click.pass_context
def dashboard_command(ctx: click.Context, endpoint: str | None, endpoint_option: str | None,
                      listen: str, exit_with: int | None, insecure: bool,
                      server_key: str | None, secret_key: str | None,
                      keys_stdin: bool) -> None:
    """Serve a live web dashboard of the service at ENDPOINT (needs threadhost[dashboard]).

    \b
    The page shows the service and its hosts live, the running slow call's progress, the
    last maintenances and restarts, calls/s and latency; its panel calls the service's
    fast calls (with a 2 s deadline) and asks for maintenance. It talks to the service
    only through the protocol, like any client: with CURVE, give it --server-key and
    --secret-key (an operator's key to maintain; a caller's key to call only).
    """
    endpoint = cli._client_endpoint(ctx, endpoint, endpoint_option)
    if not insecure and not listen_is_local(listen):
        cli._fail(open_listen_refusal("--listen", listen), 2)
    if keys_stdin:
        server_key, secret_key = _read_keys(sys.stdin)
    cli._client_keys(server_key, secret_key)  # a bad or missing key file: one line, exit 2
    options: dict[str, Any] = {}
    if server_key is not None and secret_key is not None:
        options = {"server_key": server_key, "secret_key": secret_key}
    if missing_extra():
        cli._fail(EXTRA_HINT, 2)
    from threadhost.logs import setup_logging

    setup_logging("WARNING" if cli._verbosity < 0 else "INFO", None, "dashboard",
                  "%(asctime)s threadhost-dashboard[%(process)d] %(levelname)s %(message)s")
    try:
        code = run_dashboard(endpoint, listen, client_options=options, exit_with=exit_with,
                             log_level="info" if cli._verbosity > 0 else "warning")
    except OSError as exc:
        cli._fail(f"cannot serve the dashboard on {listen}: {exc.strerror or exc}", 1)
    sys.exit(code)
