"""Which Python types the threadhost protocol carries, and how they cross the wire.

Three jobs, all driven by an annotation and done once when an adapter is loaded:

``wire_type(tp)``
    Check that ``tp`` can be carried and return the annotation pydantic validates *wire*
    values against. Wire values are what msgpack decodes: ``int``, ``float``, ``str``,
    ``bytes``, ``bool``, ``None``, lists and str/int-keyed maps. The returned annotation
    is ``tp`` made *strict-ish*:

    ============================  ===============================================
    declared                      accepted from the wire
    ============================  ===============================================
    ``int``                       int only (``True``, ``5.0`` and ``"5"`` refused)
    ``float``                     float or int (int becomes float); not bool/str
    ``str`` / ``bytes``           exactly that type (no str <-> bytes conversion)
    ``bool``                      bool only (``1`` refused)
    ``Literal[...]``              a value of the same type as a listed one
    ``Enum`` subclass             a member, or a member's value of the same type
    ``datetime``                  an aware datetime (a msgpack timestamp decodes to one);
                                  naive datetimes and strings refused
    ``date``                      a str ``YYYY-MM-DD`` (or a date; not a datetime)
    ``UUID``                      a str in the 8-4-4-4-12 hex form (or a UUID)
    ``Decimal``                   a str decimal literal, finite (or a finite Decimal);
                                  numbers refused (a float would lose digits)
    ``tuple[...]``                a list or a tuple (msgpack has only arrays)
    ``list`` / ``dict``           checked item by item with these rules
    dataclass                     a map of its init fields, checked with these rules
    pydantic ``BaseModel``        whatever the model accepts: its own config rules
    ============================  ===============================================

    Scalars are strict because the hosted library may crash on a wrong type; pydantic's
    lax mode would turn ``"5"`` into ``5`` and ``True`` into ``1`` silently. Enums, tuples
    and dataclasses need the wire forms above, which pydantic's global ``strict=True``
    refuses, so strictness is put on the leaves of the annotation instead.

``to_wire(value)``
    Turn a value already dumped by pydantic (``mode="python"``) into plain msgpack data:
    enums become their values, tuples become lists, dates ``YYYY-MM-DD`` strings, UUIDs
    and Decimals strings; an aware datetime stays (the codec writes a msgpack timestamp).

``type_repr(tp)``
    A short human spelling of an annotation for error messages (``Callable[..., int]``).

Unsupported annotations raise :class:`UncarriableType`; ``threadhost.adapter`` turns it
into an :class:`~threadhost.errors.AdapterError` naming the adapter, method and parameter.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import re
import reprlib
import types
import typing
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, NotRequired, Union, cast, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, Strict, ValidationError
from pydantic.dataclasses import is_pydantic_dataclass
from typing_extensions import TypedDict

__all__ = [
    "SIMPLE_TYPES",
    "UncarriableType",
    "explain",
    "to_wire",
    "type_repr",
    "wire_type",
]

NoneType = type(None)

#: Types whose wire form is the value itself; ``type(v) is T`` is a complete check for
#: them (except float, which also takes int), which ``CallSpec.bind`` uses as a fast path.
SIMPLE_TYPES: frozenset[type] = frozenset({int, float, str, bytes, bool, NoneType})

_SCALAR_WIRE: dict[Any, Any] = {
    int: Annotated[int, Strict()],
    float: Annotated[float, Strict()],
    str: Annotated[str, Strict()],
    bytes: Annotated[bytes, Strict()],
    bool: Annotated[bool, Strict()],
    NoneType: NoneType,
    None: NoneType,
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)


def _aware(value: datetime.datetime) -> datetime.datetime:
    if value.utcoffset() is None:
        raise ValueError("Input should be an aware datetime (a msgpack timestamp), not naive")
    return value


def _date(value: Any) -> Any:
    if type(value) is datetime.date:
        return value
    if type(value) is str and _DATE.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("Input should be a date as a string YYYY-MM-DD")


def _uuid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value
    if type(value) is str and _UUID.fullmatch(value):
        return uuid.UUID(value)
    raise ValueError("Input should be a UUID as a string xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")


def _decimal(value: Any) -> Any:
    if type(value) is decimal.Decimal and value.is_finite():
        return value
    if type(value) is str and _DECIMAL.fullmatch(value):
        return decimal.Decimal(value)
    raise ValueError("Input should be a finite decimal as a string, e.g. '12.50'")


_SCALAR_WIRE[datetime.datetime] = Annotated[datetime.datetime, Strict(), AfterValidator(_aware)]
_SCALAR_WIRE[datetime.date] = Annotated[datetime.date, BeforeValidator(_date)]
_SCALAR_WIRE[uuid.UUID] = Annotated[uuid.UUID, BeforeValidator(_uuid)]
_SCALAR_WIRE[decimal.Decimal] = Annotated[decimal.Decimal, BeforeValidator(_decimal)]
_ENUM_VALUE_TYPES = (int, float, str, bytes, bool)
_LITERAL_VALUE_TYPES = (int, str, bytes, bool, NoneType)
_SUPPORTED = (
    "int, float, str, bytes, bool, None, datetime, date, UUID, Decimal, list[T], "
    "dict[str|int, T], tuple[...], X | Y, Literal[...], Enum, dataclasses and pydantic models"
)


class UncarriableType(TypeError):
    """An annotation the protocol cannot carry.

    ``part`` is the offending (possibly nested) annotation, ``reason`` says why and
    ``where`` locates it inside the declared annotation (``"field Point.cb"``, or ``""``).
    """

    def __init__(self, part: Any, reason: str, where: str = "") -> None:
        self.part = part
        self.reason = reason
        self.where = where
        super().__init__(self.detail)

    @property
    def detail(self) -> str:
        """``field Point.cb: Callable[[], None]: callables cannot cross ...``."""
        prefix = f"{self.where}: " if self.where else ""
        return f"{prefix}{type_repr(self.part)}: {self.reason}"


def type_repr(tp: Any) -> str:
    """A short spelling of ``tp`` for messages: ``int``, ``list[Point]``, ``Callable[..., int]``."""
    if tp is None or tp is NoneType:
        return "None"
    if isinstance(tp, type) and not isinstance(tp, types.GenericAlias):
        return tp.__qualname__
    text = repr(tp)
    for prefix in ("typing_extensions.", "typing.", "collections.abc.", "builtins."):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "None")


def wire_type(tp: Any) -> Any:
    """The annotation to validate wire values of declared type ``tp`` with.

    Raises :class:`UncarriableType` when ``tp`` (or anything inside it) cannot be carried.
    """
    return _Converter().convert(tp)


def to_wire(value: Any) -> Any:
    """Plain msgpack data from a pydantic ``mode="python"`` dump.

    Enums become their values and tuples become lists; everything else is already plain.
    """
    kind = type(value)
    if kind in SIMPLE_TYPES:
        return value
    if isinstance(value, enum.Enum):
        return to_wire(value.value)
    if kind is list or kind is tuple:
        return [to_wire(item) for item in value]
    if kind is dict:
        return {to_wire(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        if value.utcoffset() is None:
            raise TypeError(f"cannot put a naive datetime on the wire: {value!r}")
        return value  # the codec writes an aware datetime as a msgpack timestamp
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise TypeError(f"cannot put a non-finite Decimal on the wire: {value!r}")
        return str(value)
    for base in (bool, int, float, str, bytes):  # subclasses (e.g. IntEnum handled above)
        if isinstance(value, base):
            return cast(Any, base)(value)
    raise TypeError(f"cannot put a {kind.__qualname__} on the wire")


def _exact_lookup(table: dict[tuple[type, Any], Any], expected: str) -> Callable[[Any], Any]:
    """A before-validator mapping ``value`` to ``table[(type(value), value)]``.

    Looking up by (type, value) keeps ``True`` from matching ``1`` and ``1`` from matching
    ``1.0``, which plain ``==`` (and so pydantic's lax enum/literal check) would allow.
    """

    def check(value: Any) -> Any:
        try:
            return table[(type(value), value)]
        except (KeyError, TypeError):
            if any(value is member for member in table.values()):
                return value
            raise ValueError(f"Input should be {expected}") from None

    return check


class _Converter:
    """One ``wire_type`` run; remembers the classes being converted to stop at recursion."""

    def __init__(self) -> None:
        self._active: set[type] = set()

    def convert(self, tp: Any) -> Any:
        try:
            if tp in _SCALAR_WIRE:
                return _SCALAR_WIRE[tp]
        except TypeError:  # unhashable annotation object; handled below
            pass
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is Annotated:
            inner, *meta = args
            return cast(Any, Annotated)[(self.convert(inner), *meta)]
        if origin is Union or origin is types.UnionType:
            return cast(Any, Union)[tuple(self.convert(arg) for arg in args)]
        if origin is Literal:
            return self._literal(tp, args)
        if origin is list:
            if len(args) != 1:
                raise UncarriableType(tp, "give the item type, e.g. list[int]")
            return types.GenericAlias(list, (self.convert(args[0]),))
        if origin is dict:
            return self._dict(tp, args)
        if origin is tuple:
            if tp is typing.Tuple:  # noqa: UP006 - bare typing.Tuple looks like tuple[()]
                raise UncarriableType(tp, "give the item types, e.g. tuple[int, str]")
            items = tuple(arg if arg is Ellipsis else self.convert(arg) for arg in args)
            return types.GenericAlias(tuple, items)
        if origin is not None:
            return self._refuse(tp, origin)
        return self._plain(tp)

    def _literal(self, tp: Any, args: tuple[Any, ...]) -> Any:
        table: dict[tuple[type, Any], Any] = {}
        for arg in args:
            if isinstance(arg, enum.Enum):
                self.convert(type(arg))
                table[(type(arg.value), arg.value)] = arg
            elif isinstance(arg, _LITERAL_VALUE_TYPES):
                table[(type(arg), arg)] = arg
            else:
                raise UncarriableType(tp, f"literal value {arg!r} cannot be carried")
        expected = " or ".join(repr(arg) for arg in args)
        return Annotated[tp, BeforeValidator(_exact_lookup(table, expected))]

    def _dict(self, tp: Any, args: tuple[Any, ...]) -> Any:
        if len(args) != 2:
            raise UncarriableType(tp, "give key and value types, e.g. dict[str, int]")
        key, value = args
        if key not in (str, int):
            raise UncarriableType(tp, "dict keys must be str or int (msgpack map keys)")
        return types.GenericAlias(dict, (self.convert(key), self.convert(value)))

    def _refuse(self, tp: Any, origin: Any) -> Any:
        if origin is Callable:
            raise UncarriableType(tp, "callables cannot cross a process boundary")
        if origin is type:
            raise UncarriableType(tp, "classes cannot cross a process boundary")
        if origin in (set, frozenset):
            raise UncarriableType(tp, "sets are not carried; use list[T]")
        raise UncarriableType(tp, f"not a supported type (supported: {_SUPPORTED})")

    def _plain(self, tp: Any) -> Any:
        if tp is Any or tp is object:
            raise UncarriableType(tp, "the protocol must know the type; declare a concrete one")
        if tp in (list, dict, tuple):
            raise UncarriableType(tp, f"give the item types, e.g. {tp.__name__}[int]")
        if tp in (set, frozenset):
            raise UncarriableType(tp, "sets are not carried; use list[T]")
        if tp is Callable or tp is typing.Callable:
            raise UncarriableType(tp, "callables cannot cross a process boundary")
        if isinstance(tp, typing.TypeVar):
            raise UncarriableType(tp, "type variables are not carried; declare a concrete type")
        supertype = getattr(tp, "__supertype__", None)  # typing.NewType
        if supertype is not None:
            return self.convert(supertype)
        if not isinstance(tp, type):
            raise UncarriableType(tp, f"not a supported type (supported: {_SUPPORTED})")
        if issubclass(tp, enum.Enum):
            return self._enum(tp)
        if issubclass(tp, BaseModel) or is_pydantic_dataclass(tp):
            return self._own_rules(tp)
        if dataclasses.is_dataclass(tp):
            return self._dataclass(tp)
        raise UncarriableType(tp, f"not a supported type (supported: {_SUPPORTED})")

    def _enum(self, tp: type[enum.Enum]) -> Any:
        table: dict[tuple[type, Any], Any] = {}
        for member in tp:
            if not isinstance(member.value, _ENUM_VALUE_TYPES):
                raise UncarriableType(
                    tp,
                    f"member {member.name} has value {member.value!r}; enum values "
                    "must be int, float, str, bytes or bool",
                )
            table[(type(member.value), member.value)] = member
        expected = " or ".join(repr(member.value) for member in tp)
        return Annotated[tp, BeforeValidator(_exact_lookup(table, expected))]

    def _own_rules(self, tp: type) -> Any:
        """Pydantic models and dataclasses validate by their own config; check their fields."""
        if tp in self._active:
            return tp
        self._active.add(tp)
        try:
            fields = getattr(tp, "__pydantic_fields__", {})
            for name, info in fields.items():
                self._field(tp, name, info.annotation)
        finally:
            self._active.discard(tp)
        return tp

    def _field(self, owner: type, name: str, annotation: Any) -> Any:
        try:
            return self.convert(annotation)
        except UncarriableType as exc:
            where = f"field {owner.__qualname__}.{name}"
            if exc.where:
                where = f"{where}, {exc.where}"
            raise UncarriableType(exc.part, exc.reason, where) from None

    def _dataclass(self, tp: type) -> Any:
        """A stdlib dataclass becomes a strict TypedDict of its init fields, then the class."""
        if tp in self._active:
            return tp  # recursive reference: the inner level is validated laxly
        self._active.add(tp)
        try:
            try:
                hints = typing.get_type_hints(tp, include_extras=True)
            except Exception as exc:
                raise UncarriableType(tp, f"cannot resolve field annotations: {exc}") from None
            fields: dict[str, Any] = {}
            init_names: list[str] = []
            for fld in dataclasses.fields(tp):
                if not fld.init:
                    continue
                field_type = self._field(tp, fld.name, hints[fld.name])
                has_default = (
                    fld.default is not dataclasses.MISSING
                    or fld.default_factory is not dataclasses.MISSING
                )
                fields[fld.name] = NotRequired[field_type] if has_default else field_type
                init_names.append(fld.name)
        finally:
            self._active.discard(tp)
        mirror = TypedDict(tp.__name__, fields)  # type: ignore[misc]

        def from_instance(value: Any) -> Any:
            if isinstance(value, tp):
                return {name: getattr(value, name) for name in init_names}
            return value

        def build(value: dict[str, Any]) -> Any:
            return tp(**value)

        return Annotated[mirror, BeforeValidator(from_instance), AfterValidator(build)]


def explain(exc: ValidationError) -> str:
    """One line from a pydantic error: where, what, and what arrived (the same wording on the
    host, which validates arguments, and in generated proxies, which validate them first)."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    got = first.get("input")
    text = f"{first['msg']}, got {type(got).__name__} {reprlib.repr(got)}"
    if loc:
        text = f"at {loc}: {text}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more errors)"
    return text
