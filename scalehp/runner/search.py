"""The search space as Ray Tune domains, and the search algorithm."""

from __future__ import annotations

from typing import Any

from scalehp.compiler import Plan
from scalehp.errors import RunError
from scalehp.space import ChoiceParam, ConstantParam, FloatParam, GridParam, IntParam
from scalehp.spec import Experiment


def param_space(experiment: Experiment) -> dict[str, Any]:
    """The search space as Ray Tune domains."""
    grid = experiment.search.algorithm == "grid"
    return {name: domain(p, grid) for name, p in experiment.space.items()}


def domain(p: Any, grid: bool = False) -> Any:
    """One param as a Ray Tune domain (a grid search, or the value itself for a constant)."""
    from ray import tune

    if isinstance(p, FloatParam):
        if p.step:
            return (tune.qloguniform if p.log else tune.quniform)(p.low, p.high, p.step)
        return (tune.loguniform if p.log else tune.uniform)(p.low, p.high)
    if isinstance(p, IntParam):
        if p.log:
            return tune.lograndint(p.low, p.high + 1)
        if p.step and p.step > 1:
            return tune.qrandint(p.low, p.high, p.step)
        return tune.randint(p.low, p.high + 1)
    if isinstance(p, ChoiceParam):
        return tune.grid_search(list(p.options)) if grid else tune.choice(list(p.options))
    if isinstance(p, GridParam):
        return tune.grid_search(list(p.values))
    if isinstance(p, ConstantParam):
        return p.value
    raise TypeError(f"unknown param kind {p!r}")  # pragma: no cover - every kind is listed above


def searcher(plan: Plan) -> Any:
    """Ray's search algorithm for the plan, with the concurrency limit applied the way each needs."""
    from ray.tune.search import ConcurrencyLimiter

    experiment = plan.experiment
    algorithm = experiment.search.algorithm
    limit = plan.concurrency or 0  # None under PBT/PB2: the whole population is created at once
    if algorithm in ("random", "grid"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(random_state=experiment.seed, max_concurrent=limit)
    if algorithm == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        searcher = HyperOptSearch(
            n_initial_points=experiment.search.initial_points or 20,
            random_state_seed=experiment.seed,
        )
    elif algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(
            seed=experiment.seed, n_startup_trials=experiment.search.initial_points or 10
        )
        searcher = OptunaSearch(sampler=sampler)
    else:  # pragma: no cover - validated in spec
        raise RunError(f"unknown search algorithm {algorithm!r}")
    # a model-based searcher suggests better configs when fewer trials are still out
    return ConcurrencyLimiter(searcher, max_concurrent=limit) if limit else searcher
