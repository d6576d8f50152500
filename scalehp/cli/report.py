"""Commands for answers beyond tables: ``scalehp sql``, ``scalehp report``, ``scalehp plot``."""

from __future__ import annotations

import click

from scalehp.cli.common import FORMAT, check_output, escape, main, print_table, write_output
from scalehp.defaults import RESULTS_ROOT

FORCE = click.option("--force", is_flag=True, help="Replace the -o file if it exists (never through a link).")


def _results(paths: tuple[str, ...]):  # noqa: ANN202
    from scalehp.results.store import Results, read_results

    runs = []
    for path in paths:
        runs += [r for r in read_results(path).runs if r not in runs]
    return Results(runs)


@main.command()
@click.argument("query")
@click.option(
    "--root",
    default=RESULTS_ROOT,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Results root, experiment folder or run to query.",
)
@click.option(
    "--allow-files",
    is_flag=True,
    help="Let the SQL read and write other files (COPY ... TO, read_csv, ATTACH, extensions); "
    "without it the SQL reads the results and nothing else.",
)
@FORMAT
def sql(query: str, root: str, allow_files: bool, fmt: str) -> None:
    """Run a DuckDB SQL QUERY over the views trials, reports, events and runs.

    The SQL is read-only over the results: it cannot read or write any other file, attach
    a database or load an extension, unless --allow-files is given.

    \b
    scalehp sql "SELECT run_id, count(*) AS trials, min(best_value) FROM trials GROUP BY 1"
    scalehp sql "SELECT trial_id, step, metric_loss FROM reports WHERE step = 9" --format csv
    """
    from scalehp.results.sql import query as run_query

    table = run_query(root, query, allow_files=allow_files)
    if table is None:
        return
    rows = table.to_pylist()
    print_table(rows, fmt)


@main.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(),
    help="The HTML file to write.",
)
@FORCE
@click.option("--title", default=None, help="Title of the report.")
@click.option("--top", default=10, show_default=True, help="Leaderboard rows per run.")
def report(runs: tuple[str, ...], output: str, force: bool, title: str | None, top: int) -> None:
    """Write one self-contained HTML report (tables and plots) of RUNS (runs, experiment folders or roots)."""
    from scalehp.analysis.report import render

    check_output(output, force=force)  # before the work
    results = _results(runs)
    text = render(results, title=title, top=top)
    write_output(output, text, force=force)
    click.echo(escape(f"wrote {output} ({len(text) / 1e6:.1f} MB, {len(results.runs)} run(s)); open it in a browser"))


PLOTS = ("curves", "anytime", "importance", "parallel", "asha", "pbt")


@main.command()
@click.argument("kind", type=click.Choice(PLOTS))
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="The PNG file to write.")
@click.option(
    "--by",
    type=click.Choice(["wall", "steps"]),
    default="wall",
    show_default=True,
    help="anytime: over wall time or cumulative steps.",
)
@FORCE
def plot(kind: str, runs: tuple[str, ...], output: str, by: str, force: bool) -> None:
    """Draw one plot of RUNS as a PNG: learning curves, anytime performance, importance, ..."""
    from scalehp.analysis import asha, curves, importance, pbt, plots
    from scalehp.analysis.tables import best_trial, finite
    from scalehp.errors import ResultsError

    check_output(output, force=force)  # before the work
    results = _results(runs)
    metric, mode = results.metric()
    plan = list(results.plans.values())[-1]
    trials = results.trials
    if kind in ("importance", "parallel", "pbt") and len(results.runs) > 1:
        raise ResultsError(f"{kind} is drawn for one run; name a run folder")
    if kind == "curves":
        best = best_trial(trials, mode)["trial_id"] if finite(trials["best_value"]).notna().any() else None
        shown, total = curves.sampled(results.reports, best)
        figure = plots.learning_curves(curves.learning_curves(shown, metric), metric, best, total=total)
    elif kind == "anytime":
        figure = plots.anytime(curves.anytime(results.reports, metric, mode, by=by), metric, by=by)
    elif kind == "importance":
        figure = plots.importance(importance.param_importance(trials, mode, space=plan["experiment"].get("space")))
    elif kind == "parallel":
        params = [
            c.removeprefix("param_") for c in trials.columns if c.startswith("param_") and trials[c].nunique() > 1
        ]
        figure = plots.parallel_coordinates(trials, params, mode)
    elif kind == "asha":
        events = results.events
        figure = plots.asha_rungs(events, asha.rung_stats(events), metric)
    else:
        events, reports = results.events, results.reports
        edges = pbt.exploits(events)
        if edges.empty:
            raise ResultsError("no PBT exploit events in these runs")
        best = best_trial(trials, mode)["trial_id"]
        params = sorted({k for e in edges["explored_params"] for k in e})
        figure = plots.pbt_lineage(edges, pbt.lineage(events, best), pbt.param_schedule(reports, events, best), params)
    write_output(output, plots.png(figure), force=force)
    click.echo(escape(f"wrote {output}"))
