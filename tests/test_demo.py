"""The README's demo, end to end: the CLI on a fresh embedded Ray, real torch, real data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scalehp.results.store import read_results

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.ray
def test_digits_asha_demo(tmp_path):
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalehp.cli",
            "run",
            "experiments/digits_asha.yaml",
            "--results",
            str(tmp_path),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert "best trial" in process.stdout and "tables" in process.stdout
    results = read_results(tmp_path)
    trials, reports = results.trials, results.reports
    assert len(trials) == 32 and set(trials["status"]) <= {"completed", "stopped"}
    assert (trials["status"] == "stopped").sum() >= 10  # ASHA really stopped trials early
    assert len(reports) == trials["steps"].sum()
    best = trials.sort_values("best_value").iloc[0]
    best_reports = reports[reports["trial_id"] == best["trial_id"]]
    assert best_reports["metric_val_acc"].max() >= 0.95
    assert len(results.events[results.events["action"] == "stop"]) == (trials["status"] == "stopped").sum()
