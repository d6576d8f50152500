"""The Parquet contract: tables, fixed columns and how names become columns.

Three tables live in every run folder, each a folder of part files:

``trials``   one row per trial in its final state
``reports``  one row per ``trial.report`` (the config in effect at that step included)
``events``   one row per scheduler decision (rung stops, PBT exploits and explores, …) and
             one ``end`` row when the run ended early (a goal reached, too many failed
             trials, the time limit; ``reason`` names the setting)

Every table has ``run_id``, ``experiment`` and ``trial_id``. The config is spread into
``param_<name>`` columns and reported values into ``metric_<name>`` columns (always
float64).

How names become columns. Names are kept exactly as written everywhere but in column
names (``val/loss``, ``metrics/mAP_0.5``); a column name must be a plain identifier that
pandas, polars and SQL all accept. The rule has two parts:

1. The readable column: every character that is not a letter, digit or ``_`` becomes
   ``_`` (``val/loss`` -> ``metric_val_loss``, ``metrics/mAP_0.5`` ->
   ``metric_metrics_mAP_0_5``). This is what nearly every name gets.
2. Without collisions: that rule alone maps ``val/loss``, ``val.loss`` and ``val_loss``
   to one column, and SQL (DuckDB) does not tell ``mAP`` from ``map``. A column is
   therefore claimed by the first name that needs it, compared without case; a later
   name whose readable column is taken gets ``<readable>__<hash>``, the first 6 hex
   digits of the SHA-1 of the name (more digits if even that is taken):
   ``val/loss`` -> ``metric_val_loss__0ba428`` when ``val_loss`` came first. The order
   of claims is fixed: the experiment's declared metrics first (at compile time, shown
   by ``scalehp plan``), then reported names as they first appear; names that arrive
   together are taken in the order "unchanged by the rule first, then alphabetical", so
   ``val_loss`` keeps ``metric_val_loss`` when it arrives with ``val/loss``.

Each ``metric_*`` and ``param_*`` field of every part file carries the exact name in its
field metadata (key ``scalehp.name``), so the mapping travels with the data and needs no
side file (readers show ``optimizer.lr``, not ``optimizer_lr``).
Readers (:func:`scalehp.results.store.read_results`) map columns back to names from it,
and when several runs disagree (one run gave ``metric_val_loss`` to ``val/loss``, another
to ``val_loss``) they rename columns while reading so one column holds one name. Params
are declared up front, so two params sharing a column are a compile-time error instead.
A rule that never needs state (escaping ``_`` itself, or always appending a hash) was
the alternative; it makes every column of the common case harder to read and type, to
serve a case that is rare, so the common case wins and the rare one is disambiguated.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Iterable, Mapping

import pyarrow as pa

TABLES = ("trials", "reports", "events")

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")

NAME_KEY = b"scalehp.name"
"""Field metadata key of a ``metric_*`` or ``param_*`` column: the metric's name exactly as
reported, or the param's name as the space declares it (``optimizer.lr``)."""


def column_name(prefix: str, name: str) -> str:
    """The Parquet column for a param or metric name.

    Example:
        >>> column_name("metric", "val/loss")
        'metric_val_loss'
    """
    return f"{prefix}_{_NOT_IDENTIFIER.sub('_', name)}"


class ColumnMap:
    """An injective name -> column map for one prefix, grown as names appear (rule 2 above).

    Example:
        >>> columns = ColumnMap("metric")
        >>> columns.add(["val/loss", "val_loss", "acc"])
        {'acc': 'metric_acc', 'val_loss': 'metric_val_loss', 'val/loss': 'metric_val_loss__0ba428'}
        >>> columns.names["metric_val_loss__0ba428"]
        'val/loss'
    """

    def __init__(self, prefix: str, known: Mapping[str, str] | None = None):
        self.prefix = prefix
        self.columns: dict[str, str] = {}  # name -> column
        self.names: dict[str, str] = {}  # column -> name
        self._taken: dict[str, str] = {}  # column, lower case -> name
        for name, column in (known or {}).items():
            self.keep(name, column)

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> str:
        return self.columns[name]

    def _free(self, column: str, name: str) -> bool:
        return self._taken.get(column.lower(), name) == name

    def _claim(self, name: str, column: str) -> str:
        self.columns[name] = column
        self.names[column] = name
        self._taken[column.lower()] = name
        return column

    def keep(self, name: str, column: str) -> str:
        """Record a column already in use for ``name`` if it is free; else give ``name`` its own."""
        if name in self.columns:
            return self.columns[name]
        return self._claim(name, column) if self._free(column, name) else self.add([name])[name]

    def add(self, names: Iterable[str]) -> dict[str, str]:
        """Columns for the names not seen before (in the rule's order); returns just those."""
        readable = {n: column_name(self.prefix, n) for n in set(names) if n not in self.columns}
        added: dict[str, str] = {}
        for name in sorted(readable, key=lambda n: (readable[n] != f"{self.prefix}_{n}", n)):
            column = readable[name]
            if not self._free(column, name):
                digest = hashlib.sha1(name.encode()).hexdigest()
                candidates = [f"{column}__{digest[:size]}" for size in (6, 12, 40)]
                candidates += [f"{column}__{digest}_{n}" for n in range(1, len(self.names) + 2)]
                column = next(c for c in candidates if self._free(c, name))
            added[name] = self._claim(name, column)
        return added


