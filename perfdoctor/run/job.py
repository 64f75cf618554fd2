"""One `perfdoctor run`: the run directory made ready (locked, an earlier run's files cleared),
the script supervised, and the report written from what it streamed. Three shapes: a single
process, one rank of a torchrun job, and the launcher of a job (`--nproc-per-node`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..collect.collectors.base import RunOptions
from ..collect.session import DistributedIdentity, start_record
from ..config import Config
from ..errors import PerfdoctorError
from ..stream.lock import RunLock
from ..stream.rundir import RunDir
from ..terminal import printable
from .live import LiveView
from .outcome import STATUS_COMPLETED, STATUS_INTERRUPTED, Outcome
from .supervisor import ChildSpec, SignalInbox, Supervisor
from .target import Target


@dataclass
class JobOptions:
    out: Path | None
    options: RunOptions
    quiet: bool
    config: Config
    inbox: SignalInbox | None = None  # installed when `run` started


def prepare_run_dir(root: Path, rank: int | None = None, launched: bool = False) -> tuple[RunDir, RunLock]:
    """Lock the directory (exit 2, naming the holder, if another run writes there), then clear
    what an earlier run left. The one place a previous run is cleared, for `run` and in-process runs."""
    rundir = RunDir(root)
    try:
        lock = RunLock(root, rank)
        if rank is None:
            lock.acquire()
        else:
            lock.acquire(shared_with_ranks=not launched, own_rank_only=launched)
        try:
            if not launched:
                rundir.clear_previous(rank)
            rundir.create()
        except BaseException:
            lock.release()
            raise
    except OSError as error:
        raise PerfdoctorError(f"cannot use {root} as the run directory: {error.strerror or error}")
    return rundir, lock


def say(text: str) -> None:
    """One line on stderr; the run directory's name and error messages in it are escaped."""
    try:
        print(printable(text), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def supervise(target: Target, job: JobOptions, rundir: RunDir, identity: DistributedIdentity, show: bool) -> Outcome:
    rank = identity.rank
    folder = rundir.tb / job.options.run_name
    live = LiveView(
        rundir, rank, folder if rank is None else folder / f"rank{rank}", job.options.max_steps, quiet=job.quiet or not show,
    )
    spec = ChildSpec(
        target={"script": target.script, "module": target.module, "args": list(target.args)},
        options=job.options.to_json(), run_dir=rundir.root, rank=rank,
        start=start_record(target.describe(), job.options, identity)["start"],
    )
    return Supervisor(spec, live, job.inbox).run()


def run_single(target: Target, job: JobOptions, out: Path) -> int:
    from ..pipeline import finish_run

    rundir, lock = prepare_run_dir(out)
    with lock:
        if not job.quiet:
            say(f"perfdoctor: run directory {rundir.root}")
        outcome = supervise(target, job, rundir, DistributedIdentity(), show=True)
        finish_run(rundir, job.config, outcome, quiet=job.quiet)
    return outcome.exit_code


def run_rank(target: Target, job: JobOptions, out: Path, identity: DistributedIdentity, launched: bool) -> int:
    """One rank of a torchrun job: its own files, its summary; rank 0 merges unless we launched it."""
    from ..pipeline import finish_run
    from .launch import wait_for_ranks

    rank = identity.rank
    rundir, lock = prepare_run_dir(out, rank, launched)
    with lock:
        if rank == 0 and not job.quiet and not launched:
            say(f"perfdoctor: run directory {rundir.root}")
        outcome = supervise(target, job, rundir, identity, show=rank == 0 and not launched)
        summarise_rank(rundir, rank)
        if rank == 0 and not launched:
            wait_for_ranks(rundir, identity.world_size)
            finish_run(rundir, job.config, outcome, quiet=job.quiet)
    return outcome.exit_code


def run_launcher(target: Target, job: JobOptions, out: Path, torchrun_args: list[str], rank_args: list[str]) -> int:
    from ..pipeline import finish_run
    from .launch import launch

    rundir, lock = prepare_run_dir(out)
    with lock:
        if not job.quiet:
            say(f"perfdoctor: run directory {rundir.root}")
        live = LiveView(rundir, 0, None, job.options.max_steps, quiet=job.quiet)  # rank 0's progress
        live.open()
        try:
            result = launch(torchrun_args, rank_args, tick=live.tick)
        finally:
            live.close()
        if rundir.ranks("run"):
            status = STATUS_INTERRUPTED if result.interrupted else STATUS_COMPLETED
            finish_run(rundir, job.config, Outcome(result.exit_code, status), quiet=job.quiet)
        else:
            say(f"perfdoctor: no rank left measurements in {rundir.root} (torchrun exit status {result.exit_code})")
    return result.exit_code


def summarise_rank(rundir: RunDir, rank: int | None) -> None:
    from ..analysis.load import write_rank_summary

    try:
        write_rank_summary(rundir, rank)
    except Exception as error:  # the merge can still summarise this rank from its streams
        say(f"perfdoctor: rank {rank}: summary not written ({type(error).__name__}: {error})")


def describe_options(options: RunOptions) -> dict[str, Any]:
    return options.to_json()
