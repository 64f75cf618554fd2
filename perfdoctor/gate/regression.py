"""Is the candidate run's step time a real regression against a baseline, or noise?

The question is asked of the two runs' step-time distributions, not of two numbers: the ratio of
their median steady-state steps (candidate / baseline) gets a bootstrap confidence interval, and

    regression    the whole interval lies above 1 + max_regression
    ok            the interval's upper bound is at or below 1 + max_regression
    inconclusive  the interval straddles the limit: these runs cannot tell (too few or too noisy steps)

Why these choices:
- Medians, because one stalled step (a checkpoint, another job on the machine) must not move them.
- A circular *block* bootstrap, resampling runs of consecutive steps, because step times on a
  shared machine are not independent: a neighbour's burst of load slows many steps in a row. An
  ordinary bootstrap treats those steps as independent evidence and gives an interval far too
  narrow, so that two runs of the same code under different load look "significantly" different.
  The block length comes from the data: the first lag after which the series' (rank)
  autocorrelation stays insignificant (the rule of Politis & White, 2004), doubled. Independent
  steps get blocks of 1, which is the ordinary bootstrap; a run whose speed drifts or jumps gets
  long blocks and, honestly, a wide interval.
- Percentile intervals of the ratio, each side resampled on its own, with a fixed seed: the
  same two reports always give the same verdict.
What no comparison of step times alone can do: tell a code change from a machine that was
uniformly faster or slower for one whole run, with steady steps throughout (another tenant on the
host, a different CPU). So each run's contention is read from its report (`host.contention`: the
share of the job's runnable time its threads spent waiting for CPUs that other processes, or a
cgroup quota, held) and recorded with the verdict. Contention alone would make the candidate
`explained = (1 - lost_baseline) / (1 - lost_candidate)` times slower (`lost`: the larger of the
training thread's and the whole tree's lost share). When that could account for the verdict it
is `inconclusive`, saying why:
- a `regression` while `explained` is at least halfway to the limit (`1 + max_regression / 2`):
  the candidate waited for CPUs enough to be that much slower with the same code;
- an `ok` while `explained` is at most `1 / (1 + max_regression / 2)`: the baseline was slowed by
  contention enough to hide a regression.
Two runs equally contended (a runner that is always busy) keep the step-time verdict: a real
slowdown on either kind of machine stays a regression. Why not divide the step times by the
measured contention instead: waiting for a CPU does not slow a step in proportion (with several
intra-op threads a parallel region waits for its slowest thread, so a busy machine can slow a
step several times more than its threads' own waiting says), and a corrected ratio would then
call a busy run of unchanged code a regression.
Only the standard library: this runs in `perfdoctor check`, which must start fast.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass
from statistics import median
from typing import Any, Sequence

from ..model.numbers import percentile, rounded
from .reportfile import LoadedReport

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20240531
MIN_STEPS = 5  # per side; fewer is always inconclusive

VERDICT_OK = "ok"
VERDICT_REGRESSION = "regression"
VERDICT_INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class StepSample:
    """A run's steady-state step times, in step order: step 0 and profiled steps left out."""

    durations_ms: list[float]
    stride: int  # report.json thins long series: every stride-th step is here
    left_out: int  # steps of the series not used (step 0, profiled, missing)


def step_sample(report: LoadedReport) -> StepSample:
    series = report.report.steps.series
    durations, profiled, numbers = series.duration_ms, series.profiled, series.step
    stride = series.stride if series.stride > 0 else 1
    kept: list[float] = []
    for index, duration in enumerate(durations):
        step = numbers[index] if index < len(numbers) else index * stride
        was_profiled = profiled[index] if index < len(profiled) else False
        if step == 0 or was_profiled or duration is None:
            continue
        if math.isfinite(duration) and duration > 0:
            kept.append(float(duration))
    return StepSample(durations_ms=kept, stride=stride, left_out=len(durations) - len(kept))


@dataclass(frozen=True)
class RunContention:
    """What a report measured about other processes taking its CPUs (None: not measured)."""

    shared: bool
    lost: float  # share of the job's runnable time spent waiting for CPUs others held
    others_cpu_cores: float | None

    def to_json(self) -> dict[str, Any]:
        return {"shared": self.shared, "lost_share": rounded(self.lost, 4), "others_cpu_cores": rounded(self.others_cpu_cores, 3)}

    def words(self) -> str:
        if not self.shared:
            return "quiet"
        return f"shared: {self.lost:.0%} of its CPU time lost waiting" + (
            f", others used {self.others_cpu_cores:.1f} cores" if self.others_cpu_cores is not None else ""
        )


