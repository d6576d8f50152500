"""The dashboard's data and server: right numbers, incremental refresh, read-only and secure (no Ray, no browser)."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from scalehp.analysis.asha import rung_stats
from scalehp.analysis.curves import anytime
from scalehp.analysis.tables import best_trial
from scalehp.cli import main
from scalehp.dashboard import data as board_data
from scalehp.dashboard.data import Board
from scalehp.dashboard.server import make_app
from scalehp.errors import ResultsError
from scalehp.results.sink import ParquetSink
from scalehp.results.store import read_results
from tests.results_factory import QUAD_FIELDS, make_root, quad_run, write_plan


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def board(root):
    return Board(root)


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------- numbers


def test_runs_and_progress_match_the_tables(root, board):
    runs = {r["run_id"]: r for r in board.runs()}
    assert set(runs) == {"quad-1", "quad-2", "quad-3", "pbt-1"}
    results = read_results(root)
    trials = results.trials
    for run_id, shown in runs.items():
        mine = trials[trials["run_id"] == run_id]
        p = shown["progress"]
        assert p["done"] == len(mine)
        assert p["by_status"] == {k: int(v) for k, v in mine["status"].value_counts().items()}
        assert p["running"] == 0 and p["pending"] == 0 and p["ended"] is not None
        mode = results.metric(run_id)[1]
        best = best_trial(mine, mode)
        assert shown["best"]["trial_id"] == best["trial_id"]
        assert shown["best"]["value"] == pytest.approx(best["best_value"])


@pytest.mark.parametrize("run_id", ["quad-1", "quad-2", "pbt-1"])
def test_best_so_far_is_the_analysis_answer(root, board, run_id):
    results = read_results(root)
    metric, mode = results.metric(run_id)
    reports = results.reports
    reports = reports[reports["run_id"] == run_id]
    shown = board.state(run_id).best_so_far()
    for by in ("wall", "steps"):
        expected = anytime(reports, metric, mode, by=by)
        xs, ys = shown[by]["x"], shown[by]["y"]
        assert len(xs) > 1 and ys[-1] == pytest.approx(expected["best"].iloc[-1])
        for x, y in zip(xs, ys):  # each point shown is the analysis' best so far at that x
            at = expected[expected["x"] <= x + 1e-9]["best"]
            assert y == pytest.approx(at.iloc[-1])


def test_curves_say_what_the_scheduler_decided(board, root):
    state = board.state("quad-1")
    curves = state.curves(best=state.best()["trial_id"])
    assert curves["trials"] == 24 and curves["shown"] == 24 and curves["note"] == ""
    events = read_results(root).events
    stops = events[(events["run_id"] == "quad-1") & (events["action"] == "stop")]
    labelled = {c["trial_id"]: c for c in curves["curves"]}
    for row in stops.itertuples():
        assert labelled[row.trial_id]["decision"] == "stop"
        assert labelled[row.trial_id]["label"] == f"stopped at step {row.step} (rung {int(row.rung)})"
        assert labelled[row.trial_id]["x"][-1] == row.step
    assert [c["trial_id"] for c in curves["curves"] if c["best"]] == [state.best()["trial_id"]]
    assert curves["metrics"] == ["loss"]


def test_the_curve_sample_is_the_lowest_id_hashes_over_every_part(tmp_path, monkeypatch):
    """Bottom-k sampling: each part keeps its k lowest-hash trials, and the run's k lowest are among them."""
    monkeypatch.setattr(board_data, "SAMPLE", 5)
    run = quad_run(tmp_path, "q", seed=4, trials=40, asha=False)  # parts of 40 rows: trials spread over many parts
    state = Board(tmp_path).state("q")
    assert len(state.digests) > 5
    curves = state.curves()
    ids = [f"t{t:03d}" for t in range(40)]
    lowest = sorted(ids, key=lambda i: (zlib.crc32(i.encode()), i))[:5]
    assert sorted(c["trial_id"] for c in curves["curves"]) == sorted(lowest)
    assert curves["trials"] == 40 and curves["note"].startswith("5 of 40 trials sampled")
    whole = read_results(run).reports
    for c in curves["curves"]:  # every step of a sampled trial, none missing
        assert c["x"] == sorted(whole[whole["trial_id"] == c["trial_id"]]["step"].astype(float))


