"""report.html: renders every section of the typed report, escapes everything, fetches nothing."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import msgspec
from msgspec.structs import replace as changed

from gpu_runs import HEALTHY_GPU, HEALTHY_STEPS, V100
from perfdoctor.model.ddp import DdpInstance, DdpSection, RankRow
from perfdoctor.model.gpu import Mfu, OpCause, StallOp
from perfdoctor.model.report import Report, report_from_builtins, report_to_builtins
from perfdoctor.model.steps import PHASES, StepSeriesSection
from perfdoctor.report import charts
from perfdoctor.report.formatting import fmt_bytes, fmt_label, fmt_ms, fmt_num, fmt_pct, fmt_ranges, fmt_value, safe_url
from perfdoctor.report.html import render_html, write_report_html

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "report_reference_cnn.json"
HOSTILE = '</script><script>alert(1)</script>"><img src=x onerror=alert(1)>{{ 7*7 }} ünïcødé ✓ 火'


class Page(HTMLParser):
    """What a browser would see: elements, attributes, text, and what sits inside <script>."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        self._in_style = self._in_style or tag == "style"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        elif not self._in_style:
            self.text.append(data)

    def all(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        found = []
        for name, attributes in self.tags:
            if name != tag:
                continue
            if all(value in (attributes.get(key) or "").split() for key, value in attrs.items()):
                found.append(attributes)
        return found

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def reference_json() -> dict:
    return json.loads(FIXTURE.read_text())


def reference() -> Report:
    return report_from_builtins(reference_json())


def typed(document: dict) -> Report:
    """A report.json document as the renderer gets it: decoded strictly."""
    return report_from_builtins(document)


GPU_SECTION = changed(
    HEALTHY_GPU,
    device=changed(HEALTHY_GPU.device, name="NVIDIA H100 80GB HBM3", capability=(9, 0)),
    utilization=0.375,
    memory=changed(HEALTHY_GPU.memory, torch_peak_allocated_bytes=3 * 2**30, total_bytes=80 * 2**30),
    per_step=[],
    sync_causes=[OpCause(op="aten::item", per_step=3.0, ms_per_step=9.0)],
    stall_ops=[StallOp(op="sm90_xmma_gemm", ms_per_step=12.0)],
)
DDP_SECTION = DdpSection(
    backend="nccl", world_size=2, ranks_reported=2,
    ranks=[
        RankRow(rank=0, node="node-a", status="completed", steps=100, step_p50_ms=30.1, local_p50_ms=20.0, dataloader_ms=1.0,
                forward_ms=9.0, backward_ms=15.0, optimizer_ms=1.0, other_ms=4.1, comm_ms=5.0, exposed_comm_ms=1.0),
        RankRow(rank=1, node="node-b", status="completed", steps=100, step_p50_ms=41.9, local_p50_ms=31.0, dataloader_ms=1.0,
                forward_ms=9.0, backward_ms=15.0, optimizer_ms=1.0, other_ms=15.9, comm_ms=7.5, exposed_comm_ms=1.5),
    ],
    straggler=None, comm_ms_per_backward=6.0, exposed_comm_ms_per_backward=1.2, comm_source="DDP logger, rank 1",
    collectives_per_step=None, instances=[DdpInstance(module="Net")], data_parallel=[], synced_forwards_per_step_max=1,
    synced_forwards_per_step_median=1.0, unsynced_forwards_total=0, logged={"communication_share": 0.22},
)


def rich_json() -> dict:
    report = reference_json()
    report["run"].update(status="stopped", max_steps=100)
    report["findings"] = [
        {
            "id": "dataloader-bottleneck",
            "severity": "critical",
            "title": "The step waits on the DataLoader for 41% of its time",
            "evidence": {
                "wait_share": 0.41,
                "wait_p95_ms": 12.5,
                "num_workers": 0,
                "usable_cores": 8,
                "rss_peak_bytes": 1610612736,
                "per_step": [1.5, 2.25],
            },
            "estimated_saving": 0.34,
            "advice": "Load batches in parallel worker processes.\nStart with one worker per free core.",
            "fix": "loader = DataLoader(dataset, batch_size=64,\n                    num_workers=4, persistent_workers=True)",
            "docs": "https://example.org/docs/findings.md#dataloader-bottleneck",
            "area": "dataloader",
        },
        {
            "id": "cpu-thread-oversubscription",
            "severity": "info",
            "title": "More threads than cores",
            "evidence": {"intra_op_threads": 16, "processes": 4, "logical_cores": 8},
            "estimated_saving": 0.05,
            "advice": "Set torch.set_num_threads(2) in each process.",
            "fix": "torch.set_num_threads(2)",
            "docs": "https://example.org/docs/findings.md#cpu-thread-oversubscription",
            "area": "cpu",
        },
    ]
    report["steps"]["other_parts"] = {"before_forward": 0.01, "loss": 0.0022}
    report["operators"].update(
        windows=1,
        step_ms=31.2,
        ops_per_step=412.0,
        median_op_us=8.5,
        small_op_share=0.12,
        gap_share=0.034,
        top=[
            {"name": "aten::convolution_backward", "calls": 30, "self_ms": 40.25, "total_ms": 41.0, "input_dims": "[[64, 16, 32, 32], [32, 16, 3, 3]]"},
            {"name": "aten::mkldnn_convolution", "calls": 30, "self_ms": 30.5, "total_ms": 31.75, "input_dims": None},
        ],
    )
    report["gpu"] = report_to_builtins(GPU_SECTION)
    report["gpu"]["per_step"] = [{**msgspec.to_builtins(row), "step": i} for i, row in enumerate([PER_STEP_ROW] * 40)]
    report["ddp"] = report_to_builtins(DDP_SECTION)
    report["environment"]["env"] = {"OMP_NUM_THREADS": "4", "CUDA_VISIBLE_DEVICES": "0,1"}
    report["notes"] = ["The first step (warm-up) is left out of the statistics."]
    report["profiler"]["stood_aside"] = {"at_step": 6, "reason": "another profiler was already running"}
    return report


PER_STEP_ROW = {"step": 0, "step_ms": 100.0, "kernel_ms": 37.5, "utilization": 0.375, "idle_ms": 60.0, "idle_host_wait_ms": 50.0,
                "kernels": 400, "syncs": 3, "pageable_copies": 0}


def rich() -> Report:
    return typed(rich_json())


def minimal() -> Report:
    return typed(minimal_json())


def minimal_json() -> dict:
    return {
        "schema": "perfdoctor.report/1",
        "run": {
            "script": "train.py",
            "module": None,
            "argv": [],
            "exit_code": 1,
            "status": "failed",
            "started": None,
            "duration_s": None,
            "ranks": 1,
            "error": {"type": "RuntimeError", "message": "CUDA out of memory"},
            "max_steps": None,
            "source": "run",
        },
        "environment": {},
        "steps": {
            "count": 0,
            "profiled": 0,
            "measured": 0,
            "excluded": "",
            "mode": None,
            "source": "step clock",
            "time_ms": None,
            "breakdown": None,
            "breakdown_ms": None,
            "other_parts": None,
            "series": {"stride": 1, "step": [], "duration_ms": [], "profiled": []},
        },
        "dataloader": {"loaders": []},
        "host": None,
        "operators": None,
        "profiler": None,
        "gpu": None,
        "ddp": None,
        "notes": [],
        "findings": [],
    }


def section(html: str, anchor: str) -> str:
    """The markup of one <section id=anchor>, for assertions about that section only."""
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S)
    assert match, f"no section {anchor}"
    return match.group(1)


