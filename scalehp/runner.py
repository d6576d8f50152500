"""Plan -> Ray Tune -> Parquet: the only module (with ``jobs.py``) that touches Ray.

Ray is imported inside functions, so ``scalehp --help``, ``validate``, ``plan`` and all
analysis start fast and never need a cluster.

What :func:`run` builds from a plan:

* a function trainable that hands the user's function a :class:`~scalehp.trial.Trial`
  (or calls a plain Ray Tune function unchanged), wrapped afresh for every run so that
  ``tune.with_resources`` never touches the user's function object;
* the searcher (random / grid / hyperopt / optuna) and scheduler (fifo / asha), the latter
  wrapped so that each of its decisions is recorded in the ``events`` table and a NaN
  metric counts as the worst value instead of never being stopped;
* a driver-side :class:`ray.tune.Callback` that feeds the :class:`ParquetSink`, instead of
  Ray's per-trial JSON/CSV/TensorBoard files, and reports progress.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import platform
import secrets
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from scalehp.compiler import Plan, compile_plan
from scalehp.errors import RunError, SpecError
from scalehp.results.schema import column_name, param_fields
from scalehp.results.sink import ParquetSink, write_part  # noqa: F401 - write_part re-exported for tests
from scalehp.results.store import PLAN, read_results
from scalehp.space import ChoiceParam, ConstantParam, FloatParam, GridParam, IntParam
from scalehp.spec import Experiment
from scalehp.trial import Trial, load_checkpoint, load_trainable, save_checkpoint, trial_seed

log = logging.getLogger(__name__)

RAY_FOLDER = "ray"  # Ray Tune's own experiment state, inside the run folder
_RAY_KEYS = {
    "training_iteration", "time_total_s", "episodes_total", "timesteps_total", "node_ip", "hostname",
    "pid", "time_this_iter_s", "timestamp", "date", "time_since_restore", "timesteps_since_restore",
    "iterations_since_restore", "config", "checkpoint_dir_name", "done", "trial_id", "experiment_tag",
    "should_checkpoint", "experiment_id", "episodes_this_iter", "timesteps_this_iter", "step",
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


@dataclass(frozen=True)
class RunSummary:
    """What a finished run produced: where its tables are and which trial won."""

    run_id: str
    path: Path
    trials: int
    completed: int
    stopped: int
    errors: int
    elapsed_s: float
    metric: str
    mode: str
    best_trial: str | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Worker side: the trainable Ray runs


class _RayTrial(Trial):
    """A :class:`Trial` inside a Ray Tune function trainable."""

    def _report(self, step: int, metrics: dict[str, Any], checkpoint: Any) -> None:
        from ray import tune

        result = {**metrics, "step": step}
        if checkpoint is None:
            tune.report(result)
            return
        with tempfile.TemporaryDirectory(prefix="scalehp-ckpt-") as folder:
            save_checkpoint(checkpoint, folder)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))

    def restore(self) -> Any:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(folder)
        if isinstance(state, dict) and isinstance(state.get("step"), int):
            self._last_step = state["step"]
        return state


def _trial_index(trial_id: str) -> int:
    try:
        return int(trial_id.rsplit("_", 1)[-1])
    except ValueError:
        return 0


def _trial_name(trial: Any) -> str:
    """``trial_00007``: the trial's position in the run (Ray's experiment tag starts with it)."""
    head = str(getattr(trial, "experiment_tag", "") or "").split("_", 1)[0]
    return f"trial_{int(head):05d}" if head.isdigit() else f"trial_{trial.trial_id}"


def _entry_point(train: Callable, kind: str, plan: Plan) -> Callable[[dict], None]:
    """A fresh function for Ray to run (never the user's own object)."""
    max_steps = plan.experiment.budget.max_steps
    metric = plan.experiment.metric.name
    seed = plan.experiment.seed

    def scalehp_trial(config: dict) -> None:
        if kind == "ray":
            train(config)
            return
        from ray import tune

        context = tune.get_context()
        trial_id = context.get_trial_id() or "trial"
        index = _trial_index(context.get_trial_name() or "")
        trial = _RayTrial(trial_id, max_steps=max_steps, seed=trial_seed(seed, index), metric=metric)
        train(config, trial)

    scalehp_trial.__name__ = scalehp_trial.__qualname__ = f"scalehp_{plan.name.replace('-', '_').replace('.', '_')}"
    return scalehp_trial


# ---------------------------------------------------------------------------
# Driver side: space, searcher, scheduler


def param_space(experiment: Experiment) -> dict[str, Any]:
    """The search space as Ray Tune domains."""
    from ray import tune

    grid = experiment.search.algorithm == "grid"
    space: dict[str, Any] = {}
    for name, p in experiment.space.items():
        if isinstance(p, FloatParam):
            if p.step:
                space[name] = (tune.qloguniform if p.log else tune.quniform)(p.low, p.high, p.step)
            else:
                space[name] = (tune.loguniform if p.log else tune.uniform)(p.low, p.high)
        elif isinstance(p, IntParam):
            if p.log:
                space[name] = tune.lograndint(p.low, p.high + 1)
            elif p.step and p.step > 1:
                space[name] = tune.qrandint(p.low, p.high, p.step)
            else:
                space[name] = tune.randint(p.low, p.high + 1)
        elif isinstance(p, ChoiceParam):
            space[name] = tune.grid_search(list(p.options)) if grid else tune.choice(list(p.options))
        elif isinstance(p, GridParam):
            space[name] = tune.grid_search(list(p.values))
        elif isinstance(p, ConstantParam):
            space[name] = p.value
        else:  # pragma: no cover - every kind is listed above
            raise TypeError(f"unknown param kind {p!r}")
    return space


def _searcher(plan: Plan) -> Any:
    """Ray's search algorithm for the plan, with the concurrency limit applied the way each needs."""
    from ray.tune.search import ConcurrencyLimiter

    experiment = plan.experiment
    algorithm = experiment.search.algorithm
    limit = plan.concurrency or 0
    if algorithm in ("random", "grid"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=experiment.seed, max_concurrent=limit)
    if algorithm == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        searcher = HyperOptSearch(
            n_initial_points=experiment.search.initial_points or 20,
            random_state_seed=experiment.seed,
        )
    elif algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(seed=experiment.seed, n_startup_trials=experiment.search.initial_points or 10)
        searcher = OptunaSearch(sampler=sampler)
    else:  # pragma: no cover - validated in spec
        raise RunError(f"unknown search algorithm {algorithm!r}")
    # a model-based searcher suggests better configs when fewer trials are still out
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher


def _worst(mode: str) -> float:
    # finite: Ray's cutoff is a percentile, and inf - inf would make it NaN
    return 1e300 if mode == "min" else -1e300


def _scheduler(plan: Plan, time_attr: str, record: Callable[[dict[str, Any]], None]) -> Any:
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
                record({
                    "trial_id": trial.trial_id,
                    "step": step,
                    "scheduler": "asha",
                    "action": "stop" if decision == TrialScheduler.STOP else "continue",
                    "rung": int(math.ceil(pending[0])),
                    "value": value,
                    "cutoff": pending[1],
                })
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


# ---------------------------------------------------------------------------
# Driver side: results


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


def _make_callback(plan: Plan, sink: ParquetSink, run_id: str, time_attr: str, on_progress: Callable | None) -> Any:
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
                **self.params(trial.config),
                **{column_name("metric", k): v for k, v in metrics.items()},
            }
            sink.add("reports", row)
            self.progress(trials)

        def finish(self, trial: Any, status: str, error: str | None = None) -> None:
            state = self.state(trial.trial_id)
            self.done[trial.trial_id] = status
            sink.add("trials", {
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
            })

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
            on_progress(Progress(
                trials=plan.trials,
                running=sum(1 for t in trials if t.status == "RUNNING"),
                completed=statuses.count("completed"),
                stopped=statuses.count("stopped"),
                errors=statuses.count("error"),
                elapsed_s=now - self.started,
                metric=metric,
                best=self.best[0] if self.best else None,
                best_trial=self.best[1] if self.best else None,
            ))

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


