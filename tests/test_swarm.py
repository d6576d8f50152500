"""The swarm runtime (``runtime: swarm``): many short trials in batches on long-lived Ray workers.

Without Ray: what the compiler refuses (one line at the key), the worker's protocol driven in
this process. With Ray: every config once and the configs a Tune run draws; ASHA's decisions
as the Tune runtime makes them; failures, retries and lost workers; a driver killed with
SIGKILL and ``scalehp resume`` finishing the run without re-running finished configs.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.results.store import find_runs, read_results
from scalehp.runner import run
from scalehp.spec import load_experiment
from scalehp.swarm import trial_index, trial_name
from scalehp.swarm.worker import Worker
from tests.test_signals import _start
from tests.trainables import quadratic

ROOT = Path(__file__).resolve().parent.parent


def _experiment(tmp_path: Path, **changes) -> dict:
    data = {
        "name": "swarm",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 200, "max_steps": 3},
        "runtime": {"swarm": {"batch_size": 16}},
        "seed": 0,
        "space": {"x": {"float": [-1.0, 1.0]}},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return data


# ---------------------------------------------------------------------------
# What the compiler refuses, before Ray starts


@pytest.mark.parametrize(
    "scheduler, why",
    [
        ({"pbt": {"interval_steps": 1, "mutate": ["x"]}}, "checkpoint"),
        ({"pb2": {"interval_steps": 1, "mutate": ["x"]}}, "checkpoint"),
        ("median_stopping", "every step"),
    ],
)
def test_a_scheduler_the_swarm_cannot_run_is_refused_at_the_key(tmp_path, scheduler, why):
    with pytest.raises(SpecError) as error:
        compile_plan(load_experiment(_experiment(tmp_path, scheduler=scheduler)))
    text = str(error.value)
    assert text.startswith("<dict>: scheduler:") and why in text and "use runtime: tune" in text


@pytest.mark.parametrize("size", [0, 10**9, 1.5, "many"])
def test_a_batch_size_out_of_range_is_refused_at_the_key(tmp_path, size):
    with pytest.raises(SpecError) as error:
        load_experiment(_experiment(tmp_path, runtime={"swarm": {"batch_size": size}}))
    assert "runtime.swarm.batch_size" in str(error.value)


def test_an_unknown_runtime_and_two_runtimes_are_refused(tmp_path):
    with pytest.raises(SpecError, match="runtime"):
        load_experiment(_experiment(tmp_path, runtime="dask"))
    with pytest.raises(SpecError, match="exactly one runtime"):
        load_experiment(_experiment(tmp_path, runtime={"swarm": {}, "tune": {}}))


def test_the_plan_names_the_runtime_and_advises_where_the_other_fits(tmp_path):
    plan = compile_plan(load_experiment(_experiment(tmp_path, runtime="swarm")))
    assert (plan.runtime, plan.batch_size) == ("swarm", 64)
    tune = compile_plan(load_experiment(_experiment(tmp_path, runtime=None, budget={"samples": 50_000, "max_steps": 1})))
    assert tune.runtime == "tune" and any("runtime: swarm" in w for w in tune.warnings)
    tpe = compile_plan(
        load_experiment(_experiment(tmp_path, search={"algorithm": "optuna"}, budget={"samples": 50_000, "max_steps": 1}))
    )
    assert any("sets the pace" in w and "qmc" in w for w in tpe.warnings)
    out = CliRunner().invoke(main, ["plan", str(_file(tmp_path, _experiment(tmp_path)))])
    assert out.exit_code == 0 and "runtime     swarm: configs in batches of 16" in out.output


def _file(tmp_path: Path, data: dict) -> Path:
    import yaml

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "changes, where",
    [
        ({"scheduler": "median_stopping"}, "scheduler"),
        ({"runtime": {"swarm": {"batch_size": 0}}}, "runtime.swarm.batch_size"),
        ({"runtime": {"swarm": {"batch_size": 10**9}}}, "runtime.swarm.batch_size"),
        ({"runtime": {"swarm": {"batch": 10}}}, "runtime.swarm"),
        ({"trainable": "tests.trainables:plain_ray"}, "trainable"),
    ],
)
def test_bad_input_is_one_line_at_the_key_exit_2_nothing_written(tmp_path, changes, where):
    path = _file(tmp_path, _experiment(tmp_path, **changes))
    out = CliRunner().invoke(main, ["run", str(path)])
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "exp.yaml:" in lines[0] and where in lines[0] and "Traceback" not in out.output
    assert not (tmp_path / "results").exists()


def test_trial_ids_name_the_index_in_the_searchers_sequence():
    assert trial_name(42) == "t0000042" and trial_index("t0000042") == 42
    assert trial_index("t1234567890") == 1234567890 and trial_index("abc_00001") is None and trial_index("t12") is None


# ---------------------------------------------------------------------------
# The worker, driven in this process


def _until(worker: Worker, answers=None, configs=None, kinds=("ask", "end")) -> list[tuple]:
    """Poll until a message of ``kinds`` arrives; every message polled so far."""
    got: list[tuple] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out, _, _ = worker.poll(answers, configs, wait_s=0.5)
        answers = configs = None
        got += out
        if any(m[0] in kinds for m in out):
            return got
    raise AssertionError(f"no {kinds} message: {got}")


def test_the_worker_runs_its_configs_in_order_and_waits_at_a_rung_for_the_decision():
    worker = Worker(quadratic, "loss", max_steps=9)
    try:
        configs = [("t0000000", {"x": 0.3}, 1, [1, 3]), ("t0000001", {"x": 5.0}, 2, [1, 3])]
        got = _until(worker, configs=configs)
        assert [(m[0], m[1], m[2]) for m in got] == [("report", "t0000000", 1), ("ask", "t0000000", 1)]
        assert got[1][3] == pytest.approx(1.0)  # the value decided on: (0.3 - 0.3)**2 + 1/1
        got = _until(worker, answers={"t0000000": "continue"})
        assert [(m[0], m[2]) for m in got] == [("report", 2), ("report", 3), ("ask", 3)]
        got = _until(worker, answers={"t0000000": "stop"})  # stopped at its rung: it ends; the next starts
        assert ("end", "t0000000", None) in got and not any(m[0] == "report" and m[2] > 3 for m in got if m[1] == "t0000000")
        got = _until(worker, answers={"t0000000": "continue"}) if got[-1][0] != "ask" else got
        assert got[-1][:3] == ("ask", "t0000001", 1)
        got = _until(worker, answers={"t0000001": "continue"})
        got += _until(worker, answers={"t0000001": "continue"})  # past its last rung it runs to max_steps
        steps = [m[2] for m in got if m[0] == "report"]
        assert steps == list(range(2, 10)) and got[-1] == ("end", "t0000001", None)
        out, held, _ = worker.poll(wait_s=0)
        assert out == [] and held == 0
    finally:
        worker.close()


def test_a_paused_trial_gives_its_turn_to_the_next_config_and_resumes_before_new_ones():
    worker = Worker(quadratic, "loss", max_steps=3)
    try:
        configs = [(f"t000000{i}", {"x": 0.1 * i}, i, [1]) for i in range(3)]
        got = _until(worker, configs=configs)
        assert got[-1][:3] == ("ask", "t0000000", 1)
        got = _until(worker, answers={"t0000000": "pause"})  # the next config runs meanwhile
        assert got[-1][:3] == ("ask", "t0000001", 1)
        got = _until(worker, answers={"t0000001": "pause", "t0000000": "continue"}, kinds=("end",))
        got += [] if any(m[0] == "ask" for m in got) else _until(worker, kinds=("ask",))
        # t0 resumes before t2 starts: its remaining steps and its end come first
        assert [(m[0], m[2]) for m in got if m[1] == "t0000000"] == [("report", 2), ("report", 3), ("end", None)]
        ids = [m[1] for m in got]
        assert ids.index("t0000002") > max(i for i, t in enumerate(ids) if t == "t0000000")
        assert got[-1][:3] == ("ask", "t0000002", 1)
        _, work, _ = worker.poll(wait_s=0)
        assert work == 1  # t2 (asking); t1 is paused, not counted as work to run
        got = _until(worker, answers={"t0000002": "stop", "t0000001": "stop"}, kinds=("end",))
        got += _until(worker, kinds=("end",)) if sum(m[0] == "end" for m in got) < 2 else []
        assert {m[1] for m in got if m[0] == "end"} == {"t0000001", "t0000002"}
        out, work, _ = worker.poll(wait_s=0)
        assert work == 0
    finally:
        worker.close()


def test_the_worker_retries_a_failing_trial_and_then_ends_it_with_the_error():
    from tests.swarm_trainables import fails_below_zero

    worker = Worker(fails_below_zero, "loss", max_steps=3, max_retries=1)
    try:
        got = _until(worker, configs=[("t0000000", {"x": -0.5}, 1, [])], kinds=("end",))
        kinds = [m[0] for m in got]
        assert kinds == ["report", "retry", "report", "end"]
        assert "ValueError: x=-0.500 is below zero" in got[1][2] and "ValueError: x=-0.500" in got[-1][2]
    finally:
        worker.close()


def test_a_report_without_the_metric_aborts_the_run():
    from tests.trainables import wrong_metric

    worker = Worker(wrong_metric, "loss", max_steps=3)
    try:
        got = _until(worker, configs=[("t0000000", {}, 1, [])], kinds=("end",))
        assert got[0][0] == "abort" and "not the experiment's metric 'loss'" in got[0][2]
    finally:
        worker.close()


# ---------------------------------------------------------------------------
# On Ray


def _raw(run_dir: Path, table: str):
    """Every row of a table's parts as written (a step run again appears twice here, once when read)."""
    return ds.dataset(str(run_dir / table), format="parquet").to_table().to_pandas()


