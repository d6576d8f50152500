"""Ending a run early (metric.goal, failure.max_failed_trials, budget.time_limit) and metric
names as users write them (val/loss next to val_loss), on real Ray."""

from __future__ import annotations

import html
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from scalehp.analysis.report import render
from scalehp.analysis.tables import runs
from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.results.schema import metric_column, metric_names
from scalehp.results.store import read_results
from scalehp.runner import resume, run
from scalehp.spec import load_experiment


def experiment(tmp_path, **changes):
    data = {
        "name": "stops",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 1, "max_steps": 9},
        "seed": 0,
        "concurrency": 1,
        "space": {"x": {"grid": [0.3, 0.9, 0.8, 0.7, 0.6, 0.5]}},
        "search": {"algorithm": "grid"},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


# ---------------------------------------------------------------------------
# Compile time


def test_max_failed_trials_with_fail_fast_is_an_error(tmp_path):
    exp = experiment(tmp_path, failure={"fail_fast": True, "max_failed_trials": 3})
    with pytest.raises(SpecError, match=r"failure\.max_failed_trials: fail_fast already ends the run"):
        compile_plan(exp)


def test_goal_belongs_to_the_first_metric(tmp_path):
    metrics = [{"name": "loss", "mode": "min", "goal": 0.1}, {"name": "acc", "mode": "max", "goal": 0.9}]
    exp = experiment(
        tmp_path, metric=metrics, search={"algorithm": "optuna"}, space={"x": {"float": [0, 1]}}, concurrency=None
    )
    with pytest.raises(SpecError, match=r"metric\.1\.goal: a goal ends the run on the first metric only"):
        compile_plan(exp)
    metrics[1].pop("goal")
    exp = experiment(
        tmp_path, metric=metrics, search={"algorithm": "optuna"}, space={"x": {"float": [0, 1]}}, concurrency=None
    )
    assert compile_plan(exp).experiment.metric.goal == 0.1


def test_a_cap_above_the_trials_is_a_warning(tmp_path):
    plan = compile_plan(experiment(tmp_path, failure={"max_failed_trials": 7}))
    assert any("max_failed_trials (7) is more than the 6 trials" in w for w in plan.warnings)


def test_plan_shows_names_as_written_goal_and_cap(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: names\n"
        "trainable: tests.stops_trainables:slash_and_underscore\n"
        "metric: [{name: metrics/mAP_0.5, mode: max, goal: 0.9}, {name: val/loss, mode: min}, {name: val_loss, mode: min}]\n"
        "budget: {samples: 4, max_steps: 3}\n"
        "failure: {max_failed_trials: 2, max_retries: 1}\n"
        "search: {algorithm: optuna}\n"
        "space: {x: {float: [0, 1]}}\n"
    )
    out = CliRunner().invoke(main, ["plan", str(path), "--suggestions", "0"])
    assert out.exit_code == 0, out.output
    lines = {line[:11].strip(): line[12:] for line in out.output.splitlines() if line[:11].strip()}
    assert lines["metric"].startswith("metrics/mAP_0.5 (max), val/loss (min), val_loss (min)")
    # declared names claim columns in the rule's order: val_loss keeps the readable one
    assert lines["columns"] == "metrics/mAP_0.5 -> metric_metrics_mAP_0_5, val/loss -> metric_val_loss__0ba428"
    assert lines["ends early"] == (
        "once a trial reaches metrics/mAP_0.5 >= 0.9 (metric.goal), "
        "or once 2 trials have failed (failure.max_failed_trials)"
    )
    data = __import__("json").loads(CliRunner().invoke(main, ["plan", str(path), "--format", "json"]).output)
    assert data["metric_columns"] == {
        "metrics/mAP_0.5": "metric_metrics_mAP_0_5",
        "val/loss": "metric_val_loss__0ba428",
        "val_loss": "metric_val_loss",
    }
    assert data["experiment"]["metric"]["name"] == "metrics/mAP_0.5"


# ---------------------------------------------------------------------------
# On Ray


@pytest.mark.ray
def test_goal_ends_the_run_and_resume_runs_nothing_more(ray_local, tmp_path):
    # x = 0.3 runs first: loss (x - 0.3)**2 + 1/step reaches 0.6 at step 2
    summary = run(experiment(tmp_path, metric={"name": "loss", "mode": "min", "goal": 0.6}))
    results = read_results(summary.path)
    trials, events = results.trials, results.events
    assert summary.trials == len(trials) < 6, "the goal must end the run before every trial ran"
    first = trials[trials["param_x"] == 0.3].iloc[0]
    assert first["status"] == "stopped" and first["best_value"] <= 0.6
    assert set(trials["status"]) == {"stopped"}, "trials running at the end are stopped rows"
    ends = events[events["action"] == "end"]
    assert len(ends) == 1
    end = ends.iloc[0]
    assert end["reason"] == "metric.goal" and end["trial_id"] == first["trial_id"]
    assert end["value"] == pytest.approx(0.5) and end["cutoff"] == 0.6 and end["step"] == 2
    assert summary.ended == f"goal loss <= 0.6 reached by trial {first['trial_id']} at step 2 (loss = 0.5; metric.goal)"
    reports = results.reports
    assert len(reports) == trials["steps"].sum() and reports["step"].max() <= 3
    assert runs(results)[["trials", "planned", "ended"]].values.tolist() == [[len(trials), 6, "metric.goal"]]
    assert html.escape(f"The run ended early: {summary.ended}.") in render(results)

    again = resume(summary.path)
    assert again.ended == summary.ended and again.trials == summary.trials
    assert len(read_results(summary.path).reports) == len(reports), "a run that reached its goal runs nothing more"
    # the driver died after the goal was reported but before the end was written: the reports tell
    shutil.rmtree(summary.path / "events")
    again = resume(summary.path)
    assert again.ended == summary.ended and len(read_results(summary.path).reports) == len(reports)


