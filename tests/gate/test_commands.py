"""`perfdoctor check` and `perfdoctor diff` end to end through perfdoctor's command line."""

import json
import shutil
import subprocess
import sys

import pytest

from gate_helpers import REFERENCE_RUN, finding, perfdoctor, recorded_series, reference_report, report_with_series, write_run


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "run", reference_report())


def test_check_passes_when_every_budget_holds(monkeypatch, capsys, run):
    status, out, err = perfdoctor(monkeypatch, capsys, "check", str(run), "--max-step-time-ms", "30", "--max-dataloader-share", "0.05", "--fail-on", "warning")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == f"perfdoctor check {run / 'report.json'}"
    assert "OK    max-step-time-ms: median step time 22.35 ms <= 30.00 ms" in lines
    assert lines[-1] == "perfdoctor check: passed (3 budgets held)"


def test_check_fails_with_one_line_per_broken_budget(monkeypatch, capsys, run):
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(run / "report.json"), "--max-step-time-ms", "20", "--max-p95-step-time-ms", "40", "--max-peak-memory-mb", "1000")
    assert status == 1
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 2
    assert failed[0] == f"FAIL  max-step-time-ms: median step time 22.35 ms, limit 20.00 ms: over by 2.35 ms (+11.8%) [{run / 'report.json'}]"
    assert "p95 step time 45.51 ms, limit 40.00 ms: over by 5.51 ms (+13.8%)" in failed[1]
    assert out.splitlines()[-1] == "perfdoctor check: FAILED (2 of 3 budgets broken)"


def test_budgets_come_from_pyproject_and_flags_win(monkeypatch, capsys, run, tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.perfdoctor.budgets]\nmax_step_time_ms = 20\nfail_on_ids = ['dataloader-bottleneck']\n")
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(run), "--config", str(pyproject))
    assert status == 1 and "FAIL  max-step-time-ms" in out and "OK    fail-on-id dataloader-bottleneck" in out
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(run), "--config", str(pyproject), "--max-step-time-ms", "25")
    assert status == 0 and "OK    max-step-time-ms: median step time 22.35 ms <= 25.00 ms" in out
    monkeypatch.chdir(tmp_path)  # the nearest pyproject.toml, as `perfdoctor run` finds it
    assert perfdoctor(monkeypatch, capsys, "check", str(run))[0] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["check", "{run}"], "nothing to check"),
        (["check", "{run}", "--min-gpu-utilization", "0.5"], "measured no GPU"),
        (["check", "{run}/missing", "--max-step-time-ms", "1"], "no such file or directory"),
        (["check", "{run}", "--max-regression", "0.1", "--max-step-time-ms", "100"], "--max-regression needs --baseline"),
        (["check", "{run}", "--config", "{run}/pyproject.toml", "--max-step-time-ms", "1"], "config file not found"),
        (["check", "{run}", "--max-step-time-ms", "-3"], "must be a number above 0"),
        (["check", "{run}", "--fail-on", "fatal"], "invalid choice"),
        (["diff", "{run}", "{run}/missing"], "no such file or directory"),
    ],
)
def test_bad_usage_and_unreadable_input_exit_2_with_one_line(monkeypatch, capsys, run, argv, message):
    status, out, err = perfdoctor(monkeypatch, capsys, *[word.format(run=run) for word in argv])
    assert status == 2
    assert message in err and "Traceback" not in err
    assert err.count("error:") == 1


def test_a_corrupt_or_foreign_report_exits_2(monkeypatch, capsys, tmp_path):
    (tmp_path / "report.json").write_text('{"schema": "something/else"}')
    status, _, err = perfdoctor(monkeypatch, capsys, "check", str(tmp_path), "--max-step-time-ms", "1")
    assert status == 2 and err.strip() == f"perfdoctor: error: {tmp_path / 'report.json'} has schema 'something/else'; this perfdoctor reads 'perfdoctor.report/1'"


@pytest.mark.parametrize("command", ["check", "diff"])
def test_a_report_of_the_wrong_shape_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path, command):
    report = reference_report()
    report["steps"]["time_ms"]["p50"] = "fast"  # a string where the contract has a number
    write_run(tmp_path / "bad", report)
    argv = ["check", str(tmp_path / "bad"), "--max-step-time-ms", "1"] if command == "check" else ["diff", str(write_run(tmp_path / "good", reference_report())), str(tmp_path / "bad")]
    status, out, err = perfdoctor(monkeypatch, capsys, *argv)
    assert status == 2 and out == ""
    assert err.strip() == (
        f"perfdoctor: error: {tmp_path / 'bad' / 'report.json'} is not a valid perfdoctor.report/1 report: "
        "Expected `float | null`, got `str` - at `$.steps.time_ms.p50`"
    )


def test_json_output_is_one_document(monkeypatch, capsys, run):
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(run), "--max-step-time-ms", "20", "--min-samples-per-second", "1000", "--format", "json")
    document = json.loads(out)
    assert status == 1 and document["exit_status"] == 1 and document["passed"] is False
    step, throughput = document["budgets"]
    assert (step["budget"], step["measured"], step["limit"], step["ok"]) == ("max-step-time-ms", 22.351, 20.0, False)
    assert step["over"] == pytest.approx(2.351) and step["over_relative"] == pytest.approx(0.11755)
    assert throughput["ok"] is True and throughput["measured"] == pytest.approx(64000 / 22.351)
    assert document["regression"] is None


