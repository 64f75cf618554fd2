"""What a renderer is: one output of a run (report.json, report.html, the console summary,
TensorBoard scalars), made from the typed report of an analysed run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..analysis.rundata import RunData
from ..model.report import Report


@dataclass(frozen=True)
class AnalysedRun:
    """A run after analysis: the typed report, and the full-resolution data it was made from
    (the report thins long per-step series; TensorBoard gets every step)."""

    report: Report
    data: RunData


class Renderer:
    """Subclass, name the output, and implement `render`."""

    output: ClassVar[str]  # what it writes, for people: "report.html"
    # True: without this output the run has no report (report.json), so its failure is the
    # pipeline's; False: a failure is one line on stderr and the other renderers still run.
    essential: ClassVar[bool] = False

    def render(self, run: AnalysedRun, out: Path) -> None:
        raise NotImplementedError
