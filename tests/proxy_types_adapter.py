"""Adapters for tests/test_proxy.py.

``Types`` uses every type a generated proxy carries: scalars, containers, unions, literals,
enums, models, dataclasses and NewTypes, shared (tests/proxy_shared_types.py, imported by
the proxy) or defined here (value-only types, copied into the proxy); every parameter
kind; literal and non-literal defaults. ``tests/proxy_types_proxy.py`` is generated from it.

The other classes are for generation tests: ``MylibV2`` is a changed mylib (a stale proxy's
adapter), the rest are refused by the generator.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from collections.abc import Callable
from typing import Annotated, Literal, NewType

from pydantic import BaseModel, Field

from tests.proxy_shared_types import Color, Level, Point, Segment, Shape, UserId
from threadhost.adapter import Adapter, fast, slow

__all__ = ["Flavor", "LocalBox", "LocalModel", "Mode", "MylibV2", "Priority", "Ticket", "Types"]


class Mode(enum.Enum):
    """An enum defined next to the adapter: value-only, so the proxy gets a copy."""

    FAST = "fast"
    SAFE = "safe"


class Priority(enum.IntEnum):
    """Another local value-only enum."""

    LOW = 1
    HIGH = 9


Ticket = NewType("Ticket", int)

ORIGIN = Point(x=0, y=0)


@dataclasses.dataclass
class LocalBox:
    """A dataclass defined in the adapter module: the generator refuses to copy it."""

    width: int


class LocalModel(BaseModel):
    """A model defined in the adapter module: refused too."""

    name: str


class Flavor(enum.Enum):
    """An enum with behaviour, defined in the adapter module: refused (a copy would lose it)."""

    SWEET = "sweet"

    def describe(self) -> str:
        return f"{self.value}!"


class Types(Adapter):
    """Echoes one value of every type a proxy carries."""

    default_policy = "manual"

    @slow(startup=True)
    def warm_up(self) -> None:
        """Maintenance: never part of the proxy."""

    @fast
    def echo_int(self, x: int) -> int:
        """Return x."""
        return x

    @fast
    def echo_datetime(self, x: datetime.datetime) -> datetime.datetime:
        """Return x (a msgpack timestamp both ways)."""
        return x

    @fast
    def next_day(self, x: datetime.date) -> datetime.date:
        """The day after x (dates travel as YYYY-MM-DD strings)."""
        return x + datetime.timedelta(days=1)

    @fast
    def echo_uuid(self, x: uuid.UUID) -> uuid.UUID:
        """Return x (a UUID travels as its 36-character string)."""
        return x

    @fast
    def add_cents(self, x: decimal.Decimal, y: decimal.Decimal | None = None) -> decimal.Decimal:
        """x + y, exactly (decimals travel as strings)."""
        return x + (y if y is not None else decimal.Decimal("0.01"))

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
        """Take nothing, return nothing."""

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
    def echo_vartuple(self, t: tuple[int, ...] = (1, 2)) -> tuple[int, ...]:
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
    def echo_color(self, c: Color = Color.GREEN) -> Color:
        """Shared enum, with a member as default."""
        return c

    @fast
    def echo_level(self, level: Level) -> Level:
        return level

    @fast
    def echo_mode(self, m: Mode | None = Mode.SAFE) -> Mode | None:
        """Local enum (copied into the proxy)."""
        return m

    @fast
    def echo_priority(self, p: Literal[Priority.HIGH]) -> Priority:
        return p

    @fast
    def echo_point(self, p: Point) -> Point:
        return p

    @fast
    def echo_segment(self, s: Segment) -> Segment:
        return s

    @fast
    def echo_shape(self, shape: Shape) -> Shape:
        return shape

    @fast
    def points(self, n: int) -> list[Point]:
        """Return n points (x = 0 .. n-1)."""
        return [Point(x=i, y=-i) for i in range(n)]

    @fast
    def by_name(self, points: dict[str, Point]) -> dict[str, tuple[int, int]]:
        return {name: (p.x, p.y) for name, p in points.items()}

    @fast
    def echo_user(self, user: UserId) -> UserId:
        return user

    @fast
    def echo_ticket(self, t: Ticket) -> Ticket:
        return t

    @fast
    def non_negative(self, n: Annotated[int, Field(ge=0)]) -> int:
        """The proxy checks int; the service checks ge=0."""
        return n

    @fast
    def scale(self, x: int, /, y: int = 1, *, factor: float = 1.0, label: str = "") -> str:
        """Positional-only, ordinary and keyword-only parameters.

        Returns ``label`` followed by ``(x + y) * factor``.
        """
        return f"{label}{(x + y) * factor}"

    @fast
    def distance(self, p: Point = ORIGIN, *, q: Point = ORIGIN) -> int:
        """Defaults the proxy cannot write: the service applies them."""
        return abs(p.x - q.x) + abs(p.y - q.y)

    @fast
    def fail(self, message: str) -> None:
        """Raise ValueError(message) in the library."""
        raise ValueError(message)


class MylibV2(Adapter):
    """mylib with a changed ``calc`` signature: a proxy generated from it is stale."""

    @fast
    def calc(self, x: int, y: int = 0) -> int:
        """Return x + y + offset."""
        return x + y


class LocalDataclass(Adapter):
    """Refused: a dataclass from the adapter module in a signature."""

    @fast
    def area(self, box: LocalBox) -> int:
        return box.width


class ReservedName(Adapter):
    """Refused: a call named like a function of the generated module."""

    @fast
    def init(self) -> None:
        pass


class Shade(str, enum.Enum):  # noqa: UP042 - the mixin form is what is being tested
    """A str-mixin enum in the adapter module: refused (a StrEnum copy would not be exact)."""

    DARK = "dark"


class MixinEnum(Adapter):
    """Refused: a (str, Enum) enum from the adapter module."""

    @fast
    def shade(self) -> Shade:
        return Shade.DARK


class LocalModelResult(Adapter):
    """Refused: a model from the adapter module as a result."""

    @fast
    def get(self) -> LocalModel:
        return LocalModel(name="x")


class EnumWithMethods(Adapter):
    """Refused: an enum with methods from the adapter module."""

    @fast
    def pick(self, flavor: Flavor) -> str:
        return flavor.describe()


class Uncarriable(Adapter):
    """Refused already by the loader: a callable cannot cross a process boundary."""

    @fast
    def run(self, callback: Callable[[], int]) -> int:
        return callback()
