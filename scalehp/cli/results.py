"""Commands on results: ``scalehp results ls|show``."""

from __future__ import annotations

import click

from scalehp.cli import FORMAT, frame_rows, main, print_table


@main.group()
def results() -> None:
    """List and show results (Parquet tables) of runs."""


@results.command(name="ls")
@click.argument("root", default="results", type=click.Path(file_okay=False))
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
    from scalehp.analysis.pareto import objectives, pareto_front
    from scalehp.analysis.tables import leaderboard
    from scalehp.results.store import read_results

    res = read_results(run)
    metric, mode = res.metric()
    several = len({tuple(objectives(plan)) for plan in res.plans.values()} - {((metric, mode),)}) > 0
    trials = res.trials
    if several:  # several metrics: mark the trials no other trial beats on all of them
        front = pareto_front(res)
        trials = trials.assign(pareto=trials["trial_id"].isin(front["trial_id"]).map({True: "yes", False: ""}))
    board = leaderboard(trials, mode, top or None)
    params = [c for c in board.columns if c.startswith("param_")]
    metrics = [c for c in board.columns if c.startswith("metric_")]
    columns = ["rank", "trial_id", "status", "steps", "best_value", *(["pareto"] if several else []), *params, *metrics]
    if len(res.runs) > 1:
        columns.insert(1, "run_id")
    frame = board[columns].rename(columns={"best_value": f"best_{metric}"})
    if fmt == "table":
        frame = frame.rename(columns=lambda c: c.removeprefix("param_").removeprefix("metric_"))
        click.echo(f"{len(res.trials)} trials, ranked by best {metric} ({mode}); params, then metrics at the last step")
        if several:
            names = ", ".join(f"{n} ({m})" for n, m in objectives(next(iter(res.plans.values()))))
            click.echo(f"several metrics: {names}; pareto = on the Pareto front (metrics at the last step)")
    print_table(frame_rows(frame), fmt)
