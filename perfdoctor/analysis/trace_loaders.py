"""DataLoader evidence from a foreign trace, in the shape the data-loading rules read.

perfdoctor's own runs measure each DataLoader with a probe (arguments, every batch's wait,
epochs, how busy the cores were while the step waited). A trace recorded elsewhere holds less:
the training loop's ``enumerate(DataLoader)#...__next__`` ranges (each batch's wait) and the
iterator class (single-process: ``num_workers=0``; multi-process: some workers, how many
unknown); see :mod:`perfdoctor.trace.dataloader`. From those this builds one
:class:`LoaderSummary` per iterator class, marked ``source="trace"``, with no arguments the
trace does not show, no epochs and no busy-core evidence, so that no rule can claim more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model.numbers import percentile
from .rundata import LoaderSummary

if TYPE_CHECKING:
    from ..trace import Trace
    from ..trace.steps import StepWindow


def loaders_from_trace(trace: Trace, windows: list[StepWindow]) -> list[LoaderSummary]:
    """One summary per DataLoader iterator class whose waits fall in the step windows."""
    from ..trace.dataloader import loader_waits

    loaders: list[LoaderSummary] = []
    for waits in loader_waits(trace, windows):
        inside = waits.duration_ns[waits.step >= 0] / 1e6
        if not inside.size:
            continue
        ordered = sorted(float(ms) for ms in inside)
        workers = waits.num_workers
        loaders.append(
            LoaderSummary(
                loader_id=len(loaders),
                args={} if workers is None else {"num_workers": workers},
                dataset={},
                batches=len(ordered),
                wait_total_ms=sum(ordered),
                epoch_start_wait_ms=0.0,
                wait_p50_ms=percentile(ordered, 0.5),
                wait_p95_ms=percentile(ordered, 0.95),
                epochs=[],
                source="trace",
                iterator=waits.iterator,
            )
        )
    return loaders
