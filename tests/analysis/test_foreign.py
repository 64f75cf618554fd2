"""Traces from other jobs carry every piece of evidence they hold: DataLoader waits for the
data-loading rules, backward on the autograd thread, the trace's own step numbers, one step
time for every share, and ranks named by distributedInfo or file name (never by file order)."""

from __future__ import annotations

import pytest
from trace_builders import (
    HTA_MI250,
    KINETO_RESNET50_WORKERS_0,
    KINETO_RESNET50_WORKERS_4,
    annotation,
    cpu_training_events,
    op,
    shared_trace,
    shifted,
    write_trace,
)

from perfdoctor.analysis.foreign import load_traces, rank_from_name
from perfdoctor.config import Config
from perfdoctor.pipeline import analyse
from perfdoctor.report.json_report import build_report


def report_of(*paths):
    data = load_traces(list(paths))
    findings = analyse(data, Config())
    return data, build_report(data, findings)


def by_id(report):
    return {finding.id: finding for finding in report.findings}


# --- the V100 ResNet-50 of TensorBoard's profiler plugin (num_workers=0, PyTorch 1.9) -----------


@pytest.fixture(scope="module")
def resnet50_workers_0():
    return report_of(KINETO_RESNET50_WORKERS_0)


def test_dataloader_share_of_a_v100_trace_is_a_finding(resnet50_workers_0):
    data, report = resnet50_workers_0
    assert 0.38 < report.steps.breakdown.dataloader < 0.42  # the plugin says 33.4% (its own split)
    (loader,) = report.dataloader.loaders
    assert (loader.source, loader.iterator, loader.args) == ("trace", "_SingleProcessDataLoaderIter", {"num_workers": 0})
    assert loader.batches == 6 and loader.epochs == []
    finding = by_id(report)["dataloader-bottleneck"]
    assert finding.severity == "critical" and 0.38 < finding.estimated_saving < 0.42
    evidence = finding.evidence
    assert evidence["evidence_source"] == "trace" and evidence["num_workers"] == 0
    assert evidence["usable_cores"] is None and evidence["cores_busy_during_waits_share"] is None  # not in a trace
    assert evidence["suggested_num_workers"] == 2  # 70 ms of loading hides behind 105 ms of compute with 2
    assert 65 < evidence["wait_per_step_ms"] < 75 and evidence["step_ms"] == pytest.approx(report.steps.time_ms.mean, abs=0.01)
    assert "from the trace" in finding.title and "not how many cores were free" in finding.advice
    assert "dataloader-pin-memory" not in by_id(report)  # pin_memory is not in the trace


def test_v100_trace_backward_is_found_on_the_autograd_thread(resnet50_workers_0):
    _, report = resnet50_workers_0
    breakdown = report.steps.breakdown
    assert 0.18 < breakdown.backward < 0.23 and 0.22 < breakdown.forward < 0.28


def test_v100_trace_keeps_its_step_numbers(resnet50_workers_0):
    _, report = resnet50_workers_0
    assert report.steps.series.step == [5, 6, 7, 8, 9, 10]
    assert [row.step for row in report.gpu.per_step] == [5, 6, 7, 8, 9, 10]
    assert "ProfilerStep#5" in report.steps.excluded


def test_every_share_of_a_trace_report_is_of_one_step_time(resnet50_workers_0):
    _, report = resnet50_workers_0
    mean = report.steps.time_ms.mean
    assert report.gpu.steps.step_ms == pytest.approx(mean, abs=0.01)
    assert report.gpu.steps.measured == report.steps.measured == 5 and report.gpu.steps.profiled == 6
    assert report.operators.step_ms == pytest.approx(mean, abs=0.01) and report.operators.windows == 5
    quoted = {f.id: f.evidence["step_ms"] for f in report.findings if "step_ms" in f.evidence}
    assert len(quoted) >= 3 and all(v == pytest.approx(mean, abs=0.01) for v in quoted.values()), quoted


def test_multiprocess_loader_that_keeps_up_is_silent():
    _, report = report_of(KINETO_RESNET50_WORKERS_4)
    (loader,) = report.dataloader.loaders
    assert loader.iterator == "_MultiProcessingDataLoaderIter" and loader.args == {}  # num_workers: not in the trace
    assert report.steps.breakdown.dataloader < 0.02
    assert "dataloader-bottleneck" not in by_id(report)


def _slow_loader_steps(iterator: str, steps: int = 6) -> list[dict]:
    """Steps of 10 ms whose first 4 ms wait on a DataLoader of the given iterator class."""
    events = []
    for k in range(steps):
        events += shifted([
            annotation("ProfilerStep#0", 0, 10_000),
            annotation(f"enumerate(DataLoader)#{iterator}.__next__", 0, 4000),
            op("aten::linear", 4200, 5000),
        ], k * 10_000, step=40 + k)
    return events