# ---------------------------------------------------------------------------
# Ray session and resources


@contextmanager
def _ray_session(address: str | None, verbose: bool) -> Iterator[None]:
    import ray

    if ray.is_initialized():  # the caller's own Ray: use it, leave it running
        yield
        return
    try:
        ray.init(
            address=address or "local",  # never attach to a stale local cluster by accident
            include_dashboard=False,
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.WARNING,
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RunError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}") from None
    _protect_token()
    try:
        yield
    finally:
        ray.shutdown()


def _protect_token() -> None:
    """Ray writes its auth token readable by every user (0644); keep it to its owner."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def _check_resources(experiment: Experiment) -> dict[str, float]:
    """The per-trial request; an error if no node could ever hold one trial."""
    import ray

    request = {"CPU": experiment.resources.cpu, "GPU": experiment.resources.gpu, **experiment.resources.custom}
    request = {k: float(v) for k, v in request.items() if v}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(all(node.get(k, 0.0) >= v for k, v in request.items()) for node in nodes):
        largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in request}
        wanted = ", ".join(f"{k}={v:g}" for k, v in request.items())
        have = ", ".join(f"{k}={v:g}" for k, v in largest.items())
        raise experiment.error(
            "resources",
            f"one trial needs {wanted} but the largest node has {have}; lower resources or add nodes",
        )
    return request


# ---------------------------------------------------------------------------
# The run


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def _run_dir(root: str | Path, experiment: str, run_id: str) -> Path:
    base = Path(root).resolve()
    path = (base / experiment / run_id).resolve()
    if base not in path.parents:  # names are validated; this is the last line of defence
        raise RunError(f"run folder {path} would leave the results root {base}")
    return path


def versions() -> dict[str, str]:
    """Versions of what a run depends on, recorded in ``plan.json``."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("scalehp", "ray", "torch", "pyarrow", "hyperopt", "optuna"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_plan(run_dir: Path, plan: Plan, run_id: str) -> None:
    """Write ``plan.json`` (atomically) before any trial starts."""
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"run_id": run_id, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), **plan.to_dict(), "versions": versions()}
    temporary = run_dir / f".{PLAN}.tmp"
    temporary.write_text(json.dumps(data, indent=2, default=str))
    os.replace(temporary, run_dir / PLAN)


