"""Synchronous Hyperband (Li et al., 2018), as Ray's ``HyperBandScheduler`` runs it.

Ray stays the executor (it pauses trials until their bracket catches up and resumes them from
checkpoints); the core here holds the halving decision, so that it is the same pure rule
whatever drives it: the bracket's live trials ranked by their last value (NaN and inf worst),
the best ``keep`` continue, the rest stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from scalehp.schedulers.base import (
    CONTINUE,
    MODEL_BASED,
    PAUSE,
    STOP,
    Bracket,
    Core,
    Options,
    Preview,
    Settings,
    finite_value,
    reported,
    sign,
)
from scalehp.space import Number

NAME = "hyperband"
NEEDS_CHECKPOINTS: str | None = "pauses trials and resumes them from checkpoints"


class HyperbandOptions(Options):
    """Synchronous Hyperband (Li et al., 2018): brackets of successive halving, paused trials resumed."""

    reduction_factor: Number = Field(3.0, gt=1, le=100, description="keep 1/reduction_factor at each rung")


@dataclass(frozen=True)
class HyperbandSettings(Settings):
    """Hyperband's plan options."""

    reduction_factor: float = 3.0
    brackets: int = 1


def preview(experiment: Any, trials: int) -> Preview:
    """Ray's brackets, and the steps expected when the run's trials fill them in order.

    Raises:
        SpecError: a reduction factor above ``budget.max_steps``.
    """
    options = experiment.scheduler.hyperband
    max_steps = experiment.budget.max_steps
    eta = options.reduction_factor
    # Ray's HyperBandScheduler: s_max + 1 brackets; bracket s starts n0 trials at r0 steps
    s_max_1 = int(round(math.log(max_steps) / math.log(eta))) + 1
    brackets = []
    for s in range(s_max_1):
        r0 = int(max_steps * eta ** (-s))
        if r0 == 0:
            continue
        n0 = int(math.ceil(s_max_1 / (s + 1) * eta**s))
        rungs, r = [r0], r0
        for _ in range(s):
            r = int(min(r * eta, max_steps))
            rungs.append(r)
        brackets.append(Bracket(index=s, trials=n0, rungs=tuple(rungs)))
    if max_steps < eta:
        raise experiment.error(
            "scheduler.hyperband.reduction_factor",
            f"reduction_factor ({eta:g}) is above budget.max_steps ({max_steps}): hyperband would never halve",
        )
    # expected steps: fill brackets in order with the run's trials, halving at each rung
    expected, left = 0, trials
    while left > 0:
        for bracket in brackets:
            if left <= 0:
                break
            n = min(bracket.trials, left)
            left -= n
            previous = 0
            for rung in bracket.rungs:
                expected += n * (rung - previous)
                previous = rung
                n = max(1, math.ceil(n / eta))
    warnings = []
    if experiment.search.algorithm in MODEL_BASED:
        warnings.append("hyperband pauses trials between rungs; a model-based searcher sees their results late")
    return Preview(
        settings=HyperbandSettings(max_steps=max_steps, reduction_factor=eta, brackets=len(brackets)),
        expected_steps=min(expected, trials * max_steps),
        keep_checkpoints=experiment.checkpoints.keep,
        brackets=tuple(brackets),
        warnings=tuple(warnings),
    )


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s scheduler and bracket lines."""
    o: HyperbandSettings = plan.scheduler_options
    lines = [f"scheduler   hyperband: reduction factor {o.reduction_factor:g}, {o.brackets} brackets"]
    lines.append("brackets    bracket  trials  halving at steps (trials are paused until their bracket catches up)")
    for b in plan.brackets:
        lines.append(f"            {str(b.index).rjust(7)}  {str(b.trials).rjust(6)}  {', '.join(map(str, b.rungs))}")
    return lines


@dataclass(frozen=True)
class Halving:
    """One halving of a bracket: trial ids kept and stopped, the cutoff (the worst kept value), the rows."""

    keep: tuple[str, ...]
    stop: tuple[str, ...]
    cutoff: float | None
    events: tuple[dict, ...]


class HyperbandCore(Core):
    """Hyperband's halving decision; ``report`` always continues (Ray pauses and resumes)."""

    def __init__(self, settings: HyperbandSettings, mode: str, seed: int | None = None) -> None:
        self.settings = settings
        self.mode = mode
        self._sign = sign(mode)

    def kept(self, n: int) -> int:
        """How many of a bracket's ``n`` trials survive a halving (Ray's ``ceil(n / eta)``)."""
        return int(np.ceil(n / self.settings.reduction_factor))

    def halve(
        self, results: dict[str, tuple[int | None, float | None]], keep: int, rung: int, bracket: int
    ) -> Halving:
        """Rank ``results`` (trial id -> (step, value as reported), in the bracket's order) and keep the best ``keep``.

        As Ray's ``successive_halving``: a stable sort by ``sign * value``, the last ``keep`` kept.
        """
        decided = {t: finite_value(v, self.mode) for t, (_, v) in results.items()}
        worst_reward = -math.inf
        order = sorted(
            results, key=lambda t: worst_reward if decided[t] is None else self._sign * decided[t]
        )
        good, bad = order[-keep:], order[:-keep]  # Ray's slices, literally
        kept = [decided[t] for t in good if decided[t] is not None]
        cutoff = reported((max(kept) if self.mode == "min" else min(kept)) if kept else None)
        rows = []
        for action, trials in ((CONTINUE, good), (STOP, bad)):
            for t in trials:
                rows.append(
                    {
                        "trial_id": t,
                        "step": results[t][0],
                        "scheduler": NAME,
                        "action": action,
                        "rung": rung,
                        "bracket": bracket,
                        "value": results[t][1],
                        "cutoff": cutoff,
                    }
                )
        return Halving(keep=tuple(good), stop=tuple(bad), cutoff=cutoff, events=tuple(rows))

    def paused(self, trial_id: str, step: int | None, value: float | None, rung: int, bracket: int) -> dict:
        """The row for a trial paused until its bracket catches up."""
        return {
            "trial_id": trial_id,
            "step": step,
            "scheduler": NAME,
            "action": PAUSE,
            "rung": rung,
            "bracket": bracket,
            "value": value,
        }

    def ended(self, trial_id: str, step: int | None, value: float | None, rung: int, bracket: int) -> dict | None:
        """The row for a trial stopped because its bracket's last rung is below ``max_steps``; None at the end."""
        if step is None or step >= self.settings.max_steps:
            return None
        return {**self.paused(trial_id, step, value, rung, bracket), "action": STOP}


def core(settings: HyperbandSettings, mode: str, seed: int | None = None) -> HyperbandCore:
    return HyperbandCore(settings, mode, seed)


__all__ = ["Halving", "HyperbandCore", "HyperbandOptions", "HyperbandSettings", "core", "describe", "preview"]
