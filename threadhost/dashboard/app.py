"""The dashboard's web application (Starlette): the page, its live updates and the panel's
requests. It reaches the broker only through the protocol, with one
:class:`~threadhost.client.AsyncClient` (see :func:`connect_service`).

Routes:

* ``GET /`` — the page; ``/static/...`` its script and style sheet (shipped in the package);
* ``GET /api/events`` — server-sent events: a snapshot (:func:`~threadhost.dashboard.model.
  snapshot`) every ``interval`` seconds (``?limit=N``: close after N events);
* ``GET /api/snapshot`` — the latest snapshot as JSON;
* ``GET /api/describe`` — the served adapter's fast calls as forms, and its slow calls;
* ``POST /api/call`` — ``{"method": NAME, "values": {PARAM: TEXT}}``: make the call with a
  short deadline; the answer is ``{"outcome": "ok", "result": ...}`` or a refused/failed
  call (``outcome``, ``error``, ``message``, ``retry_after``), with ``ms``, the time taken;
* ``POST /api/maintain`` — ``{"call": NAME or null}``: ask for a slow call now.

The POST routes take JSON only and refuse a request whose ``Origin`` is another site (a
page elsewhere cannot make the operator's browser call the service).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from threadhost.cli import jsonable
from threadhost.client import AsyncClient
from threadhost.dashboard.model import (
    FormError,
    Rates,
    Tracker,
    error_answer,
    form_fields,
    parse_form,
    problem_of,
    snapshot,
)
from threadhost.errors import ThreadhostError

__all__ = ["STATIC", "ClientService", "Sampler", "Service", "Settings", "connect_service",
           "create_app"]

STATIC = Path(__file__).with_name("static")
_log = logging.getLogger("threadhost.dashboard")


@dataclass
class Settings:
    """How the dashboard talks to the service."""

    endpoint: str
    #: seconds between two ``status`` samples (and live updates)
    interval: float = 0.5
    #: the deadline of a call made from the panel: the page never waits longer
    call_timeout: float = 2.0
    #: the deadline of ``status``, ``describe`` and ``maintain``
    control_timeout: float = 2.0
    #: extra keyword arguments of the :class:`~threadhost.client.AsyncClient` (the one place
    #: where connection options, e.g. keys, reach the client)
    client_options: dict[str, Any] = field(default_factory=dict)


class Service(Protocol):
    """What the dashboard asks of the service (an :class:`AsyncClient` in
    :class:`ClientService`; a fake in tests)."""

    async def status(self, timeout: float) -> dict[str, Any]: ...

    async def describe(self, timeout: float) -> dict[str, Any]: ...

    async def call(self, method: str, args: list[Any], kwargs: dict[str, Any],
                   timeout: float) -> Any: ...

    async def maintain(self, call: str | None, timeout: float
                       ) -> tuple[bool, str, float | None]: ...

    async def close(self) -> None: ...


class ClientService:
    """:class:`Service` over an :class:`AsyncClient`; its members are called through the
    class, so an adapter call named ``status`` cannot shadow them."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def status(self, timeout: float) -> dict[str, Any]:
        return await AsyncClient.status(self.client, timeout)

    async def describe(self, timeout: float) -> dict[str, Any]:
        return await AsyncClient.describe(self.client, timeout)

    async def call(self, method: str, args: list[Any], kwargs: dict[str, Any],
                   timeout: float) -> Any:
        return await AsyncClient.request(self.client, method, args, kwargs, timeout=timeout)

    async def maintain(self, call: str | None, timeout: float
                       ) -> tuple[bool, str, float | None]:
        reply = await AsyncClient.maintain(self.client, call, timeout)
        return bool(reply.started), str(reply.reason), reply.retry_after

    async def close(self) -> None:
        await AsyncClient.close(self.client)


def connect_service(settings: Settings) -> Service:
    """The dashboard's client of ``settings.endpoint`` (with ``settings.client_options``)."""
    return ClientService(AsyncClient(settings.endpoint, settings.control_timeout,
                                     **settings.client_options))


