"""Adapters for tests/test_adapter.py: one that uses every carried type, and broken ones.

No ``from __future__ import annotations`` here on purpose: the broken adapters are defined
inside factory functions (so every one can be called ``Mylib``, as in the error messages
users see), and eager annotations let those local classes refer to module-level types.

``BROKEN`` is the table of declaration mistakes: ``(case id, factory, expected message)``.
A factory defines and returns the class; some mistakes are refused already while the class
body runs (the decorators see them), the rest by ``inspect_adapter``. Either way the
error is an ``AdapterError`` whose message contains the expected text.
"""

import dataclasses
import enum
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, NewType

from pydantic import BaseModel, Field

from threadhost.adapter import Adapter, fast, slow

# --------------------------------------------------------------------------- carried types


class Color(enum.Enum):
    """A str-valued enum."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    """An int-valued enum."""

    LOW = 1
    HIGH = 2


class PointModel(BaseModel):
    """A pydantic model."""

    x: int
    y: int = 0
    tag: bytes = b""
    color: Color = Color.RED
    span: tuple[int, int] = (0, 0)


@dataclasses.dataclass(frozen=True)
class PointDC:
    """A stdlib dataclass."""

    x: int
    color: Color = Color.RED
    tags: tuple[str, ...] = ()


@dataclasses.dataclass
class Box:
    """A dataclass nesting others."""

    corner: PointDC
    points: list[PointDC] = dataclasses.field(default_factory=list)
    model: PointModel | None = None
    data: bytes = b""


UserId = NewType("UserId", int)


class Everything(Adapter):
    """Echoes one value of every carried type."""

    default_policy = "manual"

    @slow(startup=True, deadline=40.0)
    def load(self) -> None:
        """Startup maintenance."""

    @slow(policy="every=1h")
    def refresh(self) -> int:
        """Hourly maintenance that reports something."""
        return 1

    @fast
    def echo_int(self, x: int) -> int:
        return x

    @fast(timeout=2.5)
    def echo_float(self, x: float) -> float:
        return x

    @fast
    def echo_str(self, s: str) -> str:
        return s

    @fast
    def echo_bytes(self, b: bytes) -> bytes:
        return b

    @fast
    def echo_bool(self, b: bool) -> bool:
        return b

    @fast
    def nothing(self) -> None:
        return None

    @fast
    def echo_list(self, items: list[int]) -> list[int]:
        return items

    @fast
    def echo_dict(self, d: dict[str, list[float]]) -> dict[str, list[float]]:
        return d

    @fast
    def echo_intkeys(self, d: dict[int, str]) -> dict[int, str]:
        return d

    @fast
    def echo_tuple(self, t: tuple[int, str, bytes]) -> tuple[int, str, bytes]:
        return t

    @fast
    def echo_vartuple(self, t: tuple[int, ...]) -> tuple[int, ...]:
        return t

    @fast
    def echo_optional(self, x: int | None = None) -> int | None:
        return x

    @fast
    def echo_union(self, x: int | str) -> int | str:
        return x

    @fast
    def echo_literal(self, mode: Literal["fast", "safe", 3]) -> Literal["fast", "safe", 3]:
        return mode

    @fast
    def echo_enum(self, c: Color) -> Color:
        return c

    @fast
    def echo_intenum(self, level: Level) -> Level:
        return level

    @fast
    def echo_model(self, p: PointModel) -> PointModel:
        return p

    @fast
    def echo_dataclass(self, p: PointDC) -> PointDC:
        return p

    @fast
    def echo_box(self, box: Box) -> Box:
        return box

    @fast
    def echo_annotated(self, n: Annotated[int, Field(ge=0)]) -> int:
        return n

    @fast
    def echo_newtype(self, user: UserId) -> UserId:
        return user

    @fast
    def scale(self, x: int, /, y: int = 1, *, factor: float = 1.0) -> float:
        """Positional-only, ordinary and keyword-only parameters."""
        return (x + y) * factor

    @fast
    def wrong_result(self) -> int:
        return "not an int"  # type: ignore[return-value]


# --------------------------------------------------------------------------- broken ones


def _both_fast_and_slow() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        @slow
        def calc(self) -> int:
            return 1

    return Mylib


def _fast_twice() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        @fast(timeout=1.0)
        def calc(self, x: int) -> int:
            return x

    return Mylib


def _callable_param() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, cb: Callable[..., int]) -> int:
            return cb()

    return Mylib


def _callable_return() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x: int) -> Callable[[], int]:
            return lambda: x

    return Mylib


def _any_param() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x: Any) -> int:
            return 1

    return Mylib


def _bare_list() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, xs: list) -> int:  # type: ignore[type-arg]
            return 1

    return Mylib


def _bare_typing_tuple() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, t: typing.Tuple) -> int:  # type: ignore[type-arg]  # noqa: UP006
            return 1

    return Mylib


def _float_keys() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, d: dict[float, int]) -> int:
            return 1

    return Mylib


def _set_param() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, s: set[int]) -> int:
            return 1

    return Mylib


def _object_param() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x: object) -> int:
            return 1

    return Mylib


@dataclasses.dataclass
class WithCallback:
    """A dataclass with a field the protocol cannot carry."""

    x: int
    cb: Callable[[], None]


def _dataclass_with_callable() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, p: WithCallback) -> int:
            return p.x

    return Mylib


class Shape(enum.Enum):
    """An enum whose values the protocol cannot carry."""

    SQUARE = (1, 1)


def _enum_tuple_values() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, s: Shape) -> int:
            return 1

    return Mylib


def _missing_param_annotation() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x) -> int:  # type: ignore[no-untyped-def]
            return int(x)

    return Mylib


def _missing_return_annotation() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x: int):  # type: ignore[no-untyped-def]
            return x

    return Mylib


def _unresolvable_annotation() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x: "NoSuchType") -> int:  # type: ignore[name-defined]  # noqa: F821
            return 1

    return Mylib


def _nothing_declared() -> type[Adapter]:
    class Mylib(Adapter):
        def calc(self, x: int) -> int:
            return x

    return Mylib


def _private_name() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def _calc(self, x: int) -> int:
            return x

    return Mylib


def _dunder_name() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def __call__(self, x: int) -> int:
            return x

    return Mylib


def _setup_declared() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def setup(self) -> None:
            pass

    return Mylib


def _teardown_declared() -> type[Adapter]:
    class Mylib(Adapter):
        @slow
        def teardown(self) -> None:
            pass

    return Mylib


def _slow_with_params() -> type[Adapter]:
    class Mylib(Adapter):
        @slow  # type: ignore[arg-type]
        def read_config(self, path: str) -> None:
            pass

    return Mylib


def _var_positional() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, *args: int) -> int:
            return sum(args)

    return Mylib


def _var_keyword() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, **kwargs: int) -> int:
            return sum(kwargs.values())

    return Mylib


def _invalid_slow_policy() -> type[Adapter]:
    class Mylib(Adapter):
        @slow(policy="sometimes=often")
        def read_config(self) -> None:
            pass

    return Mylib


def _invalid_default_policy() -> type[Adapter]:
    class Mylib(Adapter):
        default_policy = "idle=soon"

        @fast
        def calc(self, x: int) -> int:
            return x

    return Mylib


def _replicable_not_bool() -> type[Adapter]:
    class Mylib(Adapter):
        replicable = "yes"  # type: ignore[assignment]

        @fast
        def calc(self, x: int) -> int:
            return x

    return Mylib


def _async_call() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        async def calc(self, x: int) -> int:
            return x

    return Mylib


def _static_inside() -> type[Adapter]:
    class Mylib(Adapter):
        @staticmethod
        @fast
        def calc(x: int) -> int:
            return x

    return Mylib


def _static_outside() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        @staticmethod
        def calc(x: int) -> int:
            return x

    return Mylib


def _negative_timeout() -> type[Adapter]:
    class Mylib(Adapter):
        @fast(timeout=-1)
        def calc(self, x: int) -> int:
            return x

    return Mylib


def _zero_deadline() -> type[Adapter]:
    class Mylib(Adapter):
        @slow(deadline=0)
        def read_config(self) -> None:
            pass

    return Mylib


def _init_needs_arguments() -> type[Adapter]:
    class Mylib(Adapter):
        def __init__(self, path: str) -> None:
            self.path = path

        @fast
        def calc(self, x: int) -> int:
            return x

    return Mylib


def _bad_default() -> type[Adapter]:
    class Mylib(Adapter):
        @fast
        def calc(self, x: int = "1") -> int:  # type: ignore[assignment]
            return x

    return Mylib


BROKEN: list[tuple[str, Callable[[], type[Adapter]], str]] = [
    ("both-fast-and-slow", _both_fast_and_slow, "Mylib.calc is declared both fast and slow"),
    ("fast-twice", _fast_twice, "Mylib.calc is declared fast twice"),
    (
        "callable-param",
        _callable_param,
        "Mylib.calc: parameter 'cb' has annotation Callable[..., int] which the protocol "
        "cannot carry",
    ),
    (
        "callable-return",
        _callable_return,
        "Mylib.calc: return annotation Callable[[], int] which the protocol cannot carry",
    ),
    (
        "any-param",
        _any_param,
        "Mylib.calc: parameter 'x' has annotation Any which the protocol cannot carry",
    ),
    (
        "bare-list",
        _bare_list,
        "Mylib.calc: parameter 'xs' has annotation list which the protocol cannot carry",
    ),
    (
        "bare-typing-tuple",
        _bare_typing_tuple,
        "Mylib.calc: parameter 't' has annotation Tuple which the protocol cannot carry",
    ),
    ("float-keys", _float_keys, "dict keys must be str or int"),
    ("set-param", _set_param, "sets are not carried; use list[T]"),
    ("object-param", _object_param, "parameter 'x' has annotation object which the protocol"),
    ("dataclass-callable-field", _dataclass_with_callable, "field WithCallback.cb"),
    ("enum-tuple-values", _enum_tuple_values, "member SQUARE has value (1, 1)"),
    ("missing-param-annotation", _missing_param_annotation, "Mylib.calc: parameter 'x' has no"),
    ("missing-return", _missing_return_annotation, "Mylib.calc: missing return annotation"),
    ("unresolvable", _unresolvable_annotation, "Mylib.calc: cannot resolve annotations"),
    ("nothing-declared", _nothing_declared, "Mylib declares no fast or slow calls"),
    ("private-name", _private_name, "Mylib._calc: call names must not start with '_'"),
    ("dunder-name", _dunder_name, "Mylib.__call__: call names must not start with '_'"),
    ("setup-declared", _setup_declared, "Mylib.setup: setup and teardown run on the library"),
    ("teardown-declared", _teardown_declared, "Mylib.teardown: setup and teardown run on"),
    ("slow-with-params", _slow_with_params, "Mylib.read_config: slow calls take no parameters"),
    ("var-positional", _var_positional, "Mylib.calc: *args is not supported"),
    ("var-keyword", _var_keyword, "Mylib.calc: **kwargs is not supported"),
    ("invalid-slow-policy", _invalid_slow_policy, "Mylib.read_config: invalid policy"),
    ("invalid-default-policy", _invalid_default_policy, "Mylib.default_policy: invalid policy"),
    ("replicable-not-bool", _replicable_not_bool,
     "Mylib.replicable must be True or False, got 'yes'"),
    ("async", _async_call, "Mylib.calc: async methods cannot run on the library thread"),
    ("staticmethod-inside", _static_inside, "Mylib.calc: @fast must decorate a plain method"),
    ("staticmethod-outside", _static_outside, "Mylib.calc: @fast must decorate a plain method"),
    ("negative-timeout", _negative_timeout, "Mylib.calc: timeout must be a positive number"),
    ("zero-deadline", _zero_deadline, "Mylib.read_config: deadline must be a positive number"),
    ("init-arguments", _init_needs_arguments, "Mylib: __init__ must take no arguments"),
    ("bad-default", _bad_default, "Mylib.calc: default of parameter 'x' does not match"),
]
