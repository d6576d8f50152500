"""How much of the machine goes to the trainables: CPU-bound ~0.5 s steps under ASHA, all cores.

``scalehp.runner.run`` runs ``benchmarks.trainables:cpu_steps`` (pure Python arithmetic for
``--step-s`` seconds per step, 1 CPU per trial, as many trials at once as there are CPUs)
under ASHA. The trainable times its own code and reports the running total as the metric
``inside_s``; efficiency is the sum over trials of that time divided by wall time x cores
(the limit is 100%). Two walls are shown: ``Tuner.fit`` alone, and the whole ``run()``
(starting Ray, writing the plan, reading the summary back).

    python benchmarks/efficiency.py                             # 12 trials x up to 9 steps
    python benchmarks/efficiency.py --samples 54 --max-steps 27 # longer: start-up weighs less
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=9)
    parser.add_argument("--step-s", type=float, default=0.5)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    from scalehp import load_experiment
    from scalehp.results.store import read_results
    from scalehp.runner import run

    header(
        f"efficiency: {args.samples} trials x up to {args.max_steps} steps of {args.step_s} s, ASHA, {args.cores} cores"
    )
    exp = load_experiment(
        {
            "name": "efficiency",
            "trainable": "benchmarks.trainables:cpu_steps",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": args.samples, "max_steps": args.max_steps},
            "concurrency": args.cores,
            "space": {"x": {"float": [0.0, 1.0]}, "step_s": args.step_s},
            "search": {"algorithm": "random"},
            "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
            "seed": 0,
        }
    )
    with tempfile.TemporaryDirectory(prefix="scalehp-efficiency-") as tmp:
        start = time.perf_counter()
        summary = run(exp, results=tmp)
        whole = time.perf_counter() - start
        reports = read_results(summary.path).table("reports").to_pandas()
    inside = reports.groupby("trial_id")["metric_inside_s"].max().sum()
    steps = len(reports)
    fit = summary.elapsed_s
    print(f"trials {summary.trials} ({summary.completed} completed, {summary.stopped} stopped by ASHA), {steps} steps")
    print(f"time inside the trainables   {inside:8.1f} core-s ({inside / steps:.3f} s per step)")
    print(
        f"Tuner.fit  {fit:6.1f} s x {args.cores} cores = {fit * args.cores:6.1f} core-s   efficiency {inside / (fit * args.cores):6.1%}"
    )
    print(
        f"whole run  {whole:6.1f} s x {args.cores} cores = {whole * args.cores:6.1f} core-s   efficiency {inside / (whole * args.cores):6.1%}"
    )
    print(f"# finished at {load()}  (other processes on these cores lower the figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
