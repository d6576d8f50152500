"""Trainables of the benchmarks (importable by Ray's workers: the driver's cwd is on their path)."""

from __future__ import annotations

import time


def one_step(config: dict, trial) -> None:
    """A scalehp trainable that reports once: all the time of a trial is overhead."""
    trial.report(1, {"loss": (config["x"] - 0.3) ** 2})


def one_step_ray(config: dict) -> None:
    """The same, as a plain Ray Tune function trainable."""
    from ray import tune

    tune.report({"loss": (config["x"] - 0.3) ** 2})


def cpu_steps_ray(config: dict) -> None:
    """:func:`cpu_steps` as a plain Ray Tune function trainable (``max_steps`` in the config)."""
    from ray import tune

    inside = 0.0
    for step in range(1, config["max_steps"] + 1):
        start = time.perf_counter()
        busy(config["step_s"])
        loss = (config["x"] - 0.3) ** 2 + 1.0 / step
        inside += time.perf_counter() - start
        tune.report({"loss": loss, "inside_s": inside})


def busy(seconds: float) -> int:
    """Keep one core busy for ``seconds`` of wall time (pure Python arithmetic)."""
    end, x = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        for _ in range(2000):
            x += 1
    return x


def cpu_steps(config: dict, trial) -> None:
    """CPU-bound steps of ~``step_s`` seconds; reports the time spent in its own code."""
    inside = 0.0
    for step in range(1, trial.max_steps + 1):
        start = time.perf_counter()
        busy(config["step_s"])
        loss = (config["x"] - 0.3) ** 2 + 1.0 / step
        inside += time.perf_counter() - start
        trial.report(step, {"loss": loss, "inside_s": inside})


def cpu_1ms(config: dict, trial) -> None:
    """A scalehp trainable that keeps one core busy for 1 ms (a busy wait), then reports once."""
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass
    trial.report(1, {"loss": (config["x"] - 0.3) ** 2})
