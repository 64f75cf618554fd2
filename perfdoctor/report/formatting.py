"""Report values as text for people, and the tests the generic templates use: "n/a" for anything
missing, never "None" or "nan"; units taken from the key's suffix (`wait_p50_ms`, `rss_bytes`).

These are the jinja2 filters and tests of report.html and diff.html (see templates.py).
"""

from __future__ import annotations

import math
import shlex
from datetime import datetime
from typing import Any, Callable

import msgspec

from ..model.run import RunInfo
from . import charts

NA = "n/a"
LIST_PREVIEW = 12  # a list of plain values longer than this is shown shortened (or as a sparkline)


def _finite(value: Any) -> bool:
    return charts.finite(value)


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_num(value: Any, digits: int = 3) -> str:
    """An int with thousands separators; a float to about `digits` significant figures."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not _finite(value):
        return NA
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    return _trim(f"{value:.{min(decimals, 6)}f}") if magnitude >= 1e-6 else f"{value:.2g}"


def fmt_ms(value: Any) -> str:
    if not _finite(value):
        return NA
    magnitude = abs(value)
    if magnitude >= 10_000:
        return fmt_seconds(value / 1000)
    if magnitude >= 100:
        return f"{value:,.0f} ms"
    if magnitude >= 10:
        return f"{value:.1f} ms"
    if magnitude >= 1 or magnitude == 0:
        return f"{value:.2f} ms"
    if magnitude >= 0.01:
        return f"{value:.3f} ms"
    return fmt_us(value * 1000)


def fmt_us(value: Any) -> str:
    if not _finite(value):
        return NA
    if abs(value) >= 1000:
        return fmt_ms(value / 1000)
    return f"{fmt_num(value)} µs"


def fmt_seconds(value: Any) -> str:
    if not _finite(value):
        return NA
    if abs(value) < 1:
        return fmt_ms(value * 1000)
    if abs(value) < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_pct(value: Any) -> str:
    """A fraction (0..1) as a percentage: 0.4691 -> 46.9%, 0.0004 -> <0.1%."""
    if not _finite(value):
        return NA
    percent = value * 100
    if percent == 0:
        return "0%"
    if 0 < abs(percent) < 0.1:
        return "<0.1%" if percent > 0 else ">-0.1%"
    return _trim(f"{percent:.1f}") + "%"


def fmt_percent(value: Any) -> str:
    """A value already in percent (system CPU 92.4)."""
    return NA if not _finite(value) else _trim(f"{value:.1f}") + "%"


def fmt_bytes(value: Any) -> str:
    if not _finite(value):
        return NA
    size = float(value)
    for unit, factor, decimals in (("GiB", 2**30, 2), ("MiB", 2**20, 1), ("KiB", 2**10, 1)):
        if abs(size) >= factor:
            return f"{size / factor:,.{decimals}f} {unit}"
    return f"{size:,.0f} B"


def fmt_cores(percent_of_one_core: Any) -> str:
    """psutil's percent of one core (184.3) as cores busy (1.84 cores)."""
    if not _finite(percent_of_one_core):
        return NA
    cores = percent_of_one_core / 100
    return f"{cores:.2f} cores" if cores != 1 else "1 core"


# Unit suffixes of report keys: how to format the value, and the label without the suffix.
_SUFFIXES: tuple[tuple[str, Callable[[Any], str]], ...] = (
    ("_per_s", lambda v: f"{fmt_num(v)}/s"),
    ("_bytes", fmt_bytes),
    ("_mib", lambda v: fmt_bytes(v * 2**20) if _finite(v) else NA),
    ("_mb", lambda v: fmt_bytes(v * 2**20) if _finite(v) else NA),
    ("_ms", fmt_ms),
    ("_us", fmt_us),
    ("_ns", lambda v: fmt_us(v / 1000) if _finite(v) else NA),
    ("_seconds", fmt_seconds),
    ("_s", fmt_seconds),
    ("_percent", fmt_percent),
    ("_pct", fmt_percent),
)
# Keys that hold a fraction (0..1) of something, shown as a percentage.
_FRACTION_WORDS = ("share", "fraction", "saving", "ratio_of_step")


def _is_fraction_key(key: str) -> bool:
    key = key.lower()
    return any(key == word or key.endswith("_" + word) for word in _FRACTION_WORDS)


def fmt_value(value: Any, key: Any = "") -> str:
    """Any report value as text, its unit taken from the key's suffix (`wait_p50_ms`, `rss_bytes`)."""
    key = str(key or "").lower()
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        if not _finite(value):
            return NA
        for suffix, formatter in _SUFFIXES:
            if key.endswith(suffix):
                return formatter(value)
        if _is_fraction_key(key):
            return fmt_pct(value)
        return fmt_num(value)
    if isinstance(value, (list, tuple)):
        shown = [fmt_value(v, key) for v in value[:LIST_PREVIEW]]
        more = len(value) - len(shown)
        return ", ".join(shown) + (f", … ({more} more)" if more > 0 else "") if shown else "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt_value(v, k)}" for k, v in value.items()) or "none"
    return str(value)


