"""The jinja2 Environment of the HTML pages, built once: templates loaded from the package
(perfdoctor/templates, shipped in the wheel), autoescaped, with the formatting filters."""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import TYPE_CHECKING

from ..model.steps import PHASES
from . import charts
from . import formatting as f

if TYPE_CHECKING:
    import jinja2

SCRIPT = "report.js"


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("perfdoctor", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=f.fmt_num,
        ms=f.fmt_ms,
        us=f.fmt_us,
        seconds=f.fmt_seconds,
        pct=f.fmt_pct,
        percent=f.fmt_percent,
        bytes=f.fmt_bytes,
        cores=f.fmt_cores,
        value=f.fmt_value,
        label=f.fmt_label,
        when=f.fmt_when,
        cmdline=f.fmt_cmdline,
        ranges=f.fmt_ranges,
        safe_url=f.safe_url,
        trace_query=f.trace_query,
        breakable=f.breakable,
        width_pct=f.width_pct,
        record_columns=f.record_columns,
        column_max=f.column_max,
        numeric_column=f.numeric_column,
        heading=f.fmt_heading,
        plain=f.plain,
        sparkline=charts.sparkline,
    )
    env.tests.update(scalar=f.is_scalar, record_list=f.is_record_list, number_series=f.is_number_series, finite=charts.finite)
    env.globals.update(phase_color=charts.phase_color, PHASES=PHASES)
    return env


@functools.cache
def script_hash() -> str:
    """The CSP hash of the pages' one inline script, exactly as the templates include it."""
    text = environment().get_template(SCRIPT).render()
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def renderer_version() -> str:
    from .. import __version__

    return __version__
