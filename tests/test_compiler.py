from __future__ import annotations

import pytest

from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.spec import load_experiment


def experiment(**changes):
    data = {
        "name": "c",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 27, "max_steps": 27},
        "space": {"x": {"float": [0.0, 1.0]}},
        "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
    }
    data.update(changes)
    return load_experiment(data)


def test_asha_rungs_match_rays_brackets():
    from ray.tune.schedulers.async_hyperband import _Bracket

    for grace, rf, max_steps in [(1, 3, 27), (2, 3, 20), (1, 2, 10), (3, 4, 100), (5, 3, 5)]:
        plan = compile_plan(
            experiment(
                budget={"samples": 27, "max_steps": max_steps},
                scheduler={"asha": {"grace_steps": grace, "reduction_factor": rf}},
            )
        )
        ray_milestones = sorted(int(m) for m, _ in _Bracket(grace, max_steps, rf, 0)._rungs if m < max_steps)
        ours = [r.step for r in plan.rungs]
        assert ours[:-1] == ray_milestones and ours[-1] == max_steps


def test_asha_budget_preview():
    plan = compile_plan(experiment())
    assert [(r.step, r.trials) for r in plan.rungs] == [(1, 27), (3, 9), (9, 3), (27, 1)]
    assert plan.step_budget == 27 * 27
    assert plan.expected_steps == 27 * 1 + 9 * 2 + 3 * 6 + 1 * 18


def test_grace_above_max_steps_is_a_spec_error():
    with pytest.raises(SpecError, match="grace_steps .* above budget.max_steps") as info:
        compile_plan(experiment(scheduler={"asha": {"grace_steps": 30}}))
    assert info.value.path == "scheduler.asha.grace_steps"


def test_grid_counts_and_semantics():
    plan = compile_plan(
        experiment(
            space={"x": {"grid": [1, 2, 3]}, "y": {"grid": ["a", "b"]}, "z": {"float": [0, 1]}},
            budget={"samples": 2, "max_steps": 3},
            scheduler="fifo",
        )
    )
    assert plan.grid_points == 6 and plan.trials == 12


def test_grid_algorithm_enumerates_choices_and_refuses_ranges():
    plan = compile_plan(
        experiment(space={"a": {"choice": [1, 2]}, "b": {"grid": [1, 2, 3]}}, search={"algorithm": "grid"})
    )
    assert plan.grid_points == 6
    with pytest.raises(SpecError, match="cannot enumerate") as info:
        compile_plan(experiment(search={"algorithm": "grid"}))
    assert info.value.path == "space.x"


def test_model_based_searchers_refuse_grid_params():
    for algorithm in ("hyperopt", "optuna"):
        with pytest.raises(SpecError, match="cannot search a grid"):
            compile_plan(experiment(space={"g": {"grid": [1, 2]}}, search={"algorithm": algorithm}))


def test_param_columns_and_collisions():
    plan = compile_plan(experiment(space={"val/lr": {"float": [0, 1]}, "depth": 2}))
    assert plan.columns == {"val/lr": "param_val_lr", "depth": "param_depth"}
    with pytest.raises(SpecError, match="both map to column"):
        compile_plan(experiment(space={"a.b": 1, "a_b": 2}))


def test_warnings_and_digest():
    plan = compile_plan(
        experiment(space={"c": 1}, search={"algorithm": "hyperopt"}, budget={"samples": 5, "max_steps": 27})
    )
    assert any("constant" in w for w in plan.warnings)
    assert any("never models" in w for w in plan.warnings)
    assert compile_plan(experiment()).digest == compile_plan(experiment()).digest
    assert compile_plan(experiment()).digest != compile_plan(experiment(seed=1)).digest


def test_plan_is_json_ready():
    import json

    data = compile_plan(experiment()).to_dict()
    assert json.loads(json.dumps(data))["experiment"]["name"] == "c"


def test_asha_rungs_beyond_a_hundred_are_refused_at_the_reduction_factor():
    """A factor just above 1 over a long budget would make millions of rungs (and hang the plan)."""
    with pytest.raises(SpecError) as caught:
        compile_plan(
            experiment(
                budget={"samples": 4, "max_steps": 10_000_000},
                scheduler={"asha": {"reduction_factor": 1.0000001}},
            )
        )
    assert caught.value.path == "scheduler.asha.reduction_factor" and "more than 100" in caught.value.message
