"""The shared numeric helpers and the one list of phases."""

import numpy as np
import pytest

from perfdoctor.model.numbers import percentile, rounded
from perfdoctor.model.steps import PHASES, PhaseValues


def test_percentile_matches_numpy():
    values = sorted([3.0, 1.0, 7.5, 2.2, 9.9, 4.4, 0.5])
    for q in (0, 0.25, 0.5, 0.9, 0.95, 1):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q * 100))
    assert percentile([4.0], 0.95) == 4.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_rounded_keeps_none():
    assert rounded(None) is None and rounded(1.23456) == 1.235 and rounded(1.23456, 1) == 1.2 and rounded(2) == 2.0


def test_one_list_of_phases():
    """The trace reader keeps its own copy (perfdoctor.trace must not import the model); they agree."""
    from perfdoctor.report import charts
    from perfdoctor.trace import cpu

    assert cpu.PHASES == PHASES and charts.PHASES is PHASES
    assert [phase for phase, _ in PhaseValues.from_dict({}).items()] == list(PHASES)
