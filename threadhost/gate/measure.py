"""Measured durations: an exponentially weighted mean (weight 0.5 on the newest sample)."""

from __future__ import annotations

__all__ = ["EWMA_WEIGHT", "Estimate"]

EWMA_WEIGHT = 0.5


class Estimate:
    """The running estimate of a duration; ``value`` is None until the first sample."""

    __slots__ = ("samples", "value")

    def __init__(self) -> None:
        self.value: float | None = None
        self.samples = 0

    def add(self, sample: float) -> None:
        prev = self.value
        self.value = sample if prev is None else EWMA_WEIGHT * sample + (1 - EWMA_WEIGHT) * prev
        self.samples += 1

    def remaining(self, elapsed: float) -> float | None:
        """Expected time left after ``elapsed`` seconds (may be negative: overdue)."""
        return None if self.value is None else self.value - elapsed
