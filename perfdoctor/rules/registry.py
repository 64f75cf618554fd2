"""The rule engine: which rules exist, which are enabled with which thresholds, and which of
their findings are reported.

Built-in rules are found, not listed: every Rule subclass with an `id` of its own, defined in a
module of this package (one module per concept: `dataloader`, `cpu`, `ddp`, `gpu/*`). A rule
added in a new or existing module needs no change here.

A third-party package adds rules through the `perfdoctor.rules` entry point group; each entry
point names a Rule subclass, or a list of them:

    [options.entry_points]
    perfdoctor.rules =
        my_rule = mypkg.rules:MyRule

Precedence is the engine's: every enabled rule runs with its own thresholds, then a finding is
dropped when a rule it `defers_to` reported one. `disable` and threshold overrides therefore
always mean what they say: a disabled or re-tuned rule never silences another by accident.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterable
from typing import Any

from ..analysis.rundata import RunData
from ..config import Config
from ..errors import PerfdoctorError
from ..terminal import printable
from .base import Finding, Rule, thresholds_with

ENTRY_POINT_GROUP = "perfdoctor.rules"
NOT_RULES = frozenset({"base", "registry"})  # the package's modules that define no rules


def rule_modules() -> list[str]:
    """Every module of this package that may define rules, subpackages included."""
    package = importlib.import_module(__package__ or "perfdoctor.rules")
    names = []
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        if info.name.rsplit(".", 1)[-1] not in NOT_RULES and not info.ispkg:
            names.append(info.name)
    return sorted(names)


def rule_classes_in(module_name: str) -> list[type[Rule]]:
    """The rules a module defines (not those it imports), in the order it defines them."""
    module = importlib.import_module(module_name)
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Rule) and value.__module__ == module_name and "id" in vars(value)
    ]


def builtin_rule_classes() -> list[type[Rule]]:
    return [rule_class for name in rule_modules() for rule_class in rule_classes_in(name)]


def builtin_rules() -> list[Rule]:
    return [rule_class() for rule_class in builtin_rule_classes()]


def plugin_rules() -> list[Rule]:
    from importlib.metadata import entry_points

    rules: list[Rule] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as error:  # a broken plugin is reported, and the others still run
            print(f"perfdoctor: rule plugin {printable(repr(entry_point.name))} failed to load: {printable(error)}", file=sys.stderr)
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


def deference_cycle(rules: Iterable[Rule]) -> list[str] | None:
    """A chain of `defers_to` that comes back to where it started, or None."""
    defers = {rule.id: rule.defers_to for rule in rules}
    state: dict[str, str] = {}

    def visit(rule_id: str, path: list[str]) -> list[str] | None:
        if state.get(rule_id) == "open":
            return path[path.index(rule_id):] + [rule_id]
        if state.get(rule_id) == "done":
            return None
        state[rule_id] = "open"
        for preferred in defers.get(rule_id, ()):
            cycle = visit(preferred, [*path, rule_id])
            if cycle:
                return cycle
        state[rule_id] = "done"
        return None

    for rule_id in defers:
        cycle = visit(rule_id, [])
        if cycle:
            return cycle
    return None


def resolve_precedence(found: dict[str, Finding], defers: dict[str, tuple[str, ...]]) -> dict[str, Finding]:
    """The findings that stand: one is dropped when a rule it defers to has a finding that stands."""
    standing: dict[str, bool] = {}

    def stands(rule_id: str) -> bool:
        if rule_id not in standing:
            standing[rule_id] = rule_id in found and not any(stands(other) for other in defers.get(rule_id, ()))
        return standing[rule_id]

    return {rule_id: finding for rule_id, finding in found.items() if stands(rule_id)}


def evaluate(data: RunData, config: Config | None = None, rules: Iterable[Rule] | None = None) -> list[Finding]:
    """Every enabled rule over the run; findings sorted by estimated saving, largest first."""
    config = config or Config()
    rules = list(rules) if rules is not None else all_rules()
    known = {rule.id for rule in rules}
    for rule_id in [*config.disable, *config.rules]:
        if rule_id not in known:
            raise PerfdoctorError(f"unknown rule id in [tool.perfdoctor]: {rule_id!r}")
    cycle = deference_cycle(rules)
    if cycle:
        raise PerfdoctorError(f"rules defer to each other in a circle: {' -> '.join(cycle)}")
    found: dict[str, Finding] = {}
    for rule in rules:
        if rule.id in config.disable:
            continue
        limits = thresholds_with(rule, config.rules.get(rule.id, {}))
        try:
            finding = rule.check(data, limits)
        except Exception as error:  # one rule's bug must not cost the user the report
            data.notes.append(f"Rule {rule.id} failed and was skipped ({type(error).__name__}: {error}).")
            continue
        if finding is not None:
            if rule.timing_based:
                _lower_confidence_on_a_shared_machine(data, finding)
            found[rule.id] = finding
    standing = resolve_precedence(found, {rule.id: rule.defers_to for rule in rules})
    return sorted(standing.values(), key=lambda finding: (-finding.estimated_saving, finding.id))


def _lower_confidence_on_a_shared_machine(data: RunData, finding: Finding) -> None:
    """A timing-based finding measured while other processes took the job's CPUs says so,
    unless its rule already judged its confidence (having corrected for the contention)."""
    from ..analysis.contention import contention_caveat

    contention = data.host.contention if data.host else None
    if finding.confidence != "high" or finding.estimated_saving <= 0 or contention is None or not contention.shared:
        return
    finding.confidence = "medium"
    finding.confidence_reason = contention_caveat(contention)


def rule_catalogue(rules: Iterable[Rule] | None = None) -> list[dict[str, Any]]:
    """Ids, areas, thresholds and precedence of every rule (for docs and `perfdoctor rules`)."""
    import dataclasses

    return [
        {
            "id": rule.id,
            "area": rule.area,
            "thresholds": dataclasses.asdict(rule.Thresholds()),
            "defers_to": list(rule.defers_to),
            "doc": (type(rule).__doc__ or "").strip(),
        }
        for rule in (rules if rules is not None else all_rules())
    ]
