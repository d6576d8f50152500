"""The Ray session: start or join Ray, protect its token, check resources, silence Tune,
turn SIGINT and SIGTERM into a clean stop, and keep one dead worker from ending the run."""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from scalehp.errors import RunError
from scalehp.spec import Experiment

log = logging.getLogger(__name__)


@contextmanager
def ray_session(address: str | None, verbose: bool) -> Iterator[None]:
    import ray
    from ray.exceptions import AuthenticationError

    if ray.is_initialized():  # the caller's own Ray: use it, leave it running
        try:
            yield
        finally:
            _cancel_deadline()
        return
    try:
        ray.init(
            address=address or "local",  # never attach to a stale local cluster by accident
            include_dashboard=False,
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.WARNING,
            configure_logging=True,
        )
    except AuthenticationError:
        raise RunError(
            f"the Ray cluster at {address} refused the auth token (or none was found): "
            "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to that cluster's token"
        ) from None
    except (ConnectionError, ValueError, RuntimeError) as exc:
        hint = (
            "; a cluster with token auth also needs RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or "
            "RAY_AUTH_TOKEN_PATH)"
            if address
            else ""
        )
        raise RunError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}{hint}") from None
    _protect_token()
    quiet = _quiet_driver() if not verbose else None
    main = threading.current_thread() is threading.main_thread()
    # Ray's core worker put a C++ handler on SIGTERM that prints stack lines and aborts;
    # until the run itself handles it (interrupts()), SIGTERM exits quietly with 143
    previous = signal.signal(signal.SIGTERM, _exit_143) if main else None
    try:
        yield
    finally:
        with _signals_ignored():  # a second Ctrl+C must not leave Ray's processes half stopped
            ray.shutdown()
        _cancel_deadline()
        if main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        if quiet is not None:
            quiet()


def _exit_143(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)


def _quiet_driver() -> Callable[[], None]:
    """Keep Ray's worker-death notices and the raylet's memory reports off the terminal.

    Ray's driver prints every error the raylet publishes ("A worker died or was killed…",
    the memory monitor's table of processes) to stdout, even with ``log_to_driver=False``.
    The same text is in the raylet's log files under Ray's session folder, and what it
    means for a trial is in the ``trials`` and ``events`` tables; ``--verbose`` shows it.
    Returns what puts the printing back.
    """
    from ray._private import worker

    if not hasattr(worker, "_worker_logs_enabled"):  # private API: stay as Ray is
        return lambda: None
    before = worker._worker_logs_enabled
    worker._worker_logs_enabled = False

    def restore() -> None:
        worker._worker_logs_enabled = before

    return restore


def _protect_token() -> None:
    """Ray writes its auth token readable by every user (0644); keep it to its owner."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        pass


def check_resources(experiment: Experiment) -> dict[str, float]:
    """The per-trial request; an error if no node could ever hold one trial."""
    import ray

    request = {"CPU": experiment.resources.cpu, "GPU": experiment.resources.gpu, **experiment.resources.custom}
    request = {k: float(v) for k, v in request.items() if v}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    nodes += node_types(_cluster_config())  # an autoscaling cluster can still add these
    if not any(all(node.get(k, 0.0) >= v for k, v in request.items()) for node in nodes):
        largest = {k: max((n.get(k, 0.0) for n in nodes), default=0.0) for k in request}
        wanted = ", ".join(f"{k}={v:g}" for k, v in request.items())
        have = ", ".join(f"{k}={v:g}" for k, v in largest.items())
        raise experiment.error(
            "resources",
            f"one trial needs {wanted} but the largest node has {have}; lower resources or add nodes",
        )
    return request


def _cluster_config() -> object | None:
    """The autoscaler's node types as Ray 2.60 keeps them in the GCS (None without an autoscaler)."""
    from ray._private.state import state

    try:
        return state.get_cluster_config()
    except (AttributeError, RuntimeError, ConnectionError) as exc:  # private API: degrade to alive nodes
        log.debug("no autoscaler cluster config: %s", exc)
        return None


def node_types(config: object | None) -> list[dict[str, float]]:
    """Resources of each node type an autoscaler may start (``max_count`` not 0)."""
    if config is None:
        return []
    return [
        {k: float(v) for k, v in group.resources.items()}
        for group in getattr(config, "node_group_configs", [])
        if group.max_count != 0
    ]


