"""Precedence is the engine's: a rule declares what it defers to, every enabled rule runs with its
own thresholds, and a finding is dropped only when a rule it defers to reported. So `disable`
and threshold overrides always mean what they say.

The first three tests are the defects of issue 13, reproduced: each failed before precedence
moved into the engine (the rules called each other, or kept their own copy of a shared fact).
"""

from __future__ import annotations

import dataclasses

import pytest

from conftest import make_loader, make_run
from gpu_runs import gpu_run
from perfdoctor.analysis.dataloader import SATURATED_CORES_SHARE, summarize_loaders
from perfdoctor.config import Config
from perfdoctor.errors import PerfdoctorError
from perfdoctor.model.finding import Finding
from perfdoctor.rules.base import Rule
from perfdoctor.rules.dataloader import DataLoaderBottleneck, DataLoaderCpuSaturated
from perfdoctor.rules.registry import builtin_rules, evaluate, resolve_precedence

FP32_MATMULS_40 = {"matmul_half_ms": 0.0, "conv_half_ms": 0.0, "matmul_fp32_ms": 40.0, "conv_fp32_ms": 0.0, "dominant_precision": "fp32"}
TF32_OFF = {"matmul_allow_tf32": False, "float32_matmul_precision": "highest"}
PAGEABLE = {"pageable_htod_copies": 2.0, "pageable_htod_ms": 6.0, "pageable_copies": 2.0, "pageable_bytes": 2**26}
WAITING = {"dataloader": 0.60, "forward": 0.15, "backward": 0.20, "optimizer": 0.03, "other": 0.02}


def reported(data, config=None):
    return {finding.id for finding in evaluate(data, config or Config())}


# --- the three defects ------------------------------------------------------------------------


def test_amp_not_enabled_speaks_when_tf32_disabled_is_disabled_or_tuned_away():
    """Defect: amp-not-enabled called Tf32Disabled().applies() with default thresholds. With
    tf32-disabled disabled and FP32 matmuls at 40% of the step, nothing fired at all."""
    data = gpu_run(backends=TF32_OFF, kernels=FP32_MATMULS_40)
    assert {"tf32-disabled", "amp-not-enabled"} & reported(data) == {"tf32-disabled"}  # one cause, said once
    disabled = reported(data, Config(disable=["tf32-disabled"]))
    assert "amp-not-enabled" in disabled and "tf32-disabled" not in disabled
    tuned = reported(data, Config(rules={"tf32-disabled": {"min_share": 0.5}}))  # 40% is below the user's bar
    assert "amp-not-enabled" in tuned and "tf32-disabled" not in tuned


def test_pageable_memcpy_speaks_when_dataloader_pin_memory_is_disabled():
    """Defect: pageable-memcpy stayed silent whenever an unpinned DataLoader existed, even with
    dataloader-pin-memory disabled: the pageable copies went unreported."""
    data = gpu_run(steps=PAGEABLE, loaders=[make_loader(num_workers=4, wait_total_ms=100)])
    assert {"pageable-memcpy", "dataloader-pin-memory"} & reported(data) == {"dataloader-pin-memory"}
    disabled = reported(data, Config(disable=["dataloader-pin-memory"]))
    assert "pageable-memcpy" in disabled and "dataloader-pin-memory" not in disabled
    tuned = reported(data, Config(rules={"dataloader-pin-memory": {"min_ms": 10.0}}))  # 6 ms is below the user's bar
    assert "pageable-memcpy" in tuned and "dataloader-pin-memory" not in tuned


