"""Issue 14 for `perfdoctor check` and `perfdoctor diff`: a report.json that is damaged, of
another version, hostile or not a file at all gives one line and exit status 2, or a result;
never a traceback, never a hang, never an input changed, never a control character from the
data on the terminal (nor a forged GitHub Actions command).

Three parts: the regression corpus (tests/data/bad_inputs/reports/), the cases no repository can
hold (FIFOs, symlink loops, diff.html that is an input), and a property-based harness that
damages the reference report.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from bad_input_helpers import (
    CORPUS, HARNESS, MANIFEST, assert_clean_terminal, assert_one_line, fingerprint, perfdoctor,
)
from hypothesis import given
from hypothesis import strategies as st

DATA = Path(__file__).parent.parent / "data"
REFERENCE = DATA / "report_reference_cnn.json"
REPORT_CASES = sorted(name for name in MANIFEST if name.startswith("reports/"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A pyproject.toml without budgets: only the flags each case gives apply."""
    path = tmp_path / "pyproject.toml"
    path.write_text("[project]\nname = 'x'\n")
    return path


def assert_no_forged_annotation(err: str) -> None:
    """Every GitHub Actions command printed is ours: data never starts a line of its own."""
    for line in err.splitlines():
        if line.startswith("::"):
            assert line.startswith(("::error title=perfdoctor::", "::warning title=perfdoctor::", "::notice title=perfdoctor::")), line


def gates(capsys, report: Path, config: Path, check_args: list[str]) -> dict[str, tuple[int, str, str]]:
    """`check` (text and JSON) and `diff` both ways on `report`, against the reference."""
    return {
        "check": perfdoctor(capsys, "check", report, "--config", config, *check_args),
        "check --format json": perfdoctor(capsys, "check", report, "--config", config, "--format", "json", *check_args),
        "diff": perfdoctor(capsys, "diff", REFERENCE, report),
        "diff reversed": perfdoctor(capsys, "diff", report, REFERENCE, "--format", "json"),
    }


def assert_gate_invariants(results: dict[str, tuple[int, str, str]]) -> None:
    for what, (code, out, err) in results.items():
        assert_clean_terminal(out + err)
        assert_no_forged_annotation(err)
        if code == 2:
            assert_one_line(code, err)
            assert out == "", (what, out)
        else:
            assert code in (0, 1), (what, code, err)  # 1: a budget failed
            if "json" in what:
                json.loads(out)  # stdout stays one JSON document


# ------------------------------------------------------------------ the regression corpus

@pytest.mark.parametrize("case", REPORT_CASES)
def test_regression_corpus(tmp_path, capsys, monkeypatch, config, case):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")  # annotations are printed too
    expected = MANIFEST[case]
    report = tmp_path / "report.json"
    shutil.copyfile(CORPUS / case, report)
    before = fingerprint([tmp_path])
    results = gates(capsys, report, config, expected["check"])
    assert fingerprint([tmp_path]) == before, "an input changed"
    assert_gate_invariants(results)
    for what, (code, _out, err) in results.items():
        exit_code = expected.get("diff_exit", expected["exit"]) if what.startswith("diff") else expected["exit"]
        if exit_code == 2:
            assert expected["stderr"] in assert_one_line(code, err), (what, err)
        else:
            assert code == 0, (what, err)


def test_the_reference_passes_the_corpus_budget(capsys, config):
    """The corpus' budget is one the undamaged report meets: a refusal is the damage's doing."""
    code, out, err = perfdoctor(capsys, "check", REFERENCE, "--config", config, *MANIFEST["reports/empty.json"]["check"])
    assert code == 0 and "passed" in out, out + err


