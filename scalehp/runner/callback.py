"""Driver side: the Ray adapters of a run's :class:`~scalehp.recorder.RunRecorder`.

Ray calls, for each result, the stopper first, then the scheduler, then the callbacks. So:

* :func:`run_stopper` hands every report to the recorder (its ``reports`` row, the goal)
  and ends a trial at ``max_steps`` (its ``trials`` row is on disk before Ray stops it); its
  ``stop_all`` ends the whole run when the recorder says so (goal, failures, time limit);
* the scheduler adapters (``schedulers.py``, ``population.py``) record each decision;
* :func:`make_callback` tells the recorder of starts, retries, errors and ends, and keeps
  Ray's own snapshot ahead of the tables (:class:`Snapshots`).

A run that ends early ends as a normal end (not an error): one ``events`` row (``action =
end``); trials still running get a ``trials`` row with status ``stopped``. When the run ends
(early, or on SIGINT/SIGTERM), trial actors that have not stopped within
:data:`STOP_GRACE_S` are killed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from scalehp.recorder import RunRecorder
from scalehp.results.schema import INFEASIBLE
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



STOP_GRACE_S = 1.0
"""How long a trial may take to stop once the run ends (early, or on SIGINT/SIGTERM) before
its Ray actor is killed. Ray Tune waits 10 s for an actor that does not stop (a trial hung
in its own code never does), so a run with a time limit would overrun it by that much."""


class Snapshots:
    """Keeps Ray's saved state ahead of the tables.

    Ray saves its state (trials, their checkpoints, the searcher) every few seconds; the
    tables are flushed on their own schedule. A trial whose rows reach the disk before Ray's
    state knows of it would, after a driver death, be suggested and run again under a new id.
    So before rows are flushed, Ray saves its state when a trial started since its last save
    (the sink's ``before_write``).
    """

    def __init__(self) -> None:
        self.controller: Any = None
        self.trials: list | None = None  # Ray's own list of trials
        self.saved: set[str] = set()

    def attach(self, controller: Any) -> None:
        self.controller = getattr(controller, "_tune_controller", controller)  # (schedulers get a wrapper)

    def seen(self, trials: list) -> None:
        self.trials = trials

    def taken(self) -> None:
        """Ray is saving its state now."""
        if self.trials is not None:
            self.saved = {t.trial_id for t in self.trials}

    def __call__(self) -> None:
        if self.controller is None or self.trials is None:
            return
        if any(t.trial_id not in self.saved for t in self.trials):
            self.force()

    def force(self) -> None:
        """Ray saves its state now (a PBT exploit was just done)."""
        if self.controller is not None:
            self.controller.checkpoint(force=True, wait=True)


def _detached() -> Any:
    from ray.tune import Callback

    return Callback()


def _never() -> Any:
    from ray.tune import Stopper

    class Never(Stopper):
        def __call__(self, trial_id: str, result: dict) -> bool:
            return False

        def stop_all(self) -> bool:
            return False

    return Never()


def run_stopper(recorder: RunRecorder, time_attr: str) -> Any:
    """A :class:`ray.tune.Stopper` that records every report; a trial at ``max_steps`` ends,
    the whole run ends when the recorder says so. Replaced (not unpickled) on resume."""
    from ray.tune import Stopper

    max_steps = recorder.max_steps

    class RunStopper(Stopper):
        def __reduce__(self) -> Any:  # Ray pickles it into tuner.pkl; resume makes a new one
            return (_never, ())

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            if recorder.status(trial_id) is not None:
                return True  # its end is recorded (before a resume, or just now)
            if INFEASIBLE in result:  # the trainable raised Infeasible: its end, not a report
                recorder.end_trial(trial_id, status="infeasible", error=str(result[INFEASIBLE]))
                return True
            step = result.get(time_attr)
            recorder.report(
                trial_id,
                step,
                _metrics(result),
                time=result.get("timestamp"),
                elapsed_s=result.get("time_total_s"),
                node=result.get("node_ip") or result.get("hostname"),
                node_id=result.get("node_id"),
            )
            if step is not None and step >= max_steps:
                recorder.end_trial(trial_id)  # on disk before Ray stops it
                return True
            return False

        def stop_all(self) -> bool:
            return recorder.over()

    return RunStopper()


def make_callback(recorder: RunRecorder, snapshots: Snapshots, on_progress: Callable | None) -> Any:
    """The driver-side callback of one run: starts, retries, ends, progress, signals."""
    from ray.tune import Callback

    class ParquetCallback(Callback):
        def __init__(self) -> None:
            self.last_progress = 0.0
            self.interrupted: int | None = None  # the signal (SIGINT, SIGTERM) that stopped the run
            self.actors: dict[str, Any] = {}  # trial id -> the Ray actor running it, until it ends
            self.reaper: threading.Timer | None = None
            self.trials: list = []

        def __reduce__(self) -> Any:
            # Ray pickles callbacks into its experiment folder; the recorder and the progress
            # display belong to this process only, so a restored run gets a fresh callback.
            return (_detached, ())

        def get_state(self) -> None:
            snapshots.taken()  # Ray calls this while it saves its state
            return None

        def close(self) -> None:
            if self.reaper is not None:
                self.reaper.cancel()
            recorder.sink.before_write = None  # Ray's run is over: its state is saved
            recorder.close()

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
            recorder.sink.before_write = None  # Ray may be stopping: no snapshot now
            recorder.durable()
            return str(recorder.sink.run_dir)

        def remember_actor(self, trial: Any) -> None:
            actor = getattr(getattr(trial, "temporary_state", None), "ray_actor", None)
            if actor is not None:
                self.actors[trial.trial_id] = actor

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            self.trials = trials
            snapshots.seen(trials)

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            recorder.start(trial.trial_id, trial.config)
            self.remember_actor(trial)
            self.progress(trials)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            recorder.retry(trial.trial_id, _last_failure(trial))

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.remember_actor(trial)  # (a retried trial runs in a new actor)
            if recorder.ended is not None and recorder.ended.get("trial_id") == trial.trial_id:
                self.reap()  # a trial hung in its own code would hold the end up by 10 s
            self.progress(trials)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.actors.pop(trial.trial_id, None)
            recorder.end_trial(trial.trial_id, config=trial.config)
            self.progress(trials, force=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            missing = _metric_missing(trial)
            if missing is not None and recorder.abort is None:
                recorder.abort = missing  # every trial would fail the same way: stop the run now
            self.actors.pop(trial.trial_id, None)
            recorder.end_trial(trial.trial_id, error=error_text(trial), config=trial.config)
            if recorder.ended is not None:
                self.reap()
            self.progress(trials, force=True)

        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
            # a resume restarts the trial from this checkpoint: every row up to it must be
            # on disk before Ray records it, or the steps in between would be lost
            recorder.durable()

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            if recorder.ended is not None:
                self.reap()
            recorder.tick()
            self.progress(trials)

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            if recorder.ended is not None:  # Ray stops running trials without telling callbacks
                recorder.stop_unfinished({t.trial_id: t.config for t in trials})
            recorder.sink.before_write = None
            recorder.durable()
            self.progress(trials, force=True)

        def progress(self, trials: list, force: bool = False) -> None:
            if on_progress is None:
                return
            now = recorder.clock.monotonic()
            if not force and now - self.last_progress < 0.5:
                return
            self.last_progress = now
            running = sum(1 for t in trials if t.status == "RUNNING" and recorder.status(t.trial_id) is None)
            on_progress(recorder.progress(running))

    return ParquetCallback()


def _metric_missing(trial: Any) -> str | None:
    """The message of the trial's error when it is scalehp's MetricMissingError (the trainable
    does not report the experiment's metric), found by type in the error Ray pickled for this
    attempt (a file this driver's Ray wrote in its own staging folder just now)."""
    path = getattr(trial, "pickled_error_file", None)
    if not path or not os.path.isfile(path):
        return None
    try:
        import ray.cloudpickle as cloudpickle

        with open(path, "rb") as handle:
            error = cloudpickle.load(handle)
    except Exception as exc:  # noqa: BLE001 - an error that cannot be unpickled here is not this case
        log.debug("cannot read the pickled error of %s: %s", getattr(trial, "trial_id", "?"), exc)
        return None
    chain = []
    while error is not None and len(chain) < 8:
        chain.append(error)
        error = getattr(error, "cause", None) or error.__cause__
    for found in reversed(chain):  # the original first: Ray's wrapper's text is a traceback
        if isinstance(found, MetricMissingError):
            text = str(found).strip()
            return text.splitlines()[0] if text else MetricMissingError.__name__
    return None


_FAILURE_HEADER = re.compile(r"^Failure # \d+ \(occurred at [^)]*\)$", re.MULTILINE)


def _last_failure(trial: Any) -> str:
    """The error of a trial's latest failed attempt (Ray's error file holds one per attempt)."""
    return _FAILURE_HEADER.split(error_text(trial))[-1].strip() or "the trial failed"


def error_text(trial: Any) -> str:
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
