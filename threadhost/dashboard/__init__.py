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

__all__ = ["DEFAULT_LISTEN", "EXTRA_HINT"]

#: Where the dashboard listens when no ``--listen`` is given: loopback only.
DEFAULT_LISTEN = "127.0.0.1:8765"
#: The one line printed when Starlette or uvicorn is missing.
EXTRA_HINT = "the dashboard needs Starlette and uvicorn: pip install 'threadhost[dashboard]'"
