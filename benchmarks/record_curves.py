"""Record the bundled curve banks that ``scalehp simulate --bench digits-mlp`` (or ``digits-cnn``) replays.

A bank is a scalehp run, recorded by scalehp itself: ``experiments/simulate_digits_mlp.yaml``'s
space (the torch MLP of ``experiments/trainables/digits.py`` on scikit-learn's digits, which
ships with scikit-learn: nothing is downloaded), or ``simulate_digits_cnn.yaml``'s (a small CNN,
same trainable), FIFO, random search, every trial trained to the last epoch, one CPU each.
Every epoch's validation loss and accuracy and its real time (``elapsed_s``) are in the run's
``reports`` table. The run's ``plan.json`` and its ``trials`` and ``reports`` tables (one part
each; not Ray's state) go to ``scalehp/simulator/banks/<bank>``.

    python benchmarks/record_curves.py                      # digits-mlp: 400 configs x 20 epochs (~4 min on 2 cores)
    python benchmarks/record_curves.py --bank digits-cnn --samples 2000   # 2,000 configs x 15 epochs of the CNN (~40 min)
    python benchmarks/record_curves.py --samples 40 --out /tmp/bank   # a small one elsewhere
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BANKS = ("digits-mlp", "digits-cnn")


def experiment_of(bank_name: str) -> Path:
    """The experiment file a bank is recorded from (and simulated with)."""
    return ROOT / "experiments" / f"simulate_{bank_name.replace('-', '_')}.yaml"


def bank(run_dir: Path, out: Path) -> None:
    """Copy a run's ``plan.json`` and its ``trials`` and ``reports`` tables, one part each, to ``out``."""
    from scalehp.results.sink import write_part
    from scalehp.results.store import read_table

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy2(run_dir / "plan.json", out / "plan.json")
    for table in ("trials", "reports"):
        write_part(out / table, read_table([run_dir], table))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", choices=BANKS, default=BANKS[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--out", type=Path, default=None, help="default: scalehp/simulator/banks/<bank>")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "scalehp" / "simulator" / "banks" / args.bank

    from scalehp import load_experiment
    from scalehp.runner import run

    data = load_experiment(experiment_of(args.bank)).to_dict()
    data.update(
        name=f"{args.bank}-bank",
        budget={"samples": args.samples, "max_steps": data["budget"]["max_steps"]},
        scheduler="fifo",
        search={"algorithm": "random"},
        seed=2026,
    )
    header(f"record curves: {args.samples} configs x {data['budget']['max_steps']} epochs, bank {args.bank}")
    with tempfile.TemporaryDirectory(prefix="scalehp-bank-") as tmp:
        start = time.perf_counter()
        summary = run(load_experiment({**data, "results": tmp}))
        took = time.perf_counter() - start
        if summary.completed != args.samples:
            raise SystemExit(f"only {summary.completed} of {args.samples} trials completed")
        bank(Path(summary.path), out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{summary.trials} trials in {took:.0f} s; bank {out} ({size / 1e6:.2f} MB); best val_loss {summary.best_value:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
