"""The schedulers, a module each: options, plan preview, ``scalehp plan`` text, needs, decisions.

======================  =====================================================================
``fifo``                every trial runs to the end
``asha``                asynchronous successive halving (stops trials at rungs)
``hyperband``           synchronous Hyperband (pauses trials, resumes them from checkpoints)
``median_stopping``     stops a trial worse than the median of the others' running means
``pbt``                 population based training (exploits checkpoints, explores params)
``pb2``                 PBT with a GP bandit as its explore step
======================  =====================================================================

Each module has ``NAME``, its options model (``AshaOptions``, ...), its plan settings
(``AshaSettings``, ...), ``preview(experiment, trials)``, ``describe(plan)``,
``NEEDS_CHECKPOINTS`` (why a trial must hand over checkpoints, or None) and ``core(settings,
mode, seed)``. Nothing here imports Ray: the cores are the decisions, the runner's Ray
schedulers carry them out.
"""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any

from scalehp.schedulers import asha, fifo, hyperband, median_stopping, pb2, pbt
from scalehp.schedulers.asha import AshaOptions, AshaSettings
from scalehp.schedulers.base import (
    CONTINUE,
    EXPLOIT,
    PAUSE,
    STOP,
    WORST,
    Bracket,
    Core,
    Decision,
    Preview,
    Rung,
    Settings,
    finite,
    finite_value,
    reported,
)
from scalehp.schedulers.fifo import FifoOptions, FifoSettings
from scalehp.schedulers.hyperband import HyperbandOptions, HyperbandSettings
from scalehp.schedulers.median_stopping import MedianStoppingOptions, MedianStoppingSettings
from scalehp.schedulers.pb2 import Pb2Options, Pb2Settings
from scalehp.schedulers.pbt import POPULATION, PbtOptions, PbtSettings, mutations

MODULES: dict[str, ModuleType] = {
    m.NAME: m for m in (fifo, asha, hyperband, median_stopping, pbt, pb2)
}
"""Scheduler name (the experiment file's key) -> its module, in the order the file lists them."""


def module(name: str) -> ModuleType:
    """The module of the scheduler named ``name``."""
    try:
        return MODULES[name]
    except KeyError:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(MODULES)}") from None


def preview(experiment: Any, trials: int) -> Preview:
    """Check the scheduler's options against the experiment and preview what it will do.

    Raises:
        SpecError: options that cannot work with this experiment.
    """
    return module(experiment.scheduler.name).preview(experiment, trials)


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s lines about the scheduler."""
    return module(plan.scheduler).describe(plan)


def needs_checkpoints(name: str) -> str | None:
    """Why the scheduler needs trials that hand over checkpoints (a command trial cannot), or None."""
    return module(name).NEEDS_CHECKPOINTS


def core_for(
    name: str, settings: Settings, mode: str, max_steps: int | None = None, seed: int | None = None
) -> Core:
    """The scheduler's decision core for these plan settings, the metric's mode and the experiment seed.

    ``max_steps``, when given, replaces the settings' own (they carry ``budget.max_steps``).
    """
    if max_steps is not None and max_steps != settings.max_steps:
        settings = dataclasses.replace(settings, max_steps=max_steps)
    return module(name).core(settings, mode, seed)


def core(plan: Any) -> Core:
    """The decision core of a compiled plan."""
    experiment = plan.experiment
    return core_for(plan.scheduler, plan.scheduler_options, experiment.metric.mode, seed=experiment.seed)


__all__ = [
    "CONTINUE",
    "EXPLOIT",
    "MODULES",
    "PAUSE",
    "POPULATION",
    "STOP",
    "WORST",
    "AshaOptions",
    "AshaSettings",
    "Bracket",
    "Core",
    "Decision",
    "FifoOptions",
    "FifoSettings",
    "HyperbandOptions",
    "HyperbandSettings",
    "MedianStoppingOptions",
    "MedianStoppingSettings",
    "Pb2Options",
    "Pb2Settings",
    "PbtOptions",
    "PbtSettings",
    "Preview",
    "Rung",
    "Settings",
    "core",
    "core_for",
    "describe",
    "finite",
    "finite_value",
    "module",
    "mutations",
    "needs_checkpoints",
    "preview",
    "reported",
]