def run_contention(report: LoadedReport) -> RunContention | None:
    host = report.report.host
    contention = host.contention if host else None
    if contention is None:
        return None
    lost = max(
        contention.others_wait_share or 0.0,
        contention.lost_cpu_share or 0.0,
        _main_lost(contention.main_wait_share, contention.main_cpu_share),
        contention.throttled_share or 0.0,
    )
    return RunContention(shared=contention.shared, lost=min(lost, 0.95) if contention.shared else 0.0, others_cpu_cores=contention.others_cpu_cores)


def _main_lost(wait: float | None, cpu: float | None) -> float:
    if not wait:
        return 0.0
    return wait / (wait + (cpu or 0.0))


@dataclass(frozen=True)
class RegressionResult:
    verdict: str
    max_regression: float
    ratio: float | None  # candidate median / baseline median
    low: float | None  # the confidence interval of the ratio
    high: float | None
    confidence: float
    baseline_steps: int
    candidate_steps: int
    baseline_median_ms: float | None
    candidate_median_ms: float | None
    block_lengths: tuple[int, int]  # baseline, candidate
    resamples: int
    reason: str
    baseline_contention: RunContention | None = None
    candidate_contention: RunContention | None = None
    step_time_verdict: str | None = None  # the verdict of the step times alone, when contention changed it

    @property
    def limit(self) -> float:
        return 1 + self.max_regression

    def line(self) -> str:
        counts = f"{self.candidate_steps} candidate steps, {self.baseline_steps} baseline steps"
        if self.ratio is None or self.low is None or self.high is None:
            return f"baseline: {self.verdict}: {self.reason} ({counts})"
        return (
            f"baseline: {self.verdict}: median step {self.candidate_median_ms:.2f} ms vs baseline "
            f"{self.baseline_median_ms:.2f} ms, ratio {self.ratio:.3f} ({self.confidence:.0%} CI "
            f"{self.low:.3f}-{self.high:.3f}, limit {self.limit:.3f}): {self.reason} ({counts}; "
            f"block bootstrap, blocks of {self.block_lengths[0]}/{self.block_lengths[1]} steps, {self.resamples} resamples)"
            + self._contention_words()
        )

    def _contention_words(self) -> str:
        base, cand = self.baseline_contention, self.candidate_contention
        if base is None and cand is None:
            return ""
        return f" [contention: baseline {base.words() if base else 'not measured'}; candidate {cand.words() if cand else 'not measured'}]"

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return rounded(value, 4)

        return {
            "verdict": self.verdict,
            "ratio": r(self.ratio),
            "interval": None if self.low is None else [r(self.low), r(self.high)],
            "confidence": self.confidence,
            "limit": round(self.limit, 6),
            "max_regression": self.max_regression,
            "baseline": {"steps": self.baseline_steps, "median_ms": r(self.baseline_median_ms), "block_length": self.block_lengths[0]},
            "candidate": {"steps": self.candidate_steps, "median_ms": r(self.candidate_median_ms), "block_length": self.block_lengths[1]},
            "method": "circular block bootstrap of the ratio of medians, percentile interval; inconclusive where the runs' CPU contention explains the verdict",
            "resamples": self.resamples,
            "reason": self.reason,
            "contention": {
                "baseline": self.baseline_contention.to_json() if self.baseline_contention else None,
                "candidate": self.candidate_contention.to_json() if self.candidate_contention else None,
                "step_time_verdict": self.step_time_verdict,
            },
        }


