"""Device times in the section: ms, to 4 decimals."""

from __future__ import annotations


def ms(ns: float) -> float:
    return round(float(ns) / 1e6, 4)
