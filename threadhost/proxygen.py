"""``threadhost proxy``: generate a typed proxy module for an adapter, and check it is current.

    threadhost proxy examples.mylib_adapter -o examples/mylib_proxy.py
    threadhost proxy examples.mylib_adapter --check examples/mylib_proxy.py   # CI

The adapter is loaded with :func:`~threadhost.adapter.load_adapter` (so every annotation the
protocol cannot carry is refused exactly as ``serve`` would refuse it, naming the method and
parameter), then each fast call becomes, in the generated module, a real typed function and
a method of ``Client`` and ``AsyncClient`` with the adapter's signature and docstring. The
bodies are one line: the conversions and the call live in :mod:`threadhost.proxy`.

Output is deterministic (no timestamps, no paths; names sorted where order is free), so
regenerating gives identical bytes and ``--check`` can fail CI when a proxy is stale.

Types named in signatures
-------------------------
The generated module must never import the adapter module: that would load the hostile
library into the client. So for every enum, ``NewType``, pydantic model or dataclass that
appears in a signature:

* defined in another importable module (a *shared types* module): the proxy imports it from
  there, so client and host use the very same class (validators, methods and all). The
  generator checks, in a fresh interpreter, that importing those modules does not import
  the adapter module.
* defined in the adapter module itself: value-only types are copied into the proxy (plain
  ``Enum``/``IntEnum``/``StrEnum`` subclasses without methods, whose members travel as
  values, so a copy is exact; and ``NewType`` aliases). Classes with behaviour (models,
  dataclasses, enums with methods or mixins) are refused with a message naming the call and
  parameter and asking to move the type to a shared module.

``Annotated[T, ...]`` metadata is not reproduced: the proxy checks ``T`` and the service
checks the constraints (``BadArgumentsError``). A default that cannot be written as a
literal (a list, a model...) becomes :data:`threadhost.proxy.DEFAULT`: the argument is then
not sent and the service applies its own default.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import difflib
import enum
import importlib
import json
import math
import os
import subprocess
import sys
import types
import typing
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import click
from pydantic import BaseModel
from pydantic.dataclasses import is_pydantic_dataclass

from threadhost.adapter import AdapterSpec, CallSpec, Param, load_adapter
from threadhost.client import DEFAULT_TIMEOUT
from threadhost.errors import AdapterError
from threadhost.proxy import DEFAULT_ENDPOINT
from threadhost.types import type_repr

__all__ = ["check_proxy", "generate", "proxy_command", "render_proxy"]

LINE_LENGTH = 100
_INDENT = "    "
_NoneType = type(None)
_SCALARS = {int: "int", float: "float", str: "str", bytes: "bytes", bool: "bool"}
#: Carried standard-library types: imported from their modules by the generated proxy.
_STDLIB: dict[Any, tuple[str, str]] = {
    datetime.datetime: ("datetime", "datetime"),
    datetime.date: ("datetime", "date"),
    uuid.UUID: ("uuid", "UUID"),
    decimal.Decimal: ("decimal", "Decimal"),
}
#: Enum bases a copied enum may have, and how the copy spells them. (``(str, Enum)`` is not
#: copied: ruff's UP042 would flag the copy, and StrEnum would not be an exact copy.)
_ENUM_BASES: dict[tuple[type, ...], str] = {
    (enum.Enum,): "enum.Enum",
    (enum.IntEnum,): "enum.IntEnum",
    (enum.StrEnum,): "enum.StrEnum",
}
_ENUM_BOILERPLATE = frozenset({"__qualname__", "__firstlineno__", "__static_attributes__"})
#: Internal module-level names of a generated proxy.
_INTERNAL = ("_proxy", "_SCHEMA", "_STATE")
#: Public names every generated module defines besides the calls.
_MODULE_NAMES = (
    "FINGERPRINT",
    "ADAPTER",
    "Client",
    "AsyncClient",
    "init",
    "uninit",
    "with_timeout",
)
#: Attributes of the generated classes besides the calls (see threadhost.proxy).
_CLASS_NAMES = ("close", "threadhost_client", "with_timeout")


# --------------------------------------------------------------------------- small renderers


def _str_source(value: str | bytes) -> str:
    """A str/bytes literal, double-quoted when that needs no more escapes (ruff format)."""
    text = repr(value)
    prefix = "b" if isinstance(value, bytes) else ""
    body = text[len(prefix) :]
    if body.startswith("'") and '"' not in body[1:-1]:
        body = '"' + body[1:-1].replace("\\'", "'") + '"'
    return prefix + body


def _docstring(doc: str, indent: str) -> list[str]:
    if not doc:
        return []
    text = doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = [line.rstrip() for line in text.splitlines()]
    if len(lines) == 1:
        # a quote right before the closing quotes would end the string early
        return [f'{indent}"""{lines[0]}{" " if lines[0].endswith(chr(34)) else ""}"""']
    return [
        f'{indent}"""{lines[0]}',
        *(f"{indent}{line}" if line else "" for line in lines[1:]),
        f'{indent}"""',
    ]


