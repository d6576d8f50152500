"""What a finished (or interrupted) run produced, from its tables alone: :class:`RunSummary`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from scalehp.results.schema import describe_end, metric_column, metric_names, run_end
from scalehp.results.sink import is_uri
from scalehp.results.store import read_results


@dataclass(frozen=True)
class RunSummary:
    """What a finished run produced: where its tables are and which trial won."""

    run_id: str
    path: Path | str  # a local folder, or a URI (s3://…, gs://…)
    trials: int
    completed: int
    stopped: int
    errors: int
    elapsed_s: float
    metric: str
    mode: str
    best_trial: str | None = None
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_metrics: dict[str, float] = field(default_factory=dict)  # metric name -> value at its last step
    ended: str | None = None  # why the run ended early (a goal reached, …); None: it ran to the end
    unfinished: int = 0  # trials that had started but have no trials row (an interrupted run)


def summarize(run_dir: str | Path, *, elapsed_s: float = 0.0, started: Iterable[str] = ()) -> RunSummary:
    """A :class:`RunSummary` from a run folder's tables (why it ended early: its ``end`` event).

    ``started``: ids of trials known to have started; one with neither a row nor a report
    counts as unfinished.
    """
    from scalehp.analysis.tables import finite, leaderboard

    results = read_results(run_dir)
    plan = next(iter(results.plans.values()))
    metric, mode = plan["experiment"]["metric"]["name"], plan["experiment"]["metric"]["mode"]
    end = run_end(results.events)
    ended = describe_end(end, metric, mode) if end else None
    trials = results.trials
    unfinished = _unfinished(results.reports, trials, metric, mode, started)  # interrupted: they count, may be best
    if len(unfinished):
        import pandas as pd

        names = {**unfinished.attrs.get("metric_names", {}), **trials.attrs.get("metric_names", {})}
        trials = pd.concat([trials, unfinished], ignore_index=True)
        trials.attrs["metric_names"] = names
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    summary: dict[str, Any] = {}
    scored = trials[finite(trials["best_value"]).notna()]  # NaN and infinite values are never the best
    if len(scored):
        best = leaderboard(scored, mode).iloc[0]
        params = {name: _plain(best[column]) for name, column in plan.get("columns", {}).items() if column in best}
        metrics = {name: float(best[c]) for c, name in metric_names(trials).items() if best[c] == best[c]}
        summary = {
            "best_trial": best["trial_id"],
            "best_value": float(best["best_value"]),
            "best_params": params,
            "best_metrics": metrics,
        }
    return RunSummary(
        run_id=plan["run_id"],
        path=run_dir if is_uri(run_dir) else Path(run_dir),
        trials=len(trials),
        completed=int(counts.get("completed", 0)),
        stopped=int(counts.get("stopped", 0)),
        errors=int(counts.get("error", 0)),
        elapsed_s=elapsed_s,
        metric=metric,
        mode=mode,
        ended=ended,
        unfinished=len(unfinished),
        **summary,
    )


def _unfinished(reports: Any, trials: Any, metric: str, mode: str, started: Iterable[str] = ()) -> Any:
    """Trials with no ``trials`` row (they were running when the run was interrupted), as rows
    like the callback writes: best value, params and metrics at the last step they reported."""
    import numpy as np
    import pandas as pd

    finished = set(trials["trial_id"])
    rows = reports[~reports["trial_id"].isin(finished)].sort_values(["trial_id", "step"])
    silent = sorted(set(started) - finished - set(rows["trial_id"]))  # started, never reported
    if not len(rows) and not silent:
        return reports.iloc[0:0]
    column = metric_column(reports, metric)
    out = rows.groupby("trial_id", sort=True).tail(1).copy()
    if silent:
        never = pd.DataFrame({"trial_id": silent})
        out = pd.concat([out, never], ignore_index=True) if len(out) else never
    out.attrs["metric_names"] = dict(reports.attrs.get("metric_names", {}))
    out["status"] = "unfinished"
    out["best_value"] = float("nan")
    if column is not None and column in rows:
        finite = rows[["trial_id", column]][np.isfinite(rows[column].astype(float))]
        best = finite.groupby("trial_id")[column].agg("min" if mode == "min" else "max")
        out["best_value"] = out["trial_id"].map(best)
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = ["RunSummary", "summarize"]
