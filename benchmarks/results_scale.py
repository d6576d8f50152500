"""Is analysis of a big results root still interactive? 10 million report rows, timed.

Writes a results root through the sink's own writer (``build_table`` for the contract's
column types, ``write_part`` for atomic part files), then times what a user does with it:

* ``read_results(root).table("reports")``: every part, schemas unified, duplicates dropped
* the best value per trial and the top 10, with pyarrow (group by) and with DuckDB (``scalehp sql``)
* the leaderboard over the trials table, and anytime performance (best so far) with pandas

    python benchmarks/results_scale.py                      # 10M rows (about 1 GB in memory)
    python benchmarks/results_scale.py --rows 200000 --runs 2 --trials 100   # a quick look
    python benchmarks/results_scale.py --rows 1000000 --ray   # and next to ray.tune.ExperimentAnalysis

``--ray`` also writes the same rows as Ray Tune experiments (an ``experiment_state-*.json`` per
run, a ``result.json`` per trial, as Ray writes them) and times loading and ranking them with
``ExperimentAnalysis`` next to scalehp's two ways (BENCHMARKS.md has the figures: at 10M rows
144.5 s for Ray's loader, 3.7 s for scalehp loading every row, 0.02 s from the trials table).

Figures are printed; nothing here is a test (tests/test_benchmarks.py runs a tiny size).

Measured 2026-11-29 on a 2-CPU VM shared with other test runs (load average 22, so wall
times are several times the CPU times; 10 runs x 1000 trials x 1000 steps, 251 MB, 100 parts)::

    step                                                   wall        cpu
    read_results(root).table('reports')  (pyarrow, dedup)  45.44 s   10.72 s
    best per trial + top 10  (pyarrow group_by)             1.56 s    0.34 s
    leaderboard(trials)  (pandas)                           0.37 s    0.03 s
    DuckDB: views + best per trial + top 10  (scalehp sql) 12.80 s    2.83 s
    DuckDB: count(*), avg loss per run at the last step     0.11 s    0.09 s
    anytime(best so far over steps)  (pandas, all rows)    13.52 s    3.11 s

Ranking needs no report row at all (the trials table holds each trial's best value), and
SQL reads only the columns a query names; loading all 10M rows into memory is the slow path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's scalehp, not an installed one

from scalehp.results.sink import build_table, write_part  # noqa: E402

PARAMS = [pa.field("param_lr", pa.float64()), pa.field("param_width", pa.int64()), pa.field("param_opt", pa.string())]
T0 = 1_767_225_600.0  # 2026-01-01


def make_root(root: Path, rows: int, runs: int, trials: int, part_rows: int, seed: int = 0) -> dict[str, float]:
    """Write ``runs`` runs of ``trials`` trials with ``rows`` reports in all; returns sizes."""
    rng = np.random.default_rng(seed)
    steps = max(1, rows // (runs * trials))
    sample = {
        "run_id": "r",
        "experiment": "scale",
        "trial_id": "t",
        "step": 1,
        "time": T0,
        "elapsed_s": 1.0,
        "param_lr": 0.1,
        "param_width": 8,
        "param_opt": "adam",
        "metric_loss": 1.0,
        "metric_acc": 0.5,
    }
    schema = build_table("reports", [sample], PARAMS).schema
    parts = 0
    for r in range(runs):
        run_id = f"run-{r:03d}"
        run_dir = root / "scale" / run_id
        run_dir.mkdir(parents=True)
        plan = {
            "run_id": run_id,
            "created_at": "2026-01-01T00:00:00+00:00",
            "trials": trials,
            "searcher": "random",
            "scheduler": "fifo",
            "columns": {"lr": "param_lr", "width": "param_width", "opt": "param_opt"},
            "experiment": {"name": "scale", "metric": {"name": "loss", "mode": "min"}, "space": {}},
        }
        (run_dir / "plan.json").write_text(json.dumps(plan))
        lr = 10 ** rng.uniform(-4, -1, trials)
        width = rng.integers(8, 512, trials)
        opt = rng.choice(["adam", "sgd"], trials)
        trial_ids = np.array([f"t{t:05d}" for t in range(trials)], dtype=object)
        # rows in the order a run reports them: step by step, all trials
        t_index = np.tile(np.arange(trials), steps)
        step = np.repeat(np.arange(1, steps + 1), trials)
        loss = (np.log10(lr[t_index]) + 2.5) ** 2 + 1.0 / step + rng.normal(0, 0.01, len(step))
        when = T0 + r * 86400 + np.arange(len(step)) * 0.01
        for start in range(0, len(step), part_rows):
            s = slice(start, start + part_rows)
            n = len(step[s])
            columns = {
                "run_id": pa.array([run_id] * n),
                "experiment": pa.array(["scale"] * n),
                "trial_id": pa.array(trial_ids[t_index[s]]),
                "step": pa.array(step[s]),
                "time": pa.array((when[s] * 1e6).astype("int64")).cast(pa.timestamp("us", tz="UTC")),
                "elapsed_s": pa.array(step[s] * 1.0),
                "param_lr": pa.array(lr[t_index[s]]),
                "param_width": pa.array(width[t_index[s]]),
                "param_opt": pa.array(opt[t_index[s]].astype(object)),
                "metric_loss": pa.array(loss[s]),
                "metric_acc": pa.array(1.0 - loss[s] / 10),
            }
            table = [columns.get(f.name, pa.nulls(n, f.type)) for f in schema]  # e.g. node_id: none here
            write_part(run_dir / "reports", pa.table(table, schema=schema))
            parts += 1
        best = loss.reshape(steps, trials).min(axis=0)
        best_step = loss.reshape(steps, trials).argmin(axis=0) + 1
        final = loss.reshape(steps, trials)[-1]
        trial_rows = [
            {
                "run_id": run_id,
                "experiment": "scale",
                "trial_id": trial_ids[t],
                "status": "completed",
                "steps": steps,
                "best_value": float(best[t]),
                "best_step": int(best_step[t]),
                "retries": 0,
                "started_at": T0,
                "ended_at": T0,
                "param_lr": float(lr[t]),
                "param_width": int(width[t]),
                "param_opt": str(opt[t]),
                "metric_loss": float(final[t]),
            }
            for t in range(trials)
        ]
        write_part(run_dir / "trials", build_table("trials", trial_rows, PARAMS))
    size = sum(f.stat().st_size for f in root.rglob("*.parquet"))
    return {"rows": runs * trials * steps, "parts": parts, "mb": size / 1e6}


@contextmanager
def timed(figures: list, what: str):
    start, cpu = time.perf_counter(), time.process_time()
    out: dict = {}
    yield out
    figures.append((what, time.perf_counter() - start, time.process_time() - cpu, out.get("note", "")))


def measure(root: Path) -> list[tuple[str, float, float, str]]:
    from scalehp.analysis.curves import anytime
    from scalehp.analysis.tables import leaderboard
    from scalehp.results.sql import connect
    from scalehp.results.store import read_results

    figures: list[tuple[str, float, float, str]] = []
    with timed(figures, "read_results(root).table('reports')  (pyarrow, dedup)") as note:
        results = read_results(root)
        reports = results.table("reports")
        note["note"] = f"{reports.num_rows:,} rows, {len(results.runs)} runs"
    with timed(figures, "best per trial + top 10  (pyarrow group_by)") as note:
        best = reports.group_by(["run_id", "trial_id"]).aggregate([("metric_loss", "min")])
        top = best.take(pc.sort_indices(best, sort_keys=[("metric_loss_min", "ascending")])[:10])
        note["note"] = f"{best.num_rows:,} trials; best {top['metric_loss_min'][0].as_py():.4f}"
    with timed(figures, "leaderboard(trials)  (pandas)") as note:
        board = leaderboard(results.trials, "min", top=10)
        note["note"] = f"best {board['best_value'].iloc[0]:.4f} ({board['run_id'].iloc[0]}/{board['trial_id'].iloc[0]})"
    with timed(figures, "DuckDB: views + best per trial + top 10  (scalehp sql)") as note:
        con = connect(root)
        rows = con.execute(
            "SELECT run_id, trial_id, min(metric_loss) AS best FROM reports GROUP BY ALL ORDER BY best LIMIT 10"
        ).fetchall()
        note["note"] = f"best {rows[0][2]:.4f} ({rows[0][0]}/{rows[0][1]})"
    with timed(figures, "DuckDB: count(*), avg loss per run at the last step") as note:
        n = con.execute("SELECT count(*) FROM reports").fetchone()[0]
        con.execute(
            "SELECT run_id, avg(metric_loss) FROM reports WHERE step = (SELECT max(step) FROM reports) GROUP BY 1"
        ).fetchall()
        note["note"] = f"{n:,} rows"
    with timed(figures, "anytime(best so far over steps)  (pandas, all rows)") as note:
        frame = reports.select(["run_id", "time", "metric_loss"]).to_pandas()
        curve = anytime(frame, "loss", "min", by="steps")
        note["note"] = f"{len(curve):,} points"
    return figures


def write_ray_experiments(root: Path, ray_root: Path) -> dict[str, float]:
    """Write the same report rows in the layout Ray Tune leaves: one experiment folder per run
    with an ``experiment_state-*.json`` (the trials, as ``TuneController.save_to_dir`` writes
    them) and one folder per trial holding ``result.json``, a JSON line per report with the
    keys Ray's function trainables add (as ``JsonLoggerCallback`` writes them)."""
    from ray.train._internal.storage import StorageContext
    from ray.tune.execution.placement_groups import PlacementGroupFactory
    from ray.tune.experiment import Trial
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from scalehp.results.store import read_results

    results = read_results(root)
    reports = results.table("reports").sort_by(
        [("run_id", "ascending"), ("trial_id", "ascending"), ("step", "ascending")]
    )
    files = 0
    for run_id in sorted(set(reports["run_id"].to_pylist())):
        run = reports.filter(pc.equal(reports["run_id"], run_id)).to_pydict()
        trials: list = []
        n = len(run["step"])
        start = 0
        while start < n:
            tid = run["trial_id"][start]
            end = start
            while end < n and run["trial_id"][end] == tid:
                end += 1
            config = {"lr": run["param_lr"][start], "width": run["param_width"][start], "opt": run["param_opt"][start]}
            storage = StorageContext(storage_path=str(ray_root), experiment_dir_name=run_id, trial_dir_name=f"fn_{tid}")
            trial = Trial("fn", config=config, trial_id=tid, storage=storage, stub=True)
            trial_dir = Path(storage.trial_fs_path)
            trial_dir.mkdir(parents=True)
            lines = []
            for i in range(start, end):
                step = run["step"][i]
                result = {
                    "loss": run["metric_loss"][i],
                    "acc": run["metric_acc"][i],
                    "timestamp": int(run["time"][i].timestamp()),
                    "checkpoint_dir_name": None,
                    "done": i == end - 1,
                    "training_iteration": step,
                    "trial_id": tid,
                    "date": run["time"][i].strftime("%Y-%m-%d_%H-%M-%S"),
                    "time_this_iter_s": 1.0,
                    "time_total_s": run["elapsed_s"][i],
                    "pid": 4242,
                    "hostname": "bench",
                    "node_ip": "127.0.0.1",
                    "config": config,
                    "time_since_restore": run["elapsed_s"][i],
                    "iterations_since_restore": step,
                }
                lines.append(json.dumps(result))
            (trial_dir / "result.json").write_text("\n".join(lines) + "\n")
            files += 1
            trial.run_metadata.last_result = result
            trial.placement_group_factory = PlacementGroupFactory([{"CPU": 1}])
            trial.status = Trial.TERMINATED
            trials.append(trial)
            start = end
        state = {
            "trial_data": [t.get_json_state() for t in trials],
            "runner_data": {},
            "stats": {"start_time": T0},
        }
        (ray_root / run_id / "experiment_state-2026-01-01_00-00-00.json").write_text(
            json.dumps(state, cls=TuneFunctionEncoder)
        )
    size = sum(f.stat().st_size for f in ray_root.rglob("*.json"))
    return {"trials": files, "mb": size / 1e6}


