"""Training in processes the script started itself (not through torchrun): seen, counted, not
measured step by step. Said once, with what was seen, and with the cost that is plain from it:
more intra-op threads across those processes than there are cores."""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.rundata import RunData
from ..model.numbers import rounded
from .base import Finding, Rule
from .dataloader import usable_cores

# Without a measurement, the share of compute time lost to oversubscription is assumed as small as
# cpu-thread-oversubscription assumes when its probe could not run.
ASSUMED_PENALTY = 0.25


class TrainingInChildProcesses(Rule):
    id = "training-in-child-processes"
    area = "cpu"
    docs = "https://pytorch.org/docs/stable/notes/multiprocessing.html"

    @dataclass(frozen=True)
    class Thresholds:
        max_threads_per_core: float = 1.0  # intra-op threads x training processes per usable core

    def check(self, data: RunData, limits: Thresholds) -> Finding | None:
        children = data.child_processes
        if not children:
            return None
        cores = usable_cores(data)
        threads = max((c.intra_op_threads or 1) for c in children)
        processes = len(children)
        total = threads * processes
        compute = sum(sum(c.phase_ms.get(p, 0.0) for p in ("forward", "backward", "optimizer")) for c in children)
        step_total = sum(c.total_step_ms for c in children)
        compute_share = compute / step_total if step_total > 0 else 0.0
        oversubscribed = total > limits.max_threads_per_core * cores
        evidence = {
            "processes": processes,
            "intra_op_threads": threads,
            "usable_cores": cores,
            "threads_per_core": rounded(total / cores, 2),
            "start_method": children[0].start_method,
            "target": children[0].target,
            "steps_per_process": [c.steps for c in children],
            "median_step_ms_per_process": [rounded(c.median_step_ms, 3) for c in children],
            "compute_share": rounded(compute_share, 4),
        }
        seen = f"{processes} process(es) x {threads} intra-op thread(s) on {cores} usable core(s)"
        per_process = max(1, cores // processes)
        fix = (
            f"import torch\n\ndef train(rank, *args):\n    torch.set_num_threads({per_process})  # first thing in each "
            "training process\n    ..."
        )
        if not oversubscribed:
            return self.finding(
                title=f"Training ran in {processes} process(es) the script started: counted, not measured step by step",
                evidence=evidence,
                saving=0.0,
                advice=(
                    f"{seen}. perfdoctor counted and timed each process's steps, but measures in detail only the "
                    "process it runs (and torchrun's ranks): run one training process under perfdoctor, or launch "
                    "the processes with `perfdoctor run --nproc-per-node N` when they are a torch.distributed job."
                ),
                fix="perfdoctor run --nproc-per-node 2 train.py   # when the processes form a torch.distributed job",
            )
        return self.finding(
            title=f"Training ran in {seen}: the threads compete for the cores",
            evidence=evidence,
            saving=compute_share * ASSUMED_PENALTY,
            confidence="low",
            confidence_reason=(
                f"the saving is assumed ({ASSUMED_PENALTY:.0%} of the compute time), not measured: "
                "those processes were counted, not profiled"
            ),
            advice=(
                f"The script trains in {processes} processes it starts itself, each with {threads} intra-op threads, "
                f"on {cores} usable cores: {total} threads compete at every parallel region. The saving is an "
                f"estimate ({ASSUMED_PENALTY:.0%} of the compute time, not measured here: these processes were counted, "
                f"not profiled). Give each process at most {per_process} thread(s): torch.set_num_threads({per_process}) "
                "at the start of the training function (each process starts with torch's default)."
            ),
            fix=fix,
        )
