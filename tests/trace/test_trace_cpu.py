"""Host-side step breakdown, top operators and host-overhead evidence."""

from __future__ import annotations

import pytest
from trace_builders import KINETO_RESNET50_WORKERS_0, SEED_TRACE, annotation, cpu_training_events, op, shared_trace, shifted, write_trace

from perfdoctor.trace import read_trace
from perfdoctor.trace.cpu import PHASES, cpu_breakdown, host_op_stats, top_operators

US = 1000


def _phases(breakdown) -> dict[str, int]:
    return {phase: getattr(breakdown, f"{phase}_ns") // US for phase in PHASES}


def test_breakdown_of_a_hand_built_step(tmp_path):
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, cpu_training_events())))
    assert _phases(step) == {"dataloader": 100, "forward": 180, "backward": 200, "optimizer": 220, "other": 300}
    assert sum(step.fractions().values()) == pytest.approx(1.0)


def test_backward_on_an_autograd_thread(tmp_path):
    """GPU-style: backward ranges on another thread count for the main thread's step."""
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, cpu_training_events(tid2=2))))
    assert _phases(step) == {"dataloader": 100, "forward": 180, "backward": 200, "optimizer": 220, "other": 300}


def _torch1_backward(events: list[dict]) -> list[dict]:
    """The same step as PyTorch 1.x writes it: autograd nodes with no evaluate_function range."""
    renamed = {
        "autograd::engine::evaluate_function: AddmmBackward0": "AddmmBackward",
        "autograd::engine::evaluate_function: ReluBackward0": "ReluBackward1",
    }
    return [{**e, "name": renamed[e["name"]], "cat": "Operator"} if e["name"] in renamed else e
            for e in events if e["name"] != "AddmmBackward0"]


@pytest.mark.parametrize("tid2", [None, 2], ids=["main-thread", "autograd-thread"])
def test_torch1_backward_nodes_without_engine_ranges(tmp_path, tid2):
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, _torch1_backward(cpu_training_events(tid2=tid2)))))
    assert _phases(step) == {"dataloader": 100, "forward": 180, "backward": 200, "optimizer": 220, "other": 300}


def test_torch1_backward_on_the_engine_thread_of_a_real_v100_trace():
    """TensorBoard's ResNet-50 sample (PyTorch 1.9, V100): backward runs on the engine's thread
    as bare ...Backward nodes; once it showed 0% and forward swallowed it."""
    from perfdoctor.trace.threads import autograd_threads, main_thread

    trace = read_trace(KINETO_RESNET50_WORKERS_0)
    assert main_thread(trace).tid == 25738
    assert [t.tid for t in autograd_threads(trace)] == [25772]
    steps = cpu_breakdown(trace)
    assert [s.step.number for s in steps] == [5, 6, 7, 8, 9, 10]
    for step in steps:
        shares = step.fractions()
        assert 0.18 < shares["backward"] < 0.23, shares
        assert 0.22 < shares["forward"] < 0.28, shares  # no longer covering backward's time
        assert 0.37 < shares["dataloader"] < 0.42, shares


def test_main_thread_work_in_an_engine_gap_is_not_backward(tmp_path):
    events = cpu_training_events(tid2=2) + [op("aten::detach", 501, 3)]
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, events)))
    phases = _phases(step)
    assert phases["backward"] == 195  # the 5 us gap is no longer filled
    assert phases["forward"] == 183  # the op in it is main-thread work
    assert sum(phases.values()) == 1000


def test_overlapping_and_nested_ranges_count_once(tmp_path):
    events = [
        annotation("ProfilerStep#1", 0, 1000),
        annotation("enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__", 10, 70),
        annotation("enumerate(DataLoader)#_MultiProcessingDataLoaderIter.__next__", 50, 60),  # overlaps the first
        annotation("Optimizer.step#Adam.step", 100, 300),
        annotation("Optimizer.step#Adam.step", 150, 100),  # nested in the first
        annotation("## optimizer ##", 90, 320),  # a user annotation around both: [90, 410)
        op("autograd::engine::evaluate_function: MulBackward0", 380, 100),  # overlaps the optimizer
    ]
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, events)))
    # optimizer: [90, 410) less the data loading before 110; backward: [380, 480) less [380, 410)
    assert _phases(step) == {"dataloader": 100, "forward": 0, "backward": 70, "optimizer": 300, "other": 530}


def test_without_profiler_steps_the_whole_trace_is_one_step(tmp_path):
    events = [op("aten::linear", 100, 50), op("aten::relu", 200, 50)]
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, events)))
    assert step.step.synthetic
    assert _phases(step) == {"dataloader": 0, "forward": 150, "backward": 0, "optimizer": 0, "other": 0}


def test_top_operators_self_time_and_shapes(tmp_path):
    trace = read_trace(write_trace(tmp_path, cpu_training_events() + shifted(cpu_training_events(), 1000, step=2)))
    ops = {o.name: o for o in top_operators(trace, limit=50)}
    assert ops["aten::linear"].calls == 2
    assert (ops["aten::linear"].total_ns, ops["aten::linear"].self_ns) == (200 * US, 40 * US)
    assert ops["aten::addmm"].self_ns == 160 * US
    assert ops["AddmmBackward0"].self_ns == 2 * 16 * US
    assert ops["autograd::engine::evaluate_function: AddmmBackward0"].self_ns == 2 * 4 * US
    assert ops["aten::linear"].input_shapes == [("[[32, 64], [10, 64], [10]]", 2)]
    assert ops["aten::zero_"].input_shapes == []
    ranked = top_operators(trace, limit=2)  # by self time: 2 x 180 us, then 2 x 95 us
    assert [o.name for o in ranked] == ["aten::add_", "autograd::engine::evaluate_function: ReluBackward0"]
    assert "ProfilerStep#1" not in ops  # annotations are not operators


