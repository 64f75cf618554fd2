"""A wheel built from the repository, installed outside the source tree, renders reports."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

RUN_FIXTURE = REPO / "tests" / "data" / "run_reference_cnn"


def copy_source(destination: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "perfdoctor-runs", ".venv", "venv", ".hypothesis", "test-artifacts")
    shutil.copytree(REPO, destination, ignore=ignore)
    return destination


@pytest.mark.slow
def test_wheel_ships_the_templates_and_renders_a_report(tmp_path):
    source = copy_source(tmp_path / "source")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
        check=True, capture_output=True, text=True,
    )
    wheel = next(wheels.glob("perfdoctor-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, text=True,
    )
    assert (target / "perfdoctor" / "templates" / "report.html.j2").is_file()
    # The viewer ships whole: the vendored speedscope with its license, the pages' own files, and
    # the entry point TensorBoard finds the perfdoctor tab through.
    viewer = target / "perfdoctor" / "viewer"
    for shipped in ("vendor/speedscope/index.html", "vendor/speedscope/LICENSE", "vendor/speedscope/VENDORED.md", "static/index.js", "static/viewer.js"):
        assert (viewer / shipped).is_file(), shipped
    assert (target / "perfdoctor" / "templates" / "viewer" / "index.html.j2").is_file()
    (entry_points,) = target.glob("perfdoctor-*.dist-info/entry_points.txt")
    assert "[tensorboard_plugins]\nperfdoctor = perfdoctor.viewer.tensorboard_plugin:PerfdoctorPlugin" in entry_points.read_text()
    assert wheel.stat().st_size < 2_000_000, f"the wheel is {wheel.stat().st_size} bytes"
    run = shutil.copytree(RUN_FIXTURE, tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    program = (
        "import sys; sys.path.insert(0, sys.argv[1]); import perfdoctor, perfdoctor.cli;"
        "assert perfdoctor.__file__.startswith(sys.argv[1]), perfdoctor.__file__;"
        # every subpackage shipped: the rules are found by walking the package, the GPU analysis imported lazily
        "import perfdoctor.analysis.gpu, perfdoctor.rules.registry as r;"
        "assert sorted(x.id for x in r.builtin_rules()) == sys.argv[3].split(','), [x.id for x in r.builtin_rules()];"
        "sys.exit(perfdoctor.cli.main(['report', '-q', sys.argv[2]]))"
    )
    from perfdoctor.rules.registry import builtin_rules

    in_source = ",".join(sorted(rule.id for rule in builtin_rules()))
    result = subprocess.run([sys.executable, "-I", "-c", program, str(target), str(run), in_source], cwd=elsewhere, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    html = (run / "report.html").read_text()
    assert "<html" in html and "reference_cnn.py" in html
    report = json.loads((run / "report.json").read_text())
    assert report["schema"] == "perfdoctor.report/1" and report["steps"]["count"] == 12
