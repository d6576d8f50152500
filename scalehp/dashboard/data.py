"""What the dashboard shows, as JSON-ready dicts, from the run folders' tables (never Ray).

A :class:`Board` serves one results root. Each run keeps a :class:`RunState`: the ``trials``
and ``events`` tables, read again whenever their part files change, and a *digest* of each
``reports`` part file, made once: part files are written whole and never change, so a
refresh reads only the parts (and journal rows) that are new. A part's digest holds

* the reports where the experiment's metric improved on the part's own best so far (the
  run's best-so-far curve is exactly the running best over these rows of all parts),
* its report times, sorted (the number of steps run by a given time, for best so far over steps),
* every row of the trials whose id hashes lowest (*bottom-k* sampling): the run's
  :data:`SAMPLE` trials with the lowest hashes are among every part's lowest, so the
  learning curves of a stable random sample of the run's trials need no second read,
* each row's (trial, step) key: a step reported twice (a retried or resumed trial) counts
  once, the row written last, as :func:`~scalehp.results.store.read_table` has it.

The run also keeps every trial id that reported, each hashed once (running trials are those
with reports and no ``trials`` row). So a root of 100,000 trials and 10 million report rows is
read once, and a refresh costs the new part files. Curves are downsampled here, and the page
says what it shows.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scalehp.errors import ResultsError
from scalehp.results.journal import FOLDER as JOURNAL
from scalehp.results.schema import TABLES, metric_names_of, param_names_of
from scalehp.results.store import (
    find_runs,
    folder_name,
    journal_tables,
    part_schemas,
    read_plan,
    read_table,
    run_id_of,
)

SAMPLE = 200  # learning curves: this many trials of a run, picked by the lowest hash of their ids
POINTS = 400  # at most this many points per curve sent to the page
TABLE_ROWS = 100  # trial table: rows per page
PARALLEL = 1000  # parallel coordinates: at most this many trials (the best ones)


class NoSuchRun(ResultsError):
    """A run id the root does not hold (the dashboard answers 404)."""


class Ids:
    """Every trial id a run reported, in order first seen, each with a stable hash (crc32) computed once."""

    def __init__(self) -> None:
        self.ids = pa.array([], pa.string())
        self.hashes = np.array([], np.uint64)

    def hash(self, unique: pa.Array) -> np.ndarray:
        """The hashes of ``unique`` (distinct ids), learning the new ones."""
        where = pc.index_in(unique, value_set=self.ids)
        new = unique.filter(pc.is_null(where))
        if len(new):
            fresh = np.fromiter((zlib.crc32(i.encode()) for i in new.to_pylist()), dtype=np.uint64, count=len(new))
            self.ids = pa.concat_arrays([self.ids, new.cast(pa.string())])
            self.hashes = np.concatenate([self.hashes, fresh])
            where = pc.index_in(unique, value_set=self.ids)
        return self.hashes[where.to_numpy(zero_copy_only=False)]


def _plain(value: Any) -> Any:
    """A JSON value: NaN and infinities as strings the page shows as they are, numpy as Python."""
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except ValueError:  # NaT
            return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    try:
        if value != value:  # pandas NA / NaT
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _downsample(x: np.ndarray, y: np.ndarray, points: int = POINTS) -> tuple[list, list]:
    """At most ``points`` of a curve: evenly strided, the last point kept, and every point
    where ``y`` changes kept first when those alone fit (a best-so-far curve stays exact)."""
    if len(x) <= points:
        return x.tolist(), y.tolist()
    changes = np.union1d(np.flatnonzero(np.r_[True, y[1:] != y[:-1]]), [len(y) - 1])
    if len(changes) <= points:
        return x[changes].tolist(), y[changes].tolist()
    keep = np.unique(np.r_[np.linspace(0, len(x) - 1, points).astype(int)])
    return x[keep].tolist(), y[keep].tolist()


@dataclass
class Digest:
    """What a run's views need of one ``reports`` part file (see the module docstring)."""

    improved: pa.Table  # time (int64 us), value: where the part's running best improved
    times: np.ndarray  # int64 us, sorted
    sample: pa.Table  # every row of the part's SAMPLE lowest-hash trials: trial_id, step, time, elapsed_s, metric_*
    sample_ids: pa.Array  # the ids of those trials
    sample_hashes: np.ndarray  # and their hashes
    keys: np.ndarray  # each row's (trial, step) as one int64: the trial's index in the run's Ids, and the step
    kept: np.ndarray | None = None  # rows counted (None: all); rows a later one replaced are not


def _nothing() -> Digest:
    empty = pa.table({"time": pa.array([], pa.int64()), "value": pa.array([], pa.float64())})
    return Digest(
        empty,
        np.array([], np.int64),
        pa.table({}),
        pa.array([], pa.string()),
        np.array([], np.uint64),
        np.array([], np.int64),
    )


def _as_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)


