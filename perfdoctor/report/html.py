"""report.html: one self-contained page from the typed report (jinja2 templates in
perfdoctor/templates, autoescaped).

Untrusted text (op, file and argument names) only ever reaches the page through autoescaping,
or through `|tojson` inside a script; nothing is fetched from the network. The page carries a
Content-Security-Policy that allows no fetches at all and only the page's own script (by hash),
so even a mistake in escaping could not load or run anything.

The page is rendered from the report alone (what report.json holds), so a report.json can be
rendered again later: `decode_report` it and call `render_html`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..model.report import Report
from . import charts, memory_charts, templates
from .renderer import AnalysedRun, Renderer

TEMPLATE = "report.html.j2"


def render_html(report: Report) -> str:
    from ..gate.budgets import samples_per_second

    return templates.environment().get_template(TEMPLATE).render(
        report=report,
        charts=charts.build(report),
        memory_charts=memory_charts.build(report.memory),
        throughput=samples_per_second(report),
        trace_base="",
        script_hash=templates.script_hash(),
        renderer_version=templates.renderer_version(),
    )


def render_page(template: str, page: dict[str, Any]) -> str:
    """Another page in the report's style (diff.html), from a plain document."""
    return templates.environment().get_template(template).render(
        report=page, script_hash=templates.script_hash(), renderer_version=templates.renderer_version()
    )


def write_report_html(report: Report, path: Path) -> Path:
    from ..stream.atomic import write_bytes

    # Whole or not at all, the previous page kept on failure; undecodable bytes of a file name
    # (surrogate escapes) shown as \xff-style escapes rather than failing the page.
    write_bytes(path, render_html(report).encode("utf-8", "backslashreplace"))
    return path


class HtmlRenderer(Renderer):
    output = "report.html"

    def render(self, run: AnalysedRun, out: Path) -> None:
        write_report_html(run.report, out / self.output)
