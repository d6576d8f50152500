"""PBT, PB2, Hyperband and median stopping on real Ray: every decision lands in ``events``.

The trainable is experiments/trainables/schedule.py (numpy, a checkpoint every step).
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalehp.results.store import part_files, read_results
from scalehp.runner import run
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray


def run_whole(exp, attempts=3):
    """Run ``exp``, again (up to ``attempts`` runs) while a trial of a synchronous population
    ends short of ``max_steps``.

    Known and not yet pinned down (Ray 2.60's PBT and PB2 with ``synch: true``, seen about once
    in a full suite run, never in a test file run alone): after an exploit, one trial reports
    a step or two and then ends with no more reports. Its row is ``stopped`` (correctly: it did
    not reach ``max_steps``). If it ends after the others paused to wait for it at the next
    perturbation step, Ray's synchronous mode waits forever; ``budget.time_limit`` (set by the
    synchronous tests) ends such a run. Each occurrence is a warning in the test output; one
    whole run is required, and every other assertion holds for the run that is checked.
    """
    import warnings

    for _ in range(attempts):
        summary = run(exp)
        trials = read_results(summary.path).trials
        short = trials[trials["steps"] < exp.budget.max_steps]
        if not len(short) and summary.ended is None:
            return summary
        ended = short[["trial_id", "steps"]].values.tolist()
        warnings.warn(f"synchronous population: short trials {ended}, run ended: {summary.ended}", stacklevel=2)
    return summary


def experiment(tmp_path, scheduler, **changes):
    data = {
        "name": "sched",
        "trainable": "experiments.trainables.schedule:train",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 4, "max_steps": 10},
        "seed": 0,
        "space": {"lr": {"float": [1.0e-3, 0.5], "log": True}, "dim": 5, "inner": 3},
        "scheduler": scheduler,
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


def raw_reports(run_dir):
    """Every report row in arrival order (no de-duplication), as Python dicts."""
    tables = [pq.read_table(f) for f in part_files([run_dir], "reports")]
    return pa.concat_tables(tables, promote_options="permissive").to_pylist()


@pytest.mark.parametrize("synch", [True, False], ids=["synch", "async"])
def test_pbt_exploits_match_reports(ray_local, tmp_path, synch):
    exp = experiment(
        tmp_path,
        {"pbt": {"interval_steps": 2, "quantile": 0.5, "mutate": ["lr"], "synch": synch}},
        budget={"samples": 4, "max_steps": 10} if not synch else {"samples": 4, "max_steps": 8, "time_limit": "90s"},
    )
    summary = run_whole(exp) if synch else run(exp)
    results = read_results(summary.path)
    events, trials = results.events, results.trials
    assert set(trials["status"]) == {"completed"} and len(trials) == 4
    assert set(events["scheduler"]) == {"pbt"}
    assert set(events["action"]) <= {"continue", "exploit", "explore", "skip"}
    exploits = events[events["action"] == "exploit"].sort_values("time")
    explores = events[events["action"] == "explore"].sort_values("time")
    assert len(exploits) == len(explores)
    assert set(events["step"]) <= {2, 4, 6, 8}
    if synch:  # all 4 compared at steps 2, 4, 6: the bottom 2 copy the top 2 each time
        assert len(exploits) == 6 and (exploits["donor_step"] == exploits["step"]).all()
    else:  # each trial is compared with the others' last values whenever it reaches a perturbation step
        assert len(exploits) >= 1

    rows = raw_reports(summary.path)
    by_trial: dict[str, list[dict]] = {}
    for row in rows:
        by_trial.setdefault(row["trial_id"], []).append(row)
    # the reports carry the config each step ran with, and metric lr_used proves it
    assert all(row["param_lr"] == row["metric_lr_used"] for row in rows)

    position = {trial: 0 for trial in by_trial}
    for exploit, explore in zip(exploits.itertuples(), explores.itertuples()):
        assert (exploit.trial_id, exploit.step, exploit.donor_trial_id) == (
            explore.trial_id,
            explore.step,
            explore.donor_trial_id,
        )
        assert exploit.donor_trial_id != exploit.trial_id
        old, donor_params, new = (
            json.loads(exploit.old_params),
            json.loads(exploit.new_params),
            json.loads(explore.new_params),
        )
        assert json.loads(explore.old_params) == donor_params
        # the donor reported this config and value at the step it is copied from
        donor_rows = [r for r in by_trial[exploit.donor_trial_id] if r["step"] == exploit.donor_step]
        assert any(r["param_lr"] == donor_params["lr"] and r["metric_loss"] == exploit.donor_value for r in donor_rows)
        # the trial's own rows: the exploit comes right after its report at the step, then it
        # continues from the donor's step with the new params (no restart from step 1)
        own = by_trial[exploit.trial_id]
        i = position[exploit.trial_id]
        while not (own[i]["step"] == exploit.step and own[i]["param_lr"] == old["lr"]):
            i += 1
        after = own[i + 1]
        assert after["step"] == exploit.donor_step + 1, (exploit, after)
        assert after["param_lr"] == pytest.approx(new["lr"])
        assert 1e-3 <= new["lr"] <= 0.5  # mutations stay inside the space
        position[exploit.trial_id] = i + 1

    # a PBT schedule can be read off one trial's rows: params change over its steps
    reports = results.reports
    assert (reports.groupby("trial_id")["param_lr"].nunique() > 1).any()
    continues = events[events["action"] == "continue"].dropna(subset=["cutoff"])
    assert (continues["value"] <= continues["cutoff"]).all()


def test_pb2_runs_and_records_exploits(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        {"pb2": {"interval_steps": 2, "quantile": 0.5, "mutate": ["lr"], "synch": True}},
        budget={"samples": 4, "max_steps": 6, "time_limit": "90s"},
    )
    results = read_results(run_whole(exp).path)
    events = results.events
    assert set(results.trials["status"]) == {"completed"}
    explores = events[events["action"] == "explore"]
    assert len(explores) == 4 and set(events["scheduler"]) == {"pb2"}  # 2 of 4 at steps 2 and 4
    for params in explores["new_params"]:
        assert 1e-3 <= json.loads(params)["lr"] <= 0.5


def test_hyperband_records_halving(ray_local, tmp_path):
    # max_steps 4, factor 2: brackets of 3 (no halving), 3 (halving at step 2), 4 (steps 1, 2)
    exp = experiment(tmp_path, {"hyperband": {"reduction_factor": 2}}, budget={"samples": 6, "max_steps": 4})
    results = read_results(run(exp).path)
    events, trials = results.events, results.trials.set_index("trial_id")
    assert len(trials) == 6 and set(events["scheduler"]) == {"hyperband"}
    halving = events[events["action"].isin(["continue", "stop"])]
    stops = halving[halving["action"] == "stop"]
    assert len(stops) >= 1
    assert (
        (stops["value"] >= stops["cutoff"]).all() and (halving["rung"] == 2).all() and (halving["bracket"] == 1).all()
    )
    assert (trials.loc[stops["trial_id"], "status"] == "stopped").all()
    assert (trials.loc[stops["trial_id"], "steps"] == 2).all()


def test_median_stopping_records_comparisons(ray_local, tmp_path):
    exp = experiment(
        tmp_path,
        {"median_stopping": {"grace_steps": 2, "min_samples": 2}},
        budget={"samples": 6, "max_steps": 6},
        concurrency=2,
    )
    results = read_results(run(exp).path)
    events, trials = results.events, results.trials.set_index("trial_id")
    assert len(events) >= 1 and set(events["scheduler"]) == {"median_stopping"}
    assert (events["step"] >= 2).all()
    stops = events[events["action"] == "stop"]
    assert len(stops) >= 1, "lr from 0.001 to 0.5: the slow trials lose to the median"
    assert (stops["value"] > stops["cutoff"]).all()
    continues = events[events["action"] == "continue"]
    assert (continues["value"] <= continues["cutoff"]).all()
    assert (trials.loc[stops["trial_id"], "status"] == "stopped").all()
