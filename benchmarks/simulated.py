"""Tuners compared on a simulated clock: regret over simulated time, many workers, many seeds.

``scalehp.simulator.simulate`` runs the experiment file ``--experiment`` (default
``experiments/simulate_digits_mlp.yaml``) over a curve source (default the bundled
``digits-mlp`` bank: real torch training, every epoch's time) for each combination of

* contender (``--combo``):

  - random+fifo, random+asha, random+hyperband, tpe+asha: scalehp's own searcher and
    scheduler cores (``scalehp.simulator.simulate``; Hyperband with ASHA's reduction factor);
  - topk-1epoch: the "keep the top k after one epoch" baseline: the seed's random configs
    (the very ones random+fifo draws) each train one epoch, the ``--topk`` best of them
    (default: as many as ASHA's plan expects to reach ``max_steps``) then train on to
    ``max_steps`` (:func:`topk_1epoch`);
  - syne-tune-asha: Syne Tune's own ASHA and random searcher, through its simulator
    backend, over the same table (:func:`syne_asha`); skipped, with a line saying how to
    install it, where ``syne-tune`` is not installed;

* workers: ``--workers`` (default 8, 64, 1000);
* seeds: ``--seeds`` (default 30), each a different random draw of configs.

Printed per combination: the normalised regret (best value so far minus the bank's best final
value, divided by the median final value's distance from it: 0 is the best config of the bank
trained to the end, 1 the median one) at a few simulated times, as the interquartile
mean over seeds with a bootstrap 95% interval; and how much sooner ASHA reaches the best value
FIFO ends with (median over seeds, same seed: the same configs), with the seeds where it never
does. The simulations' real time is printed too, and Syne Tune's next to scalehp's ASHA for
the same study. The regret curves (IQM and its bootstrap band, a panel per worker count) go
to ``--out`` as ``regret.png`` and ``report.html`` (the table and the picture in one page).

``--speed`` runs one ASHA study instead (random search, ``--workers`` default 1,000, up to
``--hours`` of simulated time or ``--samples`` trials, whichever ends it first), scalehp and
Syne Tune each in a fresh process: real seconds, peak RSS of that process, trials and reports
simulated. Syne Tune stops at ``--cap-s`` real seconds; how far it got is printed, and any
ratio beyond what was measured is labelled as extrapolated.

    python benchmarks/simulated.py                                  # the full study
    python benchmarks/simulated.py --workers 32 --seeds 5           # a quick look
    python benchmarks/simulated.py --speed --samples 20000 --hours 1 --cap-s 300
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import heapq
import html
import json
import logging
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import header, load, versions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COMBOS = {
    "random+fifo": ({"algorithm": "random"}, "fifo"),
    "random+asha": ({"algorithm": "random"}, "asha"),
    "random+hyperband": ({"algorithm": "random"}, "hyperband"),
    "tpe+asha": ({"algorithm": "hyperopt", "initial_points": 20}, "asha"),
}
TOPK = "topk-1epoch"
SYNE = "syne-tune-asha"
CONTENDERS = [*COMBOS, TOPK, SYNE]
SYNE_INSTALL = (
    "pip install --no-deps syne-tune==0.16.0 huggingface_hub==2.4.0 dill==0.4.1 httpx2==2.16.2 httpcore2==2.16.2 "
    "anyio==4.16.0 h11==0.16.0 truststore==0.10.5"
)
"""What the Syne Tune contender needs, and no more (its own deps also pull xgboost, statsmodels and a 350 MB NCCL)."""
ASHA = {"grace_steps": 1, "reduction_factor": 3}
"""ASHA's options for every ASHA contender when the experiment file has none of its own."""

Curve = tuple[np.ndarray, np.ndarray]  # (simulated seconds, best value so far) at each report


def curve(summary, metric: str, mode: str) -> Curve:
    """(simulated seconds, best value so far) at each report of a simulated run."""
    from scalehp.results.schema import metric_column
    from scalehp.results.store import read_results
    from scalehp.simulator import START

    reports = read_results(summary.path).reports.sort_values("time", kind="stable")
    seconds = np.array([t.timestamp() - START for t in reports["time"]])
    values = reports[metric_column(reports, metric)].to_numpy(dtype=float)
    return seconds, _best_so_far(values, mode)


def _best_so_far(values: np.ndarray, mode: str) -> np.ndarray:
    return np.minimum.accumulate(values) if mode == "min" else np.maximum.accumulate(values)


