"""Ray Tune schedulers, subclassed so that every decision is recorded as an event.

A NaN or infinite metric is the worst value: Ray decides with a finite stand-in for it
(:func:`finite`), and the events table records what the trial reported (NaN or inf as it
was); a cut-off that came from a stand-in is recorded as the worst infinity (:func:`reported`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

from scalehp.compiler import Plan
from scalehp.runner.nonfinite import WORST, finite, reported  # noqa: F401 - WORST: tests read it here
from scalehp.runner.nonfinite import worst as _worst


def scheduler(plan: Plan, time_attr: str, record: Callable[[dict[str, Any]], None]) -> Any:
    """Ray's scheduler for the plan, subclassed to record decisions and to rank NaN last."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

    experiment = plan.experiment
    metric, mode = experiment.metric.name, experiment.metric.mode
    name = plan.scheduler

    if name == "fifo":
        return FIFOScheduler()
    if name in ("pbt", "pb2"):
        from scalehp.runner.population import population_scheduler

        return population_scheduler(plan, time_attr, record)
    if name == "hyperband":
        return _hyperband(plan, time_attr, record)
    if name == "median_stopping":
        return _median_stopping(plan, time_attr, record)

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
                        pending = (milestone, None if cutoff is None else reported(float(cutoff) * self._metric_op))
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


def _hyperband(plan: Plan, time_attr: str, record: Callable[[dict[str, Any]], None]) -> Any:
    """Ray's synchronous Hyperband; every halving records continue/stop per trial, every pause a row."""
    from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

    experiment = plan.experiment
    metric, mode = experiment.metric.name, experiment.metric.mode

    values: dict[str, Any] = {}  # trial id -> the metric as it reported it last (Ray holds the finite stand-in)

    class RecordingHyperband(HyperBandScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            values[trial.trial_id] = result.get(metric)
            result = finite(result, metric, mode)
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.PAUSE:
                bracket, _ = self._trial_info[trial]
                record(
                    {
                        "trial_id": trial.trial_id,
                        "step": result.get(time_attr),
                        "scheduler": "hyperband",
                        "action": "pause",
                        "rung": bracket._cumul_r,
                        "bracket": bracket._halves,
                        "value": values.get(trial.trial_id),
                    }
                )
            return decision

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            super().on_trial_complete(tune_controller, trial, finite(result, metric, mode))

        def _process_bracket(self, tune_controller: Any, bracket: Any) -> str:
            halving = bracket.successive_halving
            seen: dict[str, Any] = {}

            def recorded(metric_name: str, metric_op: float) -> tuple[list, list]:
                seen["rung"], seen["bracket"] = bracket._cumul_r, bracket._halves
                seen["results"] = dict(bracket._live_trials)
                good, bad = halving(metric_name, metric_op)
                seen["good"], seen["bad"] = list(good), list(bad)
                return good, bad

            # a bracket whose last rung is below max_steps (Ray rounds rungs down) stops its trials there
            ending = dict(bracket._live_trials) if bracket.cur_iter_done() and bracket.finished() else {}
            bracket.successive_halving = recorded
            try:
                return super()._process_bracket(tune_controller, bracket)
            finally:
                del bracket.successive_halving
                if seen:
                    _record_halving(seen)
                for t, result in ending.items():
                    step = (result or {}).get(time_attr)
                    if step is not None and step < self._max_t_attr:
                        record(
                            {
                                "trial_id": t.trial_id,
                                "step": step,
                                "scheduler": "hyperband",
                                "action": "stop",
                                "rung": bracket._cumul_r,
                                "bracket": bracket._halves,
                                "value": values.get(t.trial_id, (result or {}).get(metric)),
                            }
                        )

    def _record_halving(seen: dict[str, Any]) -> None:
        scores = {t: (r or {}).get(metric) for t, r in seen["results"].items()}  # as Ray decided: finite
        kept = [scores[t] for t in seen["good"] if scores[t] is not None]
        cutoff = reported((max(kept) if mode == "min" else min(kept)) if kept else None)
        for action, trials in (("continue", seen["good"]), ("stop", seen["bad"])):
            for t in trials:
                result = seen["results"].get(t) or {}
                record(
                    {
                        "trial_id": t.trial_id,
                        "step": result.get(time_attr),
                        "scheduler": "hyperband",
                        "action": action,
                        "rung": seen["rung"],
                        "bracket": seen["bracket"],
                        "value": values.get(t.trial_id, scores[t]),
                        "cutoff": cutoff,
                    }
                )

    options = plan.scheduler_options
    return RecordingHyperband(
        time_attr=time_attr, max_t=options["max_steps"], reduction_factor=options["reduction_factor"]
    )


def _median_stopping(plan: Plan, time_attr: str, record: Callable[[dict[str, Any]], None]) -> Any:
    """Ray's median stopping rule; each comparison records continue/stop with the median as cutoff."""
    import numpy as np
    from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

    experiment = plan.experiment
    metric = experiment.metric.name

    class RecordingMedianStopping(MedianStoppingRule):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            already = trial in self._stopped_trials
            decision = super().on_trial_result(tune_controller, trial, result)
            step = result.get(time_attr)
            if already or step is None or metric not in result or step < self._grace_period:
                return decision
            others = [t for t in self._trials_beyond_time(step) if t is not trial]
            means = [m for m in (self._running_mean(t, step) for t in others) if np.isfinite(m)]
            if len(means) < self._min_samples_required:
                return decision
            record(
                {
                    "trial_id": trial.trial_id,
                    "step": step,
                    "scheduler": "median_stopping",
                    "action": "stop" if decision == TrialScheduler.STOP else "continue",
                    "value": float(self._best_result(trial)),
                    "cutoff": float(np.median(means)),
                }
            )
            return decision

        def _on_insufficient_samples(self, tune_controller: Any, trial: Any, time: float) -> str:
            # Ray pauses a trial to let others catch up; a trainable without a checkpoint at
            # that step would start over, so scalehp lets it continue
            return TrialScheduler.CONTINUE

    options = plan.scheduler_options
    return RecordingMedianStopping(
        time_attr=time_attr, grace_period=options["grace_steps"], min_samples_required=options["min_samples"]
    )
