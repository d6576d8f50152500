"""What a trial costs beyond its own code: 200 one-step trials, four ways, in one run.

* ``scalehp``        ``scalehp.runner.run(plan)``: FIFO + random search, Parquet results
* ``ray-default``    a hand-written ``tune.Tuner`` with Ray Tune's defaults (a new actor per
  trial, JSON/CSV/TensorBoard files per trial, the console reporter)
* ``ray-tuned``      the same Tuner tuned by hand: ``reuse_actors=True``, Ray's per-trial
  loggers off (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``), ``verbose=0``
* ``optuna``         ``study.optimize`` in this process (no Ray, no files): the floor

The three Ray contenders share one local Ray started once here (``ray.init(address="local")``,
all CPUs), so none of them pays for starting Ray, and ``scalehp.runner.run`` joins it
instead of starting its own. A warm-up Tuner fills Ray's worker pool first. Contenders run
in turn, ``--rounds`` times in a rotating order, and the median wall time of each is compared;
``ray-default`` (about 1.6 s per trial here) runs in the first ``--default-rounds`` only.

    python benchmarks/overhead.py                       # 200 trials, 3 rounds, ray-default once (~7 min)
    python benchmarks/overhead.py --default-rounds 3    # ray-default in every round too
    python benchmarks/overhead.py --skip ray-default --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load, quiet, ray_local, timed  # noqa: E402

CONTENDERS = ("scalehp", "ray-default", "ray-tuned", "optuna")


def run_scalehp(trials: int, root: Path) -> None:
    from scalehp import load_experiment
    from scalehp.runner import run

    experiment = load_experiment(
        {
            "name": "overhead",
            "trainable": "benchmarks.trainables:one_step",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": trials, "max_steps": 1},
            "space": {"x": {"float": [0.0, 1.0]}},
            "search": {"algorithm": "random"},
            "scheduler": "fifo",
            "seed": 0,
        }
    )
    summary = run(experiment, results=root)
    if summary.completed != trials:
        raise SystemExit(f"scalehp: {summary.completed} of {trials} trials completed")


def run_ray(trials: int, root: Path, *, tuned: bool) -> None:
    from ray import tune

    from benchmarks.trainables import one_step_ray

    previous = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    if tuned:
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    try:
        with quiet():
            tuner = tune.Tuner(
                one_step_ray,
                param_space={"x": tune.uniform(0.0, 1.0)},
                tune_config=tune.TuneConfig(
                    metric="loss", mode="min", num_samples=trials, **({"reuse_actors": True} if tuned else {})
                ),
                run_config=tune.RunConfig(storage_path=str(root), **({"verbose": 0} if tuned else {})),
            )
            grid = tuner.fit()
    finally:
        if previous is None:
            os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
        else:
            os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = previous
    done = sum(1 for result in grid if result.error is None)
    if done != trials:
        raise SystemExit(f"ray: {done} of {trials} trials completed")


def run_optuna(trials: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=trials)
    if len(study.trials) != trials:
        raise SystemExit("optuna: wrong number of trials")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--default-rounds", type=int, default=1, help="rounds that include ray-default (the slow one: ~1.6 s/trial)"
    )
    parser.add_argument("--skip", action="append", default=[], choices=CONTENDERS)
    args = parser.parse_args(argv)
    contenders = [c for c in CONTENDERS if c not in args.skip]

    header(
        f"overhead: {args.trials} one-step trials, {args.rounds} round(s), ray-default in {min(args.default_rounds, args.rounds)}"
    )
    import logging

    logging.getLogger("ray").setLevel(logging.ERROR)
    # with the loggers off, ResultGrid warns once per trial that result.json is missing
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    ray_local()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="scalehp-overhead-") as tmp:
        run_ray(4, Path(tmp) / "warmup", tuned=False)  # Ray's worker pool, imports: paid once, for all
        for r in range(args.rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for name in order:
                if name == "ray-default" and r >= args.default_rounds:
                    continue
                root = Path(tmp) / f"{name}-{r}"
                with timed(times, name):
                    if name == "scalehp":
                        run_scalehp(args.trials, root)
                    elif name == "optuna":
                        run_optuna(args.trials)
                    else:
                        run_ray(args.trials, root, tuned=(name == "ray-tuned"))
                print(f"round {r + 1}: {name:<12} {times[name][-1]:8.2f} s   ({load()})", flush=True)

    median = {name: statistics.median(values) for name, values in times.items()}
    print()
    print(f"{'contender':<12} {'median s':>9} {'ms/trial':>9}  {'scalehp is':>14}")
    for name in contenders:
        ratio = ""
        if "scalehp" in median and name != "scalehp":
            r = median[name] / median["scalehp"]
            ratio = f"{r:.2f}x faster" if r >= 1 else f"{1 / r:.2f}x slower"
        print(f"{name:<12} {median[name]:9.2f} {1000 * median[name] / args.trials:9.1f}  {ratio:>14}")
    print(f"# finished at {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
