"""Results on an object store (the URI code path of the sink and the store) and fetching a run,
without a cloud: pyarrow's in-memory mock filesystem stands in for S3/GCS."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from scalehp.errors import ResultsError
from scalehp.jobs import copy_run
from scalehp.results.sink import ParquetSink, is_uri
from scalehp.results.store import Results, read_results

FIELDS = [pa.field("param_x", pa.float64())]
RUN = "20260101-120000-0a1b"  # a run id as the runner makes them (copy_run checks it)


def _rows(sink: ParquetSink, run_id: str = "r1") -> None:
    for step in (1, 2, 2):  # step 2 twice: a retried step
        sink.add("reports", {"run_id": run_id, "experiment": "e", "trial_id": "t0", "step": step, "param_x": 0.5,
                             "metric_loss": 1.0 / step + (0.01 if step == 2 else 0)})  # fmt: skip
    sink.add("trials", {"run_id": run_id, "experiment": "e", "trial_id": "t0", "status": "completed", "steps": 2})


def _plan(run_id: str) -> bytes:
    return json.dumps({"run_id": run_id, "experiment": {"metric": {"name": "loss", "mode": "min"}}}).encode()


def test_sink_writes_whole_parts_to_an_object_store_and_the_store_reads_them():
    store = pafs._MockFileSystem()
    run = "bucket/results/e/r1"
    sink = ParquetSink(run, FIELDS, filesystem=store, flush_rows=2)
    _rows(sink)
    sink.close()
    with store.open_output_stream(f"{run}/plan.json") as out:
        out.write(_plan("r1"))
    names = [f.base_name for f in store.get_file_info(pafs.FileSelector("bucket", recursive=True)) if f.is_file]
    assert names and not [n for n in names if n.startswith(".")]  # no temporaries on an object store
    assert sum(n.startswith("part-") for n in names) == sink.parts_written == 3

    results = Results(["bucket/results/e/r1"], store)
    reports = results.reports
    assert list(reports["step"]) == [1, 2] and reports["metric_loss"].iloc[1] == pytest.approx(0.51)
    assert list(results.trials["status"]) == ["completed"]
    assert list(results.plans) == ["r1"] and results.metric() == ("loss", "min")


def test_uris_are_told_apart_from_local_paths(tmp_path):
    assert is_uri("s3://bucket/results") and is_uri("gs://b/r")
    assert not is_uri(tmp_path) and not is_uri("results") and not is_uri(f"file://{tmp_path}")
    with pytest.raises(ResultsError, match="no such folder"):
        read_results("mock:///bucket/nothing")


def test_copy_run_brings_plan_and_tables_but_not_rays_checkpoints(tmp_path):
    root = tmp_path / "shared"
    run = root / "e" / RUN
    sink = ParquetSink(run, FIELDS)
    _rows(sink, RUN)
    sink.close()
    (run / "plan.json").write_bytes(_plan(RUN))
    (run / "ray" / "t0" / "checkpoint_000001").mkdir(parents=True)
    (run / "ray" / "t0" / "checkpoint_000001" / "state.pt").write_bytes(b"x" * 1000)

    copied = copy_run(str(root), "e", RUN, tmp_path / "local")
    assert copied == tmp_path / "local" / "e" / RUN and not (copied / "ray").exists()
    assert read_results(tmp_path / "local").reports.equals(read_results(root).reports)


def test_runs_are_found_under_an_object_store_root_two_folders_down():
    from scalehp.results.store import find_runs

    store = pafs._MockFileSystem()
    for folder in ("bucket/results/e/r1", "bucket/results/e/r2", "bucket/results/solo", "bucket/results/a/b/too-deep"):
        store.create_dir(folder)
        with store.open_output_stream(f"{folder}/plan.json") as out:
            out.write(_plan(folder.rsplit("/", 1)[1]))
    assert find_runs("bucket/results", store) == ["bucket/results/e/r1", "bucket/results/e/r2", "bucket/results/solo"]
    assert find_runs("bucket/results/e/r1", store) == ["bucket/results/e/r1"]
