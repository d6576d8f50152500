"""Many short trials: the swarm runtime against Ray Tune and Optuna, a million configs, a cluster.

Three modes; the same space (``x`` in [-5, 5], ``y`` in [0, 1]), random search, FIFO, seed 0:

* ``--rate`` (the default): a one-step objective that does nothing, four contenders, each in a
  fresh process of its own (its own Ray, started and stopped there):

  - ``swarm``         ``scalehp.run`` with ``runtime: {swarm: {batch_size: 1000}}``
  - ``tune-runtime``  the same experiment on scalehp's Ray Tune runtime (no ``runtime`` key)
  - ``ray-tuned``     a hand-written ``tune.Tuner`` tuned as in overhead.py: ``reuse_actors=True``,
    Ray's per-trial loggers off, ``verbose=0``, no checkpoints
  - ``optuna``        ``study.optimize`` with a ``RandomSampler``, in memory, no Ray

  The Tune-based two run ``--tune-configs`` configs (they do tens per second), the others
  ``--configs``. configs/s counts the run alone (scalehp's ``elapsed_s``, ``Tuner.fit``,
  ``study.optimize``); "whole" adds starting and stopping Ray and reading the summary.
* ``--million``: the swarm alone, ``--configs`` configs of a 1 ms busy wait, in this process:
  wall time, configs/s, the driver's resident memory (now and peak) at 10k, 100k and 1M
  configs done and at the end, and the efficiency ``configs x 1 ms / CPUs`` / wall time.
* ``--cluster``: the same on a local 3-node Ray cluster (``cluster/local.py``: a head without
  CPUs and two workers of ``--worker-cpus``), joined with ``scalehp.run(exp, address=...)``:
  the CPU busy fraction, the trials' own time (``elapsed_s`` of their reports) / (wall time x the
  cluster's CPUs). The cluster is stopped (by PID) whatever happens.

    python benchmarks/swarm.py                                 # rate: 20,000 configs (1,000 on Tune)
    python benchmarks/swarm.py --configs 5000 --tune-configs 100
    python benchmarks/swarm.py --million                       # 1,000,000 configs of 1 ms
    python benchmarks/swarm.py --cluster --configs 100000      # on a local 3-node cluster
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, header, load, quiet, ray_local  # noqa: E402

CONTENDERS = ("swarm", "tune-runtime", "ray-tuned", "optuna")
CONFIGS = {"rate": 20_000, "million": 1_000_000, "cluster": 100_000}
MARKS = (10_000, 100_000, 1_000_000)
RESULT = "result: "  # how a contender's process hands its figures back (the last such line)


def experiment(trainable: str, configs: int, batch_size: int | None, root: str):
    """The benchmark's experiment; ``batch_size`` None: on the Tune runtime."""
    from scalehp import load_experiment

    raw = {
        "name": "swarm-bench",
        "trainable": f"benchmarks.trainables:{trainable}",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": configs, "max_steps": 1},
        "space": {"x": {"float": [-5, 5]}, "y": {"float": [0, 1]}},
        "search": {"algorithm": "random"},
        "scheduler": "fifo",
        "seed": 0,
        "results": root,
    }
    if batch_size is not None:
        raw["runtime"] = {"swarm": {"batch_size": batch_size}}
    return load_experiment(raw)


def checked(summary, configs: int):  # noqa: ANN001, ANN201
    """The run's summary, once every config completed."""
    if summary.completed != configs:
        raise SystemExit(f"{summary.completed} of {configs} configs completed ({summary.errors} errors)")
    return summary


# ---------------------------------------------------------------------------- --rate contenders


def run_scalehp(configs: int, batch_size: int | None) -> tuple[float, float]:
    """(run s, whole s) of ``scalehp.run`` of the one-step experiment."""
    import scalehp

    with tempfile.TemporaryDirectory(prefix="scalehp-swarm-") as tmp:
        start = time.perf_counter()
        summary = checked(scalehp.run(experiment("one_step", configs, batch_size, tmp)), configs)
        return summary.elapsed_s, time.perf_counter() - start


def run_ray(configs: int) -> tuple[float, float]:
    import ray
    from ray import tune

    from benchmarks.trainables import one_step_ray

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # (this process runs this contender only)
    start = time.perf_counter()
    ray_local()
    with tempfile.TemporaryDirectory(prefix="scalehp-swarm-ray-") as tmp, quiet():
        tuner = tune.Tuner(
            one_step_ray,
            param_space={"x": tune.uniform(-5, 5), "y": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=configs, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=tmp, verbose=0),
        )
        fit_start = time.perf_counter()
        grid = tuner.fit()
        fit = time.perf_counter() - fit_start
    ray.shutdown()
    done = sum(1 for result in grid if result.error is None)
    if done != configs:
        raise SystemExit(f"ray: {done} of {configs} configs completed")
    return fit, time.perf_counter() - start


