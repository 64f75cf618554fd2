"""Chart geometry for the report's memory section: memory at step ends, with the limit drawn, and,
when a series grows, its fitted trend and where it meets the limit. Numbers in, coordinates out
(the shape `charts.line_chart` returns, drawn by the `line_chart` macro); no markup here.

Lines may have x values of their own (a two-point projection beside a few hundred samples).
A limit far above the series (the machine's RAM under a 400 MiB process) would flatten them to the
bottom of the chart: it is drawn only when it is within LIMIT_IN_VIEW times the chart's top, and
the projection chart, which runs to the limit, shows it whatever its size.
"""

from __future__ import annotations

import math
from typing import Any

from ..model.memory import MemorySection, MemoryTrend
from .charts import LINE_MARGIN, LINE_SIZE, MARKER_LIMIT, finite, nice_ceiling, nice_step, tick_label

MIB = 2**20
LIMIT_IN_VIEW = 4.0
COLORS = {
    "host_process": "#4c78a8", "host_workers": "#e8833a",
    "gpu_allocated": "#54a24b", "gpu_reserved": "#b279a2", "gpu_peak": "#9c9c9c",
}


def xy_chart(lines: list[dict[str, Any]], guides: list[dict[str, Any]] | None = None, size: tuple[int, int] = LINE_SIZE) -> dict[str, Any] | None:
    """`lines`: [{"label", "color", "x", "y", "dash"?}] (each its own x); `guides`: [{"value", "label"}]."""
    drawn_lines = [line for line in lines if any(finite(v) for v in line["y"])]
    if not drawn_lines:
        return None
    xs = [float(x) for line in drawn_lines for x, y in zip(line["x"], line["y"]) if finite(x) and finite(y)]
    top_value = max([y for line in drawn_lines for y in line["y"] if finite(y)] + [g["value"] for g in guides or [] if finite(g.get("value"))])
    top, tick = nice_ceiling(top_value)
    lo, hi = min(xs), max(xs)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    width, height = size
    m = LINE_MARGIN
    x0, y0 = m["left"], m["top"]
    plot_w, plot_h = width - m["left"] - m["right"], height - m["top"] - m["bottom"]

    def px(value: float) -> float:
        return round(x0 + (value - lo) / (hi - lo) * plot_w, 1)

    def py(value: float) -> float:
        return round(y0 + plot_h - max(0.0, min(value, top)) / top * plot_h, 1)

    out_lines = []
    for line in drawn_lines:
        points = [(px(float(x)), py(float(y))) for x, y in zip(line["x"], line["y"]) if finite(x) and finite(y)]
        out_lines.append({
            "label": line["label"], "color": line["color"], "dash": line.get("dash", ""),
            "points": " ".join(f"{a},{b}" for a, b in points),
            "markers": [{"x": a, "y": b} for a, b in points] if len(points) <= MARKER_LIMIT and not line.get("dash") else [],
            "count": len(points),
        })
    yticks, value = [], 0.0
    while value <= top + tick * 1e-6:
        yticks.append({"y": py(value), "label": tick_label(value, tick)})
        value += tick
    xtick = max(1.0, nice_step(hi - lo, 8))
    xticks, t = [], math.ceil(lo / xtick) * xtick
    while t <= hi + xtick * 1e-6:
        xticks.append({"x": px(t), "label": tick_label(t, xtick)})
        t += xtick
    return {
        "width": width, "height": height,
        "plot": {"x": x0, "y": y0, "w": plot_w, "h": plot_h, "bottom": y0 + plot_h, "right": x0 + plot_w},
        "lines": out_lines,
        "guides": [{"y": py(g["value"]), "label": g.get("label", "")} for g in guides or [] if finite(g.get("value"))],
        "yticks": yticks, "xticks": xticks,
    }


def _top(lines: list[dict[str, Any]]) -> float:
    return max([float(v) for line in lines for v in line["y"] if finite(v)], default=0.0)


def _gib_label(value_mib: float) -> str:
    return f"{value_mib / 1024:.1f} GiB" if value_mib >= 1024 else f"{value_mib:.0f} MiB"


def _fitted(trend: MemoryTrend | None, label: str) -> list[dict[str, Any]]:
    """The trend's fitted line over its window, dashed (only for a series found growing)."""
    if trend is None or not trend.growing:
        return []
    end = (trend.fitted_end_bytes if trend.fitted_end_bytes is not None else trend.level_bytes) / MIB
    start = end - trend.bytes_per_step * (trend.to_step - trend.from_step) / MIB
    return [{"label": f"{label}: trend {trend.projected_bytes_per_step / MIB:.2f} MiB/step", "color": "#d62728",
             "x": [trend.from_step, trend.to_step], "y": [start, end], "dash": "4 3"}]


