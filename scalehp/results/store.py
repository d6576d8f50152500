"""Reading results: one run, one experiment's runs, or a whole results root.

A run folder is any folder holding a ``plan.json``. Tables are read with pyarrow over all
part files of the chosen runs, with their schemas unified (a metric that appears later, or
an int column that became float, still reads), and de-duplicated: the last row written
for a ``(run_id, trial_id, step)`` in ``reports`` and for a ``(run_id, trial_id)`` in
``trials`` wins, so retried and resumed trials never show twice. Reading works while a run
is still writing: only whole part files are ever visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from scalehp.errors import ResultsError
from scalehp.results.schema import FIXED, TABLES

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


def part_files(run_dirs: list[Path], table: str) -> list[Path]:
    """The committed part files of ``table`` in the given runs (never the hidden temporaries)."""
    files: list[Path] = []
    for run in run_dirs:
        files += sorted((run / table).glob("part-*.parquet"))
    return files


def _empty(table: str) -> pa.Table:
    return pa.schema(FIXED[table]).empty_table()


def read_table(run_dirs: list[Path], table: str) -> pa.Table:
    """One table over several runs, schemas unified and duplicates dropped."""
    if table not in TABLES:
        raise ResultsError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    files = part_files(run_dirs, table)
    if not files:
        return _empty(table)
    schemas = [pq.read_schema(f) for f in files]
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ResultsError(f"{table}: part files disagree on column types: {exc}") from None
    data = ds.dataset([str(f) for f in files], schema=schema, format="parquet").to_table()
    keys = _KEYS[table]
    if keys and data.num_rows:
        data = _last_per_key(data, keys)
    return data


def _last_per_key(data: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    order = pa.array(range(data.num_rows), pa.int64())
    indexed = data.append_column("__row", order)
    last = indexed.group_by(list(keys), use_threads=False).aggregate([("__row", "max")])
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
    _cache: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pa.Table:
        """``trials``, ``reports`` or ``events`` as a pyarrow Table."""
        if name not in self._cache:
            self._cache[name] = read_table(self.runs, name)
        return self._cache[name]

    @property
    def trials(self) -> pd.DataFrame:
        return self.table("trials").to_pandas()

    @property
    def reports(self) -> pd.DataFrame:
        return self.table("reports").to_pandas()

    @property
    def events(self) -> pd.DataFrame:
        return self.table("events").to_pandas()

    @cached_property
    def plans(self) -> dict[str, dict[str, Any]]:
        """``run_id`` -> the plan the run was started with (``plan.json``)."""
        plans = {}
        for run in self.runs:
            try:
                plans[run.name] = json.loads((run / PLAN).read_text())
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
    runs = find_runs(path)
    if not runs:
        raise ResultsError(f"{path}: no scalehp runs here (no {PLAN} found up to two folders down)")
    return Results(runs)
