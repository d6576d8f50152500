"""Plan -> Ray Tune -> Parquet: the seam between scalehp and Ray.

This package (with ``jobs.py``) is the only code that imports Ray, and only inside
functions, so ``scalehp --help``, ``validate``, ``plan`` and all analysis start fast and
never need a cluster. :func:`run` puts together, one module each:

* ``trainable.py``  the function Ray runs: it hands the user's function a
  :class:`~scalehp.trial.Trial` (or calls a plain Ray Tune function unchanged), built
  afresh for every run so ``tune.with_resources`` never touches the user's object;
* ``search.py``     the space as Ray Tune domains and the search algorithm;
* ``schedulers.py`` Ray's schedulers, subclassed so every decision is recorded in the
  ``events`` table and a NaN metric counts as the worst value;
* ``callback.py``   a driver-side :class:`ray.tune.Callback` that feeds the
  :class:`~scalehp.results.sink.ParquetSink` (instead of Ray's per-trial JSON/CSV/TensorBoard
  files) and reports :class:`Progress`;
* ``session.py``    starting or joining Ray, resource checks, keeping Tune quiet, SIGINT and
  SIGTERM as a clean stop (:class:`~scalehp.errors.RunInterrupted`), a dead worker as one
  trial's failure;
* ``integrity.py``  the user's key, and the signed record of a run folder that ``resume``
  checks before Ray reads anything in it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
import secrets
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from scalehp.command import experiment_trainable, print_line
from scalehp.compiler import Plan, compile_plan
from scalehp.errors import ResultsError, RunError, RunInterrupted, SpecError
from scalehp.recorder import Progress, RunRecorder
from scalehp.results.journal import journal_files
from scalehp.results.schema import TABLES, param_fields
from scalehp.results.sink import ParquetSink, filesystem_of, is_uri
from scalehp.results.store import PLAN, part_files, read_plan, read_results
from scalehp.results.summary import RunSummary, summarize
from scalehp.runner.callback import Snapshots, error_text, make_callback, run_stopper
from scalehp.runner.integrity import RAY_FOLDER, Manifest, load_key, signing_callback
from scalehp.runner.schedulers import scheduler
from scalehp.runner.search import param_space, searcher
from scalehp.runner.session import (
    check_resources,
    interrupts,
    quiet_tune,
    ray_session,
    state_copies,
    tolerate_worker_deaths,
)
from scalehp.runner.trainable import entry_point, trial_dirname, trial_name
from scalehp.spec import Experiment, experiment_from_data

log = logging.getLogger(__name__)

__all__ = ["Progress", "RunSummary", "param_space", "resume", "run", "summarize"]


# ---------------------------------------------------------------------------
# The run


RUN_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{4}")  # what new_run_id makes; use with fullmatch


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a random suffix."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def _run_dir(root: str | Path, experiment: str, run_id: str) -> Path | str:
    if is_uri(root):  # experiment names and run ids never hold '/' or '..' (validated)
        return f"{str(root).rstrip('/')}/{experiment}/{run_id}"
    base = Path(str(root).removeprefix("file://")).resolve()
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


def plan_json(plan: Plan, run_id: str) -> bytes:
    """The bytes of a run's ``plan.json``: the compiled plan, the run id, when, and versions."""
    data = {
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        **plan.to_dict(),
        "versions": versions(),
    }
    return json.dumps(data, indent=2, default=str).encode()


def write_plan(run_dir: Path | str, plan: Plan | bytes, run_id: str) -> None:
    """Write ``plan.json`` (atomically) before any trial starts."""
    text = plan if isinstance(plan, bytes) else plan_json(plan, run_id)
    if isinstance(run_dir, str):  # an object store: the object appears whole, or not at all
        filesystem, path = filesystem_of(run_dir)
        filesystem.create_dir(path, recursive=True)
        with filesystem.open_output_stream(f"{path}/{PLAN}") as out:
            out.write(text)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / f".{PLAN}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, run_dir / PLAN)


