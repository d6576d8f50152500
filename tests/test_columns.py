"""The name -> Parquet column rule: readable in the common case, never two names in one column."""

from __future__ import annotations

import itertools
import json
import re
import time

import pyarrow.parquet as pq
import pytest

from scalehp.analysis.curves import learning_curves
from scalehp.compiler import compile_plan
from scalehp.results.schema import NAME_KEY, ColumnMap, column_name, metric_column, metric_names
from scalehp.results.sink import ParquetSink
from scalehp.results.store import part_files, read_results
from scalehp.spec import load_experiment

IDENTIFIER = re.compile(r"^[A-Za-z0-9_]+$")


def test_readable_column_for_the_common_case():
    columns = ColumnMap("metric")
    added = columns.add(["val/loss", "metrics/mAP_0.5", "train.acc", "loss"])
    assert added == {
        "loss": "metric_loss",
        "metrics/mAP_0.5": "metric_metrics_mAP_0_5",
        "train.acc": "metric_train_acc",
        "val/loss": "metric_val_loss",
    }
    assert columns.names["metric_val_loss"] == "val/loss"
    assert column_name("metric", "val/loss") == "metric_val_loss"


def test_collisions_get_a_hash_of_the_name_and_names_arriving_together_have_a_fixed_order():
    for order in itertools.permutations(["val/loss", "val_loss", "val.loss"]):
        columns = ColumnMap("metric")
        assert columns.add(order) == {
            "val_loss": "metric_val_loss",  # unchanged by the rule: first
            "val.loss": "metric_val_loss__d18a65",
            "val/loss": "metric_val_loss__0ba428",
        }
    # one at a time, the first to come keeps the readable column
    columns = ColumnMap("metric")
    columns.add(["val/loss"])
    assert columns.add(["val_loss"]) == {"val_loss": "metric_val_loss__aa8f15"}
    assert columns["val/loss"] == "metric_val_loss"
    assert columns.add(["val/loss"]) == {}, "a name keeps its column"


def test_columns_differing_only_in_case_collide_for_sql():
    columns = ColumnMap("metric")
    columns.add(["mAP"])
    assert columns.add(["map"])["map"].startswith("metric_map__")


def test_a_name_shaped_like_a_disambiguated_column_is_disambiguated_too():
    columns = ColumnMap("metric")
    columns.add(["val_loss", "val/loss"])
    assert columns.add(["val_loss__0ba428"])["val_loss__0ba428"].startswith("metric_val_loss__0ba428__")


def test_the_map_is_injective_and_gives_identifiers():
    names = ["".join(p) for n in (1, 2, 3) for p in itertools.product("aA_/.-", repeat=n)]
    columns = ColumnMap("metric")
    for chunk in range(0, len(names), 7):  # in batches, as names arrive in reports
        columns.add(names[chunk : chunk + 7])
    found = [columns[n] for n in names]
    assert len({c.lower() for c in found}) == len(names)
    assert all(IDENTIFIER.match(c) for c in found)
    assert ColumnMap("metric", columns.columns).columns == columns.columns, "a map read back is the same map"


def test_declared_metrics_claim_columns_at_compile_time():
    exp = load_experiment(
        {
            "name": "cols",
            "trainable": "tests.trainables:quadratic",
            "metric": [{"name": "val/loss", "mode": "min"}, {"name": "val_loss", "mode": "min"}],
            "budget": {"samples": 2, "max_steps": 1},
            "search": {"algorithm": "optuna"},
            "space": {"x": {"float": [0, 1]}},
        }
    )
    assert compile_plan(exp).metric_columns == {"val/loss": "metric_val_loss__0ba428", "val_loss": "metric_val_loss"}


def _run(tmp_path, name, rows, names):
    run = tmp_path / "exp" / name
    run.mkdir(parents=True)
    plan = {"run_id": name, "experiment": {"name": "exp", "metric": {"name": "val/loss", "mode": "min"}}}
    (run / "plan.json").write_text(json.dumps(plan))
    sink = ParquetSink(run, [], metric_names=names)
    for row in rows:
        sink.add("reports", {"run_id": name, "experiment": "exp", "time": time.time(), **row})
        sink.add("trials", {"run_id": name, "experiment": "exp", "status": "completed", **row})
    sink.close()
    return run