def run_optuna(configs: int) -> tuple[float, float]:
    import optuna

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("y", 0, 1)
        return (trial.suggest_float("x", -5, 5) - 0.3) ** 2

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=configs)
    if len(study.trials) != configs:
        raise SystemExit("optuna: wrong number of trials")
    whole = time.perf_counter() - start
    return whole, whole


def contender(name: str, args: argparse.Namespace) -> dict:
    """Run one contender in this process: its configs, run s and whole s."""
    configs = args.tune_configs if name in ("tune-runtime", "ray-tuned") else args.configs
    if name == "swarm":
        run_s, whole_s = run_scalehp(configs, args.batch_size)
    elif name == "tune-runtime":
        run_s, whole_s = run_scalehp(configs, None)
    elif name == "ray-tuned":
        run_s, whole_s = run_ray(configs)
    else:
        run_s, whole_s = run_optuna(configs)
    return {"configs": configs, "run_s": run_s, "whole_s": whole_s}


def in_fresh_process(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--contender", name, "--configs", str(args.configs),
               "--tune-configs", str(args.tune_configs), "--batch-size", str(args.batch_size)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def rate(args: argparse.Namespace) -> None:
    header(
        f"swarm --rate: one-step configs, {args.configs:,} on swarm and optuna, {args.tune_configs:,} "
        f"on Tune; swarm batch {args.batch_size}; each contender in a fresh process"
    )
    found = {}
    for name in CONTENDERS:
        found[name] = in_fresh_process(name, args)
        print(f"{name}: {found[name]['configs']:,} configs, run {found[name]['run_s']:.2f} s  ({load()})", flush=True)
    per_s = {name: f["configs"] / f["run_s"] for name, f in found.items()}
    print()
    print(f"{'contender':<14} {'configs':>9} {'run s':>8} {'configs/s':>10} {'whole s':>8}")
    for name, f in found.items():
        print(f"{name:<14} {f['configs']:>9,} {f['run_s']:8.2f} {per_s[name]:10,.0f} {f['whole_s']:8.2f}")
    print()
    for name in CONTENDERS[1:]:
        print(f"swarm / {name + ':':<13} {per_s['swarm'] / per_s[name]:8.2f}x configs/s")
    print(f"# finished at {load()}")


# ---------------------------------------------------------------------------- --million


def rss_mb() -> tuple[float, float]:
    """This process's resident memory in MB: now (VmRSS) and its peak (ru_maxrss)."""
    with open("/proc/self/status") as status:
        now_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return now_kb / 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_row(when: str, elapsed_s: float) -> None:
    now, peak = rss_mb()
    print(f"{when:>12} {elapsed_s:10.1f} {now:11.0f} {peak:10.0f}", flush=True)


def million(args: argparse.Namespace) -> None:
    import scalehp

    cpus = os.cpu_count() or 1
    header(f"swarm --million: {args.configs:,} configs of a 1 ms busy wait, batch {args.batch_size}, {cpus} CPUs")
    marks = [mark for mark in MARKS if mark <= args.configs]

    def on_progress(progress) -> None:  # noqa: ANN001
        if marks and progress.done >= marks[0]:
            while marks and progress.done >= marks[0]:
                marks.pop(0)
            memory_row(f"{progress.done:,}", progress.elapsed_s)

    print(f"{'configs done':>12} {'elapsed s':>10} {'driver RSS':>11} {'peak RSS':>10}   (MB)")
    memory_row("start", 0.0)
    with tempfile.TemporaryDirectory(prefix="scalehp-swarm-") as tmp:
        start = time.perf_counter()
        exp = experiment("cpu_1ms", args.configs, args.batch_size, tmp)
        summary = checked(scalehp.run(exp, on_progress=on_progress), args.configs)
        whole = time.perf_counter() - start
        memory_row("end", summary.elapsed_s)
        limit = args.configs * 0.001 / cpus
        print()
        print(f"wall time        {summary.elapsed_s:.1f} s in the run, {whole:.1f} s in all (starting Ray, the summary)")
        print(f"rate             {args.configs / summary.elapsed_s:,.0f} configs/s")
        print(f"limit            {limit:.1f} s = {args.configs:,} x 1 ms / {cpus} CPUs")
        print(f"efficiency       {limit / summary.elapsed_s:.1%} of the run, {limit / whole:.1%} in all")
        print()
        tools(Path(summary.path), Path(tmp))
    print(f"# finished at {load()}")


def tools(run: Path, tmp: Path) -> None:
    """Wall time of each results command on the run, as a user runs it (a fresh process each)."""
    commands = [
        ["results", "show", str(run)],
        ["results", "best", str(run)],
        ["sql", "SELECT count(*) AS trials, min(best_value) AS best FROM trials", "--root", str(run)],
        ["sql", "SELECT step, count(*), avg(metric_loss) FROM reports GROUP BY step", "--root", str(run)],
        ["plot", "curves", str(run), "-o", str(tmp / "curves.png")],
        ["plot", "importance", str(run), "-o", str(tmp / "importance.png")],
        ["plot", "parallel", str(run), "-o", str(tmp / "parallel.png")],
        ["report", str(run), "-o", str(tmp / "report.html")],
    ]
    print(f"{'results command on the run':<60} {'wall s':>7}  exit")
    for command in commands:
        begin = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "scalehp.cli", *command], cwd=ROOT, capture_output=True, text=True)
        shown = " ".join("RUN" if c == str(run) else Path(c).name if c.startswith(str(tmp)) else c for c in command)
        print(f"scalehp {shown:<52} {time.perf_counter() - begin:7.2f}  {done.returncode}", flush=True)
        if done.returncode:
            print(done.stderr.strip()[-500:])


