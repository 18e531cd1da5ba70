"""Runtime support for generated typed proxies (``threadhost proxy MODULE -o FILE``).

A generated proxy module is a thin typed layer; all behaviour lives here, once::

    generated module                       this module                 threadhost.client
    ----------------                       -----------                 -----------------
    def calc(x: int) -> int:          ->   Method.call(client, (x,))   Client._request(...)
        return _calc.call(...)               validate + dump args  ->    RequestCore frames,
                                             load + convert result <-    socket, typed errors
    class Client(SyncProxy)           ->   SyncProxy: owns a threadhost.client.Client
    class AsyncClient(AsyncProxy)     ->   AsyncProxy: owns a threadhost.client.AsyncClient
    init() / uninit()                 ->   ModuleState: the module-level connection

So a proxy call and ``threadhost.connect(...).calc(5)`` go through the same client code
(``RequestCore`` for frames and replies); the proxy adds only the typed conversions.

Conversions use the rules of :mod:`threadhost.types`, the same ones the host applies:
arguments are validated against ``wire_type(annotation)`` *before* anything is sent (a
wrong argument raises :class:`~threadhost.BadArgumentsError` locally, worded like the
host's), then dumped to plain msgpack data; results are validated against the same wire
type and so come back as the declared Python type (a map becomes the model or dataclass, a
value becomes the enum member, a list becomes a tuple). A result that does not fit raises
:class:`~threadhost.ProtocolError`. Simple scalar signatures (``calc(x: int) -> int``) take
a ``type(v) is T`` fast path.

Fingerprint: every call carries the proxy's schema fingerprint, and the broker refuses a
call whose fingerprint is not the served adapter's
(:class:`~threadhost.FingerprintMismatchError`). Connecting (``init()``, ``Client(...)``,
``async with AsyncClient(...)``) also asks the service for its fingerprint, waiting at
most :data:`CONNECT_CHECK_TIMEOUT` seconds, and raises at once on a mismatch. A service
that cannot answer yet (not running, starting, busy, failed) does not make connecting fail:
the check is then left to the per-call fingerprint.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import TypeAdapter, ValidationError

from threadhost.client import DEFAULT_TIMEOUT, AsyncClient, Client, Retry
from threadhost.errors import (
    BadArgumentsError,
    CallTimeoutError,
    FingerprintMismatchError,
    ProtocolError,
    ServiceFailedError,
    ThreadhostError,
    TryLaterError,
)
from threadhost.types import SIMPLE_TYPES, explain, to_wire, wire_type

__all__ = [
    "CONNECT_CHECK_TIMEOUT",
    "DEFAULT",
    "DEFAULT_ENDPOINT",
    "AsyncProxy",
    "Method",
    "ModuleState",
    "Param",
    "Retry",
    "Schema",
    "SyncProxy",
]

R = TypeVar("R")
P = TypeVar("P", bound="SyncProxy")

#: The endpoint ``threadhost serve`` listens on by default (``threadhost.broker``).
DEFAULT_ENDPOINT = "tcp://127.0.0.1:6000"
#: Longest wait, in seconds, for the fingerprint check when connecting.
CONNECT_CHECK_TIMEOUT = 1.0

ParamKind = Literal["positional_or_keyword", "keyword_only", "positional_only"]

_log = logging.getLogger("threadhost.proxy")
#: Errors that mean "the service cannot answer now", not "this proxy is wrong".
_DEFER = (TryLaterError, CallTimeoutError, ServiceFailedError)


class _ServiceDefault:
    """The type of :data:`DEFAULT`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


#: Default of a parameter whose adapter default cannot be written in the generated source
#: (a list, a model...): the argument is not sent, so the service applies its own default.
DEFAULT: Any = _ServiceDefault()


# --------------------------------------------------------------------------- conversions


