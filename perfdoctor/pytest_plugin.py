"""perfdoctor's pytest plugin: performance budgets as tests.

    @pytest.mark.perf_budget(step_time_ms=50, dataloader_share=0.2, no_findings="warning")
    def test_training_speed(perfdoctor_run):
        run = perfdoctor_run(train, steps=30)          # a callable, run in this process
        # or: run = perfdoctor_run.script("train.py", "--epochs", "1", steps=30)   # `perfdoctor run`
        assert run.report["run"]["status"] == "stopped"

After the test body passes, the marker's budgets are checked against every run the fixture made
(the same code as `perfdoctor check`); a broken budget fails the test with the budget, what was
measured, the limit, the margin and the report's path. Registered through the `pytest11` entry
point; `-p no:perfdoctor` turns it off. torch is imported only when a run starts.

Options (and their ini twins): --perfdoctor-dir (perfdoctor_dir) keeps the run directories there
instead of the test's tmp_path, e.g. to upload them from CI; --perfdoctor-max-steps
(perfdoctor_max_steps) is the step count when a test gives none; --perfdoctor-no-profile
(perfdoctor_no_profile) runs without torch.profiler.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

MARKER = "perf_budget"
DEFAULT_MAX_STEPS = 20
HOST_INTERVAL_S = 0.1  # test runs are short: sample often enough to see the memory peak
_RUNS_KEY = pytest.StashKey["PerfdoctorRunner"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("perfdoctor", "perfdoctor performance budgets")
    group.addoption("--perfdoctor-dir", default=None, metavar="DIR",
                    help="keep the run directories under DIR (default: each test's tmp_path)")
    group.addoption("--perfdoctor-max-steps", type=int, default=None, metavar="N",
                    help=f"training steps of a run when the test gives none (default {DEFAULT_MAX_STEPS})")
    group.addoption("--perfdoctor-no-profile", action="store_true", default=None,
                    help="run without torch.profiler (faster; no operator statistics)")
    parser.addini("perfdoctor_dir", "keep perfdoctor run directories under this directory", default="")
    parser.addini("perfdoctor_max_steps", "training steps of a perfdoctor run when the test gives none", default=str(DEFAULT_MAX_STEPS))
    parser.addini("perfdoctor_no_profile", "run perfdoctor without torch.profiler", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(step_time_ms=None, p95_step_time_ms=None, dataloader_share=None, gpu_utilization=None, "
        "samples_per_second=None, peak_memory_mb=None, no_findings=None, finding_ids=()): fail the test when a "
        "perfdoctor run it made breaks these budgets (see perfdoctor check)",
    )


@dataclass
class PerfRun:
    """One run the fixture made: its report (report.json as a dict) and where it is. The budgets
    are checked on the report.json file itself, decoded into the typed report."""

    report: dict[str, Any]
    path: Path  # report.json
    result: Any = None  # the callable's return value (in-process runs)

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def __iter__(self) -> Iterator[Any]:  # report, path = perfdoctor_run(train)
        return iter((self.report, self.path))


@dataclass
class PerfdoctorRunner:
    """The `perfdoctor_run` fixture: call it with a training callable, or use `.script(...)`."""

    base_dir: Path
    max_steps: int
    profile: bool
    config_start: Path
    runs: list[PerfRun] = field(default_factory=list)

    def _next_dir(self) -> Path:
        return self.base_dir / (f"run-{len(self.runs)}" if self.runs else "run")

    def __call__(self, function: Callable[..., Any], *args: Any, steps: int | None = None, profile: bool | None = None, **kwargs: Any) -> PerfRun:
        from .config import load_config
        from .run.inprocess import run_callable

        done = run_callable(
            function, *args, out=self._next_dir(), max_steps=steps or self.max_steps,
            profile=self.profile if profile is None else profile, host_interval_s=HOST_INTERVAL_S,
            config=load_config(start=self.config_start), **kwargs,
        )
        run = PerfRun(report=done.report, path=done.report_path, result=done.result)
        self.runs.append(run)
        return run

    def script(self, script: str | Path, *args: str, steps: int | None = None, profile: bool | None = None, timeout: float = 600) -> PerfRun:
        """`perfdoctor run` in a subprocess: the script as CI would run it."""
        import json

        out = self._next_dir()
        command = [
            sys.executable, "-m", "perfdoctor", "run", "-q", "--out", str(out),
            "--max-steps", str(steps or self.max_steps), "--host-interval", str(HOST_INTERVAL_S),
        ]
        if not (self.profile if profile is None else profile):
            command.append("--no-profile")
        finished = subprocess.run([*command, str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout)
        report_path = out / "report.json"
        if finished.returncode != 0 or not report_path.is_file():
            pytest.fail(
                f"perfdoctor run {script} exited {finished.returncode}"
                f"{'' if report_path.is_file() else ' without a report'}:\n{finished.stderr[-4000:]}",
                pytrace=False,
            )
        run = PerfRun(report=json.loads(report_path.read_text(encoding="utf-8")), path=report_path)
        self.runs.append(run)
        return run


def _option(config: pytest.Config, name: str, ini: str) -> Any:
    value = config.getoption(name)
    return value if value is not None else config.getini(ini)


def _runs_dir(config: pytest.Config) -> Path | None:
    """--perfdoctor-dir relative to where pytest was started; the ini's relative to the ini file."""
    if config.getoption("perfdoctor_dir"):
        return Path(config.invocation_params.dir, config.getoption("perfdoctor_dir")).resolve()
    if config.getini("perfdoctor_dir"):
        return Path(config.inipath.parent if config.inipath else config.rootpath, config.getini("perfdoctor_dir")).resolve()
    return None


