"""Terminal safety: data printed by perfdoctor never carries a control character to the terminal,
and paths in printed commands are one shell word that names the same file."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from perfdoctor.model.report import report_from_builtins
from perfdoctor.report.console import print_summary
from perfdoctor.terminal import printable, shell_quote

CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize("text, shown", [
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("csi\x9b2J nel\x85", "csi\\x9b2J nel\\x85"),
    ("a\nb\rc\td", "a\\nb\\rc\\td"),
    ("del\x7f nul\x00", "del\\x7f nul\\x00"),
    ("\u202eevil\u2066", "\\u202eevil\\u2066"),
    (os.fsdecode(b"bytes-\xff\xfe"), "bytes-\\xff\\xfe"),
    ("aten::mm · café 中文 ✓", "aten::mm · café 中文 ✓"),
])
def test_printable(text, shown):
    assert printable(text) == shown
    assert not CONTROL.search(printable(text))


def test_printable_takes_paths_and_bytes():
    assert printable(Path("/tmp/x\x1by")) == "/tmp/x\\x1by"
    assert printable(b"caf\xe9") == "caf\\xe9"


@pytest.mark.parametrize("name", [
    "plain", "with space", "it's", "$(rm -rf ~)", "`x`", "semi;colon", "\x1b[31mred", "new\nline",
    os.fsdecode(b"bytes-\xff"), "back\\slash'quote", "-dash", "",
])
def test_shell_quote_is_one_word_naming_the_same_path(tmp_path, name):
    quoted = shell_quote(tmp_path / name / "tb")
    assert not CONTROL.search(quoted)
    # bash reads the word back as exactly the bytes of the path
    result = subprocess.run(["bash", "-c", f"printf %s {quoted}"], capture_output=True, check=True)
    assert result.stdout == os.fsencode(tmp_path / name / "tb")
    if name.isprintable():  # ordinary names: exactly what shlex.quote writes
        assert quoted == shlex.quote(str(tmp_path / name / "tb"))


def test_the_summary_escapes_data_and_quotes_the_tensorboard_command(tmp_path):
    document = json.loads((REPO / "tests" / "data" / "report_reference_cnn.json").read_text())
    document["run"].update(script="train\x1b[2J.py", exit_code=0, duration_s=1.0)
    document["findings"] = [{"severity": "warning", "id": "x\x9b", "title": "op \x1b]0;owned\x07aten::mm is slow\nperfdoctor: fake",
                             "estimated_saving": 0.2, "evidence": {}, "advice": "", "fix": "", "docs": "", "area": "cpu"}]
    document["notes"] = ["GPU \x1b[31mA100\r\nfake line", "\u202etrace"]
    report = report_from_builtins(document)
    out = tmp_path / "my run\x1b[0m"
    stream = io.StringIO()
    print_summary(report, out, stream)
    text = stream.getvalue()
    assert not CONTROL.search(text), repr(text)
    assert len(text.splitlines()) == 8  # no line forged by a newline in the data
    assert "op \\x1b]0;owned\\x07aten::mm is slow\\nperfdoctor: fake" in text
    assert f"tensorboard --logdir {shell_quote(out / 'tb')}" in text and "$'" in text
    clean = io.StringIO()
    print_summary(report, tmp_path / "my run", clean)
    assert f"tensorboard --logdir '{tmp_path}/my run/tb'" in clean.getvalue()
