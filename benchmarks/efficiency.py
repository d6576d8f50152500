"""How much of the machine goes to the trainables: CPU-bound ~0.5 s steps under ASHA, all cores.

Two contenders, side by side in one run, each on a Ray of its own that it starts and stops:

* ``scalehp``    ``scalehp.runner.run`` of ``benchmarks.trainables:cpu_steps`` under ASHA
* ``ray-tuned``  a hand-written ``tune.Tuner`` of the same trainable (``cpu_steps_ray``) with
  Ray's ``ASHAScheduler`` (same grace, reduction factor and max steps), ``reuse_actors=True``,
  Ray's per-trial loggers off and ``verbose=0``

Both run the same ``--samples`` values of ``x`` (a grid, drawn once with a fixed seed) in the
same order, so ASHA sees the same curves and both do about the same work. Each trial takes
1 CPU, as many at once as there are CPUs. The trainable spends ``--step-s``
seconds of pure Python arithmetic per step and reports the running total of its own time
as ``inside_s``; efficiency is that time summed over trials divided by wall time x cores
(the limit is 100%). Two walls are shown: ``Tuner.fit`` alone, and the whole run (starting
Ray, and for scalehp writing the plan and reading the summary back). Rounds alternate the
order; medians are compared.

    python benchmarks/efficiency.py                             # 12 trials x up to 9 steps
    python benchmarks/efficiency.py --samples 54 --max-steps 27 # longer: start-up weighs less
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load, quiet, ray_local  # noqa: E402

CONTENDERS = ("scalehp", "ray-tuned")


def xs(samples: int) -> list[float]:
    """The trials' ``x``: the same for both contenders."""
    import random

    draw = random.Random(0)
    return [round(draw.uniform(0.0, 1.0), 6) for _ in range(samples)]


def run_scalehp(args: argparse.Namespace, root: str) -> tuple[float, float, float, int]:
    """(core-s inside the trainables, Tuner.fit s, whole s, steps)."""
    from scalehp import load_experiment
    from scalehp.results.store import read_results
    from scalehp.runner import run

    exp = load_experiment(
        {
            "name": "efficiency",
            "trainable": "benchmarks.trainables:cpu_steps",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 1, "max_steps": args.max_steps},
            "concurrency": args.cores,
            "space": {"x": {"grid": xs(args.samples)}, "step_s": args.step_s},
            "search": {"algorithm": "grid"},
            "scheduler": {"asha": {"grace_steps": 1, "reduction_factor": 3}},
            "seed": 0,
        }
    )
    start = time.perf_counter()
    summary = run(exp, results=root)
    whole = time.perf_counter() - start
    reports = read_results(summary.path).table("reports").to_pandas()
    inside = reports.groupby("trial_id")["metric_inside_s"].max().sum()
    return inside, summary.elapsed_s, whole, len(reports)


def run_ray(args: argparse.Namespace, root: str) -> tuple[float, float, float, int]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from benchmarks.trainables import cpu_steps_ray

    previous = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    start = time.perf_counter()
    try:
        ray_local(args.cores)
        with quiet():
            tuner = tune.Tuner(
                cpu_steps_ray,
                param_space={
                    "x": tune.grid_search(xs(args.samples)),
                    "step_s": args.step_s,
                    "max_steps": args.max_steps,
                },
                tune_config=tune.TuneConfig(
                    metric="loss",
                    mode="min",
                    num_samples=1,
                    max_concurrent_trials=args.cores,
                    reuse_actors=True,
                    scheduler=ASHAScheduler(max_t=args.max_steps, grace_period=1, reduction_factor=3),
                ),
                run_config=tune.RunConfig(storage_path=root, verbose=0),
            )
            fit_start = time.perf_counter()
            grid = tuner.fit()
            fit = time.perf_counter() - fit_start
        ray.shutdown()
        whole = time.perf_counter() - start
    finally:
        if previous is None:
            os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
        else:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = previous
    inside = sum(r.metrics.get("inside_s", 0.0) for r in grid)
    steps = sum(r.metrics.get("training_iteration", 0) for r in grid)
    return inside, fit, whole, steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=9)
    parser.add_argument("--step-s", type=float, default=0.5)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip", action="append", default=[], choices=CONTENDERS)
    args = parser.parse_args(argv)

    header(
        f"efficiency: {args.samples} trials x up to {args.max_steps} steps of {args.step_s} s, "
        f"ASHA, {args.cores} cores, {args.rounds} round(s)"
    )
    runners = {"scalehp": run_scalehp, "ray-tuned": run_ray}
    names = [n for n in CONTENDERS if n not in args.skip]
    fits: dict[str, list[float]] = {n: [] for n in names}
    wholes: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            with tempfile.TemporaryDirectory(prefix=f"scalehp-efficiency-{name}-") as tmp:
                inside, fit, whole, steps = runners[name](args, tmp)
            fits[name].append(inside / (fit * args.cores))
            wholes[name].append(inside / (whole * args.cores))
            print(
                f"round {round_ + 1}: {name:10s} {steps:4d} steps, {inside:6.1f} core-s inside; "
                f"Tuner.fit {fit:6.1f} s ({fits[name][-1]:6.1%}), whole {whole:6.1f} s ({wholes[name][-1]:6.1%})"
            )
    print()
    print(f"{'contender':12s} {'efficiency of Tuner.fit':>24s} {'of the whole run':>18s}   (medians)")
    for name in names:
        print(f"{name:12s} {statistics.median(fits[name]):24.1%} {statistics.median(wholes[name]):18.1%}")
    print(f"# finished at {load()}  (other processes on these cores lower the figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