def visible(markup: str) -> str:
    return Page(markup).visible


def assert_no_none_or_nan(html: str) -> None:
    words = set(re.findall(r"[A-Za-z]+", Page(html).visible))
    assert not words & {"None", "nan", "NaN", "inf", "Infinity", "undefined"}, words & {"None", "nan", "NaN", "inf", "Infinity"}


# --- the real run -----------------------------------------------------------------------------


def test_reference_report_renders_every_section():
    html = render_html(reference())
    page = Page(html)
    text = page.visible
    assert "<title>perfdoctor · reference_cnn.py</title>" in html
    assert "python /work/main/sample_workloads/reference_cnn.py --epochs 1" in text
    assert page.all("span", **{"class": "status-completed"})
    assert "exit code 0" in text and "2026-11-27 10:00:44 UTC" in text and "6.1 s" in text
    # Findings: none, and it says so.
    assert "No findings." in visible(section(html, "findings"))
    # Where a step goes: the shares and ms per step of every phase.
    step = visible(section(html, "step"))
    for phase, share, ms in [
        ("dataloader", "1.6%", "0.434 ms"),
        ("forward", "46.9%", "12.4 ms"),
        ("backward", "46.6%", "12.3 ms"),
        ("optimizer", "2.8%", "0.751 ms"),
        ("other", "2%", "0.532 ms"),
    ]:
        assert re.search(rf"{phase} {re.escape(ms)} {re.escape(share)}", step), (phase, step)
    assert "Mean step 26.5 ms (median 22.4 ms, p95 45.5 ms" in step and "over 93 measured steps" in step
    assert "before forward" in step and "loss" in step
    # Timeline: one bar per step, the profiled steps shaded, the warm-up step clipped.
    timeline = section(html, "timeline")
    assert timeline.count('<g class="step-bar">') == 100
    assert timeline.count('<g class="band">') == 1 and "profiled steps 5–10" in timeline
    assert "step 0 168 ms" in visible(timeline)
    # Operators: the (empty) statistics say n/a, and how to open the trace.
    operators = visible(section(html, "operators"))
    link = Page(section(html, "operators")).all("a", **{"class": "trace-link"})
    assert [a["href"] for a in link] == ["trace.html?trace=tb/reference_cnn/vm_3672.1795773647809.pt.trace.json.gz"]
    assert "perfdoctor view RUN" in operators and "tensorboard --logdir RUN/tb" in operators
    # DataLoader, host, environment.
    loader = visible(section(html, "dataloader"))
    assert "TensorDataset, 6,400 samples" in loader and "49.5 ms" in loader and "5.68 ms" in loader
    host = visible(section(html, "host"))
    assert "1.84 cores" in host and "389.2 MiB" in host and "92.4% (p90 100%)" in host and "68.7/s" in host
    environment = visible(section(html, "environment"))
    assert "2.13.0+cpu" in environment and "OpenMP" in environment
    # Which steps the trace holds (6-10, as --profile-steps and ProfilerStep#N count them), and the
    # profiler's warm-up step 5, which ran under it but is not in the trace.
    assert "it traced steps 6–10 (0-based" in environment
    assert "It also ran during step 5, its warm-up, which the trace leaves out: steps 5–10 all ran under the profiler" in environment
    assert_no_none_or_nan(html)


