"""The live dashboard: ``threadhost dashboard [ENDPOINT] [--listen 127.0.0.1:8765]`` and
``threadhost serve --dashboard ADDR`` (docs/dashboard.md).

A web page served by Starlette + uvicorn (the optional extra ``threadhost[dashboard]``) that
talks to the broker only through the protocol, like any client: it polls ``status``, builds
the form of each fast call from ``describe``, and makes the calls and ``maintain`` requests
the operator asks for. Importing this package needs neither Starlette nor uvicorn: the pure
parts are in :mod:`threadhost.dashboard.model`, the web application in
:mod:`threadhost.dashboard.app`, the command in :mod:`threadhost.dashboard.command`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LISTEN", "EXTRA_HINT", "KEYS_STDIN_FLAG", "listen_is_local",
           "open_listen_refusal"]

#: Where the dashboard listens when no ``--listen`` is given: loopback only.
DEFAULT_LISTEN = "127.0.0.1:8765"
#: The one line printed when Starlette or uvicorn is missing.
EXTRA_HINT = "the dashboard needs Starlette and uvicorn: pip install 'threadhost[dashboard]'"
#: ``serve --dashboard`` with CURVE: the dashboard child reads its keys from stdin (a pipe)
KEYS_STDIN_FLAG = "--keys-stdin"


def listen_is_local(listen: str) -> bool:
    """Whether only this machine can open a page served at ``listen`` (``HOST:PORT``):
    a loopback address or ``localhost``; a name is never resolved."""
    from threadhost.transport import is_local_endpoint

    return is_local_endpoint(f"tcp://{listen}")


def open_listen_refusal(option: str, listen: str) -> str:
    """The one line refusing a dashboard on an address others can reach."""
    return (f"{option} {listen} is not a loopback address: anyone who can open the page "
            "calls the service and asks for maintenance with the dashboard's key; add "
            "--insecure to serve it there anyway (behind a proxy that authenticates)")