def run(
    experiment: Experiment | Plan,
    *,
    address: str | None = None,
    results: str | Path | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    verbose: bool = False,
    run_id: str | None = None,
) -> RunSummary:
    """Run an experiment on Ray Tune and write its results as Parquet.

    Args:
        experiment: a loaded experiment or an already compiled plan.
        address: a Ray cluster to use (``ray://…`` or ``host:port``); default: a fresh local Ray.
        results: results root; default: the experiment's ``results`` key.
        on_progress: called with a :class:`Progress` now and then, on the driver.
        verbose: let Ray print its own logs and the trials' output.
        run_id: the run's id (as :func:`new_run_id` makes them), chosen by whoever submitted
            the run; default: a new one. A run folder with this id must not exist yet.

    Raises:
        SpecError: the trainable cannot be imported (or the command's program is not found),
            no node can hold one trial, the trainable does not report the experiment's
            metric (the run stops at once), or ``run_id`` is not a run id.
        RunError: Ray could not be started or the run could not be carried out.
        RunInterrupted: SIGINT or SIGTERM stopped the run (a :class:`RunError`); it holds the
            summary of what was recorded, and ``scalehp resume`` finishes the run.
    """
    if run_id is not None and not (isinstance(run_id, str) and RUN_ID.fullmatch(run_id)):
        raise SpecError(f"{run_id!r} is not a run id (like {new_run_id()!r})", source="run_id")
    plan = experiment if isinstance(experiment, Plan) else compile_plan(experiment)
    exp = plan.experiment
    train, kind = experiment_trainable(exp, echo=print_line)
    check_kind(plan, kind)
    key = None if is_uri(results or exp.results) else load_key(create=True)  # (resume reads local folders only)
    with ray_session(address, verbose):
        request = check_resources(exp)
        chosen, run_id = run_id, run_id or new_run_id()
        run_dir = _run_dir(results or exp.results, exp.name, run_id)
        if chosen and isinstance(run_dir, Path) and (run_dir / PLAN).exists():
            raise RunError(f"run {run_id} exists already in {run_dir}: a run id names one run")
        text = plan_json(plan, run_id)
        # signed before it is written: a plan.json on disk is always one resume can check
        manifest = Manifest.start(run_dir, key, run_id, text) if key is not None else None
        write_plan(run_dir, text, run_id)
        if plan.runtime == "swarm":
            from scalehp import swarm

            return swarm.fit(plan, run_dir, run_id, train, request, on_progress)
        return _fit(
            plan, run_dir, run_id, train, kind, request, on_progress, restore=False, manifest=manifest, verbose=verbose
        )


def resume(
    run_dir: str | Path,
    *,
    address: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    verbose: bool = False,
) -> RunSummary:
    """Finish a run whose driver was killed: same run folder, same run id, same tables.

    The tables say what happened (:meth:`scalehp.recorder.RunRecorder.seed`): a trial with a
    ``trials`` row (``error`` included: ``failure.max_retries`` is the retry policy), a
    ``stop`` decision or a report at ``max_steps`` has ended and does not run again; the
    schedulers' state is rebuilt from ``events`` and ``reports``. Unfinished trials continue
    from their last checkpoint (or start over when they had none). Rows written before the
    interruption stay; a step that is run again replaces its earlier row when read. A run
    killed before Ray started starts now, in its own folder.

    A run that had ended early (``metric.goal`` reached, ``failure.max_failed_trials``
    failed trials, ``budget.time_limit`` spent; also when the driver died after the goal
    was reported but before the end was recorded) is finished: resuming it runs nothing
    more, gives its unfinished trials a ``stopped`` row and returns its summary. The time
    limit counts the run's own running time: a resumed run gets only what was left.

    Ray's state is pickles: before Ray starts, ``plan.json`` and every file under ``ray/``
    are checked against ``integrity.json``, which the run signed with this user's key
    (:mod:`scalehp.runner.integrity`).

    Raises:
        ResultsError: ``run_dir`` is not a scalehp run folder.
        IntegrityError: the folder is not what scalehp signed (``plan.json`` or Ray's state
            was changed, the signature is missing or made with another key).
        RunError: the run cannot be resumed (Ray's state is missing).
        RunInterrupted: SIGINT or SIGTERM stopped it again; resume once more to finish.
    """
    run_dir = Path(run_dir).resolve()
    plan_file = run_dir / PLAN
    if not run_dir.is_dir() or not plan_file.exists():
        raise ResultsError(f"{run_dir}: not a scalehp run folder (no {PLAN})", damaged=True)
    saved = read_plan(run_dir)  # untrusted until verified below; JSON, so reading it runs nothing
    manifest, unsigned = Manifest.verify(run_dir)  # before anything of Ray's is read
    exp = experiment_from_data(saved["experiment"], source=str(plan_file))
    plan = compile_plan(exp)
    if plan.digest != saved.get("digest"):  # signed, so not edited: compiled otherwise by this scalehp
        raise RunError(f"{plan_file}: this scalehp compiles the plan differently; resume with the version that ran it")
    started = (run_dir / RAY_FOLDER / "tuner.pkl").is_file()
    if plan.runtime == "tune" and not started and (any(part_files([run_dir], t) for t in TABLES) or journal_files(run_dir)):
        raise RunError(f"{run_dir}: Ray's state is missing ({RAY_FOLDER}/tuner.pkl) but the run has rows")
    train, kind = experiment_trainable(exp, echo=print_line)
    check_kind(plan, kind)
    manifest.remove_unsigned(unsigned)  # checkpoints newer than Ray's last snapshot: nothing refers to them
    with ray_session(address, verbose):
        request = check_resources(exp)
        if plan.runtime == "swarm":  # the tables are its whole state: nothing of Ray's to restore
            from scalehp import swarm

            return swarm.fit(plan, run_dir, saved["run_id"], train, request, on_progress, restore=True)
        return _fit(
            plan,
            run_dir,
            saved["run_id"],
            train,
            kind,
            request,
            on_progress,
            restore=started,  # killed before Ray started: the run starts, in its own folder
            manifest=manifest,
            verbose=verbose,
        )


