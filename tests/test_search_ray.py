"""Conditional spaces, several metrics and warm start under real Ray Tune (small runs)."""

from __future__ import annotations

import json
import math

import pytest

from scalehp.compiler import compile_plan
from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.runner.search import first_suggestions
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray

SPACE = {
    "optimizer": {
        "choice": {
            "adam": {"beta1": {"float": [0.8, 0.99]}},
            "sgd": {"momentum": {"float": [0.0, 0.9]}},
            "lbfgs": None,
        }
    },
    "layers": {"count": [1, 3], "each": {"width": {"int": [16, 128], "log": True}}},
    "lr": {"float": [1e-4, 1.0], "log": True},
    "tag": "c",
}


def conditional(tmp_path, algorithm, **changes):
    data = {
        "name": f"cond-{algorithm}",
        "trainable": "tests.search_trainables:conditional",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 8, "max_steps": 2},
        "seed": 1,
        "concurrency": 1,
        "space": SPACE,
        "search": {"algorithm": algorithm, **({"initial_points": 4} if algorithm != "random" else {})},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


@pytest.mark.parametrize("algorithm", ["random", "hyperopt", "optuna"])
def test_conditional_space_rows_respect_conditions(ray_local, tmp_path, algorithm):
    plan = compile_plan(conditional(tmp_path, algorithm))
    summary = run(plan)
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    # the trainable raises unless its config holds exactly the active params
    assert len(trials) == 8 and (trials["status"] == "completed").all(), trials["error"].dropna().tolist()
    for frame in (trials, reports):
        adam, sgd = frame["param_optimizer"] == "adam", frame["param_optimizer"] == "sgd"
        assert frame.loc[adam, "param_optimizer_beta1"].notna().all()
        assert frame.loc[~adam, "param_optimizer_beta1"].isna().all()
        assert frame.loc[sgd, "param_optimizer_momentum"].notna().all()
        assert frame.loc[~sgd, "param_optimizer_momentum"].isna().all()
        for i in (1, 2, 3):
            column = frame[f"param_layers_{i}_width"]
            assert column[frame["param_layers"] >= i].notna().all()
            assert column[frame["param_layers"] < i].isna().all()
    assert set(trials["param_tag"]) == {"c"}
    # column types are stable: widths stay integers even where some are null
    schema = results.table("trials").schema
    assert str(schema.field("param_layers_2_width").type) == "int64"
    assert str(schema.field("param_optimizer_beta1").type) == "double"
    # with one trial at a time, the run starts with exactly the suggestions `plan` shows
    shown = first_suggestions(plan, 3)
    ran = trials.sort_values("started_at").head(3)
    for config, (_, row) in zip(shown, ran.iterrows()):
        assert row["param_optimizer"] == config["optimizer"] and row["param_layers"] == config["layers"]
        assert math.isclose(row["param_lr"], config["lr"])


def test_multi_objective_optuna_and_pareto_front(ray_local, tmp_path):
    from scalehp.analysis.pareto import run_front

    experiment = load_experiment(
        {
            "name": "two",
            "trainable": "tests.search_trainables:two_objectives",
            "metric": [{"name": "accuracy", "mode": "max"}, {"name": "size", "mode": "min"}],
            "budget": {"samples": 10, "max_steps": 1},
            "seed": 0,
            "space": {"width": {"int": [8, 256], "log": True}, "lr": {"float": [0.01, 1.0]}},
            "search": {"algorithm": "optuna"},
            "results": str(tmp_path / "results"),
        }
    )
    summary = run(experiment)
    results = read_results(summary.path)
    trials = results.trials
    assert len(trials) == 10 and (trials["status"] == "completed").all()
    front = run_front(results)
    assert 1 <= len(front) <= 10
    # nothing on the front is dominated by any trial
    for _, a in front.iterrows():
        for _, b in trials.iterrows():
            better = b["metric_accuracy"] >= a["metric_accuracy"] and b["metric_size"] <= a["metric_size"]
            strictly = b["metric_accuracy"] > a["metric_accuracy"] or b["metric_size"] < a["metric_size"]
            assert not (better and strictly)
    # and every trial off the front is dominated by one on it
    off = trials[~trials["trial_id"].isin(front["trial_id"])]
    for _, b in off.iterrows():
        assert ((front["metric_accuracy"] >= b["metric_accuracy"]) & (front["metric_size"] <= b["metric_size"])).any()
    # `results show` marks the front
    from click.testing import CliRunner

    from scalehp.cli import main

    out = CliRunner().invoke(main, ["results", "show", str(summary.path), "--top", "0", "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert len(rows) == 10
    assert {r["trial_id"] for r in rows if r["pareto"] == "yes"} == set(front["trial_id"])


def branin_experiment(tmp_path, algorithm, seed, samples, **search):
    return load_experiment(
        {
            "name": f"branin-{algorithm}",
            "trainable": "tests.search_trainables:branin",
            "metric": {"name": "value", "mode": "min"},
            "budget": {"samples": samples, "max_steps": 1},
            "seed": seed,
            "space": {"x1": {"float": [-5.0, 10.0]}, "x2": {"float": [0.0, 15.0]}},
            "search": {"algorithm": algorithm, "initial_points": 10, **search},
            "results": str(tmp_path / "results"),
        }
    )


@pytest.mark.parametrize("algorithm", ["optuna", pytest.param("hyperopt", marks=pytest.mark.slow)])
def test_warm_start_reaches_the_earlier_best_sooner(ray_local, tmp_path, algorithm):
    from benchmarks.searchers import run_searcher

    earlier = run(branin_experiment(tmp_path, algorithm, 0, 20))
    trials = read_results(earlier.path).trials
    warm = {"runs": [str(earlier.path)]}

    # plan carries every earlier trial over, best first, with its known result
    plan = compile_plan(branin_experiment(tmp_path, algorithm, 1, 6, warm_start=warm))
    assert len(plan.warm_start) == 20
    assert plan.warm_start[0]["values"] == [pytest.approx(trials["metric_value"].min())]
    best_row = trials.loc[trials["metric_value"].idxmin()]
    assert plan.warm_start[0]["config"] == {"x1": best_row["param_x1"], "x2": best_row["param_x2"]}
    from scalehp.cli.experiment import describe_plan

    text = "\n".join(describe_plan(plan))
    assert "warm start  20 earlier trials carried over with their results" in text
    assert f"{earlier.run_id}/{best_row['trial_id']}" in text
    # a warm-started run runs (the earlier trials are history, not re-run)
    later = run(plan)
    assert later.trials == 6 and later.errors == 0

    # trials needed to get within 2x of the earlier best, warm vs cold, median over seeds
    target = 2 * trials["metric_value"].min()

    def reach(values):
        return next((i + 1 for i, v in enumerate(values) if v <= target), len(values) + 1)

    name = "optuna-tpe" if algorithm == "optuna" else "hyperopt"
    seeds = range(1, 8)
    cold = sorted(reach(run_searcher(name, seed, 15)) for seed in seeds)
    hot = sorted(reach(run_searcher(name, seed, 15, warm_start=warm)) for seed in seeds)
    assert hot[len(hot) // 2] < cold[len(cold) // 2], (hot, cold)
