"""Experiment -> Plan: defaults, cross-field checks and a preview of the budget.

The plan is everything the runner needs and everything ``scalehp plan`` shows, decided
before Ray starts: how many trials, which searcher and scheduler with which options,
ASHA's rungs, the step budget, the Parquet column of every param and declared metric,
and when the run ends early (``metric.goal``, ``failure.max_failed_trials``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from scalehp import schedulers
from scalehp.defaults import initial_points
from scalehp.results.schema import ColumnMap, column_name, param_type
from scalehp.schedulers.base import Bracket, Rung, Settings
from scalehp.space import Param, flatten_space, is_conditional
from scalehp.spec import Experiment, SpecError

MODEL_BASED = ("hyperopt", "optuna")
_OPTUNA_VALUES = (type(None), bool, int, float, str)
_RANGES = ("float", "int", "normal", "lognormal")  # kinds a grid search cannot enumerate
_GAUSSIANS = ("normal", "lognormal")  # kinds optuna has no distribution for
_CATEGORICAL = ("choice", "conditional", "count")  # kinds CMA-ES cannot model


@dataclass(frozen=True)
class Plan:
    """A compiled experiment: what will run, decided before any trial starts."""

    experiment: Experiment
    digest: str
    trials: int
    grid_points: int
    searcher: str
    scheduler: str
    scheduler_options: Settings  # the scheduler's typed options (scalehp.schedulers.<name>)
    concurrency: int | None
    rungs: tuple[Rung, ...] = ()
    step_budget: int = 0  # steps if no trial were ever stopped early
    expected_steps: int = 0  # steps under the scheduler's expected early stopping
    columns: dict[str, str] = field(default_factory=dict)  # param name -> Parquet column
    warnings: tuple[str, ...] = ()
    sampler: str | None = None  # optuna's sampler: tpe | cmaes | nsga2 | qmc | gp
    warm_start: tuple[dict[str, Any], ...] = ()  # earlier trials seeding the search: config, values, run_id, trial_id
    brackets: tuple[Bracket, ...] = ()  # hyperband
    perturbation_steps: tuple[int, ...] = ()  # pbt/pb2: steps at which a trial can be exploited
    keep_checkpoints: int | None = 2  # per trial; None keeps all
    metric_columns: dict[str, str] = field(default_factory=dict)  # declared metric name -> Parquet column
    runtime: str = "tune"  # tune | swarm
    batch_size: int | None = None  # swarm: configs handed to a worker at a time
    vectorized: bool = False  # swarm: the trainable evaluates a list of configs at once

    @property
    def name(self) -> str:
        return self.experiment.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form, as written to ``plan.json``."""
        data = asdict(self)
        data["experiment"] = self.experiment.to_dict()
        data["scheduler_options"] = self.scheduler_options.to_dict()
        data["rungs"] = [asdict(r) for r in self.rungs]
        data["warnings"] = list(self.warnings)
        data["warm_start"] = list(self.warm_start)
        data["brackets"] = [{**asdict(b), "rungs": list(b.rungs)} for b in self.brackets]
        data["perturbation_steps"] = list(self.perturbation_steps)
        return data


