"""Command trials on embedded Ray: real programs, real ASHA, real Parquet. Nothing mocked."""

from __future__ import annotations

import os
import time

import pytest

from scalehp.errors import SpecError
from scalehp.results.schema import column_name
from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray


def experiment(tmp_path, **changes):
    data = {
        "name": "cmd",
        "command": "${python} tests/programs/quadratic.py ${args}",
        "metric": {"name": "val_loss", "mode": "min"},
        "budget": {"samples": 6, "max_steps": 9},
        "seed": 0,
        "space": {"lr": {"float": [1.0e-4, 1.0], "log": True}, "dropout": {"float": [0.0, 1.0]}, "epochs": 9},
        "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


def test_asha_runs_a_command_per_trial(ray_local, tmp_path):
    summary = run(experiment(tmp_path))
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 6 and set(trials["status"]) <= {"completed", "stopped"}
    assert (trials["status"] == "stopped").sum() >= 2, "ASHA should stop some of 6 trials early"
    assert (trials[trials["status"] == "completed"]["steps"] == 9).all()
    # every epoch line the program printed before its trial ended is one report, with its step
    assert len(reports) == trials["steps"].sum() and not reports.duplicated(["trial_id", "step"]).any()
    # the program's loss: (log10(lr) + 2)^2 + (dropout - 0.5)^2 + 1/epoch, printed with 6 decimals
    expected = (
        (reports["param_lr"].map(lambda v: __import__("math").log10(v)) + 2) ** 2
        + (reports["param_dropout"] - 0.5) ** 2
        + 1 / reports["step"]
    )
    assert ((reports["metric_val_loss"] - expected).abs() < 1e-5).all()
    acc = column_name("metric", "val/acc")
    assert ((reports[acc] - 1 / (1 + reports["metric_val_loss"])).abs() < 1e-5).all()
    assert summary.best_value == pytest.approx(trials["best_value"].min())


def test_stopped_and_finished_command_trials_leave_no_process(ray_local, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    exp = experiment(
        tmp_path,
        command={"run": "${python} tests/programs/epochs.py ${args}", "env": {"PID_DIR": str(pids)}},
        metric={"name": "loss", "mode": "min"},
        budget={"samples": 6, "max_steps": 6},
        space={"x": {"float": [-1.0, 1.0]}, "sleep": 0.1, "epochs": 40},
        scheduler={"asha": {"grace_steps": 1, "reduction_factor": 2}},
    )
    summary = run(exp)
    trials = read_results(summary.path).trials
    assert (trials["status"] == "stopped").sum() >= 2 and (trials["status"] == "completed").any()
    written = list(pids.iterdir())
    assert len(written) == 12, "each trial's program and its child write their pid"
    alive = _alive([int(p.read_text()) for p in written], wait_s=8.0)
    assert not alive, f"processes outlived their trials: {alive}"


def test_failing_command_is_an_error_row_and_a_retry_starts_it_again(ray_local, tmp_path):
    marker = tmp_path / "failed-once"
    exp = experiment(
        tmp_path,
        command="${python} tests/programs/epochs.py ${args} --fail_once=" + str(marker),
        metric={"name": "loss", "mode": "min"},
        budget={"samples": 1, "max_steps": 3},
        space={"x": 0.3, "sleep": 0.0, "epochs": 3},
        scheduler="fifo",
        failure={"max_retries": 1},
    )
    retried = read_results(run(exp).path)
    assert marker.exists()
    assert retried.trials["status"].tolist() == ["completed"]
    assert sorted(retried.reports["step"]) == [1, 2, 3]

    failing = experiment(tmp_path, budget={"samples": 2, "max_steps": 3}, scheduler="fifo", space={"fail": True})
    summary = run(failing)
    trials = read_results(summary.path).trials
    assert trials["status"].tolist() == ["error", "error"] and summary.errors == 2
    for error in trials["error"]:
        assert "CommandError: the command exited with status 3" in error
        assert "| failing on purpose" in error


def test_command_that_never_prints_the_metric_stops_the_run(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        metric={"name": "val_accuracy", "mode": "max"},
        budget={"samples": 3, "max_steps": 3},
        space={"epochs": 3},
        scheduler="fifo",
        concurrency=1,
    )
    with pytest.raises(SpecError, match=r"metric\.name: the command exited without printing the metric 'val_accuracy'"):
        run(exp)


def _alive(pids: list[int], wait_s: float) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)
