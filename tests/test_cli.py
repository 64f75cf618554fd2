"""The command line: how `perfdoctor run` splits its own options from the script's, and how bad
input to perfdoctor itself ends (exit 2, one line on stderr, never a traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perfdoctor.cli import build_parser, parse, split_run_argv

WORKLOADS = Path(__file__).parent / "workloads"


def perfdoctor(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "perfdoctor", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_usage_error(result: subprocess.CompletedProcess) -> str:
    """Exit 2, one `perfdoctor...` line (or argparse's usage line and its error line), no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    if lines and lines[0].startswith("usage:"):
        assert len(lines) == 2, lines
        assert lines[1].startswith("perfdoctor") and "error:" in lines[1], lines
    else:
        assert len(lines) == 1, lines
        assert lines[0].startswith("perfdoctor"), lines
    return lines[-1]


# -- splitting the command line (in-process) -------------------------------------------------


def test_everything_after_the_script_goes_to_it_untouched():
    args = parse(["run", "--no-profile", "--out", "o", "train.py", "--", "-m", "x", "--max-steps", "3", "--out", "x", "-q"])
    assert args.script == "train.py" and args.module is None
    assert args.script_args == ["--", "-m", "x", "--max-steps", "3", "--out", "x", "-q"]
    assert args.no_profile and args.out == Path("o") and args.max_steps is None and not args.quiet


def test_module_and_its_arguments():
    args = parse(["run", "--max-steps", "4", "-m", "pkg.train", "--lr", "3e-4", "--max-steps", "9"])
    assert args.module == "pkg.train" and args.script is None
    assert args.script_args == ["--lr", "3e-4", "--max-steps", "9"] and args.max_steps == 4
    joined = parse(["run", "-mpkg.train", "-q"])
    assert joined.module == "pkg.train" and joined.script_args == ["-q"] and not joined.quiet


def test_double_dash_before_the_script_ends_perfdoctors_options():
    args = parse(["run", "-q", "--", "-weird-name.py", "--flag"])
    assert args.script == "-weird-name.py" and args.script_args == ["--flag"] and args.quiet


def test_option_values_that_look_like_scripts_are_not_taken_for_the_script():
    _, subparsers = build_parser()
    own, rest = split_run_argv(["--out", "runs/x.py", "--profile-steps", "2-3", "train.py", "a"], subparsers["run"])
    assert own == ["--out", "runs/x.py", "--profile-steps", "2-3", "train.py"] and rest == ["a"]
    args = parse(["run", "--out=o2", "train.py"])
    assert args.out == Path("o2") and args.script == "train.py"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--max-steps", "0", "x.py"],
        ["run", "--profile-steps", "5-2", "x.py"],
        ["run", "--host-interval", "0", "x.py"],
        ["run"],
        ["run", "--bogus", "x.py"],
    ],
)
def test_bad_run_options_are_usage_errors(argv, capsys):
    from perfdoctor.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error:" in err


def test_abbreviated_options_are_refused_by_name(capsys):
    """`--max 3 x.py` must not read as `--max-steps` with `3` taken for the script."""
    from perfdoctor.cli import main

    assert main(["run", "--max", "3", "x.py"]) == 2
    assert "unrecognized arguments: --max" in capsys.readouterr().err


# -- bad input, end to end (exit 2, one line, no traceback) ----------------------------------


def test_missing_script(tmp_path):
    result = perfdoctor("run", "--out", str(tmp_path / "run"), str(tmp_path / "no_such_script.py"))
    line = assert_usage_error(result)
    assert "no_such_script.py" in line
    assert not (tmp_path / "run").exists()


def test_missing_module(tmp_path):
    assert "no.such.module" in assert_usage_error(perfdoctor("run", "--out", str(tmp_path / "run"), "-m", "no.such.module", cwd=tmp_path))


