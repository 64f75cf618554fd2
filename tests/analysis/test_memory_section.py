"""The memory section from the memory stream's raw shape: trends per series, the time to the
limit, the job's own length, an out-of-memory end (raised or killed), and each rank's memory."""

from __future__ import annotations

import pytest

from conftest import make_loader, make_run
from perfdoctor.analysis.memory import expected_length, first_steady_step, killed_oom, memory_section, rank_memory
from perfdoctor.model.run import RunInfo

MIB, GIB = 2**20, 2**30


def raw_memory(steps=300, rss=lambda s: 500 * MIB, workers=None, cuda=None, step_s=0.1, limit=16 * GIB):
    samples = {
        "step": list(range(1, steps + 1)),
        "t_ns": [int(s * step_s * 1e9) for s in range(1, steps + 1)],
        "rss": [int(rss(s)) for s in range(1, steps + 1)],
        "children_rss": [int(workers(s)) if workers else 0 for s in range(1, steps + 1)],
        "children": [2 if workers else 0] * steps,
    }
    out = {"meta": {"limit_bytes": limit, "limit_source": "cgroup"}, "samples": samples, "cuda": None, "oom": None, "cost": {"ns": 2_000_000, "samples": steps}}
    if cuda:
        out["cuda"] = {"device": 0, "name": "Fake H100", "total_bytes": 80 * GIB, "limit_bytes": 80 * GIB, "peaks_per_window": True,
                       "alloc_conf": None}
        for name, column in cuda.items():
            samples[name] = [int(column(s)) for s in range(1, steps + 1)]
    return out


def section(raw, used=4 * GIB, argv=(), loaders=None, run_raw=None, steps=300):
    data = make_run(steps=steps, loaders=loaders)
    data.run = RunInfo(script="train.py", argv=list(argv), duration_s=steps * 0.1)
    host = {"samples": {"memory_used_bytes": [used]}, "memory_limit_bytes": 16 * GIB, "memory_limit_source": "cgroup"}
    return memory_section(raw, host, data.run, run_raw or {}, data.series, data.dataloaders)


def test_a_leak_gets_a_rate_and_a_time_to_the_limit():
    memory = section(raw_memory(rss=lambda s: 500 * MIB + 3 * MIB * s))
    trend = memory.trend("host_process")
    assert trend is not None and trend.growing
    assert abs(trend.projected_bytes_per_step - 3 * MIB) < 1024
    assert trend.headroom_bytes == 12 * GIB  # the limit less what was in use (the host sampler's working set)
    assert trend.seconds_to_limit == pytest.approx(12 * GIB / (3 * MIB) * 0.1, rel=0.01)
    assert trend.bytes_per_hour == pytest.approx(3 * MIB * 36000, rel=0.01)
    assert trend.limit_at_step == pytest.approx(300 + 12 * 1024 / 3, abs=2)
    assert memory.seconds_per_step == pytest.approx(0.1) and memory.sample_cost_share == pytest.approx(2e-3 / 30, abs=1e-6)
    assert memory.host_limit_source == "cgroup" and memory.process_rss_peak_bytes == 500 * MIB + 900 * MIB
    assert memory.workers_rss_peak_bytes is None  # no workers ran
    assert len(memory.series.step) == 300 and memory.series.process_rss_mb[0] == pytest.approx(503, abs=0.01)


def test_a_flat_run_has_trends_but_nothing_growing():
    memory = section(raw_memory(rss=lambda s: 500 * MIB + (s % 7) * MIB))
    assert memory.growing() == [] and memory.trend("host_process").seconds_to_limit is None


def test_workers_and_gpu_series_are_fitted_too():
    cuda = {"cuda_allocated": lambda s: 10 * GIB + 2 * MIB * s, "cuda_reserved": lambda s: 12 * GIB + 2 * MIB * s,
            "cuda_peak_allocated": lambda s: 11 * GIB + 2 * MIB * s, "cuda_alloc_retries": lambda s: 0,
            "cuda_inactive_split": lambda s: 100 * MIB, "cuda_peak_reserved": lambda s: 12 * GIB + 2 * MIB * s}
    memory = section(raw_memory(workers=lambda s: 800 * MIB + MIB * s, cuda=cuda))
    assert {t.subject for t in memory.growing()} == {"host_workers", "gpu_allocated", "gpu_reserved"}
    gpu = memory.gpu
    assert gpu is not None and gpu.total_bytes == 80 * GIB and gpu.peak_allocated_bytes == 11 * GIB + 600 * MIB
    assert gpu.reserved_unused_bytes == 2 * GIB and gpu.inactive_split_peak_bytes == 100 * MIB
    allocated = memory.trend("gpu_allocated")
    assert allocated.headroom_bytes == 80 * GIB - (12 * GIB + 600 * MIB)  # the device less what is reserved
    assert len(memory.series.gpu_peak_allocated_mb) == 300


