"""The Ray session: start or join Ray, protect its token, check resources, silence Tune."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from scalehp.errors import RunError
from scalehp.spec import Experiment

log = logging.getLogger(__name__)


@contextmanager
def ray_session(address: str | None, verbose: bool) -> Iterator[None]:
    import ray
    from ray.exceptions import AuthenticationError

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
    except AuthenticationError:
        raise RunError(
            f"the Ray cluster at {address} refused the auth token (or none was found): "
            "set RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH to that cluster's token"
        ) from None
    except (ConnectionError, ValueError, RuntimeError) as exc:
        hint = (
            "; a cluster with token auth also needs its token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)"
            if address
            else ""
        )
        raise RunError(f"cannot start or reach Ray at {address or 'a new local instance'}: {exc}{hint}") from None
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
def quiet_tune() -> Iterator[None]:
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
    # PBT logs every exploit and explore at INFO: the events table holds them.
    loggers = [logging.getLogger(n) for n in ("ray.tune.analysis.experiment_analysis", "ray.tune.schedulers.pbt")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
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
