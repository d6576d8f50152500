"""Compile-time checks and previews for Hyperband, median stopping, PBT and PB2.

:func:`scheduler_plan` is called by :func:`scalehp.compiler.compile_plan` for these
schedulers. It checks the options against the rest of the experiment (every mistake is a
:class:`~scalehp.errors.SpecError` naming the key path), and returns the options the
runner needs plus what ``scalehp plan`` shows: Hyperband's brackets, PBT's perturbation
schedule and the checkpoint policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scalehp.space import ConstantParam, FloatParam, IntParam
from scalehp.spec import Experiment

POPULATION = ("pbt", "pb2")
MODEL_BASED = ("hyperopt", "optuna")


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: trials it starts with and the steps at which it halves."""

    index: int
    trials: int
    rungs: tuple[int, ...]  # steps at which the bracket keeps 1/reduction_factor of its trials


@dataclass(frozen=True)
class SchedulerPlan:
    """What the compiler adds to the plan for one of these schedulers."""

    options: dict[str, Any]
    expected_steps: int
    keep_checkpoints: int | None
    brackets: tuple[Bracket, ...] = ()
    perturbation_steps: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()


def mutations(experiment: Experiment) -> dict[str, Any]:
    """PBT/PB2: param name -> the distribution it is mutated from (a space param)."""
    name = experiment.scheduler.name
    options = experiment.scheduler.options
    mutate = options.mutate
    if isinstance(mutate, dict):
        return {key: (experiment.space.get(key) if value is None else value) for key, value in mutate.items()}
    return {key: experiment.space.get(key) for key in mutate} if name in POPULATION else {}


def _check_mutations(experiment: Experiment) -> dict[str, Any]:
    name = experiment.scheduler.name
    options = experiment.scheduler.options
    base = f"scheduler.{name}.mutate"
    if not options.mutate:
        raise experiment.error(base, "name at least one param to mutate")
    out = {}
    for key, param in mutations(experiment).items():
        path = f"{base}.{key}" if isinstance(options.mutate, dict) else base
        if key not in experiment.space:
            close = [n for n in experiment.space if n.lower() == key.lower()]
            hint = f" (did you mean {close[0]!r}?)" if close else f"; space has {', '.join(experiment.space)}"
            raise experiment.error(path, f"{key!r} is not a param of space{hint}")
        own = experiment.space[key]
        if isinstance(own, ConstantParam):
            raise experiment.error(
                path, f"{key!r} is a constant in space; give it a range or choice there to let {name} mutate it"
            )
        if isinstance(param, ConstantParam):
            raise experiment.error(path, f"{key!r}: a constant cannot be a distribution to mutate from")
        if name == "pb2" and not isinstance(param, (FloatParam, IntParam)):
            raise experiment.error(
                path, f"pb2 mutates float and int ranges only; {key!r} is {param.kind} (use pbt for choices)"
            )
        out[key] = param.describe()
    return out