def _digest(experiment: Experiment) -> str:
    text = json.dumps(experiment.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sampler(experiment: Experiment) -> str | None:
    search = experiment.search
    if search.algorithm != "optuna":
        if search.sampler is not None:
            raise experiment.error("search.sampler", f"only optuna takes a sampler, not {search.algorithm}")
        return None
    return search.sampler or ("nsga2" if len(experiment.objectives) > 1 else "tpe")


def _node_problem(node: Any, space: dict[str, Any], algorithm: str, sampler: str | None) -> str | None:
    """Why ``algorithm`` (optuna with ``sampler``) cannot search this param of ``space``, or None."""
    param = node.param
    searcher = f"optuna {sampler}" if sampler else algorithm
    if algorithm == "grid" and param.kind in _RANGES:
        return f"grid search cannot enumerate a {param.kind} range; give {{grid: [...]}} values or use search.algorithm random"
    if algorithm == "grid" and param.nested:
        return f"grid search cannot enumerate the conditional param {node.name!r}; use search.algorithm random, hyperopt or optuna"
    if algorithm in MODEL_BASED and param.kind == "grid":
        return f"{algorithm} cannot search a grid param; write {{choice: [...]}} or use search.algorithm random or grid"
    if algorithm == "random" and param.kind == "grid" and is_conditional(space):
        return "random search of a conditional space cannot also walk a grid; write {choice: [...]} instead"
    if algorithm == "random" and param.kind == "grid" and any(p.kind == "lognormal" for p in space.values()):
        return "random search with a lognormal param cannot also walk a grid; write {choice: [...]} instead"
    if algorithm == "optuna":
        if param.kind in _GAUSSIANS:
            return (
                f"optuna has no {param.kind} distribution for {node.name!r}; use search.algorithm hyperopt "
                "or random, or a {float: [low, high]} range"
            )
        if param.kind == "float" and param.log and param.step:
            return f"{searcher} cannot search float {node.name!r} on a log scale with a step"
        if param.kind == "choice" and not all(isinstance(o, _OPTUNA_VALUES) for o in param.options):
            return f"{searcher} can only choose among numbers, strings, booleans and null; {node.name!r} lists a list or mapping"
        if sampler == "cmaes" and param.kind in _CATEGORICAL:
            return f"optuna cmaes searches numbers only and cannot model the {param.kind} param {node.name!r}; use search.sampler tpe"
    return None


def searcher_problem(space: dict[str, Any], algorithm: str, sampler: str | None = None) -> str | None:
    """Why ``algorithm`` (optuna with ``sampler``) cannot search ``space``, a space as an experiment
    file writes it (plain data), or None when it can: the compiler's own rule, for callers that
    choose a searcher (the importers); an invalid space is no searcher's problem here (None)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        params = TypeAdapter(dict[str, Param]).validate_python(space)
    except ValidationError:
        return None
    for node in flatten_space(params):
        problem = _node_problem(node, params, algorithm, sampler)
        if problem is not None:
            return problem
    return None


def _check_searcher(experiment: Experiment, sampler: str | None) -> None:
    """Every param kind the chosen searcher cannot express is an error naming the param and the searcher."""
    algorithm = experiment.search.algorithm
    searcher = f"optuna {sampler}" if sampler else algorithm
    for node in flatten_space(experiment.space):
        problem = _node_problem(node, experiment.space, algorithm, sampler)
        if problem is not None:
            raise experiment.error(node.path, problem)
    if experiment.search.initial_points is not None and algorithm not in MODEL_BASED:
        raise experiment.error(
            "search.initial_points", f"only model-based searchers take initial_points, not {algorithm}"
        )
    if len(experiment.objectives) > 1:
        if algorithm != "optuna" or sampler == "cmaes":
            raise experiment.error(
                "metric",
                f"{searcher} optimises one metric; for several use search.algorithm optuna (sampler nsga2, tpe or gp)",
            )
        if experiment.scheduler.name != "fifo":
            raise experiment.error(
                "scheduler",
                f"the {experiment.scheduler.name} scheduler ranks trials by one metric; several metrics need scheduler fifo",
            )
    if experiment.search.warm_start is not None and algorithm not in MODEL_BASED:
        raise experiment.error(
            "search.warm_start", f"{algorithm} search learns nothing from earlier results; use hyperopt or optuna"
        )


def _columns(experiment: Experiment) -> dict[str, str]:
    columns: dict[str, str] = {}
    taken: dict[str, str] = {}
    types: dict[str, Any] = {}
    first: dict[str, Any] = {}
    for node in flatten_space(experiment.space):
        kind = param_type(node.param)
        if node.name in columns:  # the same sub-param under another option: one column, one type
            if node.parent is None or first[node.name].parent != node.parent:
                raise experiment.error(node.path, f"param name {node.name!r} is used twice; rename one")
            if types[node.name] != kind:
                raise experiment.error(
                    node.path,
                    f"param {node.name!r} is declared twice with different column types ({types[node.name]} and {kind})",
                )
            continue
        column = column_name("param", node.name)
        if column.lower() in taken:  # SQL (DuckDB) does not tell param_lr from param_LR
            other = taken[column.lower()]
            if columns[other] == column:
                message = f"param {node.name!r} and {other!r} both map to column {column!r}; rename one"
            else:
                message = (
                    f"params {other!r} and {node.name!r} map to columns {columns[other]!r} and {column!r}, "
                    "which SQL does not tell apart; rename one"
                )
            raise experiment.error(node.path, message)
        taken[column.lower()] = node.name
        columns[node.name] = column
        types[node.name] = kind
        first[node.name] = node
    return columns


def _check_ends(experiment: Experiment, trials: int, warnings: list[str]) -> None:
    """``metric.goal`` and ``failure.max_failed_trials``: what they cannot mean together with the rest."""
    for index, metric in enumerate(experiment.objectives[1:], start=1):
        if metric.goal is not None:
            raise experiment.error(
                f"metric.{index}.goal",
                f"a goal ends the run on the first metric only; move it to {experiment.metric.name!r} or drop it",
            )
    failure = experiment.failure
    if failure.max_failed_trials is not None:
        if failure.fail_fast:
            raise experiment.error(
                "failure.max_failed_trials",
                "fail_fast already ends the run at the first failed trial; drop max_failed_trials or fail_fast",
            )
        if failure.max_failed_trials > trials:
            warnings.append(
                f"failure.max_failed_trials ({failure.max_failed_trials}) is more than the {trials} trials: it never ends the run"
            )


def _metric_columns(experiment: Experiment) -> dict[str, str]:
    """The declared metrics' columns, claimed before any reported name (see ``results/schema.py``)."""
    names = [m.name for m in experiment.objectives] + list(experiment.constraint_names)
    readable: dict[str, str] = {}
    for name in names:
        column = column_name("metric", name)
        other = readable.get(column.lower())
        if other is not None and column_name("metric", other) != column:  # equal columns get a hash; case cannot
            raise experiment.error(
                "metric",
                f"metrics {other!r} and {name!r} map to columns that differ only in case, which SQL does not "
                "tell apart; rename one",
            )
        readable.setdefault(column.lower(), name)
    columns = ColumnMap("metric").add(names)
    return {name: columns[name] for name in names}


SWARM_SCHEDULERS = ("fifo", "asha", "hyperband")
CONSTRAINED_SAMPLERS = ("tpe", "nsga2", "gp")  # optuna samplers that model Trial.set_constraint values
GP_LIMIT = 1_000  # trials above which optuna's GP sampler spends more on each suggestion than a trial takes
SWARM_MODEL_LIMIT = 10_000  # trials above which a model-based searcher, not the workers, sets a swarm's pace
TUNE_ADVICE = 20_000  # trials above which plan points a Tune run to the swarm runtime


def _check_runtime(experiment: Experiment, trials: int, warnings: list[str]) -> None:
    """What the swarm runtime cannot run, at the key; advice where the other runtime fits better."""
    scheduler, algorithm = experiment.scheduler.name, experiment.search.algorithm
    if experiment.runtime_name == "tune":
        if trials > TUNE_ADVICE and scheduler in SWARM_SCHEDULERS:
            warnings.append(
                f"{trials:,} trials through Ray Tune's controller: about 20 ms of driver time and 70 KB of driver "
                f"memory each (~{trials * 0.02 / 60:.0f} min, ~{trials * 70 / 1e6:.1f} GB); runtime: swarm runs "
                "many short trials in batches on Ray workers"
            )
        return
    if scheduler not in SWARM_SCHEDULERS:
        why = {
            "pbt": "an exploit continues another trial's checkpoint",
            "pb2": "an exploit continues another trial's checkpoint",
            "median_stopping": "it decides at every step of every trial, a round trip per report",
        }[scheduler]
        raise experiment.error(
            "scheduler",
            f"the swarm runtime runs {', '.join(SWARM_SCHEDULERS)}, not {scheduler} ({why}); "
            "use runtime: tune for it",
        )
    if experiment.runtime.swarm.vectorized:
        if experiment.budget.max_steps != 1:
            raise experiment.error(
                "runtime.swarm.vectorized",
                f"a vectorized trainable returns one result per config: set budget.max_steps to 1 "
                f"(it is {experiment.budget.max_steps})",
            )
        if scheduler != "fifo":
            raise experiment.error("scheduler", f"a vectorized trainable runs one step per config: nothing for {scheduler} to stop; use fifo")
        if experiment.command is not None:
            raise experiment.error("runtime.swarm.vectorized", "a command runs one config at a time; give a Python trainable")
    if algorithm in MODEL_BASED and trials > SWARM_MODEL_LIMIT:
        warnings.append(
            f"{algorithm} models every finished trial for each suggestion: above {SWARM_MODEL_LIMIT:,} trials the "
            "searcher, not the workers, sets the pace; for more use search.algorithm random, grid or optuna "
            "with sampler qmc"
        )


def _grid_points(experiment: Experiment) -> int:
    points = 1
    for param in experiment.space.values():
        if param.kind == "grid" or (experiment.search.algorithm == "grid" and param.kind == "choice"):
            points *= len(param.finite_values())
    return points


def compile_plan(experiment: Experiment) -> Plan:
    """Check an experiment as a whole and compile it to a :class:`Plan`.

    Raises:
        SpecError: settings that are valid one by one but not together.
    """
    sampler = _sampler(experiment)
    _check_searcher(experiment, sampler)
    if experiment.command is not None:
        from scalehp.command import check as check_command

        check_command(experiment)
    columns = _columns(experiment)

    grid_points = _grid_points(experiment)
    trials = experiment.budget.samples * grid_points
    if trials > 1_000_000:
        raise experiment.error(
            "budget.samples", f"{trials} trials ({grid_points} grid points x samples) is more than 1,000,000"
        )

    warnings: list[str] = []
    _check_ends(experiment, trials, warnings)
    _check_runtime(experiment, trials, warnings)
    if sampler == "gp" and trials > GP_LIMIT:
        warnings.append(
            f"sampler gp fits a Gaussian process to every finished trial for each suggestion (cubic in trials): "
            f"above {GP_LIMIT:,} trials each suggestion slows down; sampler tpe scales to more"
        )
    if experiment.constraints and sampler not in CONSTRAINED_SAMPLERS:
        warnings.append(
            f"{'optuna ' + sampler if sampler else experiment.search.algorithm} does not model constraints: they decide "
            "which reports count (a trial's best, the goal, the Pareto front), not which configs are tried; optuna's "
            f"{', '.join(CONSTRAINED_SAMPLERS)} samplers model them"
        )
    searched = [p for p in experiment.space.values() if p.searched]
    if not searched and experiment.budget.samples > 1:
        warnings.append("every param is a constant: all trials run the same config")
    algorithm = experiment.search.algorithm
    if algorithm in MODEL_BASED:
        initial = initial_points(algorithm, experiment.search.initial_points)
        if trials <= initial:
            warnings.append(
                f"{algorithm} samples its first {initial} configs at random; with {trials} trials it never models the space"
            )
    concurrency = experiment.concurrency
    if concurrency is not None and concurrency > trials:
        concurrency = trials

    max_steps = experiment.budget.max_steps
    step_budget = trials * max_steps
    scheduler = experiment.scheduler.name
    planned = schedulers.preview(experiment, trials)
    warnings += planned.warnings
    if scheduler in schedulers.POPULATION:
        concurrency = None  # the whole population is created; Ray takes turns as resources allow

    searcher = {
        "random": "random sampling",
        "grid": "grid (every combination)",
        "hyperopt": "hyperopt TPE",
        "optuna": {"tpe": "optuna TPE", "cmaes": "optuna CMA-ES", "nsga2": "optuna NSGA-II", "qmc": "optuna quasi-random (scrambled Sobol)", "gp": "optuna GP (Gaussian-process BO)"}.get(sampler or ""),
    }[algorithm]
    warm: tuple[dict[str, Any], ...] = ()
    if experiment.search.warm_start is not None:
        from scalehp.warmstart import carried_over

        warm, skipped = carried_over(experiment)
        if skipped:
            warnings.append(f"warm start: {skipped} earlier trials do not fit this space or lack the metric; left out")
    return Plan(
        experiment=experiment,
        digest=_digest(experiment),
        trials=trials,
        grid_points=grid_points,
        searcher=searcher,
        scheduler=scheduler,
        scheduler_options=planned.settings,
        concurrency=concurrency,
        rungs=planned.rungs,
        step_budget=step_budget,
        expected_steps=planned.expected_steps,
        columns=columns,
        warnings=tuple(warnings),
        sampler=sampler,
        warm_start=warm,
        metric_columns=_metric_columns(experiment),
        brackets=planned.brackets,
        perturbation_steps=planned.perturbation_steps,
        keep_checkpoints=planned.keep_checkpoints,
        runtime=experiment.runtime_name,
        batch_size=experiment.runtime.swarm.batch_size if experiment.runtime_name == "swarm" else None,
        vectorized=experiment.runtime_name == "swarm" and bool(experiment.runtime.swarm.vectorized),
    )


__all__ = ["Bracket", "Plan", "Rung", "compile_plan", "SpecError"]
