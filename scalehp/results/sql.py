"""SQL over results with DuckDB: views ``trials``, ``reports``, ``events`` and ``runs``.

The views read the committed part files of every run under a path directly (no copy), with
``union_by_name`` so that runs with different params or metrics still read as one table
(missing columns are NULL), and de-duplicated as :func:`scalehp.read_results` does: the last
row written for a ``(run_id, trial_id, step)`` in ``reports`` and for a
``(run_id, trial_id)`` in ``trials`` wins (checked once when connecting; a table without
repeated keys is read as it is). ``runs`` has one row per run from its ``plan.json``.
The views cover the part files present when :func:`connect` is called: the very files
:func:`scalehp.read_results` reads (:func:`~scalehp.results.store.part_files`, one rule for
both), so a part file it refuses is refused here too, with the same one line; and, like it,
the rows of a killed run that only its journal holds (:mod:`scalehp.results.journal`).

The SQL is read-only over the results: once the views are made, DuckDB's access to anything
outside (files, ``COPY … TO``, ``read_csv('/etc/passwd')``, ``ATTACH``, ``INSTALL``/``LOAD``
of extensions) is switched off (``enable_external_access = false``; only the part files
stay readable, as ``allowed_paths``) and the configuration is locked, so no statement can
switch it back on. ``allow_files=True`` (``scalehp sql --allow-files``) leaves DuckDB as it
is, for a query that reads or writes other files on purpose.

Example:
    >>> con = connect("results")                                          # doctest: +SKIP
    >>> con.sql("SELECT trial_id, min(metric_loss) FROM reports GROUP BY 1").df()  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalehp.errors import ResultsError
from scalehp.results.schema import FIXED, TABLES
from scalehp.results.store import PLAN, find_runs, journal_tables, part_schemas, read_plan, run_id_of

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

_KEYS = {"trials": ("run_id", "trial_id"), "reports": ("run_id", "trial_id", "step"), "events": ()}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _run_rows(runs: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        plan = read_plan(run)
        experiment = plan["experiment"]
        metric = experiment["metric"]
        rows.append(
            {
                "run_id": run_id_of(plan, run),  # as the rows recorded it, whatever the folder is called now
                "experiment": experiment.get("name"),
                "created_at": plan.get("created_at"),
                "metric": metric["name"],
                "mode": metric["mode"],
                "searcher": plan.get("searcher"),
                "scheduler": plan.get("scheduler"),
                "planned_trials": plan.get("trials"),
                "path": str(run),
            }
        )
    return rows


def _has_duplicates(con: duckdb.DuckDBPyConnection, listing: str, keys: tuple[str, ...]) -> bool:
    """Whether some key shows in more than one row (a retried or resumed trial); reads only the key columns."""
    columns = ", ".join(keys)
    found = con.execute(
        f"SELECT 1 FROM read_parquet({listing}, union_by_name = true) GROUP BY {columns} HAVING count(*) > 1 LIMIT 1"
    ).fetchall()
    return bool(found)


def connect(path: str | Path, runs: list[Path] | None = None, allow_files: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views over the runs at or below ``path``.

    Unless ``allow_files``, the connection reads nothing but the views' part files and
    writes no file (see the module's notes).

    Raises:
        ResultsError: nothing under ``path`` looks like a scalehp run, or a run's part
            file or ``plan.json`` is damaged (``damaged``).
    """
    import duckdb

    runs = runs if runs is not None else find_runs(path)
    if not runs:
        raise ResultsError(f"{path}: no scalehp runs here (no {PLAN} found up to two folders down)")
    rows = _run_rows(runs)
    schemas_of = {table: part_schemas(runs, table) for table in TABLES}
    files_of = {table: list(schemas) for table, schemas in schemas_of.items()}
    journal_of = {table: journal_tables(runs, table, schemas) for table, schemas in schemas_of.items()}
    con = duckdb.connect(":memory:")
    try:
        _views(con, rows, files_of, journal_of, allow_files)
    except duckdb.Error as exc:
        con.close()
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise ResultsError(f"{path}: cannot read the results ({first})", damaged=True) from None
    return con


def _views(
    con: duckdb.DuckDBPyConnection,
    rows: list[dict],
    files_of: dict[str, list],
    journal_of: dict[str, list],
    allow_files: bool,
) -> None:
    import pyarrow as pa

    if not allow_files:
        readable = [str(f) for files in files_of.values() for f in files]
        con.execute("SET allowed_paths = " + "[" + ", ".join(_quote(f) for f in readable) + "]")
    for table in TABLES:
        files, pending = files_of[table], journal_of[table]
        if not files and not pending:
            empty = pa.schema(FIXED[table]).empty_table()
            con.register(f"__empty_{table}", empty)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM __empty_{table}")
            continue
        keys = _KEYS[table]
        sources = []
        if files:
            listing = "[" + ", ".join(_quote(str(f)) for f in files) + "]"
            sources.append(
                f"SELECT *, 0 AS __journal FROM read_parquet({listing}, union_by_name = true, "
                "filename = true, file_row_number = true)"
            )
            repeated = bool(keys) and _has_duplicates(con, listing, keys)
        if pending:  # rows only a killed run's journal holds: newer than its parts
            rows_only = pa.concat_tables(pending, promote_options="permissive")
            rows_only = rows_only.append_column("filename", pa.nulls(rows_only.num_rows, pa.string()))
            rows_only = rows_only.append_column("file_row_number", pa.array(range(rows_only.num_rows), pa.int64()))
            con.register(f"__journal_{table}", rows_only)
            sources.append(f"SELECT *, 1 AS __journal FROM __journal_{table}")
            repeated = bool(keys)
        source = "(" + " UNION ALL BY NAME ".join(sources) + ")"
        if repeated:
            # part names start with the time they were written: the last written row wins
            query = (
                f"SELECT * EXCLUDE (filename, file_row_number, __journal) FROM {source} "
                f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} "
                f"ORDER BY __journal DESC, filename DESC, file_row_number DESC) = 1"
            )
        else:
            query = f"SELECT * EXCLUDE (filename, file_row_number, __journal) FROM {source}"
        con.execute(f"CREATE VIEW {table} AS {query}")
    con.register("__runs", pa.Table.from_pylist(rows))
    con.execute("CREATE VIEW runs AS SELECT * FROM __runs")
    if not allow_files:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")


def query(path: str | Path, sql: str, allow_files: bool = False) -> Any:
    """Run ``sql`` over the views of the runs under ``path``; the result as a pyarrow Table.

    ``allow_files``: let the SQL read and write other files (off: read-only over the results).

    Raises:
        ResultsError: the SQL is invalid, names a missing column or table, or reaches
            outside the results without ``allow_files``.
    """
    import duckdb

    con = connect(path, allow_files=allow_files)
    try:
        relation = con.sql(sql)
        return relation.to_arrow_table() if relation is not None else None
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ResultsError(f"sql: {first}") from None
    finally:
        con.close()
