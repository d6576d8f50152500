"""Each benchmark script runs end to end at a tiny size (the figures are in BENCHMARKS.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_results_scale_benchmark_runs_small(tmp_path):
    stdout = _script("benchmarks/results_scale.py", "--rows", "20000", "--runs", "2", "--trials", "20",
                     "--part-rows", "3000", "--root", str(tmp_path / "bench"))  # fmt: skip
    assert "wrote 20,000 report rows in 8 part files" in stdout
    assert re.search(r"read_results.*\s[\d.]+ s\s+[\d.]+ s\s+20,000 rows, 2 runs", stdout)
    # pyarrow, pandas and DuckDB agree on the best value
    bests = re.findall(r"best (-?[\d.]+)", stdout)
    assert len(bests) == 3 and len(set(bests)) == 1
    assert re.search(r"^total\s+[\d.]+ s\s+[\d.]+ s$", stdout, re.M)


def test_results_scale_benchmark_against_ray_loader_small(tmp_path):
    stdout = _script("benchmarks/results_scale.py", "--rows", "2000", "--runs", "2", "--trials", "5", "--ray")
    assert "as 2 Ray Tune experiments, 10 trial folders with result.json" in stdout
    # scalehp and ray.tune.ExperimentAnalysis read the same rows and find the same best value
    loaded = re.findall(r"^(scalehp|ray): .*\s[\d.]+ s\s+[\d.]+ s\s+2,000 rows; best (-?[\d.]+)$", stdout, re.M)
    assert [name for name, _ in loaded] == ["scalehp", "ray"], stdout
    assert len({best for _, best in loaded}) == 1
    assert len(re.findall(r"^ray / .*: [\d.]+x wall, [\d.]+x cpu$", stdout, re.M)) == 2


def _script(*args: str, timeout: int = 300) -> str:
    """Run a benchmark script from the repository root; its stdout, once it exited 0."""
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out.stdout


def _bench(*args: str, timeout: int = 600) -> str:
    """``_script``, for the scripts that print their versions and the machine's load first."""
    stdout = _script(*args, timeout=timeout)
    assert re.search(r"^# python [\d.]+, scalehp [\w.]+, ray [\d.]+", stdout, re.M)
    assert "load average" in stdout
    return stdout


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
def test_swarm_benchmark_runs_small():
    text = _bench("benchmarks/swarm.py", "--configs", "300", "--tune-configs", "5", "--batch-size", "50")
    for name, configs in (("swarm", "300"), ("tune-runtime", "5"), ("ray-tuned", "5"), ("optuna", "300")):
        assert re.search(rf"^{name}\s+{configs}\s+[\d.]+\s+[\d,]+\s+[\d.]+$", text, re.M), text
    for name in ("tune-runtime", "ray-tuned", "optuna"):
        assert re.search(rf"^swarm / {name}:\s+[\d.]+x configs/s$", text, re.M), text


@pytest.mark.ray
@pytest.mark.slow
def test_digits_benchmark_runs_small():
    text = _bench("benchmarks/digits_asha_vs_fifo.py", "--samples", "3", "--max-steps", "3", "--target", "0")
    assert re.search(r"round 1: asha .* 9 steps run|round 1: asha .* [3-9] steps run", text), text
    assert "round 1: fifo" in text and " 9 steps run" in text  # FIFO runs every step of every trial
    assert re.search(r"(ASHA|FIFO) reaches the target [\d.]+x sooner than (FIFO|ASHA)", text), text
    assert re.search(r"ASHA runs [\d.]+x fewer steps and finishes the run [\d.]+x sooner", text), text


def test_simulated_benchmark_runs_small(tmp_path):
    text = _bench(
        "benchmarks/simulated.py", "--workers", "8", "--seeds", "3", "--samples", "40",
        "--combo", "random+fifo", "--combo", "random+asha", "--combo", "topk-1epoch", "--out", str(tmp_path),
    )
    assert "## 8 workers" in text
    for name in ("random+fifo", "random+asha", "topk-1epoch"):
        assert re.search(rf"^{re.escape(name)}\s+[\d.]+ \[[\d.]+,[\d.]+\]", text, re.M), text
    assert re.search(r"random\+asha (reaches random\+fifo's final best [\d.]+x sooner|never reaches)", text), text
    assert "topk-1epoch: k = 2 of 40" in text  # ASHA's planned trials at max_steps: ceil(40 / 3**3)
    # the picture and the page that embeds it and the table
    assert (tmp_path / "regret.png").read_bytes().startswith(b"\x89PNG")
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "## 8 workers" in page and "topk-1epoch" in page
    assert f"# wrote {tmp_path / 'report.html'}" in text


