"""The search space as each searcher needs it, and the search algorithm.

One experiment file means the same space under every searcher:

* ``random`` / ``grid`` on a flat space: Ray's ``BasicVariantGenerator`` over Tune domains
  (``samples`` trials per grid point, Ray's semantics);
* ``random`` on a conditional space, or one with a ``lognormal`` param (Ray has no such
  domain): :func:`~scalehp.space.sample_config` with a seeded
  ``random.Random``, one draw per trial, so only active params are drawn (Ray 2.60's
  ``BasicVariantGenerator`` can make a value depend on another through ``tune.sample_from``,
  but every key of ``param_space`` stays in the config, so an inactive param would have to
  carry a fake value);
* ``hyperopt``: a hyperopt space with a nested ``hp.choice`` per conditional param, handed
  to Ray's ``HyperOptSearch`` directly;
* ``optuna``: a define-by-run function (:class:`DefineByRun`) that suggests a param only
  when its conditions hold, handed to Ray's ``OptunaSearch``.

Every searcher's suggestion is turned into the one config form of
:mod:`scalehp.space` (flat, dotted names, active params only, constants filled in) before
Ray hands it to the trainable, so the trainable and the Parquet columns never see a
searcher's own encoding. Warm-start points (``plan.warm_start``) are added to hyperopt's
and optuna's history as finished trials with their known results.
"""

from __future__ import annotations

import math
import pickle
import random
from typing import Any, Callable, Container, Iterator

from scalehp.compiler import Plan
from scalehp.defaults import initial_points, nsga2_population
from scalehp.errors import RunError
from scalehp.results.schema import INFEASIBLE
from scalehp.space import Node, flatten_space, is_conditional, resolve, sample_config
from scalehp.spec import Experiment

_BRANCH = "__scalehp_branch__"


def owns_space(experiment: Experiment) -> bool:
    """Whether the searcher holds the space itself (Ray's ``param_space`` is then empty)."""
    algorithm = experiment.search.algorithm
    if algorithm in ("hyperopt", "optuna"):
        return True
    no_domain = not all(has_domain(p) for p in experiment.space.values())  # lognormal
    return algorithm == "random" and (is_conditional(experiment.space) or no_domain)


def param_space(experiment: Experiment) -> dict[str, Any]:
    """The search space as Ray Tune domains (empty when the searcher holds the space)."""
    if owns_space(experiment):
        return {}
    grid = experiment.search.algorithm == "grid"
    return {name: domain(p, grid) for name, p in experiment.space.items()}


# A stepped param takes the multiples of its step between its bounds (see FloatParam): every
# searcher is handed the aligned bounds ``first`` and ``last``, which Ray's q-domains require
# and from which optuna counts its steps.


def _float_domain(tune: Any, p: Any, grid: bool) -> Any:
    if p.step:
        return (tune.qloguniform if p.log else tune.quniform)(p.first, p.last, p.step)
    return (tune.loguniform if p.log else tune.uniform)(p.low, p.high)


def _int_domain(tune: Any, p: Any, grid: bool) -> Any:
    if p.log:
        return tune.lograndint(p.low, p.high + 1)
    if p.step and p.step > 1:
        return tune.qrandint(p.first, p.last, p.step)
    return tune.randint(p.low, p.high + 1)


_RAY_DOMAINS = {
    "float": _float_domain,
    "int": _int_domain,
    "normal": lambda tune, p, grid: tune.qrandn(p.mean, p.sd, p.step) if p.step else tune.randn(p.mean, p.sd),
    "choice": lambda tune, p, grid: (tune.grid_search if grid else tune.choice)(list(p.options)),
    "grid": lambda tune, p, grid: tune.grid_search(list(p.values)),
    "constant": lambda tune, p, grid: p.value,
}
"""Param kind -> its Ray Tune domain. Ray has none for ``lognormal`` and none that makes a
param depend on another (conditional choices, counts): the searcher holds those spaces."""


def has_domain(p: Any) -> bool:
    """Whether Ray Tune has a domain for the param (see :func:`domain`)."""
    return p.kind in _RAY_DOMAINS


