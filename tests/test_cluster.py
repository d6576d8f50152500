"""Integration tests on a real multi-node Ray cluster on this machine: a head (no CPU) and two
workers (2 CPUs, 1 declared GPU, 1 ``slot`` each), each its own raylet, started by
``cluster/local.py`` with token authentication and the dashboard on 127.0.0.1, and stopped by
PID at the end whatever happens. Experiments are submitted through the Ray Jobs API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp import jobs
from scalehp.cli import main
from scalehp.results.store import read_results
from tests.clusters import local_cluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
PACED = "tests/experiments/cluster_paced.yaml"
TOO_BIG = "tests/experiments/cluster_too_big.yaml"


@pytest.fixture(scope="module")
def cluster():
    yield from local_cluster(workers=2, worker_cpus=2, worker_gpus=1, worker_resources={"slot": 1})


def _wait(address: str, job_id: str, timeout: float = 240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = jobs.job_info(address, job_id)
        if jobs.is_done(info):
            return info.status
        time.sleep(1)
    jobs.stop_job(address, job_id)
    raise AssertionError(f"job {job_id} did not end in {timeout} s:\n{jobs.job_logs(address, job_id)[-3000:]}")


def _check_complete(run: Path, trials_expected: int = 4, steps: int = 8):
    results = read_results(run)
    trials, reports = results.trials, results.reports
    assert len(trials) == trials_expected and set(trials["status"]) == {"completed"}
    assert (trials["steps"] == steps).all()
    # no report lost: every step of every trial, once
    assert len(reports) == trials_expected * steps
    for _, group in reports.groupby("trial_id"):
        assert sorted(group["step"]) == list(range(1, steps + 1))
    return trials, reports


def test_submitted_run_spreads_over_workers_and_is_fetched(cluster, tmp_path):
    address, token = cluster["dashboard"], cluster["token"]
    shared = cluster["folder"] / "results"  # storage every node of this machine shares
    out = CliRunner().invoke(main, ["submit", PACED, "--address", address, "--results", str(shared)])
    assert out.exit_code == 0, out.output
    job_id = out.stdout.strip().splitlines()[0]
    assert job_id.startswith("scalehp-cluster-paced-")
    (run_id,) = [line.split()[1] for line in out.stderr.splitlines() if line.startswith("run ")]
    assert _wait(address, job_id) == "SUCCEEDED", jobs.job_logs(address, job_id)[-3000:]

    listed = CliRunner().invoke(main, ["jobs", "ls", "--address", address, "--format", "json"])
    assert listed.exit_code == 0 and job_id in listed.stdout
    status = CliRunner().invoke(main, ["jobs", "status", job_id, "--address", address])
    assert "SUCCEEDED" in status.stdout and "cluster-paced" in status.stdout

    followed = CliRunner().invoke(main, ["jobs", "logs", job_id, "--follow", "--address", address])
    assert followed.exit_code == 0 and "4 trials in" in followed.stdout and "SUCCEEDED" in followed.stderr
    stopped = CliRunner().invoke(main, ["jobs", "stop", job_id, "--address", address])
    assert stopped.exit_code == 0 and "already ended" in stopped.stdout

    fetched = CliRunner().invoke(main, ["jobs", "fetch", job_id, "--address", address, "--to", str(tmp_path)])
    assert fetched.exit_code == 0, fetched.output
    run = Path(fetched.stdout.strip().splitlines()[0])
    assert run == tmp_path / "cluster-paced" / run_id and not (run / "ray").exists()
    trials, reports = _check_complete(run)

    # two workers ran trials (all nodes share one IP here: the Ray node id tells them apart)
    assert trials["node_id"].notna().all() and trials["node_id"].nunique() == 2
    assert reports["node_id"].nunique() == 2
    # CPU, a fractional GPU and the custom resource reached Ray's placement
    assert (trials["metric_assigned_CPU"] == 1).all()
    assert (trials["metric_assigned_GPU"] == 0.5).all()
    assert (trials["metric_assigned_slot"] == 1).all()

    # the token is nowhere in what the run wrote, nor in the job's log or metadata
    for path in list((shared / "cluster-paced").rglob("*.json")) + list(run.rglob("*")):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    assert token not in jobs.job_logs(address, job_id)
    assert token not in str(jobs.job_info(address, job_id))


def test_impossible_resources_fail_the_job_before_any_trial(cluster, tmp_path):
    address = cluster["dashboard"]
    submission = jobs.submit(TOO_BIG, address, results=str(tmp_path / "results"))
    assert _wait(address, submission.job_id, timeout=120) == "FAILED"
    log = jobs.job_logs(address, submission.job_id)
    assert "resources: one trial needs" in log and "slot=2" in log and "Traceback" not in log
    assert not list((tmp_path / "results").rglob("part-*.parquet"))


@pytest.mark.parametrize("token", ["wrong", None])
def test_submission_without_the_right_token_is_refused(cluster, tmp_path, token):
    address = cluster["dashboard"]
    # a fresh process, as a user runs it: Ray caches a token in a process that used it before
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    if token:
        env["RAY_AUTH_TOKEN"] = "0" * 64
    for args in (["submit", PACED], ["jobs", "ls"]):
        out = subprocess.run(
            [sys.executable, "-m", "scalehp.cli", *args, "--address", address],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: the Ray cluster at"), out.stderr
        assert ("refused the token" if token else "requires a token") in lines[0]
        assert cluster["token"] not in out.stdout + out.stderr


def test_worker_killed_mid_run_trials_resume_elsewhere(cluster, tmp_path):
    """Last in the module: it leaves the cluster with one worker."""
    address = cluster["dashboard"]
    shared = tmp_path / "results"
    submission = jobs.submit(PACED, address, results=str(shared))
    # wait until the trials on both workers have checkpointed twice (a part is written at each
    # checkpoint), then kill worker 2
    deadline = time.monotonic() + 120
    while not _checkpointed_on_both(shared):
        assert time.monotonic() < deadline, jobs.job_logs(address, submission.job_id)[-3000:]
        assert not jobs.is_done(jobs.job_info(address, submission.job_id))
        time.sleep(0.5)
    killed = cluster["nodes"][-1]
    cluster["local"].stop_node(killed["pid"], grace=0)
    assert _wait(address, submission.job_id) == "SUCCEEDED", jobs.job_logs(address, submission.job_id)[-3000:]

    (run,) = shared.glob("cluster-paced/*")
    trials, reports = _check_complete(run)
    retried = trials[trials["retries"] > 0]
    assert len(retried) >= 1
    # a retried trial went on from its checkpoint (not from step 1), on another node; one killed
    # before its first checkpoint started over (all its rows from the new start)
    went_on = 0
    for trial_id in retried["trial_id"]:
        rows = reports[reports["trial_id"] == trial_id]
        before, after = rows[rows["metric_restored_from"] == 0], rows[rows["metric_restored_from"] > 0]
        if not len(after):
            assert sorted(before["step"]) == list(range(1, 9)) and before["node_id"].nunique() == 1
            continue
        went_on += 1
        assert len(before) >= 1
        assert after["step"].min() == after["metric_restored_from"].min() + 1
        assert set(before["node_id"]).isdisjoint(after["node_id"])
        assert trials.set_index("trial_id").loc[trial_id, "node_id"] in set(after["node_id"])
    assert went_on >= 1


def _checkpointed_on_both(shared: Path) -> bool:
    """Whether each worker runs a trial that has checkpointed (reported step 2 or more) and has steps
    left (at most step 5 of 8, 1.5 s or more of its run ahead): killing a worker then interrupts a
    trial that can go on from its checkpoint, not one that has just finished or just begun."""
    runs = list(shared.glob("cluster-paced/*"))
    if not runs or not list(runs[0].glob("reports/part-*.parquet")):
        return False
    reports = read_results(runs[0]).reports
    latest = reports.groupby("trial_id").agg(step=("step", "max"), node_id=("node_id", "last"))
    return latest.loc[latest["step"].between(2, 5), "node_id"].nunique() == 2