def test_write_report_html(tmp_path):
    path = write_report_html(reference(), tmp_path / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!doctype html>")


# --- rich and minimal reports -----------------------------------------------------------------


def test_rich_report_shows_findings_gpu_and_ddp():
    html = render_html(rich())
    findings = section(html, "findings")
    text = visible(findings)
    first, second = text.index("The step waits on the DataLoader"), text.index("More threads than cores")
    assert first < second
    assert "up to 34%" in text and "up to 5%" in text
    assert 'style="width: 34.0%"' in findings
    # Evidence, formatted by the unit in each key.
    for shown in ("wait share 41%", "wait p95 12.5 ms", "num workers 0", "rss peak 1.50 GiB", "per step 1.5, 2.25"):
        assert shown in text, shown
    assert "loader = DataLoader(dataset, batch_size=64,\n                    num_workers=4" in findings
    assert Page(findings).all("a", href="https://example.org/docs/findings.md#dataloader-bottleneck")
    assert len(Page(findings).all("article", **{"class": "sev-critical"})) == 1
    header = visible(html.split('<section id="findings">')[0])
    assert "1 critical" in header and "1 info" in header and "ended by --max-steps 100" in header
    # other_parts: the timed parts of "other" and the rest.
    step = visible(section(html, "step"))
    assert "before forward 0.265 ms 1%" in step and "rest of other" in step
    # Operators.
    ops = section(html, "operators")
    assert ops.count("<tr>") == 3 and "aten::<wbr>convolution_<wbr>backward" in ops and "40.2 ms" in visible(ops)
    assert "412" in visible(ops) and "8.5 µs" in visible(ops) and "12%" in visible(ops)
    # GPU: the headline facts, the causes as tables, every measurement as generic tables.
    gpu = section(html, "gpu")
    assert "NVIDIA H100 80GB HBM3" in gpu and "37.5%" in visible(gpu) and "3.00 GiB" in visible(gpu)
    assert "per step" in visible(gpu) and gpu.count("<tr>") > 40  # the 40 per-step rows, as one table
    assert "sm90_xmma_gemm" in gpu and "aten::item" in gpu
    # DDP: the per-rank table, then the rest.
    ddp = section(html, "ddp")
    ranks = re.search(r'<table class="data records sortable ranks">(.*?)</table>', ddp, re.S).group(1)
    assert ranks.count("<tr>") == 3 and "node-b" in ranks and "41.9 ms" in visible(ranks)
    assert "communication share 22%" in visible(ddp) and "nccl" in ddp
    nav = Page(html.split("<main>")[0]).all("a")
    assert {"#gpu", "#ddp"} <= {a["href"] for a in nav}
    env = visible(section(html, "environment"))
    assert "OMP_NUM_THREADS 4" in env and "stood aside at step 6: another profiler was already running" in env
    assert "The first step (warm-up) is left out" in env
    assert_no_none_or_nan(html)


def test_minimal_report_says_not_measured():
    html = render_html(minimal())
    text = Page(html).visible
    assert Page(html).all("span", **{"class": "status-failed"})
    assert "<strong>RuntimeError</strong>: <span class=\"message\">CUDA out of memory</span>" in html
    assert "exit code 1" in text
    assert "No findings." in text
    for anchor in ("step", "timeline", "operators", "dataloader", "host"):
        assert "Not measured" in visible(section(html, anchor)), anchor
    assert 'id="gpu"' not in html and 'id="ddp"' not in html
    assert_no_none_or_nan(html)


def durations_only() -> Report:
    """A report from a trace with step durations and nothing else measured."""
    document = minimal_json()
    document["run"].update(source="trace", status="completed", script=None, exit_code=None, error=None)
    document["steps"].update(count=3, source="trace", mode="trace", series={"stride": 1, "step": [], "duration_ms": [1.0, 2.0, 3.0], "profiled": []})
    return typed(document)


@pytest.mark.parametrize("report", [minimal, durations_only], ids=["minimal", "trace-durations-only"])
def test_degenerate_reports_render(report):
    html = render_html(report())
    assert "Not measured" in html
    assert_no_none_or_nan(html)


def test_trace_report_with_durations_only():
    html = render_html(durations_only())
    assert "from profiler traces" in html and "<h1>traces</h1>" in html
    timeline = section(html, "timeline")
    assert timeline.count('<g class="step-bar">') == 3 and "step 2: 3.00 ms" in timeline
    assert "(it was built from profiler traces)" in visible(section(html, "host"))


def test_unknown_fields_are_ignored_and_non_finite_numbers_are_na():
    document = rich_json()
    document["brand_new_section"] = {"x": 1}  # a newer perfdoctor's report: read by this one
    document["host"]["new_metric_ms"] = 3.0
    document["dataloader"]["loaders"][0]["new_stat_ms"] = 2.5
    report = typed(document)
    # Decoding refuses NaN (and JSON has no infinity); a report built in memory may still hold them.
    report.steps.time_ms.mean = float("nan")
    report.steps.time_ms.p95 = float("inf")
    html = render_html(report)
    assert "Mean step n/a (median 22.4 ms, p95 n/a" in visible(section(html, "step"))
    assert "new stat" not in html and "brand_new_section" not in html
    assert_no_none_or_nan(html)


# --- escaping and offline ---------------------------------------------------------------------


def hostile() -> Report:
    """Every free-text field of the report holds markup, script and template syntax."""
    report = rich_json()
    report["run"]["script"] = f"/tmp/{HOSTILE}.py"
    report["run"]["argv"] = [HOSTILE, "--x", HOSTILE]
    report["run"]["error"] = {"type": HOSTILE, "message": HOSTILE}
    report["findings"][0].update(title=HOSTILE, advice=HOSTILE, fix=HOSTILE, id=HOSTILE, area=HOSTILE)
    report["findings"][0]["evidence"] = {HOSTILE: HOSTILE, "n": [HOSTILE], "rows": [{HOSTILE: HOSTILE}]}
    report["findings"][1]["docs"] = "javascript:alert(1)"
    report["operators"]["top"][0].update(name=HOSTILE, input_dims=HOSTILE)
    report["operators"]["trace_files"] = [HOSTILE]
    report["operators"]["skipped"] = [HOSTILE]
    report["environment"]["env"] = {HOSTILE: HOSTILE}
    report["environment"]["versions"]["torch"] = HOSTILE
    report["notes"] = [HOSTILE]
    report["steps"]["excluded"] = HOSTILE
    report["dataloader"]["loaders"][0]["dataset"]["type"] = HOSTILE
    report["dataloader"]["loaders"][0]["args"][HOSTILE] = HOSTILE
    report["gpu"]["device"]["name"] = HOSTILE
    report["gpu"]["sync_causes"][0]["op"] = HOSTILE
    report["gpu"]["stall_ops"][0]["op"] = HOSTILE
    report["ddp"]["ranks"][0]["node"] = HOSTILE
    report["ddp"]["logged"] = {HOSTILE: HOSTILE}
    report["profiler"]["stood_aside"]["reason"] = HOSTILE
    return typed(report)


def test_hostile_strings_are_escaped_everywhere():
    html = render_html(hostile())
    page = Page(html)
    assert page.all("img") == []
    assert len(page.all("script")) == 1
    assert all("alert(1)" not in script for script in page.scripts)
    assert "onerror" not in {key for _, attributes in page.tags for key in attributes}
    assert "javascript:" not in " ".join(str(a.get("href")) for a in page.all("a"))
    # The text is shown as text, intact (the template syntax is not evaluated).
    assert page.visible.count("{{ 7*7 }}") >= 10 and "ünïcødé ✓ 火" in page.visible
    assert 'onerror=alert(1)>' in page.visible
    assert "<img" not in html and "</script><script>" not in html
    assert "onload" not in {key for _, attributes in page.tags for key in attributes}


def test_page_is_offline_and_locked_down():
    html = render_html(rich())
    page = Page(html)
    for _, attributes in page.tags:
        assert "src" not in attributes
    for tag, attributes in page.tags:
        assert tag not in ("link", "iframe", "object", "embed", "img", "base")
    lowered = html.lower()
    assert "@import" not in lowered
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//", lowered)
    assert not re.search(r"src\s*=\s*['\"]?\s*(https?:)?//", lowered)
    # Every absolute URL on the page is a link (finding docs, Perfetto), never a fetch.
    for url in re.findall(r"https?://[^\s\"'<>]+", html):
        assert any(url == a.get("href") for a in page.all("a")), url
    # The Content-Security-Policy forbids fetches and allows only the page's own script.
    csp = page.all("meta", **{"http-equiv": "Content-Security-Policy"})[0]["content"]
    assert "default-src 'none'" in csp
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp


# --- charts -----------------------------------------------------------------------------------


def series(n: int, profiled: set[int] = frozenset()) -> StepSeriesSection:
    return StepSeriesSection(
        stride=1,
        step=list(range(n)),
        duration_ms=[10.0] * n,
        profiled=[i in profiled for i in range(n)],
        **{f"{phase}_ms": [2.0] * n for phase in PHASES},
    )


def test_timeline_bars_for_a_known_series():
    chart = charts.step_timeline(series(3, profiled={1}))
    assert chart["mode"] == "bars" and len(chart["bars"]) == 3
    assert all(len(bar["segments"]) == 5 for bar in chart["bars"])
    assert [band["steps"] for band in chart["bands"]] == [(1, 1)]
    # Stacked: each segment starts where the one below ends, the top one at 10 ms.
    bar = chart["bars"][0]
    for lower, upper in zip(bar["segments"], bar["segments"][1:]):
        assert math.isclose(upper["y"] + upper["h"], lower["y"], abs_tol=0.15)
    plot = chart["plot"]
    assert math.isclose(bar["segments"][-1]["y"], plot["bottom"] - 10 / chart["top_ms"] * plot["h"], abs_tol=0.15)
    report = reference()
    report.steps.series = series(3, profiled={1})
    timeline = section(render_html(report), "timeline")
    chart = timeline.split("<figcaption")[0]
    assert chart.count('<g class="step-bar">') == 3 and chart.count("<rect") == 3 * 5 + 2  # bars; one band and its strip


def test_timeline_single_step_and_long_series():
    one = charts.step_timeline(series(1))
    assert len(one["bars"]) == 1 and one["xticks"][0]["label"] == "0"
    long = charts.step_timeline(series(1000, profiled=set(range(5, 11))))
    assert long["mode"] == "area" and len(long["areas"]) == 5
    assert all(len(area["points"].split()) == 2 * 1000 for area in long["areas"])
    assert len(long["bands"]) == 1
    report = reference()
    report.steps.series = series(1000)
    timeline = section(render_html(report), "timeline")
    assert timeline.count('<polygon class="area"') == 5 and timeline.count('data-count="1000"') == 5


def test_timeline_clips_outliers_but_not_ordinary_steps():
    data = series(50)
    data.duration_ms[0] = 500.0
    data.forward_ms[0] = 492.0
    chart = charts.step_timeline(data)
    assert chart["top_ms"] < 500 and [c["step"] for c in chart["clipped"]] == [0]
    assert charts.step_timeline(series(50))["clipped"] == []


def test_host_cpu_chart_points():
    chart = charts.host_charts(reference().host)["cpu"]
    assert [line["label"] for line in chart["lines"]] == ["whole machine", "this process", "DataLoader workers & children"]
    assert all(line["count"] == 8 and len(line["markers"]) == 8 for line in chart["lines"])
    assert chart["guides"][0]["label"] == "2 usable cores"
    host = section(render_html(reference()), "host")
    assert host.count('<polyline class="line"') == 4  # three CPU lines and RSS
    assert host.count('<circle class="marker"') == 4 * 8


def test_breakdown_bar_segments():
    bar = charts.breakdown_bar({"dataloader": 0.25, "forward": 0.5, "other": 0.25, "new_phase": 0.0})
    assert [s["phase"] for s in bar["segments"]] == ["dataloader", "forward", "other"]
    assert [s["w"] for s in bar["segments"]] == [240.0, 480.0, 240.0]
    assert charts.breakdown_bar(None) is None and charts.breakdown_bar({"forward": float("nan")}) is None


# --- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, key, shown",
    [
        (0.4691, "share", "46.9%"),
        (0.0004, "gap_share", "<0.1%"),
        (0.5, "estimated_saving", "50%"),
        (0.434, "wait_ms", "0.434 ms"),
        (22.351, "p50_ms", "22.4 ms"),
        (167.952, "x_ms", "168 ms"),
        (12500.0, "x_ms", "12.5 s"),
        (0.004, "x_ms", "4 µs"),
        (8.5, "median_op_us", "8.5 µs"),
        (408055808, "rss_peak_bytes", "389.2 MiB"),
        (383.52, "rss_mb", "383.5 MiB"),
        (92.38, "system_cpu_percent", "92.4%"),
        (68.678, "involuntary_switches_per_s", "68.7/s"),
        (6.121, "duration_s", "6.1 s"),
        (6400, "length", "6,400"),
        (True, "pin_memory", "yes"),
        (None, "anything_ms", "n/a"),
        (float("nan"), "x", "n/a"),
        ([1, 2], "x_ms", "1.00 ms, 2.00 ms"),
        ("text", "x_ms", "text"),
    ],
)
def test_fmt_value(value, key, shown):
    assert fmt_value(value, key) == shown