def domain(p: Any, grid: bool = False) -> Any:
    """One param as a Ray Tune domain (a grid search, or the value itself for a constant)."""
    from ray import tune

    if not has_domain(p):  # pragma: no cover - such spaces are held by the searcher
        raise TypeError(f"Ray Tune has no domain for a {p.kind} param")
    return _RAY_DOMAINS[p.kind](tune, p, grid)


def config_from(nodes: list[Node], values: dict[str, Any]) -> dict[str, Any]:
    """The trainable's config from a searcher's values by node label, each clipped into its param's domain."""
    by_label = {n.label: n for n in nodes}
    fitted = {k: by_label[k].param.clip(v) for k, v in values.items() if k in by_label}
    return resolve(nodes, fitted)


# ---------------------------------------------------------------------------
# hyperopt: nested hp.choice


def _children(nodes: list[Node], parent: Node, option: Any) -> list[Node]:
    return [n for n in nodes if n.parent == parent.label and option in n.when[-1][1]]


def _hp_float(hp: Any, p: Any, label: str) -> Any:
    if p.log:
        low, high = math.log(p.first), math.log(p.last)
        return hp.qloguniform(label, low, high, p.step) if p.step else hp.loguniform(label, low, high)
    return hp.quniform(label, p.first, p.last, p.step) if p.step else hp.uniform(label, p.low, p.high)


def _hp_int(hp: Any, p: Any, label: str) -> Any:
    if p.log:
        return hp.qloguniform(label, math.log(p.low), math.log(p.high), 1)
    return hp.quniform(label, p.first, p.last, p.step or 1)


_HYPEROPT = {
    "float": _hp_float,
    "int": _hp_int,
    "normal": lambda hp, p, label: hp.qnormal(label, p.mean, p.sd, p.step) if p.step else hp.normal(label, p.mean, p.sd),
    "lognormal": lambda hp, p, label: (
        hp.qlognormal(label, p.mean, p.sd, p.step) if p.step else hp.lognormal(label, p.mean, p.sd)
    ),
    "choice": lambda hp, p, label: hp.choice(label, list(p.options)),
}
"""Param kind -> its hyperopt expression. Conditional choices and counts are a nested
``hp.choice`` (see :func:`hyperopt_space`); constants are filled in by ``resolve``; grids
are refused by the compiler."""

_INDEXED = ("choice", "conditional", "count")
"""The kinds hyperopt draws with ``hp.choice``: its values are option indices."""


def hyperopt_space(nodes: list[Node]) -> dict[str, Any]:
    """The space as hyperopt expressions: a nested ``hp.choice`` per conditional or count param.

    A branch of a choice is a dict marked with ``__scalehp_branch__`` holding the option
    under the choice's label and the expressions of its sub-params; a sub-param active
    under several options (a layer's width under every count above it) is one expression
    shared by those branches.
    """
    from hyperopt import hp

    built: dict[str, Any] = {}

    def expr(node: Node) -> Any:
        if node.label in built:
            return built[node.label]
        p, label = node.param, node.label
        if p.nested:
            out = hp.choice(label, [branch(node, option) for option in p.finite_values()])
        elif p.kind in _HYPEROPT:
            out = _HYPEROPT[p.kind](hp, p, label)
        else:  # pragma: no cover - constants are filled in by resolve(); grids are rejected by the compiler
            raise TypeError(f"hyperopt cannot search a {p.kind} param")
        built[node.label] = out
        return out

    def branch(node: Node, option: Any) -> dict[str, Any]:
        out: dict[str, Any] = {_BRANCH: True, node.label: option}
        for child in _children(nodes, node, option):
            if child.param.searched:
                out[child.label] = expr(child)
        return out

    return {n.label: expr(n) for n in nodes if n.parent is None and n.param.searched}


def hyperopt_values(sample: dict[str, Any]) -> dict[str, Any]:
    """The values by label in what hyperopt's space evaluates to (branches flattened)."""
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if key == _BRANCH:
            continue
        if isinstance(value, dict) and value.get(_BRANCH):
            out.update(hyperopt_values(value))
        else:
            out[key] = value
    return out


