"""Commands on experiment files: validate, schema, plan, run, try."""

from __future__ import annotations

import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from scalehp import schedulers
from scalehp.cli.common import escape, fmt_value, load_plan, main, print_error, print_warning
from scalehp.command import experiment_trainable
from scalehp.defaults import DASHBOARD_PORT, initial_points
from scalehp.errors import RunError, RunInterrupted, SpecError


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
def validate(files: tuple[str, ...]) -> None:
    """Check experiment files (and that their trainables import, or their commands' programs exist) without starting Ray."""
    failed = 0
    for path in files:
        try:
            plan = load_plan(path)
            exp = plan.experiment
            experiment_trainable(exp)
        except SpecError as exc:
            print_error(exc)
            failed += 1
            continue
        click.echo(escape(f"ok: {path} ({plan.name}, {plan.trials} trials)"))
        for warning in plan.warnings:
            print_warning(f"{path}: {warning}")
    if failed:
        raise SystemExit(2)


@main.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editors)."""
    from scalehp.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("file", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--suggestions",
    type=int,
    default=3,
    show_default=True,
    help="First configs of an adaptive searcher to show, computed in this process (0: none).",
)
def plan(file: str, fmt: str, suggestions: int) -> None:
    """Show what a run of FILE would do, without starting Ray."""
    compiled = load_plan(file)
    first = _first_suggestions(compiled, suggestions)
    if fmt == "json":
        data = compiled.to_dict()
        if first:
            data["first_suggestions"] = first
        click.echo(json.dumps(data, indent=2, default=str))
        return
    for line in describe_plan(compiled, first):
        click.echo(escape(line))


def _first_suggestions(plan: Any, count: int) -> list[dict[str, Any]]:
    if count <= 0:
        return []
    from scalehp.runner.search import first_suggestions, owns_space

    if not owns_space(plan.experiment):
        return []
    return first_suggestions(plan, min(count, plan.trials))


def _config_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}" for k, v in config.items())


def _space_lines(plan: Any) -> list[str]:
    from scalehp.space import enumerate_configs, flatten_space, space_size

    exp = plan.experiment
    nodes = flatten_space(exp.space)
    lines = ["space"]
    width = max(len(n.name) for n in nodes)
    by_label = {n.label: n for n in nodes}
    for node in nodes:
        depth = len(node.when)
        when = ""
        if node.when:
            name, allowed = node.when[-1]
            counted = by_label[node.parent].param.kind == "count"
            when = f"  (when {name} >= {min(allowed)})" if counted else f"  (when {name} = {allowed[0]})"
        lines.append(f"  {('  ' * depth + node.name).ljust(width + 2 * depth)}  {node.param.describe()}{when}")
    if exp.search.algorithm == "grid":
        lines.append(
            f"grid        {plan.grid_points} points, each run {exp.budget.samples} time(s) (Ray's grid: samples x grid points)"
        )
    elif plan.grid_points > 1:
        lines.append(
            f"grid        {plan.grid_points} points, {exp.budget.samples} random samples of the other params at each"
            " (Ray's grid: samples x grid points)"
        )
    size = space_size(exp.space)
    if size is not None:
        count = str(size) if size < 10**15 else f"about 10^{math.floor(math.log10(size))}"  # may be 10^20000
        lines.append(f"finite      {count} distinct configs" + (f"; the first {min(size, 10)}:" if size else ""))
        for config in enumerate_configs(exp.space, 10):
            lines.append(f"            {_config_text(config)}")
    return lines


def describe_plan(plan: Any, suggestions: list[dict[str, Any]] | None = None) -> list[str]:
    """The plan as lines of text (what ``scalehp plan`` prints)."""
    exp = plan.experiment
    res = exp.resources
    per_trial = (
        f"{res.cpu:g} CPU"
        + (f", {res.gpu:g} GPU" if res.gpu else "")
        + "".join(f", {v:g} {k}" for k, v in res.custom.items())
    )
    at_once = f"{plan.concurrency} at a time" if plan.concurrency else "as many at a time as resources allow"
    grid = f" x {plan.grid_points} grid points" if plan.grid_points > 1 else ""
    searcher = plan.searcher
    metric = ", ".join(f"{m.name} ({m.mode})" for m in exp.objectives)  # names exactly as written
    if len(exp.objectives) > 1:
        metric += "; several metrics: the Pareto front is the result, ranked by the first"
    if exp.search.algorithm in ("hyperopt", "optuna"):
        first = initial_points(exp.search.algorithm, exp.search.initial_points)
        searcher += f", first {first} configs at random"
    searcher += f", seed {exp.seed}" if exp.seed is not None else ", unseeded"
    lines = [
        f"experiment  {exp.name}  ({exp.source}, digest {plan.digest})",
        *_trainable_lines(plan),
        f"metric      {metric}",
        f"trials      {plan.trials} ({exp.budget.samples} samples{grid}), {at_once}, {per_trial} each",
        f"budget      {exp.budget.max_steps} steps per trial at most"
        + (f", no trial starts after {exp.budget.soft_time_limit:g} s" if exp.budget.soft_time_limit else "")
        + (f", run stops after {exp.budget.time_limit:g} s" if exp.budget.time_limit else ""),
        f"searcher    {searcher}",
        _runtime_line(plan),
        *_ends_lines(plan),
    ]
    lines += schedulers.describe(plan)
    lines += _space_lines(plan)
    if suggestions:
        lines.append(
            f"suggests    first {len(suggestions)} configs (computed here; the run starts with these when seeded):"
        )
        for config in suggestions:
            lines.append(f"            {_config_text(config)}")
    if exp.search.warm_start is not None:
        lines.append(
            f"warm start  {len(plan.warm_start)} earlier trials carried over with their results"
            f" (best {exp.search.warm_start.top} of {', '.join(exp.search.warm_start.runs)}):"
        )
        for point in plan.warm_start[:10]:
            values = ", ".join(fmt_value(v) for v in point["values"])
            lines.append(
                f"            {values}  {point['run_id']}/{point['trial_id']}  {_config_text(point['config'])}"
            )
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


def _runtime_line(plan: Any) -> str:
    if plan.runtime == "swarm":
        workers = f"{plan.concurrency} workers" if plan.concurrency else "a worker per trial that resources allow at once"
        return (
            f"runtime     swarm: configs in batches of {plan.batch_size} on long-lived Ray workers ({workers}); "
            "a trial runs start to end, no checkpoints"
        )
    return "runtime     tune: each trial a Ray Tune trial (checkpoints, pauses, exploits)"


def _trainable_lines(plan: Any) -> list[str]:
    exp = plan.experiment
    if exp.command is None:
        return [f"trainable   {exp.trainable}"]
    from scalehp.command import expand, template
    from scalehp.space import flatten_space, sample_config

    command = exp.command
    written = command.run if isinstance(command.run, str) else shlex.join(template(command))
    lines = [f"command     {written}"]
    config = sample_config(exp.space, exp.seed)
    argv = expand(command, config, "trial_00000", params=[n.name for n in flatten_space(exp.space)])
    lines.append(f"  e.g.      {shlex.join(argv)}")
    where = f"in {command.cwd}" if command.cwd else "in the folder scalehp runs in"
    env = "".join(f", {k}={v}" for k, v in command.env.items())
    reads = f"metric_format {command.metric_format!r}" if command.metric_format else "name=value pairs or JSON lines"
    lines.append(f"  runs      {where}{env}; reports: lines holding {exp.metric.name} ({reads})")
    return lines


def _ends_lines(plan: Any) -> list[str]:
    """When the run ends before every trial is done, and where each declared metric is stored."""
    exp = plan.experiment
    lines = []
    renamed = {n: c for n, c in plan.metric_columns.items() if c != f"metric_{n}"}
    if renamed:
        lines.append("columns     " + ", ".join(f"{n} -> {c}" for n, c in renamed.items()))
    ends = []
    if exp.metric.goal is not None:
        sign = "<=" if exp.metric.mode == "min" else ">="
        ends.append(f"a trial reaches {exp.metric.name} {sign} {fmt_value(exp.metric.goal)} (metric.goal)")
    if exp.failure.max_failed_trials is not None:
        cap = exp.failure.max_failed_trials
        ends.append(f"{cap} trial{'s' if cap > 1 else ''} have failed (failure.max_failed_trials)")
    if exp.failure.fail_fast:
        ends.append("a trial fails (failure.fail_fast)")
    if ends:
        retries = exp.failure.max_retries
        lines.append("ends early  once " + ", or once ".join(ends))
        if exp.failure.max_failed_trials is not None and retries:
            lines.append(
                f"            (a trial has failed once its {retries} retr{'y' if retries == 1 else 'ies'} failed too)"
            )
    return lines


def _progress_printer(quiet: bool) -> Callable[[Any], None] | None:
    if quiet:
        return None
    tty = sys.stderr.isatty()
    state = {"last": -1.0}

    def show(p: Any) -> None:
        best = f"  best {p.metric} {fmt_value(p.best)} ({p.best_trial})" if p.best is not None else ""
        rate = p.done / p.elapsed_s if p.elapsed_s > 0 else 0.0
        pace = f", {rate:,.0f}/s, ETA {_clock(max(0, p.trials - p.done) / rate)}" if rate and p.done < p.trials else ""
        text = (
            f"[{_clock(p.elapsed_s)}] {p.done:,}/{p.trials:,} done{pace} "
            f"({p.completed:,} completed, {p.stopped:,} stopped, {p.errors:,} errors"
            f"{f', {p.infeasible:,} infeasible' if getattr(p, 'infeasible', 0) else ''}), {p.running:,} running{best}"
        )
        if tty:
            click.echo("\r" + text.ljust(100), nl=False, err=True)
        elif p.elapsed_s - state["last"] >= 10 or p.done == p.trials:
            state["last"] = p.elapsed_s
            click.echo(text, err=True)

    return show


def _clock(seconds: float) -> str:
    """mm:ss, or h:mm:ss from an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