@pytest.mark.ray
def test_every_config_runs_once_and_they_are_the_configs_a_tune_run_draws(ray_local, tmp_path):
    from scalehp.runner.search import suggestions

    data = _experiment(tmp_path, space={"x": {"float": [-1.0, 1.0]}, "width": {"int": [4, 64], "log": True}})
    summary = run(load_experiment(data))
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert summary.trials == len(trials) == 200 and set(trials["status"]) == {"completed"}
    assert len(reports) == 600 and not reports.duplicated(["trial_id", "step"]).any()
    drawn = {trial_name(i): c for i, c in suggestions(compile_plan(load_experiment(data)))[0]}
    by_id = trials.set_index("trial_id")
    for trial_id, config in drawn.items():
        assert by_id.loc[trial_id, "param_x"] == config["x"] and by_id.loc[trial_id, "param_width"] == config["width"]
    assert trials["node"].notna().all() and trials["node_id"].notna().all()
    assert (trials["ended_at"] >= trials["started_at"]).all()
    best = trials.loc[trials["best_value"].idxmin()]
    assert summary.best_trial == best["trial_id"] and summary.best_value == best["best_value"]
    assert len(_raw(summary.path, "reports")) == 600  # written once, not only read once


@pytest.mark.ray
def test_asha_decides_as_in_the_tune_runtime_on_the_same_reports(ray_local, tmp_path):
    """The golden events of the Tune runtime (tests/golden/events.json, concurrency 1, seed 3)."""
    from tests.test_same_events import GOLDEN, assert_same_events, decisions, golden_experiment

    summary = run(load_experiment(golden_experiment("asha", tmp_path, runtime={"swarm": {"batch_size": 4}})))
    ends, rows = decisions(read_results(summary.path))
    assert ends == GOLDEN["asha"]["trials"]
    assert_same_events(rows, GOLDEN["asha"]["events"])


