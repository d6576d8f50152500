"""Each benchmark script runs end to end at a tiny size (the figures are in BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_results_scale_benchmark_against_ray_loader_small(tmp_path):
    out = subprocess.run(
        [sys.executable, "benchmarks/results_scale.py", "--rows", "2000", "--runs", "2", "--trials", "5", "--ray"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "as 2 Ray Tune experiments, 10 trial folders with result.json" in out.stdout
    # scalehp and ray.tune.ExperimentAnalysis read the same rows and find the same best value
    loaded = re.findall(r"^(scalehp|ray): .*\s[\d.]+ s\s+[\d.]+ s\s+2,000 rows; best (-?[\d.]+)$", out.stdout, re.M)
    assert [name for name, _ in loaded] == ["scalehp", "ray"], out.stdout
    assert len({best for _, best in loaded}) == 1
    assert len(re.findall(r"^ray / .*: [\d.]+x wall, [\d.]+x cpu$", out.stdout, re.M)) == 2


def _bench(*args: str, timeout: int = 600) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert re.search(r"^# python [\d.]+, scalehp [\w.]+, ray [\d.]+", out.stdout, re.M)
    assert "load average" in out.stdout
    return out.stdout


def test_sink_throughput_benchmark_runs_small():
    text = _bench("benchmarks/sink_throughput.py", "--rows", "3000", "--trials", "10", "--flush-rows", "1000")
    assert "3,000 rows in 3 parts" in text
    assert re.search(r"^[\d,]+ reports/s", text, re.M)


@pytest.mark.ray
@pytest.mark.slow
def test_overhead_benchmark_runs_small():
    text = _bench("benchmarks/overhead.py", "--trials", "3")
    for name in ("ray-default", "ray-tuned", "optuna"):
        assert re.search(rf"^{name}\s+[\d.]+\s+[\d.]+\s+[\d.]+x (faster|slower)$", text, re.M), text
    assert re.search(r"^scalehp\s+[\d.]+\s+[\d.]+\s*$", text, re.M), text


@pytest.mark.ray
def test_scale_benchmark_runs_small():
    text = _bench("benchmarks/scale.py", "--trials", "20")
    assert "trials           20 (20 completed, 0 errors)" in text
    assert float(re.search(r"= ([\d.]+) per trial", text).group(1)) > 0
    # the target: at most 2 files per trial, the run's own files (plan, signature, Ray's state)
    # and checkpoints aside. A trial's end is on disk at once, in the journal: parts are written
    # every few seconds (3 tables), not per trial, and the journal is gone once the run ends
    parts = sum(int(n) for n in re.findall(r"^\s+(\d+)\s+parquet: ", text, re.MULTILINE))
    assert 0 < parts / 20 <= 0.5, text
    assert "journal" not in text, text
    assert re.search(r"driver peak RSS\s+\d+ MB", text)


@pytest.mark.ray
def test_efficiency_benchmark_runs_small():
    text = _bench("benchmarks/efficiency.py", "--samples", "3", "--max-steps", "2", "--step-s", "0.05")
    for name in ("scalehp", "ray-tuned"):
        found = re.search(rf"^{name}\s+([\d.]+)%\s+([\d.]+)%$", text, re.M)
        assert found and all(0 < float(f) <= 100 for f in found.groups()), text
        assert re.search(rf"round 1: {name}\s+\d+ steps", text), text


@pytest.mark.ray
@pytest.mark.slow
def test_digits_benchmark_runs_small():
    text = _bench("benchmarks/digits_asha_vs_fifo.py", "--samples", "3", "--max-steps", "3", "--target", "0")
    assert re.search(r"round 1: asha .* 9 steps run|round 1: asha .* [3-9] steps run", text), text
    assert "round 1: fifo" in text and " 9 steps run" in text  # FIFO runs every step of every trial
    assert re.search(r"(ASHA|FIFO) reaches the target [\d.]+x sooner than (FIFO|ASHA)", text), text
    assert re.search(r"ASHA runs [\d.]+x fewer steps and finishes the run [\d.]+x sooner", text), text


def test_simulated_benchmark_runs_small():
    text = _bench(
        "benchmarks/simulated.py", "--workers", "8", "--seeds", "3", "--samples", "40",
        "--combo", "random+fifo", "--combo", "random+asha",
    )
    assert "## 8 workers" in text
    for name in ("random+fifo", "random+asha"):
        assert re.search(rf"^{re.escape(name)}\s+[\d.]+ \[[\d.]+,[\d.]+\]", text, re.M), text
    assert re.search(r"random\+asha (reaches random\+fifo's final best [\d.]+x sooner|never reaches)", text), text
