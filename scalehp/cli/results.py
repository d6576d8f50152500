"""Commands on results: ``scalehp results ls|show|best|compare|pareto``."""

from __future__ import annotations

import click

from scalehp.cli.common import FORMAT, fmt_value, frame_rows, main, print_table
from scalehp.defaults import RESULTS_ROOT


@main.group()
def results() -> None:
    """List and show results (Parquet tables) of runs."""


@results.command(name="ls")
@click.argument("root", default=RESULTS_ROOT, type=click.Path(file_okay=False))
@FORMAT
def results_ls(root: str, fmt: str) -> None:
    """List the runs under ROOT (a results root or an experiment folder)."""
    from scalehp.analysis.tables import runs
    from scalehp.results.store import read_results

    print_table(frame_rows(runs(read_results(root))), fmt)


@results.command(name="show")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--top", type=int, default=10, show_default=True, help="Rows to show (0: all).")
@FORMAT
def results_show(run: str, top: int, fmt: str) -> None:
    """Leaderboard of RUN (a run folder; an experiment folder shows all its runs)."""
    from scalehp.analysis.pareto import objectives, run_front
    from scalehp.analysis.tables import leaderboard
    from scalehp.results.schema import metric_names, param_names
    from scalehp.results.store import read_results

    res = read_results(run)
    metric, mode = res.metric()
    several = len({tuple(objectives(plan)) for plan in res.plans.values()} - {((metric, mode),)}) > 0
    trials = res.trials
    if several:  # several metrics: mark the trials no other trial beats on all of them
        front = run_front(res)
        trials = trials.assign(pareto=trials["trial_id"].isin(front["trial_id"]).map({True: "yes", False: ""}))
    board = leaderboard(trials, mode, top or None)
    names = {**metric_names(res.trials), **param_names(res.trials)}
    params = [c for c in board.columns if c.startswith("param_")]
    metrics = [c for c in board.columns if c.startswith("metric_")]
    columns = ["rank", "trial_id", "status", "steps", "best_value", *(["pareto"] if several else []), *params, *metrics]
    if len(res.runs) > 1:
        columns.insert(1, "run_id")
    frame = board[columns].rename(columns={"best_value": f"best_{metric}"})
    if fmt == "table":  # metrics under their names as reported (val/loss), params under theirs
        frame = frame.rename(columns=lambda c: names.get(c) or c.removeprefix("param_"))
        click.echo(f"{len(res.trials)} trials, ranked by best {metric} ({mode}); params, then metrics at the last step")
        if several:
            names = ", ".join(f"{n} ({m})" for n, m in objectives(next(iter(res.plans.values()))))
            click.echo(f"several metrics: {names}; pareto = on the Pareto front (metrics at the last step)")
    print_table(frame_rows(frame), fmt)


@results.command(name="best")
@click.argument("run", type=click.Path(file_okay=False))
@FORMAT
def results_best(run: str, fmt: str) -> None:
    """The best trial of RUN (a run, an experiment folder or a results root): its value, step and params."""
    from scalehp.analysis.tables import best_trial, params_of
    from scalehp.results.store import read_results

    res = read_results(run)
    metric, mode = res.metric()
    modes = {p["experiment"]["metric"]["mode"] for p in res.plans.values()}
    names = {p["experiment"]["metric"]["name"] for p in res.plans.values()}
    if len(modes) > 1 or len(names) > 1:
        from scalehp.errors import ResultsError

        raise ResultsError(f"{run}: the runs optimise different metrics; name one run or one experiment folder")
    best = best_trial(res.trials, mode)
    row = {
        "run_id": best["run_id"],
        "trial_id": best["trial_id"],
        "status": best["status"],
        f"best_{metric}": float(best["best_value"]),
        "best_step": _whole(best["best_step"]),
        "steps": _whole(best["steps"]),
        **{f"param_{k}" if fmt != "table" else k: v for k, v in params_of(best).items()},
    }
    if fmt == "table":
        click.echo(f"best trial by {metric} ({mode}) of {len(res.trials)} trials in {len(res.runs)} run(s)")
        print_table([{"field": k, "value": v} for k, v in row.items()], fmt)
    else:
        print_table([row], fmt)


def _whole(value: object) -> int | None:
    """A step count from a row (None where the row has none)."""
    return None if value is None or value != value else int(value)


@results.command(name="compare")
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@FORMAT
def results_compare(paths: tuple[str, ...], fmt: str) -> None:
    """Runs side by side: what each run spent and found (PATHS: runs, experiment folders or roots)."""
    from scalehp.analysis.compare import compare_runs, side_by_side
    from scalehp.results.store import Results, read_results

    runs = []
    for path in paths:
        runs += [r for r in read_results(path).runs if r not in runs]
    compared = compare_runs(Results(runs))
    compared["best_params"] = [
        ", ".join(f"{k}={fmt_value(v)}" for k, v in p.items()) if fmt == "table" else p for p in compared["best_params"]
    ]
    if fmt == "table":
        print_table(frame_rows(side_by_side(compared)), fmt)
    else:
        print_table(frame_rows(compared), fmt)


@results.command(name="pareto")
@click.argument("run", type=click.Path(file_okay=False))
@click.option(
    "-m",
    "--objective",
    "objectives",
    multiple=True,
    required=True,
    metavar="METRIC:MODE",
    help="A metric (at each trial's last report) and min or max; give two or more, e.g. -m loss:min -m acc:max.",
)
@FORMAT
def results_pareto(run: str, objectives: tuple[str, ...], fmt: str) -> None:
    """The trials of RUN that no other trial beats on every objective at once (multi-objective runs)."""
    from scalehp.analysis.pareto import feasible, pareto_front
    from scalehp.errors import ResultsError
    from scalehp.results.schema import column_name, metric_column, metric_names, param_names
    from scalehp.results.store import read_results

    results = read_results(run)
    trials = feasible(results.trials, results.plans)  # (constraints not met: off the front)
    chosen = {}
    for objective in objectives:
        name, _, mode = objective.rpartition(":")
        if not name or mode not in ("min", "max"):
            raise ResultsError(f"--objective {objective!r}: write METRIC:min or METRIC:max")
        chosen[name if name == "best_value" else metric_column(trials, name) or column_name("metric", name)] = mode
    front = pareto_front(trials, chosen)
    params = [c for c in front.columns if c.startswith("param_") and front[c].notna().any()]
    frame = front[["run_id", "trial_id", *chosen, *params]]
    if fmt == "table":
        shut = len(results.trials) - len(trials)
        click.echo(
            f"{len(front)} of {len(results.trials)} trials on the Pareto front of {', '.join(objectives)}"
            + (f" ({shut} left out: a constraint not met at their last report)" if shut else "")
        )
        names = {**metric_names(trials), **param_names(trials)}
        frame = frame.rename(columns=lambda c: names.get(c) or c.removeprefix("param_"))
    print_table(frame_rows(frame), fmt)