@pytest.mark.ray
def test_max_failed_trials_ends_the_run(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        trainable="tests.stops_trainables:fails_below_zero",
        budget={"samples": 1, "max_steps": 2},
        space={"x": {"grid": [-1.0, -2.0, 1.0, -3.0, 2.0, 3.0, -4.0, 4.0]}},
        failure={"max_failed_trials": 2},
    )
    summary = run(exp)
    results = read_results(summary.path)
    trials = results.trials
    assert summary.errors == 2 and (trials["status"] == "error").sum() == 2
    assert summary.trials == len(trials) < 8 and summary.completed <= 1
    last = trials[trials["param_x"] == -2.0].iloc[0]
    assert last["status"] == "error" and "below zero" in last["error"]
    ends = results.events.query("action == 'end'")
    assert ends[["reason", "trial_id", "value", "cutoff"]].values.tolist() == [
        ["failure.max_failed_trials", last["trial_id"], 2.0, 2.0]
    ]
    assert summary.ended == f"2 trials failed (failure.max_failed_trials: 2), the last {last['trial_id']}"


@pytest.mark.ray
def test_time_limit_end_is_reported(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        trainable="tests.stops_trainables:sleepy",
        budget={"samples": 1, "max_steps": 100, "time_limit": 2},
        space={"x": {"grid": [0.1, 0.2, 0.3]}, "sleep": 0.05},
    )
    summary = run(exp)
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert summary.ended.startswith("time limit of 2 s reached after ") and summary.ended.endswith(
        "(budget.time_limit)"
    )
    # on a busy machine the limit may pass before a trial starts: then there is nothing to stop
    assert set(reports["trial_id"]) <= set(trials["trial_id"]), "every trial that reported has a row"
    assert set(trials["status"]) <= {"stopped"} and (trials["steps"].fillna(0) < 100).all()
    assert results.events.query("action == 'end'")["reason"].tolist() == ["budget.time_limit"]


@pytest.mark.ray
@pytest.mark.parametrize("runtime", ["tune", "swarm"])
def test_the_soft_time_limit_starts_no_trial_after_it_and_running_ones_finish(ray_local, tmp_path, runtime):
    """NNI's maxExperimentDuration, Optuna's timeout: trials of about 2 s, one at a time, and no
    start after 6 s: a few trials run, every one of them to its last step."""
    exp = experiment(
        tmp_path,
        trainable="tests.stops_trainables:sleepy",
        budget={"samples": 1, "max_steps": 10, "soft_time_limit": 6},
        space={"x": {"grid": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}, "sleep": 0.2},
        **({"runtime": {"swarm": {"batch_size": 1}}} if runtime == "swarm" else {}),
    )
    summary = run(exp)
    results = read_results(summary.path)
    trials = results.trials
    assert 1 <= len(trials) < 8 and set(trials["status"]) == {"completed"} and (trials["steps"] == 10).all()
    assert results.events.query("action == 'end'")["reason"].tolist() == ["budget.soft_time_limit"]
    assert summary.ended.startswith("no trial started after 6 s")
    created = next(iter(results.plans.values()))["created_at"]
    started = (trials["started_at"] - pd.Timestamp(created)).dt.total_seconds()
    assert started.max() < 6 + 3  # (the run's clock starts a little after created_at)


@pytest.mark.ray
def test_val_slash_loss_and_val_loss_are_two_columns(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        trainable="tests.stops_trainables:slash_and_underscore",
        metric={"name": "val/loss", "mode": "min"},
        budget={"samples": 1, "max_steps": 2},
        space={"x": {"grid": [0.25, 0.5]}},
    )
    summary = run(exp)
    results = read_results(summary.path)
    reports, trials = results.reports, results.trials
    names = metric_names(reports)
    assert sorted(names.values()) == ["val/acc", "val/loss", "val_loss"]
    assert results.metric_columns == {
        "val/loss": "metric_val_loss",  # declared: claimed first, readable
        "val_loss": "metric_val_loss__aa8f15",
        "val/acc": "metric_val_acc",
    }
    slash, underscore = metric_column(reports, "val/loss"), metric_column(reports, "val_loss")
    assert ((reports[slash] - reports["param_x"] - reports["step"]).abs() < 1e-12).all()
    assert ((reports[underscore] - 10 * reports["param_x"] - reports["step"]).abs() < 1e-12).all()
    assert set(metric_names(trials).values()) == {"val/acc", "val/loss", "val_loss"}
    assert summary.best_value == 1.25 and summary.best_metrics == {"val/loss": 2.25, "val_loss": 4.5, "val/acc": -0.25}

    out = CliRunner().invoke(main, ["results", "show", str(summary.path)])
    assert out.exit_code == 0, out.output
    header = next(line for line in out.output.splitlines() if line.lstrip().startswith("rank"))
    assert header.split()[-3:] == ["val/acc", "val/loss", "val_loss"]
