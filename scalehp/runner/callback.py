"""Driver side: a Ray Tune callback that turns results into Parquet rows and progress.

It also decides when the whole run ends early, as a normal end (not an error): a trial
reached ``metric.goal``, ``failure.max_failed_trials`` trials have failed, or
``budget.time_limit`` has passed. :func:`run_stopper`'s ``stop_all`` then tells Ray to stop;
the end is one ``events`` row (``action = end``, ``reason`` = the setting, the trial, its
step and value, ``cutoff`` = the setting's value), and trials still running get a
``trials`` row with status ``stopped``. A reported name becomes its ``metric_*`` column
through one :class:`~scalehp.results.schema.ColumnMap` per run (see ``results/schema.py``).

A failed attempt that Ray runs again is an ``events`` row (``action = retry``, ``reason`` = its
error). When the run ends (early, or on SIGINT/SIGTERM), trial actors that have not stopped
within :data:`STOP_GRACE_S` are killed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from scalehp.compiler import Plan
from scalehp.results.schema import ColumnMap, describe_end, run_end
from scalehp.results.sink import ParquetSink
from scalehp.trial import MetricMissingError

log = logging.getLogger(__name__)

_RAY_KEYS = {
    "training_iteration",
    "time_total_s",
    "episodes_total",
    "timesteps_total",
    "node_ip",
    "node_id",
    "hostname",
    "pid",
    "time_this_iter_s",
    "timestamp",
    "date",
    "time_since_restore",
    "timesteps_since_restore",
    "iterations_since_restore",
    "config",
    "checkpoint_dir_name",
    "done",
    "trial_id",
    "experiment_tag",
    "should_checkpoint",
    "experiment_id",
    "episodes_this_iter",
    "timesteps_this_iter",
    "step",
}


# ---------------------------------------------------------------------------
# What run() returns and reports


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running experiment, passed to ``on_progress``."""

    trials: int
    running: int
    completed: int
    stopped: int
    errors: int
    elapsed_s: float
    metric: str
    best: float | None = None
    best_trial: str | None = None

    @property
    def done(self) -> int:
        return self.completed + self.stopped + self.errors


def _flat(result: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flat(value, f"{name}/")
        else:
            yield name, value


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in _flat({k: v for k, v in result.items() if k not in _RAY_KEYS}):
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)):
            out[name] = float(value)
        else:
            try:
                out[name] = float(value)  # numpy and torch scalars
            except (TypeError, ValueError):
                continue
    return out


