"""Imported sweeps run as they are: a W&B sweep and a Hydra Optuna sweep, converted and run end to end on Ray.

Both run ``tests/programs/quadratic.py`` through the experiment's ``command`` (one process per trial,
params as ``--name=value`` for W&B and ``name=value`` overrides for Hydra, metrics read from its
``epoch=N val_loss=...`` lines). Each report is checked against the program's own formula, so a
param passed wrongly (or not at all) fails the test.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from scalehp.importers import import_file
from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray

EXAMPLES = Path(__file__).parent / "import_examples"


def quadratic_loss(params: dict[str, float], epoch: int) -> float:
    """What tests/programs/quadratic.py prints as val_loss for these params at this epoch."""
    base = 0.0
    for name, value in params.items():
        if name.endswith("lr") and value > 0:
            base += (math.log10(value) + 2) ** 2
        elif 0 <= value <= 1:
            base += (value - 0.5) ** 2
    return base + 1 / epoch


def write(imported, tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(imported.yaml())
    return path


def check_reports(reports, names: list[str]) -> None:
    assert len(reports) > 0
    for _, row in reports.iterrows():
        params = {n: float(row[f"param_{n}"]) for n in names}
        assert row["metric_val_loss"] == pytest.approx(quadratic_loss(params, int(row["step"])), abs=2e-6)


def test_wandb_sweep_runs_as_imported(ray_local, tmp_path):
    imported = import_file("wandb", EXAMPLES / "wandb" / "runnable.yaml")
    summary = run(load_experiment(write(imported, tmp_path)), results=tmp_path / "results")
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 4  # run_cap
    assert set(trials["status"]) <= {"completed", "stopped"}
    assert trials["steps"].between(1, 3).all()  # epochs 3 -> max_steps 3; asha may stop at step 1
    assert (trials["param_lr"].between(1.0e-4, 0.1)).all()  # log_uniform exponents -9.21..-2.3 as values
    assert (reports["param_epochs"] == 3).all()
    check_reports(reports, ["lr", "dropout", "epochs"])


def test_hydra_optuna_sweep_runs_as_imported(ray_local, tmp_path):
    source = EXAMPLES / "hydra_optuna" / "runnable.yaml"
    imported = import_file("hydra-optuna", source, program="tests/programs/quadratic.py")
    summary = run(load_experiment(write(imported, tmp_path)), results=tmp_path / "results")
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 4  # n_trials
    assert (trials["status"] == "completed").all() and (trials["steps"] == 1).all()
    assert (trials["param_lr"].between(1.0e-4, 0.1)).all() and (trials["param_dropout"].between(0, 1)).all()
    check_reports(reports, ["lr", "dropout", "epochs"])
    assert trials["best_value"].min() == pytest.approx(reports["metric_val_loss"].min())
