"""Is a memory series growing, robustly? A Theil-Sen slope over step-indexed samples, and checks
that tell a steady leak from the things that only look like one at first sight.

    warm-up (allocator caches, lazy buffers): the first part of the run is left out, and the
        growth must go on through the last part of what is fitted;
    a plateau after one jump (the caching allocator reserving another block): a step change is
        growth in one place only, so the middle and the last third must both grow (the two halves,
        when samples are too sparse for four in each third);
    epoch boundaries (workers restarted, buffers freed): memory that drops back by half of what it
        gained is a sawtooth, not a leak.

Theil-Sen (the median of the slopes between every pair of points) ignores up to ~29% of
outliers; its 95% interval is Sen's, from Kendall's statistic. Samples are first reduced to the
median of each of up to MAX_POINTS equal stretches of steps, so that dense and sparse parts of a
run weigh alike and the pairwise slopes stay cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_POINTS = 240
Z95 = 1.959964


@dataclass(frozen=True)
class TrendLimits:
    warmup_share: float = 0.2  # the first share of the steps after warm-up is left out as well
    # Fewer steps in the fitted window: too short to tell. A healthy LBFGS job's 22-step window
    # (a 40-step run) rose 1.7 MiB a step, steadily, as its allocator settled; the planted
    # leaks' windows span 98 steps and more.
    min_steps: int = 50
    min_points: int = 10  # fewer binned points: too short to tell
    late_share: float = 0.3  # the middle and last thirds (halves, when sampled sparsely) must each grow at >= this share of the slope
    max_drawdown_share: float = 0.5  # a drop of more than this share of the growth: a sawtooth
    # Less growth over the fitted window than this is no trend, however steady: resident memory
    # creeps by pages (the interpreter's own small allocations), and pages are all noise-free.
    min_growth_bytes: float = 1024 * 1024


@dataclass(frozen=True)
class Fit:
    slope: float  # per step
    low: float  # 95% interval of the slope
    high: float
    intercept: float


@dataclass(frozen=True)
class Trend:
    """A fitted window of a series, and the verdict."""

    from_step: int
    to_step: int
    points: int
    fit: Fit
    middle_slope: float | None
    late_slope: float | None
    growth: float  # slope x the window's steps
    noise: float  # robust spread of the residuals (1.4826 x MAD)
    drawdown: float  # the largest drop from a running maximum within the window
    level: float  # the series at the end of the window (median of its last points)
    growing: bool
    reason: str

    @property
    def rate(self) -> float:
        """Bytes per step to project with: the late slope when it is the lower (growth that slows)."""
        if self.late_slope is not None and 0 < self.late_slope < self.fit.slope:
            return self.late_slope
        return self.fit.slope


def binned(steps: np.ndarray, values: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) medians over up to `max_points` equal stretches of steps."""
    if steps.size <= max_points:
        return steps.astype(np.float64), values.astype(np.float64)
    lo, hi = float(steps.min()), float(steps.max())
    edges = np.linspace(lo, hi, max_points + 1)
    index = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, max_points - 1)
    xs, ys = [], []
    for b in np.unique(index):
        picked = index == b
        xs.append(float(np.median(steps[picked])))
        ys.append(float(np.median(values[picked])))
    return np.array(xs), np.array(ys)