def test_a_starving_multiprocess_loader_is_a_finding_that_claims_only_an_upper_bound(tmp_path):
    data, report = report_of(write_trace(tmp_path, _slow_loader_steps("_MultiProcessingDataLoaderIter")))
    finding = by_id(report)["dataloader-bottleneck"]
    assert finding.evidence["num_workers"] is None and "suggested_num_workers" not in finding.evidence
    assert finding.estimated_saving == pytest.approx(0.4, abs=1e-3)  # the whole wait: an upper bound
    assert "multi-process" in finding.title and "upper bound" in finding.advice
    assert report.steps.series.step == [40, 41, 42, 43, 44, 45]


def test_a_single_process_loader_hidden_behind_compute_saves_its_wait(tmp_path):
    _, report = report_of(write_trace(tmp_path, _slow_loader_steps("_SingleProcessDataLoaderIter")))
    finding = by_id(report)["dataloader-bottleneck"]
    assert finding.evidence["suggested_num_workers"] == 2 and finding.estimated_saving == pytest.approx(0.4, abs=1e-3)


def test_a_short_wait_is_no_finding(tmp_path):
    events = [e for e in cpu_training_events()]  # 100 us of 1000 waiting on data: 10%, below nothing
    quick = [{**e, "dur": 30} if e["name"].startswith("enumerate(DataLoader)") else e for e in events]
    steps = [event for k in range(5) for event in shifted(quick, k * 1000, step=k + 1)]
    data, report = report_of(write_trace(tmp_path, steps))
    assert report.dataloader.loaders and report.steps.breakdown.dataloader < 0.05
    assert "dataloader-bottleneck" not in by_id(report)


# --- one step time ------------------------------------------------------------------------------


def test_hta_v100_trace_gpu_section_uses_the_headline_steps():
    """ProfilerStep#101-#105: 35 and 72 ms start-up steps, then 95.6 ms. The GPU section once
    said "step 78.8 ms" (a mean over all five) beside the 95.6 ms median headline."""
    _, report = report_of(shared_trace("v100_training/rank0.pt.trace.json.gz"))
    assert report.steps.series.step == [101, 102, 103, 104, 105]
    assert report.steps.excluded == "the first profiled step (ProfilerStep#101) left out as warm-up"
    assert report.gpu.steps.step_ms == pytest.approx(report.steps.time_ms.mean, abs=0.01)
    assert report.gpu.utilization > 0.95  # GPU-bound: the first step's work running into the second is not idle
    amp = by_id(report)["amp-not-enabled"]
    assert amp.evidence["step_ms"] == pytest.approx(report.steps.time_ms.mean, abs=0.01)
    assert amp.evidence["share"] == pytest.approx(amp.evidence["fp32_matmul_conv_ms"] / report.steps.time_ms.mean, abs=1e-3)


# --- ranks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, rank",
    [
        ("rank10.pt.trace.json.gz", 10),
        ("rank-3.json", 3),
        ("job_rank_2_.json", 2),
        ("rank-0.Apr_03_18_51_38.1102.pt.trace.json.gz", 0),  # HTA's
        ("sampled_rank-1.json.gz", 1),
        ("rank0_trace.json", 0),  # torchtitan's
        ("Rank.7.json", 7),
        ("worker0.1623143089861.pt.trace.json.gz", None),  # tensorboard_trace_handler's: no rank
        ("frank2.json", None),
        ("ranking5.json", None),
        ("rank1_vs_rank2.json", None),  # two ranks: neither
    ],
)
def test_rank_from_a_file_name(tmp_path, name, rank):
    assert rank_from_name(tmp_path / "traces" / name)[0] == rank


def test_rank_from_a_folder_name(tmp_path):
    assert rank_from_name(tmp_path / "rank4" / "host_1234.1700000000.pt.trace.json") == (4, "folder name")


def _rank_trace(folder, name, step_us, distributed=None, extra=None):
    events = [
        event
        for k in range(5)
        for event in shifted(
            [annotation("ProfilerStep#0", 0, step_us), op("aten::linear", 10, step_us - 20)], k * step_us, step=k + 1
        )
    ] + (extra or [])
    top = {"distributedInfo": distributed} if distributed else {}
    return write_trace(folder, events, name=name, **top)


