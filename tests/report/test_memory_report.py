"""The memory section of report.html (charts at step ends with the limit drawn, the trends, an
out-of-memory end), memory as TensorBoard scalars (live from the stream, and written again from a
report), and the console's line."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import msgspec

from conftest import make_run
from perfdoctor.analysis.memory import memory_section
from perfdoctor.model.memory import OomEvent
from perfdoctor.model.report import report_from_builtins, report_to_builtins
from perfdoctor.model.run import RunInfo
from perfdoctor.report import memory_charts
from perfdoctor.report.html import render_html
from perfdoctor.report.json_report import build_report
from perfdoctor.rules.registry import evaluate

MIB, GIB = 2**20, 2**30
HOSTILE = '</script><script>alert(1)</script>"><img src=x onerror=alert(1)>'


class Text(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.feed(html)

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def section(html: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', html, re.S)
    assert match, anchor
    return match.group(1)


def leaking_run(per_step=3 * MIB, gpu=False, limit=24 * GIB, steps=300):
    samples = {
        "step": list(range(1, steps + 1)),
        "t_ns": [int(s * 0.1e9) for s in range(1, steps + 1)],
        "rss": [500 * MIB + per_step * s for s in range(1, steps + 1)],
        "children_rss": [0] * steps, "children": [0] * steps,
    }
    raw = {"meta": {"limit_bytes": limit, "limit_source": "ram"}, "samples": samples, "cuda": None, "oom": None, "cost": None}
    if gpu:
        raw["cuda"] = {"device": 0, "name": "Fake", "total_bytes": 16 * GIB, "limit_bytes": 16 * GIB, "peaks_per_window": True}
        samples["cuda_allocated"] = [4 * GIB + 2 * MIB * s for s in range(1, steps + 1)]
        samples["cuda_reserved"] = [6 * GIB] * steps
        samples["cuda_peak_allocated"] = [5 * GIB + 2 * MIB * s for s in range(1, steps + 1)]
    data = make_run(steps=steps)
    data.run = RunInfo(script="leak.py", argv=["--steps", str(steps)], duration_s=steps * 0.1)
    host = {"samples": {"memory_used_bytes": [3 * GIB]}}
    data.memory = memory_section(raw, host, data.run, {}, data.series, data.dataloaders)
    return data


def rendered(data):
    report = build_report(data, evaluate(data))
    return report, render_html(report_from_builtins(json.loads(msgspec.json.encode(report))))


def test_a_leak_is_charted_with_its_trend_and_projection():
    report, html = rendered(leaking_run())
    assert any(f.id == "memory-growth" for f in report.findings)
    memory = section(html, "memory")
    text = Text(memory).text
    assert "Host memory at step ends" in text and "At the measured rate" in text
    assert "Limit not drawn: limit (RAM): 24.0 GiB" in text  # 24 GiB over a ~1.4 GiB process: off the chart
    assert memory.count('<polyline class="line"') == 2  # the process and its fitted trend
    assert memory.count('<polyline class="line dashed"') == 2  # the trend and the projection to the limit
    assert "limit 24.0 GiB" in text  # drawn on the projection chart
    assert "growing: grows steadily" in text and "3.0 MiB" in text
    assert "The job's length: 300 steps (the script's --steps 300)" in text
    assert 'href="#memory"' in html
    assert "None" not in text.split() and "nan" not in text.split()


def test_the_limit_is_drawn_when_it_is_in_view_and_the_gpu_charted():
    data = leaking_run(limit=GIB + GIB // 2, gpu=True, per_step=0)
    _, html = rendered(data)
    memory = section(html, "memory")
    text = Text(memory).text
    assert "GPU memory at step ends" in text and "limit (RAM) 1.5 GiB" in text and "device limit 16.0 GiB" in text
    assert "At the measured rate" in text  # the GPU's allocated memory grows 2 MiB a step
    assert memory.count('class="guide"') == 3


def test_an_oom_is_shown_with_its_allocator_summary_escaped():
    data = leaking_run(per_step=0)
    assert data.memory is not None
    data.memory.oom = OomEvent(kind="cuda", step=41, phase="backward", module_path=HOSTILE, message=HOSTILE,
                               summary=f"|=== summary ===|\n{HOSTILE}", source="train.py:9 in main")
    report, html = rendered(data)
    memory = section(html, "memory")
    assert "<img" not in html and "onerror=alert(1)>" in Text(memory).text
    assert "The run died of CUDA out-of-memory at step 41" in Text(memory).text
    assert "<pre" in memory and "|=== summary ===|" in memory
    assert any(f.id == "out-of-memory" for f in report.findings)


def test_leak_sites_and_ranks_are_tables():
    from perfdoctor.model.memory import LeakSite, RankMemory

    data = leaking_run()
    assert data.memory is not None
    data.memory.leak_sites = [LeakSite(op=HOSTILE, device="cpu", bytes_per_step=3 * MIB, allocations_per_step=1.0)]
    data.memory.ranks = [RankMemory(rank=r, host_rss_peak_bytes=(r + 1) * GIB, gpu_peak_allocated_bytes=None, gpu_peak_reserved_bytes=None)
                         for r in range(2)]
    _, html = rendered(data)
    text = Text(section(html, "memory")).text
    assert "Allocated in the profiled steps and never freed" in text and "onerror=alert(1)>" in text and "<img" not in html
    assert "Per rank" in text and "2.00 GiB" in text


def test_no_memory_section_says_not_measured():
    data = make_run()
    report, html = rendered(data)
    assert report.memory is None and "Not measured: no memory samples" in Text(section(html, "memory")).text
    assert memory_charts.build(None) is None


def test_report_json_round_trips_the_memory_section():
    report, _ = rendered(leaking_run(gpu=True))
    document = report_to_builtins(report)
    assert document["memory"]["trends"][0]["subject"] == "host_process"
    again = report_from_builtins(json.loads(json.dumps(document)))
    assert again.memory == report.memory


def test_memory_scalars_for_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from perfdoctor.report.tensorboard import LiveScalars, memory_limits, write_scalars

    chunk = {"first": 0, "step": [1, 2, 3], "t_ns": [10**8, 2 * 10**8, 3 * 10**8], "rss": [MIB, 2 * MIB, 3 * MIB],
             "children_rss": [0, 0, 0], "cuda_allocated": [GIB, GIB, None]}
    live = LiveScalars(tmp_path / "live")
    live.origin_unix_s = 1_700_000_000.0
    live.memory(chunk, memory_limits({"limit_bytes": 16 * GIB}, {"limit_bytes": 80 * GIB}))
    live.close()
    events = EventAccumulator(str(tmp_path / "live"))
    events.Reload()
    rss = events.Scalars("memory/process_rss_mb")
    assert [(e.step, e.value) for e in rss] == [(1, 1.0), (2, 2.0), (3, 3.0)]
    assert rss[0].wall_time == 1_700_000_000.1
    assert [e.value for e in events.Scalars("memory/gpu_allocated_mb")] == [1024.0, 1024.0]
    assert events.Scalars("memory/host_limit_mb")[0].value == 16 * 1024 and events.Scalars("memory/gpu_limit_mb")[0].value == 80 * 1024

    data = leaking_run(gpu=True)
    data.run = RunInfo(script="leak.py", started="2026-11-30T00:00:00+00:00")
    write_scalars(data, tmp_path / "again")
    events = EventAccumulator(str(tmp_path / "again"))
    events.Reload()
    assert {"memory/process_rss_mb", "memory/gpu_allocated_mb", "memory/host_limit_mb", "memory/gpu_limit_mb"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("memory/process_rss_mb")) == 300


def test_the_live_view_follows_the_memory_stream(tmp_path):
    from collect_helpers import Harness
    from perfdoctor.collect.collectors.memory import MemoryCollector
    from perfdoctor.report.tensorboard import LiveScalars
    from perfdoctor.run.live import Follower

    harness = Harness(tmp_path, steps=True)
    collector = MemoryCollector(budget_share=1e9)
    collector.start(harness.ctx)
    for index in range(5):
        collector._on_step_end(index)
    collector.stop()
    harness.writer.flush()
    scalars = LiveScalars(tmp_path / "tb")
    follower = Follower(harness.rundir, None, scalars)
    follower.poll()
    scalars.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.step for e in events.Scalars("memory/process_rss_mb")] == [1, 2, 3, 4, 5]
    assert "memory/host_limit_mb" in events.Tags()["scalars"]
    assert Path(tmp_path / "tb").is_dir()


def test_the_console_says_when_memory_grows_or_ran_out():
    from perfdoctor.report.console import memory_line, summary_lines

    report, _ = rendered(leaking_run())
    assert memory_line(report) == "the training process's resident memory grows 3.0 MiB per step: the limit in about 12 min at this rate"
    assert any(line.startswith("  memory: ") for line in summary_lines(report, Path("/tmp/run")))
    flat, _ = rendered(leaking_run(per_step=0))
    assert memory_line(flat) is None
    data = leaking_run(per_step=0)
    assert data.memory is not None
    data.memory.oom = OomEvent(kind="cuda", step=41, phase="backward", module_path="GPT.blocks.3")
    assert memory_line(rendered(data)[0]) == "out of GPU memory at step 41 in backward (GPT.blocks.3)"
