"""``scalehp simulate``: an experiment run on a simulated clock, with the decisions a real run makes.

The same experiment file, the same searcher and the same scheduler core as ``scalehp run``,
but each trial's reports come from a table of learning curves (:mod:`.curves`) instead of a
trainable, and time is simulated: ``workers`` trials run at once, a step takes the tabulated
time of that config and step, and a worker is busy until its trial's step ends. The
searcher's and the scheduler's own decision time (measured in this process) is added to the
simulated clock, as Syne Tune's simulator does; ``decision_time=False`` leaves it out, and
then the same seed and inputs give identical rows.

What is the same as a real run, by construction:

* the searcher: Ray's own variant generator for random and grid search over a flat space
  (the very configs, in the same order, that a seeded ``scalehp run`` starts), scalehp's
  seeded sampler for conditional spaces, Ray's hyperopt and optuna searchers otherwise;
* the scheduler: the decision core of :mod:`scalehp.schedulers` (FIFO, ASHA, Hyperband,
  median stopping), called as the Ray adapter calls it: a report at ``max_steps`` ends the
  trial without a decision (Ray's stopper ends it first), a ``stop`` ends it, a ``pause``
  (Hyperband) frees the worker but keeps the trial's place among the ``workers`` live trials
  (as Ray's concurrency limit counts paused trials) until its bracket halves and resumes or
  stops it; resuming takes no simulated time;
* the tables: :class:`~scalehp.recorder.RunRecorder` writes ``trials``, ``reports`` and
  ``events`` and the plan, so ``results``, ``sql``, ``plot``, ``report`` and warm start read
  a simulated run like any other. Time columns hold simulated time from
  :data:`START`; ``plan.json`` has a ``simulated`` entry (source, workers, the
  nearest-neighbour rule) and its ``created_at`` is the only wall-clock time.

The population schedulers (PBT, PB2) are not simulated: an exploiting trial continues from
another trial's checkpoint with new params, a curve no table holds.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from scalehp.compiler import Plan, compile_plan
from scalehp.errors import SpecError
from scalehp.recorder import Progress, RunRecorder
from scalehp.results.schema import param_fields
from scalehp.results.sink import ParquetSink
from scalehp.runner.search import suggestions
from scalehp.schedulers import Decision, core
from scalehp.simulator.curves import NEAREST, Curves, from_results
from scalehp.spec import Experiment

START = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc).timestamp()
"""Simulated time 0, as the time columns show it: 2000-01-01T00:00:00Z."""

SIMULATED_SCHEDULERS = ("fifo", "asha", "hyperband", "median_stopping")
MAX_WORKERS = 100_000


class SimulatedClock:
    """The recorder's clock: simulated seconds since :data:`START`."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return START + self.now

    def monotonic(self) -> float:
        return self.now


@dataclass
class _Running:
    """A live trial: running a step, or paused (Hyperband) until its bracket halves."""

    trial_id: str
    config: dict[str, Any]
    curve: int
    elapsed_s: float = 0.0
    step: int = 0
    value: float | None = None
    paused: bool = False


