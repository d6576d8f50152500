"""Cheap trainables for the integration tests (real code paths, no sleeping)."""

from __future__ import annotations

import math


def quadratic(config: dict, trial) -> None:
    """Loss falls with steps towards (x - 0.3)**2: trials far from 0.3 lose at every rung."""
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        loss = (config["x"] - 0.3) ** 2 + 1.0 / step
        trial.report(step, {"loss": loss, "x_seen": config["x"]}, checkpoint={"step": step} if step % 2 == 0 else None)


def always_fails(config: dict, trial) -> None:
    """Reports once, then raises: the trial must end as an error row."""
    trial.report(1, {"loss": 1.0})
    raise RuntimeError("boom: this trainable always fails")


def nan_for_some(config: dict, trial) -> None:
    """Reports NaN when x < 0: ASHA must rank those trials last and stop them."""
    for step in range(1, trial.max_steps + 1):
        loss = math.nan if config["x"] < 0 else abs(config["x"]) + 1.0 / step
        trial.report(step, {"loss": loss})


def plain_ray(config: dict) -> None:
    """A plain Ray Tune function trainable, as existing users write them."""
    from ray import tune

    for step in range(1, 6):
        tune.report({"loss": (config["x"] - 0.3) ** 2 + 1.0 / step})


def wrong_metric(config: dict, trial) -> None:
    trial.report(1, {"accuracy": 0.5})


def slow_counter(config: dict, trial) -> None:
    """Checkpoints every step and takes a while: for killing the driver mid-run."""
    import time

    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        time.sleep(config.get("sleep", 0.2))
        trial.report(step, {"loss": config["x"] + 1.0 / step}, checkpoint={"step": step})


def flaky_once(config: dict, trial) -> None:
    """Fails once at step 3 (a marker file remembers), then succeeds when retried."""
    from pathlib import Path

    marker = Path(config["marker_dir"]) / f"{trial.trial_id}.failed"
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        if step == 3 and not marker.exists():
            marker.write_text("failed once")
            raise RuntimeError("transient failure")
        trial.report(step, {"loss": 1.0 / step}, checkpoint={"step": step})
