"""Reading results: one run, one experiment's runs, or a whole results root.

A run folder is any folder holding a ``plan.json``. Tables are read with pyarrow over all
part files of the chosen runs, with their schemas unified (a metric that appears later, or
an int column that became float, still reads), and de-duplicated: the last row written
for a ``(run_id, trial_id, step)`` in ``reports`` and for a ``(run_id, trial_id)`` in
``trials`` wins, so retried and resumed trials never show twice. ``metric_*`` columns keep
one metric name each, also over runs that gave a column to different names (see
``schema.py``): the frames carry ``attrs["metric_names"]`` (column -> name). Reading works while a run
is still writing: only whole part files are ever visible.

A location may be a URI (``s3://bucket/results``, ``gs://…``): runs are then found and read
through pyarrow's filesystems, with the same rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from scalehp.errors import ResultsError
from scalehp.results.schema import FIXED, NAME_KEY, TABLES, ColumnMap, metric_names_of
from scalehp.results.sink import filesystem_of, is_uri, local_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PLAN = "plan.json"
_KEYS = {"trials": ("run_id", "trial_id"), "reports": ("run_id", "trial_id", "step"), "events": ()}


def find_runs(path: str | Path) -> list[Path]:
    """Run folders at or below ``path`` (a run, an experiment folder or a results root), oldest first."""
    root = Path(path)
    if not root.exists():
        raise ResultsError(f"{root}: no such folder")
    if (root / PLAN).is_file():
        return [root]
    runs = [p.parent for p in root.glob(f"*/{PLAN}")] + [p.parent for p in root.glob(f"*/*/{PLAN}")]
    return sorted(set(runs), key=lambda p: (p.name, str(p)))


def _find_runs_in(filesystem: Any, root: str) -> list[str]:
    """Like :func:`find_runs`, inside a pyarrow filesystem (paths as strings)."""
    import pyarrow.fs as pafs

    if filesystem.get_file_info(root).type == pafs.FileType.NotFound:
        raise ResultsError(f"{root}: no such folder")
    if filesystem.get_file_info(f"{root}/{PLAN}").is_file:
        return [root]
    selector = pafs.FileSelector(root, recursive=True, max_recursion=2)
    runs = {f.path.rsplit("/", 1)[0] for f in filesystem.get_file_info(selector) if f.base_name == PLAN}
    return sorted(runs, key=lambda p: (_name(p), p))


def _name(run: str | Path) -> str:
    return str(run).rstrip("/").rsplit("/", 1)[-1]


def part_files(run_dirs: list, table: str, filesystem: Any = None) -> list:
    """The committed part files of ``table`` in the given runs (never the hidden temporaries)."""
    if filesystem is not None:
        import pyarrow.fs as pafs

        found: list[str] = []
        for run in run_dirs:
            selector = pafs.FileSelector(f"{run}/{table}", allow_not_found=True)
            infos = filesystem.get_file_info(selector)
            found += sorted(f.path for f in infos if f.is_file and f.base_name.startswith("part-"))
        return found
    files: list[Path] = []
    for run in run_dirs:
        files += sorted((run / table).glob("part-*.parquet"))
    return files


def _empty(table: str) -> pa.Table:
    return pa.schema(FIXED[table]).empty_table()


def read_table(
    run_dirs: list, table: str, filesystem: Any = None, metric_columns: Mapping[str, str] | None = None
) -> pa.Table:
    """One table over several runs, schemas unified and duplicates dropped.

    ``metric_columns`` (name -> column) fixes the columns of names seen elsewhere (in the
    other tables); other names keep the column their part files give them unless another
    name claimed it first, and are renamed then. The result's ``metric_*`` fields carry
    their names in the field metadata.
    """
    if table not in TABLES:
        raise ResultsError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    files = part_files(run_dirs, table, filesystem)
    if not files:
        return _empty(table)
    schemas = [pq.read_schema(str(f), filesystem=filesystem) for f in files]
    canonical = ColumnMap("metric", metric_columns)
    per_file = [metric_names_of(schema) for schema in schemas]
    for names in per_file:
        for column, name in names.items():
            canonical.keep(name, column)
    renames = [{c: canonical[n] for c, n in names.items() if canonical[n] != c} for names in per_file]
    if any(renames):  # runs that gave one column to different names: read part by part, renamed
        parts = []
        for path, rename in zip(files, renames):
            part = pq.read_table(str(path), filesystem=filesystem)
            names = [rename.get(c, c) for c in part.column_names]
            parts.append(pa.Table.from_arrays(part.columns, names=names))
        try:
            data = pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ResultsError(f"{table}: part files disagree on column types: {exc}") from None
    else:
        try:
            schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ResultsError(f"{table}: part files disagree on column types: {exc}") from None
        data = ds.dataset([str(f) for f in files], schema=schema, format="parquet", filesystem=filesystem).to_table()
    keys = _KEYS[table]
    if keys and data.num_rows:
        data = _last_per_key(data, keys)
    return _named(data, canonical.names)


def _named(data: pa.Table, names: Mapping[str, str]) -> pa.Table:
    """``data`` with each ``metric_*`` field's name in its metadata."""
    fields = [
        f.with_metadata({NAME_KEY: names[f.name]}) if f.name in names else f.remove_metadata() for f in data.schema
    ]
    return pa.Table.from_arrays(data.columns, schema=pa.schema(fields))


