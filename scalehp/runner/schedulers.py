"""Ray Tune schedulers, subclassed so that every decision is recorded as an event."""

from __future__ import annotations

import math
from typing import Any, Callable

from scalehp.compiler import Plan


def _worst(mode: str) -> float:
    # finite: Ray's cutoff is a percentile, and inf - inf would make it NaN
    return 1e300 if mode == "min" else -1e300


def scheduler(plan: Plan, time_attr: str, record: Callable[[dict[str, Any]], None]) -> Any:
    """Ray's scheduler for the plan, subclassed to record decisions and to rank NaN last."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

    experiment = plan.experiment
    metric, mode = experiment.metric.name, experiment.metric.mode
    name = plan.scheduler

    if name == "fifo":
        return FIFOScheduler()

    class RecordingASHA(AsyncHyperBandScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            value = result.get(metric)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                result = {**result, metric: _worst(mode)}  # NaN or inf: the worst value, not ignored
            pending = None
            bracket = self._trial_info.get(trial.trial_id)
            step = result.get(time_attr)
            if bracket is not None and step is not None and metric in result and step < self._max_t:
                for milestone, recorded in bracket._rungs:
                    if step >= milestone and trial.trial_id not in recorded:
                        cutoff = bracket.cutoff(recorded)
                        pending = (milestone, None if cutoff is None else float(cutoff) * self._metric_op)
                        break
            decision = super().on_trial_result(tune_controller, trial, result)
            if pending is not None:
                record(
                    {
                        "trial_id": trial.trial_id,
                        "step": step,
                        "scheduler": "asha",
                        "action": "stop" if decision == TrialScheduler.STOP else "continue",
                        "rung": int(math.ceil(pending[0])),
                        "value": value,
                        "cutoff": pending[1],
                    }
                )
            return decision

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            value = result.get(metric) if result else None
            if isinstance(value, (int, float)) and not math.isfinite(value):
                result = {**result, metric: _worst(mode)}
            super().on_trial_complete(tune_controller, trial, result)

    options = plan.scheduler_options
    return RecordingASHA(  # metric and mode come from TuneConfig, the one place they are set
        time_attr=time_attr,
        max_t=options["max_steps"],
        grace_period=options["grace_steps"],
        reduction_factor=options["reduction_factor"],
        brackets=options["brackets"],
    )
