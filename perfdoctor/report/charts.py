"""Chart geometry for report.html: numbers in, SVG coordinates out.

Every function here takes report values (typed sections or plain numbers) and returns dicts of
coordinates, colours and label strings; the templates turn them into `<rect>`, `<polygon>` and `<text>` elements
(autoescaped, like every other value on the page). Nothing here writes markup, so a hostile
name in a report can only ever reach the page as escaped text.

Charts are drawn in a fixed coordinate space (`viewBox`) and scale with the page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..model.host import HostSummary
from ..model.numbers import percentile
from ..model.report import Report
from ..model.steps import PHASES, StepSeriesSection

PHASE_COLORS = {
    "dataloader": "#e8833a",
    "forward": "#4c78a8",
    "backward": "#54a24b",
    "optimizer": "#b279a2",
    "other": "#9c9c9c",
}
EXTRA_COLORS = ("#eeca3b", "#72b7b2", "#ff9da6", "#9d755d", "#bab0ac", "#f58518")
STEP_COLOR = "#4c78a8"  # bars of a series that has durations but no phases

# Up to this many steps the timeline draws one stacked bar per step (each with a tooltip);
# beyond it, one stacked area per phase, which stays small and legible up to thousands of steps.
MAX_BARS = 240
# The y axis of the step timeline stops at this multiple of the series' 95th percentile when a
# few steps (typically the warm-up) are far slower than the rest; those bars are drawn clipped.
CLIP_FACTOR = 2.5

TIMELINE_SIZE = (960, 260)
TIMELINE_MARGIN = {"left": 58, "right": 12, "top": 18, "bottom": 34}
LINE_SIZE = (960, 220)
LINE_MARGIN = {"left": 58, "right": 12, "top": 14, "bottom": 34}
MARKER_LIMIT = 60  # line charts mark each point when there are at most this many


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> float:
    return float(value) if finite(value) else 0.0


def _r(value: float) -> float:
    """Coordinates to 0.1 of a unit: enough for a 960-wide chart, short in the file."""
    return round(value, 1)


def phase_color(phase: str, index: int = 0) -> str:
    return PHASE_COLORS.get(phase) or EXTRA_COLORS[index % len(EXTRA_COLORS)]


def ordered_phases(keys: Iterable[str]) -> list[str]:
    """The known phases in pipeline order, then any others in the order given."""
    keys = list(keys)
    return [p for p in PHASES if p in keys] + [k for k in keys if k not in PHASES]


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 tick spacing giving about `target` intervals over `span`."""
    if not finite(span) or span <= 0:
        return 1.0
    raw = span / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def nice_ceiling(value: float, target: int = 5) -> tuple[float, float]:
    """(top, tick) for an axis from 0 that shows `value`: top is a whole number of ticks."""
    if not finite(value) or value <= 0:
        return 1.0, 0.2
    tick = nice_step(value, target)
    return math.ceil(value / tick - 1e-9) * tick, tick


def tick_label(value: float, tick: float) -> str:
    if tick >= 1 or value == 0:
        return f"{value:,.0f}"
    decimals = min(6, max(1, -math.floor(math.log10(tick))))
    return f"{value:.{decimals}f}"


def _text_width(text: str, size: float = 14) -> float:
    """About how wide `text` is in the chart's units (bold system font, 0.6 em a character)."""
    return len(text) * size * 0.6


def _short_pct(share: float) -> str:
    return f"{share * 100:.1f}%"


# ---------------------------------------------------------------------------------------------
# Where a step goes: one horizontal bar, 100% wide, one segment per phase.


def breakdown_bar(breakdown: Mapping[str, Any] | None, width: int = 960, height: int = 44) -> dict[str, Any] | None:
    if breakdown is None:
        return None
    shares = {k: float(v) for k, v in breakdown.items() if finite(v) and v > 0}
    total = sum(shares.values())
    if total <= 0:
        return None
    segments = []
    x = 0.0
    for index, phase in enumerate(ordered_phases(shares)):
        w = shares[phase] / total * width
        segments.append(
            {
                "phase": phase,
                "share": shares[phase],
                "x": _r(x),
                "w": _r(w),
                "color": phase_color(phase, index),
                "label_x": _r(x + w / 2),
                "show_label": w >= _text_width(f"{phase} {_short_pct(shares[phase] / total)}") + 12,
                "show_short": w >= _text_width(_short_pct(shares[phase] / total)) + 10,
            }
        )
        x += w
    return {"width": width, "height": height, "segments": segments}


