"""The ``scalehp`` command line: the only place that prints.

Exit codes: 0 success, 1 a run or results error, 2 an invalid experiment or usage error.
``--debug`` (or ``SCALEHP_DEBUG=1``) shows full tracebacks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from scalehp.errors import RunError, ScalehpError, SpecError

# ---------------------------------------------------------------------------
# Output helpers


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if (abs(value) >= 1e-3 or value == 0) else f"{value:.3e}"
    return str(value)


def _print_table(rows: list[dict[str, Any]], fmt: str = "table") -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        if fmt == "table":
            click.echo("(no rows)")
        return
    columns = list(rows[0])
    if fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def _frame_rows(frame: Any) -> list[dict[str, Any]]:
    rows = frame.to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


_FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)


def _load(path: str):  # noqa: ANN202
    from scalehp.compiler import compile_plan
    from scalehp.spec import load_experiment

    return compile_plan(load_experiment(path))


# ---------------------------------------------------------------------------
# Commands


class _Group(click.Group):
    """Turns scalehp errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = os.environ.get("SCALEHP_DEBUG") == "1" or "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except SpecError as exc:
            if debug:
                raise
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(2)
        except ScalehpError as exc:
            if debug:
                raise
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="scalehp")
def main(debug: bool) -> None:
    """Declarative hyperparameter tuning on Ray Tune, with every result in Parquet.

    \b
    scalehp validate experiments/digits_asha.yaml
    scalehp plan experiments/digits_asha.yaml
    scalehp run experiments/digits_asha.yaml
    scalehp results show results/digits-mlp-asha
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check experiment files without starting Ray."""
    failed = 0
    for path in files:
        try:
            plan = _load(path)
        except SpecError as exc:
            click.secho(f"error: {exc}", err=True, fg="red")
            failed += 1
            continue
        click.echo(f"ok: {path} ({plan.name}, {plan.trials} trials)")
        for warning in plan.warnings:
            click.secho(f"warning: {path}: {warning}", err=True, fg="yellow")
    if failed:
        raise SystemExit(2)


