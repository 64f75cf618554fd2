"""Shared test helpers: RunData built from chosen numbers (typed sections, the same classes the
analysis builds), and paths to shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from perfdoctor.analysis.dataloader import cores_saturated
from perfdoctor.analysis.rundata import LoaderSummary, RunData, StepSeries, StepStats, TraceSummary
from perfdoctor.model.dataloader import EpochStats
from perfdoctor.model.environment import CpuInfo, Environment, Threads
from perfdoctor.model.host import HostSummary
from perfdoctor.model.run import RunInfo
from perfdoctor.model.steps import PHASES, OtherParts, PhaseValues

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """The tests send SIGINT and SIGHUP to the jobs they start. A suite started with those
    signals ignored (nohup; `cmd &` in a script, where the shell ignores SIGINT) would pass the
    ignoring on to every process it starts, as Python does, and a script would never see them:
    give the processes the tests start the dispositions of an interactive terminal."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
SHARED_TRACES = REPO.parent / "shared" / "traces"
SAMPLE_WORKLOADS = REPO / "sample_workloads"


def make_loader(
    num_workers: int = 0,
    batches: int = 100,
    wait_total_ms: float = 100.0,
    epochs: list[EpochStats] | None = None,
    persistent: bool = False,
    cores_busy: float | None = None,
    epoch_start_wait_ms: float = 0.0,
    batch_size: int = 64,
) -> LoaderSummary:
    return LoaderSummary(
        loader_id=0,
        args={"num_workers": num_workers, "batch_size": batch_size, "persistent_workers": persistent, "pin_memory": False},
        dataset={"type": "TensorDataset", "length": batches * batch_size},
        batches=batches,
        wait_total_ms=wait_total_ms,
        epoch_start_wait_ms=epoch_start_wait_ms,
        wait_p50_ms=wait_total_ms / max(1, batches),
        wait_p95_ms=wait_total_ms / max(1, batches),
        epochs=epochs or [EpochStats(first_batch_ms=1.0, iter_ms=0.1, batches=batches, wait_ms=wait_total_ms, end_ms=0.1)],
        cores_busy_in_waits=cores_busy,
        cores_saturated=cores_saturated(cores_busy),
    )


def make_host(children_cpu: float = 0.0, system_cpu: float = 50.0, cores: int = 2) -> HostSummary:
    return HostSummary(
        samples=20, interval_s=0.5, logical_cores=cores, usable_cores=cores, process_cpu_mean=100.0,
        children_cpu_mean=children_cpu, system_cpu_mean=system_cpu, system_cpu_p90=system_cpu,
        saturated_share=0.0, rss_peak_bytes=2**28, children_rss_peak_bytes=0, threads_max=4,
        involuntary_switches_per_s=10.0,
    )


def make_environment(**blocks: Any) -> Environment:
    """A two-core machine running two intra-op threads; `blocks` replace or add blocks."""
    environment = Environment(cpu=CpuInfo(usable_cores=2, logical_cores=2), threads=Threads(intra_op=2, inter_op=2), env={})
    for name, block in blocks.items():
        setattr(environment, name, block)
    return environment


def make_run(
    breakdown: dict[str, float] | None = None,
    step_ms: float = 20.0,
    steps: int = 100,
    loaders: list[LoaderSummary] | None = None,
    host: HostSummary | None = None,
    environment: Environment | None = None,
    trace: TraceSummary | None = None,
    other_parts: dict[str, float] | None = None,
) -> RunData:
    """A run whose steady steps all last `step_ms`, split as `breakdown` says."""
    breakdown = breakdown or {"dataloader": 0.02, "forward": 0.40, "backward": 0.50, "optimizer": 0.05, "other": 0.03}
    assert abs(sum(breakdown.values()) - 1) < 1e-9 and set(breakdown) == set(PHASES)
    series = StepSeries(mode="optimizer")
    series.duration_ms = [step_ms] * steps
    series.phases_ms = {phase: [share * step_ms] * steps for phase, share in breakdown.items()}
    parts = other_parts or {"before_forward": 0.0, "loss": 0.0}
    series.other_parts_ms = {part: [share * step_ms] * steps for part, share in parts.items()}
    series.batches = [1] * steps
    series.profiled = [False] * steps
    stats = StepStats(
        count=steps, profiled=0, measured=steps - 1, mean_ms=step_ms, p50_ms=step_ms, p95_ms=step_ms,
        min_ms=step_ms, max_ms=step_ms, breakdown=PhaseValues.from_dict(breakdown),
        breakdown_ms=PhaseValues.from_dict({phase: share * step_ms for phase, share in breakdown.items()}),
        other_parts=OtherParts(**parts),
    )
    return RunData(
        run=RunInfo(script="train.py"), environment=environment or make_environment(), steps=stats, series=series,
        dataloaders=loaders if loaders is not None else [make_loader(wait_total_ms=breakdown["dataloader"] * step_ms * steps)],
        host=host or make_host(), trace=trace,
    )


def run_perfdoctor(*args: str, cwd: Path | None = None, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "perfdoctor", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


@pytest.fixture
def shared_traces() -> Path:
    if not SHARED_TRACES.is_dir():
        pytest.skip("../shared/traces is not beside the checkout")
    return SHARED_TRACES
