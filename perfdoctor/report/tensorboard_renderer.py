"""TensorBoard scalars as a renderer: every step's time and phases, host CPU and memory over time,
written beside the profiler traces (`RUN/tb/<run-name>/`), so one TensorBoard run holds both.

The writing itself is report/tensorboard.py's; it reads the full-resolution run data (the
report thins long series), which AnalysedRun carries.
"""

from __future__ import annotations

from pathlib import Path

from .renderer import AnalysedRun, Renderer


def run_name(run: AnalysedRun) -> str:
    """The TensorBoard run: the script's stem, else the module, else "run" (the folder `perfdoctor
    run` put the trace in)."""
    from ..stream.rundir import tb_run_name

    info = run.report.run
    return tb_run_name((info.script and Path(info.script).stem) or info.module or "run")


class TensorBoardRenderer(Renderer):
    output = "TensorBoard scalars"

    def render(self, run: AnalysedRun, out: Path) -> None:
        from .tensorboard import write_scalars

        write_scalars(run.data, out / "tb" / run_name(run))
