"""scalehp's dashboard next to optuna-dashboard, on the same trials, in the same headless Chromium.

The same study twice: N trials of S steps each (params lr, width, opt; the loss curve of
``results_scale.py``): as a scalehp results root (written through the sink's writer) and as
an Optuna study in a journal file (``study.add_trials``, every step an intermediate value).
Each dashboard is started as a server process of its own (scalehp: ``scalehp dashboard ROOT``;
optuna-dashboard: ``run_server`` over the journal storage), then:

* **ready**: from the process start to its first answer (scalehp reads every part first;
  optuna-dashboard reads the study when a page asks);
* **first paint**: from navigation start to the page's main charts drawn, read in the page
  (``performance.now()`` when the condition first holds): scalehp's overview (two uPlot
  charts), optuna-dashboard's study page (history, importance, timeline and intermediate
  values: four Plotly plots);
* **peak RSS** of each server process (``VmHWM``).

optuna-dashboard is not a dependency of scalehp: install it in a virtual environment of its own
and pass its Python (``python -m venv /tmp/odenv && /tmp/odenv/bin/pip install optuna-dashboard``)::

    python benchmarks/dashboard_vs_optuna.py --optuna-python /tmp/odenv/bin/python --trials 10000 --steps 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

OPTUNA_SIDE = r'''
import json, math, sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

path, params_file, steps, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = JournalStorage(JournalFileBackend(path))
if port == 0:  # write the study
    study = optuna.create_study(storage=storage, study_name="scale", direction="minimize")
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "width": optuna.distributions.IntDistribution(8, 511),
             "opt": optuna.distributions.CategoricalDistribution(["adam", "sgd"])}
    batch = []
    for lr, width, opt in json.load(open(params_file)):
        curve = {s: (math.log10(lr) + 2.5) ** 2 + 1.0 / s for s in range(1, steps + 1)}
        batch.append(optuna.trial.create_trial(params={"lr": lr, "width": width, "opt": opt}, distributions=dists,
                                               value=min(curve.values()), intermediate_values=curve))
        if len(batch) == 1000:
            study.add_trials(batch)
            batch = []
    if batch:
        study.add_trials(batch)
else:
    import optuna_dashboard
    optuna_dashboard.run_server(storage, host="127.0.0.1", port=port)
'''

PAINTED = (
    "new Promise(done => { const look = () => ({cond}) ? done(performance.now()) : setTimeout(look, 20); look(); })"
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 600) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited ({process.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return time.perf_counter() - start
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url}: not ready in {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--optuna-python", required=True, help="a Python with optuna-dashboard installed")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=300, help="seconds a page may take to paint")
    args = parser.parse_args()

    from dashboard_scale import _written

    from scalehp.results.store import read_results
    from tests.browser import Browser

    work = Path(tempfile.mkdtemp(prefix="scalehp-vs-optuna-"))
    servers: list[subprocess.Popen] = []
    rows: list[tuple[str, str, str]] = []
    try:
        start = time.perf_counter()
        _written(work / "root", args.trials * args.steps, args.trials, 100_000)
        trials = read_results(work / "root").table("trials").select(["param_lr", "param_width", "param_opt"]).to_pylist()
        (work / "params.json").write_text(json.dumps([[t["param_lr"], t["param_width"], t["param_opt"]] for t in trials]))
        scalehp_written = time.perf_counter() - start
        side = work / "optuna_side.py"
        side.write_text(OPTUNA_SIDE)
        start = time.perf_counter()
        subprocess.run([args.optuna_python, str(side), str(work / "journal.log"), str(work / "params.json"), str(args.steps), "0"], check=True)
        optuna_written = time.perf_counter() - start
        print(f"study: {args.trials:,} trials x {args.steps} steps = {args.trials * args.steps:,} reports "
              f"(written: scalehp parts {scalehp_written:.1f} s, optuna journal {optuna_written:.1f} s)")  # fmt: skip

        ports = free_port(), free_port()
        commands = {
            "scalehp": [sys.executable, "-m", "scalehp.cli", "dashboard", str(work / "root"), "--port", str(ports[0])],
            "optuna-dashboard": [args.optuna_python, str(side), str(work / "journal.log"), "-", str(args.steps), str(ports[1])],
        }
        pages = {
            "scalehp": (f"http://127.0.0.1:{ports[0]}/", f"http://127.0.0.1:{ports[0]}/#run=run-000&tab=overview",
                        "document.querySelectorAll('.uplot').length >= 2"),
            "optuna-dashboard": (f"http://127.0.0.1:{ports[1]}/dashboard/", f"http://127.0.0.1:{ports[1]}/dashboard/studies/0",
                                 "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4"),
        }  # fmt: skip
        with Browser() as browser:
            for name, command in commands.items():
                start = time.perf_counter()
                process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
                servers.append(process)
                ready = wait_ready(pages[name][0], process)
                page = browser.open(pages[name][1])
                try:
                    painted = page.eval(PAINTED.replace("{cond}", pages[name][2]), timeout=args.timeout)
                    paint = f"{painted / 1e3:.2f} s"
                except TimeoutError:  # a page that never paints is a figure too
                    paint = f"not painted in {args.timeout:.0f} s"
                rows.append((name, f"{ready:.2f} s", paint + f", peak RSS {peak_rss_mb(process.pid):.0f} MB"))
                stop(process)
    finally:
        for process in servers:
            stop(process)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'dashboard':18} {'ready':>8}  first paint")
    for name, ready, paint in rows:
        print(f"{name:18} {ready:>8}  {paint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
