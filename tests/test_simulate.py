"""``scalehp simulate``: the decisions of a real run, on a simulated clock, written as a real run's tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.recorder import RunRecorder
from scalehp.results.schema import param_fields
from scalehp.results.sink import ParquetSink
from scalehp.results.sql import query
from scalehp.results.store import read_results
from scalehp.simulator import START, simulate
from scalehp.simulator.curves import from_results
from scalehp.spec import load_experiment
from tests.test_same_events import CASES, GOLDEN, assert_same_events, decisions

GRID = [round(0.05 * i, 2) for i in range(21)]  # x = 0.0, 0.05, ..., 1.0


def _experiment(tmp_path, scheduler="asha", **changes):
    data = {
        "name": "sim",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 30, "max_steps": 9},
        "concurrency": 4,
        "seed": 3,
        "space": {"x": {"float": [0.0, 1.0]}},
        "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}} if scheduler == "asha" else scheduler,
        "search": {"algorithm": "random"},
        "results": str(tmp_path / "sims"),
        **changes,
    }
    return load_experiment(data)


def _source(tmp_path, steps=9, skip=None, param="x"):
    """A results folder as a FIFO run of ``quadratic`` over GRID writes it (tables only)."""
    exp = _experiment(tmp_path, scheduler="fifo", space={param: {"float": [0.0, 1.0]}}, budget={"samples": 21, "max_steps": steps})
    plan = compile_plan(exp)
    run_dir = tmp_path / "source" / "sim" / "r0"
    run_dir.mkdir(parents=True)
    (run_dir / "plan.json").write_text(json.dumps({"run_id": "r0", **plan.to_dict()}))
    clock = _Clock()
    recorder = RunRecorder(plan, ParquetSink(run_dir, param_fields(exp.space, plan.columns)), "r0", clock=clock)
    for i, x in enumerate(GRID):
        trial = f"t{i:02d}"
        recorder.start(trial, {param: x})
        elapsed = 0.0
        for step in range(1, steps + 1):
            if (i, step) == skip:
                continue
            elapsed += 60.0 * (1 + x)  # a step takes 1-2 minutes
            recorder.report(trial, step, {"loss": (x - 0.3) ** 2 + 1.0 / step}, elapsed_s=elapsed)
        recorder.end_trial(trial)
    recorder.close()
    return run_dir


class _Clock:
    def __init__(self):
        self.now = 0.0

    def time(self):
        self.now += 1.0
        return 1.7e9 + self.now

    def monotonic(self):
        return self.now


def _rows(summary, table):
    frame = read_results(summary.path).table(table).drop_columns(["run_id"]).to_pylist()
    return frame


def test_a_simulation_writes_a_real_runs_tables_on_the_simulated_clock(tmp_path):
    source = _source(tmp_path)
    summary = simulate(_experiment(tmp_path), source, workers=4, decision_time=False)
    tables = read_results(summary.path)
    assert summary.trials == 30 and summary.completed + summary.stopped == 30
    assert summary.stopped > 10  # ASHA stops the trials far from 0.3
    assert summary.best_value == pytest.approx(1 / 9 + min((x - 0.3) ** 2 for x in GRID), abs=0.01)
    reports = tables.reports
    assert reports["time"].min().timestamp() > START  # simulated time, from 2000-01-01
    assert 60 <= summary.elapsed_s <= 30 * 9 * 120  # hours of simulated work, not seconds
    actions = set(tables.events["action"])
    assert {"continue", "stop"} <= actions
    plan = json.loads((summary.path / "plan.json").read_text())
    assert plan["simulated"]["workers"] == 4 and plan["simulated"]["source"] == str(source)
    assert query(summary.path, "SELECT count(*) AS n FROM trials").to_pylist() == [{"n": 30}]


def test_the_same_seed_gives_identical_rows_and_another_seed_other_configs(tmp_path):
    source = _source(tmp_path)
    first = simulate(_experiment(tmp_path), source, workers=8, decision_time=False)
    again = simulate(_experiment(tmp_path), source, workers=8, decision_time=False)
    for table in ("trials", "reports", "events"):
        assert _rows(first, table) == _rows(again, table), table
    other = simulate(_experiment(tmp_path, seed=4), source, workers=8, decision_time=False)
    assert _rows(first, "trials") != _rows(other, "trials")


def test_more_workers_finish_sooner_in_simulated_time(tmp_path):
    source = _source(tmp_path)
    one = simulate(_experiment(tmp_path, scheduler="fifo"), source, workers=1, decision_time=False)
    many = simulate(_experiment(tmp_path, scheduler="fifo"), source, workers=10, decision_time=False)
    busy = read_results(one.path).reports.groupby("trial_id")["elapsed_s"].max().sum()
    assert one.elapsed_s == pytest.approx(busy)  # one worker: trial after trial, never idle
    assert many.elapsed_s < one.elapsed_s / 5  # ten at once, give or take the tail
    assert one.best_value == many.best_value  # FIFO: the same trials run to the end


def test_hours_end_the_run_in_simulated_time(tmp_path):
    source = _source(tmp_path)
    summary = simulate(_experiment(tmp_path, scheduler="fifo"), source, workers=2, hours=1.0, decision_time=False)
    assert summary.ended and "time_limit" in summary.ended
    assert summary.elapsed_s <= 3600 + 120
    events = read_results(summary.path).events
    assert list(events["action"]) == ["end"]


def test_the_soft_time_limit_starts_no_trial_after_it_and_lets_running_ones_finish(tmp_path):
    source = _source(tmp_path)
    exp = _experiment(tmp_path, scheduler="fifo", budget={"samples": 30, "max_steps": 9, "soft_time_limit": "1h"})
    summary = simulate(exp, source, workers=2, decision_time=False)
    tables = read_results(summary.path)
    trials, events = tables.trials, tables.events
    assert 2 < len(trials) < 30 and set(trials["status"]) == {"completed"}  # none cut short
    started = (trials["started_at"] - pd.Timestamp(START, unit="s", tz="UTC")).dt.total_seconds()
    assert started.max() < 3600 < summary.elapsed_s  # the last start before the hour, the end after it
    assert list(events["reason"]) == ["budget.soft_time_limit"] and "no trial started after 3600 s" in summary.ended


def test_a_config_the_table_does_not_hold_takes_its_nearest_trial(tmp_path):
    source = _source(tmp_path)
    curves = from_results(source, compile_plan(_experiment(tmp_path)))
    assert curves.curves[curves.nearest({"x": 0.31})].params == {"x": 0.3}
    assert curves.curves[curves.nearest({"x": 0.0})].params == {"x": 0.0}
    assert curves.curves[curves.nearest({"x": 0.99})].params == {"x": 1.0}


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda tmp: _source(tmp, param="y"), "no column for param x"),
        (lambda tmp: _source(tmp, skip=(3, 4)), "trial t03 of run r0 has no report for step 4"),
        (lambda tmp: _source(tmp, steps=5), "no trial of the source has 9 steps"),
    ],
)
def test_a_source_that_does_not_fit_is_one_line(tmp_path, make, says):
    source = make(tmp_path)
    with pytest.raises(SpecError, match=says):
        simulate(_experiment(tmp_path), source, workers=4)
    assert not (tmp_path / "sims").exists()  # nothing written


@pytest.mark.parametrize(
    "space, says",
    [
        ({"x": {"float": [0.0, 3.0]}}, r"(?<![.\w])space\.x: .*reaches 0 to 3, the source's trials only 0 to 1"),
        ({"x": {"float": [-2.0, 1.0]}}, r"(?<![.\w])space\.x: .*reaches -2 to 1"),
        ({"x": {"choice": [0.3, 0.42]}}, r"(?<![.\w])space\.x: .*no trial with x = 0\.42"),
    ],
)
def test_a_config_outside_the_table_is_refused_at_its_key(tmp_path, space, says):
    """Beyond the tabulated values every config would take an edge trial's curve (or one trained
    with another value): numbers no training made, so the space is refused at its key."""
    with pytest.raises(SpecError, match=says):
        simulate(_experiment(tmp_path, space=space), _source(tmp_path), workers=4)
    assert not (tmp_path / "sims").exists()


def test_a_range_the_table_covers_up_to_its_own_spacing_simulates(tmp_path):
    """The grid's points are 0.05 apart: a range a little past them (under a tenth) is covered."""
    summary = simulate(_experiment(tmp_path, space={"x": {"float": [-0.05, 1.05]}}), _source(tmp_path), workers=4)
    assert summary.trials == 30


