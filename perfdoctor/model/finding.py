"""A finding: one piece of advice, with the measurements that earned it and what it could save."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")  # worst first
# How far the measurements behind a finding can be trusted: "high" unless something measured in
# the same run (other processes taking the CPUs, an unstable probe) makes its timings uncertain,
# which `confidence_reason` then says.
Confidence = Literal["high", "medium", "low"]


class Finding(msgspec.Struct, kw_only=True):
    id: str  # stable: ids are never renamed
    severity: Severity
    title: str
    evidence: dict[str, Any]  # the measured numbers that fired it, named with their units
    estimated_saving: float  # fraction of step time, 0..1
    advice: str
    fix: str  # a code snippet
    docs: str  # where to read more
    area: str = ""
    confidence: Confidence = "high"
    confidence_reason: str = ""  # why it is not "high": what was measured that makes it uncertain
