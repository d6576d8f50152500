"""Many tiny trials in one run on embedded Ray: wall time, driver memory, files per trial.

``scalehp.runner.run`` starts its own local Ray (as ``scalehp run`` does) and runs N
one-step trials (FIFO, random search). Printed afterwards:

* wall time and trials per second;
* the driver's peak resident memory (``resource.getrusage``: this process, Ray's driver
  core worker included; Ray's raylet, GCS and workers are other processes), and with
  ``--tracemalloc`` the peak of Python allocations on the driver (slower: it traces all);
* files written in the run folder per trial, checkpoints aside, by kind.

    python benchmarks/scale.py                    # 1,000 trials
    python benchmarks/scale.py --trials 10000     # the full size
"""

from __future__ import annotations

import argparse
import collections
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load  # noqa: E402


def count_files(run_dir: Path) -> collections.Counter:
    """Files in a run folder by kind, checkpoint folders excluded."""
    kinds: collections.Counter = collections.Counter()
    for path in run_dir.rglob("*"):
        if not path.is_file() or any(part.startswith("checkpoint_") for part in path.parts):
            continue
        rel = path.relative_to(run_dir)
        if rel.parts[0] == "ray":
            kinds["ray: " + (path.name if len(rel.parts) == 2 else "per-trial " + path.name)] += 1
        elif path.suffix == ".parquet":
            kinds[f"parquet: {rel.parts[0]}"] += 1
        else:
            kinds[str(rel)] += 1
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--root", type=Path, help="results root (default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    from scalehp import load_experiment
    from scalehp.runner import run

    header(f"scale: {args.trials:,} one-step trials in one run on embedded Ray")
    experiment = load_experiment(
        {
            "name": "scale",
            "trainable": "benchmarks.trainables:one_step",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": args.trials, "max_steps": 1},
            "space": {"x": {"float": [0.0, 1.0]}},
            "search": {"algorithm": "random"},
            "scheduler": "fifo",
            "seed": 0,
        }
    )
    before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="scalehp-scale-") as tmp:
        root = args.root or Path(tmp)
        if args.tracemalloc:
            tracemalloc.start()
        start = time.perf_counter()
        summary = run(experiment, results=root)
        wall = time.perf_counter() - start
        traced = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kinds = count_files(Path(summary.path))
        folders = sum(1 for p in Path(summary.path).rglob("*") if p.is_dir())
    total = sum(kinds.values())
    print(f"trials           {summary.trials:,} ({summary.completed:,} completed, {summary.errors} errors)")
    print(f"wall time        {wall:.1f} s, of which Tuner.fit {summary.elapsed_s:.1f} s (the rest: starting Ray)")
    print(
        f"                 {summary.trials / summary.elapsed_s:.1f} trials/s, {1000 * summary.elapsed_s / args.trials:.1f} ms/trial in fit"
    )
    print(f"driver peak RSS  {peak_kb / 1024:.0f} MB   (before the run: {before_kb / 1024:.0f} MB)")
    if traced is not None:
        print(f"driver peak Python allocations (tracemalloc)  {traced / 2**20:.0f} MB")
    print(f"files            {total:,} = {total / summary.trials:.3f} per trial (checkpoints aside)")
    for kind, n in kinds.most_common():
        print(f"  {n:8,}  {kind}")
    print(f"folders          {folders:,}")
    print(f"# finished at {load()}")
    if summary.completed != args.trials:
        print(f"error: {summary.completed} of {args.trials} trials completed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
