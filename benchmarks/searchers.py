"""TPE (hyperopt), TPE (optuna) and CMA-ES (optuna) against random search on Branin, at equal budget.

Each searcher is the one ``scalehp run`` builds (``scalehp.runner.search``: the same space
compilation, seeding and result handling through Ray Tune's ``Searcher`` interface), driven
in this process one trial at a time: suggest, evaluate Branin, report the result. No Ray
cluster is started, so the comparison measures the search algorithms, not scheduling.
Random search is scalehp's seeded random sampler. Branin's minimum is 0.397887.

    python -m benchmarks.searchers [--budget 40] [--seeds 10]

Prints, per searcher, the median over seeds of the best value found, and of the number of
evaluations needed to get below a threshold; every number is seeded and repeats exactly.
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings
from typing import Any

BRANIN_MIN = 0.397887

SEARCHERS = {
    "random": {"algorithm": "random"},
    "hyperopt": {"algorithm": "hyperopt", "initial_points": 10},
    "optuna-tpe": {"algorithm": "optuna", "sampler": "tpe", "initial_points": 10},
    "optuna-cmaes": {"algorithm": "optuna", "sampler": "cmaes", "initial_points": 10},
}


def branin(x1: float, x2: float) -> float:
    """The Branin function on [-5, 10] x [0, 15]."""
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def experiment(search: dict[str, Any], seed: int, budget: int) -> Any:
    from scalehp.spec import load_experiment

    return load_experiment(
        {
            "name": "branin",
            "trainable": "tests.search_trainables:branin",
            "metric": {"name": "value", "mode": "min"},
            "budget": {"samples": budget, "max_steps": 1},
            "seed": seed,
            "space": {"x1": {"float": [-5.0, 10.0]}, "x2": {"float": [0.0, 15.0]}},
            "search": search,
        }
    )


def run_searcher(name: str, seed: int, budget: int, warm_start: dict | None = None) -> list[float]:
    """Values of ``budget`` trials of one searcher on Branin, in the order suggested."""
    import random

    from scalehp.compiler import compile_plan
    from scalehp.runner.search import _base_searcher
    from scalehp.space import sample_config

    values = []
    if name == "random":
        rng = random.Random(seed)
        space = experiment(SEARCHERS["hyperopt"], seed, budget).space
        for _ in range(budget):
            config = sample_config(space, rng=rng)
            values.append(branin(config["x1"], config["x2"]))
        return values
    search = {**SEARCHERS[name], **({"warm_start": warm_start} if warm_start else {})}
    plan = compile_plan(experiment(search, seed, budget))
    searcher = _base_searcher(plan)
    for i in range(budget):
        config = searcher.suggest(str(i))
        value = branin(config["x1"], config["x2"])
        searcher.on_trial_complete(str(i), {"value": value, "training_iteration": 1})
        values.append(value)
    return values


def best_so_far(values: list[float]) -> list[float]:
    out, best = [], math.inf
    for value in values:
        best = min(best, value)
        out.append(best)
    return out


def compare(budget: int = 40, seeds: int = 10, threshold: float = 1.0) -> dict[str, dict[str, float]]:
    """Median best value and median evaluations to get below ``threshold``, per searcher."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    table = {}
    for name in SEARCHERS:
        bests, reach = [], []
        for seed in range(seeds):
            curve = best_so_far(run_searcher(name, seed, budget))
            bests.append(curve[-1])
            reach.append(next((i + 1 for i, v in enumerate(curve) if v <= threshold), budget + 1))
        table[name] = {"median_best": statistics.median(bests), "median_evals_to_threshold": statistics.median(reach)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=1.0)
    args = parser.parse_args()
    table = compare(args.budget, args.seeds, args.threshold)
    print(
        f"Branin (min {BRANIN_MIN}), {args.budget} evaluations, seeds 0..{args.seeds - 1}; "
        "searchers driven in-process through Ray Tune's Searcher interface (no Ray cluster)"
    )
    print(f"{'searcher':14}  {'median best':>12}  {'median evals to <= ' + str(args.threshold):>24}")
    for name, row in table.items():
        reach = row["median_evals_to_threshold"]
        reach_text = f"{reach:g}" if reach <= args.budget else f"> {args.budget}"
        print(f"{name:14}  {row['median_best']:12.4f}  {reach_text:>24}")


if __name__ == "__main__":
    main()
