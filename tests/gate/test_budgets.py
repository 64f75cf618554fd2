"""Budgets measured on the real reference report: p50 22.351 ms, p95 45.508 ms, dataloader share
0.0164, batch size 64 (1 batch a step), RSS peak 408055808 bytes (389.2 MiB), no findings."""

import msgspec
import pytest
from msgspec.structs import replace as changed

from gate_helpers import finding, loaded, reference_report
from gpu_runs import HEALTHY_GPU
from perfdoctor.errors import EXIT_USAGE, PerfdoctorError
from perfdoctor.gate.budgets import Budgets, Unmeasured, check_budgets

RSS_PEAK_MIB = 408055808 / 2**20
SAMPLES_PER_SECOND = 64 * 1000 / 22.351


def only(budgets, report=None):
    (result,) = check_budgets(loaded(report or reference_report()), budgets)
    return result


def with_gpu(**changes):
    """The reference report with the `gpu` section a GPU run writes (the model's own shape)."""
    report = reference_report()
    report["gpu"] = msgspec.to_builtins(changed(HEALTHY_GPU, **changes))
    return report


@pytest.mark.parametrize(
    "field, measured",
    [
        ("max_step_time_ms", 22.351),
        ("max_p95_step_time_ms", 45.508),
        ("max_dataloader_share", 0.0164),
        ("max_peak_memory_mb", RSS_PEAK_MIB),
    ],
)
def test_an_upper_budget_holds_just_above_the_measured_value_and_breaks_just_below(field, measured):
    above = only(Budgets(**{field: measured * 1.001}))
    below = only(Budgets(**{field: measured * 0.999}))
    assert above.ok and above.measured == pytest.approx(measured)
    assert not below.ok and below.measured == pytest.approx(measured)


def test_throughput_is_batch_size_times_steps_per_second_of_the_median_step():
    result = only(Budgets(min_samples_per_second=SAMPLES_PER_SECOND * 0.999))
    assert result.ok and result.measured == pytest.approx(SAMPLES_PER_SECOND)
    assert "64 samples/batch x 1 batch/step" in result.detail
    assert not only(Budgets(min_samples_per_second=SAMPLES_PER_SECOND * 1.001)).ok


def test_gradient_accumulation_counts_every_batch_of_a_step():
    report = reference_report()
    report["dataloader"]["loaders"][0]["batches"] = 4 * report["steps"]["count"]
    result = only(Budgets(min_samples_per_second=1), report)
    assert result.measured == pytest.approx(4 * SAMPLES_PER_SECOND)


def test_a_broken_budget_line_has_measured_limit_margin_and_report_path():
    line = only(Budgets(max_step_time_ms=20)).line()
    assert line.startswith("FAIL  max-step-time-ms:")
    assert "22.35 ms" in line and "limit 20.00 ms" in line
    assert "over by 2.35 ms (+11.8%)" in line
    assert "/runs/candidate/report.json" in line
    low = only(Budgets(min_samples_per_second=3000)).line()
    assert "under by 136.6 samples/s (-4.6%)" in low


def test_a_share_budget_margin_is_in_points():
    line = only(Budgets(max_dataloader_share=0.01)).line()
    assert "1.6%" in line and "limit 1.0%" in line and "over by 0.6 points (+64.0%)" in line


def test_passing_budgets_print_a_short_ok_line():
    line = only(Budgets(max_step_time_ms=120)).line()
    assert line == "OK    max-step-time-ms: median step time 22.35 ms <= 120 ms"


def test_a_gpu_budget_on_a_cpu_run_is_an_error_not_a_pass():
    with pytest.raises(Unmeasured, match="measured no GPU") as caught:
        check_budgets(loaded(reference_report()), Budgets(min_gpu_utilization=0.5))
    assert caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize("source", ["trace", "nvml"])
def test_gpu_utilization_is_read_when_the_report_has_it(source):
    report = with_gpu(utilization=0.42, utilization_source=source)
    assert only(Budgets(min_gpu_utilization=0.41), report).ok
    result = only(Budgets(min_gpu_utilization=0.5), report)
    assert not result.ok and result.measured == pytest.approx(0.42)