# ---------------------------------------------------------------------------------------------
# Step timeline: per-step stacked bars (or stacked areas for long series).


def series_phases(series: StepSeriesSection, n: int) -> list[str]:
    """Phases with one value per step in `steps.series`."""
    return [phase for phase in PHASES if len(series.phase_ms(phase)) == n]


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) index ranges where flags are true."""
    runs, start = [], None
    for i, flag in enumerate(flags + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def step_timeline(series: StepSeriesSection, max_bars: int = MAX_BARS) -> dict[str, Any] | None:
    steps: list[int] = series.step
    durations = series.duration_ms
    if not steps:
        if durations:
            steps = list(range(len(durations)))
        else:
            return None
    n = len(steps)
    stride = series.stride if series.stride >= 1 else 1
    phases = series_phases(series, n)
    if phases:
        columns = {p: [max(0.0, _num(v)) for v in series.phase_ms(p)] for p in phases}
        colors = {p: phase_color(p, i) for i, p in enumerate(phases)}
    elif len(durations) == n:
        phases = ["step"]
        columns = {"step": [max(0.0, _num(v)) for v in durations]}
        colors = {"step": STEP_COLOR}
    else:
        return None
    totals = [sum(columns[p][i] for p in phases) for i in range(n)]
    if len(durations) == n:
        # The step's own duration when it is known: phases should add up to it, but a series
        # from another source may not have every phase.
        totals = [max(t, _num(d)) for t, d in zip(totals, durations)]
    peak = max(totals) if totals else 0.0
    ordinary = percentile(sorted(totals), 0.95) * CLIP_FACTOR if totals else 0.0
    clip = ordinary if 0 < ordinary < peak else None
    top, tick = nice_ceiling(clip if clip else peak)

    width, height = TIMELINE_SIZE
    m = TIMELINE_MARGIN
    x0, y0 = m["left"], m["top"]
    plot_w, plot_h = width - m["left"] - m["right"], height - m["top"] - m["bottom"]
    slot = plot_w / n

    def y_of(value: float) -> float:
        return y0 + plot_h - min(value, top) / top * plot_h

    profiled = [bool(f) for f in series.profiled] if len(series.profiled) == n else [False] * n
    bands = [{"x": _r(x0 + a * slot), "w": _r(max(1.0, (b - a) * slot)), "steps": (steps[a], steps[b - 1])} for a, b in _runs(profiled)]

    mode = "bars" if n <= max_bars else "area"
    bars, areas = [], []
    if mode == "bars":
        gap = slot * 0.18 if slot >= 4 else 0.0
        for i in range(n):
            base, segments = 0.0, []
            for p in phases:
                value = columns[p][i]
                if value <= 0 or base >= top:
                    base += value
                    continue
                y_top, y_bottom = y_of(base + value), y_of(base)
                segments.append({"phase": p, "color": colors[p], "y": _r(y_top), "h": _r(max(0.0, y_bottom - y_top))})
                base += value
            parts = ", ".join(f"{p} {_fmt_ms(columns[p][i])}" for p in phases if len(phases) > 1)
            title = f"step {steps[i]}: {_fmt_ms(totals[i])}" + (f" ({parts})" if parts else "") + (" — profiled" if profiled[i] else "")
            bars.append(
                {
                    "x": _r(x0 + i * slot + gap / 2),
                    "w": _r(max(0.5, slot - gap)),
                    "segments": segments,
                    "title": title,
                    "clipped": clip is not None and totals[i] > top,
                    "cx": _r(x0 + i * slot + slot / 2),
                }
            )
    else:
        below = [0.0] * n
        xs = [x0 + (i + 0.5) * slot for i in range(n)]
        for p in phases:
            above = [below[i] + columns[p][i] for i in range(n)]
            upper = [f"{_r(xs[i])},{_r(y_of(above[i]))}" for i in range(n)]
            lower = [f"{_r(xs[i])},{_r(y_of(below[i]))}" for i in reversed(range(n))]
            areas.append({"phase": p, "color": colors[p], "points": " ".join(upper + lower), "count": n})
            below = above

    yticks = []
    value = 0.0
    while value <= top + tick * 1e-6:
        yticks.append({"y": _r(y_of(value)), "label": tick_label(value, tick)})
        value += tick
    first = steps[0] if finite(steps[0]) else 0
    last = steps[-1] if finite(steps[-1]) else n - 1
    xtick = max(1, int(nice_step(max(1, last - first), 8)))
    xticks = []
    start = math.ceil(first / xtick) * xtick
    for s in range(int(start), int(last) + 1, xtick):
        index = (s - first) / (stride or 1)
        if 0 <= index <= n - 1:
            xticks.append({"x": _r(x0 + (index + 0.5) * slot), "label": f"{s:,}"})
    clipped = [i for i in range(n) if clip is not None and totals[i] > top]
    return {
        "width": width,
        "height": height,
        "plot": {"x": x0, "y": y0, "w": plot_w, "h": plot_h, "bottom": y0 + plot_h, "right": x0 + plot_w},
        "mode": mode,
        "count": n,
        "stride": stride,
        "phases": [{"phase": p, "color": colors[p]} for p in phases],
        "bars": bars,
        "areas": areas,
        "bands": bands,
        "yticks": yticks,
        "xticks": xticks,
        "top_ms": top,
        "clipped": [{"step": steps[i], "ms": totals[i]} for i in clipped],
    }


# ---------------------------------------------------------------------------------------------
# Line charts (host CPU, memory) and sparklines.


def line_chart(
    x: Any,
    lines: list[dict[str, Any]],
    *,
    floor_top: float = 0.0,
    guides: list[dict[str, Any]] | None = None,
    size: tuple[int, int] = LINE_SIZE,
) -> dict[str, Any] | None:
    """`lines`: [{"label", "color", "values", "dash"?}], values aligned with `x` (seconds).

    The y axis runs from 0 to at least `floor_top`; `guides` are horizontal reference lines
    ({"value", "label"}).
    """
    lines = [line for line in lines if isinstance(line.get("values"), list) and line["values"]]
    if not lines:
        return None
    n = max(len(line["values"]) for line in lines)
    xs = [float(v) for v in x] if isinstance(x, list) and len(x) == n and all(finite(v) for v in x) else list(map(float, range(n)))
    width, height = size
    m = LINE_MARGIN
    x0, y0 = m["left"], m["top"]
    plot_w, plot_h = width - m["left"] - m["right"], height - m["top"] - m["bottom"]
    peak = max([floor_top] + [v for line in lines for v in line["values"] if finite(v)] + [g["value"] for g in guides or [] if finite(g.get("value"))])
    top, tick = nice_ceiling(peak)
    lo, hi = (xs[0], xs[-1]) if n > 1 else (xs[0] - 1, xs[0] + 1)
    span = (hi - lo) or 1.0

    def px(value: float) -> float:
        return _r(x0 + (value - lo) / span * plot_w)

    def py(value: float) -> float:
        return _r(y0 + plot_h - max(0.0, min(value, top)) / top * plot_h)

    drawn = []
    for line in lines:
        points = [(px(xs[i]), py(v)) for i, v in enumerate(line["values"][:n]) if finite(v)]
        drawn.append(
            {
                "label": line.get("label", ""),
                "color": line.get("color", STEP_COLOR),
                "dash": line.get("dash", ""),
                "points": " ".join(f"{a},{b}" for a, b in points),
                "markers": [{"x": a, "y": b} for a, b in points] if len(points) <= MARKER_LIMIT else [],
                "count": len(points),
            }
        )
    yticks, value = [], 0.0
    while value <= top + tick * 1e-6:
        yticks.append({"y": py(value), "label": tick_label(value, tick)})
        value += tick
    xtick = nice_step(span, 8)
    xticks = []
    t = math.ceil(lo / xtick) * xtick
    while t <= hi + xtick * 1e-6:
        xticks.append({"x": px(t), "label": tick_label(t, xtick)})
        t += xtick
    return {
        "width": width,
        "height": height,
        "plot": {"x": x0, "y": y0, "w": plot_w, "h": plot_h, "bottom": y0 + plot_h, "right": x0 + plot_w},
        "lines": drawn,
        "guides": [{"y": py(g["value"]), "label": g.get("label", "")} for g in guides or [] if finite(g.get("value"))],
        "yticks": yticks,
        "xticks": xticks,
    }


def host_charts(host: HostSummary | None) -> dict[str, Any]:
    """CPU in cores busy (system, this process, its workers) and resident memory, over time."""
    if host is None:
        return {"cpu": None, "rss": None, "contention": None}
    timeline = host.timeline
    cores = host.logical_cores
    usable = host.usable_cores or cores

    def scaled(name: str, factor: float) -> list[Any]:
        values: list[float | None] = getattr(timeline, name)
        return [v * factor if v is not None and finite(v) else None for v in values]

    lines = []
    if cores:
        # system_cpu is a percent of all cores; shown as cores busy to share the axis.
        lines.append({"label": "whole machine", "color": "#9c9c9c", "values": scaled("system_cpu", cores / 100)})
    lines.append({"label": "this process", "color": "#4c78a8", "values": scaled("process_cpu", 0.01)})
    lines.append({"label": "DataLoader workers & children", "color": "#e8833a", "values": scaled("children_cpu", 0.01)})
    if timeline.others_cpu:
        lines.append({"label": "the job (its whole process tree)", "color": "#2f4b7c", "values": scaled("job_cpu", 0.01), "dash": "4 2"})
        lines.append({"label": "other processes", "color": "#d62728", "values": scaled("others_cpu", 0.01)})
    guides = [{"value": usable, "label": f"{usable:g} usable cores"}] if usable else []
    cpu = line_chart(timeline.t_s, lines, floor_top=float(usable or 1), guides=guides)
    rss = line_chart(
        timeline.t_s,
        [{"label": "resident memory (MiB)", "color": "#54a24b", "values": scaled("rss_mb", 1.0)}],
        size=(960, 160),
    )
    contention = None
    if timeline.others_cpu:
        contention_lines = [
            {"label": "the job's CPU", "color": "#2f4b7c", "values": scaled("job_cpu", 0.01)},
            {"label": "other processes' CPU", "color": "#d62728", "values": scaled("others_cpu", 0.01)},
        ]
        if timeline.job_wait:
            contention_lines.append(
                {"label": "the job's threads waiting for a CPU", "color": "#ff9da7", "values": scaled("job_wait", 0.01), "dash": "4 2"}
            )
        contention = line_chart(timeline.t_s, contention_lines, floor_top=float(usable or 1), guides=guides)
    return {"cpu": cpu, "rss": rss, "contention": contention}


def sparkline(values: Any, width: int = 160, height: int = 28) -> dict[str, Any] | None:
    """A tiny trend line for a long list of numbers met in a generic section."""
    if not isinstance(values, list):
        return None
    numbers = [float(v) for v in values if finite(v)]
    if len(numbers) < 2:
        return None
    lo, hi = min(numbers), max(numbers)
    span = (hi - lo) or 1.0
    step = width / (len(numbers) - 1)
    points = " ".join(f"{_r(i * step)},{_r(height - 2 - (v - lo) / span * (height - 4))}" for i, v in enumerate(numbers))
    return {"width": width, "height": height, "points": points, "min": lo, "max": hi, "mean": sum(numbers) / len(numbers), "count": len(numbers)}


def build(report: Report) -> dict[str, Any]:
    """Every chart the page draws, from the report alone."""
    steps, operators = report.steps, report.operators
    breakdown = steps.breakdown or (operators.breakdown if operators else None)
    return {
        "breakdown": breakdown_bar(dict(breakdown.items()) if breakdown else None),
        "breakdown_source": "steps" if steps.breakdown else ("trace" if breakdown else None),
        "timeline": step_timeline(steps.series),
        "host": host_charts(report.host),
    }
