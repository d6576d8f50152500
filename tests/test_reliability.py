"""Nothing lost: killed drivers resume, flaky trials retry, a missing metric stops the run at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalehp.errors import SpecError
from scalehp.results.store import find_runs, read_results
from scalehp.runner import run
from scalehp.spec import load_experiment

ROOT = Path(__file__).resolve().parent.parent


def experiment(tmp_path, **changes):
    data = {
        "name": "rel",
        "trainable": "tests.trainables:flaky_once",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 2, "max_steps": 5},
        "space": {"x": {"float": [0.0, 1.0]}, "marker_dir": str(tmp_path)},
        "failure": {"max_retries": 2},
        "checkpoints": {"keep": 2},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


@pytest.mark.ray
def test_flaky_trials_retry_from_their_checkpoint(ray_local, tmp_path):
    summary = run(experiment(tmp_path))
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert trials["status"].tolist() == ["completed", "completed"]
    assert trials["retries"].tolist() == [1, 1]
    for _, rows in reports.groupby("trial_id"):
        assert rows["step"].tolist() == [1, 2, 3, 4, 5]  # each step exactly once, none lost


@pytest.mark.ray
def test_a_trial_that_keeps_failing_is_an_error_row_and_the_run_goes_on(ray_local, tmp_path):
    exp = experiment(tmp_path, trainable="tests.trainables:always_fails", failure={"max_retries": 1})
    trials = read_results(run(exp).path).trials
    assert trials["status"].tolist() == ["error", "error"]
    assert trials["retries"].tolist() == [1, 1]
    assert trials["error"].str.contains("boom").all()


@pytest.mark.ray
def test_missing_metric_stops_the_run_at_the_first_report(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        trainable="tests.trainables:wrong_metric",
        budget={"samples": 20, "max_steps": 2},
        failure={"max_retries": 0},
        concurrency=1,
    )
    with pytest.raises(SpecError, match=r"metric.name: the trainable reported \['accuracy'\] but not .*'loss'") as info:
        run(exp)
    assert "stopped at the first" in str(info.value)
    trials = read_results(find_runs(tmp_path / "results")[0]).trials
    assert 1 <= len(trials) < 20  # stopped early, not after all 20 trials


def _start(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "scalehp.cli", *args],
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _reports(results_root):
    runs = find_runs(results_root) if results_root.exists() else []
    return read_results(runs[0]).reports if runs else None


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("kill_after", [3, 14])
def test_killed_driver_resumes_exactly_once(tmp_path, kill_after):
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(
        "name: killme\ntrainable: tests.trainables:slow_counter\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 6, max_steps: 6}\nconcurrency: 2\nseed: 1\n"
        "space: {x: {float: [0, 1]}, sleep: 0.25}\ncheckpoints: {keep: 2}\n"
        f"results: {tmp_path / 'results'}\n"
    )
    driver = _start(["run", str(exp_file), "--quiet"], ROOT)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            reports = _reports(tmp_path / "results")
            if reports is not None and len(reports) >= kill_after:
                break
            assert driver.poll() is None, driver.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("the run never reached the point to kill it")
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started, nothing else
        driver.wait()

    run_dir = find_runs(tmp_path / "results")[0]
    before = read_results(run_dir)
    finished_before = set(before.trials["trial_id"])
    resumed_at = time.time()
    process = subprocess.run(
        [sys.executable, "-m", "scalehp.cli", "resume", str(run_dir), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    after = read_results(run_dir)
    trials, reports = after.trials, after.reports
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}
    assert after.plans[run_dir.name]["run_id"] == run_dir.name
    assert not reports.duplicated(["trial_id", "step"]).any()
    for _, rows in reports.groupby("trial_id"):
        assert sorted(rows["step"]) == [1, 2, 3, 4, 5, 6]  # every (trial, step) exactly once
    # trials that had finished before the kill were not run again (at most one step, which
    # the tables ignore, when Ray's last snapshot predates their end)
    seconds = reports["time"].astype("int64") / 1e6
    assert (seconds[reports["trial_id"].isin(finished_before)] < resumed_at).all()
