"""Analysis and the report over a real Ray Tune ASHA run (nothing mocked)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scalehp.analysis import asha, compare, tables
from scalehp.cli import main
from scalehp.results.sql import connect
from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray


def test_asha_run_answers_and_report(ray_local, tmp_path):
    experiment = load_experiment(
        {
            "name": "quad-analysis",
            "trainable": "tests.trainables:quadratic",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 9, "max_steps": 9},
            "seed": 1,
            "space": {"x": {"float": [-1.0, 1.0]}, "noise": {"float": [0.0, 1.0]}},
            "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
            "results": str(tmp_path / "results"),
        }
    )
    summary = run(experiment)
    results = read_results(tmp_path / "results")
    trials, reports, events = results.trials, results.reports, results.events

    best = tables.best_trial(trials, "min")
    direct = reports.groupby("trial_id")["metric_loss"].min()
    assert best["trial_id"] == direct.idxmin() == summary.best_trial
    assert best["best_value"] == pytest.approx(direct.min())

    stats = asha.rung_stats(events)
    assert len(stats) and stats["rung"].is_monotonic_increasing
    assert stats["trials"].iloc[0] == len(trials)  # every trial reached the first rung
    assert stats["stopped"].sum() == (trials["status"] == "stopped").sum()

    con = connect(tmp_path / "results")
    sql_best = con.execute("SELECT min(best_value) FROM trials").fetchone()[0]
    assert sql_best == pytest.approx(best["best_value"])
    assert con.execute("SELECT count(*) FROM reports").fetchone()[0] == len(reports)

    compared = compare.compare_runs(results)
    assert compared["steps"].item() == len(reports) and compared["best_trial"].item() == best["trial_id"]

    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(tmp_path / "results"), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for alt in ("learning curves", "anytime performance over steps", "ASHA rungs", "param importance"):
        assert f'alt="{alt}"' in text
