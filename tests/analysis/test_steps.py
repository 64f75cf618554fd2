import pytest

from perfdoctor.analysis.steps import fastest_steps, series_from_raw, step_stats

MS = 1_000_000


def raw_steps(durations_ms, dataloader_ms=None, overhead_ms=None, forward_ms=None, before_forward_ms=None):
    n = len(durations_ms)
    starts, ends, t = [], [], 0
    for d in durations_ms:
        starts.append(t)
        t += int(d * MS)
        ends.append(t)
    zeros = [0] * n
    return {
        "mode": "optimizer",
        "start_ns": starts,
        "end_ns": ends,
        "dataloader_ns": [int(v * MS) for v in dataloader_ms] if dataloader_ms else zeros,
        "forward_ns": [int(v * MS) for v in forward_ms] if forward_ms else zeros,
        "backward_ns": zeros,
        "optimizer_ns": zeros,
        "overhead_ns": [int(v * MS) for v in overhead_ms] if overhead_ms else zeros,
        "before_forward_ns": [int(v * MS) for v in before_forward_ms] if before_forward_ms else zeros,
        "loss_ns": zeros,
        "batches": [1] * n,
    }


def test_overhead_is_subtracted_and_other_is_the_rest():
    series = series_from_raw(raw_steps([10, 50], dataloader_ms=[2, 2], overhead_ms=[0, 40], forward_ms=[5, 5]), [])
    assert series.duration_ms == [10, 10]
    assert series.phases_ms["other"] == [3, 3]


def test_phases_never_exceed_the_step():
    series = series_from_raw(raw_steps([10], dataloader_ms=[8], forward_ms=[8], before_forward_ms=[5]), [])
    assert series.phases_ms["dataloader"][0] + series.phases_ms["forward"][0] == pytest.approx(10)
    assert series.phases_ms["other"] == [0]
    assert series.other_parts_ms["before_forward"] == [0]  # a part of "other" is capped by it


def test_statistics_leave_out_warmup_and_profiled_steps():
    durations = [500] + [10] * 5 + [30] * 3 + [10] * 5
    series = series_from_raw(raw_steps(durations, dataloader_ms=[1] * len(durations)), profiled_steps=[6, 7, 8])
    stats = step_stats(series)
    assert stats.count == 14 and stats.profiled == 3 and stats.measured == 10
    assert stats.p50_ms == 10 and stats.max_ms == 10
    assert sum(share for _, share in stats.breakdown.items()) == pytest.approx(1)
    assert stats.breakdown.dataloader == pytest.approx(0.1)
    assert "profiled" in stats.excluded


def test_few_steps_use_them_all():
    stats = step_stats(series_from_raw(raw_steps([40, 20]), []))
    assert stats.measured == 2 and stats.mean_ms == 30


def test_no_steps_gives_no_statistics():
    stats = step_stats(series_from_raw({"start_ns": [], "end_ns": []}, []))
    assert stats.count == 0 and stats.mean_ms is None and stats.breakdown is None


def test_fastest_steps_are_the_quickest_tenth_of_the_steady_ones():
    # the warm-up step (1 ms, the quickest) and the profiled ones are no candidates
    durations = [1] + [50 + i for i in range(19)] + [5, 6] + [40 + i for i in range(9)]
    series = series_from_raw(raw_steps(durations), profiled_steps=[20])
    assert fastest_steps(series) == [21, 22, 23]  # 28 steady steps: the 3 quickest (6, 40, 41 ms)
    assert fastest_steps(series_from_raw(raw_steps([10] * 10), [])) == []  # fewer than 10 steady steps