@contextmanager
def quiet_tune(verbose: bool = False) -> Iterator[None]:
    """Ray Tune without its own files and console output; only scalehp reports."""
    # Ray's per-trial JSON/CSV/TensorBoard loggers: off, Parquet replaces them. Ray's own
    # console reporter: the old engine at verbose=0 is silent (the new one prints a banner).
    settings = {
        "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
        "RAY_AIR_NEW_OUTPUT": "0",
        "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",  # checkpoint retention forces snapshots
        "TUNE_DISABLE_SIGINT_HANDLER": "1",  # SIGINT and SIGTERM: see interrupts()
    }
    if not verbose:  # each trial's error (a traceback) is in the trials table, not the terminal
        settings["TUNE_PRINT_ALL_TRIAL_ERRORS"] = "0"
    previous = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    # Tune's ResultGrid looks for those files at the end and warns for each trial.
    # PBT logs every exploit and explore at INFO: the events table holds them.
    # Tune's own word on an interrupted run names Tuner.restore, not scalehp resume.
    # It also logs "Trials did not complete" as an ERROR: each one's row says why.
    quiet = {"ray.tune.analysis.experiment_analysis": logging.ERROR, "ray.tune.schedulers.pbt": logging.ERROR}
    if not verbose:
        quiet["ray.tune.tune"] = logging.CRITICAL
    loggers = [logging.getLogger(n) for n in quiet]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(quiet[logger.name])
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


STOP_DEADLINE_S = 15.0
"""After SIGTERM, the most the driver takes to exit. A SIGTERM sent to the whole process
group (systemd, Slurm) also stops the local Ray's own processes, and then every Ray call
(stopping trials, ``ray.shutdown``) waits 60 s for them before Ray aborts the process."""

_deadline: list[threading.Timer] = []


def _cancel_deadline() -> None:
    while _deadline:
        _deadline.pop().cancel()


def _start_deadline(signum: int, on_deadline: Callable[[], str]) -> None:
    """Exit ``128 + signum`` after :data:`STOP_DEADLINE_S`, once ``on_deadline()`` has written
    what is buffered (it returns the run folder); :func:`ray_session` cancels it when done."""

    def give_up() -> None:
        try:
            where = on_deadline()
        except Exception as exc:  # noqa: BLE001 - exiting anyway; say why nothing more was written
            where = "RUN_DIR"
            log.error("could not write the last rows: %s", exc)
        log.error(
            "interrupted: Ray did not stop within %g s (its own processes got the signal too); "
            "every recorded row is written; scalehp resume %s",
            STOP_DEADLINE_S,
            where,
        )
        logging.shutdown()
        os._exit(128 + signum)

    timer = threading.Timer(STOP_DEADLINE_S, give_up)
    timer.daemon = True
    _deadline.append(timer)
    timer.start()