def test_a_gpu_without_a_measured_utilization_is_an_error_not_a_pass():
    with pytest.raises(Unmeasured, match="without a utilization"):
        check_budgets(loaded(with_gpu(utilization=None, utilization_source=None)), Budgets(min_gpu_utilization=0.5))


def test_peak_memory_is_the_gpus_when_the_report_has_it():
    result = only(Budgets(max_peak_memory_mb=1000), with_gpu(peak_memory_bytes=3 * 2**30))
    assert not result.ok and result.measured == 3072 and result.detail == "GPU peak"


def test_unmeasured_step_times_and_batch_sizes_are_errors():
    no_steps = reference_report()
    no_steps["steps"]["time_ms"] = None
    with pytest.raises(Unmeasured, match="no step times"):
        check_budgets(loaded(no_steps), Budgets(max_step_time_ms=10))
    custom_sampler = reference_report()
    custom_sampler["dataloader"]["loaders"][0]["args"]["batch_size"] = None
    with pytest.raises(Unmeasured, match="batch size is unknown"):
        check_budgets(loaded(custom_sampler), Budgets(min_samples_per_second=10))
    no_loader = reference_report()
    no_loader["dataloader"]["loaders"] = []
    with pytest.raises(Unmeasured, match="saw no DataLoader"):
        check_budgets(loaded(no_loader), Budgets(min_samples_per_second=10))


def test_fail_on_a_severity_catches_that_severity_and_worse():
    report = reference_report()
    report["findings"] = [finding("main-loop-preprocessing", "warning", 0.2), finding("host-overhead-bound", "info", 0.05)]
    assert only(Budgets(fail_on="critical"), report).ok
    warning = only(Budgets(fail_on="warning"), report)
    assert not warning.ok and warning.measured == ["main-loop-preprocessing (warning)"]
    assert len(only(Budgets(fail_on="info"), report).measured) == 2
    assert only(Budgets(fail_on="info")).ok  # the reference run has no findings


def test_fail_on_ids_names_the_ids_that_are_present():
    report = reference_report()
    report["findings"] = [finding("dataloader-bottleneck", "critical", 0.4)]
    result = only(Budgets(fail_on_ids=("dataloader-bottleneck", "cpu-thread-oversubscription")), report)
    assert not result.ok and result.measured == ["dataloader-bottleneck"]
    assert "dataloader-bottleneck" in result.line() and "/runs/candidate/report.json" in result.line()
    assert only(Budgets(fail_on_ids=("cpu-thread-oversubscription",)), report).ok


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_step_time_ms": -1}, "above 0"),
        ({"max_step_time_ms": True}, "above 0"),
        ({"max_dataloader_share": 1.5}, "fraction"),
        ({"fail_on": "fatal"}, "fail-on must be one of"),
        ({"fail_on_ids": "dataloader-bottleneck"}, "finding ids"),
    ],
)
def test_invalid_budgets_are_usage_errors(values, message):
    with pytest.raises(PerfdoctorError, match=message):
        Budgets(**values)


def test_config_table_unknown_keys_fail_and_flags_override_it():
    with pytest.raises(PerfdoctorError, match="unknown budget 'max_step_ms'"):
        Budgets.from_table({"max_step_ms": 3})
    from_config = Budgets.from_table({"max_step_time_ms": 100, "max_p95_step_time_ms": 200, "fail_on_ids": ["x"], "max_regression": 0.1})
    merged = from_config.overridden_by(Budgets(max_step_time_ms=50))
    assert (merged.max_step_time_ms, merged.max_p95_step_time_ms, merged.fail_on_ids) == (50, 200, ("x",))


def test_marker_keywords_map_onto_the_budgets():
    budgets = Budgets.from_marker(step_time_ms=10, p95_step_time_ms=20, dataloader_share=0.2, samples_per_second=5,
                                  peak_memory_mb=100, no_findings="warning", finding_ids="dataloader-bottleneck")
    assert budgets == Budgets(max_step_time_ms=10, max_p95_step_time_ms=20, max_dataloader_share=0.2, min_samples_per_second=5,
                              max_peak_memory_mb=100, fail_on="warning", fail_on_ids=("dataloader-bottleneck",))
