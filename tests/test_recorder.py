"""RunRecorder without Ray: a fake clock drives the bookkeeping of a run, and what it writes
is read back through the same store that `scalehp results` uses."""

from __future__ import annotations

import datetime as dt
import math

import pyarrow as pa
import pytest

from scalehp.compiler import compile_plan
from scalehp.recorder import RunRecorder
from scalehp.results.sink import ParquetSink
from scalehp.results.store import read_results, read_table
from scalehp.spec import load_experiment


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.mono = 0.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def _plan(tmp_path, **changes):
    data = {
        "name": "exp",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 4, "max_steps": 3},
        "space": {"x": {"float": [0.0, 1.0]}},
        "results": str(tmp_path),
    }
    data.update(changes)
    return compile_plan(load_experiment(data))


def _recorder(tmp_path, clock, **changes):
    plan = _plan(tmp_path, **changes)
    run_dir = tmp_path / "exp" / "run"
    (run_dir).mkdir(parents=True, exist_ok=True)
    (run_dir / "plan.json").write_text(
        '{"run_id": "run", "created_at": "%s", "experiment": {"metric": {"name": "loss", "mode": "min"}}}'
        % dt.datetime.fromtimestamp(clock.time(), tz=dt.timezone.utc).isoformat()
    )
    sink = ParquetSink(run_dir, [pa.field("param_x", pa.float64())], clock=clock.monotonic)
    return RunRecorder(plan, sink, "run", clock=clock), run_dir


def _parts(run_dir, table):
    return sorted((run_dir / table).glob("part-*.parquet"))


def _on_disk(run_dir, table):
    """The rows of ``table`` a reader finds now: in parts, or in the journal only."""
    return read_table([run_dir], table).num_rows


def test_a_trials_end_and_an_acting_decision_are_on_disk_at_once_reports_wait(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock)
    recorder.start("t0", {"x": 0.5})
    recorder.report("t0", 1, {"loss": 0.9})
    assert not _on_disk(run_dir, "reports")  # batched: a lost report is run again from a checkpoint
    recorder.decide({"trial_id": "t0", "step": 1, "scheduler": "asha", "action": "continue", "rung": 1, "value": 0.9})
    assert not _on_disk(run_dir, "events")
    recorder.report("t0", 2, {"loss": 0.8})
    recorder.decide({"trial_id": "t0", "step": 2, "scheduler": "asha", "action": "stop", "rung": 2, "value": 0.8})
    assert _on_disk(run_dir, "reports") == 2 and _on_disk(run_dir, "events") == 2  # before the runtime stops it
    assert not _parts(run_dir, "reports")  # in the journal: parts wait for the flush
    assert recorder.end_trial("t0") == "stopped"
    trials = read_results(run_dir).trials
    assert trials.set_index("trial_id").loc["t0", "status"] == "stopped"


def test_status_follows_max_steps_errors_and_the_failure_cap(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock, failure={"max_failed_trials": 1})
    for step in (1, 2, 3):
        recorder.report("done", step, {"loss": 1.0 / step})
    recorder.report("short", 1, {"loss": 0.2})
    assert recorder.end_trial("done") == "completed"
    assert recorder.end_trial("short") == "stopped"
    assert recorder.end_trial("done") is None  # once
    assert recorder.ended is None
    assert recorder.end_trial("bad", error="ValueError: boom") == "error"
    assert recorder.ended["reason"] == "failure.max_failed_trials" and recorder.over()
    events = read_results(run_dir).events
    assert list(events["action"]) == ["end"]


def test_goal_ends_the_run_with_the_first_report_that_reached_it(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock, metric={"name": "acc", "mode": "max", "goal": 0.9})
    recorder.report("a", 1, {"acc": math.inf})  # never a goal, never the best
    recorder.report("a", 2, {"acc": 0.5})
    assert recorder.ended is None and recorder.best == (0.5, "a")
    recorder.report("b", 1, {"acc": 0.95})
    assert recorder.ended == {"reason": "metric.goal", "trial_id": "b", "step": 1, "value": 0.95, "cutoff": 0.9}
    assert _on_disk(run_dir, "events")  # durable before anything stops


def test_the_time_limit_counts_running_time_only_across_a_resume(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock, budget={"samples": 4, "max_steps": 3, "time_limit": "100s"})
    clock.advance(30)
    recorder.report("a", 1, {"loss": 1.0})
    clock.advance(10)
    recorder.report("a", 2, {"loss": 0.9})
    assert not recorder.over()
    recorder.close()  # the driver dies here (its rows were flushed on the way)
    clock.advance(3600)  # an hour of nothing
    again = RunRecorder(recorder.plan, ParquetSink(run_dir, [pa.field("param_x", pa.float64())]), "run", clock=clock)
    tables = read_results(run_dir)
    again.seed(tables.trials, tables.reports, tables.events, tables.metric_columns, created_at=tables.plans["run"]["created_at"])
    assert again.used_s == pytest.approx(40, abs=1.5)
    clock.advance(50)
    assert not again.over()
    clock.advance(15)
    assert again.over() and again.ended["reason"] == "budget.time_limit"