class _Codec:
    """Client-side conversions for one annotation (validators built once, lazily for
    simple types, which need them only when the fast path misses)."""

    __slots__ = ("_serializer", "_validator", "annotation", "simple")

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self.simple: Any = annotation if annotation in SIMPLE_TYPES else None
        self._validator: TypeAdapter[Any] | None = None
        self._serializer: TypeAdapter[Any] | None = None
        if self.simple is None:
            self._build()

    def _build(self) -> tuple[TypeAdapter[Any], TypeAdapter[Any]]:
        if self._validator is None or self._serializer is None:
            self._validator = TypeAdapter(wire_type(self.annotation))
            self._serializer = TypeAdapter(self.annotation)
        return self._validator, self._serializer

    def dump(self, value: Any) -> Any:
        """Wire form of an argument; raises ValidationError when it does not fit."""
        if type(value) is self.simple:
            return value
        validator, serializer = self._build()
        checked = validator.validate_python(value)
        return to_wire(serializer.dump_python(checked, mode="python", by_alias=True))

    def load(self, wire: Any) -> Any:
        """Python value of a wire result; raises ValidationError when it does not fit."""
        if type(wire) is self.simple:
            return wire
        validator, _ = self._build()
        return validator.validate_python(wire)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a generated call: its name, annotation and kind."""

    name: str
    annotation: Any
    kind: ParamKind = "positional_or_keyword"


class Method(Generic[R]):
    """One fast call of the adapter: converts arguments and result, and makes the call.

    ``label`` is ``Class.call`` (used in messages; the wire name is the part after the
    dot). ``timeout`` is the adapter's ``@fast(timeout=...)``: when set it replaces the
    client's timeout for this call.
    """

    __slots__ = ("_codecs", "_result", "_simple", "label", "name", "params", "timeout")

    def __init__(
        self, label: str, *params: Param, returns: Any, timeout: float | None = None
    ) -> None:
        self.label = label
        self.name = label.rpartition(".")[2]
        self.params = params
        self.timeout = timeout
        self._codecs = tuple(_Codec(p.annotation) for p in params)
        self._result = _Codec(returns)
        simple = all(
            c.simple is not None and p.kind != "keyword_only"
            for p, c in zip(params, self._codecs, strict=True)
        )
        self._simple = tuple(c.simple for c in self._codecs) if simple else None

    def pack(
        self, values: tuple[Any, ...]
    ) -> tuple[tuple[Any, ...] | list[Any], dict[str, Any] | None]:
        """Wire ``(args, kwargs)`` from the values of all parameters, in declaration order.

        Keyword-only parameters go as keywords; a parameter left at :data:`DEFAULT` is not
        sent (later positional-or-keyword ones then go as keywords). Raises
        :class:`BadArgumentsError` naming the call and parameter for a value that does not
        fit its annotation.
        """
        simple = self._simple
        if simple is not None:  # the hot path of calc(x: int): no pydantic, no copies
            for index, value in enumerate(values):
                if type(value) is not simple[index]:
                    break
            else:
                return values, None
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        skipped: str | None = None
        for param, codec, value in zip(self.params, self._codecs, values, strict=True):
            if value is DEFAULT:
                skipped = skipped or param.name
                continue
            try:
                wire = codec.dump(value)
            except ValidationError as exc:
                raise BadArgumentsError(
                    f"{self.label}: argument {param.name!r}: {explain(exc)}"
                ) from None
            if param.kind == "keyword_only" or (
                skipped is not None and param.kind == "positional_or_keyword"
            ):
                kwargs[param.name] = wire
            elif skipped is not None:
                raise BadArgumentsError(
                    f"{self.label}: cannot pass {param.name!r} after leaving the "
                    f"positional-only {skipped!r} to the service's default"
                )
            else:
                args.append(wire)
        return args, kwargs

    def unpack(self, wire: Any) -> R:
        """The declared Python value of a wire result; :class:`ProtocolError` if unfit."""
        try:
            value: R = self._result.load(wire)
        except ValidationError as exc:
            raise ProtocolError(
                f"{self.label}: result does not match the declared return type: {explain(exc)}"
            ) from None
        return value

    def call(self, client: Client, values: tuple[Any, ...]) -> R:
        """Make the call through a sync ``threadhost.client.Client``."""
        args, kwargs = self.pack(values)
        return self.unpack(client._request(self.name, args, kwargs, declared=self.timeout))

    async def acall(self, client: AsyncClient, values: tuple[Any, ...]) -> R:
        """Make the call through an ``threadhost.client.AsyncClient``."""
        args, kwargs = self.pack(values)
        return self.unpack(
            await client._request(self.name, args, kwargs, declared=self.timeout)
        )

    def __repr__(self) -> str:
        return f"<threadhost proxy call {self.label}>"


# --------------------------------------------------------------------------- schema check


@dataclass(frozen=True)
class Schema:
    """What a generated module was generated from: its own name, the adapter target, the
    schema fingerprint and the command that regenerates it."""

    module: str
    adapter: str
    fingerprint: str
    command: str

    def verify(self, description: dict[str, Any], endpoint: str) -> None:
        """Raise :class:`FingerprintMismatchError` unless ``description`` (a ``describe``
        answer) carries this schema's fingerprint."""
        served = str(description.get("fingerprint", ""))
        if served == self.fingerprint:
            return
        raise FingerprintMismatchError(
            f"{self.module} was generated for {self.adapter} (fingerprint "
            f"{self.fingerprint[:12]}…) but {endpoint} serves "
            f"{description.get('adapter', 'another adapter')} (fingerprint {served[:12]}…); "
            f"regenerate the proxy with `{self.command} -o FILE`"
        )

    def deferred(self, endpoint: str, exc: ThreadhostError) -> None:
        """Log that the connect-time check could not be made (the per-call one remains)."""
        _log.debug(
            "%s: fingerprint not checked at connect to %s (%s); every call carries it",
            self.module,
            endpoint,
            exc,
        )


def _check_timeout(timeout: float) -> float:
    return min(timeout, CONNECT_CHECK_TIMEOUT)