def test_host_op_stats(tmp_path):
    trace = read_trace(write_trace(tmp_path, cpu_training_events()))
    (stats,) = host_op_stats(trace, short_op_ns=25 * US)
    assert stats.ops == 8
    assert stats.median_op_ns == 87_500
    assert (stats.short_ops, stats.short_op_ns) == (3, 40 * US)
    assert stats.gap_ns == 380 * US
    assert stats.gap_share == pytest.approx(0.38)
    assert stats.short_op_share == pytest.approx(0.04)


def test_an_op_that_only_dispatches_tiny_ops_is_tiny(tmp_path):
    # 40 us for itself and 4 nested calls (8 us per call) is dispatch, like 4 separate 8 us ops;
    # 40 us of one op's own arithmetic, or 40 us around one 30 us kernel call, are not
    composite = [op("aten::layer_norm", 100, 40), op("aten::native_layer_norm", 101, 38)] + [
        op(f"aten::inner{i}", 102 + 9 * i, 8) for i in range(3)
    ]
    events = [annotation("ProfilerStep#1", 0, 1000), *composite, op("aten::gelu", 300, 40),
              op("aten::linear", 400, 40), op("aten::addmm", 405, 30)]
    (stats,) = host_op_stats(read_trace(write_trace(tmp_path, events)), short_op_ns=10 * US)
    assert stats.ops == 3 and (stats.short_ops, stats.short_op_ns) == (1, 40 * US)


def test_seed_trace_breakdown():
    """A real torch 2.13 CPU training trace: checked against the numbers read off its timeline."""
    trace = read_trace(SEED_TRACE)
    steps = cpu_breakdown(trace)
    assert [s.step.number for s in steps] == [2, 3, 4]
    for step in steps:
        parts = _phases(step)
        assert sum(getattr(step, f"{p}_ns") for p in PHASES) == step.duration_ns
        assert min(parts.values()) >= 0
        assert 0.85 < (parts["forward"] + parts["backward"]) * US / step.duration_ns < 0.98
    first = steps[0]
    # enumerate(DataLoader) of ProfilerStep#2 lasts 443.934 us; zero_grad 76.2 + step 1940.1 us
    assert first.dataloader_ns == 443_934
    assert first.optimizer_ns // US == 76 + 1940
    host = host_op_stats(trace)
    assert all(h.ops > 100 for h in host)
    ops = top_operators(trace, limit=5)
    assert ops[0].self_ns <= ops[0].total_ns and ops[0].calls >= 1


@pytest.mark.parametrize("relative", [
    "a100_ddp_nccl_2rank/rank0.pt.trace.json.gz", "v100_training/rank0.pt.trace.json.gz",
    "sampled_128rank_job/rank1.pt.trace.json.gz", "cpu_only/rank34.pt.trace.json.gz",
    "a100_alexnet_sync/trace.pt.trace.json.gz",
])
def test_real_traces_breakdown_sums_to_step(relative):
    trace = read_trace(shared_trace(relative))
    for step in cpu_breakdown(trace):
        values = [getattr(step, f"{p}_ns") for p in PHASES]
        assert sum(values) == step.duration_ns
        assert min(values) >= 0
    for stats in host_op_stats(trace):
        assert 0 <= stats.gap_share <= 1 and 0 <= stats.short_op_share <= 1


def test_ddp_trace_phases():
    trace = read_trace(shared_trace("a100_ddp_nccl_2rank/rank0.pt.trace.json.gz"))
    for step in cpu_breakdown(trace):
        f = step.fractions()
        # Main thread: zero_grad, "## forward ##" ~103 ms, backward on the autograd thread ~101 ms,
        # "## optimizer ##" ~15 ms of a ~222 ms step; no DataLoader in this benchmark.
        assert f["dataloader"] == 0
        assert 0.44 < f["forward"] < 0.48 and 0.45 < f["backward"] < 0.48
        assert 0.06 < f["optimizer"] < 0.08 and f["other"] < 0.01


def test_python_frames_and_wrapping_annotations_do_not_swallow_the_step(tmp_path):
    """with_stack=True adds Python frames over everything; users wrap steps in record_function."""
    events = cpu_training_events() + [
        op("train.py(42): <module>", 0, 1000, cat="python_function"),
        op("nn.Module: Linear_0", 148, 104, cat="python_function"),
        annotation("train_step", 5, 990),
    ]
    (step,) = cpu_breakdown(read_trace(write_trace(tmp_path, events)))
    # as without them, except that the nn.Module range widens the forward hull to [148, 320)
    assert _phases(step) == {"dataloader": 100, "forward": 182, "backward": 200, "optimizer": 220, "other": 298}


def test_old_schema_annotations_as_cpu_ops(tmp_path):
    """PyTorch 1.9 wrote record_function ranges (ProfilerStep, Optimizer.step) as "Operator"."""
    events = [{**e, "cat": "Operator"} for e in cpu_training_events()]
    trace = read_trace(write_trace(tmp_path, events))
    (step,) = cpu_breakdown(trace)
    assert _phases(step) == {"dataloader": 100, "forward": 180, "backward": 200, "optimizer": 220, "other": 300}
    names = {o.name for o in top_operators(trace, limit=100)}
    assert "ProfilerStep#1" not in names and "Optimizer.step#SGD.step" not in names
    (stats,) = host_op_stats(trace)
    assert stats.ops == 8
