"""ASHA rung statistics from the scheduler's recorded decisions (the ``events`` table).

Every time a trial reaches a rung, ASHA compares its value with the rung's cut-off and
either lets it continue (promotes it) or stops it; each such decision is one event row with
``scheduler="asha"``, ``rung`` (the rung's step), ``value``, ``cutoff`` and ``action``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def rung_stats(events: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, rung): how many trials reached it, were promoted or stopped, and the cut-offs.

    Columns: ``run_id, rung, trials, promoted, stopped, cutoff_min, cutoff_median,
    cutoff_max, cutoff_last`` (the cut-off at the rung's last decision; cut-offs move as more
    trials arrive), ``value_min`` and ``value_max`` (the range of the trials' values at the
    rung). Empty when the run used no ASHA.
    """
    import pandas as pd

    columns = [
        "run_id",
        "rung",
        "trials",
        "promoted",
        "stopped",
        "cutoff_min",
        "cutoff_median",
        "cutoff_max",
        "cutoff_last",
        "value_min",
        "value_max",
    ]
    if events.empty or "scheduler" not in events.columns:
        return pd.DataFrame(columns=columns)
    asha = events[(events["scheduler"] == "asha") & events["rung"].notna()]
    if asha.empty:
        return pd.DataFrame(columns=columns)
    asha = asha.sort_values(["run_id", "rung", "time"], kind="stable")
    grouped = asha.groupby(["run_id", "rung"], sort=True)
    out = grouped.agg(
        trials=("trial_id", "nunique"),
        promoted=("action", lambda a: int((a == "continue").sum())),
        stopped=("action", lambda a: int((a == "stop").sum())),
        cutoff_min=("cutoff", "min"),
        cutoff_median=("cutoff", "median"),
        cutoff_max=("cutoff", "max"),
        cutoff_last=("cutoff", "last"),
        value_min=("value", "min"),
        value_max=("value", "max"),
    ).reset_index()
    out["rung"] = out["rung"].astype("int64")
    return out[columns]