@main.command()
@click.argument("file", type=click.Path())
@click.option("--address", default=None, help="Ray cluster address; default: a fresh local Ray.")
@click.option("--results", default=None, type=click.Path(), help="Results root (overrides the file).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display; print only the summary.")
@click.option("--verbose", "-v", is_flag=True, help="Show Ray's logs and the trials' output.")
@click.option("--run-id", default=None, help="The run's id (as 'scalehp submit' chooses it); default: a new one.")
@click.option("--dashboard", is_flag=True, help="Serve the live dashboard of the results root on loopback while it runs.")
@click.option(
    "--dashboard-port", default=DASHBOARD_PORT, show_default=True, type=click.IntRange(0, 65535), help="Its port (0: any free one)."
)
def run(
    file: str,
    address: str | None,
    results: str | None,
    quiet: bool,
    verbose: bool,
    run_id: str | None,
    dashboard: bool,
    dashboard_port: int,
) -> None:
    """Run the experiment in FILE on Ray (Tune, or the swarm runtime); results go to Parquet."""
    from scalehp.runner import RUN_ID, check_kind
    from scalehp.runner import run as run_plan
    from scalehp.spec import check_results_root

    if run_id is not None and not RUN_ID.fullmatch(run_id):
        raise SpecError(f"{run_id!r} is not a run id (like '20260101-120000-0a1b')", source="--run-id")
    compiled = load_plan(file)
    exp = compiled.experiment
    if results is not None:
        try:
            check_results_root(results)
        except ValueError as exc:
            raise SpecError(str(exc), source="--results") from None
    check_kind(compiled, experiment_trainable(exp)[1])  # before any output
    stop_dashboard = _start_dashboard(results or exp.results, exp.name, dashboard_port) if dashboard else None
    for warning in compiled.warnings:
        print_warning(warning)
    if not quiet:
        click.echo(
            f"running {compiled.name}: {compiled.trials:,} trials, {compiled.searcher}, {compiled.scheduler}"
            + (f", swarm runtime (batches of {compiled.batch_size})" if compiled.runtime == "swarm" else ""),
            err=True,
        )
    try:
        summary = run_plan(
            compiled,
            address=address,
            results=results,
            on_progress=_progress_printer(quiet),
            verbose=verbose,
            run_id=run_id,
        )
    except RunInterrupted as stop:
        _interrupted(stop, quiet)
    finally:
        if stop_dashboard is not None:
            stop_dashboard()
    if not quiet and sys.stderr.isatty():
        click.echo("", err=True)
    _print_summary(summary)


