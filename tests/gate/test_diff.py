"""`perfdoctor diff`'s comparison: step time, breakdown, operators per profiled step, findings."""

import base64
import hashlib
import re
from pathlib import Path

import pytest

from gate_helpers import finding, loaded, reference_report
from perfdoctor.gate.diff import build_diff, render_diff_html, text_lines


def op(name, self_ms):
    return {"name": name, "calls": 10, "self_ms": self_ms, "total_ms": self_ms, "input_dims": None}


@pytest.fixture
def pair(tmp_path):
    a, b = reference_report(), reference_report()
    a["steps"]["profiled"], b["steps"]["profiled"] = 5, 10  # B profiled twice as many steps
    a["operators"]["top"] = [op("aten::conv2d", 50.0), op("aten::addmm", 10.0), op("aten::relu", 4.0), op("aten::gone", 1.0)]
    b["operators"]["top"] = [op("aten::conv2d", 140.0), op("aten::addmm", 10.0), op("aten::relu", 2.0), op("<script>alert(1)</script>", 3.0)]
    b["steps"]["time_ms"] = {**a["steps"]["time_ms"], "p50": 25.0, "p95": 40.0}
    b["steps"]["breakdown"] = {**a["steps"]["breakdown"], "dataloader": 0.1164, "forward": 0.3691}
    a["findings"] = [finding("host-overhead-bound", "info", 0.05), finding("main-loop-preprocessing", "warning", 0.12), finding("same", "info", 0.02)]
    b["findings"] = [finding("dataloader-bottleneck", "critical", 0.35, "The step waits"), finding("main-loop-preprocessing", "critical", 0.31), finding("same", "info", 0.02)]
    return loaded(a, tmp_path / "a" / "report.json"), loaded(b, tmp_path / "b" / "report.json")


def test_step_time_changes_are_b_minus_a(pair):
    diff = build_diff(*pair)
    median = next(change for change in diff.step_time if change.label == "median")
    assert (median.a, median.b) == (22.351, 25.0)
    assert median.delta == pytest.approx(2.649) and median.relative == pytest.approx(2.649 / 22.351)
    dataloader = next(phase for phase in diff.breakdown if phase.phase == "dataloader")
    assert dataloader.share.delta == pytest.approx(0.1)


def test_operators_are_compared_per_profiled_step_and_matched_by_name(pair):
    diff = build_diff(*pair)
    # conv2d: 50 ms over 5 steps -> 140 ms over 10 steps: 10 -> 14 ms a step, slower.
    assert [(c.label, c.a, c.b) for c in diff.slower_operators] == [("aten::conv2d", 10.0, 14.0)]
    # addmm: 2 -> 1 ms a step and relu 0.8 -> 0.2: faster, the biggest gain first.
    assert [c.label for c in diff.faster_operators] == ["aten::addmm", "aten::relu"]
    assert diff.operators_only_in_a == ["aten::gone"] and diff.operators_only_in_b == ["<script>alert(1)</script>"]


def test_findings_that_appeared_changed_or_went_away(pair):
    changes = {change.id: change for change in build_diff(*pair).findings}
    assert set(changes) == {"dataloader-bottleneck", "main-loop-preprocessing", "host-overhead-bound"}  # "same" is unchanged
    assert changes["dataloader-bottleneck"].kind == "appeared" and changes["dataloader-bottleneck"].severity_b == "critical"
    assert changes["host-overhead-bound"].kind == "gone"
    changed = changes["main-loop-preprocessing"]
    assert changed.kind == "changed" and (changed.severity_a, changed.severity_b, changed.saving_b) == ("warning", "critical", 0.31)


def test_the_console_table(pair):
    text = "\n".join(text_lines(build_diff(*pair)))
    assert re.search(r"median\s+22\.35 ms\s+25\.00 ms\s+\+2\.65 ms \(\+11\.9%\)", text)
    assert re.search(r"dataloader\s+1\.6%\s+11\.6%\s+\+10\.0 pts", text)
    assert re.search(r"slower: aten::conv2d\s+10\.00 ms\s+14\.00 ms\s+\+4\.00 ms \(\+40\.0%\)", text)
    assert "+ dataloader-bottleneck (critical, saving 35%): The step waits" in text
    assert "~ main-loop-preprocessing: warning, saving 12% -> critical, saving 31%" in text
    assert "- host-overhead-bound (info, saving 5%): gone in B" in text


def test_without_operator_statistics_the_diff_says_so():
    a = loaded(reference_report(), Path("a/report.json"))
    diff = build_diff(a, a)
    assert not diff.operators_compared and not diff.findings
    text = "\n".join(text_lines(diff))
    assert "n/a: operator statistics need a profiled trace in both runs" in text
    assert re.search(r"median\s+22\.35 ms\s+22\.35 ms\s+\+0\.00 ms \(\+0\.0%\)", text)


def test_the_page_is_self_contained_escaped_and_its_script_allowed_by_hash(pair):
    html = render_diff_html(build_diff(*pair), *pair)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "aten::<wbr>conv2d" in html and "dataloader-bottleneck" in html and "reference_cnn.py" in html
    assert not re.search(r"""(src|href)=["']https?:""", html)
    policy = re.search(r"script-src '(sha256-[^']+)'", html).group(1)
    (script,) = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert policy == "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert html.count("<svg") >= 2  # both runs' breakdown bars


def _findings_section(html):
    return re.sub(r"<[^>]+>", " ", html.split('<section id="findings">')[1].split("</section>")[0])


def test_the_page_says_when_neither_run_has_findings(tmp_path):
    a, b = reference_report(), reference_report()
    a["findings"], b["findings"] = [], []
    pair = loaded(a, tmp_path / "a" / "report.json"), loaded(b, tmp_path / "b" / "report.json")
    text = _findings_section(render_diff_html(build_diff(*pair), *pair))
    assert "Neither run has findings." in text and "same" not in text
    b["findings"] = a["findings"] = [finding("same", "info", 0.02)]
    pair = loaded(a, tmp_path / "a2" / "report.json"), loaded(b, tmp_path / "b2" / "report.json")
    text = _findings_section(render_diff_html(build_diff(*pair), *pair))
    assert "The same 1 finding in both runs" in text
