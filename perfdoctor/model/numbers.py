"""The few numeric helpers every stage shares: rounding that keeps None, and a percentile."""

from __future__ import annotations

from collections.abc import Sequence


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