@pytest.mark.parametrize("workers", [0, -1, 10**7])
def test_workers_out_of_range_are_refused_at_the_flag(tmp_path, workers):
    with pytest.raises(SpecError, match="--workers"):
        simulate(_experiment(tmp_path), _source(tmp_path), workers=workers)


@pytest.mark.parametrize("seed", [0, 3, 12345])
@pytest.mark.parametrize(
    "space",
    [
        {"a": {"float": [1e-4, 1.0], "log": True}, "b": {"int": [1, 64], "log": True}, "c": {"int": [0, 100], "step": 5}},
        {"d": {"choice": ["x", "y", 3]}, "e": {"float": [0, 1], "step": 0.1}, "f": 7, "g": {"int": [2, 9]}},
    ],
)
def test_random_configs_are_rays_own_draws_without_its_copies(tmp_path, space, seed):
    """The simulator draws each domain in Ray's order from Ray's generator: the configs (and their
    types) of Ray's ``generate_variants``, which a seeded ``scalehp run`` starts."""
    from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
    from ray.tune.search.variant_generator import generate_variants

    from scalehp.runner.search import param_space, suggestions

    plan = compile_plan(_experiment(tmp_path, space=space, seed=seed, budget={"samples": 500, "max_steps": 9}))
    drawn = [config for _, config in suggestions(plan)[0]]
    rng, spec = _BackwardsCompatibleNumpyRng(seed), {"config": param_space(plan.experiment)}
    rays = [dict(r["config"]) for _ in range(500) for _, r in generate_variants(spec, random_state=rng)]
    assert drawn == rays
    assert [[type(v) for v in c.values()] for c in drawn] == [[type(v) for v in c.values()] for c in rays]


