"""Cheap trainables for the search tests: conditional configs and a test function."""

from __future__ import annotations

import math


def conditional(config: dict, trial) -> None:
    """Fails (an error row) unless exactly the active params of the conditional space are present."""
    optimizer, layers = config["optimizer"], config["layers"]
    expected = {"optimizer", "layers", "lr", "tag"} | {f"layers.{i}.width" for i in range(1, layers + 1)}
    expected |= {"adam": {"optimizer.beta1"}, "sgd": {"optimizer.momentum"}, "lbfgs": set()}[optimizer]
    if set(config) != expected:
        raise ValueError(f"config keys {sorted(config)} != {sorted(expected)}")
    width = sum(config[f"layers.{i}.width"] for i in range(1, layers + 1))
    extra = config.get("optimizer.beta1", 0.0) + config.get("optimizer.momentum", 0.0)
    for step in range(1, trial.max_steps + 1):
        loss = (math.log(config["lr"]) + 3) ** 2 + abs(width - 100) / 100 + extra + 1.0 / step
        trial.report(step, {"loss": loss, "size": float(width)})


def branin(config: dict, trial) -> None:
    """Branin (minimum 0.397887 at three points), one report."""
    x1, x2 = config["x1"], config["x2"]
    value = (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )
    trial.report(1, {"value": value})


def two_objectives(config: dict, trial) -> None:
    """A trade-off: accuracy rises with width, size rises with it too."""
    width = config["width"]
    accuracy = 1 - 1 / (1 + width / 32) - 0.1 * abs(config["lr"] - 0.1)
    trial.report(1, {"accuracy": accuracy, "size": float(width)})
