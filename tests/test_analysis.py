"""Analysis over runs' Parquet written by the real sink: every answer checked against pandas."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from scalehp.analysis import asha, compare, curves, importance, pareto, pbt, tables
from scalehp.cli import main
from scalehp.errors import ResultsError
from scalehp.results.sink import ParquetSink
from scalehp.results.sql import connect, query
from scalehp.results.store import read_results
from tests.results_factory import make_root, quad_run, write_plan


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_root(tmp_path_factory.mktemp("results"))


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_tables_are_pyarrow_or_pandas_and_duplicates_are_dropped(root):
    res = read_results(root / "quad" / "quad-2")
    assert isinstance(res.table("reports"), pa.Table) and isinstance(res.reports, pd.DataFrame)
    raw = pd.concat(pd.read_parquet(p) for p in sorted((root / "quad" / "quad-2" / "reports").glob("part-*")))
    assert raw.duplicated(["trial_id", "step"]).sum() == 3  # the retried rows are in the files...
    assert not res.reports.duplicated(["trial_id", "step"]).any()  # ...but read once
    assert len(res.reports) == len(raw) - 3


def test_leaderboard_and_best_trial_agree_with_pandas(root):
    res = read_results(root / "quad")
    trials, reports = res.trials, res.reports
    # direct pandas: best loss per (run, trial) over the reports, then the overall minimum
    direct = reports.groupby(["run_id", "trial_id"])["metric_loss"].min().sort_values(kind="stable")
    board = tables.leaderboard(trials, "min")
    assert list(board["rank"]) == list(range(1, len(trials) + 1))
    assert np.allclose(board["best_value"].to_numpy(), direct.to_numpy())
    best = tables.best_trial(trials, "min")
    assert (best["run_id"], best["trial_id"]) == direct.index[0]
    assert best["best_value"] == pytest.approx(direct.iloc[0])
    assert tables.params_of(best)["x"] == pytest.approx(
        reports.set_index(["run_id", "trial_id"]).loc[direct.index[0], "param_x"].iloc[0]
    )
    top = tables.leaderboard(trials, "min", top=3)
    assert list(top["trial_id"]) == [t for _, t in direct.index[:3]]
    with pytest.raises(ResultsError, match="no trial reported"):
        tables.best_trial(trials.assign(best_value=np.nan), "min")


def test_learning_curves_and_anytime_performance(root):
    res = read_results(root / "quad")
    reports = res.reports
    lc = curves.learning_curves(reports, "loss")
    assert len(lc) == len(reports) and list(lc.columns) == ["run_id", "trial_id", "step", "elapsed_s", "value"]
    for by in ("wall", "steps"):
        any_ = curves.anytime(reports, "loss", "min", by=by)
        for run_id, rows in any_.groupby("run_id"):
            mine = reports[reports["run_id"] == run_id].sort_values("time", kind="stable")
            assert (np.diff(rows["best"]) <= 0).all() and (np.diff(rows["x"]) >= 0).all()
            assert np.allclose(rows["best"], mine["metric_loss"].cummin())
            assert rows["best"].iloc[-1] == pytest.approx(mine["metric_loss"].min())
            if by == "steps":
                assert list(rows["x"]) == list(range(1, len(mine) + 1))
            else:
                assert rows["x"].iloc[0] == 0 and rows["x"].iloc[-1] == pytest.approx(
                    (mine["time"].max() - mine["time"].min()).total_seconds()
                )
    maxed = curves.anytime(reports.assign(metric_loss=-reports["metric_loss"]), "loss", "max", by="steps")
    assert np.allclose(maxed["best"], -curves.anytime(reports, "loss", "min", by="steps")["best"])
    with pytest.raises(ResultsError, match="no metric 'acc2'.*known metrics: loss, acc"):
        curves.learning_curves(reports, "acc2")


def test_importance_ranks_the_param_that_drives_the_metric_first(root):
    res = read_results(root / "quad")
    space = res.plans["quad-1"]["experiment"]["space"]
    trials = res.trials
    # the final loss of every trial is (x - 0.3)**2 + 1/9: only x matters
    ranked = importance.param_importance(trials, "min", value="metric_loss", space=space)
    assert ranked["param"].iloc[0] == "x"
    assert set(ranked["param"]) == {"x", "noise", "opt"}
    assert ranked["importance"].sum() == pytest.approx(1.0)
    share = ranked.set_index("param")["importance"]
    assert share["x"] > 0.5 and share["x"] > 3 * max(share["noise"], share["opt"])
    with pytest.raises(ResultsError, match="at least two trials"):
        importance.param_importance(trials.head(1), "min")
    with pytest.raises(ResultsError, match="no param takes more than one value"):
        importance.param_importance(trials, "min", params=["nope"])


def test_asha_rung_statistics_agree_with_the_events(root):
    res = read_results(root / "quad")
    events = res.events
    stats = asha.rung_stats(events)
    assert set(stats["run_id"]) == {"quad-1", "quad-2"}  # quad-3 ran without ASHA
    for _, row in stats.iterrows():
        mine = events[(events["run_id"] == row["run_id"]) & (events["rung"] == row["rung"])]
        assert row["trials"] == mine["trial_id"].nunique() == row["promoted"] + row["stopped"]
        assert row["stopped"] == (mine["action"] == "stop").sum()
        assert row["cutoff_max"] == pytest.approx(mine["cutoff"].max())
    trials = res.trials
    # every trial reached the first rung; the ones stopped there are exactly the stopped trials at step 1
    first = stats[stats["rung"] == 1].set_index("run_id")
    for run_id, row in first.iterrows():
        mine = trials[trials["run_id"] == run_id]
        assert row["trials"] == len(mine)
        assert row["stopped"] == ((mine["status"] == "stopped") & (mine["steps"] == 1)).sum()
    assert asha.rung_stats(events.iloc[0:0]).empty


def test_pbt_lineage_and_param_schedule(root):
    res = read_results(root / "pbt-demo")
    events, reports, trials = res.events, res.reports, res.trials
    edges = pbt.exploits(events)
    assert len(edges) == 4 and set(edges["step"]) == {4, 8}
    assert all(set(e) == {"lr"} for e in edges["new_params"])
    best = tables.best_trial(trials, "max")["trial_id"]
    chain = pbt.lineage(events, best)
    # walk the chain by hand: each segment's owner copied its donor at from_step
    assert chain["generation"].tolist() == list(range(len(chain)))
    assert chain["from_step"].iloc[-1] == 0 and pd.isna(chain["to_step"].iloc[0])
    for (_, newer), (_, older) in zip(chain.iloc[:-1].iterrows(), chain.iloc[1:].iterrows()):
        edge = edges[(edges["trial_id"] == newer["trial_id"]) & (edges["donor_step"] == newer["from_step"])]
        assert edge["donor_trial_id"].item() == newer["donor_trial_id"] == older["trial_id"]
        assert older["to_step"] == newer["from_step"]
    schedule = pbt.param_schedule(reports, events, best)
    assert schedule["step"].tolist() == list(range(1, 13))
    # the score is carried over at each copy: along the lineage it never drops
    assert (np.diff(schedule["metric_score"]) > -1.0).all()
    assert schedule["metric_score"].iloc[-1] == pytest.approx(trials.set_index("trial_id").loc[best, "best_value"])
    # after a copy at step s the lr in effect is the new_params of that exploit
    for _, newer in chain.iloc[:-1].iterrows():
        edge = edges[(edges["trial_id"] == newer["trial_id"]) & (edges["donor_step"] == newer["from_step"])].iloc[0]
        after = schedule[schedule["step"] == newer["from_step"] + 1]
        assert after["param_lr"].item() == pytest.approx(edge["explored_params"]["lr"])
        # the exploit's new_params are the donor's params at the copy
        donor_lr = reports[(reports["trial_id"] == edge["donor_trial_id"]) & (reports["step"] == edge["donor_step"])]
        assert edge["new_params"]["lr"] == pytest.approx(donor_lr["param_lr"].item())
    # a trial that never exploited is its own founder
    never = sorted(set(trials["trial_id"]) - set(edges["trial_id"]))
    assert never
    for trial_id in never:
        assert pbt.lineage(events, trial_id)[["trial_id", "from_step"]].values.tolist() == [[trial_id, 0]]
    assert set(events["action"]) == {"exploit", "explore"}
    with pytest.raises(ResultsError, match="name the run"):
        pbt.lineage(read_results(root).events, best)


def test_pareto_front_is_the_non_dominated_set():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"loss": rng.random(60), "latency": rng.random(60), "acc": rng.random(60)})
    frame.loc[3, "loss"] = np.nan
    objectives = {"loss": "min", "acc": "max"}
    front = pareto.pareto_front(frame, objectives)
    scored = frame.dropna()
    for i, row in scored.iterrows():
        dominated = (
            (scored["loss"] <= row["loss"])
            & (scored["acc"] >= row["acc"])
            & ((scored["loss"] < row["loss"]) | (scored["acc"] > row["acc"]))
        ).any()
        assert (i in front.index) == (not dominated)
    assert front["loss"].is_monotonic_increasing and front["acc"].is_monotonic_increasing
    with pytest.raises(ResultsError, match="mode of 'acc'"):
        pareto.pareto_front(frame, {"acc": "up"})


def test_compare_runs_side_by_side(root):
    res = read_results(root / "quad")
    compared = compare.compare_runs(res)
    assert compared["run_id"].tolist() == ["quad-1", "quad-2", "quad-3"]
    assert compared["scheduler"].tolist() == ["asha", "asha", "fifo"]
    reports = res.reports
    for _, row in compared.iterrows():
        mine = reports[reports["run_id"] == row["run_id"]].sort_values("time", kind="stable").reset_index(drop=True)
        assert row["steps"] == len(mine)
        assert row["best_value"] == pytest.approx(mine["metric_loss"].min())
        first = mine["metric_loss"].idxmin()
        assert row["steps_to_best"] == first + 1 and row["best_trial"] == mine.loc[first, "trial_id"]
        assert set(row["best_params"]) == {"x", "noise", "opt"}
    wide = compare.side_by_side(compared)
    assert list(wide.columns) == ["field", "quad-1", "quad-2", "quad-3"]


def test_sql_over_several_runs_returns_the_same_as_pandas(root):
    res = read_results(root)
    con = connect(root)
    # runs differ: quad-3 has metric_acc, pbt has metric_score and no param_x: union by name
    sql_reports = con.sql("SELECT * FROM reports").df()
    assert len(sql_reports) == len(res.reports)
    assert {"metric_acc", "metric_score", "param_lr", "param_x"} <= set(sql_reports.columns)
    best = con.sql(
        "SELECT run_id, trial_id, min(metric_loss) AS best FROM reports WHERE metric_loss IS NOT NULL "
        "GROUP BY ALL ORDER BY best, run_id, trial_id"
    ).df()
    direct = res.reports.groupby(["run_id", "trial_id"])["metric_loss"].min().dropna().sort_values(kind="stable")
    assert np.allclose(best["best"], direct.to_numpy())
    assert list(zip(best["run_id"], best["trial_id"]))[:5] == list(direct.index[:5])
    counts = con.sql("SELECT run_id, count(*) AS n FROM trials GROUP BY 1 ORDER BY 1").df()
    assert counts.set_index("run_id")["n"].to_dict() == res.trials.groupby("run_id").size().to_dict()
    stops = con.execute("SELECT count(*) FROM events WHERE action = 'stop'").fetchone()[0]
    assert stops == (res.events["action"] == "stop").sum()
    runs = con.execute("SELECT run_id, mode FROM runs ORDER BY 1").fetchall()
    assert runs == [("pbt-1", "max"), ("quad-1", "min"), ("quad-2", "min"), ("quad-3", "min")]
    with pytest.raises(ResultsError, match="sql: .*nope"):
        query(root, "SELECT nope FROM trials")


def test_sql_views_exist_for_a_run_without_events(tmp_path):
    quad_run(tmp_path, "q", seed=5, asha=False, trials=3)
    assert query(tmp_path, "SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]
    assert query(tmp_path, "SELECT count(*) AS n FROM reports").to_pylist() == [{"n": 27}]


def test_reading_while_a_run_is_still_writing(tmp_path):
    run_dir = tmp_path / "live" / "r1"
    write_plan(run_dir, "r1", "live", "loss", "min", {"x": {"float": [0, 1]}})
    sink = ParquetSink(run_dir, [pa.field("param_x", pa.float64())], flush_rows=50, flush_seconds=1e9)
    total = 4000
    done = threading.Event()

    def writer():
        for i in range(total):
            sink.add(
                "reports",
                {
                    "run_id": "r1",
                    "experiment": "live",
                    "trial_id": f"t{i % 10}",
                    "step": i // 10 + 1,
                    "time": time.time(),
                    "param_x": 0.1,
                    "metric_loss": 1.0 / (i + 1),
                },
            )
        sink.close()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    while not done.is_set() or not seen or seen[-1] < total:
        n = len(read_results(run_dir).reports)
        sql_n = query(run_dir, "SELECT count(*) AS n FROM reports").to_pylist()[0]["n"]
        assert n % 50 == 0 and sql_n % 50 == 0  # only whole part files are ever visible
        seen.append(n)
        if done.is_set() and n == total:
            break
    thread.join()
    assert seen == sorted(seen) and seen[-1] == total and len(set(seen)) > 1


def test_cli_best_compare_sql_and_plot(root, tmp_path):
    result = cli("results", "best", root / "quad", "--format", "json")
    best = json.loads(result.output)[0]
    trials = read_results(root / "quad").trials
    assert best["best_loss"] == pytest.approx(trials["best_value"].min())
    assert best["trial_id"] == trials.loc[trials["best_value"].idxmin(), "trial_id"]
    assert "param_x" in best
    result = cli("results", "best", root)  # different metrics and modes
    assert result.exit_code == 1 and "different metrics" in result.output

    result = cli("results", "compare", root / "quad" / "quad-1", root / "quad" / "quad-3")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["field", "quad-1", "quad-3"] and any(line.startswith("scheduler") for line in lines)
    rows = json.loads(cli("results", "compare", root / "quad", "--format", "json").output)
    assert [r["run_id"] for r in rows] == ["quad-1", "quad-2", "quad-3"]

    result = cli(
        "sql", "SELECT run_id, count(*) AS n FROM trials GROUP BY 1 ORDER BY 1", "--root", root, "--format", "csv"
    )
    assert result.exit_code == 0
    assert result.output.splitlines() == ["run_id,n", "pbt-1,6", "quad-1,24", "quad-2,24", "quad-3,10"]
    result = cli("sql", "SELEC 1", "--root", root)
    assert result.exit_code == 1 and "sql:" in result.output

    for kind, run in (
        ("curves", "quad/quad-1"),
        ("anytime", "quad"),
        ("importance", "quad/quad-1"),
        ("parallel", "quad/quad-1"),
        ("asha", "quad/quad-2"),
        ("pbt", "pbt-demo/pbt-1"),
    ):
        out = tmp_path / f"{kind}.png"
        result = cli("plot", kind, root / run, "-o", out)
        assert result.exit_code == 0, result.output
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_cli_pareto(root):
    run = root / "quad" / "quad-3"  # acc = 1 - loss / 3: the two agree, or conflict when both minimised
    trials = read_results(run).trials
    agree = json.loads(cli("results", "pareto", run, "-m", "loss:min", "-m", "acc:max", "--format", "json").output)
    assert [r["trial_id"] for r in agree] == [trials.loc[trials["metric_loss"].idxmin(), "trial_id"]]
    conflict = json.loads(cli("results", "pareto", run, "-m", "loss:min", "-m", "acc:min", "--format", "json").output)
    assert len(conflict) == len(trials) and "param_x" in conflict[0]
    result = cli("results", "pareto", run, "-m", "loss:down")
    assert result.exit_code == 1 and "METRIC:min or METRIC:max" in result.output


def test_importance_of_many_trials_models_a_seeded_sample_and_says_so():
    import numpy as np
    import pandas as pd

    from scalehp.analysis.importance import SAMPLE, param_importance

    rng = np.random.default_rng(0)
    n = SAMPLE + 1500
    trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "param_x": rng.uniform(-5, 5, n), "param_y": rng.uniform(0, 1, n)})
    trials["best_value"] = (trials["param_x"] - 0.3) ** 2 / 10 + 3 * trials["param_y"]
    ranked = param_importance(trials, "min")
    assert ranked.attrs["sampled"] == (SAMPLE, n)
    assert list(ranked["param"]) == ["y", "x"] and ranked["importance"].sum() == pytest.approx(1.0)
    assert ranked.equals(param_importance(trials, "min"))  # the same sample each time
    assert "sampled" not in param_importance(trials.iloc[:500], "min").attrs


def test_the_top_of_a_large_leaderboard_is_the_top_of_the_full_stable_sort():
    import numpy as np
    import pandas as pd

    from scalehp.analysis.tables import best_trial, finite, leaderboard

    rng = np.random.default_rng(1)
    for _ in range(200):  # ties, NaN and infinities, in every mode and size
        n = int(rng.integers(1, 200))
        values = rng.choice([1.0, 2.0, 3.0, np.nan, np.inf, -np.inf, 0.5], n)
        trials = pd.DataFrame({"trial_id": [f"t{i}" for i in range(n)], "best_value": values})
        for mode in ("min", "max"):
            ranked = trials.sort_values("best_value", ascending=mode == "min", na_position="last", kind="stable", key=finite)
            for top in (1, 3, 10):
                assert list(leaderboard(trials, mode, top)["trial_id"]) == list(ranked["trial_id"].head(top))
            if finite(trials["best_value"]).notna().any():
                assert best_trial(trials, mode)["trial_id"] == ranked["trial_id"].iloc[0]
