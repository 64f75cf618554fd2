"""A finding: one piece of advice, with the measurements that earned it and what it could save."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .numbers import Share

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")  # worst first


class Finding(msgspec.Struct, kw_only=True):
    id: str  # stable: ids are never renamed
    severity: Severity
    title: str
    evidence: dict[str, Any]  # the measured numbers that fired it, named with their units
    estimated_saving: Share  # fraction of step time, 0..1
    advice: str
    fix: str  # a code snippet
    docs: str  # where to read more
    area: str = ""