def test_small_formatters():
    assert fmt_ms(None) == "n/a" and fmt_pct(float("inf")) == "n/a" and fmt_num(0.0) == "0"
    assert fmt_bytes(0) == "0 B" and fmt_bytes(3 * 2**30) == "3.00 GiB"
    assert fmt_label("wait_p50_ms") == "wait p50" and fmt_label("interval_s") == "interval"
    assert fmt_ranges([5, 6, 7, 9, 11, 12]) == "5–7, 9, 11–12" and fmt_ranges([]) == "none"
    assert safe_url("https://x.org/a") == "https://x.org/a"
    assert safe_url("javascript:alert(1)") is None and safe_url("https://x.org/a b") is None


def test_report_object_is_not_modified():
    report = rich()
    before = copy.deepcopy(report)
    render_html(report)
    assert report == before and report_to_builtins(report) == report_to_builtins(before)


def test_the_gpu_section_shows_device_time_and_causes():
    report = reference()
    report.gpu = changed(
        HEALTHY_GPU,
        utilization=0.42,
        steps=changed(HEALTHY_STEPS, step_ms=50.0, kernel_ms=21.0, memcpy_ms=4.0, idle_after_sync_ms=9.0, idle_launch_gaps_ms=6.0,
                      idle_host_stalls_ms=10.0, idle_other_ms=0.0, kernels=480.0, median_kernel_us=12.0, tensor_core_share=0.3,
                      syncs=3.0, pageable_copies=2.0),
        sync_causes=[OpCause(op="aten::item", per_step=3.0, ms_per_step=9.0)],
        mfu=Mfu(mfu=0.21, flops_per_step=1e12, flops_source="shapes", flops_counted={}, achieved_tflops=65.0, peak_tflops=312.0,
                precision="half", device_model="A100"),
    )
    html = render_html(report)
    gpu = html[html.index('<section id="gpu">'):]
    assert "NVIDIA A100-SXM4-80GB" in gpu and "42%" in gpu and "compute capability 8.0; Tensor Cores" in gpu
    assert "idle: after a sync" in gpu and "9.00 ms" in gpu and "aten::item" in gpu and "21%" in gpu
    assert "Every GPU measurement" in gpu
    assert_no_none_or_nan(html)