def fmt_label(key: Any) -> str:
    """A report key for people: `wait_p50_ms` -> `wait p50` (the unit goes with the value)."""
    text = str(key)
    lowered = text.lower()
    for suffix, _ in _SUFFIXES:
        if lowered.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    return text.replace("_", " ")


def fmt_when(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return NA
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    zone = moment.strftime("%z")
    zone = " UTC" if zone in ("+0000", "") and moment.tzinfo is not None else (f" {zone[:3]}:{zone[3:]}" if zone else "")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + zone


def fmt_cmdline(run: RunInfo) -> str:
    """How the job was started, as a shell line: `python train.py --lr 3e-4`."""
    argv = list(run.argv)
    if run.module:
        head = ["python", "-m", run.module]
    elif run.script:
        head = ["python", run.script]
    else:
        return " ".join(shlex.quote(a) for a in argv) if argv else NA
    return " ".join(shlex.quote(a) for a in head + argv)


def fmt_ranges(values: Any) -> str:
    """[5, 6, 7, 9] -> "5–7, 9"."""
    if not isinstance(values, list):
        return NA
    numbers = sorted({int(v) for v in values if _finite(v)})
    if not numbers:
        return "none"
    parts, start = [], numbers[0]
    for previous, current in zip(numbers, [*numbers[1:], None]):
        if current is None or current != previous + 1:
            parts.append(f"{start:,}" if start == previous else f"{start:,}–{previous:,}")
            if current is not None:
                start = current
    return ", ".join(parts)


def safe_url(value: Any) -> str | None:
    """The URL when it is an http(s) link (safe in an href); None otherwise (shown as text)."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if stripped.lower().startswith(("https://", "http://")) and not any(c in stripped for c in "\r\n\t\0 "):
        return stripped
    return None


def trace_query(place: Any) -> str:
    """The query string of a trace link (viewer/app.py's trace.html) to a TraceLocation."""
    from urllib.parse import urlencode

    fields = {"trace": place.trace, "start_ns": place.start_ns, "end_ns": place.end_ns, "op": place.op, "label": place.label}
    # A file name that is not UTF-8 (surrogate escapes) travels as its own bytes, %-encoded.
    return urlencode({key: value for key, value in fields.items() if value is not None}, errors="surrogateescape")


def breakable(value: Any) -> Any:
    """Escaped text with line-break opportunities after `::`, `_`, `.`, `/` and `,`: a long operator
    name wraps between its parts (`aten::` / `convolution_` / `backward`), not mid-word."""
    import re

    from markupsafe import Markup, escape

    text = str(escape("" if value is None else value))
    return Markup(re.sub(r"(::|[_./,])", r"\1<wbr>", text))


def width_pct(value: Any, scale: Any = 1.0) -> str:
    """A CSS width for a bar: value/scale as a percentage in 0..100."""
    if not _finite(value) or not _finite(scale) or scale <= 0:
        return "0%"
    return f"{max(0.0, min(100.0, value / scale * 100)):.1f}%"


# --- tests for the generic renderer -----------------------------------------------------------


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def is_record_list(value: Any) -> bool:
    """A non-empty list of dicts: shown as a table, one row each (DDP ranks, GPU devices)."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def is_number_series(value: Any) -> bool:
    """A long list of numbers (a timeline): shown as a sparkline with min/mean/max."""
    return isinstance(value, list) and len(value) > LIST_PREVIEW and all(_finite(v) or v is None for v in value)


def column_max(rows: Any, key: str) -> float:
    """The largest finite `row[key]` over a list of dicts; 0 when there is none."""
    values = [row.get(key) for row in rows or [] if isinstance(row, dict)]
    return max([float(v) for v in values if v is not None and _finite(v)] or [0.0])


def numeric_column(rows: Any, key: str) -> bool:
    """Whether every value of `key` in these dicts is a number (the column is right-aligned)."""
    values = [row.get(key) for row in rows or [] if isinstance(row, dict) and row.get(key) is not None]
    return bool(values) and all(_finite(v) for v in values)


def fmt_heading(key: Any) -> str:
    """A report key as a heading: `memory` -> `Memory`, `nccl_ops` -> `Nccl ops`."""
    text = fmt_label(key)
    return text[:1].upper() + text[1:]


def plain(value: Any) -> Any:
    """A typed section as the dicts and lists report.json holds, for the generic tables."""
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def record_columns(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    return columns
