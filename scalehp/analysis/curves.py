"""Learning curves and anytime performance.

A learning curve is one trial's metric over its steps. Anytime performance is the best value
any trial of a run had reached so far, over the run's wall time or over the steps spent by
all its trials together: the fair way to compare schedulers and searchers, since a scheduler
that stops bad trials early reaches a good value with fewer steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalehp.errors import ResultsError
from scalehp.results.schema import metric_column, metric_names

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

KEYS = ["run_id", "trial_id"]


def _metric_column(reports: pd.DataFrame, metric: str) -> str:
    """The column of ``metric`` (a name as reported, or a ``metric_*`` column)."""
    column = metric_column(reports, metric)
    if column is None:
        known = ", ".join(metric_names(reports).values())
        raise ResultsError(f"no metric {metric!r} in the reports; known metrics: {known or 'none'}")
    return column


def learning_curves(reports: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (run, trial, step): ``run_id, trial_id, step, elapsed_s, value``, sorted."""
    column = _metric_column(reports, metric)
    curves = reports[[*KEYS, "step", "elapsed_s", column]].rename(columns={column: "value"})
    return curves.sort_values([*KEYS, "step"], kind="stable").reset_index(drop=True)


def sampled(reports: pd.DataFrame, best: str | None = None, count: int = 200) -> tuple[pd.DataFrame, int]:
    """The reports of a random sample (seeded) of ``count`` trials and of ``best``, and how many
    trials there were: what a learning-curve plot of a million trials draws, without sorting them all."""
    import pandas as pd

    if reports["run_id"].nunique() <= 1:  # one run: trial ids alone (hashing one column, not two)
        ids = pd.Series(reports["trial_id"].unique())
        if len(ids) <= count:
            return reports, len(ids)
        keep = reports["trial_id"].isin(ids.sample(count, random_state=0))
        return reports[keep | (reports["trial_id"] == best)], len(ids)
    keys = reports[KEYS].drop_duplicates()
    if len(keys) <= count:
        return reports, len(keys)
    chosen = keys.sample(count, random_state=0)
    keep = pd.MultiIndex.from_frame(reports[KEYS]).isin(pd.MultiIndex.from_frame(chosen))
    return reports[keep | (reports["trial_id"] == best).to_numpy()], len(keys)


def anytime(reports: pd.DataFrame, metric: str, mode: str, by: str = "wall") -> pd.DataFrame:
    """Best value so far per run, over wall time (``by="wall"``) or cumulative steps (``by="steps"``).

    Returns one row per report, in the order the reports happened: ``run_id``, ``x`` (seconds
    since the run's first report, or the number of steps run so far by all trials together)
    and ``best`` (the best value of the metric reported up to then; NaN and infinite values
    are the worst, never a best).
    """
    import numpy as np

    if by not in ("wall", "steps"):
        raise ResultsError(f"anytime: by must be 'wall' or 'steps', not {by!r}")
    column = _metric_column(reports, metric)
    # in time order; each run's running best is taken within the run (groups keep that order)
    frame = reports[["run_id", "time", column]].sort_values("time", kind="stable")
    value = frame[column].astype(float)
    # the worst possible value where nothing finite was reported, so the running best ignores them
    worst = np.inf if mode == "min" else -np.inf
    filled = value.where(np.isfinite(value), worst)
    groups = filled.groupby(frame["run_id"], sort=False)
    best = groups.cummin() if mode == "min" else groups.cummax()
    if by == "wall":
        start = frame.groupby("run_id", sort=False)["time"].transform("min")
        x = (frame["time"] - start).dt.total_seconds()
    else:
        x = frame.groupby("run_id", sort=False).cumcount() + 1
    out = frame[["run_id"]].assign(x=x.to_numpy(), best=best.replace([np.inf, -np.inf], np.nan).to_numpy())
    return out.reset_index(drop=True)
