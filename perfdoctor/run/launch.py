"""Multi-process jobs through torch.distributed.run (torchrun), not a launcher of our own.

`perfdoctor run --nproc-per-node N [torchrun options] SCRIPT ARGS` runs

    python -m torch.distributed.run --nproc-per-node N ... -m perfdoctor run --out RUN SCRIPT ARGS

so that every rank is a supervising `perfdoctor run` (its script in a child process of its own,
streaming rank-suffixed raw data and leaving its summary in the one run directory); this process
then merges them into the job's report and exits with torchrun's status. A job the user launches
with torchrun itself (`torchrun ... -m perfdoctor run --out RUN SCRIPT`) ends the same way: rank 0
waits for the others' summaries and merges.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..stream.rundir import RunDir

LAUNCHED_ENV = "PERFDOCTOR_LAUNCHED"  # set for the ranks of `perfdoctor run --nproc-per-node`
MERGE_WAIT_ENV = "PERFDOCTOR_MERGE_WAIT_S"
DEFAULT_MERGE_WAIT_S = 60.0

# perfdoctor's `run` options passed through to torchrun, by their torchrun spelling.
TORCHRUN_OPTIONS = (
    ("--nproc-per-node", "nproc_per_node"),
    ("--nnodes", "nnodes"),
    ("--node-rank", "node_rank"),
    ("--rdzv-backend", "rdzv_backend"),
    ("--rdzv-endpoint", "rdzv_endpoint"),
    ("--rdzv-id", "rdzv_id"),
    ("--master-addr", "master_addr"),
    ("--master-port", "master_port"),
    ("--max-restarts", "max_restarts"),
)


@dataclass
class LaunchResult:
    exit_code: int
    interrupted: bool


def torchrun_command(torchrun_args: list[str], rank_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_args, "-m", "perfdoctor", "run", *rank_args]


def launch(torchrun_args: list[str], rank_args: list[str], tick: Callable[[], None] | None = None) -> LaunchResult:
    """Run torchrun to its end. A Ctrl-C at the terminal reaches torchrun and the ranks through
    the process group; a signal sent to this process alone is passed on to torchrun, which winds
    the ranks down (each rank's perfdoctor still writes what its script measured)."""
    env = {**os.environ, LAUNCHED_ENV: "1"}
    received: list[int] = []

    def note(signum: int, frame: Any) -> None:
        received.append(signum)

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, note)
        except (ValueError, OSError):
            pass
    interrupted = False
    try:
        process = subprocess.Popen(torchrun_command(torchrun_args, rank_args), env=env)
        while True:
            try:
                return LaunchResult(process.wait(timeout=0.2), interrupted)
            except subprocess.TimeoutExpired:
                pass
            if tick is not None:
                tick()
            while received:
                number = received.pop(0)
                interrupted = True
                if number != signal.SIGINT or not _terminal_sent_it():
                    try:
                        process.send_signal(number)
                    except OSError:
                        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _terminal_sent_it() -> bool:
    """Whether this process is in the terminal's foreground group (then a Ctrl-C reached torchrun too)."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            if stream is not None and stream.isatty() and os.tcgetpgrp(stream.fileno()) == os.getpgrp():
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def launched_by_perfdoctor() -> bool:
    return os.environ.get(LAUNCHED_ENV) == "1"


def wait_for_ranks(rundir: RunDir, world_size: int, timeout_s: float | None = None) -> list[int]:
    """Rank 0 of a user-launched job: wait (bounded) until every rank has left its summary."""
    timeout_s = float(os.environ.get(MERGE_WAIT_ENV, DEFAULT_MERGE_WAIT_S)) if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while True:
        present = [rank for rank in rundir.ranks("summary") if rank is not None]
        if len(present) >= world_size or time.monotonic() >= deadline:
            return present
        time.sleep(0.2)


def distributed_run_dir(stem: str) -> Path | None:
    """A run directory every rank on this machine agrees on without talking: named after the
    torchrun agent (the ranks' parent process) and when it started."""
    try:
        import psutil

        agent = psutil.Process(os.getppid())
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(agent.create_time()))
        return Path("perfdoctor-runs") / f"{stem}-{stamp}-{agent.pid}"
    except Exception:
        return None