def test_rungs_are_the_asha_analysis(board, root):
    events = read_results(root).events
    expected = rung_stats(events[events["run_id"] == "quad-2"])
    shown = board.state("quad-2").rungs()
    assert [r["rung"] for r in shown["asha"]] == expected["rung"].tolist()
    assert [r["stopped"] for r in shown["asha"]] == expected["stopped"].tolist()
    assert [r["promoted"] for r in shown["asha"]] == expected["promoted"].tolist()
    assert shown["cutoffs"] and not shown["brackets"]


def test_pbt_lineage_and_schedule(board, root):
    shown = board.state("pbt-1").pbt()
    events = read_results(root).events
    assert len(shown["edges"]) == int((events["action"] == "exploit").sum()) > 0
    assert shown["lineage"][0]["trial_id"] == board.state("pbt-1").best()["trial_id"]
    assert shown["schedule"] and "lr" in shown["schedule"][0]["params"]
    other = next(e["trial_id"] for e in shown["edges"] if e["trial_id"] != shown["trial_id"])
    followed = board.state("pbt-1").pbt(other)
    assert followed["trial_id"] == other and followed["lineage"][0]["trial_id"] == other
    assert followed["schedule"][-1]["trial_id"] == other


def test_trial_table_sorts_filters_and_pages(board):
    state = board.state("quad-1")
    page = state.trial_table(sort="best_value", limit=5)
    values = [r[page["columns"].index("best_value")] for r in page["rows"]]
    assert page["total"] == 24 and len(values) == 5 and values == sorted(values)
    assert page["rows"][0][0] == state.best()["trial_id"]
    assert page["names"]["param_x"] == "x" and page["names"]["metric_loss"] == "loss"
    desc = state.trial_table(sort="param_x", desc=True, offset=20, limit=10)
    assert desc["total"] == 24 and len(desc["rows"]) == 4
    stopped = state.trial_table(status="stopped")
    assert stopped["total"] == state.counts()["by_status"]["stopped"] > 0
    assert all(r[1] == "stopped" for r in stopped["rows"])
    hit = state.trial_table(query="T00")  # ids, case-insensitive
    assert hit["total"] == 10
    by_decision = state.trial_table(query="stopped at step 1")
    assert by_decision["total"] > 0 and all("stopped at step 1" in r[2] for r in by_decision["rows"])


def test_one_trial_in_full(board, root):
    state = board.state("quad-1")
    best = state.best()["trial_id"]
    shown = state.trial(best)
    reports = read_results(root).reports
    mine = reports[(reports["run_id"] == "quad-1") & (reports["trial_id"] == best)].sort_values("step")
    assert shown["status"] == "completed" and shown["curves"]["loss"]["x"] == mine["step"].astype(float).tolist()
    assert shown["curves"]["loss"]["y"] == pytest.approx(mine["metric_loss"].tolist())
    assert set(shown["params"]) == {"x", "noise", "opt"}
    assert [r[shown["events"]["columns"].index("action")] for r in shown["events"]["rows"]] == ["continue", "continue"]
    with pytest.raises(ResultsError, match="no trial nope"):
        state.trial("nope")


# ---------------------------------------------------------------------------------- live


def _quad_rows(run_id: str, trial: str, steps: range, x: float = 0.5) -> list[dict]:
    t0 = 1_767_225_600.0
    return [
        {
            "run_id": run_id,
            "experiment": "quad",
            "trial_id": trial,
            "step": s,
            "time": t0 + s,
            "elapsed_s": float(s),
            "param_x": x,
            "param_noise": 0.1,
            "param_opt": "adam",
            "metric_loss": (x - 0.3) ** 2 + 1.0 / s,
        }
        for s in steps
    ]


def test_a_refresh_reads_only_what_landed(tmp_path):
    run_dir = tmp_path / "quad" / "live"
    write_plan(run_dir, "live", "quad", "loss", "min", {"x": {"float": [-1, 1]}}, trials=3)
    sink = ParquetSink(run_dir, QUAD_FIELDS, flush_seconds=1e9)
    for row in _quad_rows("live", "a", range(1, 4)):
        sink.add("reports", row)
    sink.flush()
    board = Board(tmp_path)
    state = board.state("live")
    first = dict(state.digests)
    progress = state.counts()
    assert (progress["done"], progress["running"], progress["pending"]) == (0, 1, 2)
    assert state.trial_table()["rows"][0][:2] == ["a", "running"]
    assert not state.refresh()  # nothing landed

    for row in _quad_rows("live", "b", range(1, 3), x=0.3):
        sink.add("reports", row)
    sink.add(
        "trials",
        {
            "run_id": "live",
            "experiment": "quad",
            "trial_id": "a",
            "status": "completed",
            "steps": 3,
            "best_value": 0.04 + 1 / 3,
            "best_step": 3,
            "retries": 0,
            "param_x": 0.5,
        },
    )
    sink.flush()
    assert state.refresh()
    assert all(state.digests[p] is d for p, d in first.items())  # parts read before are not read again
    progress = state.counts()
    assert (progress["done"], progress["running"], progress["pending"]) == (1, 1, 1)
    best = state.best_so_far()
    assert best["wall"]["y"][-1] == pytest.approx(0.04 + 1 / 3)  # a's step 3; b reached 1/2
    assert best["steps"]["x"][-1] == 5  # a's 3 steps and b's 2
    sink.close()


