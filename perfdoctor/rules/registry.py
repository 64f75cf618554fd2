"""The rule registry: perfdoctor's own rules, one module per area, plus third-party rules.

A third-party package adds rules through the `perfdoctor.rules` entry point group; each entry
point names a Rule subclass, or a list of them:

    [options.entry_points]
    perfdoctor.rules =
        my_rule = mypkg.rules:MyRule
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Iterable

from ..analysis.rundata import RunData
from ..config import Config
from ..errors import PerfdoctorError
from .base import Finding, Rule, thresholds_with

BUILTIN_MODULES = ("dataloader", "cpu", "ddp", "gpu")
ENTRY_POINT_GROUP = "perfdoctor.rules"


def builtin_rules() -> list[Rule]:
    rules: list[Rule] = []
    for name in BUILTIN_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        rules.extend(rule_class() for rule_class in module.RULES)
    return rules


def plugin_rules() -> list[Rule]:
    from importlib.metadata import entry_points

    rules: list[Rule] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as error:  # a broken plugin is reported, and the others still run
            print(f"perfdoctor: rule plugin {entry_point.name!r} failed to load: {error}", file=sys.stderr)
            continue
        for rule_class in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            if isinstance(rule_class, type) and issubclass(rule_class, Rule):
                rules.append(rule_class())
    return rules


def all_rules() -> list[Rule]:
    rules = builtin_rules()
    ids = {rule.id for rule in rules}
    for rule in plugin_rules():
        if rule.id not in ids:  # a plugin never replaces a built-in rule
            rules.append(rule)
            ids.add(rule.id)
    return rules


def evaluate(data: RunData, config: Config | None = None, rules: Iterable[Rule] | None = None) -> list[Finding]:
    """Every enabled rule over the run; findings sorted by estimated saving, largest first."""
    config = config or Config()
    rules = list(rules) if rules is not None else all_rules()
    known = {rule.id for rule in rules}
    for rule_id in [*config.disable, *config.rules]:
        if rule_id not in known:
            raise PerfdoctorError(f"unknown rule id in [tool.perfdoctor]: {rule_id!r}")
    findings: list[Finding] = []
    for rule in rules:
        if rule.id in config.disable:
            continue
        limits = thresholds_with(rule, config.rules.get(rule.id, {}))
        try:
            found = rule.check(data, limits)
        except Exception as error:  # one rule's bug must not cost the user the report
            data.notes.append(f"Rule {rule.id} failed and was skipped ({type(error).__name__}: {error}).")
            continue
        if found is not None:
            findings.append(found)
    findings.sort(key=lambda finding: (-finding.estimated_saving, finding.id))
    return findings


def rule_catalogue(rules: Iterable[Rule] | None = None) -> list[dict[str, Any]]:
    """Ids, areas and thresholds of every rule (for docs and `perfdoctor rules`)."""
    import dataclasses

    return [
        {
            "id": rule.id,
            "area": rule.area,
            "thresholds": dataclasses.asdict(rule.Thresholds()),
            "doc": (type(rule).__doc__ or "").strip(),
        }
        for rule in (rules if rules is not None else all_rules())
    ]
