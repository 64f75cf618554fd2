"""The step-time regression verdict, on step times recorded from real runs of the reference
workload (tests/gate/data, see record_samples.py there) and on simulated ones.

Recorded pairs and what the verdict must be, with a 10% limit:
- two clean runs of the same code: ok;
- a clean run against the same code made 15% slower (a planted sleep, or the samples scaled): regression;
- two runs of the same code beside a neighbour training job: never regression (ok or inconclusive).
"""

import itertools
import random
from pathlib import Path

import pytest

from gate_helpers import loaded, recorded_series, report_with_series
from perfdoctor.gate.regression import (
    MIN_STEPS,
    block_length,
    compare_reports,
    compare_step_times,
    step_sample,
)

CLEAN = ("clean_a", "clean_b", "clean_c")
SLOW = ("slow15_a", "slow15_b")
NOISY = ("noisy_a", "noisy_b", "noisy_c")


def steps(name, scale=1.0):
    return step_sample(loaded(report_with_series(recorded_series(name), scale), Path(f"{name}/report.json"))).durations_ms


def test_step_zero_profiled_and_missing_steps_are_left_out():
    report = report_with_series({
        "stride": 2, "step": [0, 2, 4, 6, 8, 10], "duration_ms": [100.0, 10.0, None, 12.0, 50.0, 11.0],
        "profiled": [False, False, False, False, True, False],
    })
    sample = step_sample(loaded(report, Path("r/report.json")))
    assert sample.durations_ms == [10.0, 12.0, 11.0]
    assert (sample.stride, sample.left_out) == (2, 3)


def test_recorded_fixtures_are_real_runs_of_sixty_steps():
    for name in CLEAN + SLOW + NOISY:
        series = recorded_series(name)
        assert len(series["duration_ms"]) == 60 and series["stride"] == 1
        assert 40 <= len(steps(name)) <= 59  # step 0 and the profiled window left out


@pytest.mark.parametrize("baseline, candidate", list(itertools.permutations(CLEAN, 2)))
def test_two_clean_runs_of_the_same_code_are_ok(baseline, candidate):
    result = compare_step_times(steps(baseline), steps(candidate), 0.10)
    assert result.verdict == "ok", result.line()
    assert result.low <= 1.0 + 0.05 and result.high <= 1.10


@pytest.mark.parametrize("baseline, candidate", list(itertools.product(CLEAN, SLOW)))
def test_a_planted_fifteen_percent_slowdown_is_a_regression(baseline, candidate):
    result = compare_step_times(steps(baseline), steps(candidate), 0.10)
    assert result.verdict == "regression", result.line()
    assert result.low > 1.10 and 1.10 < result.ratio < 1.25


@pytest.mark.parametrize("name", CLEAN)
def test_a_run_against_itself_scaled(name):
    """The ratio is exactly the scale; the interval comes from the run's own step-to-step noise."""
    verdicts = {scale: compare_step_times(steps(name), steps(name, scale=scale), 0.10) for scale in (1.0, 1.05, 1.10, 1.15)}
    assert verdicts[1.15].verdict == "regression" and verdicts[1.15].ratio == pytest.approx(1.15, abs=1e-3)
    assert verdicts[1.10].verdict == "inconclusive"  # right at the limit: the interval straddles it
    assert verdicts[1.05].verdict == "ok" and verdicts[1.0].verdict == "ok"


@pytest.mark.parametrize("baseline, candidate", list(itertools.permutations(NOISY, 2)))
def test_noisy_runs_of_the_same_code_are_never_a_regression(baseline, candidate):
    result = compare_step_times(steps(baseline), steps(candidate), 0.10)
    assert result.verdict != "regression", result.line()


def test_a_neighbour_job_slowing_the_candidate_is_not_called_ok():
    """The neighbour slows the candidate for real (5-14% here): the verdict must not hide it."""
    for clean, noisy in itertools.product(CLEAN, NOISY):
        assert compare_step_times(steps(clean), steps(noisy), 0.10).verdict == "inconclusive"


