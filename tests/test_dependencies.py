"""The dependency policy's files agree: setup.cfg's bounds, constraints/, .ci/run and the README.

tools/test-dependencies installs these versions and runs the suite; this keeps the files it reads
from drifting apart (a bound raised in setup.cfg but not in lowest.txt would go untested).
"""

from __future__ import annotations

import configparser
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import REPO

SETUP_CFG = REPO / "setup.cfg"
LOWEST = REPO / "constraints" / "lowest.txt"
KNOWN_GOOD = REPO / "constraints" / "known-good.txt"


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(SETUP_CFG)
    return parser


def requirements(value: str) -> list[Requirement]:
    return [Requirement(line) for line in value.splitlines() if line.strip()]


def runtime() -> list[Requirement]:
    return requirements(setup_cfg()["options"]["install_requires"])


def extra_requirements() -> list[Requirement]:
    return requirements(setup_cfg()["options.extras_require"]["test"])


def pins(path) -> dict[str, Requirement]:
    """A constraints file's lines by canonical name; each must be one exact pin."""
    found: dict[str, Requirement] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{path.name}: not an exact pin: {line}"
        name = canonicalize_name(requirement.name)
        assert name not in found, f"{path.name}: {name} pinned twice"
        found[name] = requirement
    return found


def pinned_version(requirement: Requirement) -> Version:
    return Version(next(iter(requirement.specifier)).version)


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert len(bounds) == 1, f"setup.cfg: {requirement} needs exactly one lower bound (>=)"
    return bounds[0]


def known_good_python() -> str:
    match = re.search(r"on Python (\d+\.\d+)", KNOWN_GOOD.read_text())
    assert match, "known-good.txt does not say which Python it was recorded on"
    return match.group(1)


def test_every_runtime_dependency_is_pinned_at_its_lower_bound_in_lowest():
    lowest = pins(LOWEST)
    declared = {canonicalize_name(requirement.name): requirement for requirement in runtime()}
    assert set(lowest) == set(declared), "constraints/lowest.txt and setup.cfg name different dependencies"
    for name, requirement in declared.items():
        assert pinned_version(lowest[name]) == lower_bound(requirement), f"{name}: lowest.txt pins {lowest[name]}, setup.cfg says {requirement}"
        assert str(lowest[name].marker) == str(requirement.marker), f"{name}: markers differ"


def test_upper_bounds_are_explained_by_a_comment():
    lines = SETUP_CFG.read_text().splitlines()
    start = lines.index("install_requires =") + 1
    block = []
    for line in lines[start:]:
        if not line.strip() or not line.startswith((" ", "\t")):
            break
        block.append(line.strip())
    assert len([line for line in block if not line.startswith("#")]) == len(runtime())
    for previous, line in zip([""] + block, block):
        if line.startswith("#"):
            continue
        capped = [spec for spec in Requirement(line).specifier if spec.operator in {"<", "<=", "!=", "==", "~="}]
        assert not capped or previous.startswith("#"), f"setup.cfg: {line} caps releases without a comment above it saying which and why"


def test_known_good_pins_every_dependency_inside_its_bounds():
    known_good = pins(KNOWN_GOOD)
    environment = {"python_version": known_good_python()}
    for requirement in runtime() + extra_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        name = canonicalize_name(requirement.name)
        assert name in known_good, f"constraints/known-good.txt has no pin for {name}"
        version = pinned_version(known_good[name])
        assert requirement.specifier.contains(version, prereleases=True), f"known-good {name}=={version} is outside setup.cfg's {requirement}"


def test_the_test_extra_is_pinned_exactly():
    for requirement in extra_requirements():
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"setup.cfg test extra: {requirement} is not pinned with =="


def test_ci_runs_the_readme_test_command_and_no_other():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"Set up and run the tests[^\n]*\n\n```\n([^\n]+)\n```", readme)
    assert match, "README.md: the test command's block is not where it was"
    command = match.group(1)
    assert command.endswith("python -m pytest") and "pip install torch==" in command
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert ci.count(command) == 1, ".ci/run does not run the README's test command verbatim"
    others = [line for line in ci if "pytest" in line and line != command and not line.lstrip().startswith("#")]
    assert not others, f".ci/run runs more than the README's command: {others}"