@pytest.mark.ray
def test_asha_with_several_workers_stops_at_rungs_and_every_stop_is_on_disk(ray_local, tmp_path):
    data = _experiment(
        tmp_path, budget={"samples": 300, "max_steps": 9}, scheduler={"asha": {"grace_steps": 1, "reduction_factor": 3}}
    )
    summary = run(load_experiment(data))
    results = read_results(summary.path)
    trials, events = results.trials, results.events
    stops = events[events["action"] == "stop"]
    assert set(trials.loc[trials["status"] == "stopped", "trial_id"]) == set(stops["trial_id"])
    # a stopped trial reported nothing past the rung it was stopped at
    steps = trials.set_index("trial_id")["steps"]
    assert all(steps[t] == s for t, s in zip(stops["trial_id"], stops["step"]))
    assert set(trials.loc[trials["status"] == "completed", "steps"]) == {9}
    assert sorted(events["rung"].dropna().unique()) == [1, 3]
    assert 0 < len(stops) < 300


@pytest.mark.ray
@pytest.mark.parametrize("concurrency", [1, 2])
def test_hyperband_pauses_trials_without_holding_a_worker_and_halves_every_bracket(ray_local, tmp_path, concurrency):
    """Under Ray Tune a paused trial keeps its place among ``concurrency`` trials, and with fewer
    places than a bracket's trials no bracket ever halves; here it gives its worker away."""
    data = _experiment(
        tmp_path,
        budget={"samples": 40, "max_steps": 9},
        scheduler={"hyperband": {"reduction_factor": 3}},
        concurrency=concurrency,
    )
    plan = compile_plan(load_experiment(data))
    summary = run(plan.experiment)
    results = read_results(summary.path)
    trials, events = results.trials, results.events
    assert len(trials) == 40 and set(trials["status"]) <= {"completed", "stopped"}
    paused = events[events["action"] == "pause"]
    halved = events[events["action"].isin(["continue", "stop"])]
    assert len(paused) and len(halved)
    assert set(paused["trial_id"]) <= set(halved["trial_id"])  # every pause ended in a decision
    for _, rows in halved.groupby(["bracket", "rung", "cutoff"]):  # each halving (its cut-off) keeps the best
        kept, cut = rows[rows["action"] == "continue"], rows[rows["action"] == "stop"]
        assert len(kept) >= -(-len(rows) // 3) and len(cut) >= 1
        assert (kept["value"] <= kept["cutoff"]).all() and (cut["value"] >= cut["cutoff"]).all()
    stopped = set(halved.loc[halved["action"] == "stop", "trial_id"])
    steps = trials.set_index("trial_id")["steps"]
    assert all(steps[t] < 9 for t in stopped)
    assert not results.reports.duplicated(["trial_id", "step"]).any()


@pytest.mark.ray
def test_failures_are_error_rows_with_retries_and_fail_fast_ends_the_run(ray_local, tmp_path):
    data = _experiment(tmp_path, trainable="tests.swarm_trainables:fails_below_zero", failure={"max_retries": 1})
    summary = run(load_experiment(data))
    results = read_results(summary.path)
    trials = results.trials
    below = trials["param_x"] < 0
    assert set(trials.loc[below, "status"]) == {"error"} and set(trials.loc[~below, "status"]) == {"completed"}
    assert trials.loc[below, "error"].str.contains("is below zero").all() and (trials.loc[below, "retries"] == 1).all()
    retries = results.events[results.events["action"] == "retry"]
    assert set(retries["trial_id"]) == set(trials.loc[below, "trial_id"])

    data = _experiment(tmp_path, trainable="tests.swarm_trainables:fails_below_zero", failure={"fail_fast": True})
    summary = run(load_experiment(data))
    assert summary.ended is not None and "fail_fast" in summary.ended
    assert summary.errors >= 1 and summary.trials < 200


@pytest.mark.ray
@pytest.mark.parametrize(
    "changes, why",
    [
        ({"metric": {"name": "loss", "mode": "min", "goal": 0.4}}, "goal"),
        ({"trainable": "tests.swarm_trainables:paced", "budget": {"samples": 5000, "max_steps": 3, "time_limit": 3}}, "time limit"),
    ],
    ids=["goal", "time-limit"],
)
def test_a_goal_or_the_time_limit_ends_the_run_and_running_trials_stop_where_they_are(ray_local, tmp_path, changes, why):
    data = _experiment(tmp_path, **{"budget": {"samples": 5000, "max_steps": 3}, **changes})
    summary = run(load_experiment(data))
    assert summary.ended is not None and why in summary.ended
    results = read_results(summary.path)
    assert len(results.trials) < 5000 and set(results.trials["status"]) <= {"completed", "stopped"}
    assert set(results.reports["trial_id"]) <= set(results.trials["trial_id"])  # every trial that ran has its row


@pytest.mark.ray
def test_a_lost_worker_reruns_only_what_it_held_and_nothing_is_twice(ray_local, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    data = _experiment(
        tmp_path,
        trainable="tests.swarm_trainables:dies_once",
        budget={"samples": 6, "max_steps": 3},
        space={"x": {"float": [-1.0, 1.0]}, "markers": str(markers)},
        runtime={"swarm": {"batch_size": 2}},
    )
    summary = run(load_experiment(data))
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}
    assert len(list(markers.iterdir())) == 6  # every trial killed its worker once
    assert len(reports) == 18 and not reports.duplicated(["trial_id", "step"]).any()
    assert (reports.loc[reports["step"] == 1, "metric_loss"] != 9.0).all()  # the re-run's row is the one read
    retried = results.events[results.events["action"] == "retry"]
    assert set(retried["trial_id"]) <= set(trials["trial_id"]) and (trials["retries"] <= 1).all()


@pytest.mark.ray
def test_a_config_that_keeps_killing_its_worker_becomes_an_error_row(ray_local, tmp_path):
    data = _experiment(
        tmp_path,
        trainable="tests.swarm_trainables:kills_worker",
        budget={"samples": 8, "max_steps": 2},
        runtime={"swarm": {"batch_size": 2}},
    )
    summary = run(load_experiment(data))
    trials = read_results(summary.path).trials
    below = trials["param_x"] < 0
    assert below.any() and set(trials.loc[below, "status"]) == {"error"}
    assert trials.loc[below, "error"].str.contains("its worker died 3 times").all()
    assert set(trials.loc[~below, "status"]) == {"completed"} and len(trials) == 8


# ---------------------------------------------------------------------------
# The driver killed: resume from the tables


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("scheduler, kill", [("fifo", signal.SIGKILL), ("asha", signal.SIGKILL), ("asha", signal.SIGINT)])
def test_resume_after_the_driver_is_killed_finishes_without_rerunning_finished_configs(tmp_path, scheduler, kill):
    data = _experiment(
        tmp_path,
        trainable="tests.swarm_trainables:paced",
        budget={"samples": 400, "max_steps": 3},
        space={"x": {"float": [-1.0, 1.0]}, "pause": 0.02},
        scheduler=scheduler if scheduler == "fifo" else {"asha": {"grace_steps": 1, "reduction_factor": 3}},
        concurrency=2,
    )
    path = _file(tmp_path, data)
    driver = _start(["run", str(path), "--quiet"])
    root = tmp_path / "results"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # until some trials' rows are in parts (written every 5 s)
        runs = find_runs(root) if root.exists() else []
        if runs and list((runs[0] / "trials").glob("part-*.parquet")):
            break
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.2)
    if kill == signal.SIGKILL:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray, at once
        driver.communicate()
    else:  # Ctrl+C: a clean stop, every row on disk, and how to go on
        driver.send_signal(kill)
        _, err = driver.communicate(timeout=120)
        assert driver.returncode == 130 and "interrupted: scalehp resume" in err and "Traceback" not in err, err[-3000:]
    (run_dir,) = find_runs(root)
    before = read_results(run_dir)
    finished = set(before.trials["trial_id"])
    assert 0 < len(finished) < 400

    resumed = _start(["resume", str(run_dir), "--quiet"])
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    after = read_results(run_dir)
    trials, reports = after.trials, after.reports
    assert len(trials) == 400 and not trials.duplicated("trial_id").any()
    assert set(trials["trial_id"]) == {trial_name(i) for i in range(400)}
    assert not reports.duplicated(["trial_id", "step"]).any()
    for trial_id, rows in reports.groupby("trial_id"):
        assert sorted(rows["step"]) == list(range(1, len(rows) + 1))
    # a config that had finished before the kill ran once: one row per step in the parts as written
    raw = _raw(run_dir, "reports")
    again = raw[raw["trial_id"].isin(finished)]
    assert not again.duplicated(["trial_id", "step"]).any()
    # each index kept its config, also those that ran again
    kept = before.reports.groupby("trial_id")["param_x"].first()
    assert (trials.set_index("trial_id").loc[kept.index, "param_x"] == kept).all()
    if scheduler == "asha":  # the decisions on disk stood: no (trial, rung) decided twice
        decided = after.events[after.events["action"].isin(["continue", "stop"])]
        assert not decided.duplicated(["trial_id", "rung"]).any()


