"""Buffered, crash-safe writing of result rows as Parquet part files.

The sink knows nothing of Ray: the runner feeds it plain rows. Rows are kept in memory
and written as one immutable part file per table when ``flush_rows`` rows are waiting or
``flush_seconds`` have passed, and on :meth:`ParquetSink.close`. Each part is written to a
hidden temporary name, fsynced and renamed, so a reader (or a run killed at any moment)
only ever sees whole files; leftovers of a killed writer are swept on start. Rows that must
be on disk at once (:meth:`ParquetSink.commit`) go to the run's journal until their part is
written (:mod:`scalehp.results.journal`).

A run folder may also be a URI (``s3://bucket/results/exp/run``, ``gs://…``), written through
pyarrow's filesystems. Object stores have no atomic rename (S3 "rename" is copy + delete), but
an object only becomes visible once its upload completes: each part is written straight to its
final name, readers still only ever see whole parts, and a killed writer leaves an incomplete
multipart upload that no listing shows (expire those with a bucket lifecycle rule). Local paths
keep the temp-file + fsync + rename commit, and never go through the URI code.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from scalehp.results import journal
from scalehp.results.schema import FIXED, NAME_KEY, TABLES

log = logging.getLogger(__name__)

UTC = dt.timezone.utc


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:  # numpy scalars, torch scalars
        return float(value)
    except (TypeError, ValueError):
        return None


def _as_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def _as_time(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return dt.datetime.fromtimestamp(float(value), tz=UTC)


_PLAIN = {"float": {float, type(None)}, "int": {int, type(None)}, "str": {str, type(None)}}


def _column(values: list[Any], kind: pa.DataType) -> pa.Array:
    plain = set(map(type, values))  # plain Python values go to Arrow as they are, in one call
    if pa.types.is_floating(kind) and plain <= _PLAIN["float"] or pa.types.is_integer(kind) and plain <= _PLAIN["int"]:
        return pa.array(values, kind)
    if pa.types.is_string(kind) and plain <= _PLAIN["str"]:
        return pa.array(values, pa.string())
    if pa.types.is_floating(kind):
        return pa.array([_as_float(v) for v in values], kind)
    if pa.types.is_integer(kind):
        return pa.array([_as_int(v) for v in values], kind)
    if pa.types.is_boolean(kind):
        return pa.array([None if v is None else bool(v) for v in values], kind)
    if pa.types.is_timestamp(kind):
        return pa.array([_as_time(v) for v in values], kind)
    return pa.array([_as_text(v) for v in values], pa.string())


def build_table(
    table: str,
    rows: list[dict[str, Any]],
    param_fields: list[pa.Field],
    metric_names: Mapping[str, str] | None = None,
) -> pa.Table:
    """Rows -> an Arrow table with the contract's column types.

    Fixed and param columns always appear with their declared types; ``metric_*`` columns
    appear when some row has them and are always float64, each with the metric's exact
    name in its field metadata (``metric_names``: column -> name; see ``schema.py``).
    """
    metric_names = metric_names or {}
    fields = list(FIXED[table])
    if table != "events":
        fields += param_fields
    known = {f.name for f in fields}
    keys = set().union(*map(dict.keys, rows)) - known  # (in C: a million rows in milliseconds)
    metrics = sorted(k for k in keys if k.startswith("metric_"))
    fields += [
        pa.field(m, pa.float64(), metadata={NAME_KEY: metric_names[m]} if m in metric_names else None) for m in metrics
    ]
    extra = sorted(keys - set(metrics))
    fields += [pa.field(k, pa.string()) for k in extra]
    arrays = [_column([row.get(f.name) for row in rows], f.type) for f in fields]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_uri(location: str | Path) -> bool:
    """True for ``s3://…``, ``gs://…`` and other pyarrow filesystem URIs (``file://`` is a local path)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local_path(location: str | Path) -> Path:
    text = str(location)
    return Path(text[len("file://") :] if text.startswith("file://") else text)


