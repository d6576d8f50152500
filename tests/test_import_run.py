"""Imported sweeps run as they are: one example per source format, converted and run end to end on Ray.

Every example's command runs tests/programs/quadratic.py (one process per trial; params as
``--name=value`` for W&B, ``name=value`` overrides for Hydra, one JSON argument for NNI and
Determined, Katib's trial template arguments), whose loss is known in closed form:
``(log10(lr) + 2)**2 + sum((p - 0.5)**2 for numeric params p in [0, 1]) + 1 / epoch``. Every
recorded value is checked against the params the trial ran with, so a param passed wrongly (or
not at all) fails the test.
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


def expected_loss(params: dict, epoch: int) -> float:
    base = 0.0
    for name, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name.endswith("lr") and value > 0:
            base += (math.log10(value) + 2) ** 2
        elif 0 <= value <= 1:
            base += (value - 0.5) ** 2
    return base + 1 / epoch


def run_imported(fmt: str, path: Path, tmp_path: Path, **changes):
    data = {**import_file(fmt, path).data, "results": str(tmp_path / "results"), **changes}
    summary = run(load_experiment(data))
    return read_results(summary.path)


def check(results, params: list[str], max_steps: int) -> None:
    trials, reports = results.trials, results.reports
    assert set(trials["status"]) <= {"completed", "stopped"}, trials[["trial_id", "status"]]
    assert (trials["steps"] >= 1).all() and (trials["steps"] <= max_steps).all()
    assert len(reports) == trials["steps"].sum() and not reports.duplicated(["trial_id", "step"]).any()
    for _, row in reports.iterrows():
        values = {name: row[f"param_{name.replace('.', '_')}"] for name in params}
        assert row["metric_val_loss"] == pytest.approx(expected_loss(values, int(row["step"])), abs=2e-6)


def test_katib_manifest_runs_its_trial_template(ray_local, tmp_path):
    results = run_imported("katib", EXAMPLES / "katib" / "quadratic.yaml", tmp_path)
    trials = results.trials
    assert len(trials) == 4
    check(results, ["lr", "momentum", "epochs"], max_steps=100)
    # a trial the median rule did not stop ran its own epochs (3 or 4: the program's last line;
    # fewer than budget.max_steps, so its status is "stopped" too)
    events = results.events
    stopped = set(events.loc[events["action"] == "stop", "trial_id"])
    ran = trials[~trials["trial_id"].isin(stopped)].set_index("trial_id")
    assert len(ran) >= 1 and (ran["steps"] == ran["param_epochs"]).all()
    assert "metric_val_acc" in results.reports.columns  # every name=value the program prints is recorded


def test_nni_config_runs_with_params_as_one_json_argument(ray_local, tmp_path):
    path = EXAMPLES / "nni" / "quadratic.yml"
    # the one edit the import's note asks for: the program prints val_loss, not NNI's 'default'
    results = run_imported("nni", path, tmp_path, metric={"name": "val_loss", "mode": "min"})
    assert len(results.trials) == 4
    check(results, ["lr", "momentum", "epochs"], max_steps=100)


def test_determined_config_runs_its_script_entrypoint(ray_local, tmp_path):
    results = run_imported("determined", EXAMPLES / "determined" / "quadratic.yaml", tmp_path)
    assert len(results.trials) == 4
    check(results, ["lr", "optimizer.momentum", "epochs"], max_steps=4)
    assert set(results.reports["param_optimizer_name"]) <= {"sgd", "adam"}


def write(imported, tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(imported.yaml())
    return path


def check_reports(reports, names: list[str]) -> None:
    assert len(reports) > 0
    for _, row in reports.iterrows():
        params = {n: float(row[f"param_{n}"]) for n in names}
        assert row["metric_val_loss"] == pytest.approx(expected_loss(params, int(row["step"])), abs=2e-6)


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


def test_a_wandb_program_runs_unchanged_through_the_stand_in(ray_local, tmp_path):
    """tests/programs/wandb_sweep.py imports wandb: the stand-in hands it the swept params (a nested
    one merged into its defaults) and each wandb.log with the metric is one step."""
    results = run_imported("wandb", EXAMPLES / "wandb" / "program_unchanged.yaml", tmp_path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert len(reports) == 12 and not reports.duplicated(["trial_id", "step"]).any()
    for _, row in reports.iterrows():
        lr, dropout, momentum = row["param_lr"], row["param_dropout"], row["param_optimizer_momentum"]
        expected = (math.log10(lr) + 3) ** 2 + dropout / row["step"] + momentum
        assert row["metric_val_loss"] == pytest.approx(expected, abs=1e-9)
        assert row["metric_train_loss"] == 10 * row["step"] + 2  # logged without the metric, carried with it


def test_an_nni_trial_runs_unchanged_through_the_stand_in(ray_local, tmp_path):
    """tests/programs/nni_trial.py imports nni: a nested choice arrives as {_name: ...}, each
    intermediate result is a step, and the final result is the last step's value."""
    # NNI sets no step budget (scalehp's default is 100); the trial reports 3 epochs
    results = run_imported("nni", EXAMPLES / "nni" / "trial_unchanged" / "config.yml", tmp_path,
                           budget={"samples": 4, "max_steps": 3})
    trials, reports = results.trials, results.reports
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert sorted(reports["step"].unique()) == [1, 2, 3] and len(reports) == 12
    for _, row in reports.iterrows():
        kernel = row["param_layer_kernel_size"]
        bonus = 0.01 * kernel if row["param_layer"] == "Conv" else 0.0
        expected = 1 - row["param_lr"] / row["step"] + bonus + (0.005 if row["step"] == 3 else 0.0)
        assert row["metric_default"] == pytest.approx(expected, abs=1e-9)
    assert reports.loc[reports["step"] == 3, "metric_test_loss"].eq(0.25).all()


def test_a_katib_hyperband_trial_counts_epochs_not_printed_lines(ray_local, tmp_path):
    """tests/programs/katib_mnist.py prints five loss lines an epoch and an accuracy line after it:
    each step is an epoch, its accuracy the one printed after it (r_l = 3 epochs)."""
    results = run_imported("katib", EXAMPLES / "katib" / "hyperband_epochs.yaml", tmp_path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 6 and set(trials["status"]) <= {"completed", "stopped"}
    assert (trials["steps"] <= 3).all() and (trials["status"] == "completed").sum() >= 1
    assert len(reports) == trials["steps"].sum() and not reports.duplicated(["trial_id", "step"]).any()
    for _, row in reports.iterrows():
        expected = 1 - row["param_lr"] / row["step"] - (row["param_momentum"] - 0.5) ** 2
        assert row["metric_accuracy"] == pytest.approx(expected, abs=6e-5)  # printed with 4 decimals
        assert row["metric_loss"] == pytest.approx(1 - row["metric_accuracy"], abs=1e-4)
