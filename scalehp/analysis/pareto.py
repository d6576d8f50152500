"""The Pareto front of a multi-objective run: the trials no other trial beats on every metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalehp.errors import ResultsError
from scalehp.results.schema import column_name

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from scalehp.results.store import Results


def objectives(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, mode)`` of every metric a run optimised, from its ``plan.json``."""
    experiment = plan["experiment"]
    metrics = experiment.get("metrics") or [experiment["metric"]]
    return [(m["name"], m["mode"]) for m in metrics]


def pareto_mask(values: list[list[float]], modes: list[str]) -> list[bool]:
    """For each row of ``values`` (one value per metric), whether no other row dominates it.

    A row dominates another when it is at least as good on every metric and better on one.

    Example:
        >>> pareto_mask([[1, 5], [2, 2], [3, 3]], ["min", "min"])
        [True, True, False]
    """
    signs = [1.0 if mode == "min" else -1.0 for mode in modes]
    rows = [[s * v for s, v in zip(signs, row)] for row in values]
    mask = []
    for i, a in enumerate(rows):
        dominated = any(
            all(y <= x for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)) for j, b in enumerate(rows) if j != i
        )
        mask.append(not dominated)
    return mask


def pareto_front(results: Results, metrics: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The trials on the Pareto front, by their metrics at the last step (the values the searcher was told).

    Args:
        results: the results of one or more runs (every run must have optimised the same metrics).
        metrics: ``(name, mode)`` pairs; default: the metrics in the runs' plans.

    Raises:
        ResultsError: the runs optimised different metrics, or a metric was never reported.
    """
    if metrics is None:
        found = {tuple(objectives(plan)) for plan in results.plans.values()}
        if len(found) != 1:
            raise ResultsError("these runs optimised different metrics; name the metrics to compare")
        metrics = list(found.pop())
    trials = results.trials
    columns = [column_name("metric", name) for name, _ in metrics]
    missing = [c for c in columns if c not in trials.columns]
    if missing:
        raise ResultsError(f"no trial reported {', '.join(missing)}")
    scored = trials.dropna(subset=columns)
    if trials.empty or scored.empty:
        return scored
    mask = pareto_mask(scored[columns].values.tolist(), [mode for _, mode in metrics])
    front = scored[mask]
    return front.sort_values(columns[0], ascending=metrics[0][1] == "min", kind="stable").reset_index(drop=True)
