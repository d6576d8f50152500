"""One self-contained HTML report of one or more runs: tables and plots, nothing external.

Images are PNGs inlined as ``data:`` URIs, the style is inline CSS, and there is no script
and no link to anything outside the file, so the report opens offline and can be mailed.

Every string from the results (``plan.json``'s names and modes, params, trial ids, statuses,
error texts, metric names in the part files) is untrusted: each reaches the page only through
:func:`_text` (``html.escape``, quotes included, so it is safe in text and in attributes).
The report embeds no JSON and no script; one that does must escape ``</`` and ``<!--`` too.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
from typing import TYPE_CHECKING, Any

from scalehp.analysis import asha, compare, curves, importance, pbt, plots, tables
from scalehp.errors import ResultsError
from scalehp.results.schema import describe_end, metric_names, param_names, run_end

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from scalehp.results.store import Results

log = logging.getLogger(__name__)

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}
h3{font-size:1.05rem;margin-top:1.5rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.5rem 0}
.note{color:#666;font-size:.85rem}
"""


def _text(value: Any) -> str:
    """Any value from the results as HTML text (or a quoted attribute value): escaped."""
    return html.escape(str(value), quote=True)


def _img(figure: Any, alt: str) -> str:
    data = base64.b64encode(plots.png(figure)).decode("ascii")
    return f'<img alt="{_text(alt)}" src="data:image/png;base64,{data}">'


def _fmt(value: Any) -> str:
    import pandas as pd

    if not isinstance(value, (dict, list, tuple)) and pd.isna(value):  # None, NaN, NA, NaT
        return "-"
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:.4g}" if (abs(value) >= 1e-3 or value == 0) else f"{value:.3e}"
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_text(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _note(text: str) -> str:
    return f'<p class="note">{_text(text)}</p>'


def _own(frame: pd.DataFrame) -> pd.DataFrame:
    """A run's rows without the param/metric columns only other runs have (all empty here)."""
    others = [c for c in frame.columns if c.startswith(("param_", "metric_")) and frame[c].isna().all()]
    return frame.drop(columns=others)


def _run_section(frames: dict[str, pd.DataFrame], run_id: str, plan: dict[str, Any], top: int) -> list[str]:
    experiment = plan["experiment"]
    metric, mode = experiment["metric"]["name"], experiment["metric"]["mode"]
    trials, reports, events = frames["trials"], frames["reports"], frames["events"]  # (this run's rows)
    params = [c.removeprefix("param_") for c in trials.columns if c.startswith("param_") and trials[c].nunique() > 1]
    parts = [f"<h2>Run {_text(run_id)} — {_text(experiment.get('name'))}</h2>"]
    parts.append(
        _note(
            f"metric {metric} ({mode}); searcher {plan.get('searcher')}, scheduler {plan.get('scheduler')}; "
            f"{len(trials)} trials, {len(reports)} reports, "
            f"{(events['action'] != 'end').sum() if len(events) else 0} scheduler events"
        )
    )
    end = run_end(events)
    if end:
        parts.append(_note(f"The run ended early: {describe_end(end, metric, mode)}."))
    if trials.empty:
        return [*parts, _note("No trial has finished yet.")]

    board = tables.leaderboard(trials, mode, top)
    columns = ["rank", "trial_id", "status", "steps", "best_value", "best_step"]
    columns += [c for c in board.columns if c.startswith(("param_", "metric_"))]
    names = {**metric_names(trials), **param_names(trials)}
    shown = board[columns].rename(columns=lambda c: names.get(c) or c.removeprefix("param_"))
    parts += [f"<h3>Leaderboard (top {len(shown)}, by best {_text(metric)})</h3>", _table(shown)]
    best = board.iloc[0]["trial_id"] if tables.finite(board["best_value"]).notna().iloc[0] else None

    if len(reports):
        shown, total = curves.sampled(reports, best)
        parts += [
            "<h3>Learning curves</h3>",
            _img(plots.learning_curves(curves.learning_curves(shown, metric), metric, best, total=total), "learning curves"),
        ]
    if len(params) and tables.finite(trials["best_value"]).notna().sum() >= 3:
        try:
            named = [param_names(trials).get(f"param_{p}", p) for p in params]  # optimizer.lr, not optimizer_lr
            ranked = importance.param_importance(trials, mode, params=named, space=experiment.get("space"))
        except ResultsError as exc:
            parts.append(_note(f"No param importance: {exc}"))
        else:
            parts += [
                "<h3>Param importance (fANOVA)</h3>",
                _img(plots.importance(ranked), "param importance"),
                _table(ranked),
            ]
            if "sampled" in ranked.attrs:
                used, total = ranked.attrs["sampled"]
                parts.append(_note(f"Modelled on a random sample of {used:,} of the {total:,} trials."))
        parts += [
            "<h3>Parallel coordinates</h3>",
            _img(plots.parallel_coordinates(trials, params, mode), "parallel coordinates"),
        ]
    stats = asha.rung_stats(events)
    if len(stats):
        parts += [
            "<h3>ASHA rungs</h3>",
            _img(plots.asha_rungs(events, stats, metric), "ASHA rungs"),
            _table(stats.drop(columns="run_id")),
        ]
    edges = pbt.exploits(events, run_id)
    if len(edges) and best is not None:
        chain = pbt.lineage(events, best, run_id=run_id)
        schedule = pbt.param_schedule(reports, events, best, run_id=run_id)
        mutated = sorted({k for e in edges["explored_params"] for k in e} & set(params)) or params[:3]
        parts += [
            f"<h3>PBT lineage of the best trial {_text(str(best))}</h3>",
            _img(plots.pbt_lineage(edges, chain, schedule, mutated), "PBT lineage"),
            _table(chain),
        ]
    return parts


def render(results: Results, title: str | None = None, top: int = 10) -> str:
    """The report of ``results`` (every run in it) as one HTML document."""
    plans = results.plans
    title = title or "scalehp report: " + ", ".join(sorted({str(p["experiment"].get("name")) for p in plans.values()}))
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        _note(f"{len(plans)} run(s), made {created} by scalehp from the runs' Parquet tables."),
    ]
    frames = {"trials": results.trials, "reports": results.reports, "events": results.events}
    compared = compare.compare_runs(results, trials=frames["trials"], reports=frames["reports"])
    parts += ["<h2>Runs side by side</h2>", _table(compare.side_by_side(compared))]
    reports = frames["reports"]
    if len(reports):
        # anytime performance of the runs that share a metric and mode, one pair of plots each
        groups: dict[tuple[str, str], list[str]] = {}
        for run_id, plan in plans.items():
            metric = plan["experiment"]["metric"]
            groups.setdefault((metric["name"], metric["mode"]), []).append(run_id)
        for (metric, mode), run_ids in groups.items():
            mine = reports[reports["run_id"].isin(run_ids)]
            if mine.empty:
                continue
            parts.append(f"<h3>Anytime performance: best {_text(metric)} ({_text(mode)}) so far</h3>")
            for by in ("wall", "steps"):
                frame = curves.anytime(mine, metric, mode, by=by)
                parts.append(_img(plots.anytime(frame, metric, by=by), f"anytime performance over {by}"))
    for run_id, plan in plans.items():
        mine = frames if len(plans) == 1 else {t: _own(f[f["run_id"] == run_id]) for t, f in frames.items()}
        parts += _run_section(mine, run_id, plan, top)
    parts.append("</body></html>")
    return "\n".join(parts)
