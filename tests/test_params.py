"""Param kinds answer for themselves, and param columns carry their names (no Ray needed)."""

from __future__ import annotations

import random
import types

import pyarrow as pa
import pytest
from pydantic import TypeAdapter

from scalehp.analysis import importance
from scalehp.results.schema import column_name, param_fields, param_names
from scalehp.results.sink import ParquetSink
from scalehp.results.store import read_results
from scalehp.space import Param, flatten_space
from tests.results_factory import T0, write_plan


def space_of(raw: dict) -> dict:
    return TypeAdapter(dict[str, Param]).validate_python(raw)


def param(raw) -> object:
    return space_of({"p": raw})["p"]


def test_each_kind_answers_for_itself():
    lr = param({"float": [1e-4, 1e-1], "log": True})
    assert lr.numeric and not lr.integer and lr.searched and not lr.nested and lr.log_scale
    assert lr.fits(0.01) and not lr.fits(1.0) and not lr.fits(True) and not lr.fits("0.01")
    assert lr.clip(5.0) == 0.1 and lr.clip(0.0) == 1e-4 and lr.finite_values() is None and lr.size() is None
    assert lr.arrow_type == pa.float64()

    width = param({"int": [0, 10], "step": 5})
    assert width.integer and not width.log_scale and list(width.finite_values()) == [0, 5, 10] and width.size() == 3
    assert width.clip(3.7) == 5 and width.clip(99) == 10 and width.fits(5) and not width.fits(4.5)
    assert not width.fits(4)  # off the step: a stepped param takes the multiples of its step only
    assert width.arrow_type == pa.int64()
    assert param({"int": [-(2**63), 2**63 - 1]}).size() == 2**64  # wider than len() of a range can say

    lognormal = param({"lognormal": [0.0, 1.0]})
    assert lognormal.log_scale and lognormal.fits(0.5) and not lognormal.fits(-0.5) and not lognormal.fits(float("inf"))
    normal = param({"normal": [0.0, 1.0]})
    assert not normal.log_scale and normal.fits(-0.5) and normal.clip(-7.0) == -7.0

    choice = param({"choice": ["a", "b"]})
    assert choice.finite_values() == ["a", "b"] and choice.fits("a") and not choice.fits("c")
    assert choice.arrow_type == pa.string() and choice.size() == 2
    grid = param({"grid": [1, 2, 3]})
    assert grid.kind == "grid" and grid.finite_values() == [1, 2, 3] and grid.arrow_type == pa.int64()
    constant = param(7)
    assert not constant.searched and constant.finite_values() == [7] and constant.fits("anything")

    conditional = param({"choice": {"adam": {"lr": {"float": [0.1, 0.2]}}, "sgd": None}})
    assert conditional.nested and conditional.finite_values() == ["adam", "sgd"] and conditional.size() is None
    assert conditional.fits("sgd") and not conditional.fits("lbfgs")
    count = param({"count": [1, 3], "each": {"w": {"choice": [1, 2]}}})
    assert count.nested and count.integer and count.size() == 2 + 4 + 8 and count.clip(7.2) == 3
    assert count.sub_nodes() == 3


def test_searchers_clip_values_into_the_domain():
    from scalehp.runner.search import config_from, has_domain

    nodes = flatten_space(space_of({"lr": {"float": [0.1, 0.2]}, "n": {"int": [1, 9], "step": 2}, "k": 3}))
    # n takes the multiples of 2 in [1, 9]: 2, 4, 6, 8
    assert config_from(nodes, {"lr": 0.5, "n": 4.2}) == {"lr": 0.2, "n": 4, "k": 3}
    assert config_from(nodes, {"lr": 0.5, "n": 9}) == {"lr": 0.2, "n": 8, "k": 3}
    assert not has_domain(param({"lognormal": [0.0, 1.0]})) and has_domain(param({"normal": [0.0, 1.0]}))


def test_pbt_clip_keeps_ints_on_their_step():
    from scalehp.runner.population import _clip

    space = space_of({"lr": {"float": [0.1, 0.2]}, "n": {"int": [0, 10], "step": 5}})
    assert _clip(space)({"lr": 0.3, "n": 6.6}) == {"lr": 0.2, "n": 5}


