from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalehp.errors import ResultsError
from scalehp.results.schema import column_name
from scalehp.results.sink import ParquetSink, sweep
from scalehp.results.store import read_results

PARAMS = [pa.field("param_x", pa.float64()), pa.field("param_opt", pa.string())]


def make_run(tmp_path, name="run1", experiment="exp"):
    run = tmp_path / experiment / name
    run.mkdir(parents=True)
    (run / "plan.json").write_text(
        json.dumps(
            {
                "run_id": name,
                "trials": 2,
                "columns": {"x": "param_x", "opt": "param_opt"},
                "experiment": {"name": experiment, "metric": {"name": "loss", "mode": "min"}},
            }
        )
    )
    return run


def report(trial, step, loss, **extra):
    return {
        "run_id": "run1",
        "experiment": "exp",
        "trial_id": trial,
        "step": step,
        "time": time.time(),
        "param_x": 0.5,
        "param_opt": "adam",
        "metric_loss": loss,
        **extra,
    }


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_column_rule():
    assert column_name("metric", "val/loss") == "metric_val_loss"
    assert column_name("metric", "metrics/mAP_0.5") == "metric_metrics_mAP_0_5"


def test_parts_are_written_on_row_and_time_bounds(tmp_path):
    run = make_run(tmp_path)
    clock = Clock()
    sink = ParquetSink(run, PARAMS, flush_rows=3, flush_seconds=10, clock=clock)
    for step in (1, 2):
        sink.add("reports", report("a", step, 1.0 / step))
    assert not list((run / "reports").glob("*.parquet")) if (run / "reports").exists() else True
    sink.add("reports", report("a", 3, 0.3))  # third row: row bound
    assert len(list((run / "reports").glob("part-*.parquet"))) == 1
    sink.add("reports", report("a", 4, 0.25))
    clock.now = 11  # time bound
    sink.tick()
    assert len(list((run / "reports").glob("part-*.parquet"))) == 2
    assert len(read_results(run).reports) == 4


def test_types_are_stable_and_new_metrics_unify(tmp_path):
    run = make_run(tmp_path)
    sink = ParquetSink(run, PARAMS, flush_rows=1)
    sink.add("reports", report("a", 1, 1))  # an int metric is still float64
    sink.add("reports", report("a", 2, 0.5, metric_acc=0.9))  # a metric that appears later
    sink.add("reports", {**report("a", 3, None), "param_x": None})
    schemas = [pq.read_schema(f) for f in sorted((run / "reports").glob("part-*"))]
    assert all(s.field("metric_loss").type == pa.float64() for s in schemas)
    frame = read_results(run).reports
    assert list(frame["metric_loss"][:2]) == [1.0, 0.5]
    assert frame["metric_acc"].isna().tolist() == [True, False, True]


def test_duplicates_keep_the_last_row(tmp_path):
    run = make_run(tmp_path)
    sink = ParquetSink(run, PARAMS, flush_rows=1)
    sink.add("reports", report("a", 1, 1.0))
    sink.add("reports", report("a", 2, 0.9))
    sink.add("reports", report("a", 2, 0.8))  # a retried step
    sink.add("trials", {"run_id": "run1", "experiment": "exp", "trial_id": "a", "status": "error"})
    sink.add("trials", {"run_id": "run1", "experiment": "exp", "trial_id": "a", "status": "completed"})
    results = read_results(run)
    assert results.reports[["step", "metric_loss"]].values.tolist() == [[1, 1.0], [2, 0.8]]
    assert results.trials["status"].tolist() == ["completed"]


def test_half_written_parts_are_invisible_and_swept(tmp_path):
    run = make_run(tmp_path)
    sink = ParquetSink(run, PARAMS, flush_rows=1)
    sink.add("reports", report("a", 1, 1.0))
    leftover = run / "reports" / ".part-999.parquet.tmp"
    leftover.write_bytes(b"PAR1 half a file")
    assert len(read_results(run).reports) == 1  # readers never see temporaries
    assert sweep(run) == 1 and not leftover.exists()


def _write_forever(run, ready):
    sink = ParquetSink(run, PARAMS, flush_rows=50)
    step = 0
    ready.set()
    while True:
        step += 1
        sink.add("reports", report("a", step, 1.0 / step))


def test_killed_writer_leaves_readable_tables(tmp_path):
    run = make_run(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    process = ctx.Process(target=_write_forever, args=(run, ready))
    process.start()
    ready.wait(30)
    time.sleep(1.5)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    frame = read_results(run).reports
    assert len(frame) >= 50 and len(frame) % 50 == 0
    assert frame["step"].tolist() == list(range(1, len(frame) + 1))


def test_read_results_over_experiments_and_roots(tmp_path):
    for experiment, name in [("e1", "r1"), ("e1", "r2"), ("e2", "r3")]:
        run = make_run(tmp_path, name, experiment)
        sink = ParquetSink(run, PARAMS)
        sink.add(
            "trials",
            {"run_id": name, "experiment": experiment, "trial_id": "t", "status": "completed", "best_value": 1.0},
        )
        sink.close()
    assert len(read_results(tmp_path).trials) == 3
    assert len(read_results(tmp_path / "e1").trials) == 2
    assert read_results(tmp_path / "e1" / "r2").trials["run_id"].tolist() == ["r2"]
    assert read_results(tmp_path / "e2" / "r3").metric() == ("loss", "min")


def test_empty_and_missing(tmp_path):
    run = make_run(tmp_path)
    results = read_results(run)
    assert len(results.trials) == 0 and "status" in results.trials.columns
    with pytest.raises(ResultsError, match="no such folder"):
        read_results(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no scalehp runs"):
        read_results(tmp_path / "empty")