def digest(part: pa.Table, metric_column: str | None, mode: str, known: Ids, kept: np.ndarray | None = None) -> Digest:
    """The :class:`Digest` of one reports part (or of the journal's reports rows); ``known`` learns its ids.

    ``kept``: a mask of the rows to count; the others were reported again later (a retried or
    resumed trial's step), and the tables hold the later row only.
    """
    ids = part["trial_id"]
    unique = pc.unique(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    hashes = known.hash(unique)
    index = pc.index_in(ids, value_set=known.ids).to_numpy(zero_copy_only=False).astype(np.int64)
    steps = pc.fill_null(part["step"], -1).to_numpy(zero_copy_only=False).astype(np.int64) & 0xFFFFFFFF
    keys = (index << 32) | steps
    if kept is not None:
        part = part.filter(pa.array(kept))
    times = _as_us(part["time"]) if part.num_rows else np.array([], dtype=np.int64)
    order = np.argsort(times, kind="stable")
    # improvements of the running best, in time order (NaN and inf are never a best)
    if metric_column is not None and metric_column in part.column_names and part.num_rows:
        values = part[metric_column].to_numpy(zero_copy_only=False).astype(float)[order]
        signed = np.where(np.isfinite(values), values if mode == "min" else -values, np.inf)
        running = np.minimum.accumulate(signed)
        first = np.r_[True, running[1:] < running[:-1]] & np.isfinite(running)
        improved = pa.table({"time": times[order][first], "value": values[first]})
    else:
        improved = _nothing().improved
    lowest = np.argsort(hashes, kind="stable")[:SAMPLE]
    chosen = unique.take(pa.array(lowest))
    keep = [c for c in part.column_names if c in ("trial_id", "step", "time", "elapsed_s") or c.startswith("metric_")]
    sample = part.select(keep).filter(pc.is_in(part["trial_id"], value_set=chosen))
    return Digest(improved, times[order], sample, chosen, hashes[lowest], keys, kept)


def _fingerprint(run: Any, filesystem: Any = None) -> tuple:
    """Names and sizes of every file of a run's tables and journal: changes when anything lands."""
    found: list = []
    if filesystem is not None:  # an object store: one listing of the run's folders
        import pyarrow.fs as pafs

        for folder in TABLES:
            selector = pafs.FileSelector(f"{run}/{folder}", allow_not_found=True)
            found += [(folder, f.base_name, f.size) for f in filesystem.get_file_info(selector) if not f.base_name.startswith(".")]
        return tuple(sorted(found))
    for folder in (*TABLES, JOURNAL):
        try:
            with os.scandir(run / folder) as entries:
                for entry in entries:
                    if not entry.name.startswith("."):
                        try:
                            found.append((folder, entry.name, entry.stat().st_size))
                        except OSError:
                            continue
        except OSError:
            continue
    try:
        found.append(("plan", (run / "plan.json").stat().st_mtime_ns))
    except OSError:
        pass
    return tuple(sorted(found))


def _read_part(
    path: Any, columns: list[str] | None, metric_columns: dict[str, str], where: Any = None, filesystem: Any = None
) -> pa.Table:
    """One reports part (the given columns, the rows ``where`` keeps), its metric columns named as the run names them."""
    import pyarrow.parquet as pq

    try:
        part = pq.read_table(str(path), columns=columns, filters=where, filesystem=filesystem)
    except (pa.ArrowException, OSError) as exc:
        raise ResultsError(f"{path}: unreadable Parquet data ({exc})", damaged=True) from None
    names = metric_names_of(part.schema)
    renamed = [metric_columns.get(names[c], c) if c in names else c for c in part.column_names]
    return pa.Table.from_arrays(part.columns, names=renamed)


class RunState:
    """One run's tables and digests, refreshed from whatever landed since the last look."""

    def __init__(self, folder: Any, plan: dict[str, Any], filesystem: Any = None) -> None:
        self.folder = folder  # a Path, or a path in ``filesystem`` (an object store)
        self.filesystem = filesystem
        self.plan = plan
        self.run_id = run_id_of(plan, folder)
        experiment = plan.get("experiment") or {}
        metric = experiment.get("metric") or {}
        self.metric, self.mode = str(metric.get("name", "")), str(metric.get("mode", "min"))
        self.fingerprint: tuple = ()
        self.version = 0
        self.trials = read_table([], "trials")
        self.events = read_table([], "events")
        self.metric_columns: dict[str, str] = {}
        self.param_columns: dict[str, str] = {}
        self.digests: dict[Any, Digest] = {}
        self.known = Ids()  # every trial id that reported
        self._decisions: tuple[int, dict] = (-1, {})
        self._reports_of: dict[str, tuple[set, list]] = {}
        self._keyset: np.ndarray | None = None  # every part's (trial, step) keys, sorted
        self._twice = False  # some key is in the parts twice
        self.pending = _nothing()  # the journal's reports rows that no part holds yet
        self.lock = threading.RLock()  # held by a refresh and by every view (requests come on several threads)

    # -- refresh

    def refresh(self) -> bool:
        """Read what changed; True if anything did."""
        with self.lock:
            now = _fingerprint(self.folder, self.filesystem)
            if now == self.fingerprint:
                return False
            runs = [self.folder]
            found = part_schemas(runs, "reports", self.filesystem)
            # one run wrote one name -> column map into every part (as Results.metric_columns reads it)
            self.metric_columns = {n: c for schema in found.values() for c, n in metric_names_of(schema).items()}
            changed = {f for f, *_ in set(now) ^ set(self.fingerprint)}
            if not self.fingerprint or changed & {"trials", JOURNAL}:
                self.trials = read_table(runs, "trials", self.filesystem, self.metric_columns)
            if not self.fingerprint or changed & {"events", JOURNAL}:
                self.events = read_table(runs, "events", self.filesystem, self.metric_columns)
            if not self.fingerprint or changed & {"reports", JOURNAL}:
                self._digest_reports(runs, found)
            self.param_columns = {**param_names_of(self.trials.schema)}
            for name, column in (self.plan.get("columns") or {}).items():
                if isinstance(name, str) and isinstance(column, str):
                    self.param_columns.setdefault(column, name)
            self.fingerprint = now
            self.version += 1
            return True

    def _digest_reports(self, runs: list[Path], found: dict[Any, pa.Schema]) -> None:
        pending = journal_tables(runs, "reports", found) if self.filesystem is None else []
        rows = pa.concat_tables(pending, promote_options="permissive") if pending else None
        if rows is not None:  # names only the journal has met yet
            for c, name in metric_names_of(rows.schema).items():
                self.metric_columns.setdefault(name, c)
        column = self.metric_columns.get(self.metric)
        if any(p not in found for p in self.digests):  # parts replaced (a resume wrote its journal): read again
            self.digests, self.known, self._reports_of, self._keyset, self._twice = {}, Ids(), {}, None, False
        new = [path for path in found if path not in self.digests]
        for path in new:
            self.digests[path] = digest(self._read(path, found[path]), column, self.mode, self.known)
        self.pending = digest(rows, column, self.mode, self.known) if rows is not None and rows.num_rows else _nothing()
        self._replaced(new, found, column)

    def _read(self, path: Any, schema: pa.Schema) -> pa.Table:
        columns = [c for c in ("trial_id", "step", "time", "elapsed_s") if c in schema.names]
        columns += [c for c in schema.names if c.startswith("metric_")]
        return _read_part(path, columns, self.metric_columns, filesystem=self.filesystem)

    def _replaced(self, new: list, found: dict, column: str | None) -> None:
        """A (trial, step) reported twice counts once, as the tables have it: the last row written wins.

        The common case costs a sorted array of every part's keys, merged with each new part's;
        only when some key is there twice is every row's fate worked out, and the parts that
        hold a replaced row digested again without it.
        """
        added = [self.digests[p].keys for p in new]
        if added:
            merged = np.concatenate([self._keyset, *added]) if self._keyset is not None else np.concatenate(added)
            merged = np.sort(merged, kind="stable")
            self._twice = self._twice or bool(len(merged) > 1 and (merged[1:] == merged[:-1]).any())
            self._keyset = merged
        journal = self.pending.keys
        twice = self._twice or len(np.unique(journal)) < len(journal)
        if len(journal) and self._keyset is not None and len(self._keyset) and not twice:
            at = np.searchsorted(self._keyset, journal).clip(0, len(self._keyset) - 1)
            twice = bool((self._keyset[at] == journal).any())
        if not twice:
            return
        order = [*self.digests, None]  # parts in the order read_table concatenates them, then the journal
        keys = np.concatenate([self.digests[p].keys if p is not None else journal for p in order])
        _, last = np.unique(keys[::-1], return_index=True)
        kept = np.zeros(len(keys), dtype=bool)
        kept[len(keys) - 1 - last] = True
        start = 0
        for path in order:
            d = self.digests[path] if path is not None else self.pending
            mine = kept[start : start + len(d.keys)]
            start += len(d.keys)
            now = None if mine.all() else mine
            if (now is None and d.kept is None) or (now is not None and d.kept is not None and (now == d.kept).all()):
                continue
            if path is None:
                rows = pa.concat_tables(journal_tables([self.folder], "reports", found), promote_options="permissive")
                self.pending = digest(rows, column, self.mode, self.known, now)
            else:
                self.digests[path] = digest(self._read(path, found[path]), column, self.mode, self.known, now)

    def all_digests(self) -> list[Digest]:
        return [*self.digests.values(), self.pending]

    # -- views

    def counts(self) -> dict[str, Any]:
        """Progress: done by status, running, pending, rate and ETA against the budget."""
        statuses = pc.value_counts(self.trials["status"]).to_pylist() if self.trials.num_rows else []
        done = {str(s["values"]): int(s["counts"]) for s in statuses}
        running = len(self.running())
        planned = self.plan.get("trials")
        planned = int(planned) if isinstance(planned, int) and not isinstance(planned, bool) else None
        total_done = sum(done.values())
        ended = self.ended()
        pending = 0 if ended or planned is None else max(0, planned - total_done - running)
        rate, eta = self._rate(total_done, running, pending)
        return {
            "done": total_done,
            "by_status": done,
            "running": 0 if ended else running,
            "pending": pending,
            "planned": planned,
            "per_minute": rate,
            "eta_s": eta,
            "ended": ended,
            "time_left_s": None if ended else self._time_left(),
        }

    def _time_left(self) -> float | None:
        """Seconds left of ``budget.time_limit`` (counted from the run's start, ``created_at``), if it has one."""
        import datetime as dt

        limit = ((self.plan.get("experiment") or {}).get("budget") or {}).get("time_limit")
        created = self.plan.get("created_at")
        if not isinstance(limit, (int, float)) or isinstance(limit, bool) or not isinstance(created, str):
            return None
        try:
            started = dt.datetime.fromisoformat(created).timestamp()
        except ValueError:
            return None
        return max(0.0, float(limit) - (time.time() - started))

    def running(self) -> pa.Array:
        """Ids of the trials that reported and have no ``trials`` row yet."""
        if not self.trials.num_rows:
            return self.known.ids
        return self.known.ids.filter(pc.invert(pc.is_in(self.known.ids, value_set=self.trials["trial_id"])))

    def _rate(self, done: int, running: int, pending: int) -> tuple[float | None, float | None]:
        if not self.trials.num_rows or "ended_at" not in self.trials.column_names:
            return None, None
        ends = _as_us(self.trials["ended_at"].drop_null())
        if len(ends) < 2:
            return None, None
        ends = np.sort(ends)
        recent = ends[-min(len(ends), 200) :]  # the pace of the last 200 ends
        span_min = (recent[-1] - recent[0]) / 60e6
        if span_min <= 0:
            return None, None
        rate = (len(recent) - 1) / span_min
        left = pending + running
        return rate, (left / rate * 60.0 if left and rate > 0 else (0.0 if not left else None))

    def ended(self) -> dict[str, Any] | None:
        """The run's end: its ``end`` event (why it stopped early), or every planned trial done."""
        if self.events.num_rows:
            ends = self.events.filter(pc.equal(self.events["action"], "end"))
            if ends.num_rows:
                return {"reason": _plain(ends["reason"][0].as_py())}
        planned = self.plan.get("trials")
        if isinstance(planned, int) and self.trials.num_rows >= planned:
            return {"reason": "every planned trial ended"}
        return None

    def best(self) -> dict[str, Any] | None:
        if not self.trials.num_rows:
            return None
        values = self.trials["best_value"].to_numpy(zero_copy_only=False).astype(float)
        scored = np.where(np.isfinite(values), values if self.mode == "min" else -values, np.inf)
        if not np.isfinite(scored.min()):
            return None
        i = int(np.argmin(scored))
        row = self.trials.slice(i, 1).to_pylist()[0]
        return {
            "trial_id": row["trial_id"],
            "value": _plain(row["best_value"]),
            "step": _plain(row.get("best_step")),
            "params": {self.param_columns.get(c, c[6:]): _plain(v) for c, v in row.items() if c.startswith("param_")},
        }

    def best_so_far(self) -> dict[str, Any]:
        """The best value over wall time and over steps run by all trials together (exact, downsampled)."""
        improved = [d.improved for d in self.all_digests() if d.improved.num_rows]
        times = [d.times for d in self.all_digests() if len(d.times)]
        if not improved or not times:
            return {"wall": {"x": [], "y": []}, "steps": {"x": [], "y": []}}
        table = pa.concat_tables(improved)
        t = table["time"].to_numpy()
        v = table["value"].to_numpy(zero_copy_only=False).astype(float)
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        signed = v if self.mode == "min" else -v
        running = np.minimum.accumulate(signed)
        keep = np.r_[True, running[1:] < running[:-1]]
        t, best = t[keep], (running if self.mode == "min" else -running)[keep]
        start = min(int(x[0]) for x in times)
        end = max(int(x[-1]) for x in times)
        steps = sum(np.searchsorted(x, t, side="right") for x in times)
        total = sum(len(x) for x in times)
        wall_x = np.r_[(t - start) / 1e6, (end - start) / 1e6]
        step_x = np.r_[steps, total].astype(float)
        wall = _downsample(wall_x, np.r_[best, best[-1]])
        by_steps = _downsample(step_x, np.r_[best, best[-1]])
        return {"wall": {"x": wall[0], "y": _plain(wall[1])}, "steps": {"x": by_steps[0], "y": _plain(by_steps[1])}}

    def reports_of(self, trial_id: str) -> pa.Table:
        """Every report of one trial: the parts read once for it (new parts only, later), and the journal."""
        done, parts = self._reports_of.pop(trial_id, (set(), []))
        new = [path for path in self.digests if path not in done]
        for path in new:
            table = _read_part(path, None, self.metric_columns, pc.field("trial_id") == trial_id, self.filesystem)
            if table.num_rows:
                parts.append(table)
        self._reports_of[trial_id] = (done | set(new), parts)  # the last few trials asked for (the best one)
        while len(self._reports_of) > 8:
            self._reports_of.pop(next(iter(self._reports_of)))
        pending = [] if self.filesystem else journal_tables([self.folder], "reports", part_schemas([self.folder], "reports"))
        pending = [t.filter(pc.equal(t["trial_id"], trial_id)) for t in pending]
        both = [*parts, *(t for t in pending if t.num_rows)]
        if not both:
            return read_table([], "reports")
        return pa.concat_tables(both, promote_options="permissive")

    def decisions(self) -> dict[str, dict[str, Any]]:
        """Each trial's last scheduler decision that mattered (stop, pause, exploit, promoted)."""
        if self._decisions[0] != self.version:
            self._decisions = (self.version, self._decide())
        return self._decisions[1]

    def _decide(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not self.events.num_rows:
            return out
        frame = self.events.select(
            [c for c in ("trial_id", "step", "scheduler", "action", "rung", "cutoff", "reason") if c in self.events.column_names]
        ).to_pylist()
        for row in frame:
            action = row.get("action")
            if action == "end" and row.get("reason") == "metric.goal" and row.get("trial_id"):
                out[row["trial_id"]] = {"action": "goal", "label": f"reached the goal at step {row.get('step')}", "scheduler": None}
            if action in ("end", "skip", "retry", "resume", None):  # not a scheduler's decision about the trial
                continue
            label = {
                "stop": f"stopped at step {row.get('step')}"
                + (f" (rung {row['rung']})" if row.get("rung") is not None else ""),
                "pause": f"paused at step {row.get('step')}",
                "continue": f"promoted at rung {row.get('rung')}" if row.get("rung") is not None else "continued",
                "exploit": f"exploited at step {row.get('step')}",
                "explore": f"explored at step {row.get('step')}",
            }.get(action, str(action))
            out[row["trial_id"]] = {"action": action, "label": label, "scheduler": row.get("scheduler")}
        return out

    def curves(self, metric: str | None = None, best: str | None = None) -> dict[str, Any]:
        """Learning curves of a stable sample of trials and of the ``best`` trial, downsampled."""
        metric = metric or self.metric
        column = self.metric_columns.get(metric)
        known = sorted(self.metric_columns)
        if column is None:
            return {
                "metric": metric,
                "metrics": known,
                "curves": [],
                "trials": 0,
                "shown": 0,
                "note": f"no trial reported {metric!r} yet",
            }
        hashes: dict[str, int] = {}
        for d in self.all_digests():
            hashes.update(zip(d.sample_ids.to_pylist(), d.sample_hashes.tolist()))
        chosen = set(sorted(hashes, key=lambda i: (hashes[i], i))[:SAMPLE])
        parts = [
            d.sample.select([c for c in ("trial_id", "step", "time", column) if c in d.sample.column_names])
            for d in self.all_digests()
            if d.sample.num_rows and column in d.sample.column_names
        ]
        rows = pa.concat_tables(parts, promote_options="permissive") if parts else None
        total = len(self.known.ids)
        best_ids = [best] if best is not None and best not in chosen else []
        frames = []
        if rows is not None and rows.num_rows:
            frames.append(rows.filter(pc.is_in(rows["trial_id"], value_set=pa.array(sorted(chosen), pa.string()))))
        for trial_id in best_ids:
            found = self.reports_of(trial_id)
            if column in found.column_names:
                frames.append(found.select(["trial_id", "step", "time", column]))
        decided = self.decisions()
        shown_ids = pa.array(sorted(chosen | set(best_ids)), pa.string())
        rows_of = (
            self.trials.filter(pc.is_in(self.trials["trial_id"], value_set=shown_ids))
            if self.trials.num_rows
            else self.trials
        )
        status = dict(zip(rows_of["trial_id"].to_pylist(), rows_of["status"].to_pylist()))
        out = []
        if frames:
            table = pa.concat_tables(
                [f.select(["trial_id", "step", column]) for f in frames], promote_options="permissive"
            )
            frame = (
                table.to_pandas().drop_duplicates(["trial_id", "step"], keep="last").sort_values(["trial_id", "step"])
            )
            for trial_id, group in frame.groupby("trial_id", sort=True):
                x, y = _downsample(group["step"].to_numpy(float), group[column].to_numpy(float))
                d = decided.get(trial_id)
                out.append(
                    {
                        "trial_id": trial_id,
                        "x": x,
                        "y": _plain(y),
                        "status": status.get(trial_id, "running"),
                        "decision": d["action"] if d else None,
                        "label": d["label"] if d else status.get(trial_id, "running"),
                        "best": trial_id == best,
                    }
                )
        shown = len(out)
        note = f"{len(chosen)} of {total} trials sampled (lowest id hash), plus the best" if total > len(chosen) else ""
        return {"metric": metric, "metrics": known, "curves": out, "trials": total, "shown": shown, "note": note}

    def trial_table(
        self,
        sort: str = "best_value",
        desc: bool = False,
        query: str = "",
        status: str = "",
        offset: int = 0,
        limit: int = TABLE_ROWS,
    ) -> dict[str, Any]:
        """One page of the trials, running ones included, filtered and sorted on the server."""
        table = self.trials
        running = self.running()
        if len(running) and not self.ended():
            extra = pa.table({"trial_id": running, "status": pa.array(["running"] * len(running), pa.string())})
            table = pa.concat_tables([table, extra], promote_options="permissive")
        decided = self.decisions()
        if table.num_rows:
            table = table.append_column(
                "decision",
                pa.array([decided.get(t, {}).get("label") for t in table["trial_id"].to_pylist()], pa.string()),
            )
        if status:
            table = table.filter(pc.equal(table["status"], status))
        if query:
            needle = query.lower()
            hit = pc.match_substring(pc.utf8_lower(table["trial_id"]), needle)
            for column in ("error", "decision"):
                if column in table.column_names:
                    hit = pc.or_(hit, pc.fill_null(pc.match_substring(pc.utf8_lower(table[column]), needle), False))
            for column in table.column_names:
                if column.startswith("param_") and pa.types.is_string(table.schema.field(column).type):
                    hit = pc.or_(hit, pc.fill_null(pc.match_substring(pc.utf8_lower(table[column]), needle), False))
            table = table.filter(hit)
        if sort in table.column_names and table.num_rows:
            values = table[sort]
            if pa.types.is_floating(values.type):  # NaN sorts with the nulls, at the end either way
                values = pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)
                table = table.set_column(table.column_names.index(sort), sort, values)
            order = pc.sort_indices(table, sort_keys=[(sort, "descending" if desc else "ascending")])  # nulls last
            table = table.take(order)
        total = table.num_rows
        page = table.slice(max(0, offset), max(1, min(limit, 500)))
        columns = [
            c
            for c in (
                "trial_id",
                "status",
                "decision",
                "best_value",
                "best_step",
                "steps",
                "retries",
                "node",
                "started_at",
                "ended_at",
            )
            if c in page.column_names
        ]
        params = [c for c in page.column_names if c.startswith("param_")]
        metrics = [c for c in page.column_names if c.startswith("metric_")]
        names = {**{c: self.param_columns.get(c, c[6:]) for c in params}, **metric_names_of(page.schema)}
        rows = [[_plain(r.get(c)) for c in [*columns, *params, *metrics]] for r in page.to_pylist()]
        return {
            "columns": [*columns, *params, *metrics],
            "names": {c: names.get(c, c) for c in [*columns, *params, *metrics]},
            "rows": rows,
            "total": total,
            "offset": offset,
        }

    def rungs(self) -> dict[str, Any]:
        """ASHA's rungs (reached, promoted, stopped, the cut-off over time) and Hyperband's brackets."""
        from scalehp.analysis.asha import rung_stats

        if not self.events.num_rows:
            return {"asha": [], "cutoffs": [], "brackets": []}
        events = self.events.select(
            [
                c
                for c in (
                    "run_id",
                    "trial_id",
                    "time",
                    "step",
                    "scheduler",
                    "action",
                    "rung",
                    "value",
                    "cutoff",
                    "bracket",
                )
                if c in self.events.column_names
            ]
        )
        frame = events.to_pandas()
        stats = rung_stats(frame)
        asha = [{k: _plain(v) for k, v in row.items()} for row in stats.drop(columns=["run_id"]).to_dict("records")]
        cutoffs = []
        start = frame["time"].min()
        for rung, group in frame[(frame["scheduler"] == "asha") & frame["cutoff"].notna()].groupby("rung"):
            x = (group["time"] - start).dt.total_seconds().to_numpy(float)
            cx, cy = _downsample(x, group["cutoff"].to_numpy(float))
            cutoffs.append({"rung": int(rung), "x": cx, "y": _plain(cy)})
        brackets = []
        hb = frame[(frame["scheduler"] == "hyperband") & frame["rung"].notna()]
        for (bracket, rung), group in hb.groupby(["bracket", "rung"], dropna=False):
            counts = group["action"].value_counts().to_dict()
            brackets.append(
                {
                    "bracket": _plain(bracket),
                    "rung": int(rung),
                    "trials": int(group["trial_id"].nunique()),
                    "paused": int(counts.get("pause", 0)),
                    "promoted": int(counts.get("continue", 0)),
                    "stopped": int(counts.get("stop", 0)),
                    "cutoff": _plain(group["cutoff"].dropna().iloc[-1]) if group["cutoff"].notna().any() else None,
                }
            )
        return {"asha": asha, "cutoffs": cutoffs, "brackets": brackets}

    def pbt(self, trial_id: str | None = None) -> dict[str, Any]:
        """PBT's exploits as a graph (donor -> trial at a step) and one trial's param schedule
        through its lineage (``trial_id``, by default the best trial)."""
        from scalehp.analysis import pbt

        events = self.events.to_pandas() if self.events.num_rows else None
        if events is None or "exploit" not in set(events["action"]):
            return {"edges": [], "schedule": [], "lineage": [], "trial_id": None}
        edges = pbt.exploits(events)
        out_edges = [
            {
                "trial_id": r.trial_id,
                "donor": r.donor_trial_id,
                "step": int(r.step),
                "donor_step": int(r.donor_step),
                "params": _plain(r.explored_params),
            }
            for r in edges.itertuples()
        ][-2000:]
        best = {"trial_id": trial_id} if trial_id else self.best()
        lineage, schedule = [], []
        if best:
            chain = pbt.lineage(events, best["trial_id"])
            lineage = [{k: _plain(v) for k, v in row.items()} for row in chain.to_dict("records")]
            ids = sorted(set(chain["trial_id"]))
            reports = read_table(
                [self.folder], "reports", self.filesystem, self.metric_columns, where=pc.field("trial_id").isin(ids)
            ).to_pandas()
            frame = pbt.param_schedule(reports, events, best["trial_id"])
            params = [c for c in frame.columns if c.startswith("param_")]
            schedule = [
                {
                    "step": int(r["step"]),
                    "trial_id": r["trial_id"],
                    "params": {self.param_columns.get(c, c[6:]): _plain(r[c]) for c in params},
                }
                for r in frame.to_dict("records")
            ]
        return {"edges": out_edges, "lineage": lineage, "schedule": schedule[-POINTS:], "trial_id": best["trial_id"] if best else None}

    def parallel(self) -> dict[str, Any]:
        """The params and best value of the best :data:`PARALLEL` trials, for parallel coordinates
        (a param's axis is logarithmic where the space searches it so)."""
        from scalehp.analysis.importance import log_scaled

        table = self.trials
        params = [c for c in table.column_names if c.startswith("param_")]
        if not table.num_rows or not params:
            return {"axes": [], "lines": [], "note": ""}
        values = table["best_value"].to_numpy(zero_copy_only=False).astype(float)
        scored = np.where(np.isfinite(values), values if self.mode == "min" else -values, np.inf)
        order = np.argsort(scored, kind="stable")[:PARALLEL]
        order = order[np.isfinite(scored[order])]
        chosen = table.take(pa.array(order))
        logs = log_scaled((self.plan.get("experiment") or {}).get("space"))
        axes = []
        for c in params:
            column, name = chosen[c], self.param_columns.get(c, c[6:])
            if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
                axes.append(
                    {
                        "name": name,
                        "column": c,
                        "kind": "number",
                        "log": logs.get(name, False),
                        "values": _plain(column.to_pylist()),
                    }
                )
            else:
                labels = [None if v is None else str(v) for v in column.to_pylist()]
                axes.append({"name": self.param_columns.get(c, c[6:]), "column": c, "kind": "choice", "values": labels})
        axes = [a for a in axes if len({json.dumps(v) for v in a["values"]}) > 1]
        axes.append(
            {
                "name": self.metric,
                "column": "best_value",
                "kind": "number",
                "log": False,
                "values": _plain(chosen["best_value"].to_pylist()),
            }
        )
        note = f"the best {len(order)} of {table.num_rows} trials" if table.num_rows > len(order) else ""
        return {"axes": axes, "mode": self.mode, "note": note}

    def importance(self) -> dict[str, Any]:
        from scalehp.analysis.importance import param_importance

        if self.trials.num_rows < 4:
            return {"rows": [], "note": "importance needs at least 4 ended trials"}
        frame = self.trials.to_pandas()
        frame.attrs["param_names"] = dict(self.param_columns)
        try:
            result = param_importance(frame, self.mode, space=(self.plan.get("experiment") or {}).get("space"))
        except (ResultsError, ValueError, RuntimeError) as exc:
            return {"rows": [], "note": str(exc)}
        sampled = result.attrs.get("sampled")
        note = f"fANOVA on {sampled[0]} of {sampled[1]} trials (sampled)" if sampled else "fANOVA on every scored trial"
        return {
            "rows": [{"param": r["param"], "importance": _plain(r["importance"])} for r in result.to_dict("records")],
            "note": note,
        }

    def pareto(self) -> dict[str, Any]:
        """The non-dominated trials when the run optimised several metrics (each trial's last values)."""
        from scalehp.analysis.pareto import objectives, pareto_front

        try:
            wanted = objectives(self.plan)
        except (KeyError, TypeError):
            return {"objectives": [], "points": [], "front": []}
        if len(wanted) < 2 or not self.trials.num_rows:
            return {"objectives": [{"name": n, "mode": m} for n, m in wanted], "points": [], "front": []}
        columns = {n: self.metric_columns.get(n) for n, _ in wanted}
        if any(c is None or c not in self.trials.column_names for c in columns.values()):
            return {"objectives": [{"name": n, "mode": m} for n, m in wanted], "points": [], "front": []}
        from scalehp.analysis.pareto import feasible

        wanted_columns = ["trial_id", *columns.values()] + [
            c for c in (self.metric_columns.get(n) for n in (self.plan.get("experiment") or {}).get("constraints") or [])
            if c is not None and c in self.trials.column_names and c not in columns.values()
        ]
        frame = feasible(self.trials.select(wanted_columns).to_pandas(), self.plan)
        note = ""
        if len(frame) > 5000:  # the front of a sample: O(n^2) beyond
            frame, note = frame.sample(5000, random_state=0), f"5000 of {len(frame)} trials sampled"
        front = pareto_front(frame, {columns[n]: m for n, m in wanted})
        pick = [columns[n] for n, _ in wanted[:2]]
        points = frame[pick].to_numpy(float)
        return {
            "objectives": [{"name": n, "mode": m} for n, m in wanted],
            "points": {"x": _plain(points[:, 0].tolist()), "y": _plain(points[:, 1].tolist())},
            "front": [
                {"trial_id": r["trial_id"], **{n: _plain(r[columns[n]]) for n, _ in wanted}}
                for r in front.to_dict("records")
            ],
            "note": note,
        }

    def trial(self, trial_id: str) -> dict[str, Any]:
        """One trial: its row (or that it runs), every metric over its steps, and every decision about it."""
        rows = self.trials.filter(pc.equal(self.trials["trial_id"], trial_id)) if self.trials.num_rows else self.trials
        running = trial_id in set(self.running().to_pylist())
        if not rows.num_rows and not running:
            raise NoSuchRun(f"no trial {trial_id} in run {self.run_id}")
        row = rows.to_pylist()[-1] if rows.num_rows else {"trial_id": trial_id, "status": "running"}
        reports = self.reports_of(trial_id)
        names = metric_names_of(reports.schema)
        curves = {}
        if reports.num_rows:
            frame = reports.to_pandas().drop_duplicates("step", keep="last").sort_values("step")
            for column in [c for c in frame.columns if c.startswith("metric_")]:
                x, y = _downsample(frame["step"].to_numpy(float), frame[column].to_numpy(float))
                curves[names.get(column, column[7:])] = {"x": x, "y": _plain(y)}
        events = self.events.filter(pc.equal(self.events["trial_id"], trial_id)) if self.events.num_rows else self.events
        keep = [c for c in ("time", "step", "scheduler", "action", "rung", "value", "cutoff", "bracket", "donor_trial_id",
                            "donor_step", "new_params", "reason")
                if c in events.column_names and events[c].null_count < events.num_rows]  # fmt: skip
        return {
            "trial_id": trial_id,
            "status": row.get("status"),
            "row": {c: _plain(v) for c, v in row.items() if not c.startswith(("param_", "metric_"))},
            "params": {self.param_columns.get(c, c[6:]): _plain(v) for c, v in row.items() if c.startswith("param_")},
            "curves": curves,
            "events": {"columns": keep, "rows": [[_plain(r.get(c)) for c in keep] for r in events.select(keep).to_pylist()]},
        }

    def failed(self) -> list[dict[str, Any]]:
        if not self.trials.num_rows:
            return []
        rows = self.trials.filter(pc.equal(self.trials["status"], "error"))
        keep = [c for c in ("trial_id", "error", "retries", "node", "steps", "ended_at") if c in rows.column_names]
        params = [c for c in rows.column_names if c.startswith("param_")]
        out = []
        for r in rows.slice(0, 200).to_pylist():
            item = {c: _plain(r.get(c)) for c in keep}
            item["params"] = {self.param_columns.get(c, c[6:]): _plain(r.get(c)) for c in params}
            out.append(item)
        return out

    def summary(self) -> dict[str, Any]:
        experiment = self.plan.get("experiment") or {}
        return {
            "run_id": self.run_id,
            "folder": folder_name(self.folder),
            "experiment": _plain(experiment.get("name")),
            "created_at": _plain(self.plan.get("created_at")),
            "metric": self.metric,
            "mode": self.mode,
            "searcher": _plain(self.plan.get("searcher")),
            "scheduler": _plain(self.plan.get("scheduler")),
            "runtime": _plain(self.plan.get("runtime", "tune")),
            "simulated": bool(self.plan.get("simulated")),
            "progress": self.counts(),
            "best": self.best(),
            "version": self.version,
        }


class Board:
    """The results root a dashboard serves: its runs, found again at each look, each a :class:`RunState`.

    ``root``: a local folder, or an object-store URI (``s3://…``, ``gs://…``) as
    :func:`~scalehp.results.store.read_results` reads it (or a path in ``filesystem``).
    ``empty``: a local root with no run yet is fine (a run is about to start in it).

    Raises (on creation):
        ResultsError: no such folder, no run under it, or a damaged ``plan.json`` or part file.
    """

    def __init__(self, root: str | Path, *, empty: bool = False, filesystem: Any = None) -> None:
        from scalehp.results.sink import filesystem_of, is_uri, local_path

        self.states: dict[str, RunState] = {}
        self._lock = threading.Lock()
        self._looked = 0.0
        self.filesystem = filesystem
        if filesystem is None and is_uri(root):
            try:
                self.filesystem, root = filesystem_of(str(root))
            except (ValueError, OSError) as exc:
                raise ResultsError(f"{root}: cannot open ({exc})") from None
        self.root = root if self.filesystem is not None else local_path(root)
        if empty and self.filesystem is None and not any(self.root.glob("*/plan.json")) and not any(self.root.glob("*/*/plan.json")):
            return  # ``scalehp run --dashboard``: its run appears here in a moment
        self.look(force=True)  # no run here, or a damaged plan: the one line, now
        if not self.states:
            raise ResultsError(f"{root}: no scalehp runs here (no plan.json found up to two folders down)")
        for state in list(self.states.values()):
            state.refresh()  # a damaged part file: now, before serving anything

    def look(self, force: bool = False) -> None:
        """Find the runs under the root again (at most once a second)."""
        with self._lock:
            if not force and time.monotonic() - self._looked < 1.0:
                return
            self._looked = time.monotonic()
            try:
                folders = find_runs(self.root, self.filesystem)
            except ResultsError:
                if force:
                    raise
                return
            known = {s.folder: s for s in self.states.values()}
            states: dict[str, RunState] = {}
            for folder in folders:
                state = known.get(folder)
                if state is None:
                    try:
                        plan = read_plan(folder, self.filesystem)
                    except ResultsError:
                        if force:
                            raise
                        continue
                    state = RunState(folder, plan, self.filesystem)
                states.setdefault(state.run_id, state)
            self.states = states

    def state(self, run_id: str) -> RunState:
        self.look()
        state = self.states.get(run_id)
        if state is None:
            raise NoSuchRun(f"no run {run_id} under this root")
        state.refresh()
        return state

    def runs(self) -> list[dict[str, Any]]:
        self.look()
        out = []
        for state in list(self.states.values()):
            with state.lock:
                state.refresh()
                out.append(state.summary())
        return sorted(out, key=lambda r: (str(r["created_at"] or ""), r["run_id"]), reverse=True)

    def version(self) -> str:
        """Changes whenever a file lands in any run (what the page polls)."""
        self.look()
        seen = [(s.run_id, _fingerprint(s.folder, s.filesystem)) for s in list(self.states.values())]
        return format(zlib.crc32(json.dumps(seen, default=str).encode()), "08x")

    def sql(self, text: str, limit: int = 1000) -> dict[str, Any]:
        from scalehp.results.sql import query

        if self.filesystem is not None:
            raise ResultsError("the SQL box reads local results only; fetch the runs ('scalehp jobs fetch') to query them")
        table = query(self.root, text)
        if table is None:
            return {"columns": [], "rows": [], "total": 0}
        rows = table.slice(0, limit).to_pylist()
        return {
            "columns": table.column_names,
            "rows": [[_plain(r[c]) for c in table.column_names] for r in rows],
            "total": table.num_rows,
        }


__all__ = ["Board", "Digest", "NoSuchRun", "RunState", "digest"]
