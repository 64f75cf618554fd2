"""Finding JSON structure in a byte buffer without decoding it.

Two tools. :func:`last_split` is the fast heuristic: the last ``}`` , ``{`` boundary in a buffer,
which in a ``traceEvents`` array is almost always the boundary between two events.
:func:`value_end` and :func:`scan_elements` are exact (they follow strings and nesting), slower
(a Python loop over tokens), and used for the small top-level metadata and whenever the
heuristic's chunk fails to decode, so correctness never depends on the heuristic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SPLIT = re.compile(rb"\}[ \t\r\n]*,[ \t\r\n]*\{")
_STRUCTURE = re.compile(rb'["\[\]{}]')
_SCALAR = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")
_WS = re.compile(rb"[ \t\r\n]*")
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}
SPLIT_LOOKBACK = 1 << 16
# Strings and brackets walked in one value before it is given up on: a real event or metadata
# block has hundreds; millions (`[[[[...` or `[][][]...` for megabytes) would take the exact
# walk, a Python loop, minutes, and again each time more data is read.
MAX_VALUE_TOKENS = 1 << 20
Buffer = bytes | bytearray


class Malformed(Exception):
    """The buffer is not JSON at `offset` (invalid=False: JSON, but beyond what a trace holds)."""

    def __init__(self, offset: int, what: str, invalid: bool = True) -> None:
        super().__init__(what)
        self.offset = offset
        self.what = what
        self.invalid = invalid


def skip_ws(buf: Buffer, pos: int) -> int:
    return _WS.match(buf, pos).end()  # type: ignore[union-attr]


def last_split(buf: Buffer, start: int) -> tuple[int, int] | None:
    """(end of the left element, start of the right one) of the last candidate boundary after start."""
    lookback = SPLIT_LOOKBACK
    while True:
        lo = max(start, len(buf) - lookback)
        found = None
        for found in _SPLIT.finditer(buf, lo):  # noqa: B007 (the loop keeps the last match)
            pass
        if found is not None:
            return found.start() + 1, found.end() - 1
        if lo == start:
            return None
        lookback *= 4


def value_end(buf: Buffer, pos: int, final: bool) -> int:
    """End (exclusive) of the JSON value starting at buf[pos]; -1 if buf ends first.

    final: no more data will come, so a value running to the end of buf is complete only if
    it is a scalar. Raises Malformed where the structure is broken.
    """
    if pos >= len(buf):
        return -1
    first = buf[pos]
    if first == 0x22:  # '"'
        return string_end(buf, pos)
    if first not in _CLOSER:
        match = _SCALAR.match(buf, pos)
        if not match or match.end() == pos:
            raise Malformed(pos, f"unexpected character {chr(first)!r}")
        if match.end() == len(buf) and not final:
            return -1  # a number may continue in the next block
        return match.end()
    stack = [_CLOSER[first]]
    i = pos + 1
    search = _STRUCTURE.search
    budget = MAX_VALUE_TOKENS
    while True:
        token = search(buf, i)
        if token is None:
            return -1
        budget -= 1
        if budget < 0:
            raise Malformed(pos, f"a value of more than {MAX_VALUE_TOKENS} strings and brackets, not an event", invalid=False)
        at = token.start()
        char = buf[at]
        if char == 0x22:
            i = string_end(buf, at)
            if i < 0:
                return -1
        elif char in _CLOSER:
            stack.append(_CLOSER[char])
            i = at + 1
        else:
            if stack.pop() != char:
                raise Malformed(at, f"mismatched {chr(char)!r}")
            i = at + 1
            if not stack:
                return i


@dataclass
class ElementScan:
    """Exact element boundaries in (part of) a JSON array body."""

    spans: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of complete elements
    resume: int = 0  # where scanning should continue once more data is there
    array_end: int = -1  # offset just after the closing ']' if it was reached
    error: Malformed | None = None


def scan_elements(buf: Buffer, pos: int, final: bool, limit: int | None = None) -> ElementScan:
    """Walk array elements from buf[pos] (an element start, or the closing ']', after optional
    whitespace) until the array closes, the data ends, or limit elements are found."""
    scan = ElementScan(resume=pos)
    pos = skip_ws(buf, pos)
    if pos < len(buf) and buf[pos] == 0x5D:  # ']' (empty array, or nothing after a split)
        scan.array_end = pos + 1
        scan.resume = pos + 1
        return scan
    while limit is None or len(scan.spans) < limit:
        pos = skip_ws(buf, pos)
        try:
            end = value_end(buf, pos, final)
        except Malformed as exc:
            scan.error = exc
            return scan
        if end < 0:
            return scan
        after = skip_ws(buf, end)
        if after >= len(buf):
            if final:
                scan.spans.append((pos, end))
                scan.resume = after
            return scan
        scan.spans.append((pos, end))
        if buf[after] == 0x2C:  # ','
            pos = after + 1
            scan.resume = pos
        elif buf[after] == 0x5D:  # ']'
            scan.array_end = after + 1
            scan.resume = after + 1
            return scan
        else:
            scan.error = Malformed(after, f"expected ',' or ']' after an event, found {chr(buf[after])!r}")
            scan.resume = after
            return scan
    return scan


def string_end(buf: Buffer, pos: int) -> int:
    """End of the JSON string starting at buf[pos] ('"'), or -1 if buf ends first."""
    find = buf.find
    i = pos
    while True:
        i = find(b'"', i + 1)
        if i < 0:
            return -1
        backslashes = 0
        while buf[i - 1 - backslashes] == 0x5C:  # an escaped quote is preceded by an odd run of '\\'
            backslashes += 1
        if backslashes % 2 == 0:
            return i + 1