def names_of(schema: pa.Schema, prefix: str, recorded_only: bool = False) -> dict[str, str]:
    """``<prefix>_*`` column -> name, from a part file's or table's field metadata.

    Columns written before names were recorded fall back to the column without its prefix
    (or are left out with ``recorded_only``).
    """
    out = {}
    start = f"{prefix}_"
    for item in schema:
        if item.name.startswith(start):
            name = (item.metadata or {}).get(NAME_KEY)
            if name:
                out[item.name] = name.decode(errors="replace")
            elif not recorded_only:
                out[item.name] = item.name[len(start) :]
    return out


def metric_names_of(schema: pa.Schema) -> dict[str, str]:
    """``metric_*`` column -> metric name, from a part file's or table's field metadata."""
    return names_of(schema, "metric")


def param_names_of(schema: pa.Schema) -> dict[str, str]:
    """``param_*`` column -> param name (``param_optimizer_lr`` -> ``optimizer.lr``), from the field metadata."""
    return names_of(schema, "param")


def _frame_names(frame: Any, prefix: str) -> dict[str, str]:
    known = getattr(frame, "attrs", {}).get(f"{prefix}_names") or {}
    start = f"{prefix}_"
    return {c: known.get(c, c[len(start) :]) for c in frame.columns if str(c).startswith(start)}


def metric_names(frame: Any) -> dict[str, str]:
    """``metric_*`` column -> metric name for a pandas frame read by ``read_results``.

    The frames of :class:`~scalehp.results.store.Results` carry the map in
    ``frame.attrs["metric_names"]``; a frame without it falls back to the column without
    its prefix.
    """
    return _frame_names(frame, "metric")


def param_names(frame: Any) -> dict[str, str]:
    """``param_*`` column -> param name for a pandas frame read by ``read_results``.

    As :func:`metric_names`, from ``frame.attrs["param_names"]``: a nested param shows as
    ``optimizer.lr``, not as its column's ``optimizer_lr``.
    """
    return _frame_names(frame, "param")


def metric_column(frame: Any, name: str) -> str | None:
    """The column of metric ``name`` in a frame read by ``read_results`` (None: not there).

    ``name`` is a metric name as reported, or a ``metric_*`` column itself. A name no
    column records is looked for under its readable column (rule 1), as runs written
    before names were recorded have it.
    """
    names = metric_names(frame)
    by_name = {n: c for c, n in names.items()}
    if name in by_name:
        return by_name[name]
    if name in names:
        return name
    readable = column_name("metric", name)
    return readable if readable in names and column_name("metric", names[readable]) == readable else None


TIME = pa.timestamp("us", tz="UTC")

