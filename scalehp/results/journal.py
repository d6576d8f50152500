"""The journal: rows that must be on disk now, ahead of their Parquet part.

A trial's end and every decision that acts (stop, pause, exploit, the end of a run) are on
disk before Ray acts on them (``RunRecorder.durable``). A Parquet part per table for each
would cost two files and four fsyncs per trial end, and a run of many short trials would
leave thousands of tiny parts. So the sink appends the rows waiting to one journal file in
the run folder and fsyncs it (:meth:`Journal.append`); parts are still written on the sink's
schedule. Each part a flush writes says, in its metadata (:data:`COVERS`), how far into each
journal file its table goes; the journal file is removed after the flush. A row is therefore
in a part, or in a journal line that no part of its table covers; never both, never neither:

* readers (:func:`~scalehp.results.store.read_table`, the SQL views) add the journal rows no
  part covers (:func:`uncovered`);
* a sink that opens a run folder (``scalehp resume``) first writes those rows as parts and
  removes the journal files.

A journal file is JSON lines: a header ``{"journal": 1, "params": [[column, type, name], ...]}``,
then ``{"seq": n, "table": t, "row": {...}}`` for each row and ``{"names": {column: name}}``
when metric columns get their names. A line a kill cut short (the file's last line, with no
newline) was never acknowledged, and is ignored. Journal files are read as untrusted input.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from scalehp.errors import ResultsError, escape
from scalehp.results.schema import NAME_KEY, TABLES

FOLDER = "journal"  # inside a run folder
COVERS = b"scalehp.journal"  # part metadata: JSON {journal file name: last seq of this table it holds}
_FORMAT = 1
_LIMIT = 256 * 1024 * 1024  # bytes; a flush every few seconds keeps real files far smaller
_TYPES = {"double": pa.float64(), "int64": pa.int64(), "string": pa.string(), "bool": pa.bool_()}


def _json_default(value: Any) -> Any:
    """JSON for what rows hold besides JSON's own types: times as epoch seconds, numpy scalars."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_journal(name: str) -> bool:
    return name.startswith("journal-") and name.endswith(".jsonl")


def journal_files(run_dir: Path) -> list[Path]:
    folder = run_dir / FOLDER
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if is_journal(path.name):
            if not path.is_file() or path.is_symlink():
                raise ResultsError(f"{escape(str(path))}: named like a journal file but not a file", damaged=True)
            found.append(path)
    return found


class Journal:
    """Appends rows to this session's journal file, fsynced; one file between two flushes."""

    def __init__(self, run_dir: Path, param_fields: list[pa.Field]):
        self.folder = Path(run_dir) / FOLDER
        self.params = [[f.name, _type_name(f.type), (f.metadata or {}).get(NAME_KEY, b"").decode()] for f in param_fields]
        self.path: Path | None = None
        self.seq = 0
        self._handle: Any = None
        self._names: dict[str, str] = {}

    def append(self, rows: list[tuple[str, dict[str, Any]]], names: Mapping[str, str]) -> None:
        """Write ``(table, row)`` pairs and fsync: when this returns, they survive a crash."""
        if not rows:
            return
        lines = []
        if self._handle is None:
            self._open()
            lines.append(json.dumps({"journal": _FORMAT, "params": self.params}))
        fresh = {c: n for c, n in names.items() if self._names.get(c) != n}
        if fresh:
            lines.append(json.dumps({"names": fresh}))
            self._names.update(fresh)
        for table, row in rows:
            self.seq += 1
            lines.append(json.dumps({"seq": self.seq, "table": table, "row": row}, default=_json_default))
        self._handle.write(("\n".join(lines) + "\n").encode())
        self._handle.flush()
        os.fdatasync(self._handle.fileno())

    def covers(self) -> dict[str, int]:
        """What a part written now covers: every row appended so far."""
        return {self.path.name: self.seq} if self.path is not None and self.seq else {}

    def drop(self) -> None:
        """Remove the file: a flush put each of its rows into a part."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.path, self.seq, self._names = None, 0, {}

    def _open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"journal-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        self._handle = open(self.path, "xb")
        _fsync_dir(self.folder)  # the new name survives a crash too


def _type_name(kind: pa.DataType) -> str:
    for name, known in _TYPES.items():
        if kind == known:
            return name
    return "string"


# ---------------------------------------------------------------------------
# Reading


class Leftover:
    """One journal file's rows, as read."""

    def __init__(self, path: Path):
        self.path = path
        self.params: list[pa.Field] = []
        self.names: dict[str, str] = {}
        self.rows: dict[str, list[tuple[int, dict[str, Any]]]] = {t: [] for t in TABLES}
        self.last = 0