def _start_dashboard(root: str, name: str, port: int):  # noqa: ANN202
    """``run --dashboard``: the dashboard of the experiment's runs under ``root`` (local, loopback) in a
    thread, this run and the ones before it; returns its stop function."""
    from scalehp.dashboard import Board, in_thread
    from scalehp.dashboard.server import cannot_listen
    from scalehp.results.sink import is_uri

    if is_uri(root):
        raise SpecError(
            f"--dashboard serves local results; for {root} run 'scalehp dashboard {root}/{name}' beside the run",
            source="--dashboard",
        )
    try:
        served = Path(str(root).removeprefix("file://")) / name
        url, stop = in_thread(Board(served, empty=True), "127.0.0.1", port)
    except OSError as exc:
        raise SpecError(cannot_listen(exc, "127.0.0.1", port, "--dashboard-port"), source="--dashboard-port") from None
    click.echo(f"dashboard   {url}", err=True)

    def stopped() -> None:
        stop()
        click.echo(f"dashboard   stopped with the run; 'scalehp dashboard {escape(str(served))}' serves it again", err=True)

    return stopped


@main.command()
@click.argument("run_dir")
@click.option("--address", default=None, help="Ray cluster address; default: a fresh local Ray.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display; print only the summary.")
@click.option("--verbose", "-v", is_flag=True, help="Show Ray's logs and the trials' output.")
def resume(run_dir: str, address: str | None, quiet: bool, verbose: bool) -> None:
    """Finish the run in RUN_DIR after its driver was killed (same run, same tables)."""
    from scalehp.runner import resume as resume_run

    if not quiet:
        click.echo(f"resuming {run_dir}", err=True)
    try:
        summary = resume_run(run_dir, address=address, on_progress=_progress_printer(quiet), verbose=verbose)
    except RunInterrupted as stop:
        _interrupted(stop, quiet)
    if not quiet and sys.stderr.isatty():
        click.echo("", err=True)
    _print_summary(summary)


