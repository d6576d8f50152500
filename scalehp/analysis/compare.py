"""Runs side by side: what each run was, what it spent and what it found."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scalehp.analysis.tables import best_trial, params_of
from scalehp.errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from scalehp.results.store import Results


def compare_runs(results: Results, trials: pd.DataFrame | None = None, reports: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run, ready to be read side by side (see :func:`side_by_side`).

    Columns: ``run_id, experiment, searcher, scheduler, metric, mode, trials, completed,
    stopped, errors, steps`` (all reports), ``wall_s`` (first to last report), ``best_value``,
    ``best_trial``, ``best_step``, ``steps_to_best`` and ``wall_s_to_best`` (spent by the whole
    run until the best value was first reported) and ``best_params`` (dict). ``trials`` and
    ``reports``: the results' frames, when the caller has them already.
    """
    import pandas as pd

    trials = results.trials if trials is None else trials
    if reports is None:
        table = results.table("reports")
        reports = table.select([c for c in ("run_id", "trial_id", "step", "time") if c in table.column_names]).to_pandas()
    rows = []
    for run_id, plan in results.plans.items():
        experiment = plan["experiment"]
        metric, mode = experiment["metric"]["name"], experiment["metric"]["mode"]
        single = len(results.plans) == 1  # (a million rows are not copied to select them all)
        mine = trials if single else trials[trials["run_id"] == run_id]
        done = reports if single else reports[reports["run_id"] == run_id]
        done = done[["trial_id", "step", "time"]].sort_values("time", kind="stable").reset_index(drop=True)
        statuses = mine["status"].value_counts().to_dict()
        row = {
            "run_id": run_id,
            "experiment": experiment.get("name"),
            "searcher": plan.get("searcher"),
            "scheduler": plan.get("scheduler"),
            "metric": metric,
            "mode": mode,
            "trials": len(mine),
            "completed": statuses.get("completed", 0),
            "stopped": statuses.get("stopped", 0),
            "errors": statuses.get("error", 0),
            "steps": len(done),
            "wall_s": (done["time"].max() - done["time"].min()).total_seconds() if len(done) else None,
            "best_value": None,
            "best_trial": None,
            "best_step": None,
            "steps_to_best": None,
            "wall_s_to_best": None,
            "best_params": {},
        }
        try:
            best = best_trial(mine, mode)
        except ResultsError:
            best = None
        if best is not None:
            row.update(
                best_value=float(best["best_value"]),
                best_trial=best["trial_id"],
                best_step=int(best["best_step"]) if best["best_step"] == best["best_step"] else None,
                best_params=params_of(best),
            )
            hit = done[(done["trial_id"] == best["trial_id"]) & (done["step"] == best["best_step"])]
            if len(hit):
                row["steps_to_best"] = int(hit.index[0]) + 1
                row["wall_s_to_best"] = (hit["time"].iloc[0] - done["time"].min()).total_seconds()
        rows.append(row)
    return pd.DataFrame(rows)


def side_by_side(compared: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`compare_runs` as columns: one column per run, one row per field."""
    frame = compared.set_index("run_id").T
    frame.index.name = "field"
    return frame.reset_index()
