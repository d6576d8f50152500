"""Integration tests: real Ray, real Tune, real Parquet. Nothing mocked."""

from __future__ import annotations

import pytest

from scalehp.errors import SpecError
from scalehp.results.store import read_results
from scalehp.runner import param_space, run
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray


def experiment(tmp_path, **changes):
    data = {
        "name": "quad",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 12, "max_steps": 9},
        "seed": 0,
        "space": {"x": {"float": [-1.0, 1.0]}, "label": "const"},
        "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


def test_asha_run_writes_consistent_tables(ray_local, tmp_path):
    summary = run(experiment(tmp_path))
    results = read_results(summary.path)
    trials, reports, events = results.trials, results.reports, results.events

    assert len(trials) == 12 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "stopped"}
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) >= 4, "ASHA should stop most of 12 trials early"
    assert (stopped["steps"] < 9).all() and (trials[trials["status"] == "completed"]["steps"] == 9).all()

    # one report row per step each trial ran, with the config in effect and the metrics
    assert len(reports) == trials["steps"].sum()
    assert not reports.duplicated(["trial_id", "step"]).any()
    assert (reports["metric_x_seen"] == reports["param_x"]).all()
    assert (reports["param_label"] == "const").all()
    expected = (reports["param_x"] - 0.3) ** 2 + 1.0 / reports["step"]
    assert ((reports["metric_loss"] - expected).abs() < 1e-9).all()

    # every early stop is an ASHA event at the trial's last step, below the rung's cutoff
    stops = events[events["action"] == "stop"].set_index("trial_id")
    assert set(stops.index) == set(stopped["trial_id"])
    for _, trial in stopped.iterrows():
        event = stops.loc[trial["trial_id"]]
        assert event["step"] == trial["steps"] == event["rung"]
        assert event["value"] > event["cutoff"]
    # the trials table's best value is the minimum over the trial's reports
    best = reports.groupby("trial_id")["metric_loss"].min()
    assert (trials.set_index("trial_id")["best_value"] - best).abs().max() < 1e-12

    assert summary.trials == 12 and summary.stopped == len(stopped)
    assert summary.best_value == pytest.approx(trials["best_value"].min())
    assert abs(summary.best_params["x"] - 0.3) < 0.5
    plan = results.plans[summary.run_id]
    assert plan["versions"]["ray"].startswith("2.60") and plan["experiment"]["name"] == "quad"
    # Ray's own per-trial logs are off: no result.json/progress.csv anywhere
    assert not list(summary.path.rglob("result.json")) and not list(summary.path.rglob("progress.csv"))


def test_seeded_random_search_repeats(ray_local, tmp_path):
    configs = []
    for _ in range(2):
        summary = run(experiment(tmp_path, scheduler="fifo", budget={"samples": 4, "max_steps": 2}))
        configs.append(sorted(read_results(summary.path).trials["param_x"]))
    assert configs[0] == configs[1]


def test_failing_trials_are_rows_not_exceptions(ray_local, tmp_path):
    summary = run(
        experiment(
            tmp_path, trainable="tests.trainables:always_fails", budget={"samples": 2, "max_steps": 3}, scheduler="fifo"
        )
    )
    trials = read_results(summary.path).trials
    assert trials["status"].tolist() == ["error", "error"]
    assert all("boom: this trainable always fails" in e for e in trials["error"])
    assert summary.errors == 2


def test_nan_ranks_last_under_asha(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        trainable="tests.trainables:nan_for_some",
        space={"x": {"grid": [0.1, 0.2, 0.3, 0.4, 0.5, -0.5, -0.4, -0.3, -0.2]}},
        budget={"samples": 1, "max_steps": 9},
        concurrency=1,
    )
    results = read_results(run(exp).path)
    trials = results.trials.set_index("param_x")
    nan_trials = trials.loc[[-0.5, -0.4, -0.3, -0.2]]
    assert (nan_trials["status"] == "stopped").sum() >= 3, "NaN must count as the worst value"
    assert nan_trials["best_value"].isna().all()


def test_plain_ray_tune_function_runs_unchanged(ray_local, tmp_path):
    summary = run(
        experiment(
            tmp_path, trainable="tests.trainables:plain_ray", budget={"samples": 3, "max_steps": 5}, scheduler="fifo"
        )
    )
    results = read_results(summary.path)
    assert results.trials["status"].tolist() == ["completed"] * 3
    assert sorted(results.reports["step"].tolist()) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5]


@pytest.mark.parametrize("algorithm", ["grid", "hyperopt", "optuna"])
def test_searchers_run(ray_local, tmp_path, algorithm):
    space = (
        {"x": {"choice": [0.1, 0.3, 0.5]}}
        if algorithm == "grid"
        else {"x": {"float": [-1.0, 1.0]}, "n": {"int": [1, 4]}}
    )
    exp = experiment(
        tmp_path, space=space, search={"algorithm": algorithm}, budget={"samples": 4, "max_steps": 3}, scheduler="fifo"
    )
    results = read_results(run(exp).path)
    expected = 12 if algorithm == "grid" else 4
    assert len(results.trials) == expected
    if algorithm == "grid":
        assert sorted(set(results.trials["param_x"])) == [0.1, 0.3, 0.5]
    else:
        assert results.trials["param_n"].between(1, 4).all()


def test_param_space_bounds_are_inclusive():
    from ray.tune.search.sample import Integer

    exp = load_experiment(
        {
            "name": "s",
            "trainable": "tests.trainables:quadratic",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 1, "max_steps": 1},
            "space": {"a": {"int": [1, 3]}, "b": {"int": [1, 100], "log": True}, "c": {"int": [0, 10], "step": 5}},
        }
    )
    space = param_space(exp)
    values = {name: {space[name].sample() for _ in range(300)} for name in "abc"}
    assert values["a"] == {1, 2, 3}
    assert max(values["b"]) <= 100 and min(values["b"]) >= 1
    assert values["c"] == {0, 5, 10}
    assert isinstance(space["a"], Integer)


def test_impossible_resources_fail_before_any_trial(ray_local, tmp_path):
    with pytest.raises(SpecError, match="one trial needs .*GPU=2.*largest node has") as info:
        run(experiment(tmp_path, resources={"cpu": 1, "gpu": 2}))
    assert info.value.path == "resources"
    assert not (tmp_path / "results").exists()
