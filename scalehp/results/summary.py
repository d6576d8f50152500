"""What a finished (or interrupted) run produced, from its tables alone: :class:`RunSummary`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from scalehp.results.schema import describe_end, metric_column, metric_names_of, run_end
from scalehp.results.sink import is_uri
from scalehp.results.store import _empty, read_results, read_table


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
    infeasible: int = 0  # trials whose config could not be trained (their trainable raised Infeasible)


def summarize(run_dir: str | Path, *, elapsed_s: float = 0.0, started: Iterable[str] = ()) -> RunSummary:
    """A :class:`RunSummary` from a run folder's tables (why it ended early: its ``end`` event).

    ``started``: ids of trials known to have started; one with neither a row nor a report
    counts as unfinished. The tables stay in Arrow: only the reports of trials without a row
    and the best trial's row become pandas, so a million-trial run is summarised in seconds
    and in the memory of its Arrow columns.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    from scalehp.analysis.tables import finite, leaderboard

    results = read_results(run_dir)
    plan = next(iter(results.plans.values()))
    metric, mode = plan["experiment"]["metric"]["name"], plan["experiment"]["metric"]["mode"]
    events = results.table("events")
    if events.num_rows:
        events = events.filter(pc.equal(events["action"], "end"))
    end = run_end(events.to_pandas())
    ended = describe_end(end, metric, mode) if end else None
    def table(name: str, columns: list[str] | None = None, where: Any = None) -> Any:
        return read_table(results.runs, name, results.filesystem, results.metric_columns, columns=columns, where=where)

    trials = table("trials", ["status", "best_value"])  # (and trial_id): a million trials' columns, not all
    ids = trials["trial_id"]
    rowless = pc.invert(pc.is_in(table("reports", ["trial_id"])["trial_id"], value_set=ids))
    reports = results.table("reports") if pc.any(rowless).as_py() else _empty("reports")  # only when some have no row
    pending = reports.filter(pc.invert(pc.is_in(reports["trial_id"], value_set=ids))) if reports.num_rows else reports
    silent = [t for t in dict.fromkeys(started) if not pc.any(pc.equal(ids, t)).as_py()] if started else []
    frame = pending.to_pandas()
    frame.attrs["metric_names"] = metric_names_of(reports.schema)
    unfinished = _unfinished(frame, metric, mode, silent)  # interrupted: they count, may be best
    counts = pc.value_counts(trials["status"]).to_pylist() if trials.num_rows else []
    counts = {c["values"]: c["counts"] for c in counts}
    candidates = []  # the best row of the trials table (the first of equal ones), then the unfinished ones
    values = trials["best_value"].to_numpy(zero_copy_only=False).astype(float) if trials.num_rows else np.array([])
    scored = np.where(np.isfinite(values), values if mode == "min" else -values, np.inf)
    names = dict(unfinished.attrs.get("metric_names", {}))
    if len(scored) and np.isfinite(scored.min()):
        best_id = ids[int(np.argmin(scored))].as_py()
        row = table("trials", where=pc.field("trial_id") == best_id)
        names = {**metric_names_of(row.schema), **names}
        candidates.append(row.to_pandas())
    if len(unfinished):
        candidates.append(unfinished)
    summary: dict[str, Any] = {}
    best_rows = pd.concat(candidates, ignore_index=True) if candidates else pd.DataFrame({"best_value": []})
    best_rows = best_rows[finite(best_rows["best_value"]).notna()]  # NaN and infinite values are never the best
    if len(best_rows):
        best = leaderboard(best_rows, mode).iloc[0]
        params = {name: _plain(best[column]) for name, column in plan.get("columns", {}).items() if column in best}
        metrics = {name: float(best[c]) for c, name in names.items() if c in best and best[c] == best[c]}
        summary = {
            "best_trial": best["trial_id"],
            "best_value": float(best["best_value"]),
            "best_params": params,
            "best_metrics": metrics,
        }
    return RunSummary(
        run_id=plan["run_id"],
        path=run_dir if is_uri(run_dir) else Path(run_dir),
        trials=trials.num_rows + len(unfinished),
        completed=int(counts.get("completed", 0)),
        stopped=int(counts.get("stopped", 0)),
        errors=int(counts.get("error", 0)),
        infeasible=int(counts.get("infeasible", 0)),
        elapsed_s=elapsed_s,
        metric=metric,
        mode=mode,
        ended=ended,
        unfinished=len(unfinished),
        **summary,
    )


def _unfinished(rows: Any, metric: str, mode: str, started: Iterable[str] = ()) -> Any:
    """Trials with no ``trials`` row (they were running when the run was interrupted), as rows
    like the callback writes: best value, params and metrics at the last step they reported.

    ``rows``: their reports; ``started``: ids of trials without a row that had started."""
    import numpy as np
    import pandas as pd

    reports = rows
    rows = rows.sort_values(["trial_id", "step"])
    silent = sorted(set(started) - set(rows["trial_id"]))  # started, never reported
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
