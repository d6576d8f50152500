"""Warm start: the best trials of earlier runs seed a new search.

``search.warm_start: {runs: [...], top: 10}`` names run folders or experiment folders
(a bare experiment name is looked up under the results root too). Their trials are read
from the Parquet tables, each one's params are fitted to the *current* space (a trial
whose active params fall outside it, or that lacks a metric, is left out), and the ``top``
best by the first metric are carried over with their known results: the searcher counts
them as finished trials (hyperopt and optuna both model them), so nothing is re-run.
The value carried over for each metric is the trial's value at its last step, which is
what the searcher is told when a trial of this run ends.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from scalehp.errors import ResultsError
from scalehp.results.schema import column_name, metric_column
from scalehp.space import flatten_space
from scalehp.spec import Experiment


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _config(nodes: list, row: dict[str, Any]) -> dict[str, Any] | None:
    config: dict[str, Any] = {}
    for node in nodes:
        if not node.active(config) or node.name in config:
            continue
        if not node.param.searched:  # a constant: as the current space declares it
            config[node.name] = node.param.value
            continue
        value = _plain(row.get(column_name("param", node.name)))
        if _missing(value) or not node.param.fits(value):
            if any(n.name == node.name and n is not node for n in nodes):
                continue  # declared again under another option: that declaration may fit
            return None
        if node.param.integer:
            value = int(value)
        config[node.name] = value
    return config


def _runs(experiment: Experiment, ref: str, index: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The trials of the runs under ``ref`` as records, and metric name -> column."""
    from scalehp.results.store import read_results

    path = Path(ref)
    if not path.exists() and (Path(experiment.results) / ref).exists():
        path = Path(experiment.results) / ref
    try:
        results = read_results(path)
        trials = results.trials
    except ResultsError as exc:
        raise experiment.error(f"search.warm_start.runs.{index}", f"cannot read earlier results: {exc}") from None
    if not len(trials):
        return [], {}
    columns = {m.name: metric_column(trials, m.name) for m in experiment.objectives}
    return trials.to_dict("records"), {name: column for name, column in columns.items() if column}


def carried_over(experiment: Experiment) -> tuple[tuple[dict[str, Any], ...], int]:
    """The earlier trials that seed the search, best first, and how many were left out.

    Each is ``{"config": …, "values": [one per metric], "run_id": …, "trial_id": …}``.

    Raises:
        SpecError: a named run or experiment folder holds no readable results.
    """
    options = experiment.search.warm_start
    if options is None:
        return (), 0
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped = 0
    for index, ref in enumerate(options.runs):
        rows, columns = _runs(experiment, ref, index)
        kept, left = _points(experiment, rows, columns, seen)
        found += kept
        skipped += left
    sign = 1.0 if experiment.objectives[0].mode == "min" else -1.0
    found.sort(key=lambda p: sign * p["values"][0])
    return tuple(found[: options.top]), skipped


def points(experiment: Experiment, trials: Any) -> tuple[dict[str, Any], ...]:
    """Trials of a ``trials`` table as points a searcher is told (their order kept; errors and
    trials without the metrics left out): a resumed run tells its searcher what it had finished."""
    if not len(trials):
        return ()
    columns = {m.name: metric_column(trials, m.name) for m in experiment.objectives}
    kept, _ = _points(experiment, trials.to_dict("records"), {n: c for n, c in columns.items() if c}, set())
    return tuple(kept)


def _points(
    experiment: Experiment, rows: list[dict[str, Any]], columns: dict[str, str], seen: set[str]
) -> tuple[list[dict[str, Any]], int]:
    nodes = flatten_space(experiment.space)
    kept: list[dict[str, Any]] = []
    skipped = 0
    for row in rows:
        if row.get("status") == "error":
            continue
        values = [_plain(row.get(columns.get(m.name, ""))) for m in experiment.objectives]
        config = _config(nodes, row)
        if config is None or any(_missing(v) for v in values):
            skipped += 1
            continue
        key = repr(sorted(config.items(), key=lambda kv: kv[0]))
        if key in seen:
            continue
        seen.add(key)
        kept.append(
            {"config": config, "values": [float(v) for v in values], "run_id": row["run_id"], "trial_id": row["trial_id"]}
        )
    return kept, skipped