def test_an_early_profiled_window_is_left_out():
    data = make_run(steps=100)
    data.series.profiled = [6 <= i <= 10 for i in range(100)]
    assert first_steady_step(data.series) == 12
    data.series.profiled = [60 <= i <= 64 for i in range(100)]
    assert first_steady_step(data.series) == 2


@pytest.mark.parametrize("argv, steps, source", [
    (["--max-steps", "5000"], 5000, "--max-steps 5000"),
    (["--lr", "3", "--iters=700"], 700, "--iters 700"),
    (["--epochs", "3"], 3 * 100, "--epochs 3 x 100 batches per epoch"),
    (["--epochs", "three"], None, None),
    ([], None, None),
])
def test_the_jobs_own_length(argv, steps, source):
    loader = make_loader(batches=100, batch_size=64)  # 6400 samples: 100 batches per epoch
    data = make_run(loaders=[loader])
    found = expected_length(RunInfo(argv=argv), [loader], data.series)
    assert (found.steps if found else None) == steps
    if source:
        assert source in found.source


def test_accumulation_divides_batches_into_steps():
    loader = make_loader(batches=100, batch_size=64)
    data = make_run(loaders=[loader])
    data.series.batches = [4] * 100
    assert expected_length(RunInfo(argv=["--epochs", "2"]), [loader], data.series).steps == 50


def test_a_raised_oom_and_a_kill():
    raw = raw_memory(steps=50)
    raw["oom"] = {"kind": "cuda", "step": 41, "phase": "backward", "module_type": None, "source": "train.py:40 in main",
                  "error_type": "OutOfMemoryError", "message": "CUDA out of memory.",
                  "cuda": {"allocated_bytes": GIB, "reserved_bytes": 70 * GIB, "peak_allocated_bytes": 78 * GIB,
                           "total_bytes": 80 * GIB, "summary": "summary", "alloc_retries": 3}}
    oom = section(raw, steps=50).oom
    assert oom is not None and oom.kind == "cuda" and oom.step == 41 and oom.phase == "backward"
    assert oom.peak_allocated_bytes == 78 * GIB and oom.summary == "summary" and oom.alloc_retries == 3
    run_raw = {"status": "killed", "error": {"type": "SIGKILL", "message": "..."},
               "oom": {"used_bytes": 15 * GIB, "limit_bytes": 16 * GIB, "source": "cgroup", "oom_kills": 1}}
    killed = section(raw_memory(steps=50), run_raw=run_raw, steps=50).oom
    assert killed is not None and killed.kind == "host_killed" and killed.oom_kills == 1 and killed.step == 50
    assert killed_oom({"status": "completed", "oom": {}}, 5) is None
    assert section({"meta": {}, "samples": {}}, run_raw=run_raw).oom.kind == "host_killed"  # no samples, still the kill


def test_nothing_sampled_is_no_section():
    assert section({"meta": {}, "samples": {}}) is None


def test_rank_memory():
    memory = section(raw_memory(rss=lambda s: 500 * MIB + 3 * MIB * s))
    row = rank_memory(memory, 3)
    assert row.rank == 3 and row.host_rss_peak_bytes == memory.process_rss_peak_bytes
    assert row.host_bytes_per_step == pytest.approx(3 * MIB, rel=0.01) and row.gpu_peak_reserved_bytes is None
    assert rank_memory(None, 0) is None


def test_in_use_is_read_at_the_last_step_end_not_after_the_script_returned():
    from perfdoctor.analysis.memory import in_use_at

    host = {"samples": {"t_ns": [1, 5, 9, 20], "memory_used_bytes": [1, 2, None, 3]}}
    assert in_use_at(host, 10) == 2 and in_use_at(host, 100) == 3 and in_use_at(host, 0) == 1
    assert in_use_at({"samples": {"memory_used_bytes": [7]}}, 5) == 7 and in_use_at({}, 5) is None
