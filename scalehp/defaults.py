"""Defaults that more than one module needs, each written once.

A default that one model field alone uses stays on that field (``Field(3.0, ...)``); the
ones here are also read where the field is left unset (the plan, the searchers, the CLI,
the importers), so they must not drift apart.
"""

from __future__ import annotations

RESULTS_ROOT = "results"
"""The folder (or URI) that holds every run: ``results:`` of an experiment, and the CLI's default root."""

INITIAL_POINTS = {"hyperopt": 20, "optuna": 10}
"""Random configs a model-based searcher draws before it models the space (``search.initial_points``)."""

NSGA2_POPULATION = (4, 50)
"""The smallest and largest NSGA-II population (taken from ``search.initial_points``)."""


def initial_points(algorithm: str, given: int | None) -> int | None:
    """The random configs ``algorithm`` starts with: ``given``, else its default; None for a searcher that does not model."""
    if algorithm not in INITIAL_POINTS:
        return None
    return given or INITIAL_POINTS[algorithm]


def nsga2_population(startup: int) -> int:
    """``startup`` brought into :data:`NSGA2_POPULATION`."""
    low, high = NSGA2_POPULATION
    return max(low, min(high, startup))


DASHBOARD_PORT = 8275
"""``scalehp dashboard`` and ``scalehp run --dashboard`` listen here (Ray's own dashboard has 8265)."""
