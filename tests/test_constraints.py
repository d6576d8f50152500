"""Constraint metrics (``constraints``: feasible when <= 0, Optuna's convention): only feasible
reports make a trial's best, reach the goal or join the Pareto front, and optuna's samplers are
told each trial's values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from scalehp.analysis.pareto import feasible
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.spec import load_experiment
from tests.test_recorder import FakeClock, _recorder


def _data(tmp_path, **changes):
    data = {
        "name": "constrained",
        "trainable": "tests.stops_trainables:constrained",
        "metric": {"name": "loss", "mode": "min"},
        "constraints": ["over"],
        "budget": {"samples": 12, "max_steps": 2},
        "seed": 0,
        "space": {"x": {"float": [0.0, 1.0]}},
        "search": {"algorithm": "optuna"},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return data


def test_a_report_that_breaks_a_constraint_is_neither_a_best_nor_a_goal(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock, constraints=["over"], metric={"name": "loss", "mode": "min", "goal": 0.05})
    recorder.start("a", {"x": 0.7})
    recorder.report("a", 1, {"loss": 0.01, "over": 0.2})  # best value, but infeasible: the goal is not reached
    assert recorder.ended is None and recorder.best is None
    recorder.report("a", 2, {"loss": 0.3, "over": -0.1})
    recorder.report("a", 3, {"loss": 0.2})  # the constraint not reported: not met
    assert recorder.best == (0.3, "a")
    recorder.end_trial("a")
    recorder.close()
    from scalehp.results.store import read_results

    tables = read_results(run_dir)
    row = tables.trials.iloc[0]
    assert row["best_value"] == 0.3 and row["best_step"] == 2
    again, _ = _recorder(tmp_path / "again", clock, constraints=["over"])
    again.seed(tables.trials.iloc[0:0], tables.reports, tables.events, tables.metric_columns)
    assert again.trials["a"].best == 0.3 and again.best == (0.3, "a")


def test_a_constraint_that_is_an_objective_is_refused(tmp_path):
    with pytest.raises(SpecError, match="an objective and a constraint"):
        load_experiment(_data(tmp_path, constraints=["loss"]))
    with pytest.raises(SpecError, match="twice"):
        load_experiment(_data(tmp_path, constraints=["over", "over"]))


def test_a_searcher_that_does_not_model_constraints_says_so(tmp_path):
    plan = compile_plan(load_experiment(_data(tmp_path, search={"algorithm": "hyperopt"})))
    assert any("hyperopt does not model constraints" in w for w in plan.warnings)
    plan = compile_plan(load_experiment(_data(tmp_path)))
    assert not any("constraints" in w for w in plan.warnings)


def test_optunas_sampler_is_told_each_trials_constraint_values(tmp_path):
    from scalehp.runner.search import _base_searcher

    search = _base_searcher(compile_plan(load_experiment(_data(tmp_path))))
    for i in range(6):
        config = search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", result={"loss": (config["x"] - 0.7) ** 2, "over": config["x"] - 0.5})
    trials = search._ot_study.trials
    assert len(trials) == 6
    for trial in trials:  # what optuna's TPE reads (Trial.set_constraint)
        assert trial.constraints == {"over": pytest.approx(trial.params["x"] - 0.5)}


def test_the_pareto_front_leaves_out_trials_that_break_a_constraint():
    trials = pd.DataFrame({"run_id": ["r"] * 3, "trial_id": ["a", "b", "c"], "metric_over": [-1.0, 0.5, math.nan]})
    plans = {"r": {"experiment": {"constraints": ["over"]}}}
    assert list(feasible(trials, plans)["trial_id"]) == ["a"]
    assert list(feasible(trials, {"r": {"experiment": {}}})["trial_id"]) == ["a", "b", "c"]


@pytest.mark.ray
def test_a_constrained_run_ranks_only_feasible_trials(ray_local, tmp_path):
    from scalehp.results.store import read_results
    from scalehp.runner import run

    summary = run(load_experiment(_data(tmp_path)))
    tables = read_results(summary.path)
    trials = tables.trials
    assert summary.best_params["x"] <= 0.5  # the unconstrained best is near 0.7
    infeasible = trials[trials["metric_over"] > 0]
    assert len(infeasible) and infeasible["best_value"].isna().all()


# ---------------------------------------------------------------------------
# Infeasible configs (Determined's InvalidHP): their own status, no failure, the searcher told


@pytest.mark.ray
@pytest.mark.parametrize("runtime", ["tune", "swarm"])
def test_an_infeasible_config_is_its_own_status_not_a_failure(ray_local, tmp_path, runtime):
    from scalehp.results.store import read_results
    from scalehp.runner import run

    data = _data(
        tmp_path,
        trainable="tests.stops_trainables:infeasible_above",
        constraints=[],
        budget={"samples": 1, "max_steps": 3},
        space={"x": {"grid": [0.2, 0.6, 0.4, 0.8]}},
        search={"algorithm": "grid"},
        failure={"max_failed_trials": 1, "max_retries": 2},  # an infeasible trial is neither retried nor a failure
        **({"runtime": {"swarm": {"batch_size": 1}}} if runtime == "swarm" else {}),
    )
    summary = run(load_experiment(data))
    trials = read_results(summary.path).trials.set_index("param_x")
    assert summary.ended is None and summary.infeasible == 2 and summary.errors == 0
    assert list(trials.loc[[0.6, 0.8], "status"]) == ["infeasible"] * 2
    assert trials.loc[0.6, "error"] == "x = 0.6 does not fit" and (trials.loc[[0.6, 0.8], "retries"].fillna(0) == 0).all()
    assert list(trials.loc[[0.2, 0.4], "status"]) == ["completed"] * 2
    assert summary.best_params == {"x": 0.2}


def test_a_command_says_its_config_is_infeasible_with_a_line(tmp_path):
    from scalehp.command import run_command
    from scalehp.errors import Infeasible
    from scalehp.spec import Command
    from scalehp.trial import LocalTrial

    program = tmp_path / "prog.py"
    program.write_text("import time\nprint('loss=1')\nprint('Infeasible: batch 512 does not fit')\ntime.sleep(60)\n")
    trial = LocalTrial(max_steps=3, metric="loss")
    with pytest.raises(Infeasible, match="batch 512 does not fit"):
        run_command(Command(run=["${python}", str(program)]), {}, trial)
    assert trial.reports == [{"step": 1, "loss": 1.0}]


def test_optuna_is_told_an_infeasible_trial_failed(tmp_path):
    from scalehp.results.schema import INFEASIBLE
    from scalehp.runner.search import _base_searcher

    search = _base_searcher(compile_plan(load_experiment(_data(tmp_path, constraints=[]))))
    search.suggest("t0")
    search.on_trial_complete("t0", result={"loss": math.nan, INFEASIBLE: "too big"})
    assert search._ot_study.trials[0].state.name == "FAIL"
