"""Searcher conformance, in the spirit of Optuna's sampler tests: every searcher x every param kind.

Each searcher is driven in this process, without Ray running, the way a run drives it:

* ``random`` on a flat space: Ray's variant generator over the Tune domains of
  :func:`~scalehp.runner.search.param_space` (what ``BasicVariantGenerator`` does);
* ``random+cond`` (a conditional space, or one with a lognormal): scalehp's own seeded
  searcher (:func:`~scalehp.runner.search._base_searcher`); a conditional switch is added
  to the space to take that path for every kind;
* ``grid``: the variant generator, which walks grid values and choices;
* ``hyperopt``, ``optuna`` (tpe, cmaes): :func:`_base_searcher`, suggest then report a loss
  for each trial, past the random start-up so the model's own suggestions are checked too.

For every pair: the compiler refuses it (with a message naming the param), or every
suggestion lies inside the bounds, has the kind's Python type, sits on the step, is spread
over a log range as a log scale spreads it, is one of the options (the option itself, not
an equal value of another type), holds a constant unchanged, holds exactly the active
sub-params; and the same seed gives the same suggestions.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import pytest

from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.spec import load_experiment

SEARCHERS = {
    "random": {"algorithm": "random"},
    "random+cond": {"algorithm": "random"},
    "grid": {"algorithm": "grid"},
    "hyperopt": {"algorithm": "hyperopt", "initial_points": 5},
    "optuna-tpe": {"algorithm": "optuna", "sampler": "tpe", "initial_points": 5},
    "optuna-cmaes": {"algorithm": "optuna", "sampler": "cmaes", "initial_points": 5},
}
DRAWS = 24
SWITCH = {"switch": {"choice": {"on": None, "off": None}}}  # makes random search hold the space itself

CHOICES = [3, 2.5, "x", True, None]
KINDS: dict[str, Any] = {
    "float": {"float": [-2.0, 3.0]},
    "float_log": {"float": [1.0e-4, 1.0], "log": True},
    "float_step": {"float": [0.5, 10.0], "step": 0.5},
    "float_log_step": {"float": [0.5, 64.0], "log": True, "step": 0.5},
    "int": {"int": [-3, 7]},
    "int_log": {"int": [1, 1000], "log": True},
    "int_step": {"int": [2, 20], "step": 3},
    "choice": {"choice": CHOICES},
    "grid": {"grid": [1, "b", 2.5]},
    "constant": [1, 2],
    "conditional": {
        "choice": {"adam": {"beta": {"float": [0.8, 0.99]}}, "sgd": {"mom": {"int": [0, 3]}}, "plain": None}
    },
    "count": {"count": [1, 3], "each": {"w": {"int": [8, 64], "log": True}}},
    "normal": {"normal": [1.0, 2.0]},
    "normal_step": {"normal": [0.0, 5.0], "step": 0.5},
    "lognormal": {"lognormal": [0.0, 1.0]},
    "lognormal_step": {"lognormal": [2.0, 0.5], "step": 0.5},
}

# what each searcher cannot express: the compiler must refuse these (and name the param)
REFUSED = {
    "random": set(),
    "random+cond": {"grid"},
    "grid": {  # it walks values: choices and grid values only
        "float", "float_log", "float_step", "float_log_step", "int", "int_log", "int_step",
        "normal", "normal_step", "lognormal", "lognormal_step", "conditional", "count",
    },
    "hyperopt": {"grid"},
    "optuna-tpe": {"grid", "normal", "normal_step", "lognormal", "lognormal_step", "float_log_step"},
    "optuna-cmaes": {
        "grid", "choice", "normal", "normal_step", "lognormal", "lognormal_step", "float_log_step",
        "conditional", "count",
    },
}


def experiment(space: dict[str, Any], search: dict[str, Any], seed: int = 0, samples: int = DRAWS) -> Any:
    return load_experiment(
        {
            "name": "conformance",
            "trainable": "tests.trainables:quadratic",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": samples, "max_steps": 1},
            "seed": seed,
            "space": space,
            "search": search,
        }
    )


def space_of(searcher: str, kind: str) -> dict[str, Any]:
    return {"p": KINDS[kind], **(SWITCH if searcher == "random+cond" else {})}


def _loss(config: dict[str, Any]) -> float:
    """A made-up loss, fixed by the config: something for the model-based searchers to learn from."""
    text = json.dumps(config, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:6], "big") / 2**48


def suggestions(searcher: str, kind: str, seed: int = 0, draws: int = DRAWS) -> list[dict[str, Any]]:
    """``draws`` configs (every grid point ``draws`` times for grid values), as the run would get them."""
    from scalehp.runner.search import _base_searcher, owns_space, param_space

    plan = compile_plan(experiment(space_of(searcher, kind), SEARCHERS[searcher], seed, draws))
    exp = plan.experiment
    if not owns_space(exp):
        return ray_variants(param_space(exp), exp.seed, draws)
    return drive(_base_searcher(plan), draws)


def ray_variants(domains: dict[str, Any], seed: int, samples: int) -> list[dict[str, Any]]:
    """What Ray's ``BasicVariantGenerator`` makes of the Tune domains: ``samples`` x the grid points."""
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
    from ray.tune.search.variant_generator import generate_variants

    rng = _BackwardsCompatibleNumpyRng(seed)  # one for all samples, as the generator keeps it
    return [
        dict(spec["config"])
        for _ in range(samples)
        for _, spec in generate_variants({"config": domains}, random_state=rng)
    ]