def at(seconds: np.ndarray, best: np.ndarray, t: float) -> float:
    i = np.searchsorted(seconds, t, side="right") - 1
    return float(best[i]) if i >= 0 else float("nan")


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def iqm(values: list[float]) -> float:
    data = np.sort(np.asarray([v for v in values if v == v]))
    if not len(data):
        return float("nan")
    cut = len(data) // 4
    return float(np.mean(data[cut : len(data) - cut] if len(data) > 3 else data))


def bootstrap(values: list[float], rounds: int = 1000) -> tuple[float, float]:
    """The 95% interval of the IQM over ``rounds`` resamples (seeded: the same values give the same interval).

    All resamples are drawn at once; they are the very draws of ``rounds`` calls of
    ``rng.choice(data, len(data))`` on the same generator, so the interval is the one a loop gives.
    """
    data = np.asarray([v for v in values if v == v])
    if not len(data):
        return float("nan"), float("nan")
    rng = np.random.default_rng(0)
    draws = np.sort(data[rng.integers(0, len(data), size=(rounds, len(data)))], axis=1)
    cut = len(data) // 4
    kept = draws[:, cut : len(data) - cut] if len(data) > 3 else draws
    means = kept.mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _experiment(base: dict[str, Any], name: str, seed: int, search: dict[str, Any], scheduler: Any, results: str):
    from scalehp import load_experiment

    return load_experiment({**base, "name": name.replace("+", "-"), "seed": seed, "search": search,
                            "scheduler": scheduler, "results": results})


def asha_options(base: dict[str, Any]) -> dict[str, Any]:
    """The experiment file's ASHA options (grace, reduction factor, brackets), else :data:`ASHA`."""
    scheduler = base.get("scheduler")
    own = scheduler.get("asha") if isinstance(scheduler, dict) else None
    return dict(own) if own else dict(ASHA)


# --- the top-k-after-one-epoch baseline ---------------------------------------------------


def seed_configs(base: dict[str, Any], seed: int, curves) -> list[int]:
    """The curve of each config the random searcher draws for ``seed``, in its order.

    ``scalehp.runner.search.suggestions`` on the seed's random-search plan: the configs, in the
    order, that random+fifo and random+asha start for that seed.
    """
    from scalehp.compiler import compile_plan
    from scalehp.runner.search import suggestions

    configs, _ = suggestions(compile_plan(_experiment(base, TOPK, seed, {"algorithm": "random"}, "fifo", "unused")))
    return [curves.nearest(config) for _, config in configs]


def topk_1epoch(
    curves, indices: list[int], *, workers: int, k: int, max_steps: int, metric: str, mode: str
) -> Curve:
    """The top-k baseline on the simulated worker clock: (simulated seconds, best so far) at each report.

    Every config (``indices``: curves, in the searcher's order) trains its first epoch, each
    on the first worker free; once all have reported (the ranking needs every one), the ``k``
    best by that epoch's value train on from epoch 2 to ``max_steps`` (resumed, as a paused
    trial would be), each on one worker until it ends. A step takes its tabulated time; a
    worker is busy until its step ends; deciding takes no time. A report with no value for
    the metric ranks last and leaves the best so far as it is.
    """
    sign = 1.0 if mode == "min" else -1.0
    table = curves.curves
    reports: list[tuple[float, float]] = []
    free = [0.0] * max(1, min(workers, len(indices)))  # when each worker is next free (a heap)
    first: list[tuple[float, int, int]] = []  # (sign * epoch-1 value, order, curve)
    for order, index in enumerate(indices):
        start = heapq.heappop(free)
        end = start + table[index].durations[0]
        heapq.heappush(free, end)
        value = table[index].metrics[0].get(metric, math.nan)
        reports.append((end, value))
        first.append((math.inf if math.isnan(value) else sign * value, order, index))
    barrier = max(free)
    free = [barrier] * max(1, min(workers, k))
    for _, _, index in sorted(first)[:k]:
        start = heapq.heappop(free)
        for step in range(2, max_steps + 1):
            start += table[index].durations[step - 1]
            reports.append((start, table[index].metrics[step - 1].get(metric, math.nan)))
        heapq.heappush(free, start)
    reports.sort(key=lambda r: r[0])  # stable: a tie keeps the order the reports were made in
    seconds = np.array([r[0] for r in reports])
    values = np.array([r[1] for r in reports], dtype=float)
    return seconds, _best_so_far(np.where(np.isnan(values), sign * np.inf, values), mode)