def read_journal(path: Path) -> Leftover:
    """Parse one journal file.

    Raises:
        ResultsError (``damaged``): a file that is not a scalehp journal, with the line named.
    """
    shown = escape(str(path))
    try:
        size = path.stat().st_size
        if size > _LIMIT:
            raise ResultsError(f"{shown}: journal file of {size} bytes, more than scalehp writes", damaged=True)
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"{shown}: cannot read the journal file ({exc.strerror})", damaged=True) from None
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a line a kill cut short (never acknowledged)
    found = Leftover(path)
    for number, line in enumerate(lines, 1):
        where = f"{shown}, line {number}"
        try:
            entry = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise ResultsError(f"{where}: not JSON", damaged=True) from None
        if not isinstance(entry, dict):
            raise ResultsError(f"{where}: not a journal line", damaged=True)
        if number == 1:
            found.params = _header(entry, where)
        elif "names" in entry:
            names = entry["names"]
            if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
                raise ResultsError(f"{where}: names must map columns to names", damaged=True)
            found.names.update(names)
        else:
            seq, table, row = entry.get("seq"), entry.get("table"), entry.get("row")
            if not isinstance(seq, int) or isinstance(seq, bool) or seq <= found.last:
                raise ResultsError(f"{where}: seq must be a number above the line before's", damaged=True)
            if table not in TABLES or not isinstance(row, dict):
                raise ResultsError(f"{where}: not a row of a scalehp table", damaged=True)
            found.rows[table].append((seq, row))
            found.last = seq
    return found


def _header(entry: dict[str, Any], where: str) -> list[pa.Field]:
    params = entry.get("params")
    if entry.get("journal") != _FORMAT or not isinstance(params, list):
        raise ResultsError(f"{where}: not a scalehp journal header", damaged=True)
    fields = []
    for item in params:
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item)):
            raise ResultsError(f"{where}: params must be [column, type, name] lists", damaged=True)
        column, kind, name = item
        if not column.startswith("param_") or kind not in _TYPES:
            raise ResultsError(f"{where}: param column {escape(column)} of type {escape(kind)}", damaged=True)
        fields.append(pa.field(column, _TYPES[kind], metadata={NAME_KEY: name} if name else None))
    return fields


def covered(schemas: Mapping[Any, pa.Schema]) -> dict[str, int]:
    """How far into each journal file the given parts (of one table of one run) go."""
    reach: dict[str, int] = {}
    for schema in schemas.values():
        text = (schema.metadata or {}).get(COVERS)
        if not text:
            continue
        try:
            marks = json.loads(text)
        except ValueError:
            continue  # not ours to trust: covers nothing
        if isinstance(marks, dict):
            for name, seq in marks.items():
                if isinstance(seq, int) and not isinstance(seq, bool):
                    reach[name] = max(reach.get(name, 0), seq)
    return reach


def part_reach(folder: Path) -> dict[str, int]:
    """:func:`covered` for the part files in ``folder`` (one table of one run)."""
    schemas = {}
    for path in sorted(folder.glob("part-*.parquet")):
        try:
            schemas[path] = pq.read_schema(path)
        except (pa.ArrowException, OSError):
            raise ResultsError(f"{escape(str(path))}: not a readable Parquet part file", damaged=True) from None
    return covered(schemas)


def uncovered(leftover: Leftover, table: str, reach: Mapping[str, int]) -> list[dict[str, Any]]:
    """The rows of ``table`` in a journal file that no part holds."""
    upto = reach.get(leftover.path.name, 0)
    return [row for seq, row in leftover.rows[table] if seq > upto]
