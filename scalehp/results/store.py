"""Reading results: one run, one experiment's runs, or a whole results root.

A run folder is any folder holding a ``plan.json``. Tables are read with pyarrow over all
part files of the chosen runs, with their schemas unified (a metric that appears later, or
an int column that became float, still reads), and de-duplicated: the last row written
for a ``(run_id, trial_id, step)`` in ``reports`` and for a ``(run_id, trial_id)`` in
``trials`` wins, so retried and resumed trials never show twice. ``metric_*`` columns keep
one metric name each, also over runs that gave a column to different names (see
``schema.py``): the frames carry ``attrs["metric_names"]`` and ``attrs["param_names"]``
(column -> name, so ``param_optimizer_lr`` shows as ``optimizer.lr``). Reading works while a run
is still writing: only whole part files are ever visible.

A location may be a URI (``s3://bucket/results``, ``gs://…``): runs are then found and read
through pyarrow's filesystems, with the same rules.

Everything read is untrusted: a part file must be Parquet with the table's key columns and
the contract's type for every fixed column it has (``metric_*`` columns float), and a
``plan.json`` must be a JSON object of bounded size with the fields readers use, of the right
types (:func:`part_schemas`, :func:`read_plan`); anything else is one :class:`ResultsError`
naming the file. A run is known by the run id it recorded (``plan.json``'s ``run_id``, the
same id as its rows' ``run_id``), not by its folder's name: a copied or renamed run folder
reads as the run it is.
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

from scalehp.errors import ResultsError, SpecError
from scalehp.results import journal
from scalehp.results.schema import FIXED, NAME_KEY, TABLES, ColumnMap, metric_names_of, names_of, param_names_of
from scalehp.results.sink import build_table, filesystem_of, is_uri, local_path
from scalehp.spec import read_text_file

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PLAN = "plan.json"
MAX_PLAN_BYTES = 32 * 1024 * 1024  # a plan.json; far above any real one
_KEYS = {"trials": ("run_id", "trial_id"), "reports": ("run_id", "trial_id", "step"), "events": ()}
_REQUIRED = {"trials": ("run_id", "trial_id"), "reports": ("run_id", "trial_id", "step"), "events": ("run_id",)}


def find_runs(path: str | Path, filesystem: Any = None) -> list:
    """Run folders at or below ``path`` (a run, an experiment folder or a results root), oldest first
    (paths in ``filesystem`` when given, an object store's)."""
    if filesystem is not None:
        return _find_runs_in(filesystem, str(path))
    root = Path(path)
    if not root.exists():
        raise ResultsError(f"{root}: no such folder")
    if (root / PLAN).exists():  # a plan.json that is not a file is still a run's: read_plan says what is wrong
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
    selector = pafs.FileSelector(root, recursive=True)  # (an object store lists a prefix flat, in one listing)
    depth = root.rstrip("/").count("/")
    runs = {
        f.path.rsplit("/", 1)[0]
        for f in filesystem.get_file_info(selector)
        if f.base_name == PLAN and f.path.count("/") - depth <= 3  # <root>/*/plan.json and <root>/*/*/plan.json
    }
    return sorted(runs, key=lambda p: (folder_name(p), p))


def folder_name(run: str | Path) -> str:
    """The last part of a run folder's path (local or in an object store)."""
    return str(run).rstrip("/").rsplit("/", 1)[-1]


def part_files(run_dirs: list, table: str, filesystem: Any = None) -> list:
    """The committed part files of ``table`` in the given runs (never the hidden temporaries).

    Each is checked as :func:`part_schemas` does: the one rule for which files every reader reads.
    """
    return list(part_schemas(run_dirs, table, filesystem))


def part_schemas(run_dirs: list, table: str, filesystem: Any = None) -> dict[Any, pa.Schema]:
    """The committed part files of ``table`` in the given runs, each with its schema, checked.

    A part is any ``part-*.parquet`` in ``<run>/<table>/``. Each must be a regular file,
    readable as Parquet, with the table's key columns, the contract's type for each fixed
    column it has, and float ``metric_*`` columns.

    Raises:
        ResultsError (``damaged``): a part that breaks the rule, named.
    """
    found: dict[Any, pa.Schema] = {}
    for path in _part_paths(run_dirs, table, filesystem):
        try:
            schema = pq.read_schema(str(path), filesystem=filesystem)
        except (pa.ArrowException, OSError) as exc:
            raise ResultsError(f"{path}: not a readable Parquet part file ({_reason(exc)})", damaged=True) from None
        _check_part(path, table, schema)
        found[path] = schema
    return found


def _part_paths(run_dirs: list, table: str, filesystem: Any) -> list:
    paths: list = []
    if filesystem is not None:
        import pyarrow.fs as pafs

        for run in run_dirs:
            selector = pafs.FileSelector(f"{run}/{table}", allow_not_found=True)
            infos = [f for f in filesystem.get_file_info(selector) if _is_part(f.base_name)]
            for info in sorted(infos, key=lambda f: f.path):
                if not info.is_file:
                    raise ResultsError(f"{info.path}: named like a part file but not a file", damaged=True)
                paths.append(info.path)
        return paths
    for run in run_dirs:
        for path in sorted((run / table).glob("part-*.parquet")):
            if not path.is_file():
                raise ResultsError(f"{path}: named like a part file but not a file", damaged=True)
            paths.append(path)
    return paths


def _is_part(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else exc.__class__.__name__
    return first if len(first) <= 200 else first[:200] + "…"


def _check_part(path: Any, table: str, schema: pa.Schema) -> None:
    fixed = {f.name: f.type for f in FIXED[table]}
    names = set(schema.names)
    for name in _REQUIRED[table]:
        if name not in names:
            raise ResultsError(f"{path}: not a scalehp {table} part file (no column {name})", damaged=True)
    for item in schema:
        expected = fixed.get(item.name)
        if item.name.startswith("metric_"):
            expected = pa.float64() if not pa.types.is_floating(item.type) else item.type
        if expected is not None and item.type != expected and not pa.types.is_null(item.type):
            raise ResultsError(
                f"{path}: not a scalehp {table} part file (column {item.name!r} is {item.type}, not {expected})",
                damaged=True,
            )


def _read_data(
    files: list, schema: pa.Schema | None, filesystem: Any, table: str, columns: list[str] | None = None, where: Any = None
) -> pa.Table:
    """The rows of ``files`` (as one dataset, or one file when ``schema`` is None); a damaged file named."""
    try:
        if schema is None:
            return pq.read_table(str(files[0]), filesystem=filesystem)
        data = ds.dataset([str(f) for f in files], schema=schema, format="parquet", filesystem=filesystem)
        return data.to_table(columns=columns, filter=where)
    except (pa.ArrowException, OSError) as exc:
        if len(files) > 1:  # name the file: read them one by one
            for path in files:
                _read_data([path], None, filesystem, table)
        where = files[0] if len(files) == 1 else table
        raise ResultsError(f"{where}: unreadable Parquet data ({_reason(exc)})", damaged=True) from None


def _empty(table: str) -> pa.Table:
    return pa.schema(FIXED[table]).empty_table()


def read_table(
    run_dirs: list,
    table: str,
    filesystem: Any = None,
    metric_columns: Mapping[str, str] | None = None,
    columns: list[str] | None = None,
    where: Any = None,
) -> pa.Table:
    """One table over several runs, schemas unified and duplicates dropped.

    ``columns``: only these (fixed) columns, and the table's keys; ``where``: only the rows
    this ``pyarrow.dataset`` expression on fixed columns keeps (a key's rows are kept or
    dropped together when the expression is on the key). A million rows' ids, or one trial's
    row, without the rest of them.

    ``metric_columns`` (name -> column) fixes the columns of names seen elsewhere (in the
    other tables); other names keep the column their part files give them unless another
    name claimed it first, and are renamed then. The result's ``metric_*`` fields carry
    their names in the field metadata, and so do ``param_*`` fields whose part files did.
    """
    if table not in TABLES:
        raise ResultsError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    found = part_schemas(run_dirs, table, filesystem)
    pending = journal_tables(run_dirs, table, found) if filesystem is None else []
    if not found and not pending:
        return _empty(table)
    files, schemas = list(found), list(found.values())
    schemas += [p.schema for p in pending]
    canonical = ColumnMap("metric", metric_columns)
    per_file = [metric_names_of(schema) for schema in schemas]
    for names in per_file:
        for column, name in names.items():
            canonical.keep(name, column)
    renames = [{c: canonical[n] for c, n in names.items() if canonical[n] != c} for names in per_file]

    def renamed(part: pa.Table, rename: Mapping[str, str]) -> pa.Table:
        return pa.Table.from_arrays(part.columns, names=[rename.get(c, c) for c in part.column_names])

    def concat(parts: list[pa.Table]) -> pa.Table:
        try:
            return pa.concat_tables(parts, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ResultsError(f"{table}: part files disagree on column types: {_reason(exc)}") from None

    keys = _KEYS[table]
    wanted = None if columns is None else list(dict.fromkeys([*keys, *columns]))

    def selected(part: pa.Table) -> pa.Table:
        part = part if where is None else part.filter(where)
        return part if wanted is None else part.select(wanted)

    if any(renames[: len(files)]):  # runs that gave one column to different names: part by part, renamed
        data = concat([selected(renamed(_read_data([f], None, filesystem, table), r)) for f, r in zip(files, renames)])
    elif files:
        data = _read_data(files, _unify(found, table), filesystem, table, wanted, where)
    else:
        data = selected(_empty(table))
    if pending:  # rows a killed run left in its journal only: after its parts, so they win
        data = concat([data, *(selected(renamed(p, r)) for p, r in zip(pending, renames[len(files) :]))])
    if keys and data.num_rows:
        data = _last_per_key(data, keys)
    params: dict[str, str] = {}
    for schema in schemas:  # params are declared up front: one name per column in a run
        for column, name in names_of(schema, "param", recorded_only=True).items():
            params.setdefault(column, name)
    return _named(data, {**canonical.names, **params})


def journal_tables(run_dirs: list, table: str, found: Mapping[Any, pa.Schema]) -> list[pa.Table]:
    """The rows of ``table`` that only a journal holds, in each run's journal files, oldest first
    (:mod:`scalehp.results.journal`): a run killed before its sink wrote them as parts."""
    tables = []
    for run in run_dirs:
        files = journal.journal_files(Path(run))
        if not files:
            continue
        folder = Path(run) / table
        reach = journal.covered({p: schema for p, schema in found.items() if Path(p).parent == folder})
        for path in files:
            leftover = journal.read_journal(path)
            rows = journal.uncovered(leftover, table, reach)
            if rows:
                tables.append(build_table(table, rows, leftover.params, leftover.names))
    return tables


def _unify(schemas: dict[Any, pa.Schema], table: str) -> pa.Schema:
    """One schema for all parts (ints that became floats widen); else the first part that disagrees, named."""
    try:
        return pa.unify_schemas(list(schemas.values()), promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    merged: pa.Schema | None = None
    for path, schema in schemas.items():
        try:
            merged = schema if merged is None else pa.unify_schemas([merged, schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ResultsError(
                f"{path}: its column types disagree with the other {table} part files ({_reason(exc)})"
            ) from None
    raise ResultsError(f"{table}: part files disagree on column types")  # pragma: no cover - found above


def _named(data: pa.Table, names: Mapping[str, str]) -> pa.Table:
    """``data`` with each ``metric_*`` and ``param_*`` field's name in its metadata (others have none)."""
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
            schemas = part_schemas(self.runs, "reports", self.filesystem).values()
            return {n: c for s in schemas for c, n in metric_names_of(s).items()}
        canonical = ColumnMap("metric")
        for run in self.runs:  # oldest first: the first run to use a column keeps it
            schemas = [*part_schemas([run], "reports", self.filesystem).values()]
            schemas += part_schemas([run], "trials", self.filesystem).values()
            for schema in schemas:
                for column, name in metric_names_of(schema).items():
                    canonical.keep(name, column)
        return dict(canonical.columns)

    def _frame(self, name: str) -> pd.DataFrame:
        data = self.table(name)
        frame = data.to_pandas()
        frame.attrs["metric_names"] = metric_names_of(data.schema)
        names = param_names_of(data.schema)
        recorded = names_of(data.schema, "param", recorded_only=True)
        planned = {  # runs written before param columns recorded their names: the plan's map
            column: name
            for plan in self.plans.values()
            for name, column in (plan.get("columns") or {}).items()
            if column in names
        }
        frame.attrs["param_names"] = {**names, **planned, **recorded}
        return frame

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial; ``attrs["metric_names"]`` and ``attrs["param_names"]`` map columns to names."""
        return self._frame("trials")

    @property
    def reports(self) -> pd.DataFrame:
        """One row per report; ``attrs["metric_names"]`` and ``attrs["param_names"]`` map columns to names."""
        return self._frame("reports")

    @property
    def events(self) -> pd.DataFrame:
        return self.table("events").to_pandas()

    @cached_property
    def plans(self) -> dict[str, dict[str, Any]]:
        """``run_id`` -> the plan the run was started with (``plan.json``, checked by :func:`read_plan`).

        The key is the run id the run recorded (the ``run_id`` of its rows), whatever its
        folder is called now; :attr:`folders` has the folders.
        """
        plans: dict[str, dict[str, Any]] = {}
        for _, run_id, plan in self._recorded:
            plans.setdefault(run_id, plan)  # a copy beside the original: one run
        return plans

    @property
    def folders(self) -> dict[str, list[str]]:
        """``run_id`` -> the names of the folders holding that run (one, unless it was copied)."""
        folders: dict[str, list[str]] = {}
        for folder, run_id, _ in self._recorded:
            folders.setdefault(run_id, []).append(folder)
        return folders

    @cached_property
    def _recorded(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = []
        for run in self.runs:
            plan = read_plan(run, self.filesystem)
            out.append((folder_name(run), run_id_of(plan, run), plan))
        return out

    def metric(self, run_id: str | None = None) -> tuple[str, str]:
        """The experiment metric's name and mode (of ``run_id``, or of the only/newest run)."""
        if not self.plans:
            raise ResultsError("no runs to read a metric from")
        plan = self.plans[run_id] if run_id else list(self.plans.values())[-1]
        metric = plan["experiment"]["metric"]
        return metric["name"], metric["mode"]


def run_id_of(plan: Mapping[str, Any], run: str | Path) -> str:
    """The run id a run recorded (its plan's ``run_id``); the folder's name for a plan without one."""
    recorded = plan.get("run_id")
    return recorded if isinstance(recorded, str) and recorded else folder_name(run)


def read_plan(run: str | Path, filesystem: Any = None) -> dict[str, Any]:
    """A run's ``plan.json``, read as untrusted input and checked for the fields readers use.

    Raises:
        ResultsError (``damaged``): not a regular file, too large, not JSON, not an object,
            or a field of the wrong type; naming the file and the key.
    """
    where = f"{str(run).rstrip('/')}/{PLAN}"
    try:
        if filesystem is None:
            text = read_text_file(Path(run) / PLAN, limit=MAX_PLAN_BYTES)
        else:
            with filesystem.open_input_stream(where) as stream:
                data = stream.read(MAX_PLAN_BYTES + 1)
            if len(data) > MAX_PLAN_BYTES:
                raise ResultsError(f"{where}: file too large (over {MAX_PLAN_BYTES} bytes)", damaged=True)
            text = data.decode("utf-8")
    except SpecError as exc:
        raise ResultsError(str(exc), damaged=True) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{where}: unreadable plan ({exc.__class__.__name__})", damaged=True) from None
    try:
        plan = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ResultsError(f"{where}: not JSON ({exc.__class__.__name__})", damaged=True) from None
    _check_plan(plan, where)
    return plan


_OPTIONAL_TEXT = (str, type(None))


def _check_plan(plan: Any, where: str) -> None:
    """The fields of a plan that readers use, with their types (the rest is not read)."""

    def fail(key: str, expected: str, value: Any) -> None:
        found = "null" if value is None else type(value).__name__
        raise ResultsError(f"{where}: {key}: expected {expected}, got {found}", damaged=True)

    def metric(value: Any, key: str) -> None:
        if not isinstance(value, dict):
            fail(key, "an object with name and mode", value)
        if not isinstance(value.get("name"), str):
            fail(f"{key}.name", "text", value.get("name"))
        if value.get("mode") not in ("min", "max"):
            mode = value.get("mode")
            if isinstance(mode, str):
                raise ResultsError(f"{where}: {key}.mode: expected min or max", damaged=True)
            fail(f"{key}.mode", "min or max", mode)

    if not isinstance(plan, dict):
        fail("(top level)", "an object", plan)
    for key, kinds, expected in (
        ("run_id", _OPTIONAL_TEXT, "text"),
        ("created_at", _OPTIONAL_TEXT, "text"),
        ("searcher", _OPTIONAL_TEXT, "text"),
        ("scheduler", _OPTIONAL_TEXT, "text"),
    ):
        if not isinstance(plan.get(key), kinds):
            fail(key, expected, plan.get(key))
    trials = plan.get("trials")
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int)):
        fail("trials", "a whole number", trials)
    columns = plan.get("columns", {})
    if not isinstance(columns, dict) or not all(isinstance(c, str) for c in columns.values()):
        fail("columns", "an object of param name -> column", columns)
    experiment = plan.get("experiment")
    if not isinstance(experiment, dict):
        fail("experiment", "an object", experiment)
    if not isinstance(experiment.get("name"), _OPTIONAL_TEXT):
        fail("experiment.name", "text", experiment.get("name"))
    metric(experiment.get("metric"), "experiment.metric")
    metrics = experiment.get("metrics")
    if metrics is not None:
        if not isinstance(metrics, list) or not metrics:
            fail("experiment.metrics", "a list of metrics", metrics)
        for i, item in enumerate(metrics):
            metric(item, f"experiment.metrics[{i}]")
    if not isinstance(experiment.get("space", {}), (dict, type(None))):
        fail("experiment.space", "an object", experiment.get("space"))


def read_results(path: str | Path) -> Results:
    """Open the results under ``path``: a run folder, an experiment folder or a results root.

    Every run's ``plan.json`` is read and checked here (:func:`read_plan`); tables when asked for.

    Raises:
        ResultsError: nothing under ``path`` looks like a scalehp run, or a run's plan is damaged.
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
    results = Results(runs, filesystem)
    results.plans  # noqa: B018 - a damaged plan is found now, in every command
    return results
