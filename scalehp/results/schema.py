"""The Parquet contract: tables, fixed columns and how names become columns.

Three tables live in every run folder, each a folder of part files:

``trials``   one row per trial in its final state
``reports``  one row per ``trial.report`` (the config in effect at that step included)
``events``   one row per scheduler decision (rung stops, PBT exploits and explores, …)

Every table has ``run_id``, ``experiment`` and ``trial_id``. The config is spread into
``param_<name>`` columns and reported values into ``metric_<name>`` columns (always
float64). Names become columns by one rule: every character that is not a letter, digit
or ``_`` becomes ``_`` (``val/loss`` -> ``metric_val_loss``).
"""

from __future__ import annotations

import re

import pyarrow as pa

TABLES = ("trials", "reports", "events")

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")


def column_name(prefix: str, name: str) -> str:
    """The Parquet column for a param or metric name.

    Example:
        >>> column_name("metric", "val/loss")
        'metric_val_loss'
    """
    return f"{prefix}_{_NOT_IDENTIFIER.sub('_', name)}"


TIME = pa.timestamp("us", tz="UTC")

FIXED: dict[str, list[pa.Field]] = {
    "trials": [
        pa.field("run_id", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("trial_id", pa.string()),
        pa.field("status", pa.string()),  # completed | stopped | error
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
        pa.field("action", pa.string()),  # continue | stop | pause | exploit | explore | skip
        pa.field("rung", pa.int64()),  # the rung's step, for ASHA and Hyperband
        pa.field("value", pa.float64()),  # the trial's metric at the decision
        pa.field("cutoff", pa.float64()),  # the value it had to beat
        pa.field("bracket", pa.int64()),  # Hyperband's bracket (its number of halvings)
        pa.field("donor_trial_id", pa.string()),  # PBT/PB2: the trial whose checkpoint is copied
        pa.field("donor_step", pa.int64()),  # the donor's step at that checkpoint: where the trial resumes
        pa.field("donor_value", pa.float64()),  # the donor's metric at that step
        pa.field("old_params", pa.string()),  # JSON: mutated params before (exploit: own, explore: donor's)
        pa.field("new_params", pa.string()),  # JSON: mutated params after (exploit: donor's, explore: new)
    ],
}

STATUSES = ("completed", "stopped", "error")


def arrow_type(values: list) -> pa.DataType:
    """The Arrow type of a param column from the values the param can take.

    Ints stay int64, floats (or ints mixed with floats) float64, booleans bool; anything
    else, or a mix, is stored as text.
    """
    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {bool}:
        return pa.bool_()
    if kinds and kinds <= {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.string()


def param_type(param) -> pa.DataType:
    """The Arrow type of one param's column (conditional choices and counts by their values)."""
    from scalehp.space import (
        ChoiceParam,
        ConditionalParam,
        ConstantParam,
        CountParam,
        FloatParam,
        GridParam,
        IntParam,
        LogNormalParam,
        NormalParam,
    )

    if isinstance(param, (FloatParam, NormalParam, LogNormalParam)):
        return pa.float64()
    if isinstance(param, (IntParam, CountParam)):
        return pa.int64()
    if isinstance(param, ChoiceParam):
        return arrow_type(param.options)
    if isinstance(param, (GridParam, ConditionalParam)):
        return arrow_type(param.values)
    if isinstance(param, ConstantParam):
        return arrow_type([param.value])
    raise TypeError(f"unknown param kind {param!r}")  # pragma: no cover - every kind is listed above


def param_fields(space: dict, columns: dict[str, str]) -> list[pa.Field]:
    """One Arrow field per param of a search space (name -> param), in space order.

    Nested params of a conditional space get their own column (null while inactive).
    """
    from scalehp.space import flatten_space

    fields: dict[str, pa.Field] = {}
    for node in flatten_space(space):
        fields.setdefault(node.name, pa.field(columns[node.name], param_type(node.param)))
    return list(fields.values())
