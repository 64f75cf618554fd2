"""`dataloader-bottleneck` on a foreign trace's evidence (analysis/trace_loaders.py).

A trace shows each batch's wait and the DataLoader's iterator class, nothing else: not
`num_workers` beyond what the class implies (single-process: 0; multi-process: some), not how
busy the cores or the workers were, not the arguments. The finding says so, and claims no more:

- single-process (`num_workers=0`): batches are made in the training process, one after the
  other, each taking the measured wait. `k` workers make one every `wait / k` ms while the step
  computes, so the step takes `max(compute, wait / k)`; the smallest `k` (at least 2) that hides
  the wait is suggested. The saving assumes those workers get cores of their own, which the
  trace cannot show: said in the advice.
- multi-process, or an iterator the trace does not name: the workers do not keep up, for a
  reason the trace cannot tell (too few workers, busy cores, slow storage). The saving is the
  whole wait: an upper bound, said to be one.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..model.numbers import rounded
from .base import Finding

if TYPE_CHECKING:
    from ..analysis.rundata import LoaderSummary
    from .base import Rule

MAX_SUGGESTED_WORKERS = 8
NOT_IN_TRACE = (
    "This comes from the trace alone: it shows how long the step waited for each batch and the DataLoader's "
    "iterator class, not how many cores were free or how busy they were while it waited."
)


def trace_finding(
    rule: Rule, loader: LoaderSummary, share: float, wait_ms: float, step_ms: float, min_saving: float
) -> Finding | None:
    compute_ms = max(step_ms - wait_ms, 0.0)
    iterator = loader.iterator or "a DataLoader iterator the trace does not name"
    single = loader.num_workers_known and loader.num_workers == 0
    evidence: dict[str, Any] = {
        "wait_share": rounded(share, 4),
        "wait_per_step_ms": rounded(wait_ms),
        "step_ms": rounded(step_ms),
        "compute_per_step_ms": rounded(compute_ms),
        "num_workers": 0 if single else None,
        "dataloader_iterator": loader.iterator,
        "batches_in_trace": loader.batches,
        "batch_wait_p50_ms": rounded(loader.wait_p50_ms),
        "evidence_source": "trace",
        "usable_cores": None,  # not in a trace
        "cores_busy_during_waits_share": None,
    }
    if single:
        suggested = min(MAX_SUGGESTED_WORKERS, max(2, math.ceil(wait_ms / compute_ms) if compute_ms > 0 else MAX_SUGGESTED_WORKERS))
        saving = (step_ms - max(compute_ms, wait_ms / suggested)) / step_ms if step_ms else 0.0
        evidence["suggested_num_workers"] = suggested
        title = f"The step waits {share:.0%} of its time on the DataLoader (num_workers=0, from the trace)"
        advice = (
            f"The trace shows batches loaded in the training process itself ({iterator}, i.e. num_workers=0): each "
            f"step waits {wait_ms:.1f} ms for its batch before computing for {compute_ms:.1f} ms. Load in background "
            f"worker processes: with num_workers={suggested} the next batches are prepared while the step computes. "
            f"{NOT_IN_TRACE} The saving assumes the workers get cores of their own; on a machine whose cores are "
            "already busy, make each sample cheaper instead."
        )
        fix = (
            "loader = DataLoader(\n    dataset,\n    batch_size=batch_size,\n"
            f"    num_workers={suggested},\n    persistent_workers=True,\n    pin_memory=torch.cuda.is_available(),\n)"
        )
    else:
        saving = share
        title = f"The step waits {share:.0%} of its time on a multi-process DataLoader (from the trace)"
        advice = (
            f"The step waits {wait_ms:.1f} ms per step for batches from DataLoader workers ({iterator}): they do not "
            f"keep up with a {compute_ms:.1f} ms step. {NOT_IN_TRACE} Nor does it record num_workers. If cores are "
            "free, raise num_workers (and prefetch_factor when the workers wait on storage); if the workers already "
            "fill the cores, make each sample cheaper (decode once and cache, lighter transforms). The saving is the "
            "whole wait: an upper bound."
        )
        fix = (
            "loader = DataLoader(\n    dataset,\n    batch_size=batch_size,\n"
            "    num_workers=min(8, os.cpu_count()),  # more than now, while cores are free\n"
            "    persistent_workers=True,\n    prefetch_factor=4,\n)"
        )
    if saving < min_saving:
        return None
    return rule.finding(title=title, evidence=evidence, saving=saving, advice=advice, fix=fix)
