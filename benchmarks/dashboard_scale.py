"""Is the dashboard still live at 100,000 trials and 10 million report rows? Timed in a real browser.

Writes a results root through the sink's own writer (``benchmarks/results_scale.py``: one run,
its reports step by step over every trial, 100,000-row part files, a ``trials`` table) plus
an ASHA-like ``events`` table (one decision per trial at rung 1), then:

* starts the dashboard (``Board`` reads every part once: the startup cost) on loopback;
* times each JSON view twice (first answer, then from the digests);
* opens the page in headless Chromium: **first paint** is the end of the page's first render
  (the overview: progress, best trial, best so far over wall time and over steps), in ms since
  navigation started, as the page records it (``window.scalehpRenders``); the same for the
  learning curves and the trials table on a tab switch;
* lands new parts (1,000 more trials of 10 steps, their ``trials`` rows) while the page is
  open: **refresh** is the page's render that shows them, and the end-to-end delay from the
  last part landing to the page showing the new count (this one includes up to 1 s of the
  page's poll interval).

    python benchmarks/dashboard_scale.py                          # 100,000 trials, 10M rows
    python benchmarks/dashboard_scale.py --trials 2000 --rows 100000   # a quick look

Figures are printed; nothing here is a test (tests/test_benchmarks.py runs a tiny size).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's scalehp, not an installed one
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_scale import PARAMS, T0, make_root  # noqa: E402

from scalehp.results.sink import build_table, write_part  # noqa: E402

VIEWS = ("summary", "best", "curves", "trials", "rungs", "parallel", "importance")


def add_events(run_dir: Path, trials: int, seed: int = 0) -> None:
    """One ASHA decision per trial at rung 1 (a third promoted), as a run with ASHA records them."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "run_id": run_dir.name, "experiment": "scale", "trial_id": f"t{t:05d}", "time": T0 + t * 0.01, "step": 1,
            "scheduler": "asha", "action": "continue" if rng.random() < 1 / 3 else "stop", "rung": 1,
            "value": float(rng.random()), "cutoff": 0.5,
        }
        for t in range(trials)
    ]  # fmt: skip
    write_part(run_dir / "events", build_table("events", rows, PARAMS))


def land_more(run_dir: Path, first: int, trials: int, steps: int) -> None:
    """``trials`` new trials of ``steps`` reports each and their rows, as a live run's sink writes them."""
    rng = np.random.default_rng(first)
    now = time.time()
    reports, ended = [], []
    for t in range(first, first + trials):
        lr, width, opt = float(10 ** rng.uniform(-4, -1)), int(rng.integers(8, 512)), str(rng.choice(["adam", "sgd"]))
        losses = [(np.log10(lr) + 2.5) ** 2 + 1.0 / s for s in range(1, steps + 1)]
        for s, loss in enumerate(losses, 1):
            reports.append({"run_id": run_dir.name, "experiment": "scale", "trial_id": f"t{t:05d}", "step": s,
                            "time": now + s * 1e-3, "elapsed_s": float(s), "param_lr": lr, "param_width": width,
                            "param_opt": opt, "metric_loss": loss, "metric_acc": 1 - loss / 10})  # fmt: skip
        ended.append({"run_id": run_dir.name, "experiment": "scale", "trial_id": f"t{t:05d}", "status": "completed",
                      "steps": steps, "best_value": min(losses), "best_step": int(np.argmin(losses)) + 1, "retries": 0,
                      "started_at": now, "ended_at": now, "param_lr": lr, "param_width": width, "param_opt": opt,
                      "metric_loss": losses[-1]})  # fmt: skip
    write_part(run_dir / "reports", build_table("reports", reports, PARAMS))
    write_part(run_dir / "trials", build_table("trials", ended, PARAMS))


def _write(root: Path, rows: int, trials: int, part_rows: int, out: Any) -> None:
    out.put(make_root(root, rows, 1, trials, part_rows))
    add_events(root / "scale" / "run-000", trials)


def _written(root: Path, rows: int, trials: int, part_rows: int) -> dict:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_write, args=(root, rows, trials, part_rows, out))
    child.start()
    sizes = out.get()
    child.join()
    if child.exitcode:
        raise SystemExit(f"writing the root failed (exit {child.exitcode})")
    return sizes