def _wrap(head: str, items: list[str], tail: str, indent: str) -> list[str]:
    """``head a, b tail`` on one line if it fits, else one item a line with a trailing
    comma (the layout ``ruff format`` keeps)."""
    line = f"{indent}{head}{', '.join(items)}{tail}"
    if len(line) <= LINE_LENGTH or not items:
        return [line]
    return [f"{indent}{head}", *(f"{indent}{_INDENT}{item}," for item in items), indent + tail]


def _isort_key(name: str) -> tuple[int, str]:
    """``__all__`` order as ruff's RUF022 wants it: CONSTANTS, Classes, then the rest."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


# --------------------------------------------------------------------------- type rendering


class _Types:
    """Renders annotations as source and collects what the generated module must import
    or define. ``taken`` holds module-level names already in use."""

    def __init__(self, adapter_module: str, taken: set[str]) -> None:
        self.adapter_module = adapter_module
        self.taken = taken
        self.names: dict[Any, str] = {}
        self.imports: dict[str, dict[str, str]] = {}  # module -> {name: alias}
        self.copies: list[list[str]] = []
        self.typing: set[str] = set()
        self.stdlib: dict[str, dict[str, str]] = {}  # module -> {name: alias}
        self.uses_enum = False

    def render(self, tp: Any, where: str) -> str:
        if tp is None or tp is _NoneType:
            return "None"
        if tp in _SCALARS:
            return _SCALARS[tp]
        if tp in _STDLIB:
            module, name = _STDLIB[tp]
            names = self.stdlib.setdefault(module, {})
            if name not in names:
                names[name] = self._claim(name)
            return names[name]
        origin, args = get_origin(tp), get_args(tp)
        if origin is Annotated:
            return self.render(args[0], where)
        if origin is Union or origin is types.UnionType:
            return " | ".join(self.render(arg, where) for arg in args)
        if origin is Literal:
            self.typing.add("Literal")
            return f"Literal[{', '.join(self._literal(arg, where) for arg in args)}]"
        if origin in (list, dict):
            return f"{origin.__name__}[{', '.join(self.render(a, where) for a in args)}]"
        if origin is tuple:
            if not args:
                return "tuple[()]"
            items = ("..." if a is Ellipsis else self.render(a, where) for a in args)
            return f"tuple[{', '.join(items)}]"
        if origin is None and (isinstance(tp, type | typing.NewType)):
            return self._named(tp, where)
        raise AdapterError(f"{where}: cannot write {type_repr(tp)} in a generated proxy")

    def _literal(self, value: Any, where: str) -> str:
        if isinstance(value, enum.Enum):
            return f"{self.render(type(value), where)}.{value.name}"
        if isinstance(value, str | bytes):
            return _str_source(value)
        return repr(value)

    def default(self, value: Any) -> str | None:
        """Source for a parameter default, or None when it cannot be a literal."""
        kind = type(value)
        if value is None or kind in (bool, int):
            return repr(value)
        if kind is float:
            return repr(value) if math.isfinite(value) else None
        if kind in (str, bytes):
            return _str_source(value)
        if isinstance(value, enum.Enum):
            name = self.names.get(type(value))
            return f"{name}.{value.name}" if name else None
        if kind is tuple:
            items: list[str] = []
            for item in value:
                source = self.default(item)
                if source is None:
                    return None
                items.append(source)
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        return None

    # -- named types ----------------------------------------------------------------------

    def _named(self, tp: Any, where: str) -> str:
        if tp in self.names:
            return self.names[tp]
        kind = self._kind(tp)
        module = str(getattr(tp, "__module__", ""))
        qualname = str(getattr(tp, "__qualname__", getattr(tp, "__name__", "")))
        spelled = f"{type_repr(tp)} ({kind} {module}.{qualname})"
        if module == self.adapter_module:
            return self._copy(tp, kind, where, spelled)
        if module in ("__main__", "builtins") or "<locals>" in qualname or not module:
            raise AdapterError(
                f"{where}: {spelled} cannot be imported by the generated proxy; define it at "
                "the top level of a module that does not import the library"
            )
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if obj is not tp:
            raise AdapterError(
                f"{where}: {spelled} is not importable as {module}.{qualname}; define it at "
                "the top level of a module that does not import the library"
            )
        top, _, rest = qualname.partition(".")
        names = self.imports.setdefault(module, {})
        if top not in names:
            names[top] = self._claim(top)
        name = names[top] + (f".{rest}" if rest else "")
        self.names[tp] = name
        return name

    @staticmethod
    def _kind(tp: Any) -> str:
        if isinstance(tp, typing.NewType):
            return "NewType"
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return "enum"
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return "pydantic model"
        if is_pydantic_dataclass(tp):
            return "pydantic dataclass"
        if dataclasses.is_dataclass(tp):
            return "dataclass"
        return "class"

    def _claim(self, name: str) -> str:
        alias, n = name, 1
        while alias in self.taken:
            n += 1
            alias = f"{name}_{n}"
        self.taken.add(alias)
        return alias

    def _copy(self, tp: Any, kind: str, where: str, spelled: str) -> str:
        move = (
            f"{where}: {spelled} is defined in the adapter module, which the generated proxy "
            f"must not import (it imports the library); move {type_repr(tp)} to a module that "
            "does not import the library (a shared types module) and import it from there"
        )
        if kind == "NewType":
            supertype = self.render(tp.__supertype__, where)
            name = self._claim(tp.__name__)
            self.typing.add("NewType")
            self.copies.append([f"{name} = NewType({_str_source(name)}, {supertype})"])
            self.names[tp] = name
            return name
        if kind != "enum":
            raise AdapterError(move)
        bases = _ENUM_BASES.get(tp.__bases__)
        if bases is None:
            raise AdapterError(
                f"{move} (only enums based directly on Enum, IntEnum or StrEnum are copied)"
            )
        probe = types.new_class("_Probe", tp.__bases__)  # what an empty enum defines
        extra = set(vars(tp)) - set(vars(probe)) - set(tp.__members__) - _ENUM_BOILERPLATE
        if extra:
            raise AdapterError(f"{move} (it defines {', '.join(sorted(extra))})")
        name = self._claim(tp.__name__)
        self.uses_enum = True
        lines = [f"class {name}({bases}):"]
        doc = vars(tp).get("__doc__")
        lines += _docstring(doc, _INDENT) if isinstance(doc, str) else []
        members = [
            f"{_INDENT}{m} = {self._literal(v.value, where)}" for m, v in tp.__members__.items()
        ]
        lines += ([""] if len(lines) > 1 and members else []) + (members or [f"{_INDENT}pass"])
        self.copies.append(lines)
        self.names[tp] = name
        return name


# --------------------------------------------------------------------------- module rendering


@dataclasses.dataclass
class _Call:
    """One fast call as the generated module spells it."""

    spec: CallSpec
    table: str  # module-level name of its threadhost.proxy.Method
    params: list[tuple[Param, str, str | None]]  # param, annotation source, default source
    returns: str

    def define(self, keyword: str, indent: str, *, method: bool, asynchronous: bool) -> list[str]:
        """The ``def`` of this call: module function (``method=False``) or client method."""
        items = ["self"] if method else []
        keyword_started = False
        for index, (param, annotation, default) in enumerate(self.params):
            if param.kind == "keyword_only" and not keyword_started:
                items.append("*")
                keyword_started = True
            item = f"{param.name}: {annotation}"
            if param.has_default:
                item += f" = {default if default is not None else '_proxy.DEFAULT'}"
            items.append(item)
            following = self.params[index + 1][0].kind if index + 1 < len(self.params) else None
            if param.kind == "positional_only" and following != "positional_only":
                items.append("/")
        lines = _wrap(f"{keyword} {self.spec.name}(", items, f") -> {self.returns}:", indent)
        body = indent + _INDENT
        lines += _docstring(self.spec.doc, body)
        client = "self._client" if method else "_STATE.client()"
        head = f"await {self.table}.acall(" if asynchronous else f"{self.table}.call("
        if self.returns != "None":
            head = f"return {head}"
        return lines + _wrap(head, [client, self._values()], ")", body)

    def _values(self) -> str:
        names = [param.name for param, _, _ in self.params]
        return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"

    def table_definition(self) -> list[str]:
        items = [_str_source(self.spec.label)]
        for param, annotation, _ in self.params:
            kind = "" if param.kind == "positional_or_keyword" else f", {_str_source(param.kind)}"
            items.append(f"_proxy.Param({_str_source(param.name)}, {annotation}{kind})")
        items.append(f"returns={self.returns}")
        if self.spec.timeout is not None:
            items.append(f"timeout={self.spec.timeout!r}")
        head = f"{self.table}: _proxy.Method[{self.returns}] = _proxy.Method("
        return _wrap(head, items, ")", "")


def _check_names(calls: Iterable[CallSpec]) -> None:
    reserved = set(_MODULE_NAMES) | set(_CLASS_NAMES) | set(_SCALARS.values())
    reserved |= {"annotations", "enum", "Literal", "NewType", "list", "dict", "tuple", "self"}
    for call in calls:
        if call.name in reserved:
            raise AdapterError(
                f"{call.label}: a generated proxy cannot have a call named {call.name!r} "
                f"(reserved: {', '.join(sorted(reserved))}); rename the call"
            )
        for param in call.params:
            if param.name.startswith("_") or param.name == "self":
                raise AdapterError(
                    f"{call.label}: parameter {param.name!r}: 'self' and names starting "
                    "with '_' are reserved in generated proxies; rename the parameter"
                )


def _table_name(name: str, taken: set[str]) -> str:
    table = f"_{name}"
    while table in taken:
        table = f"_call{table}"
    taken.add(table)
    return table


class _Module:
    """The generated text as blocks: top-level ``def``/``class`` blocks get two blank lines
    around them, other statement groups one (the layout ``ruff format`` produces)."""

    def __init__(self) -> None:
        self.blocks: list[tuple[bool, list[str]]] = []

    def add(self, lines: list[str], *, compound: bool = False) -> None:
        if lines:
            self.blocks.append((compound, lines))

    def text(self) -> str:
        out: list[str] = []
        previous: bool | None = None
        for compound, lines in self.blocks:
            if previous is not None:
                out += [""] * (2 if compound or previous else 1)
            out += lines
            previous = compound
        return "\n".join(out) + "\n"


def _header(spec: AdapterSpec, command: str, first: str) -> list[str]:
    doc = [
        f"Typed threadhost proxy for ``{spec.target}``.",
        "",
        *([*spec.doc.splitlines(), ""] if spec.doc else []),
        "Module level, as a drop-in for the library: ``init()`` (connect; ``endpoint=``,",
        f"``timeout=``), then ``{first}(...)`` and the other calls, then ``uninit()``.",
        f"Objects: ``with Client() as c: c.{first}(...)``, and",
        f"``async with AsyncClient() as c: await c.{first}(...)``. One call with another",
        f"timeout: ``with_timeout(2.0).{first}(...)``, ``c.with_timeout(2.0).{first}(...)``.",
        "",
        "Calls raise ``threadhost.BusyError`` while the service runs maintenance, and the",
        "other ``threadhost.ThreadhostError`` subclasses; arguments and results are",
        "validated here and by the service. Connecting checks the schema fingerprint",
        "(``threadhost.FingerprintMismatchError``: regenerate this file).",
    ]
    return [
        f"# Generated by `{command}` — do not edit.",
        f"# fingerprint: {spec.fingerprint}",
        *_docstring("\n".join(doc), ""),
    ]


def _imports(types_: _Types, module: _Module) -> None:
    module.add(["from __future__ import annotations"])
    stdlib = ["import enum"] if types_.uses_enum else []
    froms = {
        name: ", ".join(
            n if a == n else f"{n} as {a}"
            for n, a in sorted(types_.stdlib[name].items(), key=lambda kv: _isort_key(kv[0]))
        )
        for name in types_.stdlib
    }
    if types_.typing:
        froms["typing"] = ", ".join(sorted(types_.typing, key=_isort_key))
    stdlib += [f"from {name} import {froms[name]}" for name in sorted(froms)]
    module.add(stdlib)
    module.add(["from threadhost import proxy as _proxy"])
    if types_.imports:
        # Shared types; isort would file these with the project's own modules or with
        # third-party ones depending on the project, so their order is fixed here.
        lines = ["# isort: off"]
        for name in sorted(types_.imports):
            pairs = sorted(types_.imports[name].items(), key=lambda kv: _isort_key(kv[0]))
            spelled = [a if a == n else f"{n} as {a}" for n, a in pairs]
            lines += (
                _wrap(f"from {name} import (", spelled, ")", "")
                if len(f"from {name} import {', '.join(spelled)}") > LINE_LENGTH
                else [f"from {name} import {', '.join(spelled)}"]
            )
        module.add([*lines, "# isort: on"])


def render_proxy(spec: AdapterSpec, command_target: str) -> str:
    """The source of the proxy module for ``spec``; ``command_target`` is the target as
    written in the banner's regeneration command."""
    fast = spec.fast_calls
    if not fast:
        raise AdapterError(f"{spec.name} declares no fast calls: there is nothing to proxy")
    _check_names(fast)
    taken = set(_MODULE_NAMES) | set(_INTERNAL) | {"annotations", "enum", "Literal", "NewType"}
    taken |= {call.name for call in fast}
    types_ = _Types(spec.module, taken)
    calls: list[_Call] = []
    for call in fast:
        params = []
        for param in call.params:
            where = f"{call.label}: parameter {param.name!r}"
            annotation = types_.render(param.annotation, where)
            default = types_.default(param.default) if param.has_default else None
            params.append((param, annotation, default))
        returns = types_.render(call.returns, f"{call.label}: return annotation")
        calls.append(_Call(call, _table_name(call.name, taken), params, returns))
    if types_.imports:
        _check_isolated(sorted(types_.imports), spec.module)

    command = f"threadhost proxy {command_target}"
    module = _Module()
    module.add(_header(spec, command, calls[0].spec.name))
    _imports(types_, module)
    exported = {*_MODULE_NAMES, *(c.spec.name for c in calls)}
    exported |= {name for name in types_.names.values() if "." not in name}
    module.add(_wrap("__all__ = [", [f'"{n}"' for n in sorted(exported, key=_isort_key)], "]", ""))
    module.add([f'FINGERPRINT = "{spec.fingerprint}"', f"ADAPTER = {_str_source(spec.target)}"])
    module.add(
        _wrap(
            "_SCHEMA = _proxy.Schema(",
            ["__name__", "ADAPTER", "FINGERPRINT", _str_source(command)],
            ")",
            "",
        )
    )
    for copy in types_.copies:
        module.add(copy, compound=copy[0].startswith("class "))
    module.add([line for call in calls for line in call.table_definition()])
    module.add(_client_class(calls, asynchronous=False), compound=True)
    module.add(_client_class(calls, asynchronous=True), compound=True)
    module.add(["_STATE: _proxy.ModuleState[Client] = _proxy.ModuleState(_SCHEMA)"])
    init_params = [
        f"endpoint: str = {_str_source(DEFAULT_ENDPOINT)}",
        f"timeout: float = {DEFAULT_TIMEOUT!r}",
        "*",
        "check: bool = True",
        "retry: _proxy.Retry | None = None",
        "server_key: str | bytes | None = None",
        "secret_key: str | bytes | None = None",
    ]
    module.add(
        [
            *_wrap("def init(", init_params, ") -> None:", ""),
            *_docstring(
                "Connect to the service, as ``Client(endpoint, timeout)``; calls before\n"
                "``init`` raise ``threadhost.ThreadhostError``. Calling ``init`` again\n"
                "replaces the connection. ``retry=threadhost.Retry(deadline=...)`` retries\n"
                "calls refused as busy or unavailable.",
                _INDENT,
            ),
            f"{_INDENT}_STATE.init(",
            f"{_INDENT * 2}Client(",
            *(f"{_INDENT * 3}{arg}," for arg in (
                "endpoint", "timeout", "check=check", "retry=retry",
                "server_key=server_key", "secret_key=secret_key")),
            f"{_INDENT * 2})",
            f"{_INDENT})",
        ],
        compound=True,
    )
    module.add(
        [
            "def uninit() -> None:",
            f'{_INDENT}"""Disconnect. Idempotent."""',
            f"{_INDENT}_STATE.uninit()",
        ],
        compound=True,
    )
    module.add(
        [
            "def with_timeout(timeout: float) -> Client:",
            *_docstring(
                f"``init``'s connection with another timeout (seconds) for the calls made\n"
                f"through the result: ``with_timeout(2.0).{calls[0].spec.name}(...)``.",
                _INDENT,
            ),
            f"{_INDENT}return _STATE.proxy().with_timeout(timeout)",
        ],
        compound=True,
    )
    for generated in calls:
        module.add(generated.define("def", "", method=False, asynchronous=False), compound=True)
    text = module.text()
    if any(len(line) > LINE_LENGTH for line in text.splitlines()):
        # long adapter docstrings or annotations: keep the generated file lint-clean anyway
        first, second, rest = text.split("\n", 2)  # after the two banner lines
        text = "\n".join([first, second, "# ruff: noqa: E501", rest])
    return text