class Sampler:
    """Polls ``status`` every ``interval`` seconds and keeps the latest snapshot; the live
    updates wait on it (:meth:`next`)."""

    def __init__(self, settings: Settings, service: Service,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.service = service
        self.rates = Rates()
        self.tracker = Tracker()
        self._clock, self._wall = clock, wall
        self.version = 0
        self.latest = snapshot(None, endpoint=settings.endpoint, now=clock(), wall=wall(),
                               rates=self.rates, tracker=self.tracker,
                               problem="no answer yet")
        self._changed = asyncio.Condition()
        self._told: str | None = None  # the state last logged (problems and recoveries)

    async def sample(self) -> dict[str, Any]:
        """Ask for the status once and publish the snapshot."""
        problem = None
        state = "unreachable"
        status: dict[str, Any] | None
        try:
            status = await self.service.status(self.settings.control_timeout)
        except (ThreadhostError, OSError) as exc:
            status = None
            state, problem = problem_of(exc)
        now, wall = self._clock(), self._wall()
        if status is not None:
            self.rates.add(now, status)
            self.tracker.add(wall, status)
        self.latest = snapshot(status, endpoint=self.settings.endpoint, now=now, wall=wall,
                               rates=self.rates, tracker=self.tracker, problem=problem,
                               state=state)
        self._tell(status, state, problem)
        async with self._changed:
            self.version += 1
            self._changed.notify_all()
        return self.latest

    def _tell(self, status: dict[str, Any] | None, state: str, problem: str | None) -> None:
        """Log a line when the dashboard loses the service (why: unreachable, or its key
        refused) and when it reaches it again, not at every sample."""
        told = state if status is None else "reduced" if status.get("reduced") else "ok"
        if told == self._told:
            return
        before, self._told = self._told, told
        if status is None:
            _log.warning("%s: %s", self.settings.endpoint, problem)
        elif told == "reduced":
            _log.warning("%s answers with a caller's reduced status: the dashboard's key is "
                         "not an operator key (no hosts, counters or maintenance)",
                         self.settings.endpoint)
        elif before is not None:
            _log.info("%s answers again", self.settings.endpoint)

    async def run(self) -> None:
        while True:
            began = self._clock()
            await self.sample()
            await asyncio.sleep(max(0.05, self.settings.interval - (self._clock() - began)))

    async def next(self, seen: int, timeout: float) -> tuple[int, dict[str, Any] | None]:
        """The snapshot after version ``seen`` (at once if there is a newer one), or None
        after ``timeout`` seconds without one."""
        async with self._changed:
            if self.version <= seen:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self.version > seen), timeout)
            if self.version <= seen:
                return seen, None
            return self.version, self.latest


class _State:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: Service | None = None
        self.sampler: Sampler | None = None
        self.forms: dict[str, dict[str, Any]] = {}