FIXED: dict[str, list[pa.Field]] = {
    "trials": [
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("trial_id", pa.string()),
        pa.field("status", pa.string()),  # completed | stopped | error | infeasible
        pa.field("error", pa.string()),
        pa.field("steps", pa.int64()),  # last step reported
        pa.field("best_value", pa.float64()),  # best value of the experiment's metric
        pa.field("best_step", pa.int64()),
        pa.field("retries", pa.int64()),
        pa.field("node", pa.string()),  # IP of the node that ran the trial's last report
        pa.field("node_id", pa.string()),  # its Ray node id (nodes of one machine share an IP)
        pa.field("started_at", TIME),
        pa.field("ended_at", TIME),
    ],
    "reports": [
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("trial_id", pa.string()),
        pa.field("step", pa.int64()),
        pa.field("time", TIME),
        pa.field("elapsed_s", pa.float64()),  # trial's own running time at this report
        pa.field("node_id", pa.string()),  # Ray node that made this report
    ],
    "events": [
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("trial_id", pa.string()),
        pa.field("time", TIME),
        pa.field("step", pa.int64()),
        pa.field("scheduler", pa.string()),
        pa.field("action", pa.string()),  # continue | stop | pause | exploit | explore | skip | end
        pa.field("rung", pa.int64()),  # the rung's step, for ASHA and Hyperband
        pa.field("value", pa.float64()),  # the trial's metric at the decision
        pa.field("cutoff", pa.float64()),  # the value it had to beat
        pa.field("bracket", pa.int64()),  # Hyperband's bracket (its number of halvings)
        pa.field("donor_trial_id", pa.string()),  # PBT/PB2: the trial whose checkpoint is copied
        pa.field("donor_step", pa.int64()),  # the donor's step at that checkpoint: where the trial resumes
        pa.field("donor_value", pa.float64()),  # the donor's metric at that step
        pa.field("old_params", pa.string()),  # JSON: mutated params before (exploit: own, explore: donor's)
        pa.field("new_params", pa.string()),  # JSON: mutated params after (exploit: donor's, explore: new)
        pa.field("reason", pa.string()),  # end: the setting that ended the run (metric.goal, …)
    ],
}

STATUSES = ("completed", "stopped", "error", "infeasible")
INFEASIBLE = "__scalehp_infeasible__"
"""The key of the result a trial sends when its trainable raised :class:`~scalehp.errors.Infeasible` (its message)."""

END_REASONS = ("metric.goal", "failure.max_failed_trials", "budget.time_limit", "budget.soft_time_limit")
"""What an ``events`` row with ``action = end`` can name in ``reason``: the setting that ended the run
(``budget.soft_time_limit``: no trial started after it; the ones running finished)."""


def run_end(events: Any) -> dict[str, Any] | None:
    """The last ``end`` event of one run's ``events`` frame as plain values; None: the run ran to the end."""
    if not len(events) or "reason" not in events.columns:
        return None
    ends = events[events["action"] == "end"]
    if not len(ends):
        return None
    row = ends.iloc[-1]
    plain = {}
    for key in ("reason", "trial_id", "step", "value", "cutoff"):
        value = row.get(key)
        if value is None or value != value:  # None or NaN
            plain[key] = None
        else:
            plain[key] = value.item() if hasattr(value, "item") else value
    return plain


def describe_end(end: Mapping[str, Any], metric: str, mode: str) -> str:
    """Why a run ended early, in words, from its ``end`` event (see :func:`run_end`).

    Example:
        >>> describe_end({"reason": "metric.goal", "trial_id": "00003", "step": 7, "value": 0.953, "cutoff": 0.95}, "val/acc", "max")
        'goal val/acc >= 0.95 reached by trial 00003 at step 7 (val/acc = 0.953; metric.goal)'
    """
    reason, trial, step = end.get("reason"), end.get("trial_id"), end.get("step")
    value, cutoff = end.get("value"), end.get("cutoff")
    numbers = all(isinstance(v, (int, float)) and math.isfinite(v) for v in (value, cutoff))
    if not numbers:  # an end row without its numbers (not written by scalehp)
        return f"ended early ({reason})"
    if reason == "metric.goal":
        at = f" at step {int(step)}" if step is not None else ""
        return (
            f"goal {metric} {'<=' if mode == 'min' else '>='} {cutoff:g} reached by trial {trial}{at} "
            f"({metric} = {value:.6g}; metric.goal)"
        )
    if reason == "failure.max_failed_trials":
        last = f", the last {trial}" if trial else ""
        return f"{int(value)} trials failed (failure.max_failed_trials: {int(cutoff)}){last}"
    if reason == "budget.time_limit":
        return f"time limit of {cutoff:g} s reached after {value:.1f} s (budget.time_limit)"
    if reason == "budget.soft_time_limit":
        return f"no trial started after {cutoff:g} s (budget.soft_time_limit, reached after {value:.1f} s); running trials finished"
    return f"ended early ({reason})"


def param_type(param) -> pa.DataType:
    """The Arrow type of one param's column (conditional choices and counts by their values)."""
    return param.arrow_type


def param_fields(space: dict, columns: dict[str, str]) -> list[pa.Field]:
    """One Arrow field per param of a search space (name -> param), in space order.

    Nested params of a conditional space get their own column (null while inactive).
    """
    from scalehp.space import flatten_space

    fields: dict[str, pa.Field] = {}
    for node in flatten_space(space):
        field = pa.field(columns[node.name], param_type(node.param), metadata={NAME_KEY: node.name})
        fields.setdefault(node.name, field)
    return list(fields.values())