def _client_class(calls: list[_Call], *, asynchronous: bool) -> list[str]:
    if asynchronous:
        name, base = "AsyncClient", "_proxy.AsyncProxy"
        doc = (
            "Typed asyncio client; calls may be awaited concurrently.\n\n"
            "``async with AsyncClient(endpoint, timeout) as c:`` connects and checks the\n"
            "schema fingerprint."
        )
    else:
        name, base = "Client", "_proxy.SyncProxy"
        doc = (
            "Typed synchronous client: thread-safe, and a context manager.\n\n"
            "``Client(endpoint, timeout)`` connects and checks the schema fingerprint."
        )
    lines = [f"class {name}({base}):", *_docstring(doc, _INDENT), "", f"{_INDENT}_schema = _SCHEMA"]
    keyword = "async def" if asynchronous else "def"
    for call in calls:
        lines += ["", *call.define(keyword, _INDENT, method=True, asynchronous=asynchronous)]
    return lines


# --------------------------------------------------------------------------- isolation check


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [os.getcwd(), *(p for p in sys.path if p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _check_isolated(modules: list[str], adapter_module: str) -> None:
    """Refuse shared-types modules whose import pulls in the adapter module (and with it
    the library): checked in a fresh interpreter, where nothing is imported yet."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps({adapter_module!r} in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["no output"]
        raise AdapterError(f"cannot import {', '.join(modules)} on its own: {lines[-1]}")
    if json.loads(proc.stdout.strip().splitlines()[-1]):
        raise AdapterError(
            f"importing {', '.join(modules)} imports the adapter module {adapter_module} "
            "(and so the library); the generated proxy imports these modules, so keep the "
            "shared types in modules that import neither"
        )


# --------------------------------------------------------------------------- entry points


def _command_target(target: str, spec: AdapterSpec) -> str:
    """The bare module when it names this adapter unambiguously, else ``module:Class``
    (so both spellings of a target generate the same file)."""
    try:
        if load_adapter(spec.module).cls is spec.cls:
            return spec.module
    except AdapterError:
        pass
    return spec.target


def generate(target: str) -> str:
    """The proxy module source for adapter ``target`` (``module`` or ``module:Class``)."""
    spec = load_adapter(target)
    return render_proxy(spec, _command_target(target, spec))


def check_proxy(target: str, path: str | Path) -> list[str]:
    """Unified-diff lines between ``path`` and what generation gives now (empty: current)."""
    expected = generate(target)
    try:
        actual = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [f"{path}: no such file"]
    if actual == expected:
        return []
    return list(
        difflib.unified_diff(
            actual.splitlines(),
            expected.splitlines(),
            f"{path} (on disk)",
            f"{path} (generated now)",
            lineterm="",
        )
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)


@click.command()
@click.argument("target")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the proxy module to FILE [default: standard output]",
)
@click.option(
    "--check",
    "check_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="exit 1 if FILE is not what generation would produce now",
)
def proxy_command(target: str, output: Path | None, check_file: Path | None) -> None:
    """Generate a typed proxy module for adapter TARGET (MODULE or MODULE:CLASS)."""
    if output is not None and check_file is not None:
        raise click.UsageError("give either -o FILE or --check FILE, not both")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if check_file is not None:
            diff = check_proxy(target, check_file)
            if diff:
                click.echo(
                    f"threadhost: {check_file} is stale; regenerate it with "
                    f"`threadhost proxy {target} -o {check_file}`",
                    err=True,
                )
                for line in diff[:60]:
                    click.echo(line, err=True)
                if len(diff) > 60:
                    click.echo(f"... ({len(diff) - 60} more diff lines)", err=True)
                sys.exit(1)
            click.echo(f"{check_file} is current")
            return
        text = generate(target)
    except AdapterError as exc:
        click.echo(f"threadhost: error: {exc}", err=True)
        sys.exit(2)
    if output is None:
        click.echo(text, nl=False)
    else:
        _write(output, text)
        click.echo(f"wrote {output}", err=True)