def test_package_without_main_is_a_usage_error(tmp_path):
    (tmp_path / "plainpkg").mkdir()  # a namespace package: importable, but nothing to run
    (tmp_path / "plainpkg" / "helpers.py").write_text("X = 1\n")
    line = assert_usage_error(perfdoctor("run", "--out", str(tmp_path / "run"), "-m", "plainpkg", cwd=tmp_path))
    assert "plainpkg" in line and "__main__" in line


@pytest.mark.parametrize(
    "options",
    [["--max-steps", "0"], ["--profile-steps", "5-2"], ["--profile-steps", "x"], ["--bogus"], []],
    ids=["max-steps-0", "profile-steps-reversed", "profile-steps-garbage", "unknown-option", "no-script"],
)
def test_bad_options_end_to_end(tmp_path, options):
    script = [] if not options else [str(WORKLOADS / "show_argv.py")]
    result = perfdoctor("run", "--out", str(tmp_path / "run"), *options, *script)
    assert_usage_error(result)
    assert "STARTED-AS" not in result.stdout  # the script never ran
    assert not (tmp_path / "run").exists()


def test_no_command_at_all():
    assert_usage_error(perfdoctor())


def test_unusable_out_directory(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    result = perfdoctor("run", "--no-profile", "--out", str(blocker / "run"), str(WORKLOADS / "show_argv.py"))
    assert "a_file" in assert_usage_error(result)
    assert "STARTED-AS" not in result.stdout


def test_report_on_a_missing_path(tmp_path):
    line = assert_usage_error(perfdoctor("report", str(tmp_path / "nothing_here")))
    assert "nothing_here" in line


def test_report_on_a_directory_that_is_neither_a_run_nor_traces(tmp_path):
    (tmp_path / "notes.txt").write_text("just some file\n")
    assert_usage_error(perfdoctor("report", str(tmp_path)))
    assert not (tmp_path / "perfdoctor-report" / "report.json").exists()


def test_version_and_help_exit_0():
    version = perfdoctor("--version")
    assert version.returncode == 0 and version.stdout.startswith("perfdoctor ")
    help_ = perfdoctor("run", "--help")
    assert help_.returncode == 0 and "--max-steps" in help_.stdout


# -- the run directory ------------------------------------------------------------------------


@pytest.mark.slow
def test_reusing_an_out_directory_leaves_nothing_of_the_previous_run(tmp_path):
    """What an earlier run wrote there goes; what the user keeps there stays, even where the names
    look like perfdoctor's."""
    out = tmp_path / "run"
    (out / "raw").mkdir(parents=True)
    (out / "tb" / "old").mkdir(parents=True)
    old_trace = out / "tb" / "old" / "old.1.pt.trace.json.gz"
    old_trace.write_bytes((Path(__file__).parent / "data" / "traces" / "cpu_training_torch2.13.pt.trace.json.gz").read_bytes())
    (out / "raw" / "run.json").write_text(json.dumps({"schema": "perfdoctor.raw/1", "script": "old.py", "status": "completed", "exit_code": 0}))
    (out / "raw" / "profiler.json").write_text(json.dumps({"schema": "perfdoctor.raw/1", "enabled": True, "traces": ["tb/old/old.1.pt.trace.json.gz"], "profiled_steps": [5, 6]}))
    (out / "report.html").write_text("<html>old</html>")
    old_scalars = out / "tb" / "old" / "events.out.tfevents.1.host.1.0"
    old_scalars.write_bytes(b"")
    theirs = [out / "raw" / "run_config.json", out / "notes.json", out / "tb" / "exp" / "events.out.tfevents.1.host"]
    for path in theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"schema": "theirs"}')

    result = perfdoctor("run", "-q", "--no-profile", "--out", str(out), str(WORKLOADS / "show_argv.py"))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["script"].endswith("show_argv.py")
    assert report["steps"]["count"] == 0
    assert report["profiler"] is None and report["operators"] is None
    assert not (out / "raw" / "profiler.json").exists() and not old_trace.exists() and not old_scalars.exists()
    assert "old</html>" not in (out / "report.html").read_text()
    assert all(path.read_text() == '{"schema": "theirs"}' for path in theirs)
