"""Declaring a hosted library: the ``Adapter`` base class, ``@fast`` / ``@slow``, and loading.

An adapter is a class that wraps the thread-hostile library::

    class Mylib(threadhost.Adapter):
        default_policy = "idle=10s | stale=5m"
        def setup(self) -> None: mylib.init()          # on the library thread
        def teardown(self) -> None: mylib.uninit()     # on the library thread
        @threadhost.slow(startup=True)
        def read_config(self) -> None: mylib.readConfig()
        @threadhost.fast
        def calc(self, x: int) -> int: return mylib.calc(x)

The host creates the adapter and runs ``setup``, every call, ``verify`` and ``teardown`` on
the one thread it owns for the library. ``verify`` (optional) checks that the instance is fit
to serve: it runs after start-up and after every slow call, and raising takes the instance
out of service. *Fast* calls are what clients call; the broker refuses them
with ``BusyError`` while a *slow* call (maintenance: the broker alone triggers those, and
they take no arguments) runs.

Nothing is trusted at run time that could be checked at load time. :func:`inspect_adapter`
validates the declarations once and produces an :class:`AdapterSpec`: one
:class:`CallSpec` per call, holding pydantic validators built once, a JSON description,
and a schema fingerprint. A mistake is an :class:`~threadhost.errors.AdapterError` naming
the class and method (``"Mylib.calc is declared both fast and slow"``). Contradictions
visible to a single decorator are refused at class definition time.

Hot path: ``AdapterSpec.client_call`` is one dict lookup and ``CallSpec.bind`` checks simple
scalar signatures (``calc(x: int)``) with ``type(v) is T``, falling back to pydantic only for
richer types or mismatches. See ``threadhost.types`` for the strictness rules.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, ParamSpec, TypeVar, overload

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from threadhost.errors import AdapterError, BadArgumentsError, ProtocolError, UnknownCallError
from threadhost.types import (
    SIMPLE_TYPES,
    UncarriableType,
    explain,
    to_wire,
    type_repr,
    wire_type,
)

__all__ = [
    "Adapter",
    "AdapterSpec",
    "CallSpec",
    "Param",
    "fast",
    "fingerprint_contract",
    "fingerprint_of",
    "inspect_adapter",
    "load_adapter",
    "slow",
]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

CallKind = Literal["fast", "slow"]
ParamKind = Literal["positional_or_keyword", "keyword_only", "positional_only"]

_MARK = "__threadhost_call__"
_FINGERPRINT_VERSION = 1
_RESERVED = frozenset({"setup", "teardown", "verify"})
_HOOKS = ("setup", "teardown", "verify")  # lifecycle hooks: run by the host, never by clients
_PARAM_KINDS: dict[Any, ParamKind] = {
    inspect.Parameter.POSITIONAL_ONLY: "positional_only",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional_or_keyword",
    inspect.Parameter.KEYWORD_ONLY: "keyword_only",
}


class Adapter:
    """Base class of every adapter: subclass it and declare calls with ``@fast``/``@slow``.

    The host instantiates the class with no arguments, then calls ``setup``, the declared
    calls and finally ``teardown``, all on the single library thread; ``verify`` runs there
    after start-up and after every slow call.
    """

    #: Maintenance policy used when the operator gives none (``threadhost.policy`` syntax).
    default_policy: ClassVar[str | None] = None

    #: Whether several instances of the library may run at once, each in its own host
    #: process (a pool: ``threadhost serve --hosts N``). Say ``True`` only when the calls'
    #: results do not depend on which instance answers (e.g. they depend only on the
    #: configuration every instance reads). A deployment fact: not part of the fingerprint.
    replicable: ClassVar[bool] = False

    def setup(self) -> None:
        """Initialise the library (runs on the library thread before any call)."""

    def teardown(self) -> None:
        """Release the library (runs on the library thread after the last call)."""

    def verify(self) -> None:
        """Check that this library instance is fit to serve; raise if it is not.

        Runs on the library thread after start-up (after ``setup`` and the start-up slow
        calls) and after every slow call, whatever that call's outcome. Raising means "do not
        serve from this state": at start-up the host never becomes ready; after a slow call
        the host answers it with the ``unfit`` error and refuses fast calls until a later
        slow call passes ``verify``; the broker takes the host out of service. The default
        checks nothing. Keep it quick (it runs before the gate opens again) and free of
        side effects on the library's state.
        """


# --------------------------------------------------------------------------- decorators


@dataclass(frozen=True)
class _Declaration:
    """What a decorator recorded on a method (stored as ``fn.__threadhost_call__``)."""

    kind: CallKind
    startup: bool = False
    policy: str | None = None
    deadline: float | None = None
    timeout: float | None = None


def _label(obj: Any) -> str:
    """``Mylib.calc`` from a qualname like ``make.<locals>.Mylib.calc``."""
    qualname = str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj)))
    return qualname.rpartition("<locals>.")[2]


def _seconds(label: str, what: str, value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise AdapterError(f"{label}: {what} must be a positive number of seconds, got {value!r}")
    return float(value)


def _mark(fn: Any, decl: _Declaration) -> None:
    label = _label(fn)
    if isinstance(fn, staticmethod | classmethod | property):
        raise AdapterError(
            f"{label}: @{decl.kind} must decorate a plain method (def {label.split('.')[-1]}"
            f"(self, ...)), not a {type(fn).__name__}"
        )
    if not inspect.isfunction(fn):
        raise AdapterError(f"@{decl.kind} must decorate a method, got {fn!r}")
    existing = getattr(fn, _MARK, None)
    if isinstance(existing, _Declaration):
        if existing.kind != decl.kind:
            raise AdapterError(f"{label} is declared both fast and slow")
        raise AdapterError(f"{label} is declared {decl.kind} twice")
    setattr(fn, _MARK, decl)


@overload
def fast(fn: Callable[P, R], *, timeout: float | None = None) -> Callable[P, R]: ...


@overload
def fast(
    fn: None = None, *, timeout: float | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def fast(fn: Callable[P, R] | None = None, *, timeout: float | None = None) -> Any:
    """Declare a *fast* call: client-callable, refused with ``BusyError`` during maintenance.

    Use bare (``@fast``) or with options (``@fast(timeout=5.0)``). ``timeout`` is the
    default number of seconds a client waits for this call (``None``: the client's default).
    The decorated function is returned unchanged, so its signature stays visible to mypy.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        _mark(func, _Declaration("fast", timeout=_seconds(_label(func), "timeout", timeout)))
        return func

    return decorate if fn is None else decorate(fn)


@overload
def slow(
    fn: Callable[[S], R],
    *,
    startup: bool = False,
    policy: str | None = None,
    deadline: float | None = None,
) -> Callable[[S], R]: ...


@overload
def slow(
    fn: None = None,
    *,
    startup: bool = False,
    policy: str | None = None,
    deadline: float | None = None,
) -> Callable[[Callable[[S], R]], Callable[[S], R]]: ...


def slow(
    fn: Callable[[S], R] | None = None,
    *,
    startup: bool = False,
    policy: str | None = None,
    deadline: float | None = None,
) -> Any:
    """Declare a *slow* call (maintenance): triggered by the broker, never by clients.

    Slow calls take no arguments besides ``self``. Options:

    ``startup``
        run it once after ``setup`` before the host reports ready (e.g. the first
        ``readConfig``);
    ``policy``
        when the broker triggers it (``threadhost.policy`` syntax; default: the adapter's
        ``default_policy``);
    ``deadline``
        seconds after which a still-running call counts as hung.
    """

    def decorate(func: Callable[[S], R]) -> Callable[[S], R]:
        label = _label(func)
        if type(startup) is not bool:
            raise AdapterError(f"{label}: startup must be True or False, got {startup!r}")
        if policy is not None and type(policy) is not str:
            raise AdapterError(f"{label}: policy must be a string, got {policy!r}")
        decl = _Declaration(
            "slow",
            startup=startup,
            policy=policy,
            deadline=_seconds(label, "deadline", deadline),
        )
        _mark(func, decl)
        return func

    return decorate if fn is None else decorate(fn)


# --------------------------------------------------------------------------- call specs


@dataclass(frozen=True)
class Param:
    """One declared parameter of a fast call (``self`` excluded)."""

    name: str
    annotation: Any
    kind: ParamKind = "positional_or_keyword"
    has_default: bool = False
    default: Any = field(default=None, hash=False)


def _type_adapter(label: str, what: str, annotation: Any, *, wire: bool) -> TypeAdapter[Any]:
    """A pydantic TypeAdapter for ``annotation`` (its strict wire form when ``wire``)."""
    try:
        return TypeAdapter(wire_type(annotation) if wire else annotation)
    except UncarriableType as exc:
        detail = exc.reason if exc.part is annotation and not exc.where else exc.detail
        raise AdapterError(
            f"{label}: {what} {type_repr(annotation)} which the protocol cannot carry ({detail})"
        ) from None
    except Exception as exc:  # pydantic schema errors, unresolved forward references, ...
        raise AdapterError(
            f"{label}: {what} {type_repr(annotation)} cannot be validated: {exc}"
        ) from None


def _strip_schema_docs(schema: Any) -> Any:
    """``schema`` without ``description`` texts (docstrings land there), for fingerprints."""
    if isinstance(schema, dict):
        return {
            key: value
            if key in ("default", "const", "enum", "examples")
            else _strip_schema_docs(value)
            for key, value in schema.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(schema, list):
        return [_strip_schema_docs(item) for item in schema]
    return schema


@dataclass(frozen=True)
class CallSpec:
    """Everything threadhost knows about one declared call.

    Built once at load time: the pydantic validators for arguments and result are cached on
    the instance, so ``bind``/``dump_result``/``load_result`` only validate.
    ``owner`` is the adapter class name, used in error messages (``Mylib.calc: ...``).
    """

    name: str
    kind: CallKind
    doc: str
    params: tuple[Param, ...]
    returns: Any
    startup: bool = False
    policy: str | None = None
    deadline: float | None = None
    timeout: float | None = None
    owner: str = ""
    _validators: tuple[TypeAdapter[Any], ...] = field(init=False, repr=False, compare=False)
    _result_validator: TypeAdapter[Any] = field(init=False, repr=False, compare=False)
    _result_serializer: TypeAdapter[Any] = field(init=False, repr=False, compare=False)
    _simple: tuple[type, ...] | None = field(init=False, repr=False, compare=False)
    _simple_result: type | None = field(init=False, repr=False, compare=False)
    _positional: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _keyword: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        label = self.label
        validators = tuple(
            _type_adapter(label, f"parameter {p.name!r} has annotation", p.annotation, wire=True)
            for p in self.params
        )
        simple_ok = all(
            p.kind != "keyword_only" and p.annotation in SIMPLE_TYPES for p in self.params
        )
        setter = object.__setattr__
        setter(self, "_validators", validators)
        setter(self, "_simple", tuple(p.annotation for p in self.params) if simple_ok else None)
        setter(
            self,
            "_result_validator",
            _type_adapter(label, "return annotation", self.returns, wire=True),
        )
        setter(
            self,
            "_result_serializer",
            _type_adapter(label, "return annotation", self.returns, wire=False),
        )
        setter(self, "_simple_result", self.returns if self.returns in SIMPLE_TYPES else None)
        setter(
            self,
            "_positional",
            tuple(i for i, p in enumerate(self.params) if p.kind != "keyword_only"),
        )
        setter(
            self,
            "_keyword",
            types.MappingProxyType(
                {p.name: i for i, p in enumerate(self.params) if p.kind != "positional_only"}
            ),
        )

    @property
    def label(self) -> str:
        """``Mylib.calc`` (or just ``calc`` when the owner is unknown)."""
        return f"{self.owner}.{self.name}" if self.owner else self.name

    # -- arguments ------------------------------------------------------------------------

    def bind(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check wire arguments against the signature and convert them to Python values.

        Returns new ``(args, kwargs)`` ready for ``method(*args, **kwargs)``; defaults are
        left to Python. Raises :class:`BadArgumentsError` naming the call and parameter for
        a wrong count, an unknown or duplicate keyword, or a value of the wrong type.
        """
        simple = self._simple
        if simple is not None and not kwargs and len(args) == len(simple):
            for value, expected in zip(args, simple, strict=True):
                if type(value) is not expected:
                    break
            else:
                return list(args), {}
        return self._bind_checked(args, kwargs)

    def _bind_checked(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        label = self.label
        if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
            raise BadArgumentsError(f"{label}: arguments must be a list and a map of keywords")
        positional = self._positional
        if len(args) > len(positional):
            raise BadArgumentsError(
                f"{label}() takes {len(positional)} positional argument"
                f"{'' if len(positional) == 1 else 's'} but {len(args)} "
                f"{'was' if len(args) == 1 else 'were'} given"
            )
        given = set(positional[: len(args)])
        keyword_indexes: list[tuple[str, int]] = []
        for key in kwargs:
            index = self._keyword.get(key) if type(key) is str else None
            if index is None:
                raise BadArgumentsError(f"{label}() got an unexpected keyword argument {key!r}")
            if index in given:
                raise BadArgumentsError(f"{label}() got multiple values for argument {key!r}")
            given.add(index)
            keyword_indexes.append((key, index))
        missing = [
            p.name for i, p in enumerate(self.params) if i not in given and not p.has_default
        ]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            plural = "s" if len(missing) > 1 else ""
            raise BadArgumentsError(f"{label}() missing required argument{plural}: {names}")
        out_args = [self._check(positional[i], value) for i, value in enumerate(args)]
        out_kwargs = {key: self._check(index, kwargs[key]) for key, index in keyword_indexes}
        return out_args, out_kwargs

    def _check(self, index: int, value: Any) -> Any:
        try:
            return self._validators[index].validate_python(value)
        except ValidationError as exc:
            raise BadArgumentsError(
                f"{self.label}: argument {self.params[index].name!r}: {explain(exc)}"
            ) from None

    # -- results --------------------------------------------------------------------------

    def dump_result(self, value: Any) -> Any:
        """The wire (msgpack-able) form of a result the adapter method returned.

        bytes stay bytes, enums become their values, models and dataclasses become maps,
        tuples become lists. A value that does not match the declared return type raises
        :class:`AdapterError` (the adapter broke its own declaration).
        """
        if self._simple_result is not None and type(value) is self._simple_result:
            return value
        try:
            checked = self._result_validator.validate_python(value)
        except ValidationError as exc:
            raise AdapterError(
                f"{self.label} returned a value that does not match its declared return type "
                f"{type_repr(self.returns)}: {explain(exc)}"
            ) from None
        dumped = self._result_serializer.dump_python(checked, mode="python", by_alias=True)
        return to_wire(dumped)

    def load_result(self, wire: Any) -> Any:
        """The Python value of a wire result, per the return annotation (for typed clients).

        Raises :class:`ProtocolError` when the wire value does not fit the declaration.
        """
        if self._simple_result is not None and type(wire) is self._simple_result:
            return wire
        try:
            return self._result_validator.validate_python(wire)
        except ValidationError as exc:
            raise ProtocolError(
                f"{self.label}: result does not match the declared return type "
                f"{type_repr(self.returns)}: {explain(exc)}"
            ) from None

    # -- description ----------------------------------------------------------------------

    @cached_property
    def _schemas(self) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        label = self.label
        try:
            params = tuple(
                TypeAdapter(p.annotation).json_schema(mode="validation") for p in self.params
            )
            returns = TypeAdapter(self.returns).json_schema(mode="serialization")
        except Exception as exc:
            raise AdapterError(f"{label}: cannot describe the signature: {exc}") from None
        return params, returns

    def describe(self) -> dict[str, Any]:
        """JSON-able: name, kind, doc, params (with JSON schemas), returns and options."""
        param_schemas, returns = self._schemas
        params: list[dict[str, Any]] = []
        for p, schema in zip(self.params, param_schemas, strict=True):
            entry: dict[str, Any] = {
                "name": p.name,
                "kind": p.kind,
                "schema": schema,
                "required": not p.has_default,
            }
            if p.has_default:
                entry["default"] = to_jsonable_python(p.default, bytes_mode="base64", fallback=repr)
            params.append(entry)
        return {
            "name": self.name,
            "kind": self.kind,
            "doc": self.doc,
            "params": params,
            "returns": returns,
            "startup": self.startup,
            "policy": self.policy,
            "deadline": self.deadline,
            "timeout": self.timeout,
        }


# --------------------------------------------------------------------------- adapter specs


def _fingerprint(calls: Iterable[CallSpec]) -> str:
    """The fingerprint of ``calls``: :func:`fingerprint_of` their descriptions.

    The contract is what a client or generated proxy depends on: each call's name and kind,
    its parameters (name, kind, required, default, JSON schema) and its return schema, in
    definition order. Docstrings (and schema ``description`` texts, where pydantic puts model
    docstrings) are left out, and so are the adapter's location and operational options
    (policies, deadlines, timeouts, startup) and deployment facts (``replicable``): moving
    an adapter, retuning its maintenance or serving it with a pool must not invalidate
    proxies; changing a signature must.
    """
    return fingerprint_of([call.describe() for call in calls])


def fingerprint_contract(calls: Sequence[Mapping[str, Any]]) -> str:
    """The canonical text the fingerprint hashes, from the ``calls`` of an adapter
    description (docs/protocol.md, "The adapter fingerprint"): JSON of ``{"calls": [...],
    "fingerprint": 1}``, each call reduced to ``name``, ``kind``, ``params`` (every entry
    of each parameter, its ``schema`` without ``description`` strings) and ``returns``
    (likewise), keys sorted, no spaces, non-ASCII escaped."""
    contract = [
        {
            "name": description["name"],
            "kind": description["kind"],
            "params": [
                {**param, "schema": _strip_schema_docs(param["schema"])}
                for param in description["params"]
            ],
            "returns": _strip_schema_docs(description["returns"]),
        }
        for description in calls
    ]
    body = {"fingerprint": _FINGERPRINT_VERSION, "calls": contract}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint_of(calls: Sequence[Mapping[str, Any]]) -> str:
    """sha256 (64 lowercase hex digits) of :func:`fingerprint_contract` as ASCII: the
    fingerprint of an adapter whose description has these ``calls`` (every call, fast and
    slow, in the description's order). A peer recomputes it from a ``ready`` message."""
    return hashlib.sha256(fingerprint_contract(calls).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class AdapterSpec:
    """A validated adapter: its class, documentation and calls in definition order.

    ``fingerprint`` (64 hex digits, sha256) covers the calls' wire contract (see
    ``_fingerprint``: names, kinds, parameter and return schemas; not docstrings), so
    clients and generated proxies can tell whether they match the served adapter. It is
    computed when left empty. ``replicable`` (the class attribute ``Adapter.replicable``)
    says whether several hosts may run the library at once; it is described but, being a
    deployment fact rather than part of the calls' contract, not fingerprinted.
    ``has_verify`` says whether the class defines its own ``verify`` (described as
    ``verify``; not fingerprinted either: it guards the instance, not the contract).
    """

    module: str
    qualname: str
    cls: type[Adapter]
    doc: str
    default_policy: str | None
    calls: Mapping[str, CallSpec] = field(hash=False)
    fingerprint: str = ""
    replicable: bool = False
    has_verify: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "calls", types.MappingProxyType(dict(self.calls)))
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", _fingerprint(self.calls.values()))

    @property
    def target(self) -> str:
        """``module:Class``, the form ``load_adapter`` takes."""
        return f"{self.module}:{self.qualname}"

    @property
    def name(self) -> str:
        """The class name, as used in messages (``Mylib``)."""
        return self.cls.__name__

    @cached_property
    def _client_calls(self) -> Mapping[str, CallSpec]:
        return types.MappingProxyType(
            {name: call for name, call in self.calls.items() if call.kind == "fast"}
        )

    @property
    def fast_calls(self) -> tuple[CallSpec, ...]:
        """The fast (client-callable) calls, in definition order."""
        return tuple(self._client_calls.values())

    @property
    def slow_calls(self) -> tuple[CallSpec, ...]:
        """The slow (maintenance) calls, in definition order."""
        return tuple(call for call in self.calls.values() if call.kind == "slow")

    @property
    def startup_calls(self) -> tuple[CallSpec, ...]:
        """The slow calls to run once after ``setup``, in definition order."""
        return tuple(call for call in self.calls.values() if call.startup)

    def client_call(self, name: str) -> CallSpec:
        """The fast call a client may make under ``name``; else :class:`UnknownCallError`.

        Slow calls, ``setup``/``teardown``/``verify``, private and dunder names are never
        client-callable, whatever the class defines.
        """
        try:
            return self._client_calls[name]
        except (KeyError, TypeError):
            pass
        message = f"{self.name} has no client-callable call {name!r}"
        call = self.calls.get(name) if isinstance(name, str) else None
        if call is not None:
            message += " (it is a slow call; only the broker triggers slow calls)"
        elif name == "verify":
            message += (" (verify is run by the host after start-up and after slow calls, "
                        "not by clients)")
        elif isinstance(name, str) and name in _RESERVED:
            message += " (setup and teardown are run by the host, not by clients)"
        raise UnknownCallError(message)

    def instantiate(self) -> Adapter:
        """A new adapter instance (call on the library thread, then ``setup``)."""
        return self.cls()

    def _describe_body(self) -> dict[str, Any]:
        return {
            "adapter": self.target,
            "doc": self.doc,
            "default_policy": self.default_policy,
            "replicable": self.replicable,
            "verify": self.has_verify,
            "calls": [call.describe() for call in self.calls.values()],
        }

    def describe(self) -> dict[str, Any]:
        """JSON-able: ``{adapter, doc, default_policy, replicable, verify, fingerprint,
        calls: [...]}``."""
        body = self._describe_body()
        body["fingerprint"] = self.fingerprint
        return body


# --------------------------------------------------------------------------- inspection


def _check_policy(label: str, spec: str) -> None:
    """Validate a policy string with ``threadhost.policy.check_policy`` when available."""
    try:
        from threadhost.policy import check_policy
    except ImportError:
        return
    try:
        check_policy(spec)
    except ValueError as exc:
        raise AdapterError(f"{label}: invalid policy {spec!r}: {exc}") from None


def _declaration(cls_name: str, name: str, attr: Any) -> _Declaration | None:
    """The declaration on class attribute ``attr``, refusing decorated wrappers."""
    inner = getattr(attr, "__func__", None) or getattr(attr, "fget", None)
    if isinstance(attr, staticmethod | classmethod | property):
        decl = getattr(inner, _MARK, None)
        if isinstance(decl, _Declaration):
            raise AdapterError(
                f"{cls_name}.{name}: @{decl.kind} must decorate a plain method "
                f"(def {name}(self, ...)), not a {type(attr).__name__}"
            )
        return None
    decl = getattr(attr, _MARK, None)
    return decl if isinstance(decl, _Declaration) else None


def _call_spec(cls: type[Adapter], name: str, fn: Any, decl: _Declaration) -> CallSpec:
    label = f"{cls.__name__}.{name}"
    if name.startswith("_"):
        raise AdapterError(
            f"{label}: call names must not start with '_' (private names are never callable)"
        )
    if name == "verify":
        raise AdapterError(
            f"{label}: verify runs on the library thread after start-up and after every slow "
            f"call; it cannot be declared {decl.kind}"
        )
    if name in _RESERVED:
        raise AdapterError(
            f"{label}: setup and teardown run on the library thread around all calls; "
            f"they cannot be declared {decl.kind}"
        )
    if not inspect.isfunction(fn):
        raise AdapterError(f"{label}: @{decl.kind} must decorate a plain method")
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise AdapterError(f"{label}: async methods cannot run on the library thread")
    if inspect.isgeneratorfunction(fn):
        raise AdapterError(f"{label}: generator methods are not supported; return a list")
    signature = inspect.signature(fn)
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise AdapterError(f"{label}: must be a method taking self first")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise AdapterError(f"{label}: cannot resolve annotations: {exc}") from None
    params: list[Param] = []
    for parameter in parameters[1:]:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise AdapterError(
                f"{label}: *{parameter.name} is not supported; declare each parameter"
            )
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            raise AdapterError(
                f"{label}: **{parameter.name} is not supported; declare each parameter"
            )
        if decl.kind == "slow":
            raise AdapterError(
                f"{label}: slow calls take no parameters (the broker triggers them); "
                f"remove {parameter.name!r}"
            )
        if parameter.name not in hints:
            raise AdapterError(f"{label}: parameter {parameter.name!r} has no annotation")
        has_default = parameter.default is not inspect.Parameter.empty
        params.append(
            Param(
                name=parameter.name,
                annotation=hints[parameter.name],
                kind=_PARAM_KINDS[parameter.kind],
                has_default=has_default,
                default=parameter.default if has_default else None,
            )
        )
    if "return" not in hints:
        raise AdapterError(
            f"{label}: missing return annotation (write -> None if it returns nothing)"
        )
    if decl.policy is not None:
        _check_policy(label, decl.policy)
    doc = inspect.cleandoc(fn.__doc__) if fn.__doc__ else ""
    spec = CallSpec(
        name=name,
        kind=decl.kind,
        doc=doc,
        params=tuple(params),
        returns=hints["return"],
        startup=decl.startup,
        policy=decl.policy,
        deadline=decl.deadline,
        timeout=decl.timeout,
        owner=cls.__name__,
    )
    for index, param in enumerate(params):
        if param.has_default:
            try:
                spec._validators[index].validate_python(param.default)
            except ValidationError as exc:
                raise AdapterError(
                    f"{label}: default of parameter {param.name!r} does not match its "
                    f"annotation {type_repr(param.annotation)}: {explain(exc)}"
                ) from None
    return spec


def _check_hook(cls: type[Adapter], name: str) -> bool:
    """Validate lifecycle hook ``name`` (``setup``, ``teardown``, ``verify``) of ``cls``: a
    plain, synchronous method taking only ``self``. True if ``cls`` overrides the base's."""
    attr = inspect.getattr_static(cls, name)
    if attr is Adapter.__dict__[name]:
        return False
    label = f"{cls.__name__}.{name}"
    plain = f"def {name}(self) -> None"
    if isinstance(attr, staticmethod | classmethod | property):
        raise AdapterError(f"{label} must be a plain method ({plain}), not a "
                           f"{type(attr).__name__}")
    if not inspect.isfunction(attr):
        raise AdapterError(f"{label} must be a plain method ({plain}), got {attr!r}")
    if inspect.iscoroutinefunction(attr) or inspect.isasyncgenfunction(attr):
        raise AdapterError(f"{label}: async methods cannot run on the library thread")
    if inspect.isgeneratorfunction(attr):
        raise AdapterError(f"{label} must be a plain method ({plain}), not a generator")
    parameters = list(inspect.signature(attr).parameters.values())
    if not parameters or parameters[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise AdapterError(f"{label}: must be a method taking self first ({plain})")
    required = [
        p.name for p in parameters[1:]
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise AdapterError(f"{label} takes no arguments besides self (the host calls "
                           f"{name}()); remove {', '.join(repr(n) for n in required)}")
    return True


def inspect_adapter(cls: type[Adapter]) -> AdapterSpec:
    """Validate ``cls``'s declarations and describe it; raises :class:`AdapterError`.

    Calls are collected from the class and its bases in definition order (base classes'
    calls first); an override without a decorator stops being a call.
    """
    if not (isinstance(cls, type) and issubclass(cls, Adapter)) or cls is Adapter:
        raise AdapterError(f"{cls!r} is not a threadhost.Adapter subclass")
    cls_name = cls.__name__
    default_policy = getattr(cls, "default_policy", None)
    if default_policy is not None:
        if type(default_policy) is not str:
            raise AdapterError(
                f"{cls_name}.default_policy must be a string or None, got {default_policy!r}"
            )
        _check_policy(f"{cls_name}.default_policy", default_policy)
    replicable = getattr(cls, "replicable", False)
    if type(replicable) is not bool:
        raise AdapterError(f"{cls_name}.replicable must be True or False, got {replicable!r}")
    try:
        init_signature = inspect.signature(cls)
    except (TypeError, ValueError):
        init_signature = None
    if init_signature is not None and any(
        p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in init_signature.parameters.values()
    ):
        raise AdapterError(
            f"{cls_name}: __init__ must take no arguments (the host creates it as {cls_name}())"
        )
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name in vars(klass):
            names.setdefault(name)
    calls: dict[str, CallSpec] = {}
    for name in names:
        attr = inspect.getattr_static(cls, name)
        decl = _declaration(cls_name, name, attr)
        if decl is not None:
            calls[name] = _call_spec(cls, name, attr, decl)
    if not calls:
        raise AdapterError(f"{cls_name} declares no fast or slow calls")
    hooks = {name: _check_hook(cls, name) for name in _HOOKS}
    raw_doc = cls.__dict__.get("__doc__")
    return AdapterSpec(
        module=cls.__module__,
        qualname=cls.__qualname__,
        cls=cls,
        doc=inspect.cleandoc(raw_doc) if isinstance(raw_doc, str) else "",
        default_policy=default_policy,
        calls=calls,
        replicable=replicable,
        has_verify=hooks["verify"],
    )


def _adapters_in(module: types.ModuleType) -> list[type[Adapter]]:
    found: dict[int, type[Adapter]] = {}
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, Adapter)
            and value is not Adapter
            and value.__module__ == module.__name__
            and not value.__name__.startswith("_")
        ):
            found.setdefault(id(value), value)
    return list(found.values())


def load_adapter(target: str) -> AdapterSpec:
    """Import and inspect an adapter named ``"module"`` or ``"module:Class"``.

    With a bare module name the module must define exactly one public Adapter subclass
    (one whose ``__module__`` is that module; imported adapters and ``_private`` bases do
    not count). Every failure is an :class:`AdapterError` saying what to fix.
    """
    module_name, colon, class_name = str(target).partition(":")
    if not module_name or (colon and not class_name) or ":" in class_name:
        raise AdapterError(
            f"invalid adapter target {target!r}: expected 'module' or 'module:Class'"
        )
    try:
        module = importlib.import_module(module_name)
    except AdapterError:
        raise
    except ModuleNotFoundError as exc:
        raise AdapterError(f"cannot import adapter module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise AdapterError(
            f"cannot import adapter module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    adapters = _adapters_in(module)
    if not class_name:
        if not adapters:
            raise AdapterError(f"module {module_name!r} defines no threadhost.Adapter subclass")
        if len(adapters) > 1:
            names = ", ".join(cls.__name__ for cls in adapters)
            raise AdapterError(
                f"module {module_name!r} defines several threadhost.Adapter subclasses "
                f"({names}); name one, e.g. '{module_name}:{adapters[0].__name__}'"
            )
        return inspect_adapter(adapters[0])
    obj: Any = module
    for part in class_name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            available = ", ".join(cls.__name__ for cls in adapters) or "none"
            raise AdapterError(
                f"module {module_name!r} has no class {class_name!r} "
                f"(adapters defined there: {available})"
            )
    if not (isinstance(obj, type) and issubclass(obj, Adapter)) or obj is Adapter:
        raise AdapterError(f"{target!r} is not a threadhost.Adapter subclass")
    return inspect_adapter(obj)