def test_the_soft_time_limit_stops_starts_not_the_run_and_holds_across_a_resume(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock, budget={"samples": 4, "max_steps": 3, "soft_time_limit": "60s"})
    recorder.start("a", {"x": 1.0})
    clock.advance(30)
    assert recorder.may_start()
    recorder.report("a", 1, {"loss": 1.0})
    clock.advance(31)
    assert not recorder.may_start() and not recorder.over()  # running trials go on
    recorder.report("a", 2, {"loss": 0.5})  # ... and report
    assert recorder.closed["reason"] == "budget.soft_time_limit" and recorder.ended is None
    recorder.close()
    events = read_results(run_dir).events
    assert list(events["action"]) == ["end"] and list(events["reason"]) == ["budget.soft_time_limit"]
    again = RunRecorder(recorder.plan, ParquetSink(run_dir, [pa.field("param_x", pa.float64())]), "run", clock=clock)
    tables = read_results(run_dir)
    again.seed(tables.trials, tables.reports, tables.events, tables.metric_columns, created_at=tables.plans["run"]["created_at"])
    assert again.ended is None and not again.over() and not again.may_start()  # a resume finishes "a", starts nothing
    assert again.progress(1).trials == 1  # the run is the trials that started


def test_a_soft_time_limit_must_be_below_the_hard_one(tmp_path):
    with pytest.raises(Exception, match="soft_time_limit .* must be below time_limit"):
        _plan(tmp_path, budget={"samples": 4, "max_steps": 3, "soft_time_limit": "2m", "time_limit": "60s"})


def test_resume_finishes_what_the_tables_say_ended_and_keeps_decisions(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock)
    recorder.start("stopped", {"x": 0.1})
    recorder.start("full", {"x": 0.2})
    recorder.start("running", {"x": 0.3})
    for step in (1, 2, 3):
        recorder.report("full", step, {"loss": 0.5})
    recorder.report("stopped", 1, {"loss": 0.9})
    recorder.report("running", 1, {"loss": 0.4})
    recorder.decide({"trial_id": "running", "step": 1, "scheduler": "asha", "action": "continue", "rung": 1, "value": 0.4})
    recorder.decide({"trial_id": "stopped", "step": 1, "scheduler": "asha", "action": "stop", "rung": 1, "value": 0.9})
    # killed here: no trials row for anyone
    assert not _on_disk(run_dir, "trials")
    again = RunRecorder(recorder.plan, ParquetSink(run_dir, [pa.field("param_x", pa.float64())]), "run", clock=clock)
    tables = read_results(run_dir)
    recovered = again.seed(tables.trials, tables.reports, tables.events, tables.metric_columns)
    assert sorted(recovered) == ["full", "stopped"]
    assert again.status("full") == "completed" and again.status("stopped") == "stopped"
    assert again.status("running") is None
    assert again.decided("running", 1, "asha") == "continue"  # a step run again is not decided again
    assert again.best == (0.4, "running")
    again.report("stopped", 2, {"loss": 0.1})  # a report of an ended trial is not recorded
    again.close()
    after = read_results(run_dir)
    assert set(after.trials["trial_id"]) == {"full", "stopped"}
    assert not ((after.reports["trial_id"] == "stopped") & (after.reports["step"] == 2)).any()
    assert list(after.events["action"]).count("resume") == 1


def test_before_write_runs_before_rows_reach_the_disk(tmp_path):
    clock = FakeClock()
    recorder, run_dir = _recorder(tmp_path, clock)
    seen = []
    recorder.sink.before_write = lambda: seen.append(_on_disk(run_dir, "reports"))
    recorder.report("a", 1, {"loss": 1.0})
    recorder.end_trial("a")
    assert seen == [0]


def test_progress_counts_ended_trials_and_an_ended_trial_is_forgotten(tmp_path):
    """Memory does not grow with ended trials: their record goes once the row is written."""
    clock = FakeClock()
    recorder, _ = _recorder(tmp_path, clock)
    for i, (steps, error) in enumerate([(3, None), (1, None), (2, "boom")]):
        recorder.start(f"t{i}", {"x": 0.1 * i})
        for step in range(1, steps + 1):
            clock.advance(1.0)
            recorder.report(f"t{i}", step, {"loss": 1.0 / step})
        recorder.end_trial(f"t{i}", error=error)
    recorder.start("t3", {"x": 0.9})
    progress = recorder.progress(running=1)
    assert (progress.completed, progress.stopped, progress.errors, progress.running) == (1, 1, 1, 1)
    assert set(recorder.trials) == {"t3"} and recorder.end_trial("t0") is None  # ended once
    recorder.report("t0", 3, {"loss": 0.1})  # a late report of an ended trial changes nothing
    assert set(recorder.trials) == {"t3"}
