"""report.json, schema `perfdoctor.report/1`: the typed report, and how it is encoded and decoded.

The contract (docs/contracts.md, and docs/report.schema.json generated from these classes):
fields are only ever added, never renamed; a field added later gets a default, so that reports
written before it still decode; fields a reader does not know are ignored, so that an older
perfdoctor still reads a newer report of the same schema.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from .dataloader import DataLoaderSection
from .ddp import DdpSection
from .environment import Environment
from .finding import Finding
from .gpu import GpuSection
from .host import HostSummary
from .memory import MemorySection
from .operators import OperatorsSection
from .profiler import ProfilerSection
from .run import RunInfo
from .steps import StepsSection

SCHEMA: Literal["perfdoctor.report/1"] = "perfdoctor.report/1"


class Report(msgspec.Struct, kw_only=True):
    """One run: what ran, where its time went, what was measured, and the advice it earned."""

    schema: Literal["perfdoctor.report/1"] = SCHEMA
    run: RunInfo
    environment: Environment
    steps: StepsSection
    dataloader: DataLoaderSection
    host: HostSummary | None
    operators: OperatorsSection | None
    profiler: ProfilerSection | None
    gpu: GpuSection | None  # None: the run never used a GPU
    ddp: DdpSection | None  # None: no DDP, DataParallel or process group
    notes: list[str]
    findings: list[Finding]  # largest estimated saving first
    memory: MemorySection | None = None  # None: no memory samples (foreign traces, older runs)


class ReportShapeError(ValueError):
    """A document that is not a perfdoctor.report/1 report; the message is one line."""


def encode_report(report: Report) -> bytes:
    """Compact JSON. A non-finite number (there should be none) is written as null."""
    return msgspec.json.encode(report)


def report_from_builtins(document: Any) -> Report:
    """A decoded JSON document (dicts, lists, numbers) as a Report, checked field by field."""
    if not isinstance(document, dict):
        raise ReportShapeError("is not a perfdoctor report (expected a JSON object)")
    schema = document.get("schema")
    if schema != SCHEMA:
        raise ReportShapeError(f"has schema {schema!r}; this perfdoctor reads {SCHEMA!r}")
    try:
        return msgspec.convert(document, Report)
    except msgspec.ValidationError as error:
        raise ReportShapeError(f"is not a valid {SCHEMA} report: {' '.join(str(error).split())}") from None


def report_to_builtins(report: Report) -> dict[str, Any]:
    """The report as plain dicts and lists, exactly as report.json holds it."""
    document: dict[str, Any] = msgspec.to_builtins(report)
    return document


def json_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (committed as docs/report.schema.json)."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": SCHEMA,
        **msgspec.json.schema(Report),
    }
    return schema


def json_schema_text() -> str:
    """docs/report.schema.json, exactly: `python -m perfdoctor.model.report > docs/report.schema.json`."""
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(json_schema_text())