def test_a_gpu_section_without_a_trace_or_mfu_says_so():
    report = reference()
    report.gpu = changed(HEALTHY_GPU, device=V100, steps=None, kernels=None, conv=None, optimizer=None, mfu=None, utilization_source="nvml")
    html = render_html(report)
    gpu = visible(section(html, "gpu"))
    assert "Tesla V100-SXM2-32GB" in gpu and "MFU n/a" in gpu
    assert "Where the device's time goes" not in gpu
    assert_no_none_or_nan(html)


def test_templates_come_from_the_package_through_one_environment():
    import jinja2

    from perfdoctor.report import templates

    environment = templates.environment()
    assert environment is templates.environment()  # built once
    assert isinstance(environment.loader, jinja2.PackageLoader) and environment.autoescape is True
    assert Path(environment.get_template("report.html.j2").filename).parent == Path(templates.__file__).parents[1] / "templates"


# --- defects seen in a real browser (issue 15) -----------------------------------------------------


def test_a_report_of_foreign_traces_claims_no_run_status():
    html = render_html(durations_only())
    badges = Page(html.split('<section id="findings">')[0]).all("span", **{"class": "badge"})
    assert [b.get("class") for b in badges if "status-" in (b.get("class") or "")] == ["badge status-trace"]
    assert "from traces" in Page(html).visible and "badge status-completed" not in html


