"""Quality per time: the digits experiment under ASHA vs FIFO, the same random samples.

``experiments/digits_asha.yaml`` (a torch MLP on scikit-learn's digits) is run twice through
``scalehp.runner.run`` in one local Ray: once with its ASHA scheduler, once with FIFO (every
trial runs all its steps). Within a round both use scalehp's seeded random search with the
same seed and sample count, so both runs draw the same configurations in the same order; the
scheduler is the only difference. Each round uses another seed (``--seed`` + round), so the
sample order differs from round to round and the medians are over sample orders. Runs
alternate (``--rounds``, rotating which goes first).

Times are read from the Parquet results, minus the run's start (``created_at`` in
``plan.json``, written before any trial starts): *to target* is the ``time`` of the first
report whose ``val_acc`` reaches ``--target``; *to best* the first report at the run's own
final best ``val_acc`` (the best of ASHA's run may be lower than FIFO's: it stops trials).
Report times come from Ray's result ``timestamp``, whole seconds, so they are good to about
a second.

    python benchmarks/digits_asha_vs_fifo.py                         # 16 samples x 10 steps
    python benchmarks/digits_asha_vs_fifo.py --samples 32 --max-steps 20   # the experiment's own size
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, header, load, ray_local  # noqa: E402


def experiment(scheduler: str, samples: int, max_steps: int, seed: int):
    import yaml

    from scalehp import load_experiment

    data = yaml.safe_load((ROOT / "experiments" / "digits_asha.yaml").read_text())
    data["name"] = f"digits-{scheduler}"
    data["budget"] = {"samples": samples, "max_steps": max_steps}  # no time limit: each run finishes
    data["search"] = {"algorithm": "random"}
    data["seed"] = seed
    if scheduler == "fifo":
        data["scheduler"] = "fifo"
    return load_experiment(data)


def time_to_target(run_dir: Path, target: float) -> tuple[float | None, float, int, float]:
    """(seconds from the run's start to the first report at ``target``, best val_acc, steps run,
    seconds to the first report at the run's best val_acc)."""
    from scalehp.results.store import read_results

    results = read_results(run_dir)
    plan = next(iter(results.plans.values()))
    start = dt.datetime.fromisoformat(plan["created_at"])
    reports = results.table("reports").to_pandas()
    hits = reports[reports["metric_val_acc"] >= target]
    first = None if hits.empty else (hits["time"].min().to_pydatetime() - start).total_seconds()
    best = float(reports["metric_val_acc"].max())
    at_best = reports[reports["metric_val_acc"] >= best]["time"].min().to_pydatetime()
    return first, best, len(reports), (at_best - start).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.97, help="validation accuracy to reach")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="round r draws its samples with seed + r")
    args = parser.parse_args(argv)

    from scalehp.runner import run

    header(
        f"digits: ASHA vs FIFO, {args.samples} random samples x {args.max_steps} steps, "
        f"target val_acc {args.target}, {args.rounds} round(s)"
    )
    ray_local()
    found: dict[str, list[tuple[float | None, float, float, int, float]]] = {"asha": [], "fifo": []}
    with tempfile.TemporaryDirectory(prefix="scalehp-digits-") as tmp:
        for r in range(args.rounds):
            for name in ("asha", "fifo") if r % 2 == 0 else ("fifo", "asha"):
                exp = experiment(name, args.samples, args.max_steps, args.seed + r)
                start = time.perf_counter()
                summary = run(exp, results=Path(tmp) / f"{name}-{r}")
                wall = time.perf_counter() - start
                first, best, steps, to_best = time_to_target(Path(summary.path), args.target)
                found[name].append((first, wall, best, steps, to_best))
                reached = f"{first:7.1f} s" if first is not None else "not reached"
                print(
                    f"round {r + 1}: {name:<4}  seed {args.seed + r}  to target {reached:>11}  "
                    f"to best {to_best:5.1f} s  whole run {wall:6.1f} s  "
                    f"best val_acc {best:.4f}  {steps} steps run   ({load()})",
                    flush=True,
                )

    print()
    medians = {}
    for name, rows in found.items():
        firsts = [f for f, *_ in rows if f is not None]
        medians[name] = statistics.median(firsts) if len(firsts) == len(rows) else None
        whole = statistics.median(row[1] for row in rows)
        to_best = statistics.median(row[4] for row in rows)
        best = statistics.median(row[2] for row in rows)
        epochs = sum(row[3] for row in rows)
        shown = f"{medians[name]:.1f} s" if medians[name] is not None else "not reached in every round"
        print(
            f"{name:<4}  median time to val_acc >= {args.target}: {shown:<28} "
            f"to the run's best: {to_best:.1f} s (median best {best:.4f})  whole run {whole:.1f} s  "
            f"{epochs} steps in all"
        )
    if medians["asha"] and medians["fifo"]:
        ratio = medians["fifo"] / medians["asha"]
        if ratio >= 1:
            print(f"ASHA reaches the target {ratio:.2f}x sooner than FIFO")
        else:
            print(f"FIFO reaches the target {1 / ratio:.2f}x sooner than ASHA")
    to_best = {name: statistics.median(row[4] for row in rows) for name, rows in found.items()}
    if to_best["asha"] > 0 and to_best["fifo"] > 0:
        ratio = to_best["fifo"] / to_best["asha"]
        faster, slower = ("ASHA", "FIFO") if ratio >= 1 else ("FIFO", "ASHA")
        print(f"{faster} reaches its run's best {max(ratio, 1 / ratio):.2f}x sooner than {slower} (medians)")
    whole = {name: statistics.median(row[1] for row in rows) for name, rows in found.items()}
    steps = {name: statistics.median(row[3] for row in rows) for name, rows in found.items()}
    print(
        f"ASHA runs {steps['fifo'] / steps['asha']:.2f}x fewer steps and finishes the run "
        f"{whole['fifo'] / whole['asha']:.2f}x sooner"
    )
    print(f"# finished at {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