@contextmanager
def interrupts(on_signal: Callable[[int], None], on_deadline: Callable[[], str] | None = None) -> Iterator[None]:
    """SIGINT and SIGTERM stop the run cleanly instead of killing the driver.

    The first signal calls ``on_signal(signum)`` and asks Ray Tune to stop the way it stops
    on Ctrl+C: the loop ends, Ray's state is saved with unfinished trials still unfinished
    (so ``scalehp resume`` continues them), trial actors are stopped. Ray Tune installs that
    request as its SIGUSR1 handler while ``Tuner.fit`` runs; before that (or after), the
    first signal raises :class:`KeyboardInterrupt`. A second signal raises it at once.

    Also replaces the C++ handler Ray's core worker installs for SIGTERM, which prints stack
    lines and aborts. After SIGTERM, ``on_deadline`` (write what is buffered, return the run
    folder) runs and the process exits if Ray has not let go within :data:`STOP_DEADLINE_S`.
    Only in the main thread (elsewhere a signal cannot be caught).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    usr1 = getattr(signal, "SIGUSR1", None)
    tune_stop = signal.getsignal(usr1) if usr1 is not None else None  # stale from an earlier fit, or none
    state = {"signals": 0}

    def handler(signum: int, frame: Any) -> None:
        state["signals"] += 1
        if state["signals"] > 1:
            raise KeyboardInterrupt
        on_signal(signum)
        if signum == signal.SIGTERM and on_deadline is not None:
            _start_deadline(signum, on_deadline)
        stop = signal.getsignal(usr1) if usr1 is not None else None
        if not callable(stop) or stop is tune_stop or stop is handler:
            raise KeyboardInterrupt  # Tune is not running: nothing to stop cleanly
        stop(signal.SIGINT, frame)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old if old is not None else signal.SIG_DFL)
        if usr1 is not None and tune_stop is not None:
            signal.signal(usr1, tune_stop)


def tolerate_worker_deaths() -> None:
    """A trial whose worker Ray kills for memory fails alone; the run goes on.

    Ray's memory monitor kills the worker of a running trial, and the trial's pending call
    then fails with :class:`ray.exceptions.OutOfMemoryError`. Ray Tune 2.60's actor manager
    handles only ``RayActorError`` and ``RayTaskError`` there and raises anything else out
    of ``Tuner.fit``, ending the whole run with no row for any trial still running. This
    turns such an error (also ``NodeDiedError``, ``WorkerCrashedError``) into the
    ``RayActorError`` of a dead actor, which Tune handles as one trial's failure: retried per
    ``failure.max_retries``, else an error row with this text. Idempotent.
    """
    from ray.exceptions import RayActorError, RayError, RayTaskError

    try:
        from ray.air.execution._internal.actor_manager import RayActorManager
    except ImportError:  # private API moved: stay as Ray is
        return
    original = getattr(RayActorManager, "_actor_task_failed", None)
    if original is None or getattr(original, "scalehp_tolerant", False):
        return

    def _actor_task_failed(self: Any, tracked_actor_task: Any, exception: Exception) -> None:
        if isinstance(exception, RayError) and not isinstance(exception, (RayActorError, RayTaskError)):
            exception = RayActorError(error_msg=worker_death_text(exception))
        original(self, tracked_actor_task, exception)

    _actor_task_failed.scalehp_tolerant = True  # type: ignore[attr-defined]
    RayActorManager._actor_task_failed = _actor_task_failed


def worker_death_text(exc: BaseException) -> str:
    """What a trial's error says when Ray ended its worker (the memory monitor's table of
    processes and its advice stay in the raylet's log)."""
    name = exc.__class__.__name__
    text = str(exc).strip().split("\nObject store memory usage", 1)[0][:1000]
    if name == "OutOfMemoryError":
        return f"{name}: Ray's memory monitor killed the trial's worker: {text}"
    return f"{name}: the trial's worker died: {text}"


class _Unpickled:
    """A callable that pickles as one doing nothing (what it calls holds this process's secrets)."""

    def __init__(self, call: Callable[..., None] | None = None) -> None:
        self.call = call

    def __call__(self, *args: Any) -> None:
        if self.call is not None:
            self.call(*args)

    def __reduce__(self) -> Any:
        return (_Unpickled, ())


@contextmanager
def state_copies(before_replace: Callable[[Path, str], None] | None = None) -> Iterator[None]:
    """While a run goes on, Ray's snapshot of its state lands in ``ray/`` whole, file by file.

    Ray writes each snapshot to a staging folder and copies it into the run's storage with
    pyarrow, in place and from a background thread, while the next snapshot may already be
    rewriting the staging folder. A driver killed during that copy leaves a torn or unsigned
    ``experiment_state`` or searcher file, which ``resume`` (rightly) refuses. For a local
    storage folder each file is copied to a hidden name, ``before_replace(copy, rel)`` sees it
    (the run signs exactly those bytes), and it is renamed over the old one. Other storage
    (object stores) stays as Ray does it. Yields whether copies go through here (False when
    Ray's private API moved: the run then signs each snapshot in Ray's staging folder).
    """
    import shutil

    try:
        import pyarrow.fs
        from ray.train._internal import storage
    except ImportError:  # private API moved: stay as Ray is
        yield False
        return
    original = storage._upload_to_fs_path
    hook = _Unpickled(before_replace)  # Ray pickles its syncers (and this function) with the trials' state

    def _upload_to_fs_path(local_path: str, fs: Any, fs_path: str, exclude: Any = None) -> None:
        if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem) or not os.path.isdir(local_path):
            return original(local_path, fs, fs_path, exclude=exclude)
        for parent, _, names in os.walk(local_path):
            rel = Path(parent).relative_to(local_path)
            target = Path(fs_path) / rel
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                temporary = target / f".{name}.scalehp-tmp"
                shutil.copyfile(Path(parent) / name, temporary)
                hook(temporary, (rel / name).as_posix())
                os.replace(temporary, target / name)
        return None

    storage._upload_to_fs_path = _upload_to_fs_path
    try:
        yield before_replace is not None
    finally:
        storage._upload_to_fs_path = original
