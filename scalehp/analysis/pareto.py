"""The Pareto front: trials that no other trial beats on every chosen metric at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scalehp.errors import ResultsError
from scalehp.results.schema import metric_column

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from scalehp.results.store import Results


def pareto_front(frame: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Rows of ``frame`` not dominated on ``objectives`` (column -> ``"min"`` or ``"max"``).

    A row is dominated when another row is at least as good on every objective and better on
    one. Rows with a missing or non-finite (NaN, infinite) value in any objective are left
    out: such a value is the worst, never on the front. The front is sorted by the first
    objective.

    Example:
        >>> import pandas as pd
        >>> f = pd.DataFrame({"loss": [1.0, 2.0, 0.5], "size": [3.0, 1.0, 4.0]})
        >>> list(pareto_front(f, {"loss": "min", "size": "min"}).index)
        [2, 0, 1]
    """
    import numpy as np

    if not objectives:
        raise ResultsError("pareto front: name at least one metric column")
    for column, mode in objectives.items():
        if column not in frame.columns:
            raise ResultsError(f"pareto front: no column {column!r}")
        if mode not in ("min", "max"):
            raise ResultsError(f"pareto front: mode of {column!r} must be min or max, not {mode!r}")
    columns = list(objectives)
    numbers = frame[columns].astype(float)
    scored = frame[np.isfinite(numbers).all(axis=1)]
    # as minimisation everywhere
    values = np.column_stack([scored[c].to_numpy(float) * (1.0 if objectives[c] == "min" else -1.0) for c in columns])
    keep = np.ones(len(values), dtype=bool)
    for i in range(len(values)):
        if not keep[i]:
            continue
        no_worse = (values <= values[i]).all(axis=1)
        better = (values < values[i]).any(axis=1)
        if (no_worse & better).any():
            keep[i] = False
    front = scored[keep]
    return front.sort_values(columns[0], ascending=objectives[columns[0]] == "min", kind="stable")


def feasible(trials: pd.DataFrame, plans: Any) -> pd.DataFrame:
    """The trials whose last report met every constraint of their run (``constraints``: each <= 0).

    ``plans``: run id -> ``plan.json`` (as :class:`~scalehp.results.store.Results` has them), or
    one plan for every row.
    """
    import pandas as pd

    if isinstance(plans, dict) and "experiment" in plans:
        plans = {None: plans}
    keep = pd.Series(True, index=trials.index)
    for run_id, plan in (plans or {}).items():
        names = list(((plan or {}).get("experiment") or {}).get("constraints") or [])
        rows = keep.index if run_id is None or "run_id" not in trials else trials.index[trials["run_id"] == run_id]
        for name in names:
            column = metric_column(trials, name)
            met = trials.loc[rows, column] <= 0 if column is not None else pd.Series(False, index=rows)
            keep.loc[rows] &= met.fillna(False).astype(bool)
    return trials[keep]


def objectives(plan: dict[str, Any]) -> list[tuple[str, str]]:
    """``(name, mode)`` of every metric a run optimised, from its ``plan.json``."""
    experiment = plan["experiment"]
    metrics = experiment.get("metrics") or [experiment["metric"]]
    return [(m["name"], m["mode"]) for m in metrics]


def run_front(results: Results, metrics: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The trials of ``results`` on the Pareto front, by their metrics at the last step (of the
    trials whose last report met the run's constraints).

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
    columns = {name: metric_column(trials, name) for name, _ in metrics}
    missing = [name for name, column in columns.items() if column is None]
    if missing:
        raise ResultsError(f"no trial reported {', '.join(missing)}")
    chosen = {columns[name]: mode for name, mode in metrics}
    return pareto_front(feasible(trials, results.plans), chosen).reset_index(drop=True)
