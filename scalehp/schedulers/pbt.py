"""Population based training (Jaderberg et al., 2017), and what PB2 shares with it.

At each perturbation step (every ``interval_steps`` steps of a trial, after the burn-in) the
population is ranked by its last values (NaN and inf worst). A trial in the bottom quantile
*exploits* a trial of the top quantile (the donor, drawn from a generator seeded with the
experiment seed, the trial id and the step): it takes the donor's checkpoint and config, then
*explores* by mutating the config: each mutated param is resampled with ``resample_probability``, else multiplied by one
of ``perturbation_factors`` (a choice shifts to a neighbouring option), then kept inside its
range. Ray's ``PopulationBasedTraining`` does the same with Python's global generator.

Event rows, per trial and perturbation step:

* ``continue``: not in the bottom quantile (``cutoff``: the best value in the bottom quantile);
* ``exploit``:  ``donor_trial_id``, ``donor_step`` (where the trial resumes), ``donor_value``,
  ``old_params`` (its own mutated params) and ``new_params`` (the donor's);
* ``explore``:  the same donor, ``old_params`` (the donor's) and ``new_params`` (the mutated ones);
* ``skip`` (written by the runner): in the bottom quantile, but the donor had no checkpoint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from scalehp.schedulers.base import (
    CONTINUE,
    EXPLOIT,
    MODEL_BASED,
    Core,
    Decision,
    Options,
    Preview,
    Settings,
    finite_value,
    sign,
)
from scalehp.space import Integer, Number, Param

NAME = "pbt"
POPULATION = ("pbt", "pb2")
NEEDS_CHECKPOINTS: str | None = "continues trials from other trials' checkpoints"


class PbtOptions(Options):
    """Population based training (Jaderberg et al., 2017): exploit the best trials' checkpoints, explore params."""

    interval_steps: Integer | None = Field(
        None, ge=1, description="steps between perturbations (default: a quarter of budget.max_steps)"
    )
    burn_in_steps: Integer = Field(0, ge=0, description="steps before the first perturbation")
    quantile: Number = Field(0.25, description="the bottom quantile copies the top quantile; in (0, 0.5]")
    resample_probability: Number = Field(0.25, ge=0, le=1, description="chance to resample a param, not perturb it")
    perturbation_factors: tuple[Number, ...] = Field(
        (1.2, 0.8), min_length=1, description="factors a float/int param is multiplied by"
    )
    mutate: list[str] | dict[str, Param | None] = Field(
        description="params that change during training: names (their space entry is the distribution) "
        "or name -> distribution in the syntax of space"
    )
    synch: bool = Field(False, description="perturb all trials together at the same step")


@dataclass(frozen=True)
class PopulationSettings(Settings):
    """PBT's and PB2's plan options; ``params`` (name -> the param it is mutated from) is not written to JSON."""

    population: int
    interval_steps: int
    burn_in_steps: int
    quantile: float
    exploits_per_round: int
    expected_exploits: int
    synch: bool
    mutate: dict[str, str]  # name -> the distribution, described
    keep_checkpoints: int | None
    params: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False, metadata={"json": False})

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        del data["params"]
        return data


@dataclass(frozen=True)
class PbtSettings(PopulationSettings):
    """PBT's plan options."""

    resample_probability: float
    perturbation_factors: tuple[float, ...]


@dataclass(frozen=True)
class Pb2Settings(PopulationSettings):
    """PB2's plan options."""

    def bounds(self) -> dict[str, list[float]]:
        """Param name -> [low, high], the box the bandit searches."""
        return {key: [float(p.low), float(p.high)] for key, p in self.params.items()}



def mutations(experiment: Any) -> dict[str, Any]:
    """PBT/PB2: param name -> the distribution it is mutated from (a space param)."""
    name = experiment.scheduler.name
    options = experiment.scheduler.options
    mutate = options.mutate
    if isinstance(mutate, dict):
        return {key: (experiment.space.get(key) if value is None else value) for key, value in mutate.items()}
    return {key: experiment.space.get(key) for key in mutate} if name in POPULATION else {}


def _check_mutations(experiment: Any) -> dict[str, Any]:
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
        if own.kind == "constant":
            raise experiment.error(
                path, f"{key!r} is a constant in space; give it a range or choice there to let {name} mutate it"
            )
        if param.kind == "constant":
            raise experiment.error(path, f"{key!r}: a constant cannot be a distribution to mutate from")
        if name == "pb2" and param.kind not in ("float", "int"):
            raise experiment.error(
                path, f"pb2 mutates float and int ranges only; {key!r} is {param.kind} (use pbt for choices)"
            )
        out[key] = param.describe()
    return out


def _keep_checkpoints(experiment: Any, name: str) -> tuple[int | None, list[str]]:
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


