"""Cheap trainables for the run-ending and metric-name tests (no sleeping unless asked)."""

from __future__ import annotations


def fails_below_zero(config: dict, trial) -> None:
    """Reports once, then raises when x < 0; runs to the end otherwise."""
    for step in range(1, trial.max_steps + 1):
        trial.report(step, {"loss": abs(config["x"]) + 1.0 / step})
        if config["x"] < 0:
            raise RuntimeError(f"x = {config['x']} is below zero")


def slash_and_underscore(config: dict, trial) -> None:
    """Reports ``val/loss`` and ``val_loss`` (different values), and a nested ``val: {acc}``."""
    for step in range(1, trial.max_steps + 1):
        trial.report(
            step,
            {"val/loss": config["x"] + step, "val_loss": 10 * config["x"] + step, "val": {"acc": -config["x"]}},
        )


def sleepy(config: dict, trial) -> None:
    """Takes ``sleep`` seconds per step: for the run's time limit."""
    import time

    for step in range(1, trial.max_steps + 1):
        time.sleep(config["sleep"])
        trial.report(step, {"loss": config["x"] + 1.0 / step})


def constrained(config: dict, trial) -> None:
    """loss is lowest at x = 0.7, but the constraint ``over = x - 0.5`` is met only for x <= 0.5."""
    for step in range(1, trial.max_steps + 1):
        trial.report(step, {"loss": (config["x"] - 0.7) ** 2 + 0.1 / step, "over": config["x"] - 0.5})


def infeasible_above(config: dict, trial) -> None:
    """Reports once, then declares the config infeasible when x > 0.5 (say, too large to train)."""
    from scalehp import Infeasible

    trial.report(1, {"loss": config["x"]})
    if config["x"] > 0.5:
        raise Infeasible(f"x = {config['x']} does not fit")
    for step in range(2, trial.max_steps + 1):
        trial.report(step, {"loss": config["x"] + 1.0 / step})