def _interrupted(stop: Any, quiet: bool) -> NoReturn:
    """What a signal left: the summary of what is recorded, how to finish; exit 128 + the signal."""
    if not quiet and sys.stderr.isatty():
        click.echo("", err=True)
    _print_summary(stop.summary, interrupted=True)
    click.echo(f"interrupted: scalehp resume {shlex.quote(str(stop.summary.path))}", err=True)
    click.get_current_context().exit(128 + stop.signal)


def _print_summary(summary: Any, interrupted: bool = False, simulated: bool = False) -> None:
    unfinished = f", {summary.unfinished} unfinished" if summary.unfinished else ""
    unfinished = (f", {summary.infeasible} infeasible" if getattr(summary, "infeasible", 0) else "") + unfinished
    took = f"{summary.elapsed_s:.1f} s"
    if simulated:
        seconds = summary.elapsed_s
        took = f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else took
        took += " of simulated time"
    elif summary.trials >= 1000 and summary.elapsed_s > 0:
        took += f", {summary.trials / summary.elapsed_s:,.0f} trials/s"
    click.echo(
        f"run {summary.run_id}: {summary.trials} trial{'' if summary.trials == 1 else 's'} in {took} "
        f"({summary.completed} completed, {summary.stopped} stopped early, {summary.errors} errors{unfinished})"
    )
    if summary.ended:
        click.echo(f"ended     early: {summary.ended}")
    if summary.best_trial is None:
        click.echo("no trial reported the metric")
    else:
        click.echo(
            f"best trial {summary.best_trial}: {summary.metric} {fmt_value(summary.best_value)} ({summary.mode})"
        )
        click.echo("  params   " + ", ".join(f"{k}={fmt_value(v)}" for k, v in summary.best_params.items()))
        click.echo("  at end   " + ", ".join(f"{k}={fmt_value(v)}" for k, v in sorted(summary.best_metrics.items())))
    click.echo(f"tables    {summary.path}/{{trials,reports,events}}/*.parquet")
    if not interrupted:
        click.echo(f"next      scalehp results show {summary.path}")