@pytest.mark.parametrize(
    "space",
    [
        {"x": {"float": [-1.0, 1.0]}, "k": {"choice": ["a", "b"]}},
        {"model": {"choice": {"mlp": {"width": {"int": [4, 64]}}, "linear": {}}}, "x": {"float": [-1.0, 1.0]}},
    ],
    ids=["flat", "conditional"],
)
def test_a_resumed_run_draws_each_remaining_index_the_config_it_had(tmp_path, space):
    from scalehp.runner.search import suggestions

    plan = compile_plan(load_experiment(_experiment(tmp_path, space=space, budget={"samples": 20, "max_steps": 1})))
    everything = dict(suggestions(plan, trial_name)[0])
    rest = dict(suggestions(plan, trial_name, skip={0, 3, 4, 17})[0])
    assert sorted(rest) == sorted(set(range(20)) - {0, 3, 4, 17})
    assert all(rest[i] == everything[i] for i in rest)


def test_optuna_qmc_suggests_scrambled_sobol_points_repeatably(tmp_path):
    from scalehp.runner.search import suggestions

    data = _experiment(tmp_path, search={"algorithm": "optuna", "sampler": "qmc"}, budget={"samples": 17, "max_steps": 1})
    plan = compile_plan(load_experiment(data))
    assert plan.searcher.startswith("optuna quasi-random")
    first = [c["x"] for _, c in suggestions(plan, trial_name)[0]]
    assert first == [c["x"] for _, c in suggestions(plan, trial_name)[0]]
    # after the first config (drawn at random: Optuna learns the space from it), 16 Sobol points
    # cover the range evenly: each of 16 equal bins holds one (random draws leave some empty)
    assert sorted(int((x + 1) / 2 * 16) for x in first[1:]) == list(range(16))