def test_journal_rows_show_before_their_part(tmp_path):
    """A trial's end and its reports are in the journal (fsynced) before the sink writes parts: the page shows them."""
    run_dir = tmp_path / "quad" / "j"
    write_plan(run_dir, "j", "quad", "loss", "min", {"x": {"float": [-1, 1]}}, trials=2)
    sink = ParquetSink(run_dir, QUAD_FIELDS, flush_seconds=1e9, durable=True)
    for row in _quad_rows("j", "a", range(1, 3)):
        sink.add("reports", row)
    sink.add(
        "trials",
        {
            "run_id": "j",
            "experiment": "quad",
            "trial_id": "a",
            "status": "stopped",
            "steps": 2,
            "best_value": 0.54,
            "best_step": 2,
            "retries": 0,
            "param_x": 0.5,
        },
    )
    sink.commit()
    assert not list((run_dir / "reports").glob("part-*")) and list((run_dir / "journal").iterdir())
    state = Board(tmp_path).state("j")
    assert state.counts()["by_status"] == {"stopped": 1}
    assert state.best_so_far()["steps"]["y"][-1] == pytest.approx(0.54)
    assert [c["trial_id"] for c in state.curves()["curves"]] == ["a"]
    sink.close()
    assert state.refresh() and state.counts()["by_status"] == {"stopped": 1}


def test_a_step_reported_again_counts_once_with_its_later_value(tmp_path):
    """A retried trial's step replaces the earlier row (as every reader has it), even the best one."""
    run_dir = tmp_path / "quad" / "again"
    write_plan(run_dir, "again", "quad", "loss", "min", {"x": {"float": [-1, 1]}}, trials=2)
    first = _quad_rows("again", "a", range(1, 4), x=0.3)  # 1, 1/2, 1/3
    sink = ParquetSink(run_dir, QUAD_FIELDS, flush_seconds=1e9, durable=False)
    for row in first:
        sink.add("reports", row)
    sink.flush()
    state = Board(tmp_path).state("again")
    assert state.best_so_far()["wall"]["y"][-1] == pytest.approx(1 / 3)
    for row in first[1:]:  # steps 2 and 3 run again, worse this time
        sink.add("reports", {**row, "time": row["time"] + 100, "metric_loss": 5.0})
    sink.flush()
    assert state.refresh()
    expected = anytime(read_results(run_dir).reports, "loss", "min", by="steps")
    shown = state.best_so_far()
    assert shown["steps"]["x"][-1] == 3 == len(expected)
    assert shown["wall"]["y"][-1] == pytest.approx(expected["best"].iloc[-1]) == pytest.approx(1.0)
    assert [c["y"] for c in state.curves()["curves"]] == [[1.0, 5.0, 5.0]]
    sink.close()


# ---------------------------------------------------------------------------------- bad input


def test_no_run_a_damaged_part_or_a_taken_port_is_one_line_and_exit_2(tmp_path, root):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = CliRunner().invoke(main, ["dashboard", str(empty)])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and "no scalehp runs here" in out.output

    damaged = tmp_path / "damaged"
    quad_run(damaged, "d", seed=1, trials=4)
    part = sorted((damaged / "quad" / "d" / "reports").glob("part-*.parquet"))[0]
    part.write_bytes(b"PAR1 not parquet")
    before = _files(damaged)
    out = CliRunner().invoke(main, ["dashboard", str(damaged)])
    assert out.exit_code == 2 and out.output.count("\n") == 1 and part.name in out.output, out.output
    assert _files(damaged) == before

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        before = _files(root)
        out = CliRunner().invoke(main, ["dashboard", str(root), "--port", str(port)])
        assert out.exit_code == 2 and "the port is in use" in out.output and "Traceback" not in out.output
        assert out.output.strip().splitlines()[-1].startswith("error: --port")
        assert _files(root) == before
    finally:
        taken.close()