def test_github_actions_annotations(monkeypatch, capsys, run, tmp_path):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(run), "--max-step-time-ms", "20", "--max-p95-step-time-ms", "100")
    errors = [line for line in out.splitlines() if line.startswith("::")]
    assert status == 1 and len(errors) == 1
    assert errors[0].startswith("::error title=perfdoctor::max-step-time-ms: median step time 22.35 ms") and "over by 2.35 ms" in errors[0]
    few = write_run(tmp_path / "few", report_with_series({"stride": 1, "step": [0, 1, 2], "duration_ms": [9.0, 10.0, 11.0], "profiled": [False] * 3}))
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(run), "--baseline", str(few))
    assert status == 0 and any(line.startswith("::notice title=perfdoctor::baseline: inconclusive") for line in out.splitlines())
    status, out, err = perfdoctor(monkeypatch, capsys, "check", str(run), "--max-step-time-ms", "20", "--format", "json")
    assert json.loads(out)["exit_status"] == 1 and err.startswith("::error title=perfdoctor::")


def test_baseline_regression_found_in_recorded_runs(monkeypatch, capsys, tmp_path):
    baseline = write_run(tmp_path / "main", report_with_series(recorded_series("clean_a")))
    slower = write_run(tmp_path / "pr", report_with_series(recorded_series("slow15_a")))
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(slower), "--baseline", str(baseline), "--max-regression", "0.10")
    line = next(line for line in out.splitlines() if line.startswith("baseline:"))
    assert status == 1 and line.startswith("baseline: regression: median step")
    assert "ratio 1.1" in line and "95% CI" in line and "candidate steps" in line and "baseline steps" in line
    assert out.splitlines()[-1] == "perfdoctor check: FAILED (baseline regression)"
    same = write_run(tmp_path / "again", report_with_series(recorded_series("clean_b")))
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(same), "--baseline", str(baseline), "--format", "json")
    assert status == 0 and json.loads(out)["regression"]["verdict"] == "ok"


def test_strict_fails_an_inconclusive_comparison(monkeypatch, capsys, tmp_path):
    clean = write_run(tmp_path / "a", report_with_series(recorded_series("clean_a")))
    noisy = write_run(tmp_path / "b", report_with_series(recorded_series("noisy_c")))
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(noisy), "--baseline", str(clean))
    assert status == 0 and "baseline: inconclusive" in out and "straddles the limit" in out
    status, out, _ = perfdoctor(monkeypatch, capsys, "check", str(noisy), "--baseline", str(clean), "--strict")
    assert status == 1 and out.splitlines()[-1] == "perfdoctor check: FAILED (baseline inconclusive (--strict))"


def test_diff_prints_a_table_and_writes_a_page(monkeypatch, capsys, tmp_path):
    a = write_run(tmp_path / "a", reference_report())
    slower = reference_report()
    slower["steps"]["time_ms"]["p50"] = 30.0
    slower["findings"] = [finding("dataloader-bottleneck", "warning", 0.2)]
    b = write_run(tmp_path / "b", slower)
    status, out, err = perfdoctor(monkeypatch, capsys, "diff", str(a), str(b), "--out", str(tmp_path / "out"))
    assert status == 0
    assert "median" in out and "+7.65 ms (+34.2%)" in out and "+ dataloader-bottleneck (warning, saving 20%)" in out
    assert (tmp_path / "out" / "diff.html").is_file() and "diff.html" in err
    status, out, _ = perfdoctor(monkeypatch, capsys, "diff", str(a), str(b), "--format", "json")
    document = json.loads(out)
    assert status == 0 and document["schema"] == "perfdoctor.diff/1" and document["findings"][0]["kind"] == "appeared"


def test_diff_of_a_real_run_directory(monkeypatch, capsys, tmp_path):
    run = shutil.copytree(REFERENCE_RUN, tmp_path / "run")
    assert perfdoctor(monkeypatch, capsys, "report", "-q", str(run))[0] == 0
    status, out, _ = perfdoctor(monkeypatch, capsys, "diff", str(run), str(tmp_path / "run" / "report.json"))
    assert status == 0 and "reference_cnn.py, 12 steps, stopped" in out and "Breakdown" in out


def test_check_and_diff_import_nothing_heavy(tmp_path):
    """A CI gate must start fast: no torch, numpy or jinja2, and few modules at all. Counted, not
    timed: import time on a busy CI runner says more about the runner than about perfdoctor."""
    run = write_run(tmp_path / "run", reference_report())
    program = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import perfdoctor.cli as cli\n"
        f"assert cli.main(['check', {str(run)!r}, '--max-step-time-ms', '100', '--baseline', {str(run)!r}]) == 0\n"
        f"assert cli.main(['diff', {str(run)!r}, {str(run)!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'jinja2', 'psutil'))\n"
        "assert not heavy, heavy\n"
        "print(len(set(sys.modules) - before))\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = int(result.stdout.strip().splitlines()[-1])
    assert imported < 200, f"check and diff imported {imported} modules"  # about 100 when written
