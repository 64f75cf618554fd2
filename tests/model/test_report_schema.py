"""The report.json contract: the model, its committed JSON Schema (docs/report.schema.json) and
the outline in docs/contracts.md say the same thing, and real reports (the committed reference
report, reports re-derived from a run directory and from the real GPU traces) are valid against
the committed schema and decode strictly into the model."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import REPO
from perfdoctor.model.report import Report, encode_report, json_schema, json_schema_text, report_from_builtins
from perfdoctor.model.steps import PHASES

SCHEMA_FILE = REPO / "docs" / "report.schema.json"
CONTRACTS = (REPO / "docs" / "contracts.md").read_text()
REFERENCE_REPORT = REPO / "tests" / "data" / "report_reference_cnn.json"
REFERENCE_RUN = REPO / "tests" / "data" / "run_reference_cnn"
ADDED_LATER = {"memory"}  # sections the model gained after the reference report was written
SECTIONS = ("run", "environment", "steps", "dataloader", "host", "operators", "profiler", "gpu", "ddp", "findings", "memory")


def committed_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def test_the_committed_schema_is_the_models():
    assert SCHEMA_FILE.read_text() == json_schema_text(), (
        "docs/report.schema.json is not the model's schema: if the change is meant (fields are only "
        "ever added), regenerate it with `python -m perfdoctor.model.report > docs/report.schema.json`"
    )


# --- a JSON Schema validator for what msgspec emits: every keyword it does not know is an error --------

IGNORED = {"title", "description", "default", "$schema"}
TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def violations(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    unknown = set(schema) - IGNORED - {
        "$ref", "$defs", "anyOf", "type", "properties", "required", "additionalProperties", "items",
        "prefixItems", "minItems", "maxItems", "enum", "minimum", "maximum",
    }
    if unknown:
        raise AssertionError(f"the test's validator does not know {sorted(unknown)} (at {at})")
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return violations(value, root["$defs"][name], root, at)
    if "anyOf" in schema:
        options = [violations(value, option, root, at) for option in schema["anyOf"]]
        return [] if any(not found for found in options) else [f"{at}: none of anyOf matches ({options})"]
    found: list[str] = []
    if "type" in schema and not TYPES[schema["type"]](value):
        return [f"{at}: expected {schema['type']}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        found.append(f"{at}: {value!r} out of range")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{at}: missing {name}")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                found += violations(item, properties[name], root, f"{at}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += violations(item, schema["additionalProperties"], root, f"{at}.{name}")
            elif schema.get("type") == "object" and properties:
                found.append(f"{at}: {name} is not in the schema")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"] or "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{at}: {len(value)} items")
        for index, item in enumerate(value):
            prefix = schema.get("prefixItems", [])
            item_schema = prefix[index] if index < len(prefix) else schema.get("items")
            if item_schema is not None:
                found += violations(item, item_schema, root, f"{at}[{index}]")
    return found


def assert_valid(document: dict[str, Any]) -> None:
    schema = committed_schema()
    assert violations(document, schema, schema) == []


def test_the_validator_finds_what_is_wrong():
    document = json.loads(REFERENCE_REPORT.read_text())
    document["steps"]["time_ms"]["p50"] = "fast"
    document["steps"]["time_ms"]["p95"] = -1.5
    document["steps"]["other_parts"]["loss"] = 1.5
    document["findings"] = [{"id": "x", "severity": "fatal"}]
    del document["run"]
    schema = committed_schema()
    found = "\n".join(violations(document, schema, schema))
    assert "$: missing run" in found and "$.steps.time_ms.p50" in found and "'fatal' not in" in found
    assert "$.steps.time_ms.p95: -1.5 out of range" in found and "$.steps.other_parts.loss: 1.5 out of range" in found


# --- real reports ------------------------------------------------------------------------------------


def strictly(document: dict[str, Any]) -> Report:
    """Valid against the committed schema, decoded into the model, and encoded back unchanged."""
    assert_valid(document)
    report = report_from_builtins(document)
    assert json.loads(encode_report(report)) == document
    return report


def test_the_reference_report_decodes_strictly():
    """Written before the model by the code it replaced: the contract held (only the raw file's own
    schema tag, which the profiler section used to carry by accident, is left out)."""
    document = json.loads(REFERENCE_REPORT.read_text())
    report = report_from_builtins(document)
    assert report.steps.time_ms.p50 == 22.351 and report.dataloader.loaders[0].args["batch_size"] == 64
    encoded = json.loads(encode_report(report))
    assert set(encoded) - ADDED_LATER == set(document) and set(encoded["steps"]) == set(document["steps"])
    del document["profiler"]["schema"]
    for section in SECTIONS:
        if section in ADDED_LATER:  # a report written before the section decodes with its default
            assert encoded[section] is None
            continue
        assert _without_added(encoded[section], document[section]) == document[section], section


def _without_added(encoded: Any, original: Any) -> Any:
    """The encoded value with the keys the original lacks removed: growth by addition only."""
    if isinstance(encoded, dict) and isinstance(original, dict):
        return {key: _without_added(value, original[key]) for key, value in encoded.items() if key in original}
    if isinstance(encoded, list) and isinstance(original, list) and len(encoded) == len(original):
        return [_without_added(a, b) for a, b in zip(encoded, original)]
    return encoded


def rederive(source: Path, tmp_path: Path, *extra: str) -> dict[str, Any]:
    from perfdoctor.cli import main

    out = tmp_path / "out"
    assert main(["report", "-q", str(source), "--out", str(out), *extra]) == 0
    return json.loads((out / "report.json").read_text())


def test_a_report_rederived_from_a_run_directory_decodes_strictly(tmp_path):
    run = shutil.copytree(REFERENCE_RUN, tmp_path / "run")
    report = strictly(rederive(run, tmp_path))
    assert report.operators is not None and report.operators.top and report.profiler is not None


@pytest.mark.parametrize("folder", ["a100_alexnet_sync", "a100_ddp_nccl_2rank", "v100_training", "cpu_only", "sampled_128rank_job"])
def test_reports_from_real_traces_decode_strictly(shared_traces, tmp_path, folder):
    report = strictly(rederive(shared_traces / folder, tmp_path))
    if folder == "cpu_only":
        assert report.gpu is None
    elif folder != "sampled_128rank_job":
        assert report.gpu is not None and report.gpu.steps is not None and report.gpu.kernels is not None
    if folder == "sampled_128rank_job":  # two ranks' traces: the merged ddp section
        assert report.ddp is not None and report.ddp.ranks_reported == 2 and len(report.ddp.ranks) == 2


# --- docs/contracts.md ------------------------------------------------------------------------------


def outline() -> str:
    match = re.search(r"## report.json \(schema `perfdoctor.report/1`\).*?```\n(.*?)```", CONTRACTS, re.S)
    assert match, "docs/contracts.md has no report.json outline"
    return match.group(1)


def documented_names(text: str) -> set[str]:
    """The field names the outline quotes, with `{a,b}` alternatives and `<phase>` expanded."""
    names: set[str] = set()
    for quoted in re.findall(r'"([^"]+)"', text):
        if not re.fullmatch(r"[a-z_<>{},0-9]+", quoted):
            continue  # a value ("completed|failed"), not a name
        expanded = [quoted]
        if "<phase>" in quoted:
            expanded = [quoted.replace("<phase>", phase) for phase in PHASES]
        brace = re.search(r"\{([a-z0-9,]+)\}", quoted)
        if brace:
            expanded = [quoted.replace(brace.group(0), choice) for choice in brace.group(1).split(",")]
        names.update(expanded)
    return names


def schema_names(schema: Any, root: dict[str, Any], seen: set[str] | None = None) -> set[str]:
    """Every property name reachable from a schema."""
    seen = seen if seen is not None else set()
    names: set[str] = set()
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/$defs/")
            if name in seen:
                return names
            seen.add(name)
            return schema_names(root["$defs"][name], root, seen)
        for name, value in schema.get("properties", {}).items():
            names.add(name)
            names |= schema_names(value, root, seen)
        for key in ("anyOf", "prefixItems"):
            for option in schema.get(key, []):
                names |= schema_names(option, root, seen)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                names |= schema_names(schema[key], root, seen)
    return names


def section_texts() -> dict[str, str]:
    text = outline()
    starts = [(m.group(1), m.start()) for m in re.finditer(r'^  "(\w+)":', text, re.M)]
    return {name: text[start: (starts[i + 1][1] if i + 1 < len(starts) else len(text))] for i, (name, start) in enumerate(starts)}


@pytest.mark.parametrize("section", SECTIONS)
def test_contracts_md_documents_exactly_the_model(section):
    schema = json_schema()
    report = schema["$defs"]["Report"]["properties"][section]
    in_model = schema_names(report, schema)
    in_docs = documented_names(section_texts()[section]) - {section}
    assert in_docs - in_model == set(), f"docs/contracts.md documents {section} fields the model does not have"
    assert in_model - in_docs == set(), f"the model's {section} fields missing from docs/contracts.md"


def test_contracts_md_names_every_section_in_order():
    assert [name for name in section_texts() if name != "schema"] == ["run", "environment", "steps", "dataloader", "host", "operators", "profiler", "gpu", "ddp", "notes", "findings", "memory"]
    assert list(Report.__struct_fields__)[1:] == [name for name in section_texts() if name != "schema"]


def test_a_decoded_report_ignores_fields_it_does_not_know_but_never_a_wrong_type():
    document = json.loads(REFERENCE_REPORT.read_text())
    document["from_the_future"] = {"x": 1}
    document["steps"]["added_later"] = 3
    assert report_from_builtins(document).steps.count == 100
    document["steps"]["count"] = "100"
    with pytest.raises(ValueError, match=r"Expected `int`, got `str` - at `\$.steps.count`"):
        report_from_builtins(document)
    assert msgspec.json.decode(encode_report(report_from_builtins(json.loads(REFERENCE_REPORT.read_text()))), type=Report)