def run(
    experiment: Experiment | Plan,
    *,
    address: str | None = None,
    results: str | Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    verbose: bool = False,
) -> RunSummary:
    """Run an experiment on Ray Tune and write its results as Parquet.

    Args:
        experiment: a loaded experiment or an already compiled plan.
        address: a Ray cluster to use (``ray://…`` or ``host:port``); default: a fresh local Ray.
        results: results root; default: the experiment's ``results`` key.
        on_progress: called with a :class:`Progress` now and then, on the driver.
        verbose: let Ray print its own logs and the trials' output.

    Raises:
        SpecError: the trainable cannot be imported, or no node can hold one trial.
        RunError: Ray could not be started or the run could not be carried out.
    """
    plan = experiment if isinstance(experiment, Plan) else compile_plan(experiment)
    exp = plan.experiment
    train, kind = load_trainable(exp.trainable, source=exp.source, line=exp.line_of("trainable"))
    time_attr = "step" if kind == "scalehp" else "training_iteration"

    with _ray_session(address, verbose):
        from ray import tune

        request = _check_resources(exp)
        run_id = new_run_id()
        run_dir = _run_dir(results or exp.results, exp.name, run_id)
        write_plan(run_dir, plan, run_id)
        sink = ParquetSink(run_dir, param_fields(exp.space, plan.columns))
        callback = _make_callback(plan, sink, run_id, time_attr, on_progress)
        trainable = tune.with_resources(
            _entry_point(train, kind, plan),
            {"cpu": request.get("CPU", 0), "gpu": request.get("GPU", 0),
             **{k: v for k, v in request.items() if k not in ("CPU", "GPU")}},
        )
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(exp),
            tune_config=tune.TuneConfig(
                metric=exp.metric.name,
                mode=exp.metric.mode,
                search_alg=_searcher(plan),
                scheduler=_scheduler(plan, time_attr, callback.record_event),
                num_samples=exp.budget.samples,
                time_budget_s=exp.budget.time_limit,
                reuse_actors=True,
                trial_name_creator=_trial_name,
                trial_dirname_creator=lambda t: t.trial_id,
            ),
            run_config=tune.RunConfig(
                name=RAY_FOLDER,
                storage_path=str(run_dir),
                stop={time_attr: exp.budget.max_steps},
                callbacks=[callback],
                failure_config=tune.FailureConfig(max_failures=exp.failure.max_retries, fail_fast=exp.failure.fail_fast),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=exp.checkpoints.keep),
                verbose=0,
            ),
        )
        started = time.monotonic()
        try:
            with _quiet_ray_loggers():
                tuner.fit()
        except SpecError:
            raise
        except Exception as exc:  # noqa: BLE001 - Ray raises many types; the user gets one
            raise RunError(f"the run failed: {exc.__class__.__name__}: {_first_line(exc)}") from exc
        finally:
            sink.close()
        elapsed = time.monotonic() - started
    return summarize(run_dir, elapsed_s=elapsed)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


@contextmanager
def _quiet_ray_loggers() -> Iterator[None]:
    """Ray Tune without its own files and console output; only scalehp reports."""
    # Ray's per-trial JSON/CSV/TensorBoard loggers: off, Parquet replaces them. Ray's own
    # console reporter: the old engine at verbose=0 is silent (the new one prints a banner).
    settings = {
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "RAY_AIR_NEW_OUTPUT": "0",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # checkpoint retention forces snapshots
    }
    previous = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    # Tune's ResultGrid looks for those files at the end and warns for each trial.
    analysis_log = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = analysis_log.level
    analysis_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        analysis_log.setLevel(level)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def summarize(run_dir: str | Path, *, elapsed_s: float = 0.0) -> RunSummary:
    """A :class:`RunSummary` from a run folder's tables."""
    results = read_results(run_dir)
    plan = next(iter(results.plans.values()))
    metric, mode = plan["experiment"]["metric"]["name"], plan["experiment"]["metric"]["mode"]
    trials = results.trials
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    summary: dict[str, Any] = {}
    ranked = trials.dropna(subset=["best_value"]).sort_values("best_value", ascending=(mode == "min"))
    if len(ranked):
        best = ranked.iloc[0]
        params = {name: _plain(best[column]) for name, column in plan["columns"].items()}
        metrics = {c[len("metric_"):]: float(best[c]) for c in trials.columns if c.startswith("metric_") and best[c] == best[c]}
        summary = {
            "best_trial": best["trial_id"],
            "best_value": float(best["best_value"]),
            "best_params": params,
            "best_metrics": metrics,
        }
    return RunSummary(
        run_id=plan["run_id"],
        path=Path(run_dir),
        trials=len(trials),
        completed=int(counts.get("completed", 0)),
        stopped=int(counts.get("stopped", 0)),
        errors=int(counts.get("error", 0)),
        elapsed_s=elapsed_s,
        metric=metric,
        mode=mode,
        **summary,
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