def drive(search: Any, draws: int) -> list[dict[str, Any]]:
    """Suggest, then report a loss for, ``draws`` trials one after the other."""
    configs = []
    for i in range(draws):
        config = search.suggest(f"t{i}")
        configs.append(config)
        search.on_trial_complete(f"t{i}", {"loss": _loss(config)})
    return configs


def _on_step(value: float, step: float, low: float = 0.0) -> bool:
    units = (value - low) / step
    return abs(units - round(units)) < 1e-9 * max(1.0, abs(units))


def _check_value(kind: str, value: Any, config: dict[str, Any]) -> None:
    """One suggested value of ``kind`` (the param ``p``) against the kind's own rules."""
    spec = KINDS[kind]
    if kind.startswith(("float", "normal", "lognormal")):
        assert type(value) is float, f"{kind}: {value!r} is a {type(value).__name__}, not a float"
        assert math.isfinite(value)
    if kind.startswith("float"):
        low, high = spec["float"]
        assert low <= value <= high, f"{kind}: {value} outside [{low}, {high}]"
        if "step" in spec:
            assert _on_step(value, spec["step"]), f"{kind}: {value} is not a multiple of {spec['step']}"
    if kind.startswith("int"):
        assert type(value) is int, f"{kind}: {value!r} is a {type(value).__name__}, not an int"
        low, high = spec["int"]
        assert low <= value <= high, f"{kind}: {value} outside [{low}, {high}]"
        if "step" in spec:
            # a stepped param takes the multiples of step in [low, high] (here 3, 6, ..., 18), under every searcher
            assert value % spec["step"] == 0, f"{kind}: {value} is not a multiple of {spec['step']}"
    if kind.startswith(("normal", "lognormal")) and "step" in spec:
        assert _on_step(value, spec["step"]), f"{kind}: {value} is not a multiple of {spec['step']}"
    if kind.startswith("lognormal"):
        assert value >= 0, f"{kind}: {value} is negative"
    if kind == "choice":
        assert any(value == o and type(value) is type(o) for o in CHOICES), f"choice: {value!r} is not an option"
    if kind == "grid":
        assert any(value == o and type(value) is type(o) for o in spec["grid"]), f"grid: {value!r} is not a value"
    if kind == "constant":
        assert value == [1, 2], f"constant: {value!r}"
    if kind == "conditional":
        assert value in ("adam", "sgd", "plain"), f"conditional: {value!r}"
        active = {k for k in config if k.startswith("p.")}
        expected = {"adam": {"p.beta"}, "sgd": {"p.mom"}, "plain": set()}[value]
        assert active == expected, f"conditional: option {value!r} with sub-params {sorted(active)}"
        if value == "adam":
            assert type(config["p.beta"]) is float and 0.8 <= config["p.beta"] <= 0.99, config
        if value == "sgd":
            assert type(config["p.mom"]) is int and 0 <= config["p.mom"] <= 3, config
    if kind == "count":
        assert type(value) is int and 1 <= value <= 3, f"count: {value!r}"
        active = {k for k in config if k.startswith("p.")}
        assert active == {f"p.{i}.w" for i in range(1, value + 1)}, f"count {value} with {sorted(active)}"
        for key in active:
            assert type(config[key]) is int and 8 <= config[key] <= 64, f"{key}: {config[key]!r}"


PAIRS = [(s, k) for s in SEARCHERS for k in KINDS]