def test_a_token_that_is_too_short_is_refused(root, monkeypatch):
    monkeypatch.setenv("SCALEHP_DASHBOARD_TOKEN", "short")
    out = CliRunner().invoke(main, ["dashboard", str(root), "--host", "0.0.0.0"])
    assert out.exit_code == 2 and "shorter than 16" in out.output and "short\n" not in out.output.split(":", 1)[-1]


def test_nan_and_inf_values_reach_the_page_as_valid_json(tmp_path):
    run_dir = tmp_path / "quad" / "n"
    write_plan(run_dir, "n", "quad", "loss", "min", {"x": {"float": [-1, 1]}}, trials=2)
    sink = ParquetSink(run_dir, QUAD_FIELDS)
    rows = _quad_rows("n", "a", range(1, 4))
    rows[1]["metric_loss"] = math.nan
    rows[2]["metric_loss"] = math.inf
    for row in rows:
        sink.add("reports", row)
    sink.add(
        "trials",
        {
            "run_id": "n",
            "experiment": "quad",
            "trial_id": "a",
            "status": "completed",
            "steps": 3,
            "best_value": math.nan,
            "best_step": 1,
            "retries": 0,
            "param_x": 0.5,
            "metric_loss": math.inf,
        },
    )
    sink.close()

    async def fetch(path: str) -> tuple[int, str]:
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(make_app(Board(tmp_path)))) as client:
            response = await client.get(path)
            return response.status, await response.text()

    for view in ("summary", "curves", "trials", "best", "parallel"):
        status, text = asyncio.run(fetch(f"/api/runs/n/{view}"))
        assert status == 200, text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{view}: {c} is not JSON"))
    curves = json.loads(asyncio.run(fetch("/api/runs/n/curves"))[1])
    assert curves["curves"][0]["y"][1:] == ["nan", "inf"]


# ---------------------------------------------------------------------------------- the server


def _client(board, **kwargs):
    from aiohttp.test_utils import TestClient, TestServer

    return TestClient(TestServer(make_app(board, **kwargs)))


def test_read_only_loopback_and_no_path_outside(board):
    async def check() -> None:
        async with _client(board) as client:
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                response = await client.request(method, "/api/runs")
                assert response.status == 405
            ok = await client.get("/api/runs")
            assert ok.status == 200
            assert "script-src 'self'" in ok.headers["Content-Security-Policy"]
            assert ok.headers["X-Content-Type-Options"] == "nosniff"
            assert (await client.get("/", headers={"Host": "attacker.example"})).status == 403  # DNS rebinding
            assert (await client.get("/", headers={"Host": "localhost:8275"})).status == 200
            for path in (
                "/static/../data.py",
                "/static/%2e%2e/data.py",
                "/static/..%2fserver.py",
                "/static//etc/passwd",
                "/static/vendor/../../data.py",
                "/api/runs/..%2f..%2fetc/plan",
            ):
                response = await client.get(path)
                assert response.status in (403, 404), path
                assert b"import" not in await response.read()
            missing = await client.get("/api/runs/%3Cscript%3E/summary")
            assert missing.status == 404 and (await missing.json())["error"].startswith("no run <script>")
            assert (await client.get("/static/vendor/uplot.js")).status == 200

    asyncio.run(check())