@main.command(name="try")
@click.argument("file", type=click.Path())
@click.option("--seed", type=int, default=None, help="Seed for sampling the config (default: the file's seed).")
@click.option("--steps", type=int, default=None, help="Steps to run (default: budget.max_steps).")
def try_(file: str, seed: int | None, steps: int | None) -> None:
    """Run one sampled config of FILE in this process, without Ray, to debug the trainable."""
    from scalehp.space import sample_config
    from scalehp.trial import LocalTrial, trial_seed

    compiled = load_plan(file)
    exp = compiled.experiment
    train, kind = experiment_trainable(exp, echo=lambda line: click.secho(f"  | {line}", dim=True))
    if kind != "scalehp":
        raise SpecError(
            "a plain Ray Tune function (config) needs Ray: use 'scalehp run'; 'try' runs (config, trial) trainables",
            source=exp.source,
            path="trainable",
            line=exp.line_of("trainable"),
        )
    config = sample_config(exp.space, seed if seed is not None else exp.seed)
    click.echo("config  " + ", ".join(f"{k}={fmt_value(v)}" for k, v in config.items()))
    if exp.command is not None:
        from scalehp.command import expand, working_folder

        argv = expand(exp.command, config, "local", params=train.params)
        click.echo(f"command {shlex.join(argv)}  (in {working_folder(exp.command)})")

    def show(row: dict[str, Any]) -> None:
        click.echo(f"step {row['step']:>4}  " + "  ".join(f"{k}={fmt_value(v)}" for k, v in row.items() if k != "step"))

    max_steps = min(steps, exp.budget.max_steps) if steps else exp.budget.max_steps
    trial = LocalTrial(max_steps=max_steps, metric=exp.metric.name, seed=trial_seed(exp.seed, 0), on_report=show)
    try:
        train(config, trial)
    except Exception as exc:  # noqa: BLE001 - the user's code failed: show it, exit 1
        if exp.command is not None:  # the command's own error says it all
            raise RunError(str(exc).splitlines()[0]) from None
        import traceback

        traceback.print_exc()
        raise RunError(f"the trainable raised {exc.__class__.__name__}: {exc}") from None
    click.echo(
        f"{len(trial.reports)} reports; last {exp.metric.name} = {fmt_value(trial.reports[-1][exp.metric.name]) if trial.reports else '-'}"
    )


@main.command()
@click.argument("file", type=click.Path())
@click.option("--bench", required=True, help="Curves to simulate with: a scalehp results folder, or a bundled bank (digits-mlp, digits-cnn, nasbench201-cifar10, fcnet-naval_propulsion, hpobench-australian).")
@click.option("--workers", type=int, required=True, help="Trials at once.")
@click.option("--seeds", type=int, default=1, show_default=True, help="Runs with seeds seed, seed+1, ...")
@click.option("--hours", type=float, default=None, help="Simulated hours each run may take.")
@click.option("--results", default=None, type=click.Path(), help="Results root (overrides the file).")
@click.option("--no-decision-time", is_flag=True, help="Leave the searcher's and scheduler's own time out (identical rows per seed).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display; print only the summary.")
def simulate(
    file: str, bench: str, workers: int, seeds: int, hours: float | None, results: str | None, no_decision_time: bool, quiet: bool
) -> None:
    """Simulate the experiment in FILE over recorded learning curves, on a simulated clock."""
    from scalehp.compiler import compile_plan
    from scalehp.simulator import check
    from scalehp.simulator import simulate as simulate_plan
    from scalehp.simulator.curves import NEAREST, from_results, locate
    from scalehp.spec import check_results_root

    if not 1 <= seeds <= 10_000:
        raise SpecError(f"must be from 1 to 10,000, got {seeds}", source="--seeds")
    compiled = load_plan(file)
    check(compiled, workers, hours)
    if results is not None:
        try:
            check_results_root(results)
        except ValueError as exc:
            raise SpecError(str(exc), source="--results") from None
    curves = from_results(locate(bench), compiled)  # before anything is written
    exp = compiled.experiment
    for warning in compiled.warnings:
        print_warning(warning)
    if not quiet:
        click.echo(f"simulating {compiled.name} on {workers} workers over {curves.describe()}", err=True)
        click.echo(f"a config not in the table takes its {NEAREST}", err=True)
    base = exp.seed if exp.seed is not None else 0
    for offset in range(seeds):
        plan = compiled if seeds == 1 else compile_plan(exp.model_copy(update={"seed": base + offset}))
        summary = simulate_plan(
            plan,
            curves,
            workers=workers,
            hours=hours,
            results=results,
            decision_time=not no_decision_time,
            on_progress=_progress_printer(quiet),
        )
        if not quiet and sys.stderr.isatty():
            click.echo("", err=True)
        if seeds > 1:
            click.echo(f"seed {base + offset}:")
        _print_summary(summary, simulated=True)