def check(plan: Plan, workers: int, hours: float | None) -> None:
    """What a simulation needs of the plan and the flags: a one-line error at the flag or key."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise SpecError(f"must be a whole number from 1 to {MAX_WORKERS:,}, got {workers!r}", source="--workers")
    if hours is not None and not (0 < hours <= 24 * 365):
        raise SpecError(f"must be more than 0 and at most a year of hours, got {hours!r}", source="--hours")
    if plan.scheduler not in SIMULATED_SCHEDULERS:
        raise plan.experiment.error(
            "scheduler", f"{plan.scheduler} is not simulated: an exploit continues another trial's checkpoint with new "
            f"params, a curve no table holds; simulate uses {', '.join(SIMULATED_SCHEDULERS)}"
        )


def simulate(
    experiment: Experiment | Plan,
    bench: str | Path | Curves,
    *,
    workers: int,
    hours: float | None = None,
    results: str | Path | None = None,
    run_id: str | None = None,
    decision_time: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
) -> Any:
    """Simulate the experiment over the curves of ``bench``; returns the run's summary.

    Args:
        experiment: a loaded experiment or a compiled plan.
        bench: a scalehp results folder whose ``reports`` hold the curves (or :class:`Curves`).
        workers: trials at once.
        hours: simulated hours the run may take (with ``budget.time_limit``: the shorter).
        results: results root; default: the experiment's ``results`` key.
        run_id: the run's id; default: a new one.
        decision_time: add the searcher's and the scheduler's measured time to the clock.

    Raises:
        SpecError: a flag or the plan cannot be simulated, or the source does not fit the space.
        ResultsError: the source is not a scalehp results folder, or is damaged.
    """
    from scalehp.results.summary import RunSummary, summarize
    from scalehp.runner import _run_dir, new_run_id, plan_json, write_plan

    plan = experiment if isinstance(experiment, Plan) else compile_plan(experiment)
    check(plan, workers, hours)
    curves = bench if isinstance(bench, Curves) else from_results(bench, plan)
    exp = plan.experiment
    configs, searcher = suggestions(plan)
    run_id = run_id or new_run_id()
    run_dir = _run_dir(results or exp.results, exp.name, run_id)
    data = json.loads(plan_json(plan, run_id))
    data["simulated"] = {"source": curves.source, "workers": workers, "hours": hours, "nearest": NEAREST}
    write_plan(run_dir, json.dumps(data, indent=2).encode(), run_id)

    clock = SimulatedClock()
    # not durable (a simulation is run again, not resumed); big parts: a large simulation writes millions of rows
    sink = ParquetSink(run_dir, param_fields(exp.space, plan.columns), durable=False, flush_rows=50_000)
    recorder = RunRecorder(plan, sink, run_id, clock=clock)
    limit = None if hours is None else hours * 3600.0
    if limit is not None:
        recorder.time_limit = limit if recorder.time_limit is None else min(limit, recorder.time_limit)
    decider = core(plan)
    metric, max_steps = exp.metric.name, exp.budget.max_steps
    running: dict[str, _Running] = {}
    queue: list[tuple[float, int, str, int]] = []  # (time the step ends, order, trial id, step)
    order = 0
    started = 0
    last_progress = time.monotonic()

    def measured(call: Callable[[], Any]) -> tuple[Any, float]:
        begin = time.perf_counter()
        out = call()
        return out, (time.perf_counter() - begin) if decision_time else 0.0

    def schedule(trial: _Running, step: int, delay: float) -> None:
        nonlocal order
        order += 1
        heapq.heappush(queue, (clock.now + delay + curves.curves[trial.curve].durations[step - 1], order, trial.trial_id, step))

    def start() -> bool:
        nonlocal started
        suggested, spent = measured(lambda: next(configs, None))
        if suggested is None:
            return False
        config = suggested[1]
        trial = _Running(f"sim_{started:05d}", config, curves.nearest(config))
        started += 1
        running[trial.trial_id] = trial
        recorder.start(trial.trial_id, config)
        schedule(trial, 1, spent)
        return True

    def end(trial: _Running) -> None:
        del running[trial.trial_id]
        act(decider.remove(trial.trial_id, completed=True, last=(trial.step, trial.value)))
        recorder.end_trial(trial.trial_id, config=trial.config)
        if searcher is not None:
            result = {metric: trial.value} if trial.value is not None else None
            searcher.on_trial_complete(trial.trial_id, result=result)

    def act(decision: Decision | None, spent: float = 0.0) -> None:
        """Record a decision's rows, then carry out what it decided about other (paused) trials."""
        if decision is None:
            return
        for event in decision.events:
            recorder.decide(event)
        for trial_id, action in decision.others:
            other = running.get(trial_id)
            if other is None or not other.paused:
                continue
            other.paused = False
            if action == "stop":
                end(other)
            else:  # resumed (Ray restores it from its checkpoint; the restore takes no simulated time)
                schedule(other, other.step + 1, spent)

    while True:
        while len(running) < workers and recorder.may_start() and start():
            pass
        if not queue:
            break
        at, _, trial_id, step = heapq.heappop(queue)
        clock.now = at
        if recorder.over():
            break
        trial = running[trial_id]
        curve = curves.curves[trial.curve]
        metrics = curve.metrics[step - 1]
        trial.elapsed_s += curve.durations[step - 1]
        recorder.report(trial_id, step, metrics, elapsed_s=trial.elapsed_s)
        trial.step, trial.value = step, metrics.get(metric)
        if recorder.ended is not None:
            break
        if step >= max_steps:
            end(trial)
        else:
            decision, spent = measured(lambda: decider.report(trial_id, step, trial.value))
            if decision.action == "pause":
                trial.paused = True  # (a paused trial keeps its place among the live ones, as under Ray)
            act(decision, spent)
            if decision.action == "stop":
                end(trial)
            elif decision.action != "pause":
                schedule(trial, step + 1, spent)
        if on_progress is not None and time.monotonic() - last_progress >= 0.5:
            last_progress = time.monotonic()
            on_progress(recorder.progress(len(running)))
    if running:  # the run ended early (goal, time): its running trials stop where they are
        recorder.stop_unfinished({t.trial_id: t.config for t in running.values()})
    recorder.close()
    if on_progress is not None:
        on_progress(recorder.progress(0))
    summary: RunSummary = summarize(run_dir, elapsed_s=clock.now)
    return summary


__all__ = ["START", "Curves", "SimulatedClock", "simulate"]
