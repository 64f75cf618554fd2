"""The docs stay true: every built-in rule and threshold is documented with its default."""

import dataclasses
import re

from conftest import REPO
from perfdoctor.rules.registry import builtin_rules

FINDINGS = (REPO / "docs" / "findings.md").read_text()
CONTRACTS = (REPO / "docs" / "contracts.md").read_text()


def section(rule_id: str) -> str:
    match = re.search(rf"### `{re.escape(rule_id)}`\n(.*?)(?=\n### |\Z)", FINDINGS, re.S)
    assert match, f"docs/findings.md has no section for {rule_id}"
    return match.group(1)


def test_every_rule_and_threshold_is_documented_with_its_default():
    for rule in builtin_rules():
        text = section(rule.id)
        for field in dataclasses.fields(rule.Thresholds()):
            default = getattr(rule.Thresholds(), field.name)
            row = re.search(rf"\| `{field.name}` \| ([^|]+) \|", text)
            assert row, f"{rule.id}: threshold {field.name} is not documented"
            assert float(row.group(1)) == float(default), (rule.id, field.name, row.group(1), default)


def test_no_threshold_is_documented_that_a_rule_does_not_have():
    for rule in builtin_rules():
        documented = set(re.findall(r"^\| `(\w+)` \| [^|]+ \|", section(rule.id), re.M))
        assert documented == {field.name for field in dataclasses.fields(rule.Thresholds())}, rule.id


AREAS = {"data loading": "Data loading", "cpu": "CPU", "distributed": "Distributed", "gpu": "GPU", "memory": "Memory"}


def test_every_rule_is_documented_under_its_area():
    for rule in builtin_rules():
        heading = FINDINGS[: FINDINGS.index(f"### `{rule.id}`")].rsplit("\n## ", 1)[1].split("\n", 1)[0]
        assert heading == AREAS[rule.area], (rule.id, rule.area, heading)


def test_the_readme_lists_every_rule():
    readme = (REPO / "README.md").read_text()
    for rule in builtin_rules():
        assert f"`{rule.id}`" in readme


def test_contracts_name_the_report_schema():
    from perfdoctor.report.json_report import SCHEMA

    assert SCHEMA in CONTRACTS