def test_names_travel_in_the_part_files_and_runs_that_disagree_are_renamed_when_read(tmp_path):
    # run 1 saw only val/loss: it got the readable column
    first = _run(
        tmp_path, "r1", [{"trial_id": "a", "step": 1, "metric_val_loss": 1.0}], {"metric_val_loss": "val/loss"}
    )
    # run 2 saw val_loss first: val/loss got the hashed column there
    _run(
        tmp_path,
        "r2",
        [{"trial_id": "b", "step": 1, "metric_val_loss": 20.0, "metric_val_loss__0ba428": 2.0}],
        {"metric_val_loss": "val_loss", "metric_val_loss__0ba428": "val/loss"},
    )
    schema = pq.read_schema(part_files([first], "reports")[0])
    assert schema.field("metric_val_loss").metadata == {NAME_KEY: b"val/loss"}

    results = read_results(tmp_path / "exp")
    for frame in (results.reports, results.trials):
        names = metric_names(frame)
        assert sorted(names.values()) == ["val/loss", "val_loss"]
        by_run = frame.set_index("run_id")
        assert by_run.loc["r1", metric_column(frame, "val/loss")] == 1.0
        assert by_run.loc["r2", metric_column(frame, "val/loss")] == 2.0
        assert by_run.loc["r2", metric_column(frame, "val_loss")] == 20.0
        assert by_run.loc["r1", metric_column(frame, "val_loss")] != by_run.loc["r1", metric_column(frame, "val_loss")]
    assert results.metric_columns["val/loss"] == "metric_val_loss"
    assert learning_curves(results.reports, "val/loss")["value"].tolist() == [1.0, 2.0]
    # one run alone reads with its own columns
    alone = read_results(tmp_path / "exp" / "r2")
    assert alone.metric_columns == {"val_loss": "metric_val_loss", "val/loss": "metric_val_loss__0ba428"}


def test_parts_written_before_names_were_recorded_still_read(tmp_path):
    run = _run(tmp_path, "old", [{"trial_id": "a", "step": 1, "metric_val_loss": 3.0}], {})
    assert pq.read_schema(part_files([run], "reports")[0]).field("metric_val_loss").metadata is None
    reports = read_results(run).reports
    assert metric_names(reports) == {"metric_val_loss": "val_loss"}
    # the name as written in the experiment finds the column by the readable rule
    assert metric_column(reports, "val/loss") == metric_column(reports, "val_loss") == "metric_val_loss"


@pytest.mark.parametrize("name", ["val/loss", "metric_val_loss"])
def test_curves_take_a_name_or_a_column(tmp_path, name):
    run = _run(tmp_path, "r", [{"trial_id": "a", "step": 1, "metric_val_loss": 1.5}], {"metric_val_loss": "val/loss"})
    assert learning_curves(read_results(run).reports, name)["value"].tolist() == [1.5]


def test_warm_start_finds_a_metric_by_its_name_not_its_readable_column(tmp_path):
    import pyarrow as pa

    run = tmp_path / "exp" / "earlier"
    run.mkdir(parents=True)
    plan = {"run_id": "earlier", "experiment": {"name": "exp", "metric": {"name": "val/loss", "mode": "min"}}}
    (run / "plan.json").write_text(json.dumps(plan))
    # val_loss came first in that run: val/loss is in the hashed column
    sink = ParquetSink(
        run,
        [pa.field("param_x", pa.float64())],
        metric_names={"metric_val_loss": "val_loss", "metric_val_loss__0ba428": "val/loss"},
    )
    for trial, x in (("a", 0.2), ("b", 0.6)):
        row = {"run_id": "earlier", "experiment": "exp", "trial_id": trial, "status": "completed", "param_x": x}
        sink.add("trials", {**row, "metric_val_loss": 100 + x, "metric_val_loss__0ba428": x})
    sink.close()
    exp = load_experiment(
        {
            "name": "exp",
            "trainable": "tests.trainables:quadratic",
            "metric": {"name": "val/loss", "mode": "min"},
            "budget": {"samples": 30, "max_steps": 1},
            "search": {"algorithm": "hyperopt", "warm_start": {"runs": [str(run)]}},
            "space": {"x": {"float": [0, 1]}},
        }
    )
    warm = compile_plan(exp).warm_start
    assert [(p["config"]["x"], p["values"]) for p in warm] == [(0.2, [0.2]), (0.6, [0.6])]
