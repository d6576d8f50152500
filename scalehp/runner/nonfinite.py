"""A NaN or infinite metric is the worst value: the finite stand-in Ray decides with.

Shared by every recording scheduler (:mod:`scalehp.runner.schedulers`,
:mod:`scalehp.runner.population`): Ray decides with :func:`finite`'s stand-in, and the
events table records what the trial reported; a cut-off that came from a stand-in is
recorded as the worst infinity (:func:`reported`).
"""

from __future__ import annotations

import math

WORST = 1e300
"""The finite stand-in for a NaN or infinite value (Ray's cutoff is a percentile, and inf - inf is NaN)."""


def worst(mode: str) -> float:
    """The stand-in for ``mode``: the largest value when lower is better, else the smallest."""
    return WORST if mode == "min" else -WORST


def reported(value: float | None) -> float | None:
    """A value Ray decided with, in the metric's terms: the stand-in becomes the worst infinity it stood for."""
    if value is None or not abs(value) >= WORST:  # (NaN stays NaN)
        return value
    return math.copysign(math.inf, value)


def finite(result: dict, metric: str, mode: str) -> dict:
    """The result with a NaN or infinite metric replaced by the worst finite value."""
    value = result.get(metric) if result else None
    if isinstance(value, (int, float)) and not math.isfinite(value):
        return {**result, metric: worst(mode)}
    return result