def _last_per_key(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    # text keys as dictionary codes: grouping by integers is about twice as fast
    columns = {}
    for key in keys:
        column = data[key]
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.dictionary_encode(column).combine_chunks().indices
        columns[key] = column
    columns["__row"] = pa.array(np.arange(data.num_rows, dtype=np.int64))
    last = pa.table(columns).group_by(list(keys)).aggregate([("__row", "max")])
    if last.num_rows == data.num_rows:  # no key twice: the common case, nothing to drop
        return data
    rows = pc.sort_indices(last["__row_max"])
    return data.take(pc.take(last["__row_max"], rows))


@dataclass
class Results:
    """The results of one or more runs: tables as pyarrow or pandas, and each run's plan.

    Example:
        >>> results = read_results("results/digits-mlp-asha")  # doctest: +SKIP
        >>> results.trials.sort_values("best_value").head()     # doctest: +SKIP
    """

    runs: list[Path]
    filesystem: Any = None  # a pyarrow filesystem the runs are paths in; None: local
    _cache: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pa.Table:
        """``trials``, ``reports`` or ``events`` as a pyarrow Table."""
        if name not in self._cache:
            self._cache[name] = read_table(self.runs, name, self.filesystem, self.metric_columns)
        return self._cache[name]

    @cached_property
    def metric_columns(self) -> dict[str, str]:
        """Metric name -> its ``metric_*`` column, one column per name over all runs read."""
        if len(self.runs) <= 1:  # one run wrote one injective map into every part
            files = part_files(self.runs, "reports", self.filesystem)
            return {n: c for s in self._schemas(files) for c, n in metric_names_of(s).items()}
        canonical = ColumnMap("metric")
        for run in self.runs:  # oldest first: the first run to use a column keeps it
            files = part_files([run], "reports", self.filesystem) + part_files([run], "trials", self.filesystem)
            for schema in self._schemas(files):
                for column, name in metric_names_of(schema).items():
                    canonical.keep(name, column)
        return dict(canonical.columns)

    def _schemas(self, files: list) -> list[pa.Schema]:
        return [pq.read_schema(str(f), filesystem=self.filesystem) for f in files]

    def _frame(self, name: str) -> pd.DataFrame:
        data = self.table(name)
        frame = data.to_pandas()
        frame.attrs["metric_names"] = metric_names_of(data.schema)
        return frame

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial; ``attrs["metric_names"]`` maps ``metric_*`` columns to metric names."""
        return self._frame("trials")

    @property
    def reports(self) -> pd.DataFrame:
        """One row per report; ``attrs["metric_names"]`` maps ``metric_*`` columns to metric names."""
        return self._frame("reports")

    @property
    def events(self) -> pd.DataFrame:
        return self.table("events").to_pandas()

    @cached_property
    def plans(self) -> dict[str, dict[str, Any]]:
        """``run_id`` -> the plan the run was started with (``plan.json``)."""
        plans = {}
        for run in self.runs:
            try:
                if self.filesystem is None:
                    text = (run / PLAN).read_text()
                else:
                    with self.filesystem.open_input_stream(f"{run}/{PLAN}") as stream:
                        text = stream.read().decode()
                plans[_name(run)] = json.loads(text)
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{run / PLAN}: unreadable plan ({exc.__class__.__name__})") from None
        return plans

    def metric(self, run_id: str | None = None) -> tuple[str, str]:
        """The experiment metric's name and mode (of ``run_id``, or of the only/newest run)."""
        if not self.plans:
            raise ResultsError("no runs to read a metric from")
        plan = self.plans[run_id] if run_id else list(self.plans.values())[-1]
        metric = plan["experiment"]["metric"]
        return metric["name"], metric["mode"]


def read_results(path: str | Path) -> Results:
    """Open the results under ``path``: a run folder, an experiment folder or a results root.

    Raises:
        ResultsError: nothing under ``path`` looks like a scalehp run.
    """
    if is_uri(path):
        try:
            filesystem, root = filesystem_of(str(path))
        except (ValueError, OSError) as exc:
            raise ResultsError(f"{path}: cannot open ({exc})") from None
        runs: list = _find_runs_in(filesystem, root)
    else:
        filesystem, runs = None, find_runs(local_path(path))
    if not runs:
        raise ResultsError(f"{path}: no scalehp runs here (no {PLAN} found up to two folders down)")
    return Results(runs, filesystem)
