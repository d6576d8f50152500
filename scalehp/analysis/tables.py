"""Tables from results: pure functions over pandas frames, nothing printed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalehp.errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from scalehp.results.store import Results


def leaderboard(trials: pd.DataFrame, mode: str, top: int | None = None) -> pd.DataFrame:
    """Trials ranked by their best value of the experiment's metric (``best_value``).

    Trials that never reported a value rank last; ties keep the trials' order.
    """
    ranked = trials.sort_values("best_value", ascending=(mode == "min"), na_position="last", kind="stable")
    ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked.head(top) if top else ranked


def best_trial(trials: pd.DataFrame, mode: str) -> pd.Series:
    """The trial (row of ``trials``) with the best ``best_value``.

    Raises:
        ResultsError: no trial reported a value of the metric.
    """
    scored = trials.dropna(subset=["best_value"])
    if scored.empty:
        raise ResultsError("no trial reported a value of the metric yet")
    return leaderboard(scored, mode).iloc[0].drop("rank")


def params_of(row: pd.Series) -> dict:
    """``param_<name>`` columns of a row as ``{name: value}`` (missing values left out)."""
    out = {}
    for column, value in row.items():
        if str(column).startswith("param_") and value is not None and value == value:
            out[str(column).removeprefix("param_")] = value.item() if hasattr(value, "item") else value
    return out


def runs(results: Results) -> pd.DataFrame:
    """One row per run: experiment, when, how many trials ended how, and the best value.

    ``ended`` names the setting that ended the run early (``metric.goal``,
    ``failure.max_failed_trials``, ``budget.time_limit``), empty when it ran to the end.
    """
    import pandas as pd

    trials = results.trials
    events = results.events
    ends = events[events["action"] == "end"] if len(events) and "reason" in events else events.iloc[0:0]
    rows = []
    for run_id, plan in results.plans.items():
        mine = trials[trials["run_id"] == run_id] if len(trials) else trials
        metric = plan["experiment"]["metric"]
        best = mine["best_value"].min() if metric["mode"] == "min" else mine["best_value"].max()
        statuses = mine["status"].value_counts().to_dict() if len(mine) else {}
        rows.append(
            {
                "run_id": run_id,
                "experiment": plan["experiment"]["name"],
                "created_at": plan.get("created_at", "")[:19].replace("T", " "),
                "trials": len(mine),
                "planned": plan.get("trials"),
                "completed": statuses.get("completed", 0),
                "stopped": statuses.get("stopped", 0),
                "errors": statuses.get("error", 0),
                "metric": f"{metric['name']} ({metric['mode']})",
                "best": best if best == best else None,
                "ended": next(iter(ends[ends["run_id"] == run_id]["reason"].tolist()[-1:]), ""),
            }
        )
    return pd.DataFrame(rows)
