"""report.html: one self-contained page from reports/templates (jinja2, autoescaped).

Untrusted text (op, file and argument names) only ever reaches the page through autoescaping,
or through `|tojson` inside a script; nothing is fetched from the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = "report.html.j2"


def template_dir() -> Path:
    """The templates shipped in the wheel (perfdoctor/templates), or the source tree's."""
    from importlib import resources

    try:
        shipped = resources.files("perfdoctor.templates")
        if shipped.joinpath(TEMPLATE).is_file():
            return Path(str(shipped))
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "reports" / "templates"


def render_html(report: dict[str, Any], template: str = TEMPLATE) -> str:
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template(template).render(report=report)


def write_report_html(report: dict[str, Any], path: Path) -> Path:
    path.write_text(render_html(report), encoding="utf-8")
    return path