def theil_sen(x: np.ndarray, y: np.ndarray) -> Fit | None:
    n = x.size
    if n < 3:
        return None
    i, j = np.triu_indices(n, k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    if not keep.any():
        return None
    slopes = np.sort((y[j] - y[i])[keep] / dx[keep])
    slope = float(np.median(slopes))
    m = slopes.size
    # Sen's interval: ranks of the sorted slopes around the median, from Kendall's S variance.
    spread = Z95 * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    lower = int(max(0, math.floor((m - spread) / 2)))
    upper = int(min(m - 1, math.ceil((m + spread) / 2)))
    intercept = float(np.median(y - slope * x))
    return Fit(slope=slope, low=float(slopes[lower]), high=float(slopes[upper]), intercept=intercept)


def drawdown(values: np.ndarray) -> float:
    """The largest fall from a running maximum."""
    if values.size == 0:
        return 0.0
    return float(np.max(np.maximum.accumulate(values) - values))


def _segment_slope(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float | None:
    picked = (x >= lo) & (x <= hi)
    if picked.sum() < 4:
        return None
    fit = theil_sen(x[picked], y[picked])
    return fit.slope if fit else None


def fit_trend(steps: list[int], values: list[float], first_step: int, limits: TrendLimits = TrendLimits()) -> Trend | None:
    """The trend of `values` (bytes) over the steps from `first_step` on, less the first
    `warmup_share` of them; None when there is not enough to fit."""
    pairs = [(s, v) for s, v in zip(steps, values) if s is not None and v is not None and s >= first_step]
    if len(pairs) < 3:
        return None
    x_all = np.array([p[0] for p in pairs], dtype=np.float64)
    y_all = np.array([p[1] for p in pairs], dtype=np.float64)
    start = x_all.min() + limits.warmup_share * (x_all.max() - x_all.min())
    keep = x_all >= start
    x_raw, y_raw = x_all[keep], y_all[keep]
    if x_raw.size < 3:
        return None
    x, y = binned(x_raw, y_raw)
    span = float(x.max() - x.min())
    fit = theil_sen(x, y)
    if fit is None:
        return None
    third = span / 3
    middle = _segment_slope(x, y, x.min() + third, x.min() + 2 * third)
    late = _segment_slope(x, y, x.min() + 2 * third, x.max())
    part = "third"
    if middle is None or late is None:
        # Sparse samples (a short job on a fast machine, sampled by time): thirds with too few
        # points each. Halves still tell steady growth from one jump: the half without it is flat.
        middle = _segment_slope(x, y, x.min(), x.min() + span / 2)
        late = _segment_slope(x, y, x.min() + span / 2, x.max())
        part = "half"
    residuals = y - (fit.intercept + fit.slope * x)
    noise = float(1.4826 * np.median(np.abs(residuals - np.median(residuals))))
    growth = fit.slope * span
    fall = drawdown(y)
    tail = y[x >= x.max() - 0.1 * span] if span > 0 else y
    level = float(np.median(tail)) if tail.size else float(y[-1])
    growing, reason = _verdict(x, span, fit, middle, late, growth, noise, fall, limits, part)
    return Trend(
        from_step=int(x_raw.min()), to_step=int(x_raw.max()), points=int(x.size), fit=fit, middle_slope=middle,
        late_slope=late, growth=growth, noise=noise, drawdown=fall, level=level, growing=growing, reason=reason,
    )


def _verdict(
    x: np.ndarray, span: float, fit: Fit, middle: float | None, late: float | None, growth: float, noise: float,
    fall: float, limits: TrendLimits, part: str = "third",
) -> tuple[bool, str]:
    if span < limits.min_steps or x.size < limits.min_points:
        return False, f"too short to tell: {x.size} points over {span:.0f} steps after warm-up"
    if fit.low <= 0:
        return False, "no growth: the slope's 95% interval includes zero"
    if growth <= 4 * noise:
        return False, "growth within the noise"
    if growth < limits.min_growth_bytes:
        return False, f"{growth / 1024:.0f} KiB over the window: a creep too small to matter"
    if middle is None or late is None:
        return False, "too few samples in the later part of the run to tell growth from a step change"
    if late < limits.late_share * fit.slope or middle < limits.late_share * fit.slope:
        first = "first" if part == "half" else "middle"
        where = f"the last {part}" if late < limits.late_share * fit.slope else f"the {first} {part}"
        return False, f"no steady growth: {where} of the run grows far slower (warm-up, a one-off jump or a plateau)"
    if fall > limits.max_drawdown_share * growth:
        return False, "memory falls back along the way (a sawtooth: released at epoch boundaries), not a leak"
    return True, "grows steadily through the run's later part"