def _utc(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


class _TrialState:
    __slots__ = ("started", "step", "metrics", "best", "best_step", "node", "node_id", "stopped", "retries", "params")

    def __init__(self) -> None:
        self.started = time.time()
        self.step: int | None = None
        self.metrics: dict[str, float] = {}
        self.best: float | None = None
        self.best_step: int | None = None
        self.node: str | None = None
        self.node_id: str | None = None
        self.stopped = False
        self.retries = 0
        self.params: dict[str, Any] = {}  # param columns of the config it last ran with


STOP_GRACE_S = 1.0
"""How long a trial may take to stop once the run ends (early, or on SIGINT/SIGTERM) before
its Ray actor is killed. Ray Tune waits 10 s for an actor that does not stop (a trial hung
in its own code never does), so a run with a time limit would overrun it by that much."""


LIVE: dict[str, Any] = {}
"""run_id -> the :class:`ParquetCallback` of the run going on in this process.

Ray pickles the scheduler and the stopper into its experiment folder; what they hold is the
run id, and they find the live callback here, also after ``scalehp resume``.
"""


class Recorder:
    """What a scheduler calls with each decision; picklable, finds the live callback by run id."""

    def __init__(self, run_id: str):
        self.run_id = run_id

    def __call__(self, event: dict[str, Any]) -> None:
        callback = LIVE.get(self.run_id)
        if callback is not None:
            callback.record_event(event)


def run_stopper(run_id: str, time_attr: str, max_steps: int, time_limit: float | None = None) -> Any:
    """A :class:`ray.tune.Stopper`: a trial at ``max_steps``, the whole run when the callback says so.

    ``time_limit`` (seconds) counts the run's own running time as Ray's ``time_budget_s``
    does (what is left is pickled with Ray's state, so a resumed run gets only the rest),
    and ends the run through the callback, which records why.
    """
    from ray.tune import Stopper

    class RunStopper(Stopper):
        def __init__(self) -> None:
            self.budget = time_limit
            self.last_check: float | None = None

        def __setstate__(self, state: dict[str, Any]) -> None:
            state["last_check"] = None  # the time between the snapshot and a resume is not the run's
            self.__dict__.update(state)

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            from scalehp.runner import callback as live

            found = live.LIVE.get(run_id)
            if found is not None and trial_id in found.finished_before:
                return True  # ended before a resume; Ray's older snapshot had it still running
            step = result.get(time_attr)
            return step is not None and step >= max_steps

        def stop_all(self) -> bool:
            # looked up through the module at call time: this class is pickled by value
            from scalehp.runner import callback as live

            found = live.LIVE.get(run_id)
            if self.budget is not None:
                now = time.monotonic()
                if self.last_check is not None:
                    self.budget -= now - self.last_check
                self.last_check = now
                if self.budget <= 0:
                    if found is not None:
                        found.end("budget.time_limit", None, None, time_limit - self.budget, time_limit)
                    return True
            return bool(getattr(found, "abort", None) or getattr(found, "ended", None))

    return RunStopper()


def _detached() -> Any:
    from ray.tune import Callback

    return Callback()


def make_callback(plan: Plan, sink: ParquetSink, run_id: str, time_attr: str, on_progress: Callable | None) -> Any:
    """The driver-side callback of one run, registered in :data:`LIVE` until :meth:`close`."""
    from ray.tune import Callback

    experiment = plan.experiment
    metric, mode, goal = experiment.metric.name, experiment.metric.mode, experiment.metric.goal
    max_failed = experiment.failure.max_failed_trials
    metric_map = ColumnMap("metric", plan.metric_columns)  # declared metrics claim their columns first
    sink.metric_names = metric_map.names  # the same dict: names claimed later reach the part files too
    metric_map.add([metric])  # (a plan compiled before declared metrics had columns)
    metric_column = metric_map[metric]
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    reached = (lambda v: v <= goal) if mode == "min" else (lambda v: v >= goal)
    keys = {"run_id": run_id, "experiment": experiment.name}
    columns = plan.columns

    class ParquetCallback(Callback):
        def __init__(self) -> None:
            self.states: dict[str, _TrialState] = {}
            self.done: dict[str, str] = {}
            self.best: tuple[float, str] | None = None
            self.started = time.monotonic()
            self.last_progress = 0.0
            self.abort: str | None = None  # why the whole run must stop, when it must
            self.ended: dict[str, Any] | None = None  # why the run ended early (a normal end), when it did
            self.failed = 0  # trials that ended in error (after their retries)
            self.finished_before: set[str] = set()  # trials that had ended before a resume
            self.interrupted: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the run
            self.actors: dict[str, Any] = {}  # trial id -> the Ray actor running it, until it ends
            self.reaper: threading.Timer | None = None
            LIVE[run_id] = self

        def __reduce__(self) -> Any:
            # Ray pickles callbacks into its experiment folder; the sink and the progress
            # display belong to this process only, so a restored run gets a fresh callback.
            return (_detached, ())

        def close(self) -> None:
            if LIVE.get(run_id) is self:
                del LIVE[run_id]
            if self.reaper is not None:
                self.reaper.cancel()
            sink.close()

        def interrupt(self, signum: int) -> None:
            """A signal asks the run to stop; Ray Tune saves its state and stops the trials."""
            log.info("signal %d: the run stops; scalehp resume finishes it", signum)
            self.interrupted = signum
            self.reap()

        def reap(self) -> None:
            """Kill, :data:`STOP_GRACE_S` from now, every trial actor that has not stopped."""
            if self.reaper is not None:
                return

            def kill() -> None:
                import ray

                for actor in list(self.actors.values()):
                    try:
                        ray.kill(actor, no_restart=True)  # an actor that has already exited: nothing
                    except Exception as exc:  # noqa: BLE001 - Ray is shutting down: nothing left to kill
                        log.debug("could not kill a trial actor: %s", exc)

            self.reaper = threading.Timer(STOP_GRACE_S, kill)
            self.reaper.daemon = True
            self.reaper.start()

        def flush(self) -> str:
            """Write every buffered row now (the process is about to exit); returns the run folder."""
            sink.flush()
            return str(sink.run_dir)

        def remember_actor(self, trial: Any) -> None:
            actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
            if actor is not None:
                self.actors[trial.trial_id] = actor

        def seed(self, trials: Any, reports: Any, events: Any = None, metric_columns: dict | None = None) -> None:
            """Pick up where an interrupted run left off (``scalehp resume``).

            A run that had already ended early (its ``end`` event, or a goal or failure count
            that its tables show was reached before the event was written) is marked
            :attr:`ended` again, so resuming it runs nothing more.
            """
            for name, column in (metric_columns or {}).items():
                metric_map.keep(name, column)
            for row in trials.itertuples(index=False):
                self.done[row.trial_id] = row.status
                self.finished_before.add(row.trial_id)
            self.failed = list(self.done.values()).count("error")
            if events is not None:
                self.ended = run_end(events)
            if max_failed is not None and self.failed >= max_failed:
                self.end("failure.max_failed_trials", None, None, self.failed, max_failed)
            if len(reports):
                self.seed_reports(reports)
                if goal is not None and metric_column in reports:
                    hits = reports[reports[metric_column].map(lambda v: math.isfinite(v) and reached(v))]
                    if len(hits):  # the first report that reached the goal, as the live run saw it
                        first = hits.sort_values(["time", "step"], kind="stable").iloc[0]
                        self.end(
                            "metric.goal", first["trial_id"], int(first["step"]), float(first[metric_column]), goal
                        )

        def seed_reports(self, reports: Any) -> None:
            ordered = reports.sort_values(["trial_id", "step"])
            params = [c for c in reports.columns if c.startswith("param_")]
            for trial_id, rows in ordered.groupby("trial_id", sort=False):
                state = self.state(trial_id)
                last = rows.iloc[-1]
                state.step = int(last["step"])
                state.params = {c: _plain(last[c]) for c in params}
                state.metrics = {
                    c: float(last[c]) for c in rows.columns if c.startswith("metric_") and last[c] == last[c]
                }
                if metric_column in rows:
                    values = rows[["step", metric_column]].dropna()
                    values = values[values[metric_column].map(math.isfinite)]  # NaN, inf: never the best
                    if len(values):
                        best = values.loc[
                            values[metric_column].idxmin() if mode == "min" else values[metric_column].idxmax()
                        ]
                        state.best, state.best_step = float(best[metric_column]), int(best["step"])
                        if self.best is None or better(state.best, self.best[0]):
                            self.best = (state.best, trial_id)

        # the scheduler calls this (through a Recorder) for every decision
        def record_event(self, event: dict[str, Any]) -> None:
            if event["action"] == "stop":
                self.state(event["trial_id"]).stopped = True
            sink.add("events", {**keys, "time": time.time(), **event})

        def state(self, trial_id: str) -> _TrialState:
            if trial_id not in self.states:
                self.states[trial_id] = _TrialState()
            return self.states[trial_id]

        def params(self, config: dict[str, Any]) -> dict[str, Any]:
            return {columns[name]: config.get(name) for name in columns}

        def end(self, reason: str, trial_id: str | None, step: int | None, value: float, cutoff: float) -> None:
            """End the whole run early (a normal end): record why, once; ``stop_all`` does the rest."""
            if self.ended is not None or self.abort:
                return
            self.ended = {"reason": reason, "trial_id": trial_id, "step": step, "value": value, "cutoff": cutoff}
            log.info("the run ends early: %s", describe_end(self.ended, metric, mode))
            sink.add("events", {**keys, "time": time.time(), "action": "end", **self.ended})
            sink.flush()  # on disk before Ray stops anything: a resume must see it
            self.reap()  # a trial hung in its own code would hold the end up by 10 s

        def stop_unfinished(self, trials: list | None = None) -> None:
            """A ``stopped`` row for every trial that had started and has none yet (after an early end)."""
            live = {t.trial_id: t for t in trials or ()}
            for trial_id in list(self.states):
                if trial_id in self.done:
                    continue
                if trial_id in live:
                    self.finish(live[trial_id], "stopped")
                else:  # resumed after the end: known only from its reports
                    self.write_row(trial_id, self.states[trial_id].params, "stopped")

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.state(trial.trial_id)
            self.remember_actor(trial)
            self.progress(trials)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            """A failed attempt that Ray runs again: one ``retry`` event saying why it failed."""
            state = self.state(trial.trial_id)
            state.retries += 1
            row = {"trial_id": trial.trial_id, "step": state.step, "action": "retry", "reason": _last_failure(trial)}
            sink.add("events", {**keys, "time": time.time(), **row})

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if trial.trial_id in self.finished_before:
                return  # its rows are written; the stopper ends it
            self.remember_actor(trial)  # (a retried trial runs in a new actor)
            state = self.state(trial.trial_id)
            step = result.get(time_attr)
            reported = _metrics(result)
            metric_map.add(reported)  # names seen for the first time claim their columns
            metrics = {metric_map[k]: v for k, v in reported.items()}
            state.step = int(step) if step is not None else state.step
            state.metrics = metrics
            state.node = result.get("node_ip") or result.get("hostname")
            state.node_id = result.get("node_id") or state.node_id
            value = metrics.get(metric_column)
            if value is not None and not math.isfinite(value):
                value = None  # NaN or inf: the worst value, never a best nor a goal reached
            if value is not None:
                if state.best is None or better(value, state.best):
                    state.best, state.best_step = value, state.step
                if self.best is None or better(value, self.best[0]):
                    self.best = (value, trial.trial_id)
            row = {
                **keys,
                "trial_id": trial.trial_id,
                "step": step,
                "time": result.get("timestamp") or time.time(),
                "elapsed_s": result.get("time_total_s"),
                "node_id": result.get("node_id"),
                # the config the trial ran this step with (a PBT exploit changes trial.config before this call)
                **self.params(result.get("config") or trial.config),
                **metrics,
            }
            sink.add("reports", row)
            if goal is not None and value is not None and reached(value):
                self.end("metric.goal", trial.trial_id, state.step, value, goal)  # after its row: flushed together
            self.progress(trials)

        def finish(self, trial: Any, status: str, error: str | None = None) -> None:
            if trial.trial_id in self.finished_before:
                return
            self.write_row(trial.trial_id, self.params(trial.config), status, error)

        def write_row(self, trial_id: str, params: dict[str, Any], status: str, error: str | None = None) -> None:
            state = self.state(trial_id)
            self.done[trial_id] = status
            sink.add(
                "trials",
                {
                    **keys,
                    "trial_id": trial_id,
                    "status": status,
                    "error": error,
                    "steps": state.step,
                    "best_value": state.best,
                    "best_step": state.best_step,
                    "retries": state.retries,
                    "node": state.node,
                    "node_id": state.node_id,
                    "started_at": _utc(state.started),
                    "ended_at": _utc(time.time()),
                    **params,
                    **state.metrics,
                },
            )

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            state = self.state(trial.trial_id)
            finished = state.step is not None and state.step >= experiment.budget.max_steps
            self.actors.pop(trial.trial_id, None)
            self.finish(trial, "stopped" if state.stopped or not finished else "completed")
            self.progress(trials, force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            error = _error_text(trial)
            if MetricMissingError.__name__ in error and self.abort is None:
                # every trial would fail the same way: stop the run now, not after it
                self.abort = error.rsplit(f"{MetricMissingError.__name__}: ", 1)[-1].strip().splitlines()[0]
            self.actors.pop(trial.trial_id, None)
            self.finish(trial, "error", error)
            if trial.trial_id not in self.finished_before:  # (those were counted before a resume)
                self.failed += 1
                if max_failed is not None and self.failed >= max_failed:
                    step = self.state(trial.trial_id).step
                    self.end("failure.max_failed_trials", trial.trial_id, step, self.failed, max_failed)
            self.progress(trials, force=True)

        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
            # a resume restarts the trial from this checkpoint: every row up to it must be
            # on disk before Ray records it, or the steps in between would be lost
            sink.flush()

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            sink.tick()
            self.progress(trials)

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            if self.ended is not None:  # Ray stops running trials without telling callbacks
                self.stop_unfinished(trials)
            sink.flush()
            self.progress(trials, force=True)

        def progress(self, trials: list, force: bool = False) -> None:
            if on_progress is None:
                return
            now = time.monotonic()
            if not force and now - self.last_progress < 0.5:
                return
            self.last_progress = now
            statuses = list(self.done.values())
            on_progress(
                Progress(
                    trials=plan.trials,
                    running=sum(1 for t in trials if t.status == "RUNNING" and t.trial_id not in self.done),
                    completed=statuses.count("completed"),
                    stopped=statuses.count("stopped"),
                    errors=statuses.count("error"),
                    elapsed_s=now - self.started,
                    metric=metric,
                    best=self.best[0] if self.best else None,
                    best_trial=self.best[1] if self.best else None,
                )
            )

    return ParquetCallback()


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.MULTILINE)


def _last_failure(trial: Any) -> str:
    """The error of a trial's latest failed attempt (Ray's error file holds one per attempt)."""
    return _FAILURE_HEADER.split(_error_text(trial))[-1].strip() or "the trial failed"


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    if path and os.path.exists(path):
        try:
            text = Path(path).read_text(errors="replace").strip()
        except OSError:
            text = ""
        if text:
            return text[-4000:]
    error = trial.get_error() if hasattr(trial, "get_error") else None
    return str(error) if error else "the trial failed"