def topk_default(base: dict[str, Any]) -> int:
    """k by default: the trials ASHA's own plan expects at ``max_steps`` (its last rung), so the
    baseline trains as many configs to the end as ASHA is planned to."""
    from scalehp.compiler import compile_plan

    plan = compile_plan(_experiment(base, TOPK, 0, {"algorithm": "random"}, {"asha": asha_options(base)}, "unused"))
    return plan.rungs[-1].trials


# --- Syne Tune's ASHA on the same table ---------------------------------------------------


def syne_installed() -> bool:
    try:
        import syne_tune.blackbox_repository.simulated_tabular_backend  # noqa: F401
        from syne_tune import Tuner  # noqa: F401
    except ImportError:
        return False
    return True


def syne_space(experiment) -> dict[str, Any]:
    """Syne Tune's config space for the experiment's searched params (same bounds and log scales).

    Raises:
        ValueError: a param Syne Tune has no domain for here (conditional, stepped, normal).
    """
    from syne_tune.config_space import choice, lograndint, loguniform, randint, uniform

    from scalehp.space import ChoiceParam, FloatParam, IntParam, flatten_space

    space: dict[str, Any] = {}
    for node in flatten_space(experiment.space):
        param = node.param
        if not param.searched:
            continue
        if node.when:
            raise ValueError(f"param {node.name} is conditional: no Syne Tune space is built for it here")
        if isinstance(param, FloatParam) and not param.step:
            space[node.name] = (loguniform if param.log else uniform)(param.low, param.high)
        elif isinstance(param, IntParam) and (param.step or 1) == 1:
            space[node.name] = (lograndint if param.log else randint)(param.low, param.high)
        elif isinstance(param, ChoiceParam):
            space[node.name] = choice(list(param.options))
        else:
            raise ValueError(f"param {node.name} ({param.describe()}) has no Syne Tune domain here")
    return space


ELAPSED = "elapsed_time"
FIDELITY = "epoch"


def syne_blackbox(curves, space: dict[str, Any], metric: str, max_steps: int):
    """The bank as Syne Tune's ``BlackboxTabular``, in memory: per config and epoch, the metric
    and the cumulative time (the curves' own step times summed).

    A config the table does not hold takes its curve by scalehp's nearest-tabulated-trial rule
    (``Curves.nearest``), as ``scalehp simulate`` does: Syne Tune's random searcher draws from
    the continuous space, and an exact-match lookup (the plain ``BlackboxTabular``) would fail.
    """
    import pandas as pd
    from syne_tune.blackbox_repository.blackbox_tabular import BlackboxTabular
    from syne_tune.config_space import randint

    class NearestTabular(BlackboxTabular):
        """``BlackboxTabular`` whose lookup is scalehp's nearest rule (the same curve for the same config)."""

        def _objective_function(self, configuration, fidelity=None, seed=None):
            if not isinstance(configuration, dict):
                return super()._objective_function(configuration, fidelity, seed)
            row = self.objectives_evaluations[curves.nearest(configuration), 0]
            if fidelity is None:
                return row
            return dict(zip(self.objectives_names, row[self.fidelity_map[next(iter(fidelity.values()))]]))

    names = list(space)
    hyperparameters = pd.DataFrame([{n: c.params.get(n) for n in names} for c in curves.curves], columns=names)
    evaluations = np.empty((len(curves.curves), 1, max_steps, 2))
    for i, c in enumerate(curves.curves):
        evaluations[i, 0, :, 0] = [m.get(metric, math.nan) for m in c.metrics[:max_steps]]
        evaluations[i, 0, :, 1] = np.cumsum(c.durations[:max_steps])
    return NearestTabular(
        hyperparameters=hyperparameters,
        configuration_space=space,
        fidelity_space={FIDELITY: randint(1, max_steps)},
        objectives_evaluations=evaluations,
        fidelity_values=np.arange(1, max_steps + 1),
        objectives_names=[metric, ELAPSED],
    )


