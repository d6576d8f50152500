"""Signals, dead workers and hung trials: the run stops cleanly, or goes on, and says so.

SIGINT or SIGTERM: every row on disk, a summary from the tables, ``interrupted: scalehp
resume RUN_DIR``, exit 130 or 143, no stack lines; the resumed run finishes with every
(trial, step) once. A worker killed (SIGKILL, Ray's memory monitor): that trial fails and is
retried, the run goes on, nothing of Ray's reaches the terminal. A hung trial: the run ends
at its time limit, not 10 s later.
"""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalehp.cli import fmt_value
from scalehp.errors import RunInterrupted
from scalehp.results.store import find_runs, read_results
from scalehp.runner import run, summarize
from scalehp.runner.session import interrupts
from scalehp.spec import load_experiment
from tests.results_factory import write_plan

ROOT = Path(__file__).resolve().parent.parent
NOISE = ("Traceback", "*** SIG", "PC: @", "logging.cc", "Worker", "worker died", "raylet", "(raylet)", "Tuner.restore")


def _start(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scalehp.cli", *args],
        cwd=ROOT,
        start_new_session=True,  # its own process group: the test can signal it and its Ray
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _finish(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"still running after {timeout} s\n{out}\n{err[-3000:]}")


def _wait_for_reports(process: subprocess.Popen, root: Path, count: int) -> Path:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        runs = find_runs(root) if root.exists() else []
        if runs and len(read_results(runs[0]).reports) >= count:
            return runs[0]
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be interrupted: {process.communicate()}")
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail("the run never reported")


def _quiet(text: str) -> None:
    for noise in NOISE:
        assert noise not in text, f"{noise!r} reached the terminal:\n{text[-3000:]}"


def _slow_experiment(tmp_path: Path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: sig\ntrainable: tests.signals_trainables:slow\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 4, max_steps: 6}\nconcurrency: 2\nseed: 1\n"
        "space: {x: {float: [0, 1]}, sleep: 0.4}\ncheckpoints: {keep: 2}\n"
        f"results: {tmp_path / 'results'}\n"
    )
    return path


# ---------------------------------------------------------------------------
# SIGINT and SIGTERM


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize(
    "signals", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]], ids=["int", "term", "int-twice"]
)
def test_a_signal_stops_the_run_cleanly_and_resume_finishes_it(tmp_path, signals):
    driver = _start(["run", str(_slow_experiment(tmp_path))])
    run_dir = _wait_for_reports(driver, tmp_path / "results", 3)
    for number in signals:  # to the driver only, as `kill PID` does
        driver.send_signal(number)
        time.sleep(0.3)
    out, err = _finish(driver, 120)

    assert driver.returncode == 128 + signals[0], err[-3000:]
    assert f"interrupted: scalehp resume {run_dir}\n" in err
    _quiet(out + err)
    # the summary is what the tables hold: every trial that reported, the best value on disk
    before = read_results(run_dir)
    ran = set(before.trials["trial_id"]) | set(before.reports["trial_id"])
    head = re.search(r"^run \S+: (\d+) trials? in .*, (\d+) unfinished\)$", out, re.MULTILINE)
    assert head is not None, out
    assert int(head.group(1)) == len(ran) and int(head.group(2)) == len(ran - set(before.trials["trial_id"])) > 0
    best = min(v for v in before.reports["metric_loss"] if math.isfinite(v))
    assert f": loss {fmt_value(best)} (min)" in out
    assert "next      scalehp results show" not in out

    if signals == [signal.SIGINT]:  # `scalehp resume` stops the same way
        resumed = _start(["resume", str(run_dir), "--quiet"])
        _wait_for_reports(resumed, tmp_path / "results", len(before.reports) + 2)
        resumed.send_signal(signal.SIGINT)
        out, err = _finish(resumed, 120)
        assert resumed.returncode == 130, err[-3000:]
        assert f"interrupted: scalehp resume {run_dir}\n" in err
        _quiet(out + err)

    resumed = _start(["resume", str(run_dir), "--quiet"])
    out, err = _finish(resumed, 300)
    assert resumed.returncode == 0, err[-3000:]
    _quiet(out + err)
    after = read_results(run_dir)
    assert len(after.trials) == 4 and set(after.trials["status"]) == {"completed"}
    reports = after.reports
    assert not reports.duplicated(["trial_id", "step"]).any()
    for _, rows in reports.groupby("trial_id"):
        assert sorted(rows["step"]) == [1, 2, 3, 4, 5, 6]  # every (trial, step) exactly once


