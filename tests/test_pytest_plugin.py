"""The pytest plugin, run in a subprocess pytest through pytester: budgets on a tiny in-process
training run flip pass/fail, failures carry the reason and the report's path (JUnit XML too),
options and ini twins work, and `-p no:perfdoctor` turns it all off."""

import json
import xml.etree.ElementTree as ElementTree

pytest_plugins = ["pytester"]

# Each step sleeps 30 ms: the median step lasts at least that long, whatever the machine does.
TRAINING = '''
import time

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset


def train(sleep_s=0.03):
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(TensorDataset(torch.randn(400, 8), torch.randn(400, 1)), batch_size=4)
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        time.sleep(sleep_s)
        optimizer.step()
    return "finished"
'''

TESTS = TRAINING + '''

@pytest.mark.perf_budget(step_time_ms=1000, p95_step_time_ms=5000, peak_memory_mb=100000)
def test_within_budget(perfdoctor_run):
    run = perfdoctor_run(train)
    assert run.report["run"]["status"] == "stopped"
    assert run.path.name == "report.json" and run.path.is_file()


@pytest.mark.perf_budget(step_time_ms=25)
def test_over_budget(perfdoctor_run):
    perfdoctor_run(train)


@pytest.mark.perf_budget(peak_memory_mb=1)
def test_over_memory_budget(perfdoctor_run):
    report, path = perfdoctor_run(train, steps=12)
    assert report["steps"]["count"] == 12


@pytest.mark.perf_budget(gpu_utilization=0.5)
def test_unmeasured_budget(perfdoctor_run):
    perfdoctor_run(train, steps=3)


def test_no_marker_no_check(perfdoctor_run):
    run = perfdoctor_run(train, steps=4)
    assert run.result is None  # stopped by max steps before returning
    run = perfdoctor_run(train, 0.0, steps=1000)
    assert run.result == "finished" and run.report["run"]["status"] == "completed"
'''


def write_tests(pytester, source):
    pytester.makepyfile(test_training=source)
    pytester.makeini("[pytest]\nperfdoctor_max_steps = 8\nperfdoctor_no_profile = true\n")


def test_budgets_pass_and_fail_with_readable_reasons_in_junit(pytester):
    write_tests(pytester, TESTS)
    runs = pytester.path / "kept-runs"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--junitxml={pytester.path / 'junit.xml'}", f"--perfdoctor-dir={runs}")
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("failed")) == (2, 3), result.stdout.str()[-3000:]

    junit = ElementTree.parse(pytester.path / "junit.xml").getroot()
    cases = {case.get("name"): case for case in junit.iter("testcase")}
    assert cases["test_within_budget"].find("failure") is None
    over = cases["test_over_budget"].find("failure").get("message")
    report = runs / "test_training.py_test_over_budget" / "run" / "report.json"
    assert "perf_budget broken" in over and "FAIL  max-step-time-ms: median step time" in over
    assert "limit 25.00 ms: over by" in over and str(report) in over
    assert report.is_file() and json.loads(report.read_text())["steps"]["count"] == 8  # the ini's perfdoctor_max_steps
    memory = cases["test_over_memory_budget"].find("failure").get("message")
    assert "FAIL  max-peak-memory-mb: peak memory" in memory and "(host RSS peak), limit 1.0 MiB" in memory
    unmeasured = cases["test_unmeasured_budget"].find("failure").get("message")
    assert "measured no GPU" in unmeasured
    properties = {p.get("name"): p.get("value") for p in cases["test_within_budget"].iter("property")}
    assert properties["perfdoctor_report"].endswith("run/report.json")
    result.stdout.fnmatch_lines(["*FAILED test_training.py::test_over_budget - Failed: perf_budget broken:*"])


def test_a_script_run_through_perfdoctor_run(pytester):
    pytester.makepyfile(train_script=TRAINING + "\ntrain()\n")
    pytester.makepyfile(test_script='''
import pytest


@pytest.mark.perf_budget(step_time_ms=25)
def test_script_over_budget(perfdoctor_run):
    run = perfdoctor_run.script("train_script.py", steps=6, profile=False)
    assert run.report["run"]["status"] == "stopped" and run.report["steps"]["count"] == 6
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL  max-step-time-ms: median step time*limit 25.00 ms*report.json*"])


def test_disabled_with_p_no_perfdoctor(pytester):
    write_tests(pytester, TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:perfdoctor", "-k", "within_budget", "-W", "default")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'perfdoctor_run' not found*", "*Unknown pytest.mark.perf_budget*"])
    help_text = pytester.runpytest_subprocess("-p", "no:perfdoctor", "--help").stdout.str()
    assert "--perfdoctor-dir" not in help_text
    assert "--perfdoctor-max-steps" in pytester.runpytest_subprocess("--help").stdout.str()
