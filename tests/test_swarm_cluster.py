"""The swarm runtime on a real multi-node Ray cluster on this machine (``cluster/local.py``: a
head with no CPU and two workers with 2 CPUs each), submitted through the Ray Jobs API; a worker
node is killed mid-run: the run completes, nothing lost, nothing twice."""

from __future__ import annotations

import time

import pytest

from scalehp import jobs
from scalehp.results.store import read_results
from scalehp.swarm import trial_name
from tests.clusters import local_cluster
from tests.test_cluster import _wait

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SWARM = "tests/experiments/cluster_swarm.yaml"


@pytest.fixture(scope="module")
def cluster():
    yield from local_cluster(workers=2, worker_cpus=2)


def test_a_worker_node_killed_mid_run_loses_nothing_and_runs_nothing_twice(cluster, tmp_path):
    address = cluster["dashboard"]
    shared = tmp_path / "results"
    submission = jobs.submit(SWARM, address, results=str(shared))
    deadline = time.monotonic() + 180
    while not list(shared.glob("cluster-swarm/*/trials/part-*.parquet")):  # trials have ended on both nodes
        assert time.monotonic() < deadline, jobs.job_logs(address, submission.job_id)[-3000:]
        assert not jobs.is_done(jobs.job_info(address, submission.job_id)), jobs.job_logs(address, submission.job_id)[-3000:]
        time.sleep(0.5)
    killed = cluster["nodes"][-1]
    cluster["local"].stop_node(killed["pid"], grace=0)
    assert _wait(address, submission.job_id, timeout=300) == "SUCCEEDED", jobs.job_logs(address, submission.job_id)[-3000:]

    (run,) = shared.glob("cluster-swarm/*")
    results = read_results(run)
    trials, reports, events = results.trials, results.reports, results.events
    assert set(trials["trial_id"]) == {trial_name(i) for i in range(600)} and not trials.duplicated("trial_id").any()
    assert set(trials["status"]) <= {"completed", "stopped"}
    assert not reports.duplicated(["trial_id", "step"]).any()
    for trial_id, rows in reports.groupby("trial_id"):  # every step up to where it ended, once
        assert sorted(rows["step"]) == list(range(1, len(rows) + 1))
    steps = trials.set_index("trial_id")["steps"]
    assert all(steps[t] == len(rows) for t, rows in reports.groupby("trial_id"))
    assert trials["node_id"].nunique() == 2  # both worker nodes ran trials
    # the configs the lost node held ran again elsewhere, said so; no rung decided twice
    retried = events[events["action"] == "retry"]
    assert len(retried) >= 1 and retried["reason"].str.contains("died|unavailable|lost", case=False).all()
    decided = events[events["action"].isin(["continue", "stop"])]
    assert not decided.duplicated(["trial_id", "rung"]).any()