def test_control_characters_from_a_report_are_escaped(tmp_path, capsys, monkeypatch, config):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    report = CORPUS / "reports/control_characters.json"
    code, out, err = perfdoctor(capsys, "check", report, "--config", config, "--fail-on", "info")
    assert code == 1, out + err  # the planted finding fails the gate: its title is printed
    assert "\\x1b[2J" in out + err and "\x1b" not in out + err
    assert_no_forged_annotation(err)
    code, out, err = perfdoctor(capsys, "diff", REFERENCE, report, "--out", tmp_path / "diff")
    assert code == 0 and "\\x1b" in out and "\x1b" not in out + err


# ------------------------------------------------------------------ what no repository can hold

def test_a_fifo_as_the_report_is_refused_at_once(tmp_path, capsys, config):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    for args in (["check", fifo, "--config", config, "--max-step-time-ms", "1000"], ["diff", REFERENCE, tmp_path]):
        code, out, err = perfdoctor(capsys, *args)  # a read would wait for a writer forever
        assert "FIFO" in assert_one_line(code, err), err


def test_a_device_and_a_symlink_loop_are_named_as_such(tmp_path, capsys):
    loop = tmp_path / "loop.json"
    loop.symlink_to(loop)
    code, _out, err = perfdoctor(capsys, "diff", REFERENCE, loop)
    assert "symlink loop" in assert_one_line(code, err)
    code, _out, err = perfdoctor(capsys, "diff", "/dev/zero", REFERENCE)
    assert "character device" in assert_one_line(code, err)


def test_diff_html_is_never_written_over_an_input(tmp_path, capsys):
    a = tmp_path / "diff.html"  # a report.json that happens to be named diff.html
    shutil.copyfile(REFERENCE, a)
    before = fingerprint([tmp_path])
    code, _out, err = perfdoctor(capsys, "diff", a, REFERENCE, "--out", tmp_path)
    assert "would overwrite it" in assert_one_line(code, err)
    assert fingerprint([tmp_path]) == before


def test_diff_html_is_never_written_through_a_symlink(tmp_path, capsys):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    (out / "diff.html").symlink_to(target)
    code, _out, err = perfdoctor(capsys, "diff", REFERENCE, REFERENCE, "--out", out)
    assert "not a regular file" in assert_one_line(code, err)
    assert target.read_text() == "keep me"


# ------------------------------------------------------------------ the property-based harness

REFERENCE_DOCUMENT = json.loads(REFERENCE.read_text())
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), st.just([]), st.just({}),
    st.just("\x1b[31m\r\n::error::forged"),
)


def _places(value, at=()):
    """Every (path, value) in a JSON document."""
    yield at, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _places(item, (*at, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places(item, (*at, index))


def _replaced(document, place, value):
    document = json.loads(json.dumps(document))
    holder = document
    for key in place[:-1]:
        holder = holder[key]
    holder[place[-1]] = value
    return document


@st.composite
def damaged_reports(draw) -> bytes:
    """The reference report with values replaced by odd ones, or its text cut or its bytes changed."""
    how = draw(st.sampled_from(["values", "cut", "bytes"]))
    if how == "values":
        document = REFERENCE_DOCUMENT
        for _ in range(draw(st.integers(1, 4))):
            places = [place for place, _ in _places(document) if place]  # an earlier change may have removed some
            document = _replaced(document, draw(st.sampled_from(places)), draw(ODD_VALUES))
        return json.dumps(document).encode()
    text = REFERENCE.read_bytes()
    if how == "cut":
        return text[: draw(st.integers(0, len(text)))]
    data = bytearray(text)
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@pytest.mark.slow
@HARNESS
@given(data=damaged_reports())
def test_any_damaged_report(capsys, data):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config = root / "pyproject.toml"
        config.write_text("[project]\nname = 'x'\n")
        report = root / "report.json"
        report.write_bytes(data)
        before = fingerprint([root])
        results = gates(capsys, report, config, ["--max-step-time-ms", "1000", "--fail-on", "critical"])
        assert fingerprint([root]) == before, "an input changed"
        assert_gate_invariants(results)
