"""perfdoctor's own small JSON files (raw files, report.json): one error type and one line for
whatever is wrong, and the same answer whatever state the interpreter is in."""

from __future__ import annotations

import codecs
import sys

import pytest

from perfdoctor import jsonfile
from perfdoctor.stream import lines


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.fixture
def high_recursion_limit():
    """Some library raised Python's recursion limit (the decoder's own limit follows it)."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)
    yield
    sys.setrecursionlimit(previous)


@pytest.mark.parametrize("limit", ["default", "raised"])
def test_nesting_beyond_the_limit_is_refused_whatever_the_recursion_limit(request, limit):
    if limit == "raised":
        request.getfixturevalue("high_recursion_limit")
    with pytest.raises(jsonfile.UnreadableJSON, match="nested too deeply"):
        jsonfile.loads(deep(jsonfile.MAX_DEPTH + 1))
    found = lines.Records()
    lines.decode_lines(b'{"sample": ' + deep(jsonfile.MAX_DEPTH + 1) + b"}\n" + b'{"sample": 1}\n', found)
    assert found.skipped == 1 and found.records == [{"sample": 1}]


def test_many_brackets_that_are_not_deep_are_read():
    document = b"[" + b",".join([b"[[1]]"] * 2000) + b"]"
    assert len(jsonfile.loads(document)) == 2000


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"  \n ", "only whitespace"),
        (b'{"a": NaN}', "JSON is malformed"),
        (b'{"a": 1e400}', "Number out of range"),
        (b'{"a": [1, ' + b"9" * 400 + b"]}", "an integer beyond 64 bits at $.a[1]"),
        ('{"a": 1}'.encode("utf-16"), "UTF-16 or UTF-32"),
        (codecs.BOM_UTF8 + b"{}", "byte-order mark"),
        (b'{"a": "\xff"}', "invalid UTF-8 at byte 7"),
    ],
)
def test_what_is_wrong_is_said_in_one_line(data, message):
    with pytest.raises(jsonfile.UnreadableJSON) as caught:
        jsonfile.loads(data)
    assert message in str(caught.value) and "\n" not in str(caught.value)
