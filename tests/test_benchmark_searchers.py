"""The search benchmark's honest result: model-based searchers beat random search on Branin."""

from __future__ import annotations

import pytest

from benchmarks.searchers import compare, run_searcher


def test_runs_repeat_exactly_with_a_seed():
    for name in ("random", "hyperopt", "optuna-tpe"):
        assert run_searcher(name, 3, 12) == run_searcher(name, 3, 12)
        assert run_searcher(name, 3, 12) != run_searcher(name, 4, 12)


@pytest.mark.slow
def test_tpe_and_optuna_beat_random_at_equal_budget():
    table = compare(budget=40, seeds=10)
    random_best = table["random"]["median_best"]
    assert table["hyperopt"]["median_best"] < random_best
    assert table["optuna-tpe"]["median_best"] < random_best
    # and they get close to the minimum (0.397887) sooner
    assert table["hyperopt"]["median_evals_to_threshold"] < table["random"]["median_evals_to_threshold"]
    assert table["optuna-tpe"]["median_evals_to_threshold"] < table["random"]["median_evals_to_threshold"]