def _limit_guides(limit_mib: float | None, top_mib: float, label: str) -> tuple[list[dict[str, Any]], str | None]:
    if not limit_mib:
        return [], None
    if limit_mib <= LIMIT_IN_VIEW * max(top_mib, 1.0):
        return [{"value": limit_mib, "label": f"{label} {_gib_label(limit_mib)}"}], None
    return [], f"{label}: {_gib_label(limit_mib)}, {limit_mib / max(top_mib, 1.0):.0f}x the highest value here (off the chart)"


def host_chart(memory: MemorySection) -> tuple[dict[str, Any] | None, str | None]:
    series = memory.series
    lines: list[dict[str, Any]] = [{"label": "training process (RSS)", "color": COLORS["host_process"], "x": series.step, "y": series.process_rss_mb}]
    if any(v for v in series.workers_rss_mb if v):
        lines.append({"label": "DataLoader workers (RSS, summed)", "color": COLORS["host_workers"], "x": series.step, "y": series.workers_rss_mb})
    lines += _fitted(memory.trend("host_process"), "process") + _fitted(memory.trend("host_workers"), "workers")
    top = _top(lines)
    limit = memory.host_limit_bytes / MIB if memory.host_limit_bytes else None
    guides, note = _limit_guides(limit, top, "limit (cgroup)" if memory.host_limit_source == "cgroup" else "limit (RAM)")
    return xy_chart(lines, guides), note


def gpu_chart(memory: MemorySection) -> tuple[dict[str, Any] | None, str | None]:
    gpu, series = memory.gpu, memory.series
    if gpu is None:
        return None, None
    lines: list[dict[str, Any]] = [
        {"label": "allocated (tensors)", "color": COLORS["gpu_allocated"], "x": series.step, "y": series.gpu_allocated_mb},
        {"label": "reserved (caching allocator)", "color": COLORS["gpu_reserved"], "x": series.step, "y": series.gpu_reserved_mb},
    ]
    if any(v for v in series.gpu_peak_allocated_mb if v):
        lines.append({"label": "peak allocated since the previous point", "color": COLORS["gpu_peak"], "x": series.step, "y": series.gpu_peak_allocated_mb})
    lines += _fitted(memory.trend("gpu_allocated"), "allocated") + _fitted(memory.trend("gpu_reserved"), "reserved")
    top = _top(lines)
    guides, note = _limit_guides(gpu.limit_bytes / MIB, top, "device limit")
    return xy_chart(lines, guides), note


def projection_chart(memory: MemorySection) -> dict[str, Any] | None:
    """The growing series that reaches its limit first, and the straight line to it."""
    growing = [t for t in memory.growing() if t.limit_at_step is not None and t.limit_bytes]
    if not growing:
        return None
    trend = min(growing, key=lambda t: t.limit_at_step or 0)
    series = memory.series
    values = {
        "host_process": series.process_rss_mb, "host_workers": series.workers_rss_mb,
        "gpu_allocated": series.gpu_allocated_mb, "gpu_reserved": series.gpu_reserved_mb,
    }[trend.subject]
    assert trend.limit_bytes is not None and trend.limit_at_step is not None and trend.headroom_bytes is not None
    # What counts against the limit is more than this series (other processes, the workers): the line
    # starts from what was in use at the end of the run, and rises at the series' rate.
    in_use_end = (trend.limit_bytes - trend.headroom_bytes) / MIB
    offset = in_use_end - trend.level_bytes / MIB
    shifted = [None if v is None else v + offset for v in values]
    lines = [
        {"label": "in use against the limit (measured)", "color": COLORS.get(trend.subject, "#4c78a8"), "x": series.step, "y": shifted},
        {"label": "at the measured rate", "color": "#d62728", "x": [trend.to_step, trend.limit_at_step],
         "y": [in_use_end, trend.limit_bytes / MIB], "dash": "4 3"},
    ]
    return xy_chart(lines, [{"value": trend.limit_bytes / MIB, "label": f"limit {_gib_label(trend.limit_bytes / MIB)}"}], size=(960, 180))


def build(memory: MemorySection | None) -> dict[str, Any] | None:
    if memory is None:
        return None
    host, host_note = host_chart(memory)
    gpu, gpu_note = gpu_chart(memory)
    return {"host": host, "host_note": host_note, "gpu": gpu, "gpu_note": gpu_note, "projection": projection_chart(memory)}