def filesystem_of(uri: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path inside it)`` for a URI."""
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    return filesystem, path.rstrip("/")


def _part_name() -> str:
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


def put_part(filesystem: Any, folder: str, table: pa.Table) -> str:
    """Write ``table`` as a new part object under ``folder`` of an object store.

    The object appears whole when its upload completes, or not at all: no temporary name.
    """
    filesystem.create_dir(folder, recursive=True)
    path = f"{folder}/{_part_name()}"
    with filesystem.open_output_stream(path) as out:
        pq.write_table(table, out, compression="zstd")
    return path


def write_part(folder: Path, table: pa.Table, sync: bool = True) -> Path:
    """Write ``table`` as a new part file in ``folder``, atomically, and durably unless ``sync`` is False."""
    folder.mkdir(parents=True, exist_ok=True)
    name = _part_name()
    temporary = folder / f".{name}.tmp"
    with open(temporary, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    final = folder / name
    os.replace(temporary, final)
    if sync:
        _fsync_dir(folder)
    return final


def sweep(run_dir: Path) -> int:
    """Remove half-written parts a killed writer left behind; return how many."""
    removed = 0
    for table in TABLES:
        folder = run_dir / table
        if not folder.is_dir():
            continue
        for leftover in folder.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


FLUSH_ORDER = ("reports", "events", "trials")


class ParquetSink:
    """Collects rows for ``trials``, ``reports`` and ``events`` and writes them in parts.

    Args:
        run_dir: the run folder (a path or an ``s3://``/``gs://`` URI); tables go to
            ``run_dir/<table>/part-*.parquet``.
        param_fields: the Arrow fields of the ``param_*`` columns (types stable across parts).
        flush_rows: write a table once this many rows wait.
        flush_seconds: write everything waiting once this long has passed since the last write.
        clock: seconds, monotonic; injected by tests.
        filesystem: a pyarrow filesystem that ``run_dir`` is a path in (object-store
            semantics: no rename, no journal); default: from the URI, or the local disk.
        metric_names: ``metric_*`` column -> metric name, recorded in each part's field
            metadata; the writer may keep adding to it while rows are written.
        durable: :meth:`commit` makes rows survive a crash; False (a simulation, run again
            rather than resumed): it does nothing, rows go out with the next flush, and parts
            are renamed into place without fsync.

    A sink that opens a local run folder first writes as parts the rows a killed writer left
    in the journal only (``scalehp resume``).

    Raises:
        ResultsError (``damaged``): that journal, or a part it needs, is not scalehp's.
    """

    def __init__(
        self,
        run_dir: str | Path,
        param_fields: list[pa.Field],
        *,
        flush_rows: int = 5000,
        flush_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        filesystem: Any = None,
        metric_names: Mapping[str, str] | None = None,
        durable: bool = True,
    ):
        if filesystem is None and is_uri(run_dir):
            filesystem, run_dir = filesystem_of(str(run_dir))
        self.filesystem = filesystem
        self.run_dir: Any = local_path(run_dir) if filesystem is None else str(run_dir).rstrip("/")
        self.param_fields = list(param_fields)
        self.metric_names = metric_names if metric_names is not None else {}
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._pending: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
        self._journaled = {t: 0 for t in TABLES}  # how many of the pending rows the journal holds
        self._last_flush = clock()
        self.parts_written = 0
        self.before_write: Callable[[], None] | None = None  # a runtime's own state first (see Snapshots)
        self._lock = threading.RLock()  # a run's last rows may be written from a deadline timer's thread
        self.durable = durable
        self.journal = journal.Journal(self.run_dir, self.param_fields) if filesystem is None and durable else None
        if filesystem is None:
            swept = sweep(self.run_dir)
            if swept:
                log.info("removed %d half-written part files in %s", swept, self.run_dir)
            self._recover()

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Queue one row; writes a part when a bound is reached."""
        if table not in self._pending:
            raise ValueError(f"unknown table {table!r}; expected one of {TABLES}")
        with self._lock:
            self._pending[table].append(row)
            if len(self._pending[table]) >= self.flush_rows:
                self.flush()
            else:
                self.tick()

    def due(self) -> bool:
        """Whether ``flush_seconds`` have passed since the last write."""
        return self._clock() - self._last_flush >= self.flush_seconds

    def tick(self) -> None:
        """Flush everything if ``flush_seconds`` passed; call it now and then."""
        if self.due():
            self.flush()

    def commit(self) -> None:
        """Every row added so far survives a crash when this returns (fsynced).

        Locally the rows not yet on disk are appended to the journal (one small fsynced write);
        an object store has no appends, so its parts are written now.
        """
        if not self.durable:
            return
        if self.journal is None:
            self.flush()
            return
        with self._lock:
            fresh = [(t, row) for t in FLUSH_ORDER for row in self._pending[t][self._journaled[t] :]]
            if not fresh:
                return
            if self.before_write is not None:
                self.before_write()
            self.journal.append(fresh, self.metric_names)
            self._journaled = {t: len(self._pending[t]) for t in TABLES}

    def flush(self) -> None:
        """Write every waiting row as parts now: reports, then events, then trials, so that a run
        killed between two parts never has a decision or a trial's end without the report it
        followed. Each part covers the journal rows of its table; the journal is then removed."""
        with self._lock:
            unwritten = any(len(self._pending[t]) > self._journaled[t] for t in TABLES)
            if self.before_write is not None and unwritten:
                self.before_write()
            self._write_all(self.journal.covers() if self.journal is not None else {})
            if self.journal is not None:
                self.journal.drop()
            self._last_flush = self._clock()

    def close(self) -> None:
        self.flush()

    def _write_all(self, covers: dict[str, int]) -> None:
        for table in FLUSH_ORDER:
            self._write(table, covers)
        self._journaled = {t: 0 for t in TABLES}

    def _write(self, table: str, covers: dict[str, int]) -> None:
        rows = self._pending[table]
        if not rows:
            return
        self._pending[table] = []
        data = build_table(table, rows, self.param_fields, self.metric_names)
        if covers:
            data = data.replace_schema_metadata({journal.COVERS: json.dumps(covers)})
        if self.filesystem is None:
            write_part(self.run_dir / table, data, sync=self.durable)
        else:
            put_part(self.filesystem, f"{self.run_dir}/{table}", data)
        self.parts_written += 1

    def _recover(self) -> None:
        """Rows that a killed writer left in the journal only go into parts, then the journal goes."""
        files = journal.journal_files(self.run_dir)
        if not files:
            return
        leftovers = [journal.read_journal(path) for path in files]
        for table in TABLES:
            reach = journal.part_reach(self.run_dir / table)
            for leftover in leftovers:
                self._pending[table].extend(journal.uncovered(leftover, table, reach))
        for leftover in leftovers:
            for column, name in leftover.names.items():
                self.metric_names.setdefault(column, name)
        self._write_all({leftover.path.name: leftover.last for leftover in leftovers})
        for leftover in leftovers:
            leftover.path.unlink(missing_ok=True)
        log.info("wrote the rows of %d journal file(s) in %s as parts", len(files), self.run_dir)
