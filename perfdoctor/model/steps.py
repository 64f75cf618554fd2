"""The report's `steps` section: step-time statistics, where a step's time goes, and the
per-step series. PHASES is the one list of the phases a step is split into.
"""

from __future__ import annotations

from typing import Literal

import msgspec

PHASES = ("dataloader", "forward", "backward", "optimizer", "other")
Phase = Literal["dataloader", "forward", "backward", "optimizer", "other"]
# Parts of "other" the step clock times on their own: work between a batch arriving and the
# forward (per-sample work in the loop) and between forward and backward (the loss).
OTHER_PARTS = ("before_forward", "loss")


class PhaseValues(msgspec.Struct, kw_only=True):
    """One number per phase: shares of step time (summing to 1), or ms per step."""

    dataloader: float
    forward: float
    backward: float
    optimizer: float
    other: float

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> PhaseValues:
        return cls(**{phase: float(values.get(phase, 0.0)) for phase in PHASES})

    def get(self, phase: str) -> float:
        return float(getattr(self, phase))

    def items(self) -> list[tuple[str, float]]:
        return [(phase, self.get(phase)) for phase in PHASES]

    def rounded(self, digits: int) -> PhaseValues:
        return PhaseValues(**{phase: round(value, digits) for phase, value in self.items()})


class OtherParts(msgspec.Struct, kw_only=True):
    """The timed parts of `other`, as shares of step time."""

    before_forward: float
    loss: float

    def items(self) -> list[tuple[str, float]]:
        return [("before_forward", self.before_forward), ("loss", self.loss)]


class StepTimes(msgspec.Struct, kw_only=True):
    mean: float | None
    p50: float | None
    p95: float | None
    min: float | None
    max: float | None


class StepSeriesSection(msgspec.Struct, kw_only=True):
    """Per-step values, thinned to every `stride`-th step for long runs."""

    stride: int = 1
    step: list[int] = msgspec.field(default_factory=list)
    duration_ms: list[float | None] = msgspec.field(default_factory=list)
    profiled: list[bool] = msgspec.field(default_factory=list)
    dataloader_ms: list[float | None] = msgspec.field(default_factory=list)
    forward_ms: list[float | None] = msgspec.field(default_factory=list)
    backward_ms: list[float | None] = msgspec.field(default_factory=list)
    optimizer_ms: list[float | None] = msgspec.field(default_factory=list)
    other_ms: list[float | None] = msgspec.field(default_factory=list)

    def phase_ms(self, phase: str) -> list[float | None]:
        values: list[float | None] = getattr(self, f"{phase}_ms")
        return values


class StepsSection(msgspec.Struct, kw_only=True):
    count: int
    profiled: int
    measured: int
    excluded: str  # which steps the statistics leave out, and why
    mode: Literal["optimizer", "backward", "batch", "trace"] | None
    source: str  # "step clock" or "trace"
    time_ms: StepTimes | None
    breakdown: PhaseValues | None  # time-weighted fractions of step time, summing to 1
    breakdown_ms: PhaseValues | None  # mean ms per step
    other_parts: OtherParts | None
    series: StepSeriesSection
