"""What a rule is and what it returns.

A rule looks at one RunData and returns a Finding when, and only when, this run's measurements
show the problem. Its thresholds are a dataclass of named, documented defaults that a user can
override from `[tool.perfdoctor.rules.<rule-id>]` in pyproject.toml.

A rule never calls another rule. When two rules can speak about the same cause, the one whose
advice comes first names the other in `defers_to`; the engine (registry.py) then drops its
finding whenever a rule it defers to reported one. Both keep their own thresholds, and
disabling either leaves the other free to speak.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, ClassVar

from ..analysis.rundata import RunData
from ..analysis.places import TracePlaces
from ..model.finding import SEVERITIES, Confidence, Finding, Severity, TraceLocation

__all__ = [
    "CRITICAL_SAVING", "SEVERITIES", "TUNING_GUIDE", "WARNING_SAVING", "Finding", "NoThresholds", "Rule",
    "places", "severity_at_most", "severity_for", "thresholds_with",
]

CRITICAL_SAVING = 0.30  # an estimated saving at or above this is critical
WARNING_SAVING = 0.10  # ... at or above this a warning; below, info
TUNING_GUIDE = "https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html"


def severity_at_most(saving: float, cap: Severity) -> Severity:
    """severity_for(saving), but no higher than `cap` (for advice that changes numerics)."""
    severity = severity_for(saving)
    return severity if SEVERITIES.index(severity) >= SEVERITIES.index(cap) else cap


def severity_for(saving: float) -> Severity:
    if saving >= CRITICAL_SAVING:
        return "critical"
    if saving >= WARNING_SAVING:
        return "warning"
    return "info"


@dataclass(frozen=True)
class NoThresholds:
    pass


class Rule:
    """Subclass, set the class attributes, and implement `check`.

    A subclass with an `id` of its own, in a module of the perfdoctor.rules package, is a
    built-in rule: the registry finds it, nothing else needs to list it.
    """

    id: ClassVar[str]
    area: ClassVar[str]
    docs: ClassVar[str] = TUNING_GUIDE  # where a user reads more (PyTorch's own documentation)
    Thresholds: ClassVar[type] = NoThresholds
    # Whether the finding rests on wall-clock timings that other processes on the machine can
    # distort: on a shared machine (host.contention.shared) its confidence is lowered, with the
    # reason, unless the rule itself corrected for the contention and said so.
    timing_based: ClassVar[bool] = True
    # Ids of rules whose finding makes this one's redundant (they name the cause more precisely,
    # or their fix comes first): when one of them reports, this rule's finding is dropped.
    defers_to: ClassVar[tuple[str, ...]] = ()

    def check(self, data: RunData, limits: Any) -> Finding | None:
        raise NotImplementedError

    def finding(
        self,
        *,
        title: str,
        evidence: dict[str, Any],
        saving: float,
        advice: str,
        fix: str,
        severity: Severity | None = None,
        confidence: Confidence = "high",
        confidence_reason: str = "",
        locations: Sequence[TraceLocation | None] = (),
    ) -> Finding:
        saving = min(1.0, max(0.0, saving))
        return Finding(
            id=self.id,
            severity=severity or severity_for(saving),
            title=title,
            evidence=evidence,
            estimated_saving=saving,
            advice=advice,
            fix=fix,
            docs=self.docs,
            area=self.area,
            confidence=confidence,
            confidence_reason=confidence_reason,
            locations=[place for place in locations if place is not None],
        )


def places(data: RunData) -> TracePlaces:
    """Where in the run's trace findings can point (nothing when no trace was read)."""
    return data.trace.places if data.trace is not None else TracePlaces()


def thresholds_with(rule: Rule, overrides: dict[str, Any]) -> Any:
    """The rule's default thresholds with the user's overrides; unknown names are an error."""
    defaults = rule.Thresholds()
    if not overrides:
        return defaults
    known = {f.name: f for f in dataclasses.fields(defaults)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        from ..errors import PerfdoctorError

        raise PerfdoctorError(
            f"unknown threshold(s) for rule {rule.id}: {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})"
        )
    converted = {name: _coerce(rule.id, name, getattr(defaults, name), value) for name, value in overrides.items()}
    return dataclasses.replace(defaults, **converted)


def _coerce(rule_id: str, name: str, default: Any, value: Any) -> Any:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok, value = number, float(value) if number else value
    elif isinstance(default, int):
        ok = number and float(value).is_integer()
        value = int(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        from ..errors import PerfdoctorError

        raise PerfdoctorError(f"threshold {rule_id}.{name} must be a {type(default).__name__}, got {value!r}")
    return value