def test_no_findings_is_said_once():
    text = Page(render_html(reference())).visible
    assert text.count("No findings") + text.count("no findings") == 2  # the header's badge, and the section's sentence
    assert text.count("Nothing measured in this run calls for a change") == 1


def test_the_header_shows_samples_per_second_as_check_measures_it():
    from perfdoctor.gate.budgets import samples_per_second

    report = reference()
    header = visible(render_html(report).split('<section id="findings">')[0])
    measured = samples_per_second(report)
    assert measured is not None and f"Samples/s {fmt_num(measured.value)}" in header and "Samples/s 2,863" in header


def test_findings_link_to_their_places_in_the_trace():
    document = rich_json()
    document["findings"][0]["locations"] = [{
        "label": "the longest DataLoader wait (12.00 ms) in step 7, 0.10 ms after it starts", "trace": "tb/x/w.pt.trace.json.gz",
        "start_ns": 1000, "end_ns": 9000, "step": 7, "op": "enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__", "rank": None,
    }]
    html = render_html(typed(document))
    (link,) = Page(section(html, "findings")).all("a", **{"class": "trace-link"})
    assert link["href"] == ("trace.html?trace=tb%2Fx%2Fw.pt.trace.json.gz&start_ns=1000&end_ns=9000"
                            "&op=enumerate%28DataLoader%29%23_SingleProcessDataLoaderIter.__next__"
                            "&label=the+longest+DataLoader+wait+%2812.00+ms%29+in+step+7%2C+0.10+ms+after+it+starts")
    assert "In the trace" in visible(section(html, "findings"))