def test_topk_1epoch_baseline_on_the_simulated_clock(tmp_path):
    """The seed's random configs each train one epoch; the k best by it train on to max_steps."""
    import numpy as np

    from benchmarks.simulated import ROOT as BENCH_ROOT
    from benchmarks.simulated import _experiment, seed_configs, topk_1epoch
    from scalehp import load_experiment
    from scalehp.compiler import compile_plan
    from scalehp.results.store import read_results
    from scalehp.simulator import simulate
    from scalehp.simulator.curves import from_results

    base = load_experiment(BENCH_ROOT / "experiments" / "simulate_digits_mlp.yaml").to_dict()
    base["budget"] = {**base["budget"], "samples": 30}
    curves = from_results("digits-mlp", compile_plan(load_experiment(base)))
    indices = seed_configs(base, 0, curves)
    assert len(indices) == 30 and indices == seed_configs(base, 0, curves) != seed_configs(base, 1, curves)
    # the very configs, in order, that random+fifo starts for the seed
    fifo = simulate(_experiment(base, "random+fifo", 0, {"algorithm": "random"}, "fifo", str(tmp_path)), curves, workers=8)
    trials = read_results(fifo.path).trials.sort_values("trial_id")
    params = trials[[f"param_{name}" for name in curves.names]].to_dict("records")
    assert [curves.nearest({k[len("param_"):]: v for k, v in p.items()}) for p in params] == indices
    k, workers, steps = 4, 8, 20
    seconds, best = topk_1epoch(curves, indices, workers=workers, k=k, max_steps=steps, metric="val_loss", mode="min")
    assert len(seconds) == 30 + k * (steps - 1)  # one report per step run
    assert np.all(np.diff(seconds) >= 0) and np.all(np.diff(best) <= 0)
    finals = [c.metrics[steps - 1]["val_loss"] for c in curves.curves]
    best_known = min(finals)
    regret = (best - best_known) / (np.median(finals) - best_known)
    assert np.all(np.diff(regret) <= 0) and regret[-1] >= 0
    # it ends at the best value its runs saw: every epoch 1, and the k best of those trained on
    first = [curves.curves[i].metrics[0]["val_loss"] for i in indices]
    top = sorted(range(30), key=lambda j: (first[j], j))[:k]
    seen = first + [m["val_loss"] for j in top for m in curves.curves[indices[j]].metrics[:steps]]
    assert best[-1] == min(seen)
    assert best[-1] >= min(m["val_loss"] for i in indices for m in curves.curves[i].metrics[:steps])
    # the clock: 8 workers take the 30 first epochs in order, each when it is free; once every
    # first epoch has ended, the k trials (k <= workers) run on from epoch 2, all at once
    free, first_ends = [0.0] * workers, []
    for i in indices:
        worker = free.index(min(free))
        free[worker] += curves.curves[i].durations[0]
        first_ends.append(free[worker])
    barrier = max(first_ends)
    assert list(seconds[:30]) == sorted(first_ends) and seconds[30] > barrier

    def trained_on(j: int) -> float:
        end = barrier
        for duration in curves.curves[indices[j]].durations[1:steps]:
            end += duration
        return end

    assert seconds[-1] == max(trained_on(j) for j in top)


def test_dashboard_scale_benchmark_runs_small():
    stdout = _script("benchmarks/dashboard_scale.py", "--trials", "300", "--rows", "6000", "--part-rows", "2000")
    assert "1 run, 300 trials, 6,000 report rows in 3 parts" in stdout
    for line in ("startup: every part read once", "GET curves", "GET version"):
        assert line in stdout
    if "no chromium" not in stdout:
        assert re.search(r"^first paint: overview .*\s[\d.]+ s$", stdout, re.M), stdout
        assert re.search(r"^refresh: the render that shows 1,000 new trials\s+[\d.]+ s$", stdout, re.M), stdout
        assert "page problems" not in stdout
