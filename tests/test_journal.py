"""The journal: committed rows are on disk at once, read once, and become parts after a kill."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pytest

from scalehp.errors import ResultsError
from scalehp.results import journal
from scalehp.results.sink import ParquetSink
from scalehp.results.sql import query
from scalehp.results.store import read_table

PARAMS = [
    pa.field("param_lr", pa.float64(), metadata={b"scalehp.name": b"lr"}),
    pa.field("param_layers", pa.int64(), metadata={b"scalehp.name": b"layers"}),
    pa.field("param_act", pa.string(), metadata={b"scalehp.name": b"act"}),
    pa.field("param_bn", pa.bool_(), metadata={b"scalehp.name": b"bn"}),
]
T0 = dt.datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)


def _run(tmp_path):
    run_dir = tmp_path / "exp" / "run"
    run_dir.mkdir(parents=True)
    experiment = {"name": "exp", "metric": {"name": "val/loss", "mode": "min"}}
    (run_dir / "plan.json").write_text(json.dumps({"run_id": "r1", "experiment": experiment}))
    return run_dir


def _sink(run_dir):
    return ParquetSink(run_dir, PARAMS, metric_names={"metric_val_loss": "val/loss"})


def _trial(trial_id, status="completed"):
    return {
        "run_id": "r1",
        "trial_id": trial_id,
        "status": status,
        "started_at": T0,
        "param_lr": 0.01,
        "param_layers": 3,
        "param_act": "relu",
        "param_bn": True,
        "metric_val_loss": 0.25,
    }


def _report(trial_id, step, value):
    return {"run_id": "r1", "trial_id": trial_id, "step": step, "time": T0, "metric_val_loss": value, "param_lr": 0.01}


def _event(trial_id, step, action):
    return {"run_id": "r1", "trial_id": trial_id, "step": step, "scheduler": "asha", "action": action, "time": T0}


def _parts(run_dir, table):
    return sorted((run_dir / table).glob("part-*.parquet"))


def _fill(sink):
    sink.add("reports", _report("a", 1, 0.5))
    sink.add("reports", _report("a", 2, math.nan))
    sink.add("events", _event("a", 2, "stop"))
    sink.add("trials", _trial("a", "stopped"))


def test_a_commit_is_one_journal_append_that_every_reader_sees(tmp_path):
    run_dir = _run(tmp_path)
    sink = _sink(run_dir)
    _fill(sink)
    sink.commit()
    assert not any(_parts(run_dir, t) for t in ("reports", "events", "trials"))
    assert len(journal.journal_files(run_dir)) == 1
    trials = read_table([run_dir], "trials")
    assert trials.num_rows == 1
    row = trials.to_pylist()[0]
    assert (row["param_lr"], row["param_layers"], row["param_act"], row["param_bn"]) == (0.01, 3, "relu", True)
    assert row["started_at"] == T0  # times keep their microseconds
    assert trials.schema.field("param_layers").type == pa.int64()
    assert trials.schema.field("metric_val_loss").metadata[b"scalehp.name"] == b"val/loss"
    reports = read_table([run_dir], "reports").to_pylist()
    assert [r["step"] for r in reports] == [1, 2] and math.isnan(reports[1]["metric_val_loss"])
    assert query(run_dir, "SELECT count(*) AS n FROM events").to_pylist() == [{"n": 1}]
    assert query(run_dir, "SELECT param_layers FROM trials").to_pylist() == [{"param_layers": 3}]
    sink.commit()  # nothing new: nothing written
    sink.close()
    assert not journal.journal_files(run_dir)
    assert all(len(_parts(run_dir, t)) == 1 for t in ("reports", "events", "trials"))
    assert read_table([run_dir], "events").num_rows == 1
    assert read_table([run_dir], "reports").num_rows == 2


def test_rows_added_after_a_commit_are_appended_once(tmp_path):
    run_dir = _run(tmp_path)
    sink = _sink(run_dir)
    sink.add("events", _event("a", 1, "stop"))
    sink.commit()
    sink.add("events", _event("b", 1, "stop"))
    sink.commit()
    leftover = journal.read_journal(journal.journal_files(run_dir)[0])
    assert [seq for seq, _ in leftover.rows["events"]] == [1, 2]
    assert query(run_dir, "SELECT trial_id FROM events ORDER BY 1").to_pylist() == [{"trial_id": "a"}, {"trial_id": "b"}]


@pytest.mark.parametrize("written", [(), ("reports",), ("reports", "events"), ("reports", "events", "trials")])
def test_a_kill_at_any_point_of_a_flush_loses_nothing_and_doubles_nothing(tmp_path, written):
    run_dir = _run(tmp_path)
    sink = _sink(run_dir)
    _fill(sink)
    sink.commit()
    covers = sink.journal.covers()
    for table in written:  # the flush got this far, then the driver was killed
        sink._write(table, covers)
    assert len(journal.journal_files(run_dir)) == 1

    def counts():
        return {t: read_table([run_dir], t).num_rows for t in ("reports", "events", "trials")}

    sql = {t: query(run_dir, f"SELECT count(*) AS n FROM {t}").to_pylist()[0]["n"] for t in ("reports", "events", "trials")}
    assert counts() == sql == {"reports": 2, "events": 1, "trials": 1}
    again = _sink(run_dir)  # the next session (resume) writes the journal's rows as parts
    assert not journal.journal_files(run_dir)
    assert counts() == {"reports": 2, "events": 1, "trials": 1}
    assert all(len(_parts(run_dir, t)) == 1 for t in ("reports", "events", "trials"))
    again.add("events", _event("b", 1, "stop"))
    again.close()
    assert counts()["events"] == 2


def test_a_later_row_for_the_same_trial_wins_over_its_part(tmp_path):
    run_dir = _run(tmp_path)
    sink = _sink(run_dir)
    sink.add("trials", _trial("a", "running"))
    sink.flush()
    sink.add("trials", _trial("a", "completed"))
    sink.commit()
    assert read_table([run_dir], "trials").to_pylist()[0]["status"] == "completed"
    assert query(run_dir, "SELECT status FROM trials").to_pylist() == [{"status": "completed"}]


def test_a_line_cut_short_by_a_kill_was_never_committed(tmp_path):
    run_dir = _run(tmp_path)
    sink = _sink(run_dir)
    sink.add("events", _event("a", 1, "stop"))
    sink.commit()
    path = journal.journal_files(run_dir)[0]
    with open(path, "ab") as handle:
        handle.write(b'{"seq": 2, "table": "events", "row": {"run_id": "r1", "trial_')
    assert read_table([run_dir], "events").num_rows == 1


@pytest.mark.parametrize(
    "lines, says",
    [
        ([b"not json"], "line 1: not JSON"),
        ([b'{"journal": 9, "params": []}'], "line 1: not a scalehp journal header"),
        ([b'{"journal": 1, "params": [["x", "double", "x"]]}'], "param column x"),
        ([b'{"journal": 1, "params": []}', b'{"seq": 1, "table": "etc", "row": {}}'], "line 2: not a row"),
        ([b'{"journal": 1, "params": []}', b'{"seq": 2, "table": "events", "row": {}}', b'{"seq": 1, "table": "events", "row": {}}'], "line 3: seq"),
        ([b'{"journal": 1, "params": []}', b'{"names": {"metric_x": 3}}'], "line 2: names"),
    ],
)
def test_a_damaged_journal_is_named_with_its_line(tmp_path, lines, says):
    run_dir = _run(tmp_path)
    folder = run_dir / journal.FOLDER
    folder.mkdir()
    (folder / "journal-1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ResultsError, match=says) as caught:
        read_table([run_dir], "events")
    assert caught.value.damaged and "journal-1.jsonl" in str(caught.value)
    with pytest.raises(ResultsError, match=says):
        _sink(run_dir)  # resume refuses it too, before writing anything
    assert not _parts(run_dir, "events")


def test_a_journal_name_that_is_not_a_file_is_refused(tmp_path):
    run_dir = _run(tmp_path)
    (run_dir / journal.FOLDER / "journal-1.jsonl").mkdir(parents=True)
    with pytest.raises(ResultsError, match="not a file"):
        read_table([run_dir], "trials")
