"""PBT against random search at the same step budget, on a problem where the schedule matters.

    python benchmarks/pbt_schedule.py [--seeds 5] [--results /tmp/pbt-bench]

For each seed it runs experiments/schedule_pbt.yaml twice on a local Ray: once as written
(PBT, a population of 8 trials x 20 steps = 160 steps) and once with ``scheduler: fifo``
(random search: 8 fixed learning rates x 20 steps, the same 160 steps). The score of a run is
the best final loss over its trials (the loss at step 20, the model one would keep). PBT should
win in at least 4 of 5 seeds; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def final_loss(run_dir: Path) -> float:
    from scalehp import read_results

    trials = read_results(run_dir).trials
    return float(trials.loc[trials["steps"] == trials["steps"].max(), "metric_loss"].min())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--results", default="/tmp/scalehp-pbt-benchmark")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    import ray

    from scalehp import load_experiment, run

    base = load_experiment(ROOT / "experiments" / "schedule_pbt.yaml").to_dict()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    wins = 0
    print("seed  pbt best final loss  random search best final loss  winner")
    try:
        for seed in range(args.seeds):
            scores = {}
            for label, scheduler in (("pbt", base["scheduler"]), ("random", "fifo")):
                data = {**base, "seed": seed, "scheduler": scheduler, "results": args.results}
                started = time.monotonic()
                summary = run(load_experiment(data))
                scores[label] = (final_loss(summary.path), time.monotonic() - started)
            won = scores["pbt"][0] < scores["random"][0]
            wins += won
            print(
                f"{seed:>4}  {scores['pbt'][0]:>19.4f}  {scores['random'][0]:>30.4f}  {'pbt' if won else 'random'}"
                f"   ({scores['pbt'][1]:.0f} s, {scores['random'][1]:.0f} s)"
            )
    finally:
        ray.shutdown()
    print(f"PBT won {wins} of {args.seeds} seeds")
    return 0 if wins >= max(1, round(0.8 * args.seeds)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