@main.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editors)."""
    from scalehp.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def plan(file: str, fmt: str) -> None:
    """Show what a run of FILE would do, without starting Ray."""
    compiled = _load(file)
    if fmt == "json":
        click.echo(json.dumps(compiled.to_dict(), indent=2, default=str))
        return
    for line in describe_plan(compiled):
        click.echo(line)


def describe_plan(plan: Any) -> list[str]:
    """The plan as lines of text (what ``scalehp plan`` prints)."""
    exp = plan.experiment
    res = exp.resources
    per_trial = f"{res.cpu:g} CPU" + (f", {res.gpu:g} GPU" if res.gpu else "") + "".join(
        f", {v:g} {k}" for k, v in res.custom.items()
    )
    at_once = f"{plan.concurrency} at a time" if plan.concurrency else "as many at a time as resources allow"
    grid = f" x {plan.grid_points} grid points" if plan.grid_points > 1 else ""
    searcher = plan.searcher
    if exp.search.algorithm in ("hyperopt", "optuna"):
        first = exp.search.initial_points or (20 if exp.search.algorithm == "hyperopt" else 10)
        searcher += f", first {first} configs at random"
    searcher += f", seed {exp.seed}" if exp.seed is not None else ", unseeded"
    lines = [
        f"experiment  {exp.name}  ({exp.source}, digest {plan.digest})",
        f"trainable   {exp.trainable}",
        f"metric      {exp.metric.name} ({exp.metric.mode})",
        f"trials      {plan.trials} ({exp.budget.samples} samples{grid}), {at_once}, {per_trial} each",
        f"budget      {exp.budget.max_steps} steps per trial at most"
        + (f", run stops after {exp.budget.time_limit:g} s" if exp.budget.time_limit else ""),
        f"searcher    {searcher}",
    ]
    if plan.scheduler == "asha":
        o = plan.scheduler_options
        lines.append(
            f"scheduler   asha: grace {o['grace_steps']} steps, reduction factor {o['reduction_factor']:g}, "
            f"{o['brackets']} bracket{'s' if o['brackets'] > 1 else ''}"
        )
    else:
        lines.append("scheduler   fifo: every trial runs to the end")
    lines.append("space")
    width = max(len(n) for n in exp.space)
    for name, param in exp.space.items():
        lines.append(f"  {name.ljust(width)}  {param.describe()}")
    if plan.rungs:
        lines.append("rungs       step  trials reaching it (synchronous halving; ASHA may promote a few more)")
        for rung in plan.rungs:
            lines.append(f"            {str(rung.step).rjust(4)}  {rung.trials}")
        saved = 1 - plan.expected_steps / plan.step_budget
        lines.append(
            f"steps       {plan.step_budget} at most, about {plan.expected_steps} expected ({saved:.0%} saved by early stopping)"
        )
    else:
        lines.append(f"steps       {plan.step_budget}")
    lines.append(f"results     {exp.results}/{exp.name}/<run id>/")
    for warning in plan.warnings:
        lines.append(f"warning     {warning}")
    return lines


def _progress_printer(quiet: bool) -> Callable[[Any], None] | None:
    if quiet:
        return None
    tty = sys.stderr.isatty()
    state = {"last": -1.0}

    def show(p: Any) -> None:
        minutes, seconds = divmod(int(p.elapsed_s), 60)
        best = f"  best {p.metric} {_fmt(p.best)} ({p.best_trial})" if p.best is not None else ""
        text = (
            f"[{minutes:02d}:{seconds:02d}] {p.done}/{p.trials} done "
            f"({p.completed} completed, {p.stopped} stopped, {p.errors} errors), {p.running} running{best}"
        )
        if tty:
            click.echo("\r" + text.ljust(100), nl=False, err=True)
        elif p.elapsed_s - state["last"] >= 10 or p.done == p.trials:
            state["last"] = p.elapsed_s
            click.echo(text, err=True)

    return show


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--address", default=None, help="Ray cluster address; default: a fresh local Ray.")
@click.option("--results", default=None, type=click.Path(file_okay=False), help="Results root (overrides the file).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display; print only the summary.")
@click.option("--verbose", "-v", is_flag=True, help="Show Ray's logs and the trials' output.")
def run(file: str, address: str | None, results: str | None, quiet: bool, verbose: bool) -> None:
    """Run the experiment in FILE on Ray Tune; results go to Parquet."""
    from scalehp.runner import run as run_plan

    compiled = _load(file)
    for warning in compiled.warnings:
        click.secho(f"warning: {warning}", err=True, fg="yellow")
    if not quiet:
        click.echo(f"running {compiled.name}: {compiled.trials} trials, {compiled.searcher}, {compiled.scheduler}", err=True)
    summary = run_plan(compiled, address=address, results=results, on_progress=_progress_printer(quiet), verbose=verbose)
    if not quiet and sys.stderr.isatty():
        click.echo("", err=True)
    _print_summary(summary)


def _print_summary(summary: Any) -> None:
    click.echo(
        f"run {summary.run_id}: {summary.trials} trials in {summary.elapsed_s:.1f} s "
        f"({summary.completed} completed, {summary.stopped} stopped early, {summary.errors} errors)"
    )
    if summary.best_trial is None:
        click.echo("no trial reported the metric")
    else:
        click.echo(f"best trial {summary.best_trial}: {summary.metric} {_fmt(summary.best_value)} ({summary.mode})")
        click.echo("  params   " + ", ".join(f"{k}={_fmt(v)}" for k, v in summary.best_params.items()))
        click.echo("  at end   " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(summary.best_metrics.items())))
    click.echo(f"tables    {summary.path}/{{trials,reports,events}}/*.parquet")
    click.echo(f"next      scalehp results show {summary.path}")


@main.command(name="try")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=None, help="Seed for sampling the config (default: the file's seed).")
@click.option("--steps", type=int, default=None, help="Steps to run (default: budget.max_steps).")
def try_(file: str, seed: int | None, steps: int | None) -> None:
    """Run one sampled config of FILE in this process, without Ray, to debug the trainable."""
    from scalehp.space import sample_config
    from scalehp.trial import LocalTrial, load_trainable, trial_seed

    compiled = _load(file)
    exp = compiled.experiment
    train, kind = load_trainable(exp.trainable, source=exp.source, line=exp.line_of("trainable"))
    if kind != "scalehp":
        raise SpecError(
            "a plain Ray Tune function (config) needs Ray: use 'scalehp run'; 'try' runs (config, trial) trainables",
            source=exp.source, path="trainable", line=exp.line_of("trainable"),
        )
    config = sample_config(exp.space, seed if seed is not None else exp.seed)
    click.echo("config  " + ", ".join(f"{k}={_fmt(v)}" for k, v in config.items()))

    def show(row: dict[str, Any]) -> None:
        click.echo(f"step {row['step']:>4}  " + "  ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "step"))

    max_steps = min(steps, exp.budget.max_steps) if steps else exp.budget.max_steps
    trial = LocalTrial(max_steps=max_steps, metric=exp.metric.name, seed=trial_seed(exp.seed, 0), on_report=show)
    try:
        train(config, trial)
    except Exception as exc:  # noqa: BLE001 - the user's code failed: show it, exit 1
        import traceback

        traceback.print_exc()
        raise RunError(f"the trainable raised {exc.__class__.__name__}: {exc}") from None
    click.echo(f"{len(trial.reports)} reports; last {exp.metric.name} = {_fmt(trial.reports[-1][exp.metric.name]) if trial.reports else '-'}")


@main.group()
def results() -> None:
    """List and show results (Parquet tables) of runs."""


@results.command(name="ls")
@click.argument("root", default="results", type=click.Path(file_okay=False))
@_FORMAT
def results_ls(root: str, fmt: str) -> None:
    """List the runs under ROOT (a results root or an experiment folder)."""
    from scalehp.analysis.tables import runs
    from scalehp.results.store import read_results

    _print_table(_frame_rows(runs(read_results(root))), fmt)


@results.command(name="show")
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--top", type=int, default=10, show_default=True, help="Rows to show (0: all).")
@_FORMAT
def results_show(run: str, top: int, fmt: str) -> None:
    """Leaderboard of RUN (a run folder; an experiment folder shows all its runs)."""
    from scalehp.analysis.tables import leaderboard
    from scalehp.results.store import read_results

    res = read_results(run)
    metric, mode = res.metric()
    board = leaderboard(res.trials, mode, top or None)
    params = [c for c in board.columns if c.startswith("param_")]
    metrics = [c for c in board.columns if c.startswith("metric_")]
    columns = ["rank", "trial_id", "status", "steps", "best_value", *params, *metrics]
    if len(res.runs) > 1:
        columns.insert(1, "run_id")
    frame = board[columns].rename(columns={"best_value": f"best_{metric}"})
    if fmt == "table":
        frame = frame.rename(columns=lambda c: c.removeprefix("param_").removeprefix("metric_"))
        click.echo(f"{len(res.trials)} trials, ranked by best {metric} ({mode}); params, then metrics at the last step")
    _print_table(_frame_rows(frame), fmt)


if __name__ == "__main__":  # pragma: no cover
    main()