def test_any_other_host_needs_the_token(board):
    token = "a-long-enough-secret-token"

    async def check() -> None:
        async with _client(board, host="0.0.0.0", token=token) as client:
            assert (await client.get("/api/runs")).status == 401
            assert (await client.get("/api/runs?token=wrong-token-of-some-length")).status == 401
            first = await client.get(f"/?token={token}", allow_redirects=False)
            assert first.status == 302 and "token" not in first.headers["Location"]
            cookie = first.cookies["scalehp_dashboard"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
            assert (await client.get("/api/runs", cookies={"scalehp_dashboard": token})).status == 200
            assert (await client.get("/api/runs", headers={"Authorization": f"Bearer {token}"})).status == 200
            client.session.cookie_jar.clear()
            assert (await client.get("/static/app.js")).status == 401

    asyncio.run(check())


def test_sql_box_is_read_only(board, tmp_path):
    async def check() -> None:
        async with _client(board) as client:
            ok = await client.get("/api/sql", params={"q": "SELECT count(*) AS n FROM trials"})
            assert ok.status == 200 and (await ok.json())["rows"] == [[24 + 24 + 10 + 6]]
            target = tmp_path / "written.csv"
            bad = await client.get("/api/sql", params={"q": f"COPY (SELECT 1) TO '{target}'"})
            assert bad.status in (400, 422) and not target.exists()
            bad = await client.get("/api/sql", params={"q": "SELECT * FROM read_csv('/etc/passwd')"})
            assert bad.status in (400, 422) and "root:" not in await bad.text()

    asyncio.run(check())


def test_every_view_answers(board):
    async def check() -> None:
        async with _client(board) as client:
            for run_id in ("quad-1", "quad-3", "pbt-1"):
                for view in (
                    "summary",
                    "best",
                    "curves",
                    "trials",
                    "rungs",
                    "pbt",
                    "parallel",
                    "importance",
                    "pareto",
                    "failed",
                    "plan",
                ):
                    response = await client.get(f"/api/runs/{run_id}/{view}")
                    assert response.status == 200, (run_id, view, await response.text())
            assert (await client.get("/api/runs/quad-1/nothing")).status == 404
            assert (await client.get("/api/version")).status == 200

    asyncio.run(check())


def test_a_large_run_is_sampled_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(board_data, "PARALLEL", 10)
    quad_run(tmp_path, "big", seed=5, trials=30, asha=False)
    state = Board(tmp_path).state("big")
    parallel = state.parallel()
    assert parallel["note"] == "the best 10 of 30 trials"
    metric = parallel["axes"][-1]["values"]
    assert metric == sorted(metric) and len(metric) == 10
    best = pd.Series(read_results(tmp_path).trials["best_value"]).nsmallest(10).tolist()
    assert np.allclose(metric, best)


def test_an_object_store_root_is_served_the_same(root):
    """Runs on an object store (pyarrow's mock filesystem standing in for S3) read as local ones do."""
    import pyarrow.fs as pafs

    store = pafs._MockFileSystem()
    local = root / "quad" / "quad-1"
    for path in local.rglob("*"):
        if path.is_file():
            target = f"bucket/results/quad/quad-1/{path.relative_to(local)}"
            store.create_dir(target.rsplit("/", 1)[0])
            with store.open_output_stream(target) as out:
                out.write(path.read_bytes())
    remote = Board("bucket/results", filesystem=store)
    mine, theirs = remote.state("quad-1"), Board(root).state("quad-1")
    assert remote.runs()[0]["progress"] == Board(root).state("quad-1").summary()["progress"] | {"time_left_s": None}
    assert mine.best_so_far() == theirs.best_so_far()
    assert mine.curves() == theirs.curves()
    assert mine.trial_table() == theirs.trial_table()
    with pytest.raises(ResultsError, match="local results only"):
        remote.sql("SELECT 1")
    assert not mine.refresh()


def test_a_failing_view_is_one_line_to_the_page(board, monkeypatch):
    def broken(self):
        raise RuntimeError("secret /home/user/path details")

    monkeypatch.setattr(board_data.RunState, "rungs", broken)

    async def check() -> None:
        async with _client(board) as client:
            response = await client.get("/api/runs/quad-1/rungs")
            assert response.status == 500
            assert await response.json() == {"error": "internal error (RuntimeError); see the dashboard's log"}
            assert (await client.get("/api/runs/quad-1/summary")).status == 200

    asyncio.run(check())


def test_a_step_reported_twice_in_the_journal_alone_counts_once(tmp_path):
    run_dir = tmp_path / "quad" / "jj"
    write_plan(run_dir, "jj", "quad", "loss", "min", {"x": {"float": [-1, 1]}}, trials=1)
    sink = ParquetSink(run_dir, QUAD_FIELDS, flush_seconds=1e9)
    rows = _quad_rows("jj", "a", range(1, 3), x=0.3)  # 1, 1/2
    for row in rows:
        sink.add("reports", row)
    sink.add("reports", {**rows[1], "time": rows[1]["time"] + 10, "metric_loss": 3.0})  # step 2 again
    sink.commit()
    state = Board(tmp_path).state("jj")
    shown = state.best_so_far()
    assert shown["steps"]["x"][-1] == 2 and shown["wall"]["y"][-1] == pytest.approx(1.0)
    sink.close()