def population_preview(experiment: Any, trials: int) -> Preview:
    """PBT's or PB2's checks and preview: perturbation steps, exploits expected, checkpoints kept.

    Raises:
        SpecError: options that cannot work with this experiment.
    """
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
    common: dict[str, Any] = {
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
        "params": mutations(experiment),
    }
    if name == "pbt":
        settings: PopulationSettings = PbtSettings(
            **common, resample_probability=options.resample_probability, perturbation_factors=tuple(factors)
        )
    else:
        settings = Pb2Settings(**common)
    return Preview(
        settings=settings,
        expected_steps=trials * max_steps,
        keep_checkpoints=keep,
        perturbation_steps=steps,
        warnings=tuple(warnings),
    )


preview = population_preview


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s lines for PBT or PB2: the schedule, how it explores, what it mutates."""
    o: PopulationSettings = plan.scheduler_options
    name = plan.scheduler
    explore = (
        f"perturb by x{' or x'.join(f'{f:g}' for f in o.perturbation_factors)}, "
        f"resample with probability {o.resample_probability:g}"
        if isinstance(o, PbtSettings)
        else "a GP bandit picks new values within the space's bounds"
    )
    steps = plan.perturbation_steps
    shown = ", ".join(map(str, steps[:12])) + (", …" if len(steps) > 12 else "")
    keep = "all kept" if o.keep_checkpoints is None else f"last {o.keep_checkpoints} kept"
    return [
        f"scheduler   {name}: population {o.population}, every {o.interval_steps} steps the bottom "
        f"{o.quantile:.0%} copy a top {o.quantile:.0%} trial's checkpoint and config, then explore"
        + (" (all trials together)" if o.synch else ""),
        f"explore     {explore}",
        "mutate      " + "; ".join(f"{k}: {v}" for k, v in o.mutate.items()),
        f"perturb at  steps {shown}" + (f" (burn-in {o.burn_in_steps} steps)" if o.burn_in_steps else ""),
        f"exploits    about {o.expected_exploits} ({len(steps)} rounds x {o.exploits_per_round} trials)",
        f"checkpoints {keep} per trial; the trainable must report a checkpoint at every perturbation step",
    ]


def _json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def clip(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Keep float and int params inside their range (Ray multiplies by a factor without bounds)."""
    for name, param in params.items():
        if param.kind in ("float", "int") and isinstance(config.get(name), (int, float)):
            config[name] = param.clip(config[name])
    return config


def explore(
    config: dict[str, Any],
    params: dict[str, Any],
    resample_probability: float,
    factors: tuple[float, ...],
    rng: random.Random,
) -> dict[str, Any]:
    """A mutated copy of ``config``, drawing from ``rng`` in the order Ray's ``_explore`` draws."""
    new = copy.deepcopy(config)
    for key, param in params.items():
        if param.kind in ("choice", "grid"):
            values = list(param.finite_values())
            if rng.random() < resample_probability or config.get(key) not in values:
                new[key] = rng.choice(values)
            else:
                shift = rng.choice([-1, 1])
                index = min(max(values.index(config[key]) + shift, 0), len(values) - 1)
                new[key] = values[index]
            continue
        old = config.get(key)
        if rng.random() < resample_probability or not isinstance(old, (int, float)):
            new[key] = param.sample(rng)
        else:
            new[key] = old * rng.choice(factors)
        if isinstance(old, bool):
            new[key] = bool(new[key])
        elif isinstance(old, int):
            new[key] = int(round(new[key]))
    return clip(new, params)


@dataclass
class _State:
    config: dict[str, Any]
    last_perturbation: float = 0
    last_step: float | None = None
    last_score: float | None = None  # sign * the value decided with, at the last perturbation step
    last_value: float | None = None  # that value as reported
    finished: bool = False