def _foreign(request: Request) -> bool:
    """A request sent by a page of another site (its Origin names another host)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.headers.get("host")


async def _json_body(request: Request) -> dict[str, Any] | Response:
    if _foreign(request):
        return JSONResponse({"outcome": "error", "error": "Forbidden",
                             "message": "cross-site request refused"}, status_code=403)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"outcome": "error", "error": "BadRequest",
                             "message": "expected application/json"}, status_code=415)
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"outcome": "error", "error": "BadRequest",
                             "message": "expected a JSON object"}, status_code=400)
    return body


def create_app(settings: Settings,
               service_factory: Callable[[Settings], Service] = connect_service,
               *, sample: bool = True,
               stopping: Callable[[], bool] = lambda: False) -> Starlette:
    """The dashboard of the service at ``settings.endpoint``. ``service_factory`` makes
    its client when the application starts; ``sample=False`` (tests): no background
    sampling, ``GET /api/snapshot`` samples on demand. The event streams end once
    ``stopping()`` is true (the server is shutting down: open pages must not hold it)."""
    state = _State(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.service = service_factory(settings)
        state.sampler = Sampler(settings, state.service)
        task = asyncio.create_task(state.sampler.run()) if sample else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.service.close()

    def parts() -> tuple[Service, Sampler]:
        assert state.service is not None and state.sampler is not None
        return state.service, state.sampler

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def snapshot_route(request: Request) -> Response:
        _service, sampler = parts()
        snap = sampler.latest if sample else await sampler.sample()
        return JSONResponse(snap)

    async def events(request: Request) -> Response:
        _service, sampler = parts()
        limit_text = request.query_params.get("limit", "")
        limit = int(limit_text) if limit_text.isdigit() else None

        async def stream() -> AsyncIterator[str]:
            seen, sent = -1, 0
            yield "retry: 1000\n\n"
            quiet = 0.0
            while (limit is None or sent < limit) and not stopping():
                seen, snap = await sampler.next(seen, 0.5)
                if snap is None:
                    quiet += 0.5
                    if quiet >= 15.0:
                        quiet = 0.0
                        yield ": keep-alive\n\n"
                    continue
                quiet = 0.0
                yield f"data: {json.dumps(snap, separators=(',', ':'))}\n\n"
                sent += 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    async def load_forms(service: Service) -> dict[str, Any]:
        description = await service.describe(settings.control_timeout)
        calls = [c for c in description.get("calls") or [] if isinstance(c, dict)]
        state.forms = {str(c.get("name")): form_fields(c) for c in calls
                       if c.get("kind") == "fast"}
        return {"outcome": "ok", "adapter": description.get("adapter"),
                "fingerprint": description.get("fingerprint"),
                "calls": list(state.forms.values()),
                "slow": [{"name": c.get("name"), "doc": str(c.get("doc") or "").strip()
                          .split("\n", 1)[0]} for c in calls if c.get("kind") == "slow"]}

    async def describe(request: Request) -> Response:
        service, _sampler = parts()
        try:
            return JSONResponse(await load_forms(service))
        except ThreadhostError as exc:
            return JSONResponse(error_answer(exc))

    async def call(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        service, _sampler = parts()
        method, values = body.get("method"), body.get("values") or {}
        t0 = time.perf_counter()

        def answer(out: dict[str, Any], status_code: int = 200) -> Response:
            out["ms"] = round((time.perf_counter() - t0) * 1000.0, 2)
            return JSONResponse(out, status_code=status_code)

        if not isinstance(method, str) or not isinstance(values, dict):
            return answer({"outcome": "error", "error": "BadRequest",
                           "message": "expected {method: NAME, values: {...}}"}, 400)
        try:
            if method not in state.forms:
                await load_forms(service)
            form = state.forms.get(method)
            if form is None:
                return answer({"outcome": "error", "error": "UnknownCall",
                               "message": f"{method!r} is not a fast call of the service"})
            args, kwargs = parse_form(form, values)
            result = await service.call(method, args, kwargs, settings.call_timeout)
        except FormError as exc:
            return answer({"outcome": "error", "error": "BadInput", "message": str(exc)})
        except ThreadhostError as exc:
            return answer(error_answer(exc))
        return answer({"outcome": "ok", "result": jsonable(result)})

    async def maintain(request: Request) -> Response:
        body = await _json_body(request)
        if isinstance(body, Response):
            return body
        service, sampler = parts()
        name = body.get("call")
        if name is not None and not isinstance(name, str):
            return JSONResponse({"outcome": "error", "error": "BadRequest",
                                 "message": "call: a slow call's name or null"}, 400)
        try:
            started, reason, retry = await service.maintain(name or None,
                                                            settings.control_timeout)
        except ThreadhostError as exc:
            return JSONResponse(error_answer(exc))
        if started:  # the page shows the running call at once
            await sampler.sample()
        out: dict[str, Any] = {"outcome": "ok", "started": started, "reason": reason}
        if not started and retry is not None:  # the page counts down to it
            out["retry_after"] = retry
        return JSONResponse(out)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/events", events),
            Route("/api/snapshot", snapshot_route),
            Route("/api/describe", describe),
            Route("/api/call", call, methods=["POST"]),
            Route("/api/maintain", maintain, methods=["POST"]),
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
