"""Types shared by tests/proxy_types_adapter.py and the proxy generated from it.

A *shared types* module: the adapter imports it, and so does the generated proxy, so client
and host use the very same classes. It must not import the adapter module or the library
(``threadhost proxy`` checks the former in a fresh interpreter).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import NewType

from pydantic import BaseModel, field_validator

__all__ = ["Color", "Level", "Point", "Segment", "Shape", "UserId"]


class Color(enum.Enum):
    """A str-valued enum."""

    RED = "red"
    GREEN = "green"

    def is_warm(self) -> bool:
        """Behaviour travels with the class because the proxy imports it."""
        return self is Color.RED


class Level(enum.IntEnum):
    """An int-valued enum."""

    LOW = 1
    HIGH = 2


class Point(BaseModel):
    """A pydantic model with a validator."""

    x: int
    y: int = 0
    tag: bytes = b""
    color: Color = Color.RED

    @field_validator("x")
    @classmethod
    def _bounded(cls, value: int) -> int:
        if abs(value) > 1_000_000:
            raise ValueError("x out of range")
        return value


@dataclasses.dataclass(frozen=True)
class Segment:
    """A stdlib dataclass nesting a model, an enum and a tuple."""

    start: Point
    end: Point
    level: Level = Level.LOW
    labels: tuple[str, ...] = ()


@dataclasses.dataclass
class Shape:
    """A dataclass holding a list of dataclasses and an optional model."""

    segments: list[Segment] = dataclasses.field(default_factory=list)
    anchor: Point | None = None


UserId = NewType("UserId", int)