def _hyperopt_point(nodes: list[Node], config: dict[str, Any]) -> dict[str, list]:
    """A config as hyperopt's ``misc.vals``: choices as option indices, inactive labels empty."""
    vals: dict[str, list] = {}
    for node in nodes:
        if not node.param.searched:
            continue
        value = config.get(node.name)
        if not (node.active(config) and node.name in config):
            vals.setdefault(node.label, [])
            continue
        p = node.param
        if p.kind in _INDEXED:
            value = list(p.finite_values()).index(value)
        elif p.kind == "float" and p.log and not p.step:
            value = float(value)
        vals[node.label] = [value]
    return vals


def _add_hyperopt_history(search: Any, nodes: list[Node], plan: Plan) -> None:
    import hyperopt

    trials = search._hpopt_trials
    sign = 1.0 if plan.experiment.metric.mode == "min" else -1.0
    for point in plan.warm_start:
        tid = trials.new_trial_ids(1)[0]
        vals = _hyperopt_point(nodes, point["config"])
        idxs = {label: ([tid] if v else []) for label, v in vals.items()}
        doc = {
            "state": hyperopt.JOB_STATE_DONE,
            "tid": tid,
            "spec": None,
            "result": {"loss": sign * point["values"][0], "status": hyperopt.STATUS_OK},
            "misc": {
                "tid": tid,
                "cmd": ("domain_attachment", "FMinIter_Domain"),
                "workdir": None,
                "idxs": idxs,
                "vals": vals,
            },
            "exp_key": None,
            "owner": None,
            "version": 0,
            "book_time": None,
            "refresh_time": None,
        }
        trials.insert_trial_docs([doc])
    trials.refresh()


# ---------------------------------------------------------------------------
# optuna: define-by-run


_OPTUNA = {
    "float": lambda trial, p, label: trial.suggest_float(label, p.first, p.last, log=p.log, step=p.step),
    "int": lambda trial, p, label: trial.suggest_int(label, p.first, p.last, step=p.step or 1, log=p.log),
    "count": lambda trial, p, label: trial.suggest_int(label, p.low, p.high),
    "choice": lambda trial, p, label: trial.suggest_categorical(label, list(p.options)),
    "conditional": lambda trial, p, label: trial.suggest_categorical(label, p.finite_values()),
}
"""Param kind -> how optuna suggests it; the compiler refuses the others (normal, lognormal, grid)."""


def _suggest(trial: Any, node: Node) -> Any:
    p = node.param
    if p.kind not in _OPTUNA:  # pragma: no cover - rejected by the compiler
        raise TypeError(f"optuna cannot search a {p.kind} param")
    return _OPTUNA[p.kind](trial, p, node.label)


def optuna_distributions(nodes: list[Node], config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The params and distributions (by label) of one config, as optuna's ``create_trial`` takes them."""
    import optuna

    class Recorder:
        def __init__(self) -> None:
            self.params: dict[str, Any] = {}
            self.distributions: dict[str, Any] = {}

        def _record(self, label: str, distribution: Any) -> Any:
            value = values[label]
            self.params[label] = value
            self.distributions[label] = distribution
            return value

        def suggest_float(self, label: str, low: float, high: float, log: bool, step: float | None) -> Any:
            return self._record(label, optuna.distributions.FloatDistribution(low, high, log=log, step=step))

        def suggest_int(self, label: str, low: int, high: int, step: int = 1, log: bool = False) -> Any:
            return self._record(label, optuna.distributions.IntDistribution(low, high, log=log, step=step))

        def suggest_categorical(self, label: str, choices: list) -> Any:
            return self._record(label, optuna.distributions.CategoricalDistribution(choices))

    values = {n.label: config[n.name] for n in nodes if n.name in config}
    recorder = Recorder()
    DefineByRun(nodes)(recorder)
    return recorder.params, recorder.distributions


class DefineByRun:
    """Optuna's define-by-run space: suggests a param only when its conditions hold.

    A plain class (not a closure) so that Ray can pickle the searcher's state.
    """

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes

    def __call__(self, trial: Any) -> None:
        config: dict[str, Any] = {}
        for node in self.nodes:
            if not node.active(config) or not node.param.searched:
                continue
            if node.parent is not None and node.name in config:
                continue  # the same name was already drawn under the chosen option
            config[node.name] = _suggest(trial, node)
        return None


def _constraint(value: Any) -> float:
    """A reported constraint value for Optuna: a missing or non-finite one is not met."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 1.0
    return number if math.isfinite(number) else 1.0


def optuna_sampler(plan: Plan) -> Any:
    """Optuna's sampler for the plan (seeded), in a form Ray can pickle (see ``samplers.py``)."""
    from scalehp.runner import samplers

    experiment = plan.experiment
    seed, startup = experiment.seed, initial_points("optuna", experiment.search.initial_points)
    if plan.sampler == "cmaes":
        return samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    if plan.sampler == "nsga2":
        return samplers.NSGAIISampler(seed=seed, population_size=nsga2_population(startup))
    if plan.sampler == "gp":
        return samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if plan.sampler == "qmc":
        import warnings

        with warnings.catch_warnings():  # "experimental" since Optuna 3.0; its points are what we want
            warnings.simplefilter("ignore")
            return samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed)
    return samplers.TPESampler(seed=seed, n_startup_trials=startup)