def syne_asha(
    blackbox, *, metric: str, mode: str, workers: int, seed: int, trials: int, asha: dict[str, Any],
    max_steps: int, sleep_s: float, hours: float | None = None, cap_s: float | None = None,
) -> dict[str, Any]:
    """Syne Tune's own ASHA (``syne_tune.optimizer.baselines.ASHA``: random search, stopping) over
    ``blackbox`` through its simulator backend (``UserBlackboxBackend`` + ``SimulatorCallback``).

    The study is scalehp's: ``trials`` configs at most (the scheduler suggests no more),
    ``hours`` of simulated time at most, ``workers`` at once, ASHA's grace, reduction factor,
    brackets and ``max_t = max_steps``. Syne Tune's settings: ``sleep_s`` is the simulated
    time its tuner advances when every worker is busy (its ``tuner_sleep_time``); start,
    report and stop delays are 0 (scalehp has none); numpy's global generator is seeded with
    ``seed`` too (Syne Tune draws from it after its first configs, and for brackets).
    At its fastest: no tuner pickles, results written once at the end, its console output off.
    ``cap_s`` stops it after that many real seconds (the result says so).

    Returns: real seconds, the curve (simulated seconds of each report the scheduler saw, best
    so far), trials started, reports, whether it was capped, the last report's simulated time.
    """
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
    from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
    from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
    from syne_tune.constants import ST_TUNER_TIME
    from syne_tune.optimizer.baselines import ASHA as SyneASHA
    from syne_tune.tuner_callback import TunerCallback
    from syne_tune.tuner_logger import TunerLogger

    from benchmarks.common import quiet

    class Budgeted(SyneASHA):
        """Syne Tune's ASHA that suggests ``trials`` configs, then none (Syne Tune then waits for
        the running trials and ends, as scalehp does when its samples are used up)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.left = trials

        def suggest(self):
            if self.left <= 0:
                return None
            self.left -= 1
            return super().suggest()

    class Silent(TunerLogger):
        """Syne Tune's console output (a line per trial started, stopped, ...) off."""

        def __getattribute__(self, name: str) -> Any:
            if name.startswith("print_"):
                return lambda *args, **kwargs: None
            return super().__getattribute__(name)

    class Cap(TunerCallback):
        """Ends the tuning loop once ``cap_s`` real seconds have passed."""

        capped = False

        def on_tuning_start(self, tuner: Any) -> None:
            self.tuner, self.begin = tuner, time.perf_counter()

        def on_loop_end(self) -> None:
            if cap_s is not None and time.perf_counter() - self.begin > cap_s:
                self.capped = True
                self.tuner.stop_criterion = lambda status: True

    logging.getLogger("syne_tune").setLevel(logging.ERROR)  # its per-run "points_to_evaluate" warning
    np.random.seed(seed)
    start = time.perf_counter()
    backend = UserBlackboxBackend(
        blackbox=blackbox,
        elapsed_time_attr=ELAPSED,
        simulator_config=SimulatorConfig(delay_on_trial_result=0.0, delay_complete_after_final_report=0.0,
                                         delay_complete_after_stop=0.0, delay_start=0.0, delay_stop=0.0),
        tuner_sleep_time=sleep_s,
    )
    scheduler = Budgeted(
        blackbox.configuration_space, metric=metric, time_attr=FIDELITY, max_t=max_steps,
        do_minimize=mode == "min", random_seed=seed, grace_period=int(asha.get("grace_steps", 1)),
        reduction_factor=float(asha.get("reduction_factor", 3)), brackets=int(asha.get("brackets", 1)),
    )
    results, cap = SimulatorCallback(), Cap()
    tuner = Tuner(
        trial_backend=backend, scheduler=scheduler, n_workers=workers, sleep_time=0,
        stop_criterion=StoppingCriterion(max_wallclock_time=None if hours is None else hours * 3600),
        callbacks=[results, cap], tuner_name="scalehp-bench", save_tuner=False,
        results_update_interval=1e9, print_update_interval=1e9, output_logger=Silent(),
    )
    with quiet():
        tuner.run()
    real = time.perf_counter() - start
    rows = sorted(results.results, key=lambda r: r[ST_TUNER_TIME])
    timed_out = hours is not None and bool(rows) and rows[-1][ST_TUNER_TIME] > hours * 3600
    if timed_out:  # Syne Tune stops on the first reports past the limit; they are not counted
        rows = [r for r in rows if r[ST_TUNER_TIME] <= hours * 3600]
    seconds = np.array([r[ST_TUNER_TIME] for r in rows], dtype=float)
    values = np.array([r[metric] for r in rows], dtype=float)
    return {
        "real_s": real, "curve": (seconds, _best_so_far(values, mode)), "trials": tuner.tuning_status.num_trials_started,
        "reports": len(rows), "capped": cap.capped, "last_s": float(seconds[-1]) if len(seconds) else 0.0,
        "ended": "real-time cap" if cap.capped else "simulated-time limit" if timed_out else "trial budget",
    }