@pytest.mark.slow
@pytest.mark.ray
def test_asha_on_the_digits_mlp_decides_alike_in_both_runtimes(ray_local, tmp_path):
    """Real training, seeded per trial (the same seed for the same index in both runtimes), one
    trial at a time: the same reports, so the same rung values, cut-offs and stops."""
    from tests.test_same_events import assert_same_events, decisions

    def experiment(runtime: str | None) -> dict:
        return {
            "name": f"digits-{runtime or 'tune'}",
            "trainable": "experiments.trainables.digits:train",
            "metric": {"name": "val_loss", "mode": "min"},
            "budget": {"samples": 9, "max_steps": 9},
            "concurrency": 1,
            "seed": 4,
            "space": {
                "lr": {"float": [1.0e-3, 3.0e-2], "log": True},
                "width": {"int": [16, 64], "log": True},
                "depth": 1,
                "dropout": 0.0,
                "batch_size": 64,
            },
            "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
            "runtime": runtime,
            "results": str(tmp_path),
        }

    tune_ends, tune_rows = decisions(read_results(run(load_experiment(experiment(None))).path))
    swarm_ends, swarm_rows = decisions(read_results(run(load_experiment(experiment("swarm"))).path))
    assert any(r["action"] == "stop" for r in tune_rows) and any(r["action"] == "continue" for r in tune_rows)
    assert swarm_ends == tune_ends
    assert_same_events(swarm_rows, tune_rows)