NESTED = {
    "optimizer": {"choice": {"adam": {"lr": {"float": [1e-4, 1e-1], "log": True}}, "sgd": {"lr": {"float": [1e-4, 1e-1], "log": True}}}},
    "depth": {"int": [1, 4]},
}


def nested_run(root, names: bool = True):
    space = space_of(NESTED)
    columns = {n.name: column_name("param", n.name) for n in flatten_space(space)}
    run_dir = root / "nested" / "n-1"
    write_plan(run_dir, "n-1", "nested", "loss", "min", NESTED, columns=columns)
    fields = param_fields(space, columns)
    if not names:  # as runs written before param columns recorded their names
        fields = [f.remove_metadata() for f in fields]
    sink = ParquetSink(run_dir, fields)
    rng = random.Random(0)
    for t in range(12):
        lr, depth = 10 ** rng.uniform(-4, -1), rng.randint(1, 4)
        params = {"param_optimizer": rng.choice(["adam", "sgd"]), "param_optimizer_lr": lr, "param_depth": depth}
        loss = abs(lr - 0.001) + depth * 1e-6
        row = {"run_id": "n-1", "experiment": "nested", "trial_id": f"t{t:02d}", "status": "completed"}
        row.update(steps=1, best_value=loss, best_step=1, retries=0, started_at=T0, ended_at=T0 + 1)
        sink.add("trials", {**row, **params, "metric_loss": loss})
    sink.close()
    return run_dir


@pytest.mark.parametrize("names", [True, False])
def test_param_columns_carry_their_dotted_names(tmp_path, names):
    res = read_results(nested_run(tmp_path, names))
    trials = res.trials
    assert param_names(trials) == {
        "param_optimizer": "optimizer",
        "param_optimizer_lr": "optimizer.lr",
        "param_depth": "depth",
    }  # from the field metadata, or from plan.json's columns for runs written before
    if names:
        field = res.table("trials").schema.field("param_optimizer_lr")
        assert field.metadata == {b"scalehp.name": b"optimizer.lr"}


def test_importance_names_params_and_respects_log_from_the_plan(tmp_path, monkeypatch):
    res = read_results(nested_run(tmp_path))
    space = res.plans["n-1"]["experiment"]["space"]
    assert importance.log_scaled(space) == {"optimizer": False, "optimizer.lr": True, "depth": False}
    assert importance.log_scaled({"lr": {"float": "nonsense"}}) == {} and importance.log_scaled([1]) == {}
    seen = {}
    real = importance._distribution

    def record(values, log):
        seen[values.name] = log
        return real(values, log)

    monkeypatch.setattr(importance, "_distribution", record)
    ranked = importance.param_importance(res.trials, "min", space=space)
    assert set(ranked["param"]) == {"optimizer", "optimizer.lr", "depth"}
    assert seen == {"param_optimizer": False, "param_optimizer_lr": True, "param_depth": False}
    again = importance.param_importance(res.trials, "min", params=["optimizer.lr", "depth"], space=space)
    assert set(again["param"]) == {"optimizer.lr", "depth"}


def test_pbt_lognormal_mutations_repeat_with_the_experiment_seed(tmp_path):
    """PBT resamples a lognormal param through a function: its draws follow ``seed``, not the global RNG."""
    from scalehp.compiler import compile_plan
    from scalehp.runner.population import population_scheduler
    from scalehp.spec import load_experiment

    def draws(seed):
        data = {
            "name": "pbt",
            "trainable": "experiments.trainables.schedule:train",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 4, "max_steps": 10},
            "seed": seed,
            "space": {"lr": {"lognormal": [-4.0, 1.0]}, "opt": {"choice": ["a", "b"]}, "n": {"int": [1, 8]}},
            "scheduler": {"pbt": {"mutate": ["lr", "opt", "n"]}},
            "results": str(tmp_path / "results"),
        }
        recorder = types.SimpleNamespace(decide=lambda row: None, set_config=lambda *args: None)
        pbt = population_scheduler(compile_plan(load_experiment(data)), "training_iteration", recorder)
        mutations = pbt._hyperparam_mutations
        assert mutations["opt"] == ["a", "b"] and not callable(mutations["n"])
        random.seed(seed + 1)  # the global RNG (Ray's own draws) does not change them
        return [mutations["lr"]() for _ in range(3)]

    assert draws(3) == draws(3) != draws(4)
