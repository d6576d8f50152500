"""The record of a run, without Ray: what every runtime tells it, and what it writes.

A runtime (Ray Tune today; the simulator and the many-short-trials runtime reuse it) calls
:class:`RunRecorder` with each report, each scheduler decision and each trial's end. The
recorder keeps the run's bookkeeping (best trial, goal, failure cap, time limit, progress)
and writes rows through the :class:`~scalehp.results.sink.ParquetSink`.

The tables are the run's truth:

* a trial's end (``trials`` row) and every decision that acts (a stop, a pause, an exploit,
  the end of the run) are on disk, fsynced, before the runtime acts on them
  (:meth:`RunRecorder.durable`); reports and ``continue`` decisions are batched, since a
  step whose row is lost is run again from the trial's checkpoint, and decided again;
* ``scalehp resume`` rebuilds the bookkeeping from the tables (:meth:`RunRecorder.seed`):
  a trial with a ``trials`` row, a ``stop`` decision, or a report at ``max_steps`` has
  finished and does not run again (a missing row is written from its reports); the
  decisions on disk are the decisions (a step run again is not decided again, see
  :meth:`RunRecorder.decided`); the time limit counts only the time the run was running.

The clock is injected (``time()`` for wall time in the tables, ``monotonic()`` for
durations), so tests drive a run with a fake clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time as _time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Protocol

from scalehp.compiler import Plan
from scalehp.results.schema import ColumnMap, describe_end, run_end
from scalehp.results.sink import ParquetSink

log = logging.getLogger(__name__)

ACTING = frozenset({"stop", "pause", "exploit", "explore", "end"})
"""Decisions that change what runs next: on disk before the runtime acts on them."""

NOT_DECISIONS = frozenset({"end", "retry", "resume"})
"""``events`` actions that are not a scheduler's decision about one trial's step."""


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...


SYSTEM_CLOCK: Clock = _time  # the module has both functions


@dataclass(frozen=True)
class Progress:
    """A snapshot of a running experiment, passed to ``on_progress``."""

    trials: int
    running: int
    completed: int
    stopped: int
    errors: int
    elapsed_s: float
    metric: str
    best: float | None = None
    best_trial: str | None = None
    infeasible: int = 0

    @property
    def done(self) -> int:
        return self.completed + self.stopped + self.errors + self.infeasible


class TrialRecord:
    """What the recorder knows of one trial until its row is written."""

    __slots__ = ("started", "step", "metrics", "best", "best_step", "node", "node_id", "retries", "params", "stopped")

    def __init__(self, started: float) -> None:
        self.started = started
        self.step: int | None = None
        self.metrics: dict[str, float] = {}
        self.best: float | None = None
        self.best_step: int | None = None
        self.node: str | None = None
        self.node_id: str | None = None
        self.retries = 0
        self.params: dict[str, Any] = {}  # param columns of the config it last ran with
        self.stopped = False  # a scheduler decided to stop it


def _utc(seconds: float | None) -> dt.datetime | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _seconds(value: Any) -> float | None:
    """A table's time value (pandas Timestamp, datetime, number) as epoch seconds."""
    if value is None or value != value:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RunRecorder:
    """The bookkeeping of one run; every row of its tables is written through it.

    Args:
        plan: the compiled plan.
        sink: where rows go.
        run_id: the run's id.
        clock: ``time()`` and ``monotonic()``; default: the system's.
    """

    def __init__(self, plan: Plan, sink: ParquetSink, run_id: str, clock: Clock = SYSTEM_CLOCK) -> None:
        exp = plan.experiment
        self.plan, self.sink, self.clock = plan, sink, clock
        self.metric, self.mode, self.goal = exp.metric.name, exp.metric.mode, exp.metric.goal
        self.max_failed = exp.failure.max_failed_trials
        self.max_steps = exp.budget.max_steps
        self.time_limit = exp.budget.time_limit
        self.soft_time_limit = exp.budget.soft_time_limit
        self.columns = plan.columns
        self.keys = {"run_id": run_id, "experiment": exp.name}
        self.metric_map = ColumnMap("metric", plan.metric_columns)  # declared metrics claim their columns first
        sink.metric_names = self.metric_map.names  # the same dict: names claimed later reach the part files too
        self.metric_map.add([self.metric, *exp.constraint_names])
        self.metric_column = self.metric_map[self.metric]
        self.constraint_columns = [self.metric_map[name] for name in exp.constraint_names]  # <= 0: a report counts
        self.trials: dict[str, TrialRecord] = {}
        self.statuses: dict[str, str] = {}  # trial id -> its final status (its row is written)
        self.decisions: dict[tuple[str, int, str], str] = {}  # (trial, step, scheduler) -> action
        self.best: tuple[float, str] | None = None
        self.failed = 0
        self.ended: dict[str, Any] | None = None  # why the run ended early (a normal end)
        self.closed: dict[str, Any] | None = None  # why no trial may start any more (the running ones go on)
        self.abort: str | None = None  # why the run must stop as an error
        self.used_s = 0.0  # running time of the run before this session (resume)
        self.started = clock.monotonic()
        self.counts: Counter[str] = Counter()  # final status -> trials with that row
        self.keep_statuses = True  # False: ended trials are counted, not remembered (the swarm runtime)
        self.keep_decisions = True  # False: decisions are written, not remembered (the runtime keeps its own)
        self.sync_ends = True  # False: a trial's end goes out with the next part, not fsynced at once
        self._deferred: int | None = None  # inside deferred(): durable() calls wanted, made once at its end

    # ------------------------------------------------------------------ reading the rules

    def better(self, a: float, b: float) -> bool:
        return a < b if self.mode == "min" else a > b

    def reached(self, value: float) -> bool:
        return self.goal is not None and (value <= self.goal if self.mode == "min" else value >= self.goal)

    @property
    def elapsed_s(self) -> float:
        """The run's own running time: earlier sessions plus this one."""
        return self.used_s + self.clock.monotonic() - self.started

    def feasible(self, columns: Mapping[str, Any]) -> bool:
        """Whether a report (its metric columns) meets every constraint: each reported and <= 0."""
        for column in self.constraint_columns:
            value = columns.get(column)
            if not isinstance(value, (int, float)) or not value <= 0:  # (missing, NaN: not met)
                return False
        return True

    def _feasible_rows(self, frame: Any) -> Any:
        """The rows of a reports frame that meet every constraint."""
        if not self.constraint_columns:
            return frame
        mask = frame.index == frame.index
        for column in self.constraint_columns:
            mask &= (frame[column] <= 0).to_numpy() if column in frame else False
        return frame[mask]

    def status(self, trial_id: str) -> str | None:
        """The trial's final status when its end is recorded; None while it may still run."""
        return self.statuses.get(trial_id)

    def decided(self, trial_id: str, step: int | None, scheduler: str) -> str | None:
        """The action recorded for this trial at this step (a step run again after a resume)."""
        return None if step is None else self.decisions.get((trial_id, int(step), scheduler))

    def over(self) -> bool:
        """Whether the whole run must stop now (ended early, aborted, or out of time)."""
        if self.ended is not None or self.abort:
            return True
        if self.time_limit is not None:
            elapsed = self.elapsed_s
            if elapsed >= self.time_limit:
                self.end_run("budget.time_limit", None, None, elapsed, self.time_limit)
                return True
        return False

    def may_start(self) -> bool:
        """Whether a new trial may start: the run goes on and ``budget.soft_time_limit`` is not spent
        (once it is, that is recorded, on disk, and the trials running finish)."""
        if self.over() or self.closed is not None:
            return False
        if self.soft_time_limit is not None:
            elapsed = self.elapsed_s
            if elapsed >= self.soft_time_limit:
                self.closed = {"reason": "budget.soft_time_limit", "trial_id": None, "step": None,
                               "value": elapsed, "cutoff": self.soft_time_limit}
                log.info("no trial starts any more: %s", describe_end(self.closed, self.metric, self.mode))
                self.sink.add("events", {**self.keys, "time": self.clock.time(), "action": "end", **self.closed})
                self.durable()
                return False
        return True

    def record(self, trial_id: str) -> TrialRecord:
        found = self.trials.get(trial_id)
        if found is None:
            found = self.trials[trial_id] = TrialRecord(self.clock.time())
        return found

    def params(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The param columns of a trial's config."""
        return {column: config.get(name) for name, column in self.columns.items()}

    # ------------------------------------------------------------------ what the runtime tells it

    def start(self, trial_id: str, config: Mapping[str, Any] | None = None) -> None:
        record = self.record(trial_id)
        if config is not None:
            record.params = self.params(config)

    def set_config(self, trial_id: str, config: Mapping[str, Any]) -> None:
        """The trial runs with another config from now on (a PBT exploit)."""
        self.record(trial_id).params = self.params(config)

    def report(
        self,
        trial_id: str,
        step: int | None,
        metrics: Mapping[str, float],
        *,
        config: Mapping[str, Any] | None = None,
        time: float | None = None,
        elapsed_s: float | None = None,
        node: str | None = None,
        node_id: str | None = None,
    ) -> None:
        """One report: a ``reports`` row (batched); the goal, when reached, ends the run."""
        if trial_id in self.statuses:
            return  # ended before a resume: its rows are written
        record = self.record(trial_id)
        if config is not None:
            record.params = self.params(config)
        self.metric_map.add(metrics)  # names seen for the first time claim their columns
        columns = {self.metric_map[k]: v for k, v in metrics.items()}
        record.step = int(step) if step is not None else record.step
        record.metrics = columns
        record.node = node or record.node
        record.node_id = node_id or record.node_id
        value = columns.get(self.metric_column)
        if value is not None and not math.isfinite(value):
            value = None  # NaN or inf: the worst value, never a best nor a goal reached
        if value is not None and not self.feasible(columns):
            value = None  # a constraint not met: neither a best nor a goal reached
        if value is not None:
            if record.best is None or self.better(value, record.best):
                record.best, record.best_step = value, record.step
            if self.best is None or self.better(value, self.best[0]):
                self.best = (value, trial_id)
        self.sink.add(
            "reports",
            {
                **self.keys,
                "trial_id": trial_id,
                "step": step,
                "time": time if time is not None else self.clock.time(),
                "elapsed_s": elapsed_s,
                "node_id": node_id,
                **record.params,
                **columns,
            },
        )
        if value is not None and self.reached(value):
            self.end_run("metric.goal", trial_id, record.step, value, self.goal)

    def decide(self, event: Mapping[str, Any]) -> None:
        """A scheduler's decision (an ``events`` row); on disk now when it acts (see :data:`ACTING`)."""
        trial_id, step, action = event.get("trial_id"), event.get("step"), event["action"]
        if trial_id is not None and step is not None and event.get("scheduler"):
            key = (trial_id, int(step), event["scheduler"])
            if action in ("exploit", "explore"):
                key = (trial_id, int(step), f"{event['scheduler']}.{action}")
            if self.keep_decisions:
                self.decisions[key] = action
        if action == "stop" and trial_id is not None:
            self.record(trial_id).stopped = True
        self.sink.add("events", {**self.keys, "time": self.clock.time(), **event})
        if action in ACTING:
            self.durable()

    def retry(self, trial_id: str, reason: str, *, from_start: bool = False) -> None:
        """A failed attempt that the runtime runs again: one ``retry`` event saying why.

        ``from_start``: it runs again from step 1 (no checkpoint), so what it reported so far
        no longer counts (its best value; its rows are replaced step by step when read)."""
        record = self.record(trial_id)
        record.retries += 1
        if from_start:
            record.best = record.best_step = None
        row = {"trial_id": trial_id, "step": record.step, "action": "retry", "reason": reason}
        self.sink.add("events", {**self.keys, "time": self.clock.time(), **row})

    def end_trial(
        self, trial_id: str, *, error: str | None = None, config: Mapping[str, Any] | None = None, status: str | None = None
    ) -> str | None:
        """The trial ended: its ``trials`` row, on disk before the runtime goes on.

        The status: ``error`` with an error; ``completed`` when it reported ``max_steps``
        and no scheduler stopped it; else ``stopped``. Returns it (None: already recorded).
        """
        if trial_id in self.statuses:
            return None
        record = self.record(trial_id)
        if config is not None:
            record.params = self.params(config)
        if status is None:
            finished = record.step is not None and record.step >= self.max_steps
            status = "error" if error is not None else "stopped" if record.stopped or not finished else "completed"
        self._write_row(trial_id, status, error)
        del self.trials[trial_id]  # its row holds it now: memory does not grow with ended trials
        if status == "error":
            self.failed += 1
            if self.max_failed is not None and self.failed >= self.max_failed:
                self.end_run("failure.max_failed_trials", trial_id, record.step, self.failed, self.max_failed)
        if self.sync_ends:
            self.durable()
        return status

    def _write_row(self, trial_id: str, status: str, error: str | None = None) -> None:
        record = self.record(trial_id)
        if self.keep_statuses:
            self.statuses[trial_id] = status
        self.counts[status] += 1
        self.sink.add(
            "trials",
            {
                **self.keys,
                "trial_id": trial_id,
                "status": status,
                "error": error,
                "steps": record.step,
                "best_value": record.best,
                "best_step": record.best_step,
                "retries": record.retries,
                "node": record.node,
                "node_id": record.node_id,
                "started_at": _utc(record.started),
                "ended_at": _utc(self.clock.time()),
                **record.params,
                **record.metrics,
            },
        )

    def end_run(self, reason: str, trial_id: str | None, step: int | None, value: float, cutoff: float) -> None:
        """End the whole run early (a normal end): recorded once, on disk before anything stops."""
        if self.ended is not None or self.abort:
            return
        self.ended = {"reason": reason, "trial_id": trial_id, "step": step, "value": value, "cutoff": cutoff}
        log.info("the run ends early: %s", describe_end(self.ended, self.metric, self.mode))
        self.sink.add("events", {**self.keys, "time": self.clock.time(), "action": "end", **self.ended})
        self.durable()

    def stop_unfinished(self, configs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """A ``stopped`` row for every trial that had started and has none yet (the run ended early)."""
        for trial_id in list(self.trials):
            if trial_id not in self.statuses:
                config = (configs or {}).get(trial_id)
                if config is not None:
                    self.record(trial_id).params = self.params(config)
                self._write_row(trial_id, "stopped")
        self.durable()

    def durable(self) -> None:
        """Everything recorded so far on disk (fsynced) now: the sink's journal, or parts."""
        if self._deferred is not None:
            self._deferred += 1
            return
        self.sink.commit()

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Calls to :meth:`durable` inside wait for its end, then one commit covers them all:
        a runtime that decides about many trials at once acts on none of them before it returns."""
        if self._deferred is not None:
            yield
            return
        self._deferred = 0
        try:
            yield
        finally:
            wanted, self._deferred = self._deferred, None
            if wanted:
                self.sink.commit()

    def tick(self) -> None:
        """Batched rows go out every ``flush_seconds``; call it now and then."""
        self.sink.tick()

    def close(self) -> None:
        """Every row in a part file."""
        self.sink.flush()

    def progress(self, running: int) -> Progress:
        statuses = self.counts
        return Progress(
            # once no trial may start, the run is the trials that did
            trials=self.plan.trials if self.closed is None else sum(statuses.values()) + len(self.trials),
            running=running,
            completed=statuses["completed"],
            stopped=statuses["stopped"],
            errors=statuses["error"],
            infeasible=statuses["infeasible"],
            elapsed_s=self.clock.monotonic() - self.started,
            metric=self.metric,
            best=self.best[0] if self.best else None,
            best_trial=self.best[1] if self.best else None,
        )

    # ------------------------------------------------------------------ resume

    def seed(self, trials: Any, reports: Any, events: Any, metric_columns: Mapping[str, str] | None = None,
             created_at: Any = None, ended_records: bool = True) -> list[str]:
        """Rebuild the bookkeeping of an interrupted run from its tables (``scalehp resume``).

        A trial has finished when it has a ``trials`` row, a ``stop`` decision, or a report at
        ``max_steps``; those without a row get one now, from their reports. Returns the trials
        that finished that way (their rows were missing). ``ended_records=False``: no record
        is rebuilt for a trial with a ``trials`` row (a million-trial run resumes in seconds).
        """
        for name, column in (metric_columns or {}).items():
            self.metric_map.keep(name, column)
        for row in trials.itertuples(index=False):
            self.statuses[row.trial_id] = row.status
        self.counts = Counter(self.statuses.values())
        self.failed = list(self.statuses.values()).count("error")
        stopped: set[str] = set()
        if len(events):
            for row in events.to_dict("records"):
                action, trial_id, step = row.get("action"), row.get("trial_id"), _plain(row.get("step"))
                scheduler = row.get("scheduler")
                if action in NOT_DECISIONS or trial_id is None or step is None or not scheduler:
                    continue
                name = f"{scheduler}.{action}" if action in ("exploit", "explore") else scheduler
                self.decisions[(trial_id, int(step), name)] = action
                if action == "stop":
                    stopped.add(trial_id)
            self.ended = run_end(events)
            if self.ended is not None and self.ended.get("reason") == "budget.soft_time_limit":
                self.closed, self.ended = self.ended, None  # started trials finish; none starts
        if len(reports):
            self._seed_reports(reports if ended_records else reports[~reports["trial_id"].isin(self.statuses.keys())])
            self._seed_best(reports)
        for trial_id in stopped:
            self.record(trial_id).stopped = True
        self.used_s = _used_seconds(created_at, trials, reports, events)
        recovered = []
        for trial_id, record in self.trials.items():
            if trial_id in self.statuses:
                continue
            if record.stopped or (record.step is not None and record.step >= self.max_steps):
                self._write_row(trial_id, "stopped" if record.stopped else "completed")
                recovered.append(trial_id)
        if self.ended is None and self.max_failed is not None and self.failed >= self.max_failed:
            self.end_run("failure.max_failed_trials", None, None, self.failed, self.max_failed)
        if self.ended is None and self.goal is not None and self.metric_column in reports:
            feasible = self._feasible_rows(reports)
            hits = feasible[feasible[self.metric_column].map(lambda v: math.isfinite(v) and self.reached(v))]
            if len(hits):  # the first report that reached the goal, as the live run saw it
                first = hits.sort_values(["time", "step"], kind="stable").iloc[0]
                self.end_run("metric.goal", first["trial_id"], int(first["step"]), float(first[self.metric_column]), self.goal)
        self.sink.add("events", {**self.keys, "time": self.clock.time(), "action": "resume", "value": self.used_s})
        self.durable()
        return recovered

    def _seed_reports(self, reports: Any) -> None:
        ordered = reports.sort_values(["trial_id", "step"])
        params = [c for c in reports.columns if c.startswith("param_")]
        column = self.metric_column
        for trial_id, rows in ordered.groupby("trial_id", sort=False):
            record = self.record(trial_id)
            first, last = rows.iloc[0], rows.iloc[-1]
            record.started = _seconds(first.get("time")) or record.started
            record.step = int(last["step"])
            record.params = {c: _plain(last[c]) for c in params}
            record.metrics = {c: float(last[c]) for c in rows.columns if c.startswith("metric_") and last[c] == last[c]}
            node_id = _plain(last.get("node_id"))
            record.node_id = node_id
            if column in rows:
                values = self._feasible_rows(rows)[["step", column]].dropna()
                values = values[values[column].map(math.isfinite)]  # NaN, inf: never the best
                if len(values):
                    best = values.loc[values[column].idxmin() if self.mode == "min" else values[column].idxmax()]
                    record.best, record.best_step = float(best[column]), int(best["step"])

    def _seed_best(self, reports: Any) -> None:
        """The run's best report so far (NaN and inf never the best)."""
        column = self.metric_column
        if column not in reports:
            return
        import numpy as np

        reports = self._feasible_rows(reports)
        values = reports[column].to_numpy(dtype=float)
        sign = 1.0 if self.mode == "min" else -1.0
        scored = np.where(np.isfinite(values), sign * values, np.inf)
        if len(scored) and np.isfinite(scored.min()):
            at = int(np.argmin(scored))
            self.best = (float(values[at]), reports["trial_id"].iloc[at])


def _used_seconds(created_at: Any, trials: Any, reports: Any, events: Any) -> float:
    """How long an interrupted run was running: each session from its start (the plan's
    ``created_at``, then each ``resume`` event) to the last row it wrote."""
    start = _seconds(created_at)
    if start is None:
        return 0.0
    starts = [start]
    if len(events) and "action" in events:
        starts += sorted(s for s in (_seconds(t) for t in events.loc[events["action"] == "resume", "time"]) if s)
    stamps: list[float] = []
    for frame, column in ((reports, "time"), (events, "time"), (trials, "ended_at")):
        if len(frame) and column in frame:
            stamps += [s for s in (_seconds(t) for t in frame[column]) if s is not None]
    stamps.sort()
    used = 0.0
    for i, begin in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else math.inf
        inside = [s for s in stamps if begin <= s < end]
        if inside:
            used += max(0.0, inside[-1] - begin)
    return used

