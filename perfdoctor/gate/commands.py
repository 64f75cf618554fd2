"""The `check` and `diff` subcommands.

    perfdoctor check PATH [BUDGETS] [--baseline PATH] [--max-regression FRACTION] [--strict]
                          [--format text|json] [--config PYPROJECT]
    perfdoctor diff A B [--out DIR] [--format text|json]

They read report.json files only, so they import nothing heavy: a CI gate should cost less than
the Python start-up it runs in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..command import Command, positive_number
from ..errors import EXIT_OK, PerfdoctorError
from ..terminal import printable
from .budgets import METRICS, Budgets
from .check import run_check
from .reportfile import load_report

DEFAULT_MAX_REGRESSION = 0.10


def _regression_fraction(text: str) -> float:
    value = positive_number(text)
    if value >= 10:
        raise argparse.ArgumentTypeError(f"a fraction (0.10 is 10%), got {text}")
    return value


class CheckCommand(Command):
    name = "check"
    help = "check a run's report.json against budgets and a baseline run (exit 1 when one is broken)"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", type=Path, metavar="PATH", help="a run directory or its report.json")
        budgets = parser.add_argument_group("budgets (default: [tool.perfdoctor.budgets] in pyproject.toml; flags win)")
        helps = {
            "max_step_time_ms": "the median steady-state step may last at most MS milliseconds",
            "max_p95_step_time_ms": "the 95th-percentile step may last at most MS milliseconds",
            "max_dataloader_share": "at most this fraction (0..1) of step time waiting on the DataLoader",
            "min_gpu_utilization": "at least this fraction (0..1) of step time with the GPU busy (needs a GPU run)",
            "min_samples_per_second": "at least this many samples a second (batch size x steps/s from the median step)",
            "max_peak_memory_mb": "peak memory in MiB: the GPU's when measured, else the host process's RSS",
        }
        for metric in METRICS:
            metavar = "MS" if metric.unit == "ms" else ("FRACTION" if metric.unit == "share" else ("MIB" if metric.unit == "MiB" else "N"))
            budgets.add_argument(metric.flag, dest=metric.field, type=positive_number, metavar=metavar, help=helps[metric.field])
        budgets.add_argument("--fail-on", choices=("critical", "warning", "info"), metavar="SEVERITY",
                             help="fail on any finding at or above SEVERITY (critical|warning|info)")
        budgets.add_argument("--fail-on-id", dest="fail_on_ids", action="append", default=[], metavar="ID",
                             help="fail when this finding id is reported (repeatable)")
        baseline = parser.add_argument_group("baseline")
        baseline.add_argument("--baseline", type=Path, metavar="PATH", help="the baseline run (directory or report.json) to compare step times with")
        baseline.add_argument("--max-regression", type=_regression_fraction, metavar="FRACTION",
                              help=f"tolerated slowdown of the median step against the baseline (default {DEFAULT_MAX_REGRESSION})")
        baseline.add_argument("--strict", action="store_true", help="fail when the comparison is inconclusive, too")
        parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
        parser.add_argument("--config", type=Path, metavar="PYPROJECT", help="pyproject.toml with [tool.perfdoctor.budgets] (default: nearest one)")

    def run(self, args: argparse.Namespace) -> int:
        return guarded("check", lambda: self._check(args))

    def _check(self, args: argparse.Namespace) -> int:
        from ..config import load_config

        if args.config is not None and not args.config.is_file():
            raise PerfdoctorError(f"config file not found: {args.config}")
        config = load_config(start=Path.cwd(), path=args.config)
        where = f"{config.path}: [tool.perfdoctor.budgets]"
        from_config = Budgets.from_table(config.budgets, where)
        from_flags = Budgets(
            **{metric.field: getattr(args, metric.field) for metric in METRICS},
            fail_on=args.fail_on,
            fail_on_ids=tuple(args.fail_on_ids),
        )
        budgets = from_config.overridden_by(from_flags)
        max_regression = args.max_regression if args.max_regression is not None else _config_max_regression(config.budgets, where)
        if args.max_regression is not None and args.baseline is None:
            raise PerfdoctorError("--max-regression needs --baseline PATH (the run to compare with)")
        if budgets.is_empty() and args.baseline is None:
            raise PerfdoctorError(
                "nothing to check: give a budget (e.g. --max-step-time-ms 120), [tool.perfdoctor.budgets] in pyproject.toml, or --baseline PATH"
            )
        report = load_report(args.path)
        baseline = load_report(args.baseline) if args.baseline is not None else None
        outcome = run_check(report, budgets, baseline, max_regression or DEFAULT_MAX_REGRESSION, strict=args.strict)
        annotations = outcome.github_annotations() if os.environ.get("GITHUB_ACTIONS") == "true" else []
        if args.format == "json":
            print(json.dumps(outcome.to_json(), indent=2, allow_nan=False))
            for line in annotations:  # stdout stays one JSON document; the runner reads stderr too
                print(line, file=sys.stderr)
        else:
            print("\n".join([*outcome.text_lines(), *annotations]))
        return outcome.exit_code


def _config_max_regression(table: dict[str, Any], where: str) -> float | None:
    value = table.get("max_regression")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10:
        raise PerfdoctorError(f"{where}: max_regression must be a fraction above 0 (0.10 is 10%), got {value!r}")
    return float(value)


class DiffCommand(Command):
    name = "diff"
    help = "compare two runs: step time, breakdown, operators and findings side by side"

    def prepare_parser(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("a", type=Path, metavar="A", help="the first run (directory or report.json), e.g. the baseline")
        parser.add_argument("b", type=Path, metavar="B", help="the second run, compared with A")
        parser.add_argument("--out", type=Path, metavar="DIR", help="also write DIR/diff.html")
        parser.add_argument("--format", choices=("text", "json"), default="text", help="console output format (default text)")

    def run(self, args: argparse.Namespace) -> int:
        return guarded("diff", lambda: self._diff(args))

    def _diff(self, args: argparse.Namespace) -> int:
        from .diff import build_diff, text_lines, write_diff_html

        a, b = load_report(args.a), load_report(args.b)
        diff = build_diff(a, b)
        if args.format == "json":
            print(json.dumps(diff.to_json(), indent=2, allow_nan=False))
        else:
            print("\n".join(text_lines(diff)))
        if args.out is not None:
            try:
                path = write_diff_html(diff, a, b, args.out)
            except OSError as error:
                raise PerfdoctorError(f"cannot write {args.out / 'diff.html'}: {error.strerror or error}") from None
            print(f"perfdoctor diff: wrote {printable(path)}", file=sys.stderr)
        return EXIT_OK


def guarded(command: str, run: Callable[[], int]) -> int:
    """A command's run: a bug of ours met on some input is still one line and exit status 2
    (`perfdoctor -v` shows the traceback), never a traceback in a CI log."""
    try:
        return run()
    except PerfdoctorError:
        raise
    except Exception as error:
        raise PerfdoctorError(
            f"internal error in {command} ({type(error).__name__}: {error}); `perfdoctor -v {command} ...` shows the traceback"
        ) from error