def get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - start, len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=10_000_000, help="report rows in all")
    parser.add_argument("--part-rows", type=int, default=100_000)
    parser.add_argument("--root", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated root")
    args = parser.parse_args()

    from scalehp.dashboard import Board, in_thread
    from tests.browser import Browser, find_browser

    root = args.root or Path(tempfile.mkdtemp(prefix="scalehp-dashboard-"))
    figures: list[tuple[str, str]] = []
    try:
        start = time.perf_counter()
        sizes = _written(root, args.rows, args.trials, args.part_rows)  # in a child: this process's memory is the dashboard's
        run_dir = root / "scale" / "run-000"
        print(f"root        {root}: 1 run, {args.trials:,} trials, {sizes['rows']:,} report rows in {sizes['parts']} parts, "
              f"{sizes['mb']:.0f} MB (written in {time.perf_counter() - start:.1f} s)")  # fmt: skip

        start = time.perf_counter()
        board = Board(root)
        url, stop = in_thread(board, "127.0.0.1", 0)
        figures.append(("startup: every part read once (Board)", f"{time.perf_counter() - start:.2f} s"))
        held = sum(d.times.nbytes + d.keys.nbytes for s in board.states.values() for d in s.all_digests())
        held += sum(s._keyset.nbytes for s in board.states.values() if s._keyset is not None)
        figures.append(("digest arrays held (report times, (trial, step) keys)", f"{held / 1e6:.0f} MB"))
        api = f"{url}api/runs/run-000/"
        for view in VIEWS:
            first, size = get(api + view)
            again, _ = get(api + view)
            figures.append((f"GET {view}", f"{first:.3f} s, again {again:.3f} s ({size / 1e3:.1f} kB)"))
        first, _ = get(f"{url}api/runs")
        figures.append(("GET runs", f"{first:.3f} s"))
        first, _ = get(f"{url}api/version")
        figures.append(("GET version (what the page polls each second)", f"{first * 1e3:.1f} ms"))

        if find_browser() is None:
            print("no chromium: page timings skipped")
        else:
            with Browser() as browser:
                page = browser.open(url + "#run=run-000&tab=overview")
                page.wait("window.scalehpRenders && window.scalehpRenders.length > 0", 120)
                paint = page.eval("window.scalehpRenders[0].end")
                figures.append(("first paint: overview (progress, best, best so far x2)", f"{paint / 1e3:.2f} s"))
                for tab in ("curves", "trials", "scheduler"):
                    count = page.eval("window.scalehpRenders.length")
                    page.eval(f"location.hash = 'run=run-000&tab={tab}'")
                    page.wait(f"window.scalehpRenders.length > {count}", 120)
                    r = page.eval("window.scalehpRenders[window.scalehpRenders.length - 1]")
                    figures.append((f"tab switch: {tab}", f"{(r['end'] - r['start']) / 1e3:.2f} s"))
                page.eval("location.hash = 'run=run-000&tab=overview'")
                page.wait("window.scalehpRenders[window.scalehpRenders.length - 1].tab === 'overview'", 60)
                count = page.eval("window.scalehpRenders.length")
                done = args.trials + 1000
                land_more(run_dir, args.trials, 1000, 10)
                landed = time.time()
                page.wait(f"document.querySelector('nav .run .meta').textContent.startsWith('{done} ')", 120)
                seen = time.time()
                # the run list's text can change before the overview's render is recorded: wait for that too
                page.wait(f"window.scalehpRenders.length > {count}", 60)
                r = page.eval(f"window.scalehpRenders.slice({count})")
                refresh = max(x["end"] - x["start"] for x in r)
                figures.append(("refresh: the render that shows 1,000 new trials", f"{refresh / 1e3:.2f} s"))
                figures.append(("  from the parts landing to the page showing them", f"{seen - landed:.2f} s (poll every 1 s)"))
                if page.problems:
                    figures.append(("page problems", json.dumps(page.problems)[:300]))
        stop()
        figures.append(("peak RSS (the dashboard's process, the browser driver too)", f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"))
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    width = max(len(k) for k, _ in figures)
    for what, value in figures:
        print(f"{what.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
