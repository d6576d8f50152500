"""Driver side: a Ray Tune callback that turns results into Parquet rows and progress."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from scalehp.compiler import Plan
from scalehp.results.schema import column_name
from scalehp.results.sink import ParquetSink

log = logging.getLogger(__name__)

_RAY_KEYS = {
    "training_iteration",
    "time_total_s",
    "episodes_total",
    "timesteps_total",
    "node_ip",
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
    __slots__ = ("started", "step", "metrics", "best", "best_step", "node", "stopped", "retries")

    def __init__(self) -> None:
        self.started = time.time()
        self.step: int | None = None
        self.metrics: dict[str, float] = {}
        self.best: float | None = None
        self.best_step: int | None = None
        self.node: str | None = None
        self.stopped = False
        self.retries = 0


def make_callback(plan: Plan, sink: ParquetSink, run_id: str, time_attr: str, on_progress: Callable | None) -> Any:
    from ray.tune import Callback

    experiment = plan.experiment
    metric, mode = experiment.metric.name, experiment.metric.mode
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    keys = {"run_id": run_id, "experiment": experiment.name}
    columns = plan.columns

    class ParquetCallback(Callback):
        def __init__(self) -> None:
            self.states: dict[str, _TrialState] = {}
            self.done: dict[str, str] = {}
            self.best: tuple[float, str] | None = None
            self.started = time.monotonic()
            self.last_progress = 0.0

        # the scheduler wrapper calls this for every decision
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

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.state(trial.trial_id)
            self.progress(trials)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.state(trial.trial_id).retries += 1

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            state = self.state(trial.trial_id)
            step = result.get(time_attr)
            metrics = _metrics(result)
            state.step = int(step) if step is not None else state.step
            state.metrics = metrics
            state.node = result.get("node_ip") or result.get("hostname")
            value = metrics.get(metric)
            if value is not None and not math.isnan(value):
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
                # the config the trial ran this step with (a PBT exploit changes trial.config before this call)
                **self.params(result.get("config") or trial.config),
                **{column_name("metric", k): v for k, v in metrics.items()},
            }
            sink.add("reports", row)
            self.progress(trials)

        def finish(self, trial: Any, status: str, error: str | None = None) -> None:
            state = self.state(trial.trial_id)
            self.done[trial.trial_id] = status
            sink.add(
                "trials",
                {
                    **keys,
                    "trial_id": trial.trial_id,
                    "status": status,
                    "error": error,
                    "steps": state.step,
                    "best_value": state.best,
                    "best_step": state.best_step,
                    "retries": state.retries,
                    "node": state.node,
                    "started_at": _utc(state.started),
                    "ended_at": _utc(time.time()),
                    **self.params(trial.config),
                    **{column_name("metric", k): v for k, v in state.metrics.items()},
                },
            )

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            state = self.state(trial.trial_id)
            finished = state.step is not None and state.step >= experiment.budget.max_steps
            self.finish(trial, "stopped" if state.stopped or not finished else "completed")
            self.progress(trials, force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.finish(trial, "error", _error_text(trial))
            self.progress(trials, force=True)

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            sink.tick()
            self.progress(trials)

        def on_experiment_end(self, trials: list, **info: Any) -> None:
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
                    running=sum(1 for t in trials if t.status == "RUNNING"),
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
