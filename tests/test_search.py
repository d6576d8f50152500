"""Conditional spaces and searchers without Ray: parsing, compile-time checks, suggestions, warm start."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.space import enumerate_configs, flatten_space, resolve, sample_config, space_size
from scalehp.spec import json_schema, load_experiment

SPACE = {
    "optimizer": {
        "choice": {
            "adam": {"beta1": {"float": [0.8, 0.99]}, "lr": {"float": [1e-4, 1e-2], "log": True}},
            "sgd": {"momentum": {"float": [0.0, 0.9]}, "lr": {"float": [1e-3, 1e-1], "log": True}},
            "lbfgs": None,
        }
    },
    "layers": {
        "count": [1, 3],
        "each": {"width": {"int": [16, 256], "log": True}, "act": {"choice": ["relu", "tanh"]}},
    },
    "batch": 32,
}


def experiment(space=SPACE, **changes):
    data = {
        "name": "cond",
        "trainable": "tests.search_trainables:conditional",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 10, "max_steps": 2},
        "seed": 0,
        "space": space,
    }
    data.update(changes)
    return load_experiment(data)


def test_nested_names_and_conditions():
    nodes = {n.name: n for n in flatten_space(experiment().space)}
    assert list(nodes) == [
        "optimizer",
        "optimizer.beta1",
        "optimizer.lr",
        "optimizer.momentum",
        "layers",
        "layers.1.width",
        "layers.1.act",
        "layers.2.width",
        "layers.2.act",
        "layers.3.width",
        "layers.3.act",
        "batch",
    ]
    assert nodes["optimizer.momentum"].when == (("optimizer", ("sgd",)),)
    assert nodes["layers.2.width"].when == (("layers", (2, 3)),)
    assert nodes["layers.2.width"].path == "space.layers.each.width"


def test_sampled_configs_hold_exactly_the_active_params():
    space = experiment().space
    seen = set()
    for seed in range(200):
        config = sample_config(space, seed)
        optimizer, layers = config["optimizer"], config["layers"]
        expected = {"optimizer", "layers", "batch"}
        expected |= {"adam": {"optimizer.beta1", "optimizer.lr"}, "sgd": {"optimizer.momentum", "optimizer.lr"}}.get(
            optimizer, set()
        )
        expected |= {f"layers.{i}.{p}" for i in range(1, layers + 1) for p in ("width", "act")}
        assert set(config) == expected
        if optimizer == "adam":
            assert 1e-4 <= config["optimizer.lr"] <= 1e-2
        seen.add((optimizer, layers))
    assert len(seen) == 9


def test_resolve_drops_inactive_values():
    nodes = flatten_space(experiment().space)
    config = resolve(
        nodes,
        {
            "optimizer": "lbfgs",
            "optimizer.beta1": 0.9,
            "layers": 1,
            "layers.1.width": 20,
            "layers.1.act": "relu",
            "layers.2.width": 30,
        },
    )
    assert config == {"optimizer": "lbfgs", "layers": 1, "layers.1.width": 20, "layers.1.act": "relu", "batch": 32}


def test_columns_are_stable_and_shared_names_share_one():
    plan = compile_plan(experiment())
    assert plan.columns["optimizer.lr"] == "param_optimizer_lr"
    assert plan.columns["layers.3.act"] == "param_layers_3_act"
    assert len(plan.columns) == len({n.name for n in flatten_space(plan.experiment.space)})


def test_a_top_level_name_that_equals_a_nested_one_is_an_error():
    space = {"opt": {"choice": {"a": {"lr": {"float": [0.1, 1.0]}}}}, "opt.lr": 0.5}
    with pytest.raises(SpecError, match=r"space.opt.lr: param name 'opt.lr' is used twice"):
        compile_plan(experiment(space))


def test_shared_name_with_another_type_is_an_error():
    space = {"opt": {"choice": {"a": {"lr": {"float": [0.1, 1.0]}}, "b": {"lr": {"choice": ["x", "y"]}}}}}
    with pytest.raises(SpecError, match=r"space\.opt\.choice\.b\.lr: param 'opt.lr' is declared twice"):
        compile_plan(experiment(space))


@pytest.mark.parametrize(
    "space, search, message",
    [
        (
            SPACE,
            {"algorithm": "grid"},
            r"space.optimizer: grid search cannot enumerate the conditional param 'optimizer'",
        ),
        (
            {"o": {"choice": {"a": {"k": {"choice": [1, 2]}}, "b": None}}},
            {"algorithm": "grid"},
            r"space.o: grid search cannot enumerate the conditional param 'o'",
        ),
        (
            SPACE,
            {"algorithm": "optuna", "sampler": "cmaes"},
            r"space.optimizer: optuna cmaes .* conditional param 'optimizer'",
        ),
        (
            {"x": {"float": [1.0, 2.0], "log": True, "step": 0.5}},
            {"algorithm": "optuna"},
            r"space.x: optuna tpe cannot search float 'x' on a log scale with a step",
        ),
        ({"x": {"choice": [[1, 2], [3]]}}, {"algorithm": "optuna"}, r"space.x: optuna tpe can only choose among"),
        ({"x": {"grid": [1, 2]}}, {"algorithm": "hyperopt"}, r"space.x: hyperopt cannot search a grid param"),
        (
            {"x": {"grid": [1, 2]}, "o": {"choice": {"a": None}}},
            {"algorithm": "random"},
            r"space.x: random search of a conditional space cannot also walk a grid",
        ),
        (
            {"x": {"float": [0.0, 1.0]}},
            {"algorithm": "hyperopt", "sampler": "tpe"},
            r"search.sampler: only optuna takes a sampler",
        ),
        (
            {"x": {"float": [0.0, 1.0]}},
            {"algorithm": "random", "warm_start": {"runs": ["x"]}},
            r"search.warm_start: random search learns nothing",
        ),
    ],
)
def test_a_searcher_that_cannot_express_a_param_is_a_compile_error(space, search, message):
    with pytest.raises(SpecError, match=message):
        compile_plan(experiment(space, search=search))


def test_grid_values_inside_a_conditional_are_rejected_with_their_path():
    with pytest.raises(SpecError, match=r"space.o: option 'a': grid values are only allowed at the top level"):
        experiment({"o": {"choice": {"a": {"k": {"grid": [1, 2]}}}}})
    with pytest.raises(SpecError, match=r"space.o.choice.a.k: low \(2.0\) must be below high"):
        experiment({"o": {"choice": {"a": {"k": {"float": [2.0, 1.0]}}}}})


def test_several_metrics_need_optuna_and_a_fifo_scheduler():
    two = [{"name": "accuracy", "mode": "max"}, {"name": "size", "mode": "min"}]
    space = {"x": {"float": [0.0, 1.0]}}
    plan = compile_plan(experiment(space, metric=two, search={"algorithm": "optuna"}))
    assert plan.sampler == "nsga2" and plan.searcher == "optuna NSGA-II"
    assert plan.experiment.metric.name == "accuracy" and [m.name for m in plan.experiment.objectives] == [
        "accuracy",
        "size",
    ]
    assert (
        compile_plan(experiment(space, metric=two, search={"algorithm": "optuna", "sampler": "tpe"})).sampler == "tpe"
    )
    with pytest.raises(SpecError, match=r"metric: hyperopt optimises one metric"):
        compile_plan(experiment(space, metric=two, search={"algorithm": "hyperopt"}))
    with pytest.raises(SpecError, match=r"scheduler: the asha scheduler ranks trials by one metric"):
        compile_plan(experiment(space, metric=two, search={"algorithm": "optuna"}, scheduler="asha"))
    with pytest.raises(SpecError, match=r"metric lists a name twice"):
        experiment(space, metric=[two[0], two[0]])
    # the single-metric path is unchanged
    single = experiment(space)
    assert single.metrics is None and single.objectives == (single.metric,) and "metrics" not in single.to_dict()


def test_json_schema_covers_the_new_keys():
    schema = json_schema()
    defs = schema["$defs"]
    assert {"ConditionalParam", "CountParam", "WarmStart"} <= set(defs)
    assert set(defs["Search"]["properties"]) >= {"algorithm", "sampler", "initial_points", "warm_start"}
    assert defs["Search"]["properties"]["sampler"]["anyOf"][0]["enum"] == ["tpe", "cmaes", "nsga2", "qmc", "gp"]
    assert set(defs["Runtime"]["properties"]) == {"tune", "swarm"} and "batch_size" in defs["SwarmOptions"]["properties"]
    assert "array" in json.dumps(schema["properties"]["metric"])
    assert set(defs["CountParam"]["properties"]) == {"count", "each"}


@pytest.mark.parametrize("algorithm", ["random", "hyperopt", "optuna"])
def test_first_suggestions_repeat_with_a_seed_and_respect_conditions(algorithm):
    from scalehp.runner.search import first_suggestions

    def suggest(seed):
        return first_suggestions(compile_plan(experiment(seed=seed, search={"algorithm": algorithm})), 6)

    first = suggest(0)
    assert first == suggest(0)
    assert first != suggest(1)
    nodes = flatten_space(experiment().space)
    for config in first:
        assert config == resolve(nodes, {n.label: config[n.name] for n in nodes if n.name in config})
        for name in config:  # every param present is active under one of its declarations
            assert any(n.active(config) for n in nodes if n.name == name)


def test_finite_spaces_are_enumerated():
    space = {
        "o": {"choice": {"a": {"k": {"choice": [1, 2]}}, "b": None}},
        "n": {"count": [0, 2], "each": {"w": {"choice": [8, 16]}}},
    }
    exp = experiment(space)
    assert space_size(exp.space) == 3 * (1 + 2 + 4)
    configs = enumerate_configs(exp.space, 100)
    assert len(configs) == 21 and len({json.dumps(c, sort_keys=True) for c in configs}) == 21
    assert space_size(experiment().space) is None


def test_plan_command_shows_nesting_suggestions_and_grid(tmp_path):
    path = tmp_path / "cond.yaml"
    path.write_text(
        "name: cond\ntrainable: tests.search_trainables:conditional\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 4, max_steps: 2}\nseed: 0\nsearch: {algorithm: optuna}\n"
        "space:\n  optimizer:\n    choice:\n      adam: {beta1: {float: [0.8, 0.99]}}\n      sgd: {}\n"
        "  layers: {count: [1, 2], each: {width: {int: [8, 64]}}}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "scalehp.cli", "plan", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "  optimizer.beta1  float [0.8, 0.99]  (when optimizer = adam)" in out
    assert "  layers.2.width   int [8, 64]  (when layers >= 2)" in out
    assert "suggests    first 3 configs" in out
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: g\ntrainable: tests.trainables:quadratic\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 2, max_steps: 2}\nsearch: {algorithm: grid}\nspace:\n  x: {grid: [0.1, 0.2]}\n  o: {choice: [a, b]}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "scalehp.cli", "plan", str(grid)], capture_output=True, text=True, check=True
    ).stdout
    assert "grid        4 points, each run 2 time(s)" in out and "trials      8 (2 samples x 4 grid points)" in out
    assert "finite      4 distinct configs" in out and "x=0.2, o=b" in out


@pytest.mark.parametrize("algorithm", ["hyperopt", "optuna"])
def test_warm_points_of_a_conditional_space_enter_the_searchers_history(algorithm):
    import dataclasses

    from scalehp.runner.search import _base_searcher

    plan = compile_plan(experiment(search={"algorithm": algorithm, "initial_points": 3}))
    points = tuple(
        {
            "config": sample_config(plan.experiment.space, seed),
            "values": [float(seed)],
            "run_id": "r",
            "trial_id": str(seed),
        }
        for seed in range(6)
    )
    searcher = _base_searcher(dataclasses.replace(plan, warm_start=points))
    if algorithm == "hyperopt":
        history = searcher._hpopt_trials.trials
        assert len(history) == 6 and [t["result"]["loss"] for t in history] == [float(s) for s in range(6)]
    else:
        history = searcher._ot_study.trials
        assert len(history) == 6 and [t.value for t in history] == [float(s) for s in range(6)]
    # past the 3 random configs, the model now suggests from this history; configs stay well-formed
    nodes = flatten_space(plan.experiment.space)
    for i in range(4):
        config = searcher.suggest(str(i))
        assert config == resolve(nodes, {n.label: config[n.name] for n in nodes if n.name in config})
        searcher.on_trial_complete(str(i), {"loss": 1.0})


@pytest.mark.parametrize(
    "search, metric",
    [
        ({"algorithm": "optuna", "sampler": "tpe"}, {"name": "loss", "mode": "min"}),
        ({"algorithm": "optuna", "sampler": "cmaes"}, {"name": "loss", "mode": "min"}),
        ({"algorithm": "optuna", "sampler": "nsga2"}, [{"name": "loss", "mode": "min"}, {"name": "acc", "mode": "max"}]),
        ({"algorithm": "optuna"}, [{"name": "loss", "mode": "min"}, {"name": "acc", "mode": "max"}]),
        ({"algorithm": "optuna", "sampler": "gp", "initial_points": 3}, {"name": "loss", "mode": "min"}),
        ({"algorithm": "optuna", "sampler": "gp", "initial_points": 3}, [{"name": "loss", "mode": "min"}, {"name": "acc", "mode": "max"}]),
    ],
)
def test_optuna_searchers_survive_pickling_and_ray_snapshots(tmp_path, search, metric):
    """Ray pickles the searcher when the Tuner is built and in every snapshot (Optuna 5.1's NSGA-II holds a lock)."""
    from ray import cloudpickle

    from scalehp.runner.search import _base_searcher

    space = {"x": {"float": [0.0, 1.0]}, "n": {"int": [1, 8]}}
    plan = compile_plan(experiment(space=space, search=search, metric=metric))
    searcher = _base_searcher(plan)
    names = [m["name"] for m in (metric if isinstance(metric, list) else [metric])]
    for i in range(6):  # enough finished trials for the samplers to use their models
        config = searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {name: config["x"] * (j + 1) for j, name in enumerate(names)})
    copy = cloudpickle.loads(cloudpickle.dumps(searcher))  # what Tuner.__init__ does
    assert copy.suggest("next") == searcher.suggest("next")  # same state, same seeded draw
    searcher.save(str(tmp_path / "searcher.pkl"))  # Ray's OptunaSearch.save: plain pickle of its state
    restored = _base_searcher(plan)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert len(restored._ot_study.trials) == len(searcher._ot_study.trials)
    restored.on_trial_complete("next", {name: 0.5 for name in names})
    assert 0.0 <= restored.suggest("after")["x"] <= 1.0


def test_the_gp_sampler_is_optunas_and_warns_where_it_slows():
    from scalehp.runner import samplers
    from scalehp.runner.search import optuna_sampler

    space = {"x": {"float": [0.0, 1.0]}, "opt": {"choice": ["a", "b"]}}
    plan = compile_plan(experiment(space, search={"algorithm": "optuna", "sampler": "gp", "initial_points": 4}))
    assert plan.searcher == "optuna GP (Gaussian-process BO)" and not plan.warnings
    made = optuna_sampler(plan)
    assert isinstance(made, samplers.GPSampler) and made._n_startup_trials == 4
    big = compile_plan(experiment(space, search={"algorithm": "optuna", "sampler": "gp"}, budget={"samples": 2000, "max_steps": 1}))
    assert any("sampler gp fits a Gaussian process" in w for w in big.warnings)