def compare_step_times(
    baseline: Sequence[float],
    candidate: Sequence[float],
    max_regression: float,
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> RegressionResult:
    """The verdict on candidate vs baseline step times (each in step order)."""
    base, cand = list(baseline), list(candidate)
    limit = 1 + max_regression
    if len(base) < MIN_STEPS or len(cand) < MIN_STEPS:
        return RegressionResult(
            VERDICT_INCONCLUSIVE, ratio=None, low=None, high=None, baseline_median_ms=median(base) if base else None,
            candidate_median_ms=median(cand) if cand else None, block_lengths=(0, 0),
            reason=f"too few steady-state steps to compare (at least {MIN_STEPS} per run; run more steps, e.g. --max-steps 60)",
            max_regression=max_regression, confidence=confidence, baseline_steps=len(base), candidate_steps=len(cand), resamples=0,
        )
    base_median, cand_median = median(base), median(cand)
    ratio = cand_median / base_median
    rng = random.Random(seed)
    blocks = (block_length(base), block_length(cand))
    base_medians = bootstrap_medians(base, blocks[0], resamples, rng)
    cand_medians = bootstrap_medians(cand, blocks[1], resamples, rng)
    ratios = sorted(c / b for c, b in zip(cand_medians, base_medians))
    tail = (1 - confidence) / 2
    low, high = percentile(ratios, tail), percentile(ratios, 1 - tail)
    if low > limit:
        verdict = VERDICT_REGRESSION
        reason = f"slower by more than {max_regression:.0%} (the whole interval is above the limit)"
    elif high <= limit:
        verdict = VERDICT_OK
        reason = f"no regression beyond {max_regression:.0%} (the interval ends at or below the limit)"
    else:
        verdict = VERDICT_INCONCLUSIVE
        reason = (
            f"the interval straddles the limit: these runs cannot tell a {max_regression:.0%} regression from noise "
            "(run more steps, or on a quieter machine)"
        )
    return RegressionResult(
        verdict, max_regression=max_regression, ratio=ratio, low=low, high=high, confidence=confidence,
        baseline_steps=len(base), candidate_steps=len(cand), baseline_median_ms=base_median,
        candidate_median_ms=cand_median, block_lengths=blocks, resamples=resamples, reason=reason,
    )


def compare_reports(baseline: LoadedReport, candidate: LoadedReport, max_regression: float, **options: Any) -> RegressionResult:
    result = compare_step_times(step_sample(baseline).durations_ms, step_sample(candidate).durations_ms, max_regression, **options)
    return with_contention(result, run_contention(baseline), run_contention(candidate))


def with_contention(result: RegressionResult, baseline: RunContention | None, candidate: RunContention | None) -> RegressionResult:
    """The verdict, recorded with each run's contention, and `inconclusive` where the contention
    could account for it (module docstring)."""
    lost_base = baseline.lost if baseline else 0.0
    lost_cand = candidate.lost if candidate else 0.0
    explained = (1 - lost_base) / (1 - lost_cand)
    half_limit = 1 + result.max_regression / 2
    verdict, reason = result.verdict, result.reason
    if verdict == VERDICT_REGRESSION and explained >= half_limit:
        verdict = VERDICT_INCONCLUSIVE
        reason = (
            f"the candidate is slower, but its threads waited for CPUs that other processes held {lost_cand:.0%} of their "
            f"runnable time against {lost_base:.0%} in the baseline: contention alone would make it {explained:.2f}x as slow "
            "(compare runs on a quiet machine, or both on the same busy one)"
        )
    elif verdict == VERDICT_OK and explained <= 1 / half_limit:
        verdict = VERDICT_INCONCLUSIVE
        reason = (
            f"no regression is seen, but the baseline's threads waited for CPUs that other processes held {lost_base:.0%} of "
            f"their runnable time against {lost_cand:.0%} in the candidate: that could hide a slowdown up to "
            f"{1 / explained:.2f}x (compare runs on a quiet machine)"
        )
    return dataclasses.replace(
        result, verdict=verdict, reason=reason, baseline_contention=baseline, candidate_contention=candidate,
        step_time_verdict=result.verdict if verdict != result.verdict else None,
    )


# --- the bootstrap --------------------------------------------------------------------------------


def bootstrap_medians(values: list[float], block: int, resamples: int, rng: random.Random) -> list[float]:
    """Medians of `resamples` circular block bootstrap resamples of `values` (each as long as `values`)."""
    n = len(values)
    block = max(1, min(block, n))
    wrapped = values + values[: block - 1]  # circular: a block may run past the end into the start
    blocks_needed = -(-n // block)
    middle = n // 2
    medians = []
    for _ in range(resamples):
        resample: list[float] = []
        for _ in range(blocks_needed):
            start = rng.randrange(n)
            resample.extend(wrapped[start : start + block])
        del resample[n:]
        resample.sort()
        medians.append(resample[middle] if n % 2 else (resample[middle - 1] + resample[middle]) / 2)
    return medians


def block_length(values: Sequence[float]) -> int:
    """Twice the lag after which the rank autocorrelation stays insignificant (Politis & White's
    rule for the flat-top lag window); 1 for independent steps, at most a third of the run."""
    n = len(values)
    if n < 8:
        return 1
    ranks = _ranks(values)
    mean = (n - 1) / 2
    centred = [r - mean for r in ranks]
    variance = sum(c * c for c in centred)
    if variance == 0:
        return 1
    threshold = 2 * math.sqrt(math.log10(n) / n)
    run_needed = max(5, math.ceil(math.sqrt(math.log10(n))))
    max_lag = n // 3
    quiet = 0
    for lag in range(1, max_lag + 1):
        rho = sum(centred[i] * centred[i + lag] for i in range(n - lag)) / variance
        quiet = quiet + 1 if abs(rho) < threshold else 0
        if quiet == run_needed:
            m = lag - run_needed  # the last significant lag
            return max(1, min(2 * m, max_lag))
    return max(1, max_lag)


def _ranks(values: Sequence[float]) -> list[float]:
    """Ranks 0..n-1, ties sharing their mean rank: autocorrelation of ranks ignores outliers' size."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks

