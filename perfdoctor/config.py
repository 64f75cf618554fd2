"""The user's `[tool.perfdoctor]` table in pyproject.toml.

    [tool.perfdoctor]
    disable = ["host-overhead-bound"]          # rule ids never to report

    [tool.perfdoctor.rules.dataloader-bottleneck]
    min_wait_share = 0.2                        # override a rule's named threshold

    [tool.perfdoctor.budgets]                   # read by `perfdoctor check`
    max_step_time_ms = 120
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PerfdoctorError


@dataclass
class Config:
    path: Path | None = None
    disable: list[str] = field(default_factory=list)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    for folder in (start, *start.parents) if start.is_dir() else start.parents:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path | None = None, path: Path | None = None) -> Config:
    """`path` if given, else the nearest pyproject.toml at or above `start` (default: cwd)."""
    path = path or find_pyproject(start or Path.cwd())
    if path is None:
        return Config()
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise PerfdoctorError(f"cannot read {path}: {error}")
    table = (document.get("tool") or {}).get("perfdoctor") or {}
    if not isinstance(table, dict):
        raise PerfdoctorError(f"{path}: [tool.perfdoctor] must be a table")
    disable = table.get("disable") or []
    rules = table.get("rules") or {}
    budgets = table.get("budgets") or {}
    if not isinstance(disable, list) or not all(isinstance(item, str) for item in disable):
        raise PerfdoctorError(f"{path}: tool.perfdoctor.disable must be a list of rule ids")
    if not isinstance(rules, dict) or not all(isinstance(v, dict) for v in rules.values()):
        raise PerfdoctorError(f"{path}: tool.perfdoctor.rules must hold one table per rule id")
    if not isinstance(budgets, dict):
        raise PerfdoctorError(f"{path}: tool.perfdoctor.budgets must be a table")
    return Config(path=path, disable=list(disable), rules=dict(rules), budgets=dict(budgets), raw=table)