def _safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:120] or "test"


@pytest.fixture
def perfdoctor_run(request: pytest.FixtureRequest, tmp_path: Path) -> PerfdoctorRunner:
    config = request.config
    runs_dir = _runs_dir(config)
    base = runs_dir / _safe_name(request.node.nodeid) if runs_dir else tmp_path / "perfdoctor"
    try:
        max_steps = int(_option(config, "perfdoctor_max_steps", "perfdoctor_max_steps"))
    except ValueError:
        raise pytest.UsageError("perfdoctor_max_steps must be a whole number")
    if max_steps < 1:
        raise pytest.UsageError("--perfdoctor-max-steps must be at least 1")
    runner = PerfdoctorRunner(
        base_dir=base, max_steps=max_steps, profile=not _option(config, "perfdoctor_no_profile", "perfdoctor_no_profile"),
        config_start=Path(str(config.rootpath)),
    )
    request.node.stash[_RUNS_KEY] = runner
    return runner


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Runs after the test body passed (a failing body raises before this is called)."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return
    from .errors import PerfdoctorError
    from .gate.budgets import Budgets, check_budgets
    from .gate.reportfile import load_report

    # pytest.fail is called outside the except blocks: the message alone, no chained traceback.
    problem = f"{MARKER} takes keyword arguments only, e.g. {MARKER}(step_time_ms=120)" if marker.args else None
    budgets = Budgets()
    if problem is None:
        try:
            budgets = Budgets.from_marker(**marker.kwargs)
        except (TypeError, PerfdoctorError) as error:
            problem = f"{MARKER}: {error}"
    runner = item.stash.get(_RUNS_KEY, None)
    runs = runner.runs if runner is not None else []
    if problem is None and not runs:
        problem = f"{MARKER}: the test made no perfdoctor run to check (use the perfdoctor_run fixture)"
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    broken: list[str] = []
    for run in runs:
        item.user_properties.append(("perfdoctor_report", str(run.path)))
        try:  # the report.json the run wrote, decoded as `perfdoctor check` decodes it
            results = check_budgets(load_report(run.path), budgets)
        except PerfdoctorError as error:
            problem = f"{MARKER}: {error}"
            break
        broken += [result.line() for result in results if not result.ok]
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    if broken:
        reports = ", ".join(str(run.path) for run in runs)
        pytest.fail(f"{MARKER} broken:\n" + "\n".join(broken) + f"\nreport: {reports}", pytrace=False)
