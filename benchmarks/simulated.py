"""Tuners compared on a simulated clock: regret over simulated time, many workers, many seeds.

``scalehp.simulator.simulate`` runs the experiment file ``--experiment`` (default
``experiments/simulate_digits_mlp.yaml``) over a curve source (default the bundled
``digits-mlp`` bank: real torch training, every epoch's time) for each combination of

* searcher x scheduler: random+FIFO, random+ASHA, TPE (hyperopt)+ASHA;
* workers: ``--workers`` (default 8, 64, 1000);
* seeds: ``--seeds`` (default 30), each a different random draw of configs.

Printed per combination: the normalised regret (best value so far minus the bank's best final
value, divided by the median final value's distance from it: 0 is the best config of the bank
trained to the end, 1 the median one) at a few simulated times, as the interquartile
mean over seeds with a bootstrap 95% interval; and how much sooner ASHA reaches the best value
FIFO ends with (median over seeds, same seed: the same configs), with the seeds where it never
does. The simulations' real time is printed too.

    python benchmarks/simulated.py                                  # the full study
    python benchmarks/simulated.py --workers 32 --seeds 5           # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMBOS = {
    "random+fifo": ({"algorithm": "random"}, "fifo"),
    "random+asha": ({"algorithm": "random"}, "asha"),
    "tpe+asha": ({"algorithm": "hyperopt", "initial_points": 20}, "asha"),
}


def curve(summary, metric: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(simulated seconds, best value so far) at each report of a simulated run."""
    from scalehp.results.schema import metric_column
    from scalehp.results.store import read_results
    from scalehp.simulator import START

    reports = read_results(summary.path).reports.sort_values("time", kind="stable")
    seconds = np.array([t.timestamp() - START for t in reports["time"]])
    values = reports[metric_column(reports, metric)].to_numpy(dtype=float)
    best = np.minimum.accumulate(values) if mode == "min" else np.maximum.accumulate(values)
    return seconds, best


def at(seconds: np.ndarray, best: np.ndarray, t: float) -> float:
    i = np.searchsorted(seconds, t, side="right") - 1
    return float(best[i]) if i >= 0 else float("nan")


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def iqm(values: list[float]) -> float:
    data = np.sort(np.asarray([v for v in values if v == v]))
    if not len(data):
        return float("nan")
    cut = len(data) // 4
    return float(np.mean(data[cut : len(data) - cut] if len(data) > 3 else data))


def bootstrap(values: list[float], rounds: int = 1000) -> tuple[float, float]:
    data = np.asarray([v for v in values if v == v])
    if not len(data):
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    draws = [iqm(list(rng.choice(data, len(data)))) for _ in range(rounds)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "simulate_digits_mlp.yaml")
    parser.add_argument("--bench", default="digits-mlp")
    parser.add_argument("--workers", type=int, action="append")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--samples", type=int, default=None, help="trials per run (default: the file's)")
    parser.add_argument("--combo", action="append", choices=sorted(COMBOS))
    args = parser.parse_args(argv)

    from scalehp import load_experiment
    from scalehp.compiler import compile_plan
    from scalehp.simulator import simulate
    from scalehp.simulator.curves import from_results

    workers_list = args.workers or [8, 64, 1000]
    combos = args.combo or list(COMBOS)
    base = load_experiment(args.experiment).to_dict()
    if args.samples:
        base["budget"] = {**base["budget"], "samples": args.samples}
    metric, mode = base["metric"]["name"], base["metric"]["mode"]
    curves = from_results(args.bench, compile_plan(load_experiment(base)))
    finals = [c.metrics[-1].get(metric) for c in curves.curves]
    finals = [v for v in finals if v is not None and v == v]
    best_known = min(finals) if mode == "min" else max(finals)
    middle = statistics.median(finals)  # regret 1: as good as the median config of the bank at its end
    spread = abs(middle - best_known) or 1.0
    header(
        f"simulated: {', '.join(combos)} x workers {workers_list} x {args.seeds} seeds, "
        f"{base['budget']['samples']} trials each, over {curves.describe()}"
    )
    scheduler_of = {"fifo": "fifo", "asha": {"asha": {"grace_steps": 1, "reduction_factor": 3}}}
    with tempfile.TemporaryDirectory(prefix="scalehp-simulated-") as tmp:
        for workers in workers_list:
            runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in combos}
            real: dict[str, float] = {c: 0.0 for c in combos}
            for name in combos:
                search, scheduler = COMBOS[name]
                for seed in range(args.seeds):
                    data = {**base, "name": name.replace("+", "-"), "seed": seed, "search": search,
                            "scheduler": scheduler_of[scheduler], "results": tmp}
                    start = time.perf_counter()
                    summary = simulate(load_experiment(data), curves, workers=workers)
                    real[name] += time.perf_counter() - start
                    runs[name].append(curve(summary, metric, mode))
            horizon = max(s[-1] for runs_ in runs.values() for s, _ in runs_)
            marks = [horizon * f for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
            print(f"\n## {workers} workers (simulated horizon {_span(horizon)}; regret IQM [95% CI] at)")
            print(f"{'tuner':12s} " + " ".join(f"{_span(m):>18s}" for m in marks) + "   real s")
            for name in combos:
                cells = []
                for mark in marks:
                    regrets = [abs(at(s, b, mark) - best_known) / spread for s, b in runs[name]]
                    low, high = bootstrap(regrets)
                    cells.append(f"{iqm(regrets):.3f} [{low:.3f},{high:.3f}]")
                print(f"{name:12s} " + " ".join(f"{c:>18s}" for c in cells) + f"   {real[name]:6.1f}")
            if "random+fifo" in runs and "random+asha" in runs:
                ratios, never = [], 0
                for (fs, fb), (a_s, ab) in zip(runs["random+fifo"], runs["random+asha"]):
                    target = fb[-1]
                    fifo_t = fs[np.argmax(fb == target)]
                    reached = np.nonzero((ab <= target) if mode == "min" else (ab >= target))[0]
                    if not len(reached):
                        never += 1
                        continue
                    ratios.append(fifo_t / max(a_s[reached[0]], 1e-9))
                if ratios:
                    print(
                        f"random+asha reaches random+fifo's final best {statistics.median(ratios):.2f}x sooner "
                        f"(median of {len(ratios)} seeds; in {never} of {args.seeds} seeds it never does: "
                        f"ASHA stopped the config FIFO's best came from)"
                    )
                else:
                    print(f"random+asha never reaches random+fifo's final best (in all {args.seeds} seeds)")
    print(f"# finished at {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