# ---------------------------------------------------------------------------- --cluster


def local_cluster():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("scalehp_local_cluster", ROOT / "cluster" / "local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def started(local, worker_cpus: int) -> tuple[Path, dict]:  # noqa: ANN001
    """(folder, state) of a new 3-node cluster; tried twice, as tests/test_cluster.py does (on a
    loaded machine a node can miss Ray's start-up deadline). A failed try leaves its logs."""
    for attempt in (1, 2):
        folder = Path(tempfile.mkdtemp(prefix="shp-", dir="/tmp"))  # short: Ray's socket paths have a limit
        start = time.perf_counter()
        try:
            state = local.start(folder, 2, head_cpus=0, worker_cpus=worker_cpus,
                                first_port=random.randrange(31000, 38000, 100))
            break
        except BaseException as exc:
            local.stop(folder)  # only the process groups this try started
            if attempt == 2 or not isinstance(exc, SystemExit):
                raise
            print(f"cluster start failed ({exc}); trying again", flush=True)
    print(f"cluster up in {time.perf_counter() - start:.1f} s: GCS {state['address']}", flush=True)
    return folder, state


def cluster(args: argparse.Namespace) -> None:
    cpus = 2 * args.worker_cpus
    header(
        f"swarm --cluster: {args.configs:,} configs of a 1 ms busy wait, batch {args.batch_size}, on a local "
        f"3-node cluster (head 0 CPUs, 2 workers x {args.worker_cpus} CPUs)"
    )
    local = local_cluster()
    folder, state = started(local, args.worker_cpus)
    try:
        # this driver as the cluster's own processes are (read when Ray is imported, below): the
        # cluster's token, sent (RAY_AUTH_MODE), and 127.0.0.1 kept (else Ray turns the GCS
        # address into the machine's routable one, where the cluster does not listen)
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["token_path"], **local.LOOPBACK_ONLY})
        import scalehp

        with tempfile.TemporaryDirectory(prefix="scalehp-swarm-") as tmp:
            start = time.perf_counter()
            exp = experiment("cpu_1ms", args.configs, args.batch_size, tmp)
            summary = checked(scalehp.run(exp, address=state["address"]), args.configs)
            whole = time.perf_counter() - start
            busy = scalehp.read_results(summary.path).reports["elapsed_s"].sum()
    finally:
        local.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wall time        {summary.elapsed_s:.1f} s in the run, {whole:.1f} s in all (joining Ray, the summary)")
    print(f"rate             {args.configs / summary.elapsed_s:,.0f} configs/s")
    nominal = args.configs * 0.001
    print(f"trials' time     {busy:.1f} s by their reports' elapsed_s ({1000 * busy / args.configs:.2f} ms a config), "
          f"{nominal:.1f} s at 1 ms a config")
    print(f"CPU busy         {busy / (summary.elapsed_s * cpus):.1%} of the run x {cpus} CPUs "
          f"({nominal / (summary.elapsed_s * cpus):.1%} at 1 ms a config), {busy / (whole * cpus):.1%} in all")
    print(f"# finished at {load()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_mutually_exclusive_group()
    for mode in CONFIGS:
        modes.add_argument(f"--{mode}", dest="mode", action="store_const", const=mode)
    parser.add_argument("--configs", type=int, help="default: 20,000 (rate), 1,000,000 (million), 100,000 (cluster)")
    parser.add_argument("--tune-configs", type=int, default=1000, help="configs of the Tune-based contenders (rate)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--worker-cpus", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="(cluster)")
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.mode = args.mode or "rate"
    args.configs = args.configs or CONFIGS[args.mode]
    if args.contender:
        print(RESULT + json.dumps(contender(args.contender, args)))
    else:
        {"rate": rate, "million": million, "cluster": cluster}[args.mode](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