def _population(experiment: Experiment, trials: int) -> SchedulerPlan:
    name = experiment.scheduler.name
    options = experiment.scheduler.options
    base = f"scheduler.{name}"
    max_steps = experiment.budget.max_steps
    if experiment.search.algorithm in MODEL_BASED:
        raise experiment.error(
            "search.algorithm",
            f"{name} cannot work with {experiment.search.algorithm}: Ray's {name} owns the configs of its "
            "population; use search.algorithm random or grid",
        )
    if not (0 < options.quantile <= 0.5):
        raise experiment.error(f"{base}.quantile", f"quantile must be in (0, 0.5], got {options.quantile:g}")
    if trials < 2:
        raise experiment.error("budget.samples", f"{name} needs a population of at least 2 trials, got {trials}")
    factors = getattr(options, "perturbation_factors", ())
    for i, factor in enumerate(factors):
        if not (factor > 0 and math.isfinite(factor)):
            raise experiment.error(f"{base}.perturbation_factors.{i}", f"factors must be > 0, got {factor}")
    mutate = _check_mutations(experiment)
    interval = options.interval_steps or max(1, max_steps // 4)
    burn_in = getattr(options, "burn_in_steps", 0)
    if interval >= max_steps:
        raise experiment.error(
            f"{base}.interval_steps",
            f"interval_steps ({interval}) is not below budget.max_steps ({max_steps}): no trial would ever be perturbed",
        )
    if burn_in >= max_steps:
        raise experiment.error(
            f"{base}.burn_in_steps", f"burn_in_steps ({burn_in}) is not below budget.max_steps ({max_steps})"
        )
    # Ray perturbs a trial when `interval` steps passed since its last perturbation, after the burn-in
    first = max(interval, burn_in)
    steps = tuple(range(first, max_steps, interval))
    lower = min(math.ceil(trials * options.quantile), trials // 2)
    keep, warnings = _keep_checkpoints(experiment, name)
    if experiment.concurrency is not None and experiment.concurrency < trials:
        warnings.append(
            f"{name} runs the whole population of {trials} trials, taking turns as resources allow; concurrency is ignored"
        )
    scheduler_options = {
        "max_steps": max_steps,
        "population": trials,
        "interval_steps": interval,
        "burn_in_steps": burn_in,
        "quantile": options.quantile,
        "exploits_per_round": lower,
        "expected_exploits": lower * len(steps),
        "synch": options.synch,
        "mutate": mutate,
        "keep_checkpoints": keep,
    }
    if name == "pbt":
        scheduler_options["resample_probability"] = options.resample_probability
        scheduler_options["perturbation_factors"] = list(factors)
    return SchedulerPlan(
        options=scheduler_options,
        expected_steps=trials * max_steps,
        keep_checkpoints=keep,
        perturbation_steps=steps,
        warnings=tuple(warnings),
    )


def _keep_checkpoints(experiment: Experiment, name: str) -> tuple[int | None, list[str]]:
    """PBT and PB2 keep every checkpoint of every trial.

    A trial in the bottom quantile restores the checkpoint its donor wrote at the donor's last
    perturbation step, but only when it gets resources again; meanwhile the donor goes on
    writing checkpoints (and may itself be exploited). With Ray's retention by count, any limit
    can delete a checkpoint that is still to be restored (seen with 8 trials on 2 CPUs and
    ``keep`` = 2 x interval + 1), and the trial then fails.
    """
    keep = experiment.checkpoints.keep
    warnings = []
    if keep is not None and keep != 2:  # 2 is the default
        warnings.append(
            f"{name} keeps every checkpoint (a donor's can be restored much later); checkpoints.keep is ignored"
        )
    return None, warnings


def _hyperband(experiment: Experiment, trials: int) -> SchedulerPlan:
    options = experiment.scheduler.hyperband
    max_steps = experiment.budget.max_steps
    eta = options.reduction_factor
    # Ray's HyperBandScheduler: s_max + 1 brackets; bracket s starts n0 trials at r0 steps
    s_max_1 = int(round(math.log(max_steps) / math.log(eta))) + 1
    brackets = []
    for s in range(s_max_1):
        r0 = int(max_steps * eta ** (-s))
        if r0 == 0:
            continue
        n0 = int(math.ceil(s_max_1 / (s + 1) * eta**s))
        rungs, r = [r0], r0
        for _ in range(s):
            r = int(min(r * eta, max_steps))
            rungs.append(r)
        brackets.append(Bracket(index=s, trials=n0, rungs=tuple(rungs)))
    if max_steps < eta:
        raise experiment.error(
            "scheduler.hyperband.reduction_factor",
            f"reduction_factor ({eta:g}) is above budget.max_steps ({max_steps}): hyperband would never halve",
        )
    # expected steps: fill brackets in order with the run's trials, halving at each rung
    expected, left = 0, trials
    while left > 0:
        for bracket in brackets:
            if left <= 0:
                break
            n = min(bracket.trials, left)
            left -= n
            previous = 0
            for rung in bracket.rungs:
                expected += n * (rung - previous)
                previous = rung
                n = max(1, math.ceil(n / eta))
    warnings = []
    if experiment.search.algorithm in MODEL_BASED:
        warnings.append("hyperband pauses trials between rungs; a model-based searcher sees their results late")
    options_out = {"max_steps": max_steps, "reduction_factor": eta, "brackets": len(brackets)}
    return SchedulerPlan(
        options=options_out,
        expected_steps=min(expected, trials * max_steps),
        keep_checkpoints=experiment.checkpoints.keep,
        brackets=tuple(brackets),
        warnings=tuple(warnings),
    )


def _median(experiment: Experiment, trials: int) -> SchedulerPlan:
    options = experiment.scheduler.median_stopping
    max_steps = experiment.budget.max_steps
    if options.grace_steps >= max_steps:
        raise experiment.error(
            "scheduler.median_stopping.grace_steps",
            f"grace_steps ({options.grace_steps}) is not below budget.max_steps ({max_steps}): no trial could be stopped",
        )
    if options.min_samples >= trials:
        raise experiment.error(
            "scheduler.median_stopping.min_samples",
            f"min_samples ({options.min_samples}) needs more than {trials} trials: no trial could ever be stopped",
        )
    return SchedulerPlan(
        options={"max_steps": max_steps, "grace_steps": options.grace_steps, "min_samples": options.min_samples},
        expected_steps=trials * max_steps,
        keep_checkpoints=experiment.checkpoints.keep,
    )


def scheduler_plan(experiment: Experiment, trials: int) -> SchedulerPlan:
    """Check the scheduler's options against the experiment and preview what it will do.

    Raises:
        SpecError: options that cannot work with this experiment.
    """
    name = experiment.scheduler.name
    if name in POPULATION:
        return _population(experiment, trials)
    if name == "hyperband":
        return _hyperband(experiment, trials)
    if name == "median_stopping":
        return _median(experiment, trials)
    raise ValueError(f"no scheduler plan for {name!r}")  # pragma: no cover - compiler dispatches


__all__ = ["Bracket", "SchedulerPlan", "mutations", "scheduler_plan"]