class PopulationCore(Core):
    """PBT's decisions at perturbation steps; PB2 shares all but the explore step.

    ``report`` decides in Ray's asynchronous mode; with ``synch`` it only records the score and
    the runner calls :meth:`quantiles` and :meth:`decide` for every trial at the barrier.
    """

    name = NAME

    def __init__(self, settings: PopulationSettings, mode: str, seed: int | None = None) -> None:
        self.settings = settings
        self.mode = mode
        self._sign = sign(mode)
        self._salt = str(random.SystemRandom().getrandbits(64) if seed is None else seed)
        self._states: dict[str, _State] = {}

    def add(self, trial_id: str, config: dict[str, Any] | None = None) -> None:
        """A trial of the population, with its config (Ray adds trials in this order; ties rank by it)."""
        state = self._states.setdefault(trial_id, _State(config={}))
        if config is not None:
            state.config = dict(config)

    def config(self, trial_id: str) -> dict[str, Any]:
        return self._states[trial_id].config

    def _own(self, trial_id: str) -> dict[str, Any]:
        config = self._states[trial_id].config
        return {key: config.get(key) for key in self.settings.params or self.settings.mutate}

    def report(self, trial_id: str, step: int, value: float | None) -> Decision:
        self.add(trial_id)
        state = self._states[trial_id]
        if value is None or step is None or step < self.settings.burn_in_steps:
            return Decision(CONTINUE)
        if step - state.last_perturbation < self.settings.interval_steps:
            return Decision(CONTINUE)
        state.last_score = self._sign * finite_value(value, self.mode)
        state.last_value, state.last_step = value, step
        if self.settings.synch:
            return Decision(CONTINUE)
        state.last_perturbation = step
        lower, upper = self.quantiles()
        return self.decide(trial_id, lower, upper)

    def quantiles(self) -> tuple[list[str], list[str]]:
        """Trial ids in the bottom and top quantile of the live population (Ray's ``_quantiles``)."""
        trials = [
            t
            for t, s in self._states.items()
            if s.last_score is not None and not math.isnan(s.last_score) and not s.finished
        ]
        trials.sort(key=lambda t: self._states[t].last_score)
        if len(trials) <= 1:
            return [], []
        count = int(math.ceil(len(trials) * self.settings.quantile))
        if count > len(trials) / 2:
            count = int(math.floor(len(trials) / 2))
        return trials[:count], trials[len(trials) - count :]

    def _rng(self, trial_id: str) -> random.Random:
        """The generator of one decision, seeded by (seed, trial id, step): the same after a restore."""
        key = f"{self._salt}:{trial_id}:{self._states[trial_id].last_step}"
        return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))

    def new_config(self, trial_id: str, donor: str, rng: random.Random) -> dict[str, Any]:
        """The donor's config, explored (PBT mutates; PB2 overrides with its bandit)."""
        s = self.settings
        assert isinstance(s, PbtSettings)
        return explore(self._states[donor].config, s.params, s.resample_probability, s.perturbation_factors, rng)

    def decide(self, trial_id: str, lower: list[str], upper: list[str]) -> Decision:
        """Continue, or exploit a donor drawn from ``upper`` and explore its config."""
        state = self._states[trial_id]
        row = {"trial_id": trial_id, "step": state.last_step, "scheduler": self.name, "value": state.last_value}
        if trial_id not in lower:
            best = max(lower, key=lambda t: self._states[t].last_score, default=None)
            cutoff = None if best is None else self._states[best].last_value
            return Decision(CONTINUE, ({**row, "action": CONTINUE, "cutoff": cutoff},))
        rng = self._rng(trial_id)
        donor = rng.choice(upper)
        before, donor_params = self._own(trial_id), self._own(donor)
        config = self.new_config(trial_id, donor, rng)
        state.config = config
        # it resumes from the donor's checkpoint: the donor's step, and its last perturbation (as Ray's _exploit)
        state.last_perturbation = self._states[donor].last_perturbation
        state.last_step = self._states[donor].last_step
        exploit = {
            **row,
            "donor_trial_id": donor,
            "donor_step": self._states[donor].last_step,
            "donor_value": self._states[donor].last_value,
        }
        events = (
            {**exploit, "action": EXPLOIT, "old_params": _json(before), "new_params": _json(donor_params)},
            {
                **exploit,
                "action": "explore",
                "old_params": _json(donor_params),
                "new_params": _json(self._own(trial_id)),
            },
        )
        return Decision(EXPLOIT, events, donor=donor, config=config)

    def remove(self, trial_id: str, *, completed: bool = True, last: tuple[int, float | None] | None = None) -> None:
        """An ended trial leaves the ranking (Ray skips finished trials)."""
        if trial_id in self._states:
            self._states[trial_id].finished = True

    def restore(self, events: list[dict]) -> None:
        """Each trial's last perturbation step and value, and its explored params, from the rows.

        Configs come from :meth:`add` (as the trials started); each decision draws from its own
        generator, seeded by (seed, trial id, step), so the decisions after a restore are the same.
        """
        for row in events:
            if row.get("scheduler") != self.name or row.get("step") is None:
                continue
            self.add(row["trial_id"])
            state = self._states[row["trial_id"]]
            resumed = row.get("action") in (EXPLOIT, "explore") and row.get("donor_step") is not None
            state.last_perturbation = state.last_step = row["donor_step"] if resumed else row["step"]
            value = row.get("value")
            state.last_value = value
            decided = finite_value(value, self.mode)
            state.last_score = None if decided is None else self._sign * decided
            if row.get("action") == "explore" and row.get("new_params"):
                state.config.update(json.loads(row["new_params"]))


class PbtCore(PopulationCore):
    """PBT: explore by resampling or multiplying by a perturbation factor."""


def core(settings: PbtSettings, mode: str, seed: int | None = None) -> PbtCore:
    return PbtCore(settings, mode, seed)


__all__ = [
    "POPULATION",
    "PbtCore",
    "PbtOptions",
    "PbtSettings",
    "PopulationCore",
    "PopulationSettings",
    "clip",
    "core",
    "describe",
    "explore",
    "mutations",
    "population_preview",
    "preview",
]