def test_progress_shows_the_rate_and_the_time_left(capsys):
    from scalehp.cli.experiment import _progress_printer
    from scalehp.recorder import Progress

    show = _progress_printer(quiet=False)
    show(Progress(trials=1_000_000, running=2, completed=250_000, stopped=0, errors=0, elapsed_s=100.0, metric="loss", best=0.5, best_trial="t0000007"))
    show(Progress(trials=1_000_000, running=0, completed=1_000_000, stopped=0, errors=0, elapsed_s=4000.0, metric="loss"))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("[01:40] 250,000/1,000,000 done, 2,500/s, ETA 05:00 (250,000 completed")
    assert lines[0].endswith("2 running  best loss 0.5 (t0000007)")
    assert lines[1].startswith("[1:06:40] 1,000,000/1,000,000 done (1,000,000 completed")


# ---------------------------------------------------------------------------
# A vectorized trainable: a whole batch in one call


def test_a_vectorized_worker_evaluates_its_whole_batch_in_one_call():
    from tests.swarm_trainables import vectorized_square, vectorized_wrong_length

    worker = Worker(vectorized_square, "loss", max_steps=1, vectorized=True)
    try:
        configs = [(trial_name(i), {"x": i / 10}, i, []) for i in range(5)]
        got = []
        deadline = time.monotonic() + 10
        while sum(m[0] == "end" for m in got) < 5 and time.monotonic() < deadline:
            got += worker.poll(None, configs, wait_s=0.5)[0]
            configs = None
        reports = [m for m in got if m[0] == "report"]
        assert [(m[1], m[2], m[5]["loss"], m[5]["batch"]) for m in reports] == [
            (trial_name(i), 1, pytest.approx((i / 10 - 0.25) ** 2), 5) for i in range(5)
        ]
        assert [m for m in got if m[0] == "end"] == [("end", trial_name(i), None) for i in range(5)]
    finally:
        worker.close()
    worker = Worker(vectorized_wrong_length, "loss", max_steps=1, vectorized=True)
    try:
        got = _until(worker, configs=[(trial_name(i), {"x": 0.0}, i, []) for i in range(2)])
        assert got[0][0] == "end" and "returned 1 results for 2 configs" in got[0][2]
    finally:
        worker.close()


