"""A trainable that reports NaN and infinite values, for the scheduler tests."""

from __future__ import annotations

import math


def by_kind(config: dict, trial) -> None:
    """``kind`` nan, inf or -inf reports that value at every step; anything else reports ``x + 1/step``.

    Checkpoints every step, so that PBT can copy any trial at any step.
    """
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        special = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
        loss = special.get(config["kind"], config["x"] + 1.0 / step)
        trial.report(step, {"loss": loss}, checkpoint={"step": step})