@pytest.mark.slow
@pytest.mark.ray
def test_sigterm_to_the_whole_process_group_still_writes_every_row_and_exits(tmp_path):
    # systemd and Slurm signal every process, so the local Ray's own processes stop too and
    # Ray's calls would wait 60 s for them: the driver gives up after STOP_DEADLINE_S
    driver = _start(["run", str(_slow_experiment(tmp_path))])
    run_dir = _wait_for_reports(driver, tmp_path / "results", 3)
    signalled = time.monotonic()
    os.killpg(driver.pid, signal.SIGTERM)
    out, err = _finish(driver, 60)
    assert driver.returncode == 143
    assert time.monotonic() - signalled < 30
    assert f"scalehp resume {run_dir}" in err
    for noise in ("Traceback", "*** SIG", "PC: @"):
        assert noise not in out + err
    assert len(read_results(run_dir).reports) >= 3


def test_interrupts_asks_tune_to_stop_once_then_gives_up():
    seen, stops = [], []

    def tune_stop(signum, frame):  # what Ray Tune installs for SIGUSR1 while Tuner.fit runs
        stops.append(signum)

    previous, sigint = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGINT)
    try:
        with interrupts(seen.append):
            signal.signal(signal.SIGUSR1, tune_stop)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # (handlers run between bytecodes of the main thread)
            assert seen == [signal.SIGTERM] and stops == [signal.SIGINT]
            with pytest.raises(KeyboardInterrupt):  # a second signal: stop waiting
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        assert signal.getsignal(signal.SIGUSR1) is previous  # Tune's handler does not outlive the run
        with pytest.raises(KeyboardInterrupt):  # no Tune running: the first signal stops at once
            with interrupts(seen.append):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        assert seen == [signal.SIGTERM, signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is sigint
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_summary_of_an_interrupted_run_counts_unfinished_trials_and_their_best(tmp_path):
    from scalehp.results.sink import ParquetSink

    run_dir = tmp_path / "exp" / "r1"
    write_plan(run_dir, "r1", "exp", "loss", "min", {})
    sink = ParquetSink(run_dir, [])
    keys = {"run_id": "r1", "experiment": "exp"}
    finished = {"trial_id": "a", "status": "completed", "steps": 3, "best_value": 0.5, "metric_loss": 0.5}
    sink.add("trials", {**keys, **finished})
    for trial, values in {"a": [0.9, 0.7, 0.5], "b": [0.8, 0.2], "c": [float("-inf"), 0.6]}.items():
        for step, value in enumerate(values, 1):
            sink.add("reports", {**keys, "trial_id": trial, "step": step, "time": step, "metric_loss": value})
    sink.close()
    summary = summarize(run_dir, started=["a", "b", "c", "d"])  # d started, never reported
    assert (summary.trials, summary.completed, summary.unfinished) == (4, 1, 3)
    assert (summary.best_trial, summary.best_value) == ("b", 0.2)  # running, better than any finished
    assert summary.best_metrics == {"loss": 0.2}
    assert summarize(run_dir).trials == 3  # from the tables alone


# ---------------------------------------------------------------------------
# A worker killed, a hung trial


def _dies_experiment(tmp_path: Path) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir()
    path = tmp_path / "die.yaml"
    path.write_text(
        "name: die\ntrainable: tests.signals_trainables:dies\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 1, max_steps: 3}\nconcurrency: 2\nseed: 1\n"
        f"space: {{deaths: {{grid: [0, 1, 2]}}, marker_dir: {markers}}}\n"
        "failure: {max_retries: 1}\ncheckpoints: {keep: 2}\n"
        f"results: {tmp_path / 'results'}\n"
    )
    return path


@pytest.mark.slow
@pytest.mark.ray
def test_a_killed_worker_fails_its_trial_which_is_retried_and_the_run_goes_on(tmp_path):
    process = _start(["run", str(_dies_experiment(tmp_path))])
    out, err = _finish(process, 300)
    assert process.returncode == 0, err[-3000:]
    _quiet(out + err)  # no "(raylet) A worker died…", no Tune traceback, without --verbose
    results = read_results(find_runs(tmp_path / "results")[0])
    trials = results.trials.set_index("param_deaths")
    assert trials.loc[0, ["status", "retries"]].tolist() == ["completed", 0]
    assert trials.loc[1, ["status", "retries"]].tolist() == ["completed", 1]
    assert trials.loc[2, ["status", "retries"]].tolist() == ["error", 1]  # died again: out of retries
    assert "worker process has died" in trials.loc[2, "error"]
    retries = results.events[results.events["action"] == "retry"]
    reasons = dict(zip(retries["trial_id"], retries["reason"]))
    assert set(reasons) == set(trials.loc[[1, 2], "trial_id"])
    assert all("worker process has died" in reason for reason in reasons.values())
    assert set(retries["step"]) == {1}  # each died after reporting step 1
    completed = results.reports[results.reports["trial_id"].isin(trials.loc[[0, 1], "trial_id"])]
    assert not completed.duplicated(["trial_id", "step"]).any() and len(completed) == 6


def _memory() -> tuple[int, int] | None:
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    except OSError:
        return None
    return int(info["MemTotal"].split()[0]) << 10, int(info["MemAvailable"].split()[0]) << 10


@pytest.mark.slow
@pytest.mark.ray
def test_a_trial_killed_by_rays_memory_monitor_is_retried_and_the_run_goes_on(tmp_path):
    memory = _memory()
    if memory is None or memory[1] < 8 << 30:
        pytest.skip("needs Linux and 8 GB of free memory")
    total, available = memory
    threshold = (total - available + (2 << 30)) / total  # 2 GB above what is used now
    markers = tmp_path / "markers"
    markers.mkdir()
    path = tmp_path / "oom.yaml"
    path.write_text(
        "name: oom\ntrainable: tests.signals_trainables:eats_memory\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 1, max_steps: 3}\nconcurrency: 2\nseed: 1\n"
        f"space: {{eat: {{grid: [0, 1]}}, mb: 4096, marker_dir: {markers}}}\n"
        "failure: {max_retries: 2}\ncheckpoints: {keep: 2}\n"
        f"results: {tmp_path / 'results'}\n"
    )
    process = _start(
        ["run", str(path)], RAY_memory_usage_threshold=f"{threshold:.3f}", RAY_memory_monitor_refresh_ms="100"
    )
    out, err = _finish(process, 300)
    # before: "RuntimeError: Caught unexpected exception: 1 worker(s) were killed due to the
    # node running low on memory", exit 1, and no row for either trial
    assert process.returncode == 0, err[-3000:]
    _quiet(out + err)
    results = read_results(find_runs(tmp_path / "results")[0])
    trials = results.trials.set_index("param_eat")
    assert len(trials) == 2
    eater = trials.loc[1]
    assert eater["retries"] >= 1
    retries = results.events[(results.events["action"] == "retry") & (results.events["trial_id"] == eater["trial_id"])]
    assert retries["reason"].str.startswith("OutOfMemoryError: Ray's memory monitor killed the trial's worker").any()
    assert "Top 10 memory users" not in "".join(retries["reason"])  # Ray's table stays in its log


@pytest.mark.slow
@pytest.mark.ray
def test_a_hung_trial_does_not_hold_the_run_past_its_time_limit(ray_local, tmp_path):
    exp = load_experiment(
        {
            "name": "hang",
            "trainable": "tests.signals_trainables:hangs",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 1, "max_steps": 5, "time_limit": 4},
            "space": {"x": {"float": [0.0, 1.0]}},
            "results": str(tmp_path / "results"),
        }
    )
    summary = run(exp)
    returned = time.time()
    results = read_results(summary.path)
    end = results.events[results.events["action"] == "end"]
    assert end["reason"].tolist() == ["budget.time_limit"]
    assert results.trials["status"].tolist() == ["stopped"]  # it had started, and hung
    # Ray Tune waits 10 s for a trial actor to stop before killing it; the run must not
    overrun = returned - end["time"].iloc[0].timestamp()
    assert overrun < 4, f"the run ended {overrun:.1f} s after its time limit"


@pytest.mark.ray
def test_an_interrupt_before_tune_runs_is_a_clean_run_interrupted(ray_local, tmp_path, monkeypatch):
    # the signal lands while the run is being set up: no Tune to stop, the run ends at once
    import scalehp.runner as runner

    real = runner.param_space

    def interrupted(experiment):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        return real(experiment)

    monkeypatch.setattr(runner, "param_space", interrupted)
    exp = load_experiment(
        {
            "name": "early",
            "trainable": "tests.signals_trainables:slow",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 1, "max_steps": 2},
            "space": {"x": 0.5, "sleep": 0.1},
            "results": str(tmp_path / "results"),
        }
    )
    with pytest.raises(RunInterrupted) as info:
        run(exp)
    assert info.value.signal == signal.SIGINT
    assert info.value.summary.trials == 0 and info.value.summary.path == find_runs(tmp_path / "results")[0]