def compare_ray(root: Path, ray_root: Path) -> list[tuple[str, float, float, str]]:
    """Load and rank the same rows both ways: scalehp's results root and Ray's loader."""
    from ray.tune import ExperimentAnalysis  # imported before timing: Ray's import is not counted

    from scalehp.analysis.tables import leaderboard
    from scalehp.results.store import read_results

    figures: list[tuple[str, float, float, str]] = []
    with timed(figures, "scalehp: read_results + all reports + best per trial + top 10") as note:
        results = read_results(root)
        reports = results.table("reports")
        best = reports.group_by(["run_id", "trial_id"]).aggregate([("metric_loss", "min")])
        top = best.take(pc.sort_indices(best, sort_keys=[("metric_loss_min", "ascending")])[:10])
        note["note"] = f"{reports.num_rows:,} rows; best {top['metric_loss_min'][0].as_py():.6f}"
    with timed(figures, "scalehp: read_results + leaderboard(trials)") as note:
        results = read_results(root)
        board = leaderboard(results.trials, "min", top=10)
        note["note"] = f"best {board['best_value'].iloc[0]:.6f}"
    with timed(figures, "ray: ExperimentAnalysis per run + dataframe(loss, min) + top 10") as note:
        frames = []
        rows = 0
        for run_dir in sorted(p for p in ray_root.iterdir() if p.is_dir()):
            analysis = ExperimentAnalysis(str(run_dir), default_metric="loss", default_mode="min")
            rows += sum(len(df) for df in analysis.trial_dataframes.values())
            frames.append(analysis.dataframe(metric="loss", mode="min"))
        import pandas as pd

        ray_top = pd.concat(frames).nsmallest(10, "loss")
        note["note"] = f"{rows:,} rows; best {ray_top['loss'].iloc[0]:.6f}"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="report rows in all")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=1000, help="trials per run")
    parser.add_argument("--part-rows", type=int, default=100_000, help="rows per part file")
    parser.add_argument("--root", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated root")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="also write the rows as Ray Tune experiments and load them with ray.tune.ExperimentAnalysis",
    )
    args = parser.parse_args()

    root = args.root or Path(tempfile.mkdtemp(prefix="scalehp-bench-"))
    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"{root} is not empty; give an empty or new folder")
    cleanup: list[Path] = []
    try:
        start = time.perf_counter()
        sizes = make_root(root, args.rows, args.runs, args.trials, args.part_rows)
        print(
            f"wrote {sizes['rows']:,} report rows in {sizes['parts']} part files ({sizes['mb']:.0f} MB) "
            f"under {root} in {time.perf_counter() - start:.1f} s"
        )
        figures = measure(root)
        width = max(len(w) for w, _, _, _ in figures)
        print(
            f"{'step'.ljust(width)}  {'wall':>9}  {'cpu':>9}  (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cpus)"
        )
        for what, seconds, cpu, note in figures:
            print(f"{what.ljust(width)}  {seconds:7.2f} s  {cpu:7.2f} s  {note}")
        total, cpu = sum(f[1] for f in figures), sum(f[2] for f in figures)
        print(f"{'total'.ljust(width)}  {total:7.2f} s  {cpu:7.2f} s")
        if args.ray:
            ray_root = Path(tempfile.mkdtemp(prefix="scalehp-bench-ray-"))
            cleanup.append(ray_root)
            start = time.perf_counter()
            ray_sizes = write_ray_experiments(root, ray_root)
            print(
                f"wrote the same rows as {args.runs} Ray Tune experiments, {ray_sizes['trials']:,} trial folders "
                f"with result.json ({ray_sizes['mb']:.0f} MB) in {time.perf_counter() - start:.1f} s"
            )
            versus = compare_ray(root, ray_root)
            width = max(len(w) for w, _, _, _ in versus)
            print(f"{'load and rank'.ljust(width)}  {'wall':>9}  {'cpu':>9}  (load average {os.getloadavg()[0]:.1f})")
            for what, seconds, cpu, note in versus:
                print(f"{what.ljust(width)}  {seconds:7.2f} s  {cpu:7.2f} s  {note}")
            ray_wall, ray_cpu = versus[2][1], versus[2][2]
            for what, seconds, cpu, _ in versus[:2]:
                print(
                    f"ray / {what.split(': ', 1)[1]}: {ray_wall / seconds:.1f}x wall, {ray_cpu / max(cpu, 1e-6):.1f}x cpu"
                )
    finally:
        if not args.keep and args.root is None:
            shutil.rmtree(root, ignore_errors=True)
        for path in cleanup if not args.keep else []:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
