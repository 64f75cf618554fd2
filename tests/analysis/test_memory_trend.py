"""The trend that decides memory-growth: a steady leak is growth; warm-up, a plateau after one
jump, a sawtooth at epoch boundaries and noise are not."""

from __future__ import annotations

import numpy as np
import pytest

from perfdoctor.analysis.trend import TrendLimits, binned, drawdown, fit_trend, theil_sen

MIB = 2**20
STEPS = list(range(2, 402))


def noisy(values, scale=1.5 * MIB, seed=0):
    rng = np.random.default_rng(seed)
    return [float(v + rng.normal(0, scale)) for v in values]


def test_a_steady_leak_is_growth_with_its_rate():
    values = noisy([400 * MIB + 3 * MIB * s for s in STEPS])
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and trend.growing, trend
    assert trend.fit.low <= 3 * MIB <= trend.fit.high
    assert abs(trend.rate - 3 * MIB) < 0.05 * MIB
    assert trend.from_step >= 2 + 0.2 * 399 - 1  # warm-up left out
    assert abs(trend.growth - 3 * MIB * (trend.to_step - trend.from_step)) < 20 * MIB


def test_outliers_do_not_move_the_slope():
    values = [400 * MIB + 3 * MIB * s for s in STEPS]
    for i in range(0, len(values), 9):  # every 9th sample 200 MiB off (a transient buffer)
        values[i] += 200 * MIB
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and trend.growing and abs(trend.fit.slope - 3 * MIB) < 0.1 * MIB


def test_warm_up_then_flat_is_not_growth():
    values = noisy([300 * MIB + min(s, 60) * 2 * MIB for s in STEPS])  # rises for 60 steps, then flat
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and not trend.growing


def test_a_long_warm_up_reaching_into_the_window_is_not_growth():
    # A rise over the first 45% of the run: the fitted window starts inside it.
    values = noisy([300 * MIB + min(s, 180) * MIB for s in STEPS])
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and not trend.growing
    assert "third" in trend.reason or "interval" in trend.reason or "noise" in trend.reason


@pytest.mark.parametrize("at", [150, 250, 350])
def test_one_jump_then_a_plateau_is_not_growth(at):
    values = noisy([500 * MIB + (512 * MIB if s >= at else 0) for s in STEPS])  # the allocator reserves one more block
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and not trend.growing, trend.reason


# A short job on a fast machine, sampled by time (a CI-clone run of sample_workloads/memory_leak.py
# --steps 200, 4.9 ms a step): too few samples for four in each third of the window.
SPARSE_STEPS = [1, 7, 14, 32, 51, 70, 92, 113, 133, 152, 165, 176, 186, 191, 196]
SPARSE_LEAK_MB = [322.53, 362.96, 429.18, 480.27, 555.41, 627.32, 702.34, 771.34, 846.36, 915.36, 969.37, 999.37, 1029.37, 1047.37, 1071.37]


def test_a_sparsely_sampled_leak_is_growth_judged_by_halves():
    trend = fit_trend(SPARSE_STEPS, [v * MIB for v in SPARSE_LEAK_MB], first_step=2)
    assert trend is not None and trend.growing, trend.reason
    assert 3.2 * MIB < trend.rate < 4.0 * MIB


@pytest.mark.parametrize("at", [80, 120, 170])
def test_a_sparsely_sampled_jump_is_still_not_growth(at):
    values = noisy([500 * MIB + (512 * MIB if s >= at else 0) for s in SPARSE_STEPS])
    trend = fit_trend(SPARSE_STEPS, values, first_step=2)
    assert trend is not None and not trend.growing, trend.reason


def test_a_creep_of_a_few_pages_is_not_growth():
    # A CI-clone run of the plateau workload (tests/test_memory_acceptance.py) on a busy machine:
    # flat at 392.57 MB but for 160 KiB of pages gained over 180 steps, steadily and with no noise.
    values = [392.57 * 1e6 + 4096 * (s // 5) for s in STEPS[:240]]
    trend = fit_trend(STEPS[:240], values, first_step=2)
    assert trend is not None and not trend.growing and "too small to matter" in trend.reason


def test_a_sawtooth_at_epoch_boundaries_is_not_growth():
    # Workers' memory grows within each epoch and is released when they restart (every 100 steps).
    values = noisy([200 * MIB + (s % 100) * 3 * MIB for s in STEPS])
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and not trend.growing


def test_a_sawtooth_of_three_epochs_is_not_growth_either():
    values = noisy([200 * MIB + (s % 133) * 3 * MIB for s in STEPS])
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and not trend.growing


def test_noise_alone_is_not_growth():
    trend = fit_trend(STEPS, noisy([800 * MIB] * len(STEPS), scale=20 * MIB), first_step=2)
    assert trend is not None and not trend.growing


def test_growth_that_slows_projects_with_the_late_rate():
    values = [300 * MIB + 60 * MIB * np.sqrt(s) for s in STEPS]
    trend = fit_trend(STEPS, values, first_step=2)
    assert trend is not None and trend.growing
    assert trend.late_slope is not None and trend.rate == trend.late_slope < trend.fit.slope


def test_too_short_to_tell():
    steps = list(range(2, 14))
    trend = fit_trend(steps, [100 * MIB + 3 * MIB * s for s in steps], first_step=2)
    assert trend is not None and not trend.growing and trend.reason.startswith("too short")
    assert fit_trend([1, 2], [1.0, 2.0], first_step=0) is None


def test_a_short_run_settling_is_too_short_to_tell():
    # lbfgs_closure.py (healthy, 40 steps) under load, sampled every step: after the warm-up, the
    # process rose 40 MiB over 22 steps, steadily, as its allocator settled.
    rss_mb = [340.73, 342.31, 348.31, 350.34, 358.34, 372.71, 411.71, 463.75, 517.77, 573.77, 623.77, 649.8, 651.8,
              657.81, 657.81, 659.81, 659.81, 643.93, 645.8, 643.93, 641.81, 643.81, 645.81, 645.81, 641.81, 645.82,
              659.82, 659.82, 669.82, 673.82, 673.82, 673.83, 667.95, 667.95, 677.83, 677.83, 679.83, 679.83, 681.83, 681.83]
    trend = fit_trend(list(range(1, 41)), [mb * MIB for mb in rss_mb], first_step=13)
    assert trend is not None and not trend.growing and trend.reason.startswith("too short"), trend.reason


def test_missing_values_and_steps_before_the_first_are_ignored():
    values: list = [400 * MIB + 3 * MIB * s for s in STEPS]
    values[10] = None
    trend = fit_trend([*STEPS[:5], None, *STEPS[6:]], values, first_step=50)
    assert trend is not None and trend.growing and trend.from_step >= 50


def test_limits_are_tunable():
    values = noisy([300 * MIB + min(s, 180) * MIB for s in STEPS])
    assert fit_trend(STEPS, values, 2, TrendLimits(warmup_share=0.5)).growing is False


def test_theil_sen_and_its_interval():
    x = np.arange(50, dtype=float)
    fit = theil_sen(x, 2 * x + 5)
    assert fit is not None and fit.slope == 2 and fit.low == 2 == fit.high and abs(fit.intercept - 5) < 1e-9
    assert theil_sen(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])) is None


def test_binning_keeps_medians_over_equal_stretches():
    steps = np.arange(10_000, dtype=float)
    xs, ys = binned(steps, steps * 2, max_points=100)
    assert xs.size == 100 and np.all(np.diff(xs) > 0) and np.allclose(ys, xs * 2)
    assert drawdown(np.array([1.0, 5.0, 2.0, 6.0, 5.5])) == 3.0
