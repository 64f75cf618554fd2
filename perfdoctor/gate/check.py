"""`perfdoctor check`'s verdict: a report's budgets and its regression against a baseline, the
exit status they add up to, and how the verdict is printed (text, JSON, GitHub annotations)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EXIT_CHECK_FAILED, EXIT_OK
from ..terminal import printable
from .budgets import BudgetResult, Budgets, check_budgets
from .regression import VERDICT_INCONCLUSIVE, VERDICT_REGRESSION, RegressionResult, compare_reports
from .reportfile import LoadedReport

CHECK_SCHEMA = "perfdoctor.check/1"


@dataclass
class CheckOutcome:
    report: Path
    budgets: list[BudgetResult] = field(default_factory=list)
    regression: RegressionResult | None = None
    baseline: Path | None = None
    strict: bool = False  # an inconclusive regression fails the check

    @property
    def broken(self) -> list[BudgetResult]:
        return [result for result in self.budgets if not result.ok]

    @property
    def regression_fails(self) -> bool:
        if self.regression is None:
            return False
        return self.regression.verdict == VERDICT_REGRESSION or (self.strict and self.regression.verdict == VERDICT_INCONCLUSIVE)

    @property
    def exit_code(self) -> int:
        return EXIT_CHECK_FAILED if self.broken or self.regression_fails else EXIT_OK

    def summary(self) -> str:
        parts = []
        if self.budgets:
            held = len(self.budgets) - len(self.broken)
            parts.append(f"{len(self.broken)} of {len(self.budgets)} budgets broken" if self.broken else f"{held} budget{'s' if held != 1 else ''} held")
        if self.regression is not None:
            parts.append(f"baseline {self.regression.verdict}" + (" (--strict)" if self.strict and self.regression_fails and self.regression.verdict == VERDICT_INCONCLUSIVE else ""))
        return f"perfdoctor check: {'FAILED' if self.exit_code else 'passed'} ({'; '.join(parts)})"

    def text_lines(self) -> list[str]:
        """What `check` prints: one line each, every control character from the data (a path,
        a finding id) escaped, so that nothing read can colour the terminal or forge a line."""
        lines = [f"perfdoctor check {self.report}"]
        lines += [result.line() for result in self.budgets]
        if self.regression is not None:
            lines.append(f"{self.regression.line()} [baseline {self.baseline}]")
        lines.append(self.summary())
        return [printable(line) for line in lines]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": CHECK_SCHEMA,
            "report": str(self.report),
            "passed": self.exit_code == EXIT_OK,
            "exit_status": self.exit_code,
            "budgets": [result.to_json() for result in self.budgets],
            "regression": None if self.regression is None else {"baseline_report": str(self.baseline), "strict": self.strict, **self.regression.to_json()},
        }

    def github_annotations(self) -> list[str]:
        """Workflow commands that GitHub Actions shows on the run's summary page."""
        lines = [_workflow_command("error", result.line().removeprefix("FAIL  ")) for result in self.broken]
        if self.regression is not None:
            message = self.regression.line()
            if self.regression_fails:
                lines.append(_workflow_command("error", message))
            elif self.regression.verdict == VERDICT_INCONCLUSIVE:
                lines.append(_workflow_command("notice", message))
        return lines


def _workflow_command(kind: str, message: str) -> str:
    """A GitHub Actions workflow command. The message is data: its control characters are
    escaped first (no new line can start a command of its own), then what the runner decodes."""
    escaped = printable(message).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{kind} title=perfdoctor::{escaped}"


def run_check(
    report: LoadedReport,
    budgets: Budgets,
    baseline: LoadedReport | None = None,
    max_regression: float = 0.10,
    strict: bool = False,
) -> CheckOutcome:
    outcome = CheckOutcome(report=report.path, budgets=check_budgets(report, budgets), strict=strict)
    if baseline is not None:
        outcome.baseline = baseline.path
        outcome.regression = compare_reports(baseline, report, max_regression)
    return outcome