def check_kind(plan: Plan, kind: str) -> None:
    """A plain Ray Tune function needs Tune's session: refused under ``runtime: swarm``, at the key;
    a vectorized trainable takes one argument, the list of configs."""
    if plan.vectorized:
        if kind != "ray":  # (one argument, as a plain Ray function has)
            raise plan.experiment.error(
                "trainable", "a vectorized trainable takes one argument, the list of configs: train(configs) -> [metrics, ...]"
            )
        return
    if plan.runtime == "swarm" and kind == "ray":
        raise plan.experiment.error(
            "trainable",
            "a plain Ray Tune function reports through Tune's session, which runtime: swarm does not run; "
            "write it as train(config, trial) calling trial.report, or use runtime: tune",
        )


def _fit(
    plan: Plan,
    run_dir: Path,
    run_id: str,
    train: Callable,
    kind: str,
    request: dict[str, float],
    on_progress: Callable[[Progress], None] | None,
    *,
    restore: bool,
    manifest: Manifest | None = None,
    verbose: bool = False,
) -> RunSummary:
    from ray import tune

    exp = plan.experiment
    time_attr = "step" if kind == "scalehp" else "training_iteration"
    sink = ParquetSink(run_dir, param_fields(exp.space, plan.columns))
    recorder = RunRecorder(plan, sink, run_id)
    snapshots = Snapshots()
    sink.before_write = snapshots  # Ray's state knows every trial whose rows reach the disk
    callback = make_callback(recorder, snapshots, on_progress)
    callbacks = [callback] if manifest is None else [callback, signing_callback(manifest)]
    trainable = tune.with_resources(
        entry_point(train, kind, plan),
        {
            "cpu": request.get("CPU", 0),
            "gpu": request.get("GPU", 0),
            **{k: v for k, v in request.items() if k not in ("CPU", "GPU")},
        },
    )
    tolerate_worker_deaths()
    started = time.monotonic()
    try:
        signing = manifest.vouch_copy if manifest is not None else None
        sign = manifest.vouch_checkpoint if manifest is not None else None  # (checkpoints scalehp copies itself)
        with quiet_tune(verbose), interrupts(callback.interrupt, callback.flush), state_copies(signing) as signed:
            if manifest is not None:
                manifest.copies_signed = signed
            before = None
            if restore:
                before = read_results(run_dir)
                created = next(iter(before.plans.values()), {}).get("created_at")
                recorder.seed(before.trials, before.reports, before.events, before.metric_columns, created_at=created)
            if restore and recorder.ended is not None:  # it had ended early: nothing more to run
                log.info("%s: the run had ended (%s); nothing to resume", run_dir, recorder.ended["reason"])
                recorder.stop_unfinished()
                tuner = None
            elif restore:
                stopper = run_stopper(recorder, time_attr)
                tuner = tune.Tuner.restore(
                    str(run_dir / RAY_FOLDER),
                    trainable=trainable,
                    resume_unfinished=True,
                    resume_errored=False,  # an error row is a trial's end; failure.max_retries is the retry policy
                    param_space=param_space(exp),
                )
                # what Ray pickled is replaced: the tables, not Ray's state, say what happened
                restored = tuner._local_tuner
                restored.get_run_config().callbacks = callbacks
                restored.get_run_config().stop = stopper
                restored._tune_config.scheduler = scheduler(plan, time_attr, recorder, snapshots, tables=before, sign=sign)
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space=param_space(exp),
                    tune_config=tune.TuneConfig(
                        metric=exp.metric.name,
                        mode=exp.metric.mode,
                        search_alg=searcher(plan),
                        scheduler=scheduler(plan, time_attr, recorder, snapshots, sign=sign),
                        num_samples=exp.budget.samples,
                        reuse_actors=True,
                        trial_name_creator=trial_name,
                        trial_dirname_creator=trial_dirname,
                    ),
                    run_config=tune.RunConfig(
                        name=RAY_FOLDER,
                        storage_path=str(run_dir),
                        stop=run_stopper(recorder, time_attr),
                        callbacks=callbacks,
                        failure_config=tune.FailureConfig(
                            max_failures=exp.failure.max_retries, fail_fast=exp.failure.fail_fast
                        ),
                        checkpoint_config=tune.CheckpointConfig(num_to_keep=plan.keep_checkpoints),
                        verbose=0,
                    ),
                )
            if manifest is not None and not restore:  # Ray wrote it in Tuner(); it reads it on resume
                manifest.vouch_file("tuner.pkl")
                manifest.save()
            if tuner is not None:
                with _tables_decide(recorder, snapshots, exp.metric.name, stopper if restore else None), _starts_gated(recorder):
                    tuner.fit()
    except SpecError:
        raise
    except KeyboardInterrupt:  # a signal before Tune ran, or a second one: stop waiting
        callback.interrupted = callback.interrupted or signal.SIGINT
    except Exception as exc:  # noqa: BLE001 - Ray raises many types; the user gets one
        if callback.interrupted is None:
            raise RunError(f"the run failed: {exc.__class__.__name__}: {_first_line(exc)}") from exc
        log.debug("while stopping after a signal: %s", exc, exc_info=exc)  # the run stops anyway
    finally:
        callback.close()  # every buffered row on disk
    if callback.interrupted is not None:
        summary = summarize(run_dir, elapsed_s=time.monotonic() - started, started=recorder.trials)
        raise RunInterrupted(summary, callback.interrupted)
    if recorder.abort:
        raise exp.error("metric.name", f"{recorder.abort}; the run was stopped at the first such report")
    return summarize(run_dir, elapsed_s=time.monotonic() - started)