@pytest.mark.parametrize("searcher, kind", PAIRS, ids=[f"{s}-{k}" for s, k in PAIRS])
def test_every_suggestion_conforms_to_its_param(searcher, kind):
    if kind in REFUSED[searcher]:
        with pytest.raises(SpecError, match=r"space\.p"):
            compile_plan(experiment(space_of(searcher, kind), SEARCHERS[searcher]))
        return
    configs = suggestions(searcher, kind)
    assert len(configs) >= DRAWS
    for config in configs:
        assert "p" in config, f"no value for p in {config}"
        _check_value(kind, config["p"], config)
        if searcher == "random+cond":
            assert config["switch"] in ("on", "off")
    values = [json.dumps(c["p"], sort_keys=True) for c in configs]
    if kind != "constant":
        assert len(set(values)) > 1, f"{searcher} suggested one value only: {values[0]}"
    if kind in ("float_log", "int_log"):
        # log-uniform: half the values below the geometric middle; uniform: about 1 % of them
        low, high = KINDS[kind]["float" if kind == "float_log" else "int"]
        middle = math.sqrt(low * high)
        below = sum(c["p"] < middle for c in configs)
        assert below >= len(configs) // 5, f"{searcher}: only {below} of {len(configs)} values below {middle:g}"
    if kind == "grid":
        counts = {v: values.count(json.dumps(v)) for v in KINDS["grid"]["grid"]}
        assert set(counts.values()) == {DRAWS}, f"every grid value {DRAWS} times: {counts}"


SEEDED = [(s, k) for s, k in PAIRS if k not in REFUSED[s] and k != "grid"]


@pytest.mark.parametrize("searcher, kind", SEEDED, ids=[f"{s}-{k}" for s, k in SEEDED])
def test_the_same_seed_gives_the_same_suggestions(searcher, kind):
    first = suggestions(searcher, kind, seed=5, draws=8)
    assert first == suggestions(searcher, kind, seed=5, draws=8), f"{searcher}-{kind}: not repeatable"
    if kind != "constant" and searcher != "grid":  # (grid search walks every choice: no seed in it)
        assert first != suggestions(searcher, kind, seed=6, draws=8), f"{searcher}-{kind}: the seed is ignored"


@pytest.mark.parametrize("searcher", [s for s in SEARCHERS if s != "grid"])
def test_a_mixed_space_keeps_every_param_in_its_own_domain(searcher):
    """All kinds a searcher takes, in one space: no param's value leaks into another's domain."""
    from scalehp.runner.search import _base_searcher, owns_space, param_space

    kinds = [k for k in KINDS if k not in REFUSED[searcher] and k != "grid"]
    space = {kind: KINDS[kind] for kind in kinds}
    if searcher == "random+cond":
        space.update(SWITCH)
    plan = compile_plan(experiment(space, SEARCHERS[searcher], 0, 12))
    if owns_space(plan.experiment):
        configs = drive(_base_searcher(plan), 12)
    else:
        configs = ray_variants(param_space(plan.experiment), 0, 12)
    for config in configs:
        for kind in kinds:
            renamed = {k.replace(f"{kind}.", "p.", 1): v for k, v in config.items() if k.startswith(f"{kind}.")}
            _check_value(kind, config[kind], renamed)


@pytest.mark.parametrize("searcher", ["random", "random+cond", "hyperopt", "optuna-tpe"])
def test_a_step_off_the_lower_bound_means_one_lattice_for_every_searcher(searcher):
    """``{float: [0.05, 1.0], step: 0.1}``: one experiment file means one space under every
    searcher, so either the compiler refuses the range, or every searcher draws from the same
    values (here: the multiples of 0.1 in the range, as :meth:`FloatParam.sample` draws)."""
    kind = {"float": [0.05, 1.0], "step": 0.1}
    space = {"p": kind, **(SWITCH if searcher == "random+cond" else {})}
    try:
        plan = compile_plan(experiment(space, SEARCHERS[searcher], 0, 16))
    except SpecError as error:
        assert "space.p" in str(error)
        return
    from scalehp.runner.search import _base_searcher, owns_space, param_space

    if owns_space(plan.experiment):
        values = [c["p"] for c in drive(_base_searcher(plan), 16)]
    else:  # (param_space raises when Ray refuses the step: a run would fail the same way, after it started)
        values = [c["p"] for c in ray_variants(param_space(plan.experiment), 0, 16)]
    off = [v for v in values if not (0.05 <= v <= 1.0 and _on_step(v, 0.1))]
    assert not off, f"{searcher}: values off the multiples of 0.1 in [0.05, 1.0]: {off}"
