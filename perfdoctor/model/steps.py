"""The report's `steps` section: step-time statistics, where a step's time goes, and the
per-step series. PHASES is the one list of the phases a step is split into.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .numbers import Count, NonNegative, Positive, Share

PHASES = ("dataloader", "forward", "backward", "optimizer", "other")
Phase = Literal["dataloader", "forward", "backward", "optimizer", "other"]
# Parts of "other" the step clock times on their own: work between a batch arriving and the
# forward (per-sample work in the loop) and between forward and backward (the loss).
OTHER_PARTS = ("before_forward", "loss")


class PhaseValues(msgspec.Struct, kw_only=True):
    """One number per phase: shares of step time (summing to 1), or ms per step."""

    dataloader: NonNegative
    forward: NonNegative
    backward: NonNegative
    optimizer: NonNegative
    other: NonNegative

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> PhaseValues:
        return cls(**{phase: float(values.get(phase, 0.0)) for phase in PHASES})

    def get(self, phase: str) -> float:
        return float(getattr(self, phase))

    def items(self) -> list[tuple[str, float]]:
        return [(phase, self.get(phase)) for phase in PHASES]

    def rounded(self, digits: int) -> PhaseValues:
        return PhaseValues(**{phase: round(value, digits) for phase, value in self.items()})

    def check_shares(self) -> None:
        """Refuse shares of step time above 1 (msgspec names the place); a float's rounding error
        above 1 is not refused."""
        above = [phase for phase, value in self.items() if value > 1 + 1e-9]
        if above:
            raise ValueError(f"a share of step time above 1 ({above[0]}: {self.get(above[0])})")


class OtherParts(msgspec.Struct, kw_only=True):
    """The timed parts of `other`, as shares of step time."""

    before_forward: Share
    loss: Share

    def items(self) -> list[tuple[str, float]]:
        return [("before_forward", self.before_forward), ("loss", self.loss)]


class StepTimes(msgspec.Struct, kw_only=True):
    mean: NonNegative | None
    p50: NonNegative | None
    p95: NonNegative | None
    min: NonNegative | None
    max: NonNegative | None


class StepSeriesSection(msgspec.Struct, kw_only=True):
    """Per-step values, thinned to every `stride`-th step for long runs."""

    stride: Positive = 1
    step: list[Count] = msgspec.field(default_factory=list)
    duration_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    profiled: list[bool] = msgspec.field(default_factory=list)
    dataloader_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    forward_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    backward_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    optimizer_ms: list[NonNegative | None] = msgspec.field(default_factory=list)
    other_ms: list[NonNegative | None] = msgspec.field(default_factory=list)

    def phase_ms(self, phase: str) -> list[float | None]:
        values: list[float | None] = getattr(self, f"{phase}_ms")
        return values


class StepsSection(msgspec.Struct, kw_only=True):
    count: Count
    profiled: Count
    measured: Count
    excluded: str  # which steps the statistics leave out, and why
    mode: Literal["optimizer", "backward", "batch", "trace"] | None
    source: str  # "step clock" or "trace"
    time_ms: StepTimes | None
    breakdown: PhaseValues | None  # time-weighted fractions of step time, summing to 1
    breakdown_ms: PhaseValues | None  # mean ms per step
    other_parts: OtherParts | None
    series: StepSeriesSection

    def __post_init__(self) -> None:
        if self.breakdown is not None:
            self.breakdown.check_shares()