@contextmanager
def _starts_gated(recorder: RunRecorder) -> Iterator[None]:
    """While Ray runs: no trial starts once ``recorder.may_start()`` says no (``budget.soft_time_limit``).

    Ray asks its search algorithm for trials in ``TuneController._maybe_update_trial_queue``
    (Ray 2.60, private): from then on the search is finished, and trials Ray had queued but not
    started are stopped (they never ran: no row); running and paused trials go on, and the run
    ends when they have. If the method moved, trials keep starting until ``time_limit``.
    """
    if recorder.soft_time_limit is None and recorder.closed is None:
        yield
        return
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

    original = getattr(TuneController, "_maybe_update_trial_queue", None)
    if original is None:
        log.warning("this Ray has no _maybe_update_trial_queue: budget.soft_time_limit cannot hold trials back")
        yield
        return

    def gated(self: Any) -> Any:
        if recorder.may_start():
            return original(self)
        if not self._search_alg.is_finished():
            self._search_alg.set_finished()
            for trial in list(getattr(self, "_pending_trials", ())):
                if trial.status == Trial.PENDING and recorder.trials.get(trial.trial_id) is None:
                    self._schedule_trial_stop(trial)
        return None

    TuneController._maybe_update_trial_queue = gated
    try:
        yield
    finally:
        TuneController._maybe_update_trial_queue = original