def _add_optuna_history(search: Any, nodes: list[Node], plan: Plan) -> None:
    import optuna

    for point in plan.warm_start:
        params, distributions = optuna_distributions(nodes, point["config"])
        values = point["values"]
        trial = optuna.trial.create_trial(
            params=params,
            distributions=distributions,
            **({"values": values} if len(values) > 1 else {"value": values[0]}),
        )
        search._ot_study.add_trial(trial)


# ---------------------------------------------------------------------------
# The searcher


def _base_searcher(plan: Plan) -> Any:
    """Ray's search algorithm for the plan, suggesting configs in scalehp's config form."""
    from ray.tune.search import Searcher

    experiment = plan.experiment
    algorithm = experiment.search.algorithm
    nodes = flatten_space(experiment.space)
    metric, mode = experiment.metric.name, experiment.metric.mode

    if algorithm == "random" or not any(n.param.searched for n in nodes):
        # (a space of constants has nothing to model: every trial gets the constants, and
        # Ray's HyperOptSearch cannot even be built on an empty space)

        class ConditionalRandomSearch(Searcher):
            """One seeded draw per trial; only the params whose conditions hold are drawn."""

            def __init__(self) -> None:
                super().__init__(metric=metric, mode=mode)
                self.rng = random.Random(experiment.seed)

            def suggest(self, trial_id: str) -> dict[str, Any]:
                return sample_config(experiment.space, rng=self.rng)

            def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
                return None

            def save(self, checkpoint_path: str) -> None:
                with open(checkpoint_path, "wb") as file:
                    pickle.dump(self.rng.getstate(), file)

            def restore(self, checkpoint_path: str) -> None:
                with open(checkpoint_path, "rb") as file:
                    self.rng.setstate(pickle.load(file))

        return ConditionalRandomSearch()

    if algorithm == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        class ScalehpHyperOpt(HyperOptSearch):
            def suggest(self, trial_id: str) -> Any:
                sample = super().suggest(trial_id)
                if not isinstance(sample, dict):
                    return sample
                return config_from(nodes, hyperopt_values(sample))

            def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
                if result and INFEASIBLE in result:  # no result: hyperopt marks the config failed
                    result, error = None, True
                super().on_trial_complete(trial_id, result=result, error=error)

        search = ScalehpHyperOpt(
            space=hyperopt_space(nodes),
            metric=metric,
            mode=mode,
            n_initial_points=initial_points("hyperopt", experiment.search.initial_points),
            random_state_seed=experiment.seed,
        )
        _add_hyperopt_history(search, nodes, plan)
        return search

    if algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch
        from ray.tune.utils.util import flatten_dict

        constraints = experiment.constraint_names

        class ScalehpOptuna(OptunaSearch):
            def suggest(self, trial_id: str) -> Any:
                sample = super().suggest(trial_id)
                if not isinstance(sample, dict):
                    return sample
                return config_from(nodes, flatten_dict(sample, delimiter="/"))

            def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
                if result and INFEASIBLE in result:  # no result: optuna marks the trial failed
                    result, error = None, True
                trial = self._ot_trials.get(trial_id)
                if constraints and trial is not None and result:  # what optuna's tpe, nsga2 and gp samplers read
                    for name in constraints:
                        trial.set_constraint(name, _constraint(result.get(name)))
                super().on_trial_complete(trial_id, result=result, error=error)

        import optuna

        objectives = experiment.objectives
        several = len(objectives) > 1
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line per run
        try:
            search = ScalehpOptuna(
                space=DefineByRun(nodes),
                metric=[m.name for m in objectives] if several else metric,
                mode=[m.mode for m in objectives] if several else mode,
                sampler=optuna_sampler(plan),
            )
        finally:
            optuna.logging.set_verbosity(verbosity)
        _add_optuna_history(search, nodes, plan)
        return search
    raise RunError(f"search algorithm {algorithm!r} does not take a conditional space")  # pragma: no cover


