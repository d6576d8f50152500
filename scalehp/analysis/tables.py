"""Tables from results: pure functions over pandas frames, nothing printed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalehp.errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from scalehp.results.store import Results


def finite(values: pd.Series) -> pd.Series:
    """``values`` as floats, with NaN, +inf and -inf all missing: none of them is ever a best value.

    Every ranking goes through here, so that a non-finite value ranks as the worst, as the
    schedulers treat it.
    """
    import numpy as np

    numbers = values.astype(float)
    return numbers.where(np.isfinite(numbers))


def leaderboard(trials: pd.DataFrame, mode: str, top: int | None = None) -> pd.DataFrame:
    """Trials ranked by their best value of the experiment's metric (``best_value``).

    Trials that never reported a finite value rank last (NaN and infinite values are the
    worst, never the best); ties keep the trials' order.
    """
    if top and len(trials) > 4 * top:  # the first ``top`` of the same stable order, without sorting them all
        ranked = trials.iloc[_first(trials["best_value"], mode, top)].reset_index(drop=True)
    else:
        ranked = trials.sort_values("best_value", ascending=(mode == "min"), na_position="last", kind="stable", key=finite)
        ranked = ranked.reset_index(drop=True)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked.head(top) if top else ranked


def _first(values: pd.Series, mode: str, count: int) -> list[int]:
    """Positions of the ``count`` best values in a stable sort (ties in their order, NaN and
    infinities last): a partition, then only the candidates sorted."""
    import numpy as np

    numbers = finite(values).to_numpy(dtype=float)
    key = np.where(np.isnan(numbers), np.inf, numbers if mode == "min" else -numbers)
    threshold = np.partition(key, count - 1)[count - 1]
    below = np.flatnonzero(key < threshold)
    at = np.flatnonzero(key == threshold) if np.isfinite(threshold) else np.flatnonzero(np.isinf(key))
    chosen = np.concatenate([below, at[: count - len(below)]])
    return list(chosen[np.lexsort((chosen, key[chosen]))])


def best_trial(trials: pd.DataFrame, mode: str) -> pd.Series:
    """The trial (row of ``trials``) with the best finite ``best_value``.

    Raises:
        ResultsError: no trial reported a finite value of the metric.
    """
    if finite(trials["best_value"]).notna().sum() == 0:
        raise ResultsError("no trial reported a finite value of the metric yet")
    return trials.iloc[_first(trials["best_value"], mode, 1)[0]]


def params_of(row: pd.Series) -> dict:
    """``param_<name>`` columns of a row as ``{name: value}`` (missing values left out)."""
    out = {}
    for column, value in row.items():
        if str(column).startswith("param_") and value is not None and value == value:
            out[str(column).removeprefix("param_")] = value.item() if hasattr(value, "item") else value
    return out


def runs(results: Results) -> pd.DataFrame:
    """One row per run: experiment, when, how many trials ended how, and the best value.

    Runs are known by the run id they recorded; when a run's folder is named otherwise (a
    copied or renamed run), a ``folder`` column shows the folders' names too.

    ``ended`` names the setting that ended the run early (``metric.goal``,
    ``failure.max_failed_trials``, ``budget.time_limit``), empty when it ran to the end.
    """
    import pandas as pd

    trials = results.trials
    events = results.events
    ends = events[events["action"] == "end"] if len(events) and "reason" in events else events.iloc[0:0]
    folders = results.folders
    renamed = any(names != [run_id] for run_id, names in folders.items())
    rows = []
    for run_id, plan in results.plans.items():
        mine = trials[trials["run_id"] == run_id] if len(trials) else trials
        metric = plan["experiment"]["metric"]
        values = finite(mine["best_value"])
        best = values.min() if metric["mode"] == "min" else values.max()
        statuses = mine["status"].value_counts().to_dict() if len(mine) else {}
        row = {"run_id": run_id, **({"folder": ", ".join(folders[run_id])} if renamed else {})}
        rows.append(
            {
                **row,
                "experiment": plan["experiment"].get("name"),
                "created_at": (plan.get("created_at") or "")[:19].replace("T", " "),
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
