from __future__ import annotations
from pathlib import Path
from .rundata import TraceSummary

def summarize_traces(paths: list[Path], relative_to: Path | None = None) -> TraceSummary:
    return TraceSummary(files=[str(p.relative_to(relative_to) if relative_to else p) for p in paths], windows=0)