def searcher(plan: Plan) -> Any:
    """Ray's search algorithm for the plan, with the concurrency limit applied the way each needs."""
    from ray.tune.search import ConcurrencyLimiter

    experiment = plan.experiment
    limit = plan.concurrency or 0  # None under PBT/PB2: the whole population is created at once
    if not owns_space(experiment):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # samples x grid points, Ray's own semantics; the generator limits concurrency itself
        return BasicVariantGenerator(random_state=experiment.seed, max_concurrent=limit)
    search = _base_searcher(plan)
    # a model-based searcher suggests better configs when fewer trials are still out
    return ConcurrencyLimiter(search, max_concurrent=limit) if limit else search


def first_suggestions(plan: Plan, count: int = 5) -> list[dict[str, Any]]:
    """The first ``count`` configs the searcher suggests, computed in this process without starting Ray.

    With a seed these are exactly the configs the run starts with (one at a time; with
    several trials at once a model-based searcher may learn in between). Needs a searcher
    that holds the space (conditional random, hyperopt, optuna).
    """
    search = _base_searcher(plan)
    return [search.suggest(f"plan_{i}") for i in range(count)]


def suggestions(
    plan: Plan, trial_id: Callable[[int], str] = "sim_{:05d}".format, skip: Container[int] = ()
) -> tuple[Iterator[tuple[int, dict[str, Any]]], Any]:
    """The configs the run's searcher suggests, as (index, config) in order, and the searcher
    (to tell it results; None for Ray's variant generator, which learns nothing).

    Random and grid search over a flat space draw from Ray's own variant generator seeded as a
    Tune run seeds it: the very configs, in the same order, that a seeded ``scalehp run``
    starts. ``trial_id(index)`` names the trial a model-based searcher suggests for. Indices in
    ``skip`` (trials a resumed run has finished) are drawn and passed over, so the others keep
    their configs; a model-based searcher is not asked for them.
    """
    experiment = plan.experiment
    if not owns_space(experiment):  # Ray's BasicVariantGenerator, as the real run uses it
        from ray.tune.search.sample import Categorical, Float, Integer, _BackwardsCompatibleNumpyRng
        from ray.tune.search.variant_generator import generate_variants, parse_spec_vars

        rng = _BackwardsCompatibleNumpyRng(experiment.seed)
        spec = {"config": param_space(experiment)}
        _, domains, grids = parse_spec_vars(spec)

        def variants() -> Iterator[dict[str, Any]]:
            for _ in range(experiment.budget.samples):
                for _, resolved in generate_variants(spec, constant_grid_search=False, random_state=rng):
                    yield dict(resolved["config"])

        def drawn() -> Iterator[dict[str, Any]]:
            """``variants()`` without a grid: each domain drawn in Ray's order from the same generator,
            without Ray's deep copy of the spec per variant (most of a large simulation's time)."""
            base = spec["config"]
            for _ in range(experiment.budget.samples):
                config = dict(base)
                for path, domain in domains:
                    config[path[1]] = domain.sample(None, random_state=rng)
                yield config

        plain = not grids and all(len(p) == 2 and isinstance(d, (Categorical, Float, Integer)) for p, d in domains)
        configs = drawn() if plain else variants()
        return ((i, c) for i, c in enumerate(configs) if i not in skip), None
    search = _base_searcher(plan)
    replayed = experiment.search.algorithm == "random"  # a seeded draw per trial: skipped ones are drawn too

    def suggested() -> Iterator[tuple[int, dict[str, Any]]]:
        for i in range(plan.trials):
            if i not in skip:
                yield i, search.suggest(trial_id(i))
            elif replayed:
                search.suggest(trial_id(i))

    return suggested(), search