@pytest.mark.parametrize(
    "changes, where, says",
    [
        ({"budget": {"samples": 10, "max_steps": 3}}, "runtime.swarm.vectorized", "max_steps to 1"),
        ({"scheduler": {"asha": {}}}, "scheduler", "nothing for asha to stop"),
        ({"trainable": "tests.trainables:quadratic"}, "trainable", "takes one argument"),
    ],
)
def test_a_vectorized_run_is_checked_at_the_key(tmp_path, changes, where, says):
    data = _experiment(tmp_path, trainable="tests.swarm_trainables:vectorized_square",
                       budget={"samples": 10, "max_steps": 1}, runtime={"swarm": {"batch_size": 4, "vectorized": True}})
    data.update(changes)
    with pytest.raises(SpecError, match=rf"{where}: .*{says}"):
        run(load_experiment(data))
    assert not (tmp_path / "results").exists()


@pytest.mark.ray
def test_a_vectorized_run_evaluates_every_config_once_in_batches(ray_local, tmp_path):
    data = _experiment(tmp_path, trainable="tests.swarm_trainables:vectorized_square",
                       budget={"samples": 300, "max_steps": 1}, runtime={"swarm": {"batch_size": 50, "vectorized": True}})
    summary = run(load_experiment(data))
    results = read_results(summary.path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 300 and set(trials["status"]) == {"completed"} and len(reports) == 300
    assert (reports["metric_loss"] - (reports["param_x"] - 0.25) ** 2).abs().max() < 1e-12
    assert reports["metric_batch"].max() > 1  # several configs per call
    tune_configs = sorted(read_results(run(load_experiment({**data, "name": "plain", "runtime": {"swarm": {"batch_size": 50}},
                                                             "trainable": "tests.trainables:quadratic"})).path).trials["param_x"])
    assert sorted(trials["param_x"]) == tune_configs  # the very configs the seeded searcher draws either way
