"""The median stopping rule (Golovin et al., 2017), as Ray's ``MedianStoppingRule`` runs it.

After ``grace_steps``, a trial reporting at step ``t`` is compared with the other trials that
reached ``t``: it stops when its best value so far is worse than the median of their running
means (their values from ``grace_steps`` to ``t``), once at least ``min_samples`` others have
one. Where Ray would pause a trial for lack of samples, scalehp lets it continue: a trainable
without a checkpoint at that step would start over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from pydantic import Field

from scalehp.schedulers.base import (
    CONTINUE,
    STOP,
    Core,
    Decision,
    Options,
    Preview,
    Settings,
    finite_value,
    reported,
    worst,
)
from scalehp.space import Integer

NAME = "median_stopping"
NEEDS_CHECKPOINTS: str | None = None  # stopped trials never resume


class MedianStoppingOptions(Options):
    """Stop a trial whose best value is worse than the median of the others' running means."""

    grace_steps: Integer = Field(1, ge=1, description="steps before a trial can be stopped")
    min_samples: Integer = Field(3, ge=1, description="other trials needed at a step before comparing")


@dataclass(frozen=True)
class MedianStoppingSettings(Settings):
    """The median stopping rule's plan options."""

    grace_steps: int = 1
    min_samples: int = 3


def never_stops(grace_steps: int, min_samples: int, trials: int, max_steps: int) -> tuple[str, str] | None:
    """Why the rule could stop no trial of a run of ``trials`` trials of ``max_steps`` steps:
    the option at fault and the reason, or None when it could stop one.

    Example:
        >>> never_stops(4, 3, trials=3, max_steps=10)
        ('min_samples', 'min_samples (3) needs more than 3 trials')
    """
    if grace_steps >= max_steps:
        return "grace_steps", f"grace_steps ({grace_steps}) is not below budget.max_steps ({max_steps})"
    if min_samples >= trials:
        return "min_samples", f"min_samples ({min_samples}) needs more than {trials} trials"
    return None


def preview(experiment: Any, trials: int) -> Preview:
    """Check the options against the budget; every trial may run every step.

    Raises:
        SpecError: a grace period that is not below ``max_steps``, or more samples than trials.
    """
    options = experiment.scheduler.median_stopping
    max_steps = experiment.budget.max_steps
    problem = never_stops(options.grace_steps, options.min_samples, trials, max_steps)
    if problem is not None:
        key, why = problem
        raise experiment.error(f"scheduler.median_stopping.{key}", f"{why}: no trial could ever be stopped")
    return Preview(
        settings=MedianStoppingSettings(
            max_steps=max_steps, grace_steps=options.grace_steps, min_samples=options.min_samples
        ),
        expected_steps=trials * max_steps,
        keep_checkpoints=experiment.checkpoints.keep,
    )


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s scheduler line."""
    o: MedianStoppingSettings = plan.scheduler_options
    return [
        f"scheduler   median stopping: after {o.grace_steps} steps, stop a trial whose best value is worse "
        f"than the median of the others' running means (at least {o.min_samples} others)"
    ]


class MedianStoppingCore(Core):
    """The median stopping decisions: Ray's rule, with NaN and inf as the worst value.

    A running mean over a stand-in is recorded as the worst infinity, as the best value is.
    """

    def __init__(self, settings: MedianStoppingSettings, mode: str, seed: int | None = None) -> None:
        self.settings = settings
        self.mode = mode
        self._best = max if mode == "max" else min
        self._infinity = math.copysign(math.inf, worst(mode))
        self._results: dict[str, list[tuple[float, float]]] = {}  # trial id -> (step, value decided with)
        self._stopped: set[str] = set()

    def _running_mean(self, trial_id: str, step: float) -> tuple[float, float]:
        """(the mean Ray compares, the mean as recorded): NaN when the trial has no value in the window."""
        scoped = [v for s, v in self._results[trial_id] if self.settings.grace_steps <= s <= step]
        if not scoped:
            return math.nan, math.nan
        mean = float(np.mean(scoped))
        return mean, (self._infinity if any(reported(v) != v for v in scoped) else mean)

    def report(self, trial_id: str, step: int, value: float | None) -> Decision:
        if value is None or step is None:
            return Decision(CONTINUE)
        if trial_id in self._stopped:
            return Decision(STOP)
        self._results.setdefault(trial_id, []).append((step, finite_value(value, self.mode)))
        if step < self.settings.grace_steps:
            return Decision(CONTINUE)
        others = [t for t, rows in self._results.items() if rows[-1][0] >= step and t != trial_id]
        means = [m for m in (self._running_mean(t, step) for t in others) if np.isfinite(m[0])]
        if len(means) < self.settings.min_samples:
            return Decision(CONTINUE)
        median = np.median([m[0] for m in means])
        best = self._best([v for _, v in self._results[trial_id]])
        action = STOP if self._best(median, best) != best else CONTINUE
        if action == STOP:
            self._stopped.add(trial_id)
        event = {
            "trial_id": trial_id,
            "step": step,
            "scheduler": NAME,
            "action": action,
            "value": reported(float(best)),
            "cutoff": float(np.median([m[1] for m in means])),
        }
        return Decision(action, (event,))

    def remove(self, trial_id: str, *, completed: bool = True, last: tuple[int, float | None] | None = None) -> None:
        """As Ray: a completed (or stopped) trial's last result counts once more in its running mean.

        ``last``: (step, value) of the result the trial ended with, when the runtime has it (a
        trial ended at ``max_steps`` by the runtime was never reported to the core at that step).
        """
        rows = self._results.get(trial_id)
        if not completed:
            return
        if last is not None and last[0] is not None and last[1] is not None:
            self._results.setdefault(trial_id, []).append((last[0], finite_value(last[1], self.mode)))
        elif rows:
            rows.append(rows[-1])

    def restore(self, events: list[dict], reports: Iterable[tuple[str, int, float | None]] = ()) -> None:
        """Rebuild from the trials' reports (trial id, step, value; in reported order) and the stop rows.

        The running means need every report, which the events do not hold: without ``reports``
        only the stopped trials are restored. A trial stopped, or whose last report is at
        ``max_steps``, has ended, as :meth:`remove` leaves it.
        """
        for trial_id, step, value in reports:
            if value is not None and step is not None:
                self._results.setdefault(trial_id, []).append((step, finite_value(value, self.mode)))
        for row in events:
            if row.get("scheduler") == NAME and row.get("action") == STOP:
                self._stopped.add(row["trial_id"])
        for trial_id, rows in self._results.items():
            # a stopped trial's last report counts twice (decided on, then Ray's on_trial_complete);
            # one at max_steps was never decided on: its report already counts once, as live
            if trial_id in self._stopped:
                rows.append(rows[-1])


def core(settings: MedianStoppingSettings, mode: str, seed: int | None = None) -> MedianStoppingCore:
    return MedianStoppingCore(settings, mode, seed)


__all__ = ["MedianStoppingCore", "MedianStoppingOptions", "MedianStoppingSettings", "core", "describe", "preview"]
