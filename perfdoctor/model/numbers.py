"""The few numeric helpers every stage shares: rounding that keeps None, a percentile, and the
constrained number types of the report's model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec


def rounded(value: float | None, digits: int = 3) -> float | None:
    """`value` rounded to `digits`, None kept (an unmeasured number stays unmeasured)."""
    return None if value is None else round(float(value), digits)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted values, linear between the closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


# Constrained numbers. msgspec checks them whenever a report (or raw data) is decoded, so a
# document that holds an impossible value (a negative time, a share above 1) is refused with the
# place named, and docs/report.schema.json states them (minimum, maximum).
NonNegative = Annotated[float, msgspec.Meta(ge=0)]  # a time, a size, a mean of them: never below 0
Share = Annotated[float, msgspec.Meta(ge=0, le=1)]  # a fraction of a whole, 0..1
Count = Annotated[int, msgspec.Meta(ge=0)]  # how many (steps, calls, bytes, samples)
Positive = Annotated[int, msgspec.Meta(ge=1)]  # how many, at least one (ranks, a stride)