@pytest.mark.parametrize("baseline", NOISY + CLEAN)
def test_the_planted_slowdown_under_load_is_still_found(baseline):
    result = compare_step_times(steps(baseline), steps("noisy_slow15_a"), 0.10)
    assert result.verdict == "regression" and result.low > 1.2


def test_the_verdict_is_deterministic_and_reports_counts():
    first = compare_step_times(steps("clean_a"), steps("slow15_a"), 0.10)
    again = compare_step_times(steps("clean_a"), steps("slow15_a"), 0.10)
    assert first == again
    assert (first.baseline_steps, first.candidate_steps) == (len(steps("clean_a")), len(steps("slow15_a")))
    line = first.line()
    assert "95% CI" in line and f"{first.candidate_steps} candidate steps, {first.baseline_steps} baseline steps" in line


def test_too_few_steps_are_inconclusive_with_a_clear_reason():
    result = compare_step_times([10.0] * (MIN_STEPS - 1), [20.0] * 50, 0.10)
    assert result.verdict == "inconclusive" and result.ratio is None
    assert "too few steady-state steps" in result.line() and "4 baseline steps" in result.line()
    assert compare_step_times([10.0] * MIN_STEPS, [20.0] * MIN_STEPS, 0.10).verdict == "regression"


def test_block_length_follows_the_dependence_between_steps():
    rng = random.Random(1)
    independent = [rng.lognormvariate(3, 0.1) for _ in range(200)]
    assert block_length(independent) <= 2
    regimes = [rng.lognormvariate(3, 0.1) * (2.0 if (i // 25) % 2 else 1.0) for i in range(200)]  # load on and off, 25 steps at a time
    assert block_length(regimes) >= 10


def test_bursts_of_load_widen_the_interval_instead_of_faking_a_regression():
    """Same code, each run 1.5x slower for a random stretch of 20-40 of its 60 steps (a neighbour's
    job): which level the median lands on is luck. An ordinary bootstrap (blocks of one step)
    sometimes calls that a regression; the block bootstrap sees the stretches and says inconclusive."""
    verdicts_iid, verdicts_blocks = [], []
    for trial in range(30):
        rng = random.Random(trial)

        def run():
            length = rng.randrange(20, 41)
            start = rng.randrange(0, 61 - length)
            return [rng.lognormvariate(3, 0.05) * (1.5 if start <= i < start + length else 1.0) for i in range(60)]

        baseline, candidate = run(), run()
        verdicts_blocks.append(compare_step_times(baseline, candidate, 0.10, resamples=400).verdict)
        verdicts_iid.append(_iid_verdict(baseline, candidate))
    assert verdicts_blocks.count("regression") == 0
    assert verdicts_iid.count("regression") >= 1


def _iid_verdict(baseline, candidate):
    import perfdoctor.gate.regression as regression

    original = regression.block_length
    regression.block_length = lambda values: 1
    try:
        return compare_step_times(baseline, candidate, 0.10, resamples=400).verdict
    finally:
        regression.block_length = original


def test_simulated_independent_steps_false_alarm_and_detection_rates():
    """60 lognormal steps with 5% spread per run: no shift is never a regression, a 20% shift always is."""
    false_alarms = detections = 0
    for trial in range(20):
        rng = random.Random(100 + trial)
        baseline = [rng.lognormvariate(3, 0.05) for _ in range(60)]
        same = [rng.lognormvariate(3, 0.05) for _ in range(60)]
        slower = [1.2 * rng.lognormvariate(3, 0.05) for _ in range(60)]
        false_alarms += compare_step_times(baseline, same, 0.10, resamples=400).verdict == "regression"
        detections += compare_step_times(baseline, slower, 0.10, resamples=400).verdict == "regression"
    assert false_alarms == 0 and detections == 20


def test_reports_are_compared_through_their_series():
    baseline = loaded(report_with_series(recorded_series("clean_a")), Path("a/report.json"))
    candidate = loaded(report_with_series(recorded_series("clean_a"), 1.3), Path("b/report.json"))
    result = compare_reports(baseline, candidate, 0.10)
    assert result.verdict == "regression" and result.ratio == pytest.approx(1.3, abs=1e-3)
