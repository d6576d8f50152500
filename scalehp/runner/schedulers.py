"""Ray Tune schedulers, subclassed so that every decision is recorded as an event.

A NaN or infinite metric is the worst value: Ray decides with a finite stand-in for it
(:func:`finite`), and the events table records what the trial reported (NaN or inf as it
was); a cut-off that came from a stand-in is recorded as the worst infinity (:func:`reported`).
"""

from __future__ import annotations

from typing import Any

from scalehp.compiler import Plan
from scalehp.runner.adapter import Adapter
from scalehp.schedulers.base import WORST, finite, reported  # noqa: F401  (WORST: for the tests)


def scheduler(
    plan: Plan, time_attr: str, recorder: Any, snapshots: Any = None, tables: Any = None, sign: Any = None
) -> Any:
    """Ray's scheduler for the plan, subclassed to record decisions and to rank NaN last.

    ``recorder``: the run's :class:`~scalehp.recorder.RunRecorder` (each decision goes through
    its ``decide``); ``tables``: the run's tables on resume, which the scheduler's state is
    rebuilt from; ``sign``: signs a checkpoint folder the scheduler writes (PBT's copy of a
    donor's checkpoint).
    """
    made = _scheduler(plan, time_attr, recorder, tables)
    made.snapshots = snapshots
    made.sign_checkpoint = sign
    return made


def _scheduler(plan: Plan, time_attr: str, recorder: Any, tables: Any) -> Any:
    name = plan.scheduler

    if name in ("fifo", "asha", "median_stopping"):
        return _core_scheduler(plan, time_attr, recorder, tables)
    if name in ("pbt", "pb2"):
        from scalehp.runner.population import population_scheduler

        return population_scheduler(plan, time_attr, recorder, tables)
    if name == "hyperband":
        return _hyperband(plan, time_attr, recorder)

    raise ValueError(f"unknown scheduler {name!r}")


def _hyperband(plan: Plan, time_attr: str, recorder: Any) -> Any:
    """Ray's synchronous Hyperband runs the brackets (pausing and resuming trials); each
    halving is decided by scalehp's core (:class:`~scalehp.schedulers.hyperband.HyperbandCore`)
    and recorded before Ray acts on it; every pause is a row."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import HyperBandScheduler, TrialScheduler

    from scalehp.schedulers import core

    experiment = plan.experiment
    metric, mode = experiment.metric.name, experiment.metric.mode
    decider = core(plan)
    record, recorded = recorder.decide, recorder.decided
    values: dict[str, Any] = {}  # trial id -> the metric as it reported it last (Ray holds the finite stand-in)

    def reported_value(trial: Any, result: dict | None) -> Any:
        return values.get(trial.trial_id, (result or {}).get(metric))

    class RecordingHyperband(Adapter, HyperBandScheduler):
        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            super().on_trial_add(tune_controller, trial)
            if trial.status in (Trial.TERMINATED, Trial.ERROR):
                # a resumed run's trial that had ended: Ray adds it to a bracket too, where it never
                # reports, and the bracket would wait on it at every rung; it leaves as it left before
                self._trial_info[trial][0].cleanup_trial(trial)

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            values[trial.trial_id] = result.get(metric)
            result = finite(result, metric, mode)
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.PAUSE:
                bracket, _ = self._trial_info[trial]
                step = result.get(time_attr)
                if recorded(trial.trial_id, step, "hyperband") != "pause":  # (a step run again after a resume)
                    record(decider.paused(trial.trial_id, step, values.get(trial.trial_id), bracket._cumul_r, bracket._halves))
            return decision

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            super().on_trial_complete(tune_controller, trial, finite(result, metric, mode))

        def _process_bracket(self, tune_controller: Any, bracket: Any) -> str:
            halving = bracket.successive_halving

            def decided(metric_name: str, metric_op: float) -> tuple[list, list]:
                rung, number, live = bracket._cumul_r, bracket._halves, dict(bracket._live_trials)
                good, _ = halving(metric_name, metric_op)  # Ray's bookkeeping of the bracket's sizes
                results = {t.trial_id: ((r or {}).get(time_attr), reported_value(t, r)) for t, r in live.items()}
                halved = decider.halve(results, len(good), rung, number)
                for event in halved.events:
                    record(event)  # on disk before Ray stops or resumes any of them
                by_id = {t.trial_id: t for t in live}
                return [by_id[i] for i in halved.keep], [by_id[i] for i in halved.stop]

            # a bracket whose last rung is below max_steps (Ray rounds rungs down) stops its trials there
            if bracket.cur_iter_done() and bracket.finished():
                for t, result in dict(bracket._live_trials).items():
                    step = (result or {}).get(time_attr)
                    row = decider.ended(t.trial_id, step, reported_value(t, result), bracket._cumul_r, bracket._halves)
                    if row is not None:
                        record(row)
            bracket.successive_halving = decided
            try:
                return super()._process_bracket(tune_controller, bracket)
            finally:
                del bracket.successive_halving

    options = plan.scheduler_options
    return RecordingHyperband(time_attr=time_attr, max_t=options.max_steps, reduction_factor=options.reduction_factor)


def _value(result: dict, metric: str) -> float | None:
    value = result.get(metric) if result else None
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        return float(value)  # (numpy and torch scalars too)
    except (TypeError, ValueError):
        return None


def _core_scheduler(plan: Plan, time_attr: str, recorder: Any, tables: Any) -> Any:
    """FIFO, ASHA and median stopping: Ray runs the trials, scalehp's decision core decides.

    On resume the core is rebuilt from the tables (events, and reports for median stopping);
    a step run again after a resume (its report is on disk) is not decided again: the
    decision recorded for it stands, or ``continue``.
    """
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler

    from scalehp.schedulers import core

    experiment = plan.experiment
    metric, name = experiment.metric.name, plan.scheduler
    decider = core(plan)
    ray_action = {"continue": TrialScheduler.CONTINUE, "stop": TrialScheduler.STOP, "pause": TrialScheduler.PAUSE}
    done: set[tuple[str, int]] = set()
    if tables is not None:
        events = tables.events.sort_values("time", kind="stable").to_dict("records") if len(tables.events) else []
        reports = tables.reports
        column = recorder.metric_column
        if len(reports):
            ordered = reports.sort_values(["time", "step"], kind="stable")
            done = {(t, int(s)) for t, s in zip(ordered["trial_id"], ordered["step"]) if s == s}
            values = ordered[column] if column in ordered else [None] * len(ordered)
            rows = [(t, int(s), None if v != v else float(v)) for t, s, v in zip(ordered["trial_id"], ordered["step"], values)]
        else:
            rows = []
        if name == "median_stopping":
            decider.restore(events, rows)
        else:
            decider.restore(events)

    class CoreScheduler(Adapter, FIFOScheduler):
        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            step = result.get(time_attr)
            trial_id = trial.trial_id
            if step is not None and (trial_id, int(step)) in done:
                return ray_action[recorder.decided(trial_id, step, name) or "continue"]
            decision = decider.report(trial_id, step, _value(result, metric))
            for event in decision.events:
                recorder.decide(event)  # on disk before Ray acts, when it acts
            return ray_action[decision.action]

        def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
            last = (result.get(time_attr), _value(result, metric)) if result else None
            decider.remove(trial.trial_id, completed=True, last=last)

        def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
            decider.remove(trial.trial_id, completed=False)

        def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
            decider.remove(trial.trial_id, completed=False)

    return CoreScheduler()
