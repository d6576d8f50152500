"""Runs' Parquet written through the real sink, for the analysis tests (no Ray needed).

Each function simulates a tuning run with known answers (which param drives the metric,
which trial is best, who exploited whom) and writes it exactly as the runner does: a
``plan.json`` and rows fed to :class:`scalehp.results.sink.ParquetSink`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path

import pyarrow as pa

from scalehp.results.sink import ParquetSink

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()


def write_plan(run_dir: Path, run_id: str, experiment: str, metric: str, mode: str, space: dict, **extra) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = {
        "run_id": run_id,
        "created_at": "2026-01-01T00:00:00+00:00",
        "trials": extra.pop("trials", None),
        "searcher": extra.pop("searcher", "random"),
        "scheduler": extra.pop("scheduler", "fifo"),
        "columns": {name: f"param_{name}" for name in space},
        "experiment": {"name": experiment, "metric": {"name": metric, "mode": mode}, "space": space},
        **extra,
    }
    (run_dir / "plan.json").write_text(json.dumps(plan))


QUAD_SPACE = {"x": {"float": [-1.0, 1.0]}, "noise": {"float": [0.0, 1.0]}, "opt": {"choice": ["adam", "sgd"]}}
QUAD_FIELDS = [
    pa.field("param_x", pa.float64()),
    pa.field("param_noise", pa.float64()),
    pa.field("param_opt", pa.string()),
]


def quad_loss(x: float, step: int) -> float:
    return (x - 0.3) ** 2 + 1.0 / step


def quad_run(
    root: Path,
    run_id: str,
    seed: int,
    trials: int = 24,
    max_steps: int = 9,
    asha: bool = True,
    extra_metric: bool = False,
    retry: bool = False,
) -> Path:
    """``loss = (x - 0.3)**2 + 1/step``: x drives the metric, noise and opt do not.

    With ``asha``, rungs at steps 1 and 3 stop trials above the median of earlier trials'
    values at that rung, recorded as events. With ``retry`` the first trial's first steps are
    written twice (a retried trial), in a later part file.
    """
    rng = random.Random(seed)
    run_dir = root / "quad" / run_id
    write_plan(run_dir, run_id, "quad", "loss", "min", QUAD_SPACE, trials=trials, scheduler="asha" if asha else "fifo")
    sink = ParquetSink(run_dir, QUAD_FIELDS, flush_rows=40, flush_seconds=1e9)
    keys = {"run_id": run_id, "experiment": "quad"}
    seen: dict[int, list[float]] = {1: [], 3: []}
    clock = T0 + seed * 1000
    for t in range(trials):
        trial_id = f"t{t:03d}"
        params = {
            "param_x": rng.uniform(-1, 1),
            "param_noise": rng.uniform(0, 1),
            "param_opt": rng.choice(["adam", "sgd"]),
        }
        best, best_step, status = None, None, "completed"
        started = clock
        for step in range(1, max_steps + 1):
            clock += 0.5
            loss = quad_loss(params["param_x"], step)
            metrics = {"metric_loss": loss}
            if extra_metric:
                metrics["metric_acc"] = 1.0 - loss / 3
            sink.add(
                "reports",
                {
                    **keys,
                    "trial_id": trial_id,
                    "step": step,
                    "time": clock,
                    "elapsed_s": clock - started,
                    **params,
                    **metrics,
                },
            )
            if best is None or loss < best:
                best, best_step = loss, step
            if asha and step in seen and step < max_steps:
                earlier = sorted(seen[step])
                cutoff = earlier[len(earlier) // 2] if earlier else None
                stop = cutoff is not None and loss > cutoff
                seen[step].append(loss)
                sink.add(
                    "events",
                    {
                        **keys,
                        "trial_id": trial_id,
                        "time": clock,
                        "step": step,
                        "scheduler": "asha",
                        "action": "stop" if stop else "continue",
                        "rung": step,
                        "value": loss,
                        "cutoff": cutoff,
                    },
                )
                if stop:
                    status = "stopped"
                    break
        sink.add(
            "trials",
            {
                **keys,
                "trial_id": trial_id,
                "status": status,
                "error": None,
                "steps": step,
                "best_value": best,
                "best_step": best_step,
                "retries": 0,
                "node": "127.0.0.1",
                "started_at": started,
                "ended_at": clock,
                **params,
                **metrics,
            },
        )
    sink.flush()
    if retry:  # the same rows again, written later: must never show twice
        again = ParquetSink(run_dir, QUAD_FIELDS)
        import pyarrow.parquet as pq

        first = sorted((run_dir / "reports").glob("part-*.parquet"))[0]
        for row in pq.read_table(first).to_pylist()[:3]:
            again.add("reports", row)
        again.close()
    return run_dir


PBT_SPACE = {"lr": {"float": [1e-4, 1.0], "log": True}}
PBT_FIELDS = [pa.field("param_lr", pa.float64())]


def pbt_run(root: Path, run_id: str = "pbt-1", trials: int = 6, max_steps: int = 12, interval: int = 4) -> Path:
    """A PBT run: score grows fastest at lr = 0.01; every ``interval`` steps the worst third
    copies the best third's state (exploit) and multiplies the copied lr by 0.8 or 1.25."""
    rng = random.Random(7)
    run_dir = root / "pbt-demo" / run_id
    write_plan(run_dir, run_id, "pbt-demo", "score", "max", PBT_SPACE, trials=trials, scheduler="pbt")
    sink = ParquetSink(run_dir, PBT_FIELDS, flush_rows=25, flush_seconds=1e9)
    keys = {"run_id": run_id, "experiment": "pbt-demo"}
    lrs = {f"p{t}": 10 ** rng.uniform(-4, 0) for t in range(trials)}
    score = dict.fromkeys(lrs, 0.0)
    best = dict.fromkeys(lrs, -math.inf)
    best_step = dict.fromkeys(lrs, 0)
    clock = T0
    for step in range(1, max_steps + 1):
        for trial_id in lrs:
            clock += 0.25
            score[trial_id] += 1.0 - abs(math.log10(lrs[trial_id]) + 2.0) / 2.0
            sink.add(
                "reports",
                {
                    **keys,
                    "trial_id": trial_id,
                    "step": step,
                    "time": clock,
                    "elapsed_s": step * 1.0,
                    "param_lr": lrs[trial_id],
                    "metric_score": score[trial_id],
                },
            )
            if score[trial_id] > best[trial_id]:
                best[trial_id], best_step[trial_id] = score[trial_id], step
        if step % interval == 0 and step < max_steps:
            ranked = sorted(lrs, key=lambda t: score[t], reverse=True)
            third = max(1, trials // 3)
            for loser, donor in zip(ranked[-third:], ranked[:third]):
                # as the PBT recorder writes it: exploit (own -> donor's params), then explore
                # (donor's -> mutated params), both with the donor's checkpoint step
                old = lrs[loser]
                lrs[loser] = lrs[donor] * rng.choice([0.8, 1.25])
                score[loser] = score[donor]
                event = {
                    **keys,
                    "trial_id": loser,
                    "time": clock,
                    "step": step,
                    "scheduler": "pbt",
                    "value": score[loser],
                    "donor_trial_id": donor,
                    "donor_step": step,
                }
                sink.add(
                    "events",
                    {
                        **event,
                        "action": "exploit",
                        "old_params": json.dumps({"lr": old}),
                        "new_params": json.dumps({"lr": lrs[donor]}),
                    },
                )
                sink.add(
                    "events",
                    {
                        **event,
                        "action": "explore",
                        "old_params": json.dumps({"lr": lrs[donor]}),
                        "new_params": json.dumps({"lr": lrs[loser]}),
                    },
                )
    for trial_id in lrs:
        sink.add(
            "trials",
            {
                **keys,
                "trial_id": trial_id,
                "status": "completed",
                "error": None,
                "steps": max_steps,
                "best_value": best[trial_id],
                "best_step": best_step[trial_id],
                "retries": 0,
                "node": "127.0.0.1",
                "started_at": T0,
                "ended_at": clock,
                "param_lr": lrs[trial_id],
                "metric_score": score[trial_id],
            },
        )
    sink.close()
    return run_dir


def make_root(root: Path) -> Path:
    """Two ASHA runs and one FIFO run of ``quad`` (one with an extra metric and a retry), and a PBT run."""
    quad_run(root, "quad-1", seed=1)
    quad_run(root, "quad-2", seed=2, retry=True)
    quad_run(root, "quad-3", seed=3, asha=False, extra_metric=True, trials=10)
    pbt_run(root)
    return root