@pytest.mark.parametrize("busy", [0.0, 0.5, 0.89, 0.9, 0.91, 0.99, 1.0])
def test_saturated_cores_are_one_fact_so_exactly_one_waiting_rule_speaks(busy):
    """Defect: dataloader-bottleneck and dataloader-cpu-saturated each kept their own
    `cores_busy_share` threshold; overriding one made both fire with contradictory advice (more
    workers / fewer workers), or neither. Now the fact is decided once, in analysis."""
    data = make_run(WAITING, step_ms=64.0, loaders=[make_loader(num_workers=0, wait_total_ms=3840, cores_busy=busy)])
    waiting = {"dataloader-bottleneck", "dataloader-cpu-saturated"} & reported(data)
    assert waiting == ({"dataloader-cpu-saturated"} if busy >= SATURATED_CORES_SHARE else {"dataloader-bottleneck"})
    # Tuning what remains of either rule never makes the two disagree about the cores.
    for config in (Config(rules={"dataloader-bottleneck": {"min_wait_share": 0.05}}), Config(rules={"dataloader-cpu-saturated": {"min_wait_share": 0.05}})):
        assert len({"dataloader-bottleneck", "dataloader-cpu-saturated"} & reported(data, config)) == 1


def test_the_saturation_threshold_lives_in_analysis_only():
    for rule in (DataLoaderBottleneck, DataLoaderCpuSaturated):
        assert "cores_busy_share" not in {f.name for f in dataclasses.fields(rule.Thresholds())}
    with pytest.raises(PerfdoctorError, match="unknown threshold"):
        evaluate(make_run(), Config(rules={"dataloader-bottleneck": {"cores_busy_share": 0.5}}))
    # The job's producing threads asked for 1.9 of 2 cores while the waits ran (running or runnable).
    measured = {"cpu_in_long_waits": {"job_run_ns": 60_000_000, "job_wait_ns": 130_000_000, "wall_ns": 100_000_000}, "batch_wait_ns": [1_000_000]}
    (loader,) = summarize_loaders({"loaders": [{"id": 0, **measured}]}, usable_cores=2)
    assert loader.cores_busy_in_waits == pytest.approx(0.95) and loader.cores_saturated is True
    # The machine's busy ticks (streams from before) cannot tell the job from others: not saturated.
    ticks = {"cpu_in_long_waits": {"busy_ticks": 95, "total_ticks": 100}, "batch_wait_ns": [1_000_000]}
    (loader,) = summarize_loaders({"loaders": [{"id": 0, **ticks}]}, usable_cores=2)
    assert loader.cores_busy_in_waits is None and loader.cores_saturated is False


# --- the engine ---------------------------------------------------------------------------------


def finding(rule_id: str) -> Finding:
    return Finding(id=rule_id, severity="info", title=rule_id, evidence={}, estimated_saving=0.1, advice="", fix="", docs="")


def test_a_finding_is_dropped_only_when_what_it_defers_to_stands():
    defers = {"b": ("a",), "c": ("b",)}
    assert set(resolve_precedence({"a": finding("a"), "b": finding("b"), "c": finding("c")}, defers)) == {"a", "c"}
    assert set(resolve_precedence({"b": finding("b"), "c": finding("c")}, defers)) == {"b"}
    assert set(resolve_precedence({"c": finding("c")}, defers)) == {"c"}


def make_rule(rule_id, defers=()):
    class Always(Rule):
        id = rule_id
        area = "custom"
        defers_to = defers

        def check(self, data, limits):
            return self.finding(title=rule_id, evidence={}, saving=0.05, advice="a", fix="b")

    return Always()


def test_rules_deferring_in_a_circle_are_an_error_not_silence():
    with pytest.raises(PerfdoctorError, match="circle: x -> y -> x"):
        evaluate(make_run(), Config(), rules=[make_rule("x", ("y",)), make_rule("y", ("x",))])


def test_deferring_to_a_rule_that_does_not_exist_changes_nothing():
    assert [f.id for f in evaluate(make_run(), Config(), rules=[make_rule("x", ("no-such-rule",))])] == ["x"]


def test_every_builtin_deference_names_a_builtin_rule():
    rules = builtin_rules()
    ids = {rule.id for rule in rules}
    declared = {(rule.id, other) for rule in rules for other in rule.defers_to}
    assert declared == {("amp-not-enabled", "tf32-disabled"), ("pageable-memcpy", "dataloader-pin-memory")}
    assert all(other in ids for _, other in declared)
