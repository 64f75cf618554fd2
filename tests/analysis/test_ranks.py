import random
import time

import msgspec
import pytest

from perfdoctor.analysis.ranks import merge_ranks
from perfdoctor.model.ddp import DdpInstance, ProcessGroup, RankSummary
from perfdoctor.model.steps import PhaseValues


def summary(rank, local_ms, step_ms=100.0, exposed=5.0):
    return RankSummary(
        rank=rank, node=f"node{rank // 8}", status="completed", exit_code=0, steps=200,
        step_p50_ms=step_ms, step_mean_ms=step_ms, local_p50_ms=local_ms, backward_compute_ms=None,
        breakdown_ms=PhaseValues(dataloader=1.0, forward=30.0, backward=step_ms - local_ms, optimizer=2.0, other=local_ms - 33.0),
        comm_ms=exposed + 3.0, exposed_comm_ms=exposed, trace_comm=None,
        ddp=[DdpInstance(module="Net", find_unused_parameters=False)], data_parallel=[],
        process_group=ProcessGroup(backend="nccl", world_size=1024, rank=rank),
        synced_forwards_max=1, synced_forwards_median=1.0, unsynced_forwards_total=0, logged={},
        series_stride=1, duration_ms=[step_ms] * 200, local_ms=[local_ms] * 200,
    )


def test_merge_names_the_straggler_and_the_wait():
    merged = merge_ranks([summary(0, 40.0), summary(1, 71.0), summary(2, 41.0)], world_size=3)
    assert merged.straggler.rank == 1 and merged.straggler.slowest_step_share == 1.0
    assert merged.straggler.others_wait_ms_per_step == pytest.approx(30.5)
    assert [row.rank for row in merged.ranks] == [0, 1, 2]


def test_the_straggler_points_at_its_own_slowest_step():
    from perfdoctor.model.finding import TraceLocation

    def place(rank):
        return TraceLocation(label=f"step 7 of rank {rank}", trace=f"tb/x/rank{rank}.pt.trace.json.gz", start_ns=1, end_ns=2, step=7, rank=rank)

    summaries = [msgspec.structs.replace(summary(rank, local), slowest_step=place(rank)) for rank, local in ((0, 40.0), (1, 71.0), (2, 41.0))]
    merged = merge_ranks(summaries, world_size=3)
    assert merged.straggler.trace_step == place(1)


def test_a_rank_slowest_only_in_some_steps_is_not_consistent():
    fast, noisy = summary(0, 40.0), summary(1, 41.0)
    noisy.local_ms = [45.0 if i % 2 else 35.0 for i in range(200)]  # slowest every other step
    merged = merge_ranks([fast, noisy], world_size=2)
    assert merged.straggler.rank == 1 and 0.45 <= merged.straggler.slowest_step_share <= 0.55


def test_exposed_communication_is_the_least_waiting_rank():
    merged = merge_ranks([summary(0, 40.0, exposed=35.0), summary(1, 71.0, exposed=4.0)], world_size=2)
    assert merged.exposed_comm_ms_per_backward == 4.0 and "rank 1" in merged.comm_source


def test_merging_1024_ranks_takes_seconds_not_minutes():
    rng = random.Random(7)
    summaries = [summary(rank, 40.0 + rng.random() * 2) for rank in range(1024)]
    summaries[613].local_p50_ms = 75.0
    t0 = time.perf_counter()
    merged = merge_ranks(summaries, world_size=1024)
    elapsed = time.perf_counter() - t0
    assert merged.ranks_reported == 1024 and merged.straggler.rank == 613
    assert elapsed < 5.0, elapsed


def test_a_1024_rank_run_directory_is_read_and_merged_in_seconds(tmp_path):
    """From the files, as `perfdoctor report RUN` does: rank 0's raw data, 1,023 summaries."""
    import json
    import shutil

    from conftest import REPO
    from perfdoctor.analysis.load import load_run
    from perfdoctor.stream.rundir import RunDir

    source = REPO / "tests" / "data" / "run_reference_cnn" / "raw"
    rundir = RunDir(tmp_path / "run").create()
    for path in source.glob("*.json"):
        data = json.loads(path.read_text())
        if path.stem == "run":
            data.update(rank=0, world_size=1024, local_world_size=8)
        (rundir.raw / f"{path.stem}.rank0.json").write_text(json.dumps(data))
    shutil.copytree(source.parent / "tb", rundir.tb, dirs_exist_ok=True)
    rng = random.Random(3)
    for rank in range(1, 1024):
        rundir.write_raw("run", rank, {"rank": rank, "world_size": 1024, "status": "completed", "exit_code": 0})
        rundir.write_raw("summary", rank, msgspec.to_builtins(summary(rank, 40.0 + rng.random() * 3)))
    slow = rundir.read_raw_file("summary", 777)
    rundir.write_raw("summary", 777, {**slow, "local_p50_ms": 5000.0})  # slower than rank 0 too
    t0 = time.perf_counter()
    data = load_run(rundir.root)
    elapsed = time.perf_counter() - t0
    assert data.ddp.ranks_reported == 1024 and data.ddp.straggler.rank == 777
    assert elapsed < 10.0, elapsed