def test_hyperband_pauses_halves_and_resumes_in_simulated_time(tmp_path):
    """Brackets fill, trials pause at rungs (freeing the worker, keeping their place), each halving
    keeps ceil(n / eta) of the bracket and the kept ones go on from the next step."""
    source = _source(tmp_path)
    hyperband = {"hyperband": {"reduction_factor": 3}}
    summary = simulate(_experiment(tmp_path, scheduler=hyperband, concurrency=12), source, workers=12, decision_time=False)
    tables = read_results(summary.path)
    events, reports = tables.events, tables.reports
    assert {"pause", "continue", "stop"} <= set(events["action"])
    steps = reports.groupby("trial_id")["step"].apply(list)
    assert all(s == list(range(1, len(s) + 1)) for s in steps)  # each step once, in order, after a pause too
    halvings = events[events["action"].isin(["continue", "stop"])].groupby(["rung", "bracket", "time"])
    for (rung, bracket, _), rows in halvings:
        kept = rows[rows["action"] == "continue"]
        assert 1 <= len(kept) <= -(-len(rows) // 3) + 1
        stopped = rows[rows["action"] == "stop"]
        assert (stopped["value"].min() >= kept["value"].max()) if len(kept) and len(stopped) else True
        assert all(steps[t][-1] == rung for t in stopped["trial_id"])  # a stopped trial reports no more
        assert all(steps[t][-1] > rung for t in kept["trial_id"])  # a kept one goes on
    paused = events[events["action"] == "pause"]
    assert all(steps[t][-1] >= s for t, s in zip(paused["trial_id"], paused["step"]))
    again = simulate(_experiment(tmp_path, scheduler=hyperband, concurrency=12), source, workers=12, decision_time=False)
    assert _rows(summary, "events") == _rows(again, "events")


def test_the_cli_simulates_and_refuses_bad_input_with_exit_2(tmp_path):
    source = _source(tmp_path)
    file = tmp_path / "exp.yaml"
    file.write_text(
        "name: sim\ntrainable: tests.trainables:quadratic\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 12, max_steps: 9}\nseed: 3\nspace: {x: {float: [0.0, 1.0]}}\n"
        "scheduler: {asha: {grace_steps: 1}}\n"
        f"results: {tmp_path / 'sims'}\n"
    )
    runner = CliRunner()
    ok = runner.invoke(main, ["simulate", str(file), "--bench", str(source), "--workers", "4", "--seeds", "2", "-q"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("of simulated time") == 2 and "seed 4:" in ok.output
    for args, says in [
        (["--workers", "0"], "--workers"),
        (["--workers", "10000000"], "--workers"),
        (["--workers", "4", "--hours", "-1"], "--hours"),
        (["--workers", "4", "--seeds", "0"], "--seeds"),
    ]:
        bad = runner.invoke(main, ["simulate", str(file), "--bench", str(source), *args, "-q"])
        assert bad.exit_code == 2 and says in bad.output and "Traceback" not in bad.output, bad.output
    missing = runner.invoke(main, ["simulate", str(file), "--bench", str(tmp_path / "nothing"), "--workers", "4"])
    assert missing.exit_code == 2 and "no such results folder or bundled bank" in missing.output
    pbt = tmp_path / "pbt.yaml"
    pbt.write_text(
file.read_text().replace("{asha: {grace_steps: 1}}", "{pbt: {interval_steps: 3, mutate: [x]}}"))
    refused = runner.invoke(main, ["simulate", str(pbt), "--bench", str(source), "--workers", "4"])
    assert refused.exit_code == 2 and "scheduler" in refused.output and "not simulated" in refused.output, refused.output


@pytest.mark.slow
@pytest.mark.ray
def test_a_real_run_replayed_with_one_worker_makes_its_very_decisions(ray_local, tmp_path):
    """A real FIFO run of the golden experiment is the source; ASHA and median stopping simulated
    over it with 1 worker and the same seed decide exactly as the real runs recorded (golden)."""
    from scalehp.runner import run

    base = {
        "name": "fifo",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 8, "max_steps": 9},
        "concurrency": 1,
        "seed": 3,
        "space": {"x": {"float": [0.0, 1.0]}},
        "search": {"algorithm": "random"},
        "results": str(tmp_path / "real"),
    }
    real = run(load_experiment({**base, "scheduler": "fifo"}))
    for case in ("asha", "median_stopping"):
        scheduler = CASES[case]
        exp = load_experiment({**base, "name": case.replace("_", "-"), "scheduler": scheduler, "results": str(tmp_path / "sim")})
        summary = simulate(exp, real.path, workers=1, decision_time=False)
        ends, rows = decisions(read_results(summary.path))
        assert ends == GOLDEN[case]["trials"]
        assert_same_events(rows, GOLDEN[case]["events"], case)

@pytest.mark.slow
@pytest.mark.ray
def test_with_several_workers_the_rung_cutoffs_are_the_real_runs_within_order_noise(ray_local, tmp_path):
    """A real ASHA run at concurrency 4 and ASHA simulated with 4 workers over a real FIFO run of
    the same configs: at every rung the same trials' values are compared; which of them arrive
    first differs (real step times are milliseconds of noise, and Ray starts its actors one after
    another, which no table records: the first trials meet empty rungs), so the cut-offs agree
    to within a quarter of the spread of the values at that rung, and the best trial is the same."""
    from scalehp.runner import run

    base = {
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 24, "max_steps": 9},
        "concurrency": 4,
        "seed": 5,
        "space": {"x": {"float": [0.0, 1.0]}},
        "search": {"algorithm": "random"},
        "results": str(tmp_path / "real"),
    }
    asha = {"asha": {"grace_steps": 1, "reduction_factor": 3}}
    source = run(load_experiment({**base, "name": "fifo", "scheduler": "fifo"}))
    real = run(load_experiment({**base, "name": "asha", "scheduler": asha}))
    simulated = simulate(load_experiment({**base, "name": "asha", "scheduler": asha, "results": str(tmp_path / "sim")}),
                         source.path, workers=4, decision_time=False)
    tables = {"real": read_results(real.path), "simulated": read_results(simulated.path)}
    configs = {k: sorted(t.trials["param_x"]) for k, t in tables.items()}
    assert configs["real"] == configs["simulated"]  # the same seeded configs
    rungs = {}
    for kind, t in tables.items():
        decided = t.events[t.events["action"].isin(["continue", "stop"])]
        rungs[kind] = {int(r): rows for r, rows in decided.groupby("rung")}
    assert set(rungs["real"]) == set(rungs["simulated"]) == {1, 3}
    for rung in (1, 3):
        real_rows, sim_rows = rungs["real"][rung], rungs["simulated"][rung]
        values = np.concatenate([real_rows["value"], sim_rows["value"]])
        spread = values.max() - values.min()
        cut_real, cut_sim = real_rows["cutoff"].dropna().median(), sim_rows["cutoff"].dropna().median()
        assert abs(cut_real - cut_sim) <= 0.25 * spread, (rung, cut_real, cut_sim, spread)
    assert real.best_params == simulated.best_params and real.best_value == pytest.approx(simulated.best_value, rel=1e-12)


def test_param_fields_are_the_runs(tmp_path):
    summary = simulate(_experiment(tmp_path), _source(tmp_path), workers=3, decision_time=False)
    schema = read_results(summary.path).table("trials").schema
    assert schema.field("param_x").type == pa.float64()
    assert Path(summary.path).parent.name == "sim"


def test_the_bundled_bank_is_real_training_and_simulates(tmp_path):
    from scalehp.simulator.curves import banks, locate

    assert "digits-mlp" in banks()
    exp = load_experiment(Path(__file__).parent.parent / "experiments" / "simulate_digits_mlp.yaml")
    curves = from_results(locate("digits-mlp"), compile_plan(exp))
    assert len(curves.curves) >= 400 and all(c.steps >= 20 for c in curves.curves)
    assert all(d > 0 for c in curves.curves for d in c.durations)  # each epoch's real time
    data = exp.to_dict() | {"budget": {"samples": 60, "max_steps": 20}, "results": str(tmp_path)}
    summary = simulate(load_experiment(data), curves, workers=16, decision_time=False)
    assert summary.trials == 60 and summary.stopped > 20 and 0 < summary.best_value < 0.3