def _description(msg: Any) -> dict[str, Any]:
    return {**msg.adapter, "fingerprint": msg.fingerprint}


class SyncProxy:
    """Base of a generated ``Client``: a thread-safe sync client and context manager.

    Connecting checks the fingerprint (unless ``check=False``); see the module docstring.
    ``retry`` (a :class:`threadhost.Retry`) retries calls refused as busy or unavailable.
    ``server_key``/``secret_key``: CURVE keys, as for :func:`threadhost.connect`.
    ``with_timeout(seconds)`` is this client with another timeout for the calls made
    through it.
    """

    _schema: ClassVar[Schema]
    _client: Client

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        check: bool = True,
        retry: Retry | None = None,
        server_key: Any = None,
        secret_key: Any = None,
    ) -> None:
        self._client = Client(
            endpoint, timeout, fingerprint=self._schema.fingerprint, retry=retry,
            server_key=server_key, secret_key=secret_key,
        )
        if check:
            try:
                self._check()
            except BaseException:
                self._client._t.close()
                raise

    def _check(self) -> None:
        client = self._client
        endpoint = client._t.endpoint
        try:
            description = _description(client._describe(_check_timeout(client._timeout)))
        except _DEFER as exc:
            self._schema.deferred(endpoint, exc)
            return
        self._schema.verify(description, endpoint)

    def with_timeout(self: P, timeout: float) -> P:
        """This client with another timeout (seconds) for the calls made through it:
        ``lib.with_timeout(2.0).calc(5)``. It shares the connection (closing it closes
        this client) and overrides the adapter's ``@fast(timeout=...)``."""
        view = object.__new__(type(self))
        view._client = self._client._with_timeout(timeout)
        return view

    @property
    def threadhost_client(self) -> Client:
        """The underlying ``threadhost.client.Client`` (``status()``, ``maintain()``...)."""
        return self._client

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self._client._t.close()

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{self._schema.module}.Client {self._client._t.endpoint}>"


A = TypeVar("A", bound="AsyncProxy")


class AsyncProxy:
    """Base of a generated ``AsyncClient``: use ``async with``; calls may run concurrently.

    Entering (``async with``) checks the fingerprint (unless ``check=False``); without
    ``async with`` only the per-call fingerprint protects. ``retry`` and
    ``with_timeout(seconds)`` as on :class:`SyncProxy`.
    """

    _schema: ClassVar[Schema]
    _client: AsyncClient
    _check_on_enter: bool

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        check: bool = True,
        retry: Retry | None = None,
        server_key: Any = None,
        secret_key: Any = None,
    ) -> None:
        self._client = AsyncClient(
            endpoint, timeout, fingerprint=self._schema.fingerprint, retry=retry,
            server_key=server_key, secret_key=secret_key,
        )
        self._check_on_enter = check

    async def _check(self) -> None:
        client = self._client
        endpoint = client._t.endpoint
        try:
            description = _description(
                await client._describe(_check_timeout(client._timeout))
            )
        except _DEFER as exc:
            self._schema.deferred(endpoint, exc)
            return
        self._schema.verify(description, endpoint)

    def with_timeout(self: A, timeout: float) -> A:
        """This client with another timeout (seconds) for the calls made through it:
        ``await lib.with_timeout(2.0).calc(5)``; it shares the connection."""
        view = object.__new__(type(self))
        view._client = self._client._with_timeout(timeout)
        view._check_on_enter = False
        return view

    @property
    def threadhost_client(self) -> AsyncClient:
        """The underlying ``threadhost.client.AsyncClient``."""
        return self._client

    async def close(self) -> None:
        """Close the connection; pending calls fail. Idempotent."""
        await self._client._t.close()

    async def __aenter__(self: A) -> A:
        if self._check_on_enter:
            try:
                await self._check()
            except BaseException:
                await self._client._t.close()
                raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<{self._schema.module}.AsyncClient {self._client._t.endpoint}>"


class ModuleState(Generic[P]):
    """The connection behind a generated module's ``init()``/calls/``uninit()``."""

    def __init__(self, schema: Schema) -> None:
        self._schema = schema
        self._lock = threading.Lock()
        self._proxy: P | None = None

    def init(self, proxy: P) -> None:
        """Use ``proxy`` from now on (closing the previous one, if any)."""
        with self._lock:
            old, self._proxy = self._proxy, proxy
        if old is not None:
            old.close()

    def uninit(self) -> None:
        """Close the connection. Idempotent."""
        with self._lock:
            old, self._proxy = self._proxy, None
        if old is not None:
            old.close()

    def proxy(self) -> P:
        """The connected proxy client; :class:`ThreadhostError` before ``init()``."""
        proxy = self._proxy
        if proxy is None:
            name = self._schema.module
            raise ThreadhostError(f"{name} is not connected: call {name}.init() first")
        return proxy

    def client(self) -> Client:
        """The connected client; :class:`ThreadhostError` before ``init()``."""
        return self.proxy()._client