def test_ranks_come_from_file_names_not_file_order(tmp_path):
    """rank10 sorts before rank2 and rank3 by name: it is rank 10, and the straggler."""
    folder = tmp_path / "job"
    folder.mkdir()
    for name, step in (("rank10.json", 16_000), ("rank2.json", 10_000), ("rank3.json", 10_000)):
        _rank_trace(folder, name, step)
    data, report = report_of(*sorted(folder.iterdir()))
    assert [row.rank for row in report.ddp.ranks] == [2, 3, 10]
    assert (report.ddp.ranks_reported, report.ddp.world_size) == (3, 11)  # rank 10 means 11 ranks at least
    assert {row.rank_from for row in report.ddp.ranks} == {"file name"}
    assert report.ddp.straggler.rank == 10
    straggler = by_id(report)["ddp-straggler"]
    assert straggler.title.startswith("Rank 10 is a straggler") and straggler.evidence["straggler_rank"] == 10
    assert any("(they have no distributedInfo)" in note and "rank10.json is rank 10" in note for note in report.notes)
    assert any("the sections above show rank 2 (rank2.json)" in note for note in report.notes)


def test_unknown_ranks_are_named_by_file_never_numbered(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    _rank_trace(folder, "a.json", 10_000)
    _rank_trace(folder, "b.json", 16_000)
    _rank_trace(folder, "c.json", 10_000)
    data, report = report_of(*sorted(folder.iterdir()))
    assert [(row.rank, row.trace_file, row.rank_from) for row in report.ddp.ranks] == [
        (None, "a.json", None), (None, "b.json", None), (None, "c.json", None)
    ]
    straggler = by_id(report)["ddp-straggler"]
    assert straggler.title.startswith("The rank of b.json (rank unknown) is a straggler")
    assert straggler.evidence["straggler_rank"] is None and straggler.evidence["straggler_trace"] == "b.json"
    assert any("rank of 3 traces is unknown" in note and "never numbered by file order" in note for note in report.notes)


def test_distributed_info_wins_over_the_name_and_partly_read_ranks_are_noted(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    _rank_trace(folder, "rank0.json", 10_000, distributed={"rank": 1, "world_size": 4, "backend": "nccl"})
    _rank_trace(folder, "rank3.json", 10_000, extra=[op("broken", 5, -3)])
    data, report = report_of(*sorted(folder.iterdir()))
    rows = {row.trace_file: row for row in report.ddp.ranks}
    assert (rows["rank0.json"].rank, rows["rank0.json"].rank_from) == (1, "distributedInfo")
    assert (rows["rank3.json"].rank, rows["rank3.json"].rank_from) == (3, "file name")
    assert rows["rank3.json"].partial and "negative dur" in rows["rank3.json"].partial and rows["rank0.json"].partial is None
    assert (report.ddp.world_size, report.ddp.backend) == (4, "nccl")
    notes = " ".join(report.notes)
    assert "rank0.json is rank 1 by its distributedInfo, although its name says rank 0" in notes
    assert "Read 1 of 2 traces only in part" in notes and "rank 3: " in notes


def test_two_traces_of_one_rank_are_both_kept_and_noted(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    _rank_trace(folder, "rank1.json", 10_000)
    _rank_trace(folder, "rank-1.json", 10_000)
    _, report = report_of(*sorted(folder.iterdir()))
    assert [row.rank for row in report.ddp.ranks] == [1, 1]
    assert any("2 traces are rank 1" in note for note in report.notes)


def test_sampled_job_ranks_from_distributed_info():
    _, report = report_of(shared_trace("sampled_128rank_job/rank1.pt.trace.json.gz"), shared_trace("sampled_128rank_job/rank0.pt.trace.json.gz"))
    assert [(row.rank, row.rank_from) for row in report.ddp.ranks] == [(0, "distributedInfo"), (1, "distributedInfo")]
    assert report.ddp.world_size == 128


# --- AMD ----------------------------------------------------------------------------------------


def test_an_amd_mi250_trace_reads_whole_and_is_judged_as_amd():
    data, report = report_of(HTA_MI250)
    assert not any("skipped" in note for note in report.notes)  # ROCm's "stream": "0x0" is not an error
    device = report.gpu.device
    assert (device.vendor, device.index, device.capability, device.name) == ("amd", 2, None, "AMD Radeon Graphics")
    assert report.steps.series.step == [1, 2]
    steps = report.gpu.steps
    assert steps.kernels == 7.0 and steps.memcpy_htod_ms > 0
    assert steps.syncs == 1.0  # hipMemcpyWithStream (a blocking copy) and hipDeviceSynchronize
    assert report.gpu.sync_causes[0].op == "aten::to"
    assert report.gpu.kernels.matmul_fp32_ms > 0  # Tensile's Cijk_..._SB GEMM: fp32
    assert steps.tensor_core_share > 0  # ...on the Matrix Cores (MFMA 16x16x1)
    assert report.steps.breakdown.backward > 0.5  # autograd::engine on the engine thread
    assert any("AMD GPU (ROCm)" in note for note in report.notes)
    assert not {"amp-not-enabled", "tf32-disabled", "channels-last"} & set(by_id(report))
