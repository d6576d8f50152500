"""Kill harness (issue #14): SIGKILL the driver at many points, resume, and check the run.

Each case starts ``scalehp run`` in a subprocess, watches the run folder and an independent
step log (every step a trainable executes, written by the trainable itself,
tests/kill_trainables.py) and SIGKILLs the driver's PID alone at one point:

* ``plan``          right after ``plan.json`` appears (before Ray's state may exist);
* ``first_report``  the first trial has started, nothing reported yet;
* ``early``         after a few executed steps;
* ``mid``           about half way through;
* ``trial_end``     the first ``trials`` row is on disk (a trial ended);
* ``final_step``    a trial executed its last step (it is ending, its row not yet on disk);
* ``after_last``    every planned trial has its row on disk (the driver is shutting down);
* ``resume``        killed ``mid``, then the *resume* is killed after a few steps, then resumed again;
* ``resume_start``  killed ``mid``, then the *resume* is killed as its first trial starts, then resumed again;
* ``none``          not killed: the reference run, and a check of the harness itself.

Then ``scalehp resume`` runs to the end and :func:`check_run` checks the run folder against
the step log (see its docstring for every invariant). The driver's local Ray dies with it or
is orphaned; whatever is left in the driver's session (the test started it with
``start_new_session``) is killed by PID before the next driver starts.

The step log tags every line with the driver's round (``SCALEHP_KILL_ROUND``: 0 for ``run``,
1 for the first ``resume``, ...), which the driver's local Ray passes on to its workers.

Run: ``pytest tests/test_kill_harness.py -m slow`` (one case: ``-k "asha-mid"``); to repeat every case
N times (kills land at slightly different moments each time), set ``SCALEHP_KILL_REPEAT=N``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalehp.results.store import part_files, read_results
from tests.kill_trainables import ROUND, STEP_LOG

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.ray]

SCHEDULERS = {
    # concurrency 1: ASHA's decisions depend only on the order trials report in, so an
    # interrupted run must decide exactly as an uninterrupted one
    "asha": {
        "budget": "{samples: 6, max_steps: 9}",
        "concurrency": 1,
        "scheduler": "{asha: {grace_steps: 1, reduction_factor: 3}}",
        "mid": 16,
    },
    "hyperband": {
        # brackets of 3 (no halving), 3 (halving at step 2) and 4 trials; no concurrency limit:
        # a limit keeps brackets from filling, and nothing is ever halved
        "budget": "{samples: 6, max_steps: 4}",
        "concurrency": None,
        "scheduler": "{hyperband: {reduction_factor: 2}}",
        "mid": 10,
    },
    "pbt": {
        "budget": "{samples: 4, max_steps: 8}",
        "concurrency": None,
        "scheduler": "{pbt: {interval_steps: 2, quantile: 0.5, mutate: [lr]}}",
        "mid": 14,
    },
}
KILL_POINTS = [
    "none", "plan", "first_report", "early", "mid", "trial_end", "final_step", "after_last", "resume", "resume_start",
]
REPEAT = int(os.environ.get("SCALEHP_KILL_REPEAT", "1"))
ROUND_TIMEOUT_S = 240
POLL_S = 0.02


def experiment_file(folder: Path, scheduler: str) -> Path:
    setting = SCHEDULERS[scheduler]
    concurrency = f"concurrency: {setting['concurrency']}\n" if setting["concurrency"] else ""
    path = folder / f"{scheduler}.yaml"
    path.write_text(
        f"name: kill-{scheduler}\ntrainable: tests.kill_trainables:train\nmetric: {{name: loss, mode: min}}\n"
        f"budget: {setting['budget']}\n{concurrency}seed: 3\n"
        "space: {x: {float: [0, 1]}, lr: {float: [0.05, 0.95]}, sleep: 0.1}\n"
        f"scheduler: {setting['scheduler']}\ncheckpoints: {{keep: 2}}\n"
        f"results: {folder / 'results'}\n"
    )
    return path


# ---------------------------------------------------------------------------
# Processes


def _session_pids(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: the driver and the local Ray it started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            pids.append(int(entry.name))
    return pids


def _clean_up(sid: int, grace: float = 1.0) -> list[int]:
    """Wait ``grace`` s for what the driver left in its session to exit, then SIGKILL it by PID.

    Returns the PIDs that had to be killed (Ray's agents outlive a killed driver).
    """
    deadline = time.monotonic() + grace
    while _session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _session_pids(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while _session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@dataclass
class Driver:
    process: subprocess.Popen
    round: int
    out: Path
    err: Path

    def tail(self) -> str:
        text = self.out.read_text(errors="replace") + self.err.read_text(errors="replace")
        return text[-3000:]


def _start(folder: Path, round_: int, args: list[str], step_log: Path) -> Driver:
    out, err = folder / f"driver-{round_}.out", folder / f"driver-{round_}.err"
    env = {**os.environ, STEP_LOG: str(step_log), ROUND: str(round_)}  # (SCALEHP_KEY_FILE: from conftest)
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "scalehp.cli", *args, "--quiet"],
            cwd=ROOT,
            start_new_session=True,  # its session holds its local Ray: found and cleaned up by session id
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
    return Driver(process, round_, out, err)


# ---------------------------------------------------------------------------
# Watching a run


def read_log(step_log: Path) -> list[dict[str, Any]]:
    if not step_log.exists():
        return []
    return [json.loads(line) for line in step_log.read_text().splitlines() if line.strip()]


class Probe:
    """What a watcher sees: the step log so far and the run folder's tables (read only when they change)."""

    def __init__(self, results: Path, step_log: Path, planned: int, max_steps: int):
        self.results, self.step_log, self.planned, self.max_steps = results, step_log, planned, max_steps
        self.lines: list[dict[str, Any]] = []
        self._offset = 0
        self._trial_rows = 0
        self._trial_parts = -1
        self.run_dir: Path | None = None

    def poll(self) -> None:
        if self.step_log.exists():
            with open(self.step_log) as handle:
                handle.seek(self._offset)
                chunk = handle.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self._offset += len(complete.encode())
            self.lines += [json.loads(line) for line in complete.splitlines() if line.strip()]
        if self.run_dir is None:
            plans = list(self.results.glob("*/*/plan.json"))
            self.run_dir = plans[0].parent if plans else None

    def steps(self, round_: int) -> list[dict[str, Any]]:
        return [r for r in self.lines if r["event"] == "step" and r["round"] == round_]

    def starts(self, round_: int) -> list[dict[str, Any]]:
        return [r for r in self.lines if r["event"] == "start" and r["round"] == round_]

    def trial_rows(self) -> int:
        if self.run_dir is None:
            return 0
        parts = len(list((self.run_dir / "trials").glob("part-*.parquet")))
        if parts != self._trial_parts:
            self._trial_parts = parts
            self._trial_rows = len(read_results(self.run_dir).trials) if parts else 0
        return self._trial_rows


def kill_point(point: str, scheduler: str) -> Callable[[Probe, int], bool]:
    mid = SCHEDULERS[scheduler]["mid"]
    points: dict[str, Callable[[Probe, int], bool]] = {
        "plan": lambda p, r: p.run_dir is not None,
        "first_report": lambda p, r: len(p.starts(r)) >= 1,
        "early": lambda p, r: len(p.steps(r)) >= 3,
        "mid": lambda p, r: len(p.steps(r)) >= mid,
        "trial_end": lambda p, r: p.trial_rows() >= 1,
        "final_step": lambda p, r: any(s["step"] == p.max_steps for s in p.steps(r)),
        "after_last": lambda p, r: p.trial_rows() >= p.planned,
        "resume": lambda p, r: len(p.steps(r)) >= mid if r == 0 else len(p.steps(r)) >= 3,
        "resume_start": lambda p, r: len(p.steps(r)) >= mid if r == 0 else len(p.starts(r)) >= 1,
    }
    return points[point]


@dataclass
class Kill:
    """One SIGKILL: in which round, and what was on disk and in the step log right after it."""

    round: int
    ended: set[str]  # trials whose end was on disk (a trials row, or a stop decision)
    log_lines: int
    left_over: list[int] = field(default_factory=list)  # PIDs of the driver's Ray cleaned up after it


def _watch_and_kill(driver: Driver, probe: Probe, when: Callable[[Probe, int], bool]) -> Kill | None:
    """SIGKILL the driver's PID (nothing else) once ``when`` holds; None when it ended by itself first."""
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            probe.poll()
            if when(probe, driver.round):
                os.kill(driver.process.pid, signal.SIGKILL)
                driver.process.wait()
                break
            if driver.process.poll() is not None:
                return None
            time.sleep(POLL_S)
        else:
            os.kill(driver.process.pid, signal.SIGKILL)
            driver.process.wait()
            pytest.fail(f"round {driver.round}: the kill point was never reached\n{driver.tail()}")
    finally:
        left = _clean_up(driver.process.pid)
    probe.poll()
    assert probe.run_dir is not None, "killed before the run folder existed"
    before = read_results(probe.run_dir)
    ended = set(before.trials["trial_id"])
    events = before.events
    if len(events):
        ended |= set(events[events["action"] == "stop"]["trial_id"])
    return Kill(driver.round, ended, len(read_log(probe.step_log)), left)


def _finish(driver: Driver) -> None:
    try:
        driver.process.wait(timeout=ROUND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(driver.process.pid, signal.SIGKILL)
        driver.process.wait()
        pytest.fail(f"round {driver.round}: still running after {ROUND_TIMEOUT_S} s\n{driver.tail()}")
    finally:
        _clean_up(driver.process.pid)
    assert driver.process.returncode == 0, f"round {driver.round} exited {driver.process.returncode}\n{driver.tail()}"


@dataclass
class Outcome:
    run_dir: Path
    step_log: Path
    plan: dict[str, Any]
    kills: list[Kill]
    ended_by_itself: list[int]  # rounds whose driver ended before the kill point


def run_case(folder: Path, scheduler: str, point: str) -> Outcome:
    """Run the experiment, kill it at ``point`` (twice for ``resume``), resume until it finishes."""
    folder.mkdir(parents=True, exist_ok=True)
    exp = experiment_file(folder, scheduler)
    step_log = folder / "steps.log"
    text = exp.read_text()
    samples = int(text.split("samples: ")[1].split(",")[0])
    max_steps = int(text.split("max_steps: ")[1].split("}")[0])
    probe = Probe(folder / "results", step_log, samples, max_steps)
    kills: list[Kill] = []
    ended: list[int] = []
    driver = _start(folder, 0, ["run", str(exp)], step_log)
    rounds_to_kill = 0 if point == "none" else 2 if point.startswith("resume") else 1
    when = kill_point(point, scheduler) if rounds_to_kill else None
    for round_ in range(rounds_to_kill):
        if round_:
            driver = _start(folder, round_, ["resume", str(probe.run_dir)], step_log)
        assert when is not None
        kill = _watch_and_kill(driver, probe, when)
        if kill is None:  # it finished before the point: nothing was killed in this round
            _finish(driver)
            ended.append(round_)
            break
        kills.append(kill)
    else:
        if rounds_to_kill:
            driver = _start(folder, rounds_to_kill, ["resume", str(probe.run_dir)], step_log)
    if not ended:
        _finish(driver)
    probe.poll()
    assert probe.run_dir is not None
    plan = json.loads((probe.run_dir / "plan.json").read_text())
    return Outcome(probe.run_dir, step_log, plan, kills, ended)


# ---------------------------------------------------------------------------
# The invariants


def raw_reports(run_dir: Path) -> list[dict[str, Any]]:
    """Every report row in every committed part file, no de-duplication."""
    tables = [pq.read_table(f) for f in part_files([run_dir], "reports")]
    return pa.concat_tables(tables, promote_options="permissive").to_pylist() if tables else []


def _reexecutions(exploits: Any) -> Counter:
    """PBT: (trial, step) -> how many times an exploit made the trial run that step again
    (it continues from the donor's step, which may lie before its own)."""
    again: Counter = Counter()
    for row in exploits.itertuples():
        for step in range(int(row.donor_step) + 1, int(row.step) + 1):
            again[(row.trial_id, step)] += 1
    return again


def check_run(run_dir: Path, step_log: Path, plan: dict[str, Any], kills: list[Kill]) -> list[str]:
    """Every invariant of a finished (resumed) run; returns what is broken, one line each.

    * trials: exactly ``plan["trials"]`` rows, one per trial, each ``completed`` or ``stopped``;
      a completed trial reported ``max_steps``; its ``steps`` is its last reported step;
    * reports: every (trial, step) once, in what ``read_results`` returns (de-duplicated) and
      in the raw part files (PBT: a step may repeat once per exploit that sent the trial back
      before it); each trial's reported steps are 1..its last step, none missing; every
      reported (trial, step) was executed (step log) and its value is one the trainable logged;
    * step log: no trial whose end (row or stop decision) was on disk right after a kill
      executed any step after that kill; within one driver round no (trial, step) ran twice
      (PBT: but for exploits);
    * events: no duplicated decision (trial, step, scheduler, action; ASHA: one decision per
      trial and rung); a trial stopped by its scheduler ended at the decision's step;
    * PBT: exploit and explore rows pair up (same trial, step, donor), explore's old params are
      exploit's new ones; the donor reported those params at ``donor_step``; the trial reported
      its old params at ``step``; its next report (``donor_step + 1``) ran with explore's new
      params, and the step log shows it restarted from the donor's ``w`` at ``donor_step``;
      ``donor_step <= step``.
    """
    problems: list[str] = []
    max_steps = int(plan["experiment"]["budget"]["max_steps"])
    scheduler = plan["scheduler"]
    results = read_results(run_dir)
    trials, reports, events = results.trials, results.reports, results.events
    lines = read_log(step_log)
    steps = [r for r in lines if r["event"] == "step"]

    # trials
    if len(trials) != plan["trials"] or trials["trial_id"].duplicated().any():
        problems.append(f"trials: {len(trials)} rows for {plan['trials']} planned: {sorted(trials['trial_id'])}")
    bad = trials[~trials["status"].isin(["completed", "stopped"])]
    for row in bad.itertuples():
        problems.append(f"trials: {row.trial_id} is {row.status}: {str(row.error)[-300:]}")
    last = reports.groupby("trial_id")["step"].max().to_dict() if len(reports) else {}
    for row in trials.itertuples():
        if row.status == "completed" and last.get(row.trial_id) != max_steps:
            problems.append(f"trials: {row.trial_id} completed but its last report is step {last.get(row.trial_id)}")
        if row.steps != last.get(row.trial_id):
            problems.append(f"trials: {row.trial_id} has steps={row.steps}, last report {last.get(row.trial_id)}")
    unknown = set(reports["trial_id"]) - set(trials["trial_id"])
    if unknown:
        problems.append(f"reports: trials without a trials row: {sorted(unknown)}")

    # reports, read (de-duplicated) and raw
    if reports.duplicated(["trial_id", "step"]).any():
        problems.append("reports (read_results): duplicated (trial_id, step)")
    for trial_id, rows in reports.groupby("trial_id"):
        got = sorted(int(s) for s in rows["step"])
        if got != list(range(1, got[-1] + 1)):
            problems.append(f"reports (read_results): {trial_id} reported steps {got}")
    exploits = events[events["action"] == "exploit"] if len(events) else events
    again = _reexecutions(exploits) if scheduler in ("pbt", "pb2") else Counter()
    raw = raw_reports(run_dir)
    counts = Counter((r["trial_id"], r["step"]) for r in raw)
    # a step run again in a later round (its trial went back to a checkpoint older than the
    # step) writes its row again; read_results holds the latest once (checked above)
    rounds = Counter((trial_id, step) for _, trial_id, step in {(r["round"], r["trial_id"], r["step"]) for r in steps})
    for key, count in sorted(counts.items()):
        allowed = again[key] + max(1, rounds[key])
        if count > allowed:
            problems.append(f"reports (raw part files): {key} written {count} times (exploits and rounds allow {allowed})")
    logged = {}
    for r in steps:
        logged.setdefault((r["trial_id"], r["step"]), set()).add(r["w"])
    for r in raw:
        values = logged.get((r["trial_id"], r["step"]))
        if values is None:
            problems.append(f"reports (raw): {(r['trial_id'], r['step'])} reported but never executed (step log)")
        elif r["metric_loss"] not in values:
            problems.append(f"reports (raw): {(r['trial_id'], r['step'])} loss {r['metric_loss']} not in {values}")

    # the step log: ended trials never run again; no step twice in one round
    for kill in kills:
        later = [r for r in lines[kill.log_lines :] if r["event"] == "step" and r["trial_id"] in kill.ended]
        for trial_id in sorted({r["trial_id"] for r in later}):
            ran = [(r["round"], r["step"]) for r in later if r["trial_id"] == trial_id]
            problems.append(
                f"step log: {trial_id} had ended on disk before the kill in round {kill.round} "
                f"and ran again: (round, step) {ran}"
            )
    per_round = Counter((r["round"], r["trial_id"], r["step"]) for r in steps)
    for (round_, trial_id, step), count in sorted(per_round.items()):
        if count > 1 + again[(trial_id, step)]:
            problems.append(f"step log: round {round_}: {trial_id} executed step {step} {count} times")

    # events: decisions once, stops where the trial ended
    if len(events):
        decisions = events[~events["action"].isin(["end", "retry", "resume"])]  # a scheduler's decisions only
        keyed = Counter(
            (r.trial_id, int(r.step), r.scheduler, r.action) for r in decisions.itertuples() if r.action != "explore"
        )
        for key, count in sorted(keyed.items()):
            if count > 1 + again[(key[0], key[1])]:
                problems.append(f"events: decision {key} recorded {count} times")
        if scheduler == "asha":
            rungs = Counter((r.trial_id, int(r.rung)) for r in decisions.itertuples())
            for key, count in sorted(rungs.items()):
                if count > 1:
                    problems.append(f"events: ASHA decided {count} times for (trial, rung) {key}")
        status = dict(zip(trials["trial_id"], trials["status"]))
        for row in decisions[decisions["action"] == "stop"].itertuples():
            if status.get(row.trial_id) != "stopped" or last.get(row.trial_id) != row.step:
                problems.append(
                    f"events: {row.trial_id} stopped at step {row.step}, but is {status.get(row.trial_id)} "
                    f"with its last report at step {last.get(row.trial_id)}"
                )

    if scheduler in ("pbt", "pb2"):
        problems += _check_lineage(events, raw, lines, max_steps)
    return problems


def _check_lineage(events: Any, raw: list[dict[str, Any]], lines: list[dict[str, Any]], max_steps: int) -> list[str]:
    problems = []
    if not len(events):
        return problems
    exploits = events[events["action"] == "exploit"]
    explores = events[events["action"] == "explore"]
    key = ["trial_id", "step", "donor_trial_id", "donor_step"]
    pairs = exploits.merge(explores, on=key, suffixes=("", "_explore"), how="outer", indicator=True)
    for row in pairs[pairs["_merge"] != "both"].itertuples():
        problems.append(f"events: exploit/explore without its pair: {row.trial_id} step {row.step} ({row._merge})")
    starts = [r for r in lines if r["event"] == "start"]
    step_rows = [r for r in lines if r["event"] == "step"]
    for row in pairs[pairs["_merge"] == "both"].itertuples():
        where = f"exploit {row.trial_id} step {row.step} from {row.donor_trial_id} step {row.donor_step}"
        donor, old = json.loads(row.new_params), json.loads(row.old_params)
        explored = json.loads(row.new_params_explore)
        if json.loads(row.old_params_explore) != donor:
            problems.append(f"{where}: explore's old params {row.old_params_explore} are not the donor's {donor}")
        if row.donor_step > row.step:
            problems.append(f"{where}: donor_step > step")
        if not any(
            r["trial_id"] == row.donor_trial_id and r["step"] == row.donor_step and r["param_lr"] == donor["lr"]
            for r in raw
        ):
            problems.append(f"{where}: the donor never reported lr={donor['lr']} at step {row.donor_step}")
        if not any(r["trial_id"] == row.trial_id and r["step"] == row.step and r["param_lr"] == old["lr"] for r in raw):
            problems.append(f"{where}: the trial never reported its old lr={old['lr']} at step {row.step}")
        if row.donor_step < max_steps:
            nxt = row.donor_step + 1
            if not any(
                r["trial_id"] == row.trial_id and r["step"] == nxt and r["param_lr"] == pytest.approx(explored["lr"])
                for r in raw
            ):
                problems.append(f"{where}: no report at step {nxt} with the explored lr={explored['lr']}")
            donor_w = {r["w"] for r in step_rows if r["trial_id"] == row.donor_trial_id and r["step"] == row.donor_step}
            restarted = [
                r
                for r in starts
                if r["trial_id"] == row.trial_id
                and r["step"] == row.donor_step
                and r["lr"] == pytest.approx(explored["lr"])
            ]
            if not restarted or not any(r["w"] in donor_w for r in restarted):
                problems.append(f"{where}: the step log shows no restart from the donor's checkpoint ({restarted})")
    return problems


def asha_decisions(run_dir: Path) -> set[tuple[float, int, str]]:
    """ASHA's decisions keyed by the config (trial ids differ between runs): (x, rung, action)."""
    results = read_results(run_dir)
    x = dict(zip(results.trials["trial_id"], results.trials["param_x"]))
    events = results.events
    decisions = events[events["action"].isin(["continue", "stop"])] if len(events) else events
    return {(round(float(x[r.trial_id]), 12), int(r.rung), r.action) for r in decisions.itertuples()}


def describe(run_dir: Path, step_log: Path) -> str:
    """For a failure message: the trials, the decisions in order, and what each round executed."""
    results = read_results(run_dir)
    trials = results.trials[["trial_id", "status", "steps"]].sort_values("trial_id").to_string(index=False)
    events = results.events
    columns = [c for c in ("trial_id", "step", "action", "rung", "value", "cutoff", "donor_trial_id", "donor_step")
               if c in events]
    decisions = events.sort_values("time")[columns].to_string(index=False) if len(events) else "(none)"
    executed: dict[tuple[int, str], list[str]] = {}
    for r in read_log(step_log):
        executed.setdefault((r["round"], r["trial_id"]), []).append(
            f"start@{r['step']}" if r["event"] == "start" else str(r["step"])
        )
    rounds = "\n".join(f"  round {k[0]} {k[1]}: {' '.join(v)}" for k, v in sorted(executed.items()))
    return f"trials:\n{trials}\nevents:\n{decisions}\nstep log:\n{rounds}"


_REFERENCE: dict[str, set] = {}


def reference_decisions(scheduler: str, folder: Path) -> set:
    """The decisions of an uninterrupted run of the same experiment (once per session)."""
    if scheduler not in _REFERENCE:
        outcome = run_case(folder / "reference", scheduler, "none")
        problems = check_run(outcome.run_dir, outcome.step_log, outcome.plan, [])
        assert not problems, "the uninterrupted reference run breaks the invariants:\n" + "\n".join(problems)
        _REFERENCE[scheduler] = asha_decisions(outcome.run_dir)
    return _REFERENCE[scheduler]


# ---------------------------------------------------------------------------
# The cases


@pytest.mark.parametrize("attempt", range(REPEAT), ids=lambda n: f"run{n}")
@pytest.mark.parametrize("point", KILL_POINTS)
@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_a_killed_driver_resumes_to_the_same_run(tmp_path, scheduler, point, attempt):
    outcome = run_case(tmp_path, scheduler, point)
    problems = check_run(outcome.run_dir, outcome.step_log, outcome.plan, outcome.kills)
    if scheduler == "asha":
        if point == "none" and not problems:  # this is the uninterrupted run: the reference
            _REFERENCE.setdefault(scheduler, asha_decisions(outcome.run_dir))
        expected = reference_decisions(scheduler, tmp_path)
        got = asha_decisions(outcome.run_dir)
        if got != expected:
            problems.append(
                f"ASHA decisions (x, rung, action) differ from an uninterrupted run: "
                f"missing {sorted(expected - got)}, extra {sorted(got - expected)}"
            )
    if outcome.ended_by_itself:  # the harness missed its point: the case checked less than it says
        problems.insert(0, f"harness: the driver ended before the kill point in rounds {outcome.ended_by_itself}")
    kills = [(k.round, sorted(k.ended), k.log_lines, k.left_over) for k in outcome.kills]
    assert not problems, (
        f"{scheduler} killed at {point} (round, ended on disk, step log lines, Ray PIDs cleaned up) {kills}:\n"
        + "\n".join(problems)
        + "\n"
        + describe(outcome.run_dir, outcome.step_log)
    )