@contextmanager
def _tables_decide(recorder: RunRecorder, snapshots: Snapshots, metric: str, stopper: Any) -> Iterator[None]:
    """While Ray restores a run: each trial's status is the one the tables record.

    Ray's saved state can be older than the tables: a trial whose end is on disk may be
    ``RUNNING`` there, and would run again. Such a trial gets its recorded status back
    before Ray requeues anything, and the searcher is told it finished. A trial Ray had
    ended whose row is missing gets its row now. (Ray 2.60's private
    ``TuneController._requeue_restored_trials``: if it moved, Ray's own statuses stand.)
    """
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

    original = getattr(TuneController, "_requeue_restored_trials", None)
    if original is None:
        log.warning("this Ray has no _requeue_restored_trials: trials ended after its last snapshot may run again")
        yield
        return

    def requeue(self: Any, trials: list, resume_config: Any) -> None:
        if stopper is not None:
            self._stopper = stopper  # Ray restored its own from its saved state (a placeholder)
        snapshots.attach(self)
        snapshots.saved = {t.trial_id for t in trials}
        for trial in trials:
            status = recorder.status(trial.trial_id)
            if status is None:
                if trial.status == Trial.TERMINATED:
                    recorder.end_trial(trial.trial_id, config=trial.config)
                elif trial.status == Trial.ERROR:
                    recorder.end_trial(trial.trial_id, error=error_text(trial), config=trial.config)
                continue
            wanted = Trial.ERROR if status == "error" else Trial.TERMINATED
            if trial.status in (Trial.TERMINATED, Trial.ERROR):
                continue
            trial.set_status(wanted)
            result = dict(trial.last_result or {})
            value = recorder.trials[trial.trial_id].metrics.get(recorder.metric_column) if trial.trial_id in recorder.trials else None
            if value is not None:
                result[metric] = value
            self._search_alg.on_trial_complete(trial.trial_id, result=result or None, error=status == "error")
        for trial in trials:
            if trial.status not in (Trial.TERMINATED, Trial.ERROR):
                _existing_checkpoints(trial)
        _keep_tuner_state(self)
        restore_trials = getattr(self._scheduler_alg, "restore_trials", None)
        if restore_trials is not None:  # what the scheduler decided that Ray's saved state misses
            restore_trials(trials)
        unknown = set(recorder.trials) - {t.trial_id for t in trials} - set(recorder.statuses)
        if unknown:
            log.warning("%d trials with rows are not in Ray's saved state and cannot continue: %s", len(unknown), sorted(unknown))
        original(self, trials, resume_config)

    TuneController._requeue_restored_trials = requeue
    try:
        yield
    finally:
        TuneController._requeue_restored_trials = original


def _keep_tuner_state(controller: Any) -> None:
    """Ray copies its whole staging folder into ``ray/`` at every snapshot, file by file in
    place; on resume that folder holds the ``tuner.pkl`` it read, and a driver killed during
    the copy would leave a torn ``tuner.pkl`` that no resume can check. The file never changes
    after the run starts, so the staged copy is dropped and ``ray/tuner.pkl`` stays as signed."""
    staging = getattr(getattr(controller, "_storage", None), "experiment_driver_staging_path", None)
    target = getattr(getattr(controller, "_storage", None), "experiment_fs_path", None)
    if not staging or not target:
        return
    staged = Path(staging) / "tuner.pkl"
    try:
        if staged.is_file() and staged.resolve() != (Path(target) / "tuner.pkl").resolve():
            staged.unlink()
    except OSError as exc:
        log.debug("could not drop the staged tuner.pkl: %s", exc)


def _existing_checkpoints(trial: Any) -> None:
    """Forget the checkpoints of a restored trial that are gone from disk.

    Ray deletes a trial's older checkpoints (``checkpoints.keep``) as new ones come, and its
    saved state can be older than that: it may name a checkpoint that no longer exists, and
    the trial would fail on restore. The trial then goes on from its newest checkpoint that
    exists, or starts over (its steps are run again; a step's latest row is the one read).
    """
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    if manager is None or not hasattr(manager, "_checkpoint_results"):  # private API moved: Ray's way
        return

    def there(result: Any) -> bool:
        path = getattr(getattr(result, "checkpoint", None), "path", None)
        return bool(path) and os.path.isdir(path)

    kept = [r for r in manager._checkpoint_results if there(r)]
    if len(kept) != len(manager._checkpoint_results):
        manager._checkpoint_results = kept
    latest = manager._latest_checkpoint_result
    if latest is not None and not there(latest):
        log.info("trial %s: its latest checkpoint is gone; it goes on from an earlier one", trial.trial_id)
        manager._latest_checkpoint_result = kept[-1] if kept else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""

