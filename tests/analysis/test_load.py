"""Loading a run directory into RunData: raw files are typed at the edge, and a raw file (or a
block of one) of the wrong shape costs only its own section, with a note saying why."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO
from perfdoctor.analysis.load import load_run
from perfdoctor.model.environment import Environment

RUN = REPO / "tests" / "data" / "run_reference_cnn"


@pytest.fixture
def run(tmp_path):
    return shutil.copytree(RUN, tmp_path / "run")


def edit(run, name, change):
    path = run / "raw" / f"{name}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_reference_run_loads_into_typed_sections(run):
    data = load_run(run)
    assert isinstance(data.environment, Environment)
    assert data.environment.cpu.usable_cores == 2 and data.environment.backends.matmul_allow_tf32 is False
    assert data.environment.settings_taken_at == "end of step 0"
    assert data.profiler.window.start == 4 and data.profiler.profiled_steps == [3, 4, 5]
    assert data.notes == ["The run was stopped cleanly after 12 steps (--max-steps)."]


def test_a_settings_block_of_the_wrong_shape_costs_only_that_block(run):
    edit(run, "settings", lambda s: s["cpu"].update(logical_cores="two"))
    data = load_run(run)
    assert data.environment.cpu is None and data.environment.threads.intra_op == 2
    (note,) = [n for n in data.notes if "raw/settings.json cpu" in n]
    assert "Expected `int | null`, got `str` - at `$.logical_cores`" in note and "left out of the report" in note


def test_a_profiler_file_of_the_wrong_shape_costs_only_the_profiler_section(run):
    edit(run, "profiler", lambda p: p.update(profiled_steps="3-5"))
    data = load_run(run)
    assert data.profiler is None and data.steps.count == 12
    assert any("raw/profiler.json" in note and "$.profiled_steps" in note for note in data.notes)


def test_an_unknown_status_is_said_not_hidden(run):
    edit(run, "run", lambda r: r.update(status="vanished"))
    data = load_run(run)
    assert data.run.status == "failed"
    assert any("'vanished'" in note for note in data.notes)