def syne_setup(combos: list[str], base: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Syne Tune's config space when the Syne Tune contender runs; else why it does not."""
    from scalehp import load_experiment

    if SYNE not in combos:
        return None, None
    if not syne_installed():
        return None, f"syne-tune is not installed; to run it: {SYNE_INSTALL}"
    try:
        return syne_space(load_experiment(base)), None
    except ValueError as error:
        return None, str(error)


def shortest_step(curves, max_steps: int) -> float:
    """The bank's shortest step time: Syne Tune's default ``tuner_sleep_time``, so that while every
    worker is busy its clock advances by at most one step per wait (it adds its own real time
    spent outside the backend besides, as it always does)."""
    return min(min(c.durations[:max_steps]) for c in curves.curves) or 1e-3


# --- pictures and the page -----------------------------------------------------------------


def regret_figure(panels: dict[int, dict[str, list[Curve]]], best_known: float, spread: float, points: int = 120):
    """One panel per worker count: per contender the IQM of the regret over seeds at each
    simulated time, and its bootstrap 95% band (the table's interval, computed the same way),
    on log axes (linear below 0.01), from the earliest time every seed of every contender has
    reported."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(panels), 4.2), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (workers, runs) in zip(axes, panels.items()):
        runs = {name: r for name, r in runs.items() if r}
        if not runs:
            continue
        horizon = max(s[-1] for r in runs.values() for s, _ in r if len(s))
        start = max(s[0] for r in runs.values() for s, _ in r if len(s))
        grid = np.geomspace(max(start, horizon * 1e-4), horizon, points)
        for name, r in runs.items():
            table = [[abs(at(s, b, t) - best_known) / spread for s, b in r] for t in grid]
            mid = np.array([iqm(row) for row in table])
            band = np.array([bootstrap(row) for row in table])
            line = ax.plot(grid, mid, label=name, linewidth=1.6)[0]
            ax.fill_between(grid, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.18, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=0.01)  # linear below 0.01, so a regret of 0 is drawn
        ax.set(xlabel="simulated seconds", ylabel="normalised regret (IQM, 95% band)", title=f"{workers} workers")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    return fig


def write_report(out: Path, lines: list[str], panels, best_known: float, spread: float) -> list[Path]:
    """``regret.png`` (if matplotlib is installed) and ``report.html`` (the printed table and the
    picture, embedded: one self-contained file) under ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written, image = [], ""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        lines.append("(matplotlib is not installed: no picture)")
    else:
        import io

        buffer = io.BytesIO()
        regret_figure(panels, best_known, spread).savefig(buffer, format="png")
        (out / "regret.png").write_bytes(buffer.getvalue())
        written.append(out / "regret.png")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        image = f'<img alt="normalised regret over simulated time, per worker count" src="data:image/png;base64,{data}">'
    page = (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>scalehp simulated benchmark</title>\n"
        "<style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
        "img{max-width:100%}</style></head><body>\n<h1>Tuners on a simulated clock: regret over simulated time</h1>\n"
        f"<pre>{html.escape(chr(10).join(lines))}</pre>\n{image}\n</body></html>\n"
    )
    (out / "report.html").write_text(page, encoding="utf-8")
    written.append(out / "report.html")
    return written


# --- the regret study ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", type=Path, default=ROOT / "experiments" / "simulate_digits_mlp.yaml")
    parser.add_argument("--bench", default="digits-mlp")
    parser.add_argument("--workers", type=int, nargs="+", action="extend")
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--samples", type=int, default=None, help="trials per run (default: the file's)")
    parser.add_argument("--combo", action="append", choices=CONTENDERS)
    parser.add_argument("--topk", type=int, default=None, help="k of topk-1epoch (default: ASHA's planned trials at max_steps)")
    parser.add_argument("--st-sleep", type=float, default=None,
                        help="Syne Tune's tuner_sleep_time, simulated s (default: the bank's shortest step)")
    parser.add_argument("--out", type=Path, default=None, help="folder for regret.png and report.html (default: a new temp folder)")
    parser.add_argument("--speed", action="store_true", help="the speed study (scalehp vs Syne Tune ASHA) instead")
    parser.add_argument("--hours", type=float, default=24.0, help="--speed: simulated hours at most")
    parser.add_argument("--cap-s", type=float, default=300.0, help="--speed: Syne Tune's real-time cap")
    parser.add_argument("--epoch-s", type=float, default=None,
                        help="--speed: scale every step time of the bank so that the median step takes this long")
    parser.add_argument("--speed-child", choices=["scalehp", SYNE], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from scalehp import load_experiment
    from scalehp.compiler import compile_plan
    from scalehp.simulator.curves import from_results

    base = load_experiment(args.experiment).to_dict()
    if args.samples:
        base["budget"] = {**base["budget"], "samples": args.samples}
    if args.speed_child:
        return speed_child(args, base)
    if args.speed:
        return speed(args, base)
    workers_list = args.workers or [8, 64, 1000]
    combos = args.combo or list(CONTENDERS)
    metric, mode = base["metric"]["name"], base["metric"]["mode"]
    max_steps, samples = base["budget"]["max_steps"], base["budget"]["samples"]
    curves = from_results(args.bench, compile_plan(load_experiment(base)))
    finals = [c.metrics[-1].get(metric) for c in curves.curves]
    finals = [v for v in finals if v is not None and v == v]
    best_known = min(finals) if mode == "min" else max(finals)
    middle = statistics.median(finals)  # regret 1: as good as the median config of the bank at its end
    spread = abs(middle - best_known) or 1.0
    asha = asha_options(base)
    k = args.topk or topk_default(base)
    sleep_s = args.st_sleep or shortest_step(curves, max_steps)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text)
        sys.stdout.flush()
        lines.append(text)

    space, skipped = syne_setup(combos, base)
    if skipped:
        combos.remove(SYNE)
    title = f"simulated: {', '.join(combos)} x workers {workers_list} x {args.seeds} seeds, {samples} trials each, over {curves.describe()}"
    header(title, extra=("syne-tune",))
    lines += [f"# {title}", f"# {versions(extra=('syne-tune',))}"]
    if skipped:
        say(f"# {SYNE} skipped: {skipped}")
    say(f"# asha (every ASHA contender): {asha}"
        + (f"; {TOPK}: k = {k} of {samples} trained to {max_steps} steps after one epoch each" if TOPK in combos else "")
        + (f"; {SYNE}: tuner_sleep_time {sleep_s:g} s, delays 0" if SYNE in combos else ""))
    out = args.out or Path(tempfile.mkdtemp(prefix="scalehp-simulated-report-"))
    panels: dict[int, dict[str, list[Curve]]] = {}
    scheduler_of = {"fifo": "fifo", "asha": {"asha": asha}, "hyperband": {"hyperband": {"reduction_factor": asha.get("reduction_factor", 3)}}}
    with tempfile.TemporaryDirectory(prefix="scalehp-simulated-") as tmp:
        os.environ["SYNETUNE_FOLDER"] = str(Path(tmp) / "syne-tune")  # Syne Tune's results, not ~/syne-tune
        for workers in workers_list:
            runs: dict[str, list[Curve]] = {c: [] for c in combos}
            real: dict[str, float] = {c: 0.0 for c in combos}
            for name in combos:
                for seed in range(args.seeds):
                    bank = fresh(curves)
                    start = time.perf_counter()
                    if name == TOPK:
                        indices = seed_configs(base, seed, bank)
                        runs[name].append(topk_1epoch(bank, indices, workers=workers, k=k, max_steps=max_steps,
                                                      metric=metric, mode=mode))
                        real[name] += time.perf_counter() - start
                    elif name == SYNE:
                        blackbox = syne_blackbox(bank, space, metric, max_steps)
                        done = syne_asha(blackbox, metric=metric, mode=mode, workers=workers, seed=seed, trials=samples,
                                         asha=asha, max_steps=max_steps, sleep_s=sleep_s)
                        runs[name].append(done["curve"])
                        real[name] += done["real_s"]
                    else:
                        search, scheduler = COMBOS[name]
                        experiment = _experiment(base, name, seed, search, scheduler_of[scheduler], tmp)
                        summary = simulate_run(experiment, bank, workers)
                        real[name] += time.perf_counter() - start
                        runs[name].append(curve(summary, metric, mode))
            panels[workers] = runs
            report_workers(say, workers, runs, real, best_known, spread, mode, args.seeds)
    for path in write_report(out, lines, panels, best_known, spread):
        print(f"# wrote {path}")
    print(f"# finished at {load()}")
    return 0


def fresh(curves):
    """The bank as ``from_results`` builds it (the same curves, a new lookup cache), so that no run
    finds the lookups of an earlier one done (random+asha would reuse random+fifo's: the same configs)."""
    return type(curves)(curves.source, curves.curves, curves.names, curves._numeric)


def simulate_run(experiment, curves, workers: int):
    from scalehp.simulator import simulate

    return simulate(experiment, curves, workers=workers)


def report_workers(say, workers: int, runs: dict[str, list[Curve]], real: dict[str, float], best_known: float,
                   spread: float, mode: str, seeds: int) -> None:
    """The table for one worker count: regret IQM [95% CI] at a few simulated times, real seconds;
    ASHA's speed-up over FIFO; Syne Tune's real time next to scalehp's ASHA's."""
    horizon = max(s[-1] for runs_ in runs.values() for s, _ in runs_ if len(s))
    marks = [horizon * f for f in (0.05, 0.1, 0.25, 0.5, 1.0)]
    say(f"\n## {workers} workers (simulated horizon {_span(horizon)}; regret IQM [95% CI] at)")
    say(f"{'tuner':16s} " + " ".join(f"{_span(m):>18s}" for m in marks) + "   real s")
    for name, runs_ in runs.items():
        cells = []
        for mark in marks:
            regrets = [abs(at(s, b, mark) - best_known) / spread for s, b in runs_]
            low, high = bootstrap(regrets)
            cells.append(f"{iqm(regrets):.3f} [{low:.3f},{high:.3f}]")
        say(f"{name:16s} " + " ".join(f"{c:>18s}" for c in cells) + f"   {real[name]:6.1f}")
    if "random+fifo" in runs and "random+asha" in runs:
        ratios, never = [], 0
        for (fs, fb), (a_s, ab) in zip(runs["random+fifo"], runs["random+asha"]):
            target = fb[-1]
            fifo_t = fs[np.argmax(fb == target)]
            reached = np.nonzero((ab <= target) if mode == "min" else (ab >= target))[0]
            if not len(reached):
                never += 1
                continue
            ratios.append(fifo_t / max(a_s[reached[0]], 1e-9))
        if ratios:
            say(
                f"random+asha reaches random+fifo's final best {statistics.median(ratios):.2f}x sooner "
                f"(median of {len(ratios)} seeds; in {never} of {seeds} seeds it never does: "
                f"ASHA stopped the config FIFO's best came from)"
            )
        else:
            say(f"random+asha never reaches random+fifo's final best (in all {seeds} seeds)")
    if SYNE in runs and "random+asha" in runs and real["random+asha"] > 0:
        say(
            f"real time for the same study ({seeds} seeds at {workers} workers): {SYNE} {real[SYNE]:.1f} s, "
            f"random+asha {real['random+asha']:.1f} s: Syne Tune takes {real[SYNE] / real['random+asha']:.1f}x as long"
        )


# --- the speed study ---------------------------------------------------------------------------


def _rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (``getrusage`` ``ru_maxrss``: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def scaled(curves, epoch_s: float | None):
    """The bank with every step time multiplied by one factor, so that its median step takes
    ``epoch_s`` (None: as recorded). The simulators' work depends on how many steps end, not on
    what the steps report: a bank of long steps is what a day of simulated time is about."""
    if epoch_s is None:
        return curves
    factor = epoch_s / statistics.median(d for c in curves.curves for d in c.durations)
    table = [dataclasses.replace(c, durations=[d * factor for d in c.durations]) for c in curves.curves]
    return type(curves)(f"{curves.source} (step times x{factor:,.0f})", table, curves.names, curves._numeric)


def speed_child(args: argparse.Namespace, base: dict[str, Any]) -> int:
    """One contender of the speed study, in this (fresh) process; prints one JSON line."""
    from scalehp import load_experiment
    from scalehp.compiler import compile_plan
    from scalehp.simulator.curves import from_results

    metric, mode = base["metric"]["name"], base["metric"]["mode"]
    max_steps, samples = base["budget"]["max_steps"], base["budget"]["samples"]
    workers = (args.workers or [1000])[0]
    asha = asha_options(base)
    curves = scaled(from_results(args.bench, compile_plan(load_experiment(base))), args.epoch_s)
    with tempfile.TemporaryDirectory(prefix="scalehp-speed-") as tmp:
        if args.speed_child == SYNE:
            os.environ["SYNETUNE_FOLDER"] = str(Path(tmp) / "syne-tune")
            blackbox = syne_blackbox(curves, syne_space(load_experiment(base)), metric, max_steps)
            before = _rss_mb()
            done = syne_asha(blackbox, metric=metric, mode=mode, workers=workers, seed=base.get("seed") or 0,
                             trials=samples, asha=asha, max_steps=max_steps, hours=args.hours, cap_s=args.cap_s,
                             sleep_s=args.st_sleep or shortest_step(curves, max_steps))
            row = {k: done[k] for k in ("real_s", "trials", "reports", "capped", "last_s", "ended")}
        else:
            from scalehp.results.store import read_results
            from scalehp.simulator import START, simulate

            experiment = _experiment(base, "speed", base.get("seed") or 0, {"algorithm": "random"}, {"asha": asha}, tmp)
            before = _rss_mb()
            start = time.perf_counter()
            summary = simulate(experiment, curves, workers=workers, hours=args.hours)
            real = time.perf_counter() - start
            peak = _rss_mb()
            reports = read_results(summary.path).reports  # counted after the clock and the memory peak are read
            last = max(t.timestamp() for t in reports["time"]) - START if len(reports) else 0.0
            timed_out = "time_limit" in (summary.ended or "")
            row = {"real_s": real, "trials": summary.trials, "reports": len(reports), "capped": False, "last_s": last,
                   "rss_mb": peak, "ended": "simulated-time limit" if timed_out else "trial budget"}
    row.setdefault("rss_mb", _rss_mb())
    row["rss_before_mb"] = before
    print(json.dumps(row))
    return 0


def speed(args: argparse.Namespace, base: dict[str, Any]) -> int:
    """scalehp's and Syne Tune's ASHA on the same study, each in a fresh process, side by side."""
    workers = (args.workers or [1000])[0]
    samples = base["budget"]["samples"]
    asha = asha_options(base)
    header(
        f"speed: random+ASHA {asha} at {workers} workers, up to {args.hours:g} simulated hours or {samples:,} trials "
        f"(whichever ends it first), seed {base.get('seed') or 0}, over {args.bench}"
        + (f" with step times scaled to a median of {args.epoch_s:g} s" if args.epoch_s else "")
        + f"; Syne Tune capped at {args.cap_s:g} real s",
        extra=("syne-tune",),
    )
    contenders = ["scalehp"]
    if syne_installed():
        contenders.append(SYNE)
    else:
        print(f"# {SYNE} skipped: syne-tune is not installed; to run it: {SYNE_INSTALL}")
    rows: dict[str, dict[str, Any]] = {}
    for who in contenders:
        command = [sys.executable, str(Path(__file__).resolve()), "--speed-child", who, "--experiment", str(args.experiment),
                   "--bench", str(args.bench), "--hours", repr(args.hours), "--cap-s", repr(args.cap_s),
                   "--workers", str(workers)]
        if args.epoch_s:
            command += ["--epoch-s", repr(args.epoch_s)]
        if args.samples:
            command += ["--samples", str(args.samples)]
        if args.st_sleep:
            command += ["--st-sleep", repr(args.st_sleep)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                              timeout=max(900.0, 3 * args.cap_s))
        if done.returncode != 0:
            print(f"{who}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
            continue
        rows[who] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{'contender':15s} {'real s':>9s} {'peak RSS MiB':>13s} {'(before run)':>13s} {'trials':>10s} "
          f"{'reports':>10s} {'last report':>12s}  ended by")
    for who, row in rows.items():
        print(f"{who:15s} {row['real_s']:9.1f} {row['rss_mb']:13.0f} {row['rss_before_mb']:13.0f} {row['trials']:10,d} "
              f"{row['reports']:10,d} {_span(row['last_s']):>12s}  {row['ended']}")
    print("(peak RSS: getrusage ru_maxrss of the contender's own process, imports and the bank included; "
          "'before run': the same just before its run started)")
    if "scalehp" in rows and SYNE in rows:
        ours, theirs = rows["scalehp"], rows[SYNE]
        print(f"reports per real second: scalehp {ours['reports'] / ours['real_s']:,.0f}, "
              f"Syne Tune {theirs['reports'] / theirs['real_s']:,.0f} (measured)")
        if not theirs["capped"]:
            print(f"Syne Tune takes {theirs['real_s'] / ours['real_s']:.1f}x scalehp's real time for the same study (measured)")
        else:
            needed = theirs["real_s"] * ours["reports"] / max(theirs["reports"], 1)
            print(
                f"Syne Tune stopped at the cap after {_span(theirs['last_s'])} of simulated time "
                f"({theirs['reports']:,} of the {ours['reports']:,} reports scalehp's run made). "
                f"EXTRAPOLATED, linearly in reports: Syne Tune would need about {needed:,.0f} s for the study, "
                f"{needed / ours['real_s']:.0f}x scalehp's real time (its cost per report grows with the trials "
                f"it has seen, so the true figure is likely higher)"
            )
    print(f"# finished at {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
