"""Trainables for the swarm runtime's tests: workers that die, trials that fail, a slow run to kill."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.trainables import quadratic


def dies_once(config: dict, trial) -> None:
    """Kills its worker process once per trial (a marker file remembers), after a report; then
    runs as ``quadratic``."""
    marker = Path(config["markers"]) / trial.trial_id
    if not marker.exists():
        marker.write_text("died once")
        trial.report(1, {"loss": 9.0})
        time.sleep(0.3)  # the report has time to reach the driver before the worker goes
        os._exit(1)
    quadratic(config, trial)


def kills_worker(config: dict, trial) -> None:
    """Kills its worker process every time it runs when ``x`` is below 0; else ``quadratic``."""
    if config["x"] < 0:
        os._exit(1)
    quadratic(config, trial)


def fails_below_zero(config: dict, trial) -> None:
    """Reports once, then raises when ``x`` is below 0."""
    trial.report(1, {"loss": abs(config["x"])})
    if config["x"] < 0:
        raise ValueError(f"x={config['x']:.3f} is below zero")
    for step in range(2, trial.max_steps + 1):
        trial.report(step, {"loss": abs(config["x"]) + 1.0 / step})


def paced(config: dict, trial) -> None:
    """A short sleep per step: for killing the driver or a node mid-run."""
    for step in range(1, trial.max_steps + 1):
        time.sleep(config.get("pause", 0.05))
        trial.report(step, {"loss": (config["x"] - 0.3) ** 2 + 1.0 / step, "pid": float(os.getpid())})


def vectorized_square(configs: list[dict]) -> list[dict]:
    """A vectorized trainable: every config of the batch in one call (its size recorded as a metric)."""
    return [{"loss": (config["x"] - 0.25) ** 2, "batch": len(configs)} for config in configs]


def vectorized_wrong_length(configs: list[dict]) -> list[dict]:
    return [{"loss": 0.0}]
