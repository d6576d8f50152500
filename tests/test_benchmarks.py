"""The results-scale benchmark runs (at a tiny size: the 10M-row figures are in its docstring's command)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_results_scale_benchmark_runs_small(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "benchmarks/results_scale.py",
            "--rows",
            "20000",
            "--runs",
            "2",
            "--trials",
            "20",
            "--part-rows",
            "3000",
            "--root",
            str(tmp_path / "bench"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote 20,000 report rows in 8 part files" in out.stdout
    assert re.search(r"read_results.*\s[\d.]+ s\s+[\d.]+ s\s+20,000 rows, 2 runs", out.stdout)
    # pyarrow, pandas and DuckDB agree on the best value
    bests = re.findall(r"best (-?[\d.]+)", out.stdout)
    assert len(bests) == 3 and len(set(bests)) == 1
    assert re.search(r"^total\s+[\d.]+ s\s+[\d.]+ s$", out.stdout, re.M)