def test_the_ddp_section_has_fixed_columns_and_no_nested_generic_tables():
    html = render_html(rich())
    ddp = section(html, "ddp")
    heads = re.findall(r'<th scope="col" title="([a-z0-9_]+)"', ddp.split("</thead>")[0])
    assert heads == ["rank", "node", "status", "steps", "step_p50_ms", "local_p50_ms", "dataloader_ms", "forward_ms",
                     "backward_ms", "optimizer_ms", "other_ms", "comm_ms", "exposed_comm_ms"]
    assert "table.kv table.kv" not in ddp and ddp.count('<table class="kv') <= 2  # DDP's log, folded away


@pytest.mark.parametrize("shared", [False, True])
def test_the_job_s_waiting_is_blamed_on_others_only_when_the_machine_was_shared(shared):
    # On a quiet machine the job's threads still wait a little for a CPU (their own scheduling
    # latency, measured 2 to 4% here): beside others' 0.0 cores it must not read as others' doing.
    document = reference_json()
    document["host"]["contention"] = {
        "samples": 20, "interval_s": 0.5, "usable_cores": 2, "job_cpu_cores": 1.2, "others_cpu_cores": 1.1 if shared else 0.0,
        "main_wait_share": 0.4 if shared else 0.004, "others_wait_share": 0.48 if shared else 0.043,
        "lost_cpu_share": 0.5 if shared else 0.043, "shared": shared,
    }
    host = visible(section(render_html(typed(document)), "host"))
    blamed = ("Job's threads waiting for a CPU" in host, "CPU time the job lost to others" in host)
    assert blamed == (shared, shared), host
    assert "Training thread waiting for a CPU" in host and ("48%" in host) == shared and "4.3%" not in host
