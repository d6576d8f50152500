"""W&B Sweeps configuration (``sweep.yaml``) -> a scalehp experiment.

What maps how (the full table is ``docs/import/wandb.md``):

* ``method``: ``grid`` -> grid search over ``choice`` params (each combination once),
  ``random`` -> random search, ``bayes`` -> optuna's Gaussian-process sampler
  (``sampler: gp``, Bayesian optimisation as W&B's), or hyperopt TPE where the space holds
  what optuna cannot draw (normal and log-normal distributions, a float on a log scale with a
  step, choices among mappings) -- with a note saying which and why.
* ``parameters``: every distribution; bounds that W&B reads as exponents of e
  (``log_uniform``, ``q_log_uniform``, ``inv_log_uniform``) become values, with a note;
  nested ``parameters`` become dotted names (``optimizer.lr``). The ``q_`` kinds take W&B's
  unclipped ``round(x / q) * q``: bounds rounded to those multiples (a 0 a log range cannot hold
  gives a choice).
* ``metric``: ``name``, ``goal`` -> ``mode``, ``target`` -> ``metric.goal``.
* ``early_terminate`` (hyperband) -> the ``asha`` scheduler with ``grace_steps`` the first
  bracket and ``reduction_factor`` eta; ``max_iter`` -> ``budget.max_steps``.
* ``run_cap`` -> ``budget.samples``; ``program``/``command`` -> ``command``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from scalehp.compiler import searcher_problem
from scalehp.importers import Imported, Source
from scalehp.importers._mapping import (
    MAX_CHOICE_VALUES,
    Mapping,
    finite,
    multiple,
    sanitize_name,
    shown,
    span,
)

TAKES_PROGRAM = True
"""``scalehp import --program`` may replace the sweep's ``program``."""

DEFAULT_SAMPLES = 20
"""Trials when a random or bayes sweep has no ``run_cap`` (W&B runs those until stopped)."""

DEFAULT_MAX_STEPS = 100
"""``budget.max_steps`` when the sweep gives no ``early_terminate.max_iter`` and no ``epochs`` parameter."""

EPOCH_PARAMS = ("epochs", "num_epochs", "n_epochs", "max_epochs")
"""Parameters whose largest value is taken as the steps a run makes (one report per epoch)."""

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
"""W&B's command when the sweep has none."""

_TOP = {
    "program",
    "method",
    "metric",
    "metrics",
    "parameters",
    "early_terminate",
    "command",
    "run_cap",
    "name",
    "description",
    "project",
    "entity",
    "controller",
    "scheduler",
    "apiVersion",
    "kind",
    "job",
    "image_uri",
}

_KEYS = {
    "constant": {"value"},
    "categorical": {"values", "probabilities"},
    "int_uniform": {"min", "max"},
    "uniform": {"min", "max"},
    "q_uniform": {"min", "max", "q"},
    "log_uniform": {"min", "max"},
    "log_uniform_values": {"min", "max"},
    "q_log_uniform": {"min", "max", "q"},
    "q_log_uniform_values": {"min", "max", "q"},
    "inv_log_uniform": {"min", "max"},
    "inv_log_uniform_values": {"min", "max"},
    "normal": {"mu", "sigma"},
    "q_normal": {"mu", "sigma", "q"},
    "log_normal": {"mu", "sigma"},
    "q_log_normal": {"mu", "sigma", "q"},
    "beta": {"a", "b"},
    "q_beta": {"a", "b", "q"},
}
_GRID_OK = {"constant", "categorical", "int_uniform", "q_uniform"}
_MACRO = re.compile(r"\$\{([^}]*)\}")
_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./${}-]+$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")  # W&B's own rule, within scalehp's


def convert(source: Source) -> Imported:
    """The scalehp experiment for the W&B sweep configuration in ``source``."""
    return _Converter(source).run()


def _number(value: Any) -> bool:
    """A finite number (not NaN, inf, a bool, or an int too large for a float)."""
    return finite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    """A whole number of at least 1 that a float holds."""
    return _integer(value) and finite(value) and value >= 1


def _decimals(x: float) -> int:
    text = repr(float(x))
    if "e" in text or "E" in text:
        return 15
    return len(text.split(".")[1]) if "." in text else 0


def exp_bound(x: float) -> float:
    """The value e**x for an exponent bound, read at the precision the exponent was written with.

    ``-9.21`` is ln(1.0e-4) to two decimals, so it gives ``1.0e-4``; ``-2.3`` gives ``0.1``. A
    number of up to three significant digits is taken when its natural log, rounded to the
    decimals written, is the exponent; otherwise (and for a whole-number exponent, a deliberate
    power of e) e**x to 6 significant digits.

    Example:
        >>> exp_bound(-9.21), exp_bound(-2.3), exp_bound(6.238), exp_bound(-4), exp_bound(-1.23456)
        (0.0001, 0.1, 512.0, 0.0183156, 0.290963)
    """
    value = math.exp(x)
    if isinstance(x, float):
        places = _decimals(x)
        for digits in (1, 2, 3):
            nice = float(f"{value:.{digits - 1}e}")
            if round(math.log(nice), places) == round(x, places):
                return nice
    return float(f"{value:.5e}")


def _exp_note(x: float) -> str:
    value = exp_bound(x)
    exact = math.exp(x)
    if abs(value - exact) > 1e-9 * exact and value != float(f"{exact:.5e}"):
        return f"e**{_fmt(x)} = {exact:.6g} ~ {value:g}"
    return f"e**{_fmt(x)} = {value:g}"


def _fmt(x: float) -> str:
    return f"{x:g}"


class _Converter(Mapping):
    def __init__(self, source: Source):
        super().__init__(source)
        self.data: dict[str, Any] = {}  # the sweep's keys not yet converted (see convert)
        self.method = "random"
        self.algorithm = "random"  # scalehp's search.algorithm
        self.nested_noted = False

    # -- helpers ----------------------------------------------------------------

    # -- the whole file -----------------------------------------------------------

    def convert(self) -> Imported:
        self.data = data = self.section(self.source.data, "", known=_TOP, what="W&B sweep")
        for key in ("job", "image_uri"):
            if key in data:
                raise self.error(
                    key, f"a W&B Launch {key} has no scalehp equivalent; give the training script as program"
                )
        out: dict[str, Any] = {"name": self.name()}
        description = data.pop("description", None)
        if description is not None:
            out["description"] = str(description)
        for key in ("project", "entity"):
            value = data.pop(key, None)
            if value is not None:
                self.note(key, f"W&B {key} {value!r} names where W&B stores runs; scalehp writes to results/")
        for key in ("apiVersion", "kind", "controller"):
            if key in data:
                data.pop(key)
                self.note(key, f"W&B's {key} has no meaning in scalehp (scalehp runs the search itself); left out")

        search = self.search()
        self.algorithm = search["algorithm"]
        metric = self.metric()
        space = self.space()
        scheduler, max_steps = self.early_terminate(space)
        if self.method == "bayes" and search == {"algorithm": "hyperopt"}:
            search = self.bayes(space, isinstance(metric, list))
        if isinstance(metric, list):
            if search["algorithm"] != "optuna":
                raise self.error("metrics", "several metrics need method custom with scheduler.engine optuna")
            if scheduler is not None:
                raise self.error("early_terminate", "hyperband ranks runs by one metric; drop it or give one metric")
        out["command"] = self.command()
        out["metric"] = metric
        out["budget"] = {"samples": self.samples(), "max_steps": max_steps}
        out["space"] = space
        out["search"] = search
        if scheduler is not None:
            out["scheduler"] = scheduler
        self.rest(data, "")
        return self.done(out)

    def name(self) -> str:
        raw = self.data.pop("name", None)
        if raw is None:
            raw = Path(self.source.path).stem
            where = "the file name"
        else:
            where = "name"
        name = sanitize_name(str(raw)) or "imported"
        if name != str(raw):
            self.note("name", f"{where} {raw!r} is not a valid experiment name; named {name!r}")
        return name

    # -- method and metric ---------------------------------------------------------

    def search(self) -> dict[str, Any]:
        method = self.data.pop("method", None)
        if method is None:
            raise self.error("method", "W&B sweeps need a method: grid, random or bayes")
        scheduler = self.data.pop("scheduler", None)
        if scheduler is not None:
            engine = self.engine(scheduler, method)
            if engine is not None:
                self.method = "bayes"
                return {"algorithm": "optuna"}
        if method == "custom":
            raise self.error("method", "method custom needs scheduler.engine optuna or ax")
        if method not in ("grid", "random", "bayes"):
            raise self.error("method", f"unknown method {method!r}; W&B has grid, random and bayes")
        self.method = method
        if method == "bayes":  # hyperopt draws every W&B distribution; optuna's GP once the space is known (bayes())
            return {"algorithm": "hyperopt"}
        return {"algorithm": method}

    def bayes(self, space: dict[str, Any], several: bool) -> dict[str, Any]:
        """``method: bayes``: optuna's Gaussian-process sampler, as W&B's, where optuna can draw every param."""
        blocker = "several metrics" if several else searcher_problem(space, "optuna", "tpe")
        if blocker is None:
            self.note(
                "method",
                "bayes -> optuna (sampler gp): Gaussian-process Bayesian optimisation, as W&B's bayes; W&B's own "
                "kernel and acquisition settings are not W&B sweep keys and are optuna's defaults here",
            )
            return {"algorithm": "optuna", "sampler": "gp"}
        self.note(
            "method",
            f"bayes -> hyperopt (TPE): W&B models the metric with a Gaussian process, but optuna's GP sampler "
            f"cannot search this space ({blocker}); hyperopt's TPE takes every W&B distribution",
        )
        return {"algorithm": "hyperopt"}

    def engine(self, scheduler: Any, method: Any) -> str | None:
        if not isinstance(scheduler, dict) or "engine" not in scheduler:
            raise self.error("scheduler", "scheduler needs an engine: optuna, ax or wandb")
        for key in scheduler:
            if key in ("source", "optimizer", "search_space"):
                raise self.error(
                    f"scheduler.{key}",
                    "a custom optimizer written in Python cannot be converted; write the search space "
                    "under parameters and drop the scheduler",
                )
            if key != "engine":
                raise self.error(f"scheduler.{key}", f"unknown scheduler key {key!r}")
        engine = scheduler["engine"]
        if engine == "wandb":
            return None
        if engine == "optuna":
            self.note("scheduler.engine", "engine optuna -> search.algorithm optuna (TPE, Optuna's default sampler)")
            return "optuna"
        if engine == "ax":
            self.note(
                "scheduler.engine",
                "engine ax -> optuna TPE: Ax's Gaussian-process optimiser has no scalehp equivalent; "
                "optuna is the closest model-based searcher",
            )
            return "ax"
        raise self.error("scheduler.engine", f"unknown engine {engine!r}; W&B has optuna, ax and wandb")

    def metric(self) -> dict[str, Any] | list[dict[str, Any]]:
        if "metrics" in self.data:
            if "metric" in self.data:
                raise self.error("metrics", "give metric or metrics, not both")
            metrics = self.data.pop("metrics")
            if not isinstance(metrics, list) or not metrics:
                raise self.error("metrics", "metrics is a list of {name, goal}")
            return [self.one_metric(m, f"metrics.{i}") for i, m in enumerate(metrics)]
        if "metric" not in self.data:
            raise self.error(
                "metric",
                "this sweep names no metric; scalehp needs the metric the program reports: "
                "add metric: {name: ..., goal: minimize|maximize}",
            )
        return self.one_metric(self.data.pop("metric"), "metric")

    def one_metric(self, raw: Any, path: str) -> dict[str, Any]:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise self.error(path, "a metric is {name: ..., goal: minimize|maximize}")
        raw = self.section(raw, path, known=("name", "goal", "target", "impute", "impute_while_running"), what="metric")
        goal = raw.get("goal", "minimize")
        if goal not in ("minimize", "maximize"):
            raise self.error(f"{path}.goal", f"goal must be minimize or maximize, got {goal!r}")
        out: dict[str, Any] = {"name": raw["name"], "mode": "min" if goal == "minimize" else "max"}
        if raw.get("target") is not None:
            if not _number(raw["target"]):
                raise self.error(f"{path}.target", f"target must be a number, got {raw['target']!r}")
            out["goal"] = raw["target"]
            self.note(
                f"{path}.target",
                f"target -> metric.goal {_fmt(raw['target'])}: the run ends once a trial reaches it; "
                "W&B only stops starting new runs and lets running ones finish",
            )
        for key in ("impute", "impute_while_running"):
            if key in raw:
                self.note(
                    f"{path}.{key}",
                    f"{key} left out: scalehp's searchers learn nothing from failed trials "
                    "instead of imputing a value for them",
                )
        return out

    # -- parameters --------------------------------------------------------------------

    def space(self) -> dict[str, Any]:
        params = self.data.pop("parameters", None)
        if not isinstance(params, dict) or not params:
            raise self.error(
                "parameters", "W&B sweeps need parameters: a mapping of name -> {values|value|distribution…}"
            )
        space: dict[str, Any] = {}
        for name, spec in params.items():
            with self.gathering():  # every bad parameter named in one run
                if not isinstance(name, str) or not _PARAM.match(name):
                    raise self.error(f"parameters.{name}", f"parameter name {name!r}: use letters, digits, _ . -")
                for key, param in self.param(str(name), spec, f"parameters.{name}").items():
                    if key in space:
                        raise self.error(f"parameters.{name}", f"parameter {key!r} is given twice (nested and dotted)")
                    space[key] = param
                    if self.method == "grid" and isinstance(param, dict) and isinstance(param.get("choice"), list):
                        self.grid_param(len(param["choice"]), f"parameters.{name}")
        self.settle()
        return space

    def param(self, name: str, spec: Any, path: str) -> dict[str, Any]:
        if not isinstance(spec, dict):
            raise self.error(path, "a parameter is a mapping: {value: ...}, {values: [...]} or a distribution")
        if "parameters" in spec:
            extra = sorted(set(spec) - {"parameters"})
            if extra:
                raise self.error(f"{path}.{extra[0]}", "a parameter with nested parameters takes no other key")
            nested = spec["parameters"]
            if not isinstance(nested, dict) or not nested:
                raise self.error(f"{path}.parameters", "nested parameters are a mapping of name -> parameter")
            if not self.nested_noted:
                self.nested_noted = True
                self.note(
                    f"{path}.parameters",
                    f"nested parameters become dotted names ({name}.{next(iter(nested))}); wandb.config['{name}'] "
                    "(the stand-in) is one nested mapping as in W&B; on the command line each is "
                    f"--{name}.<key>=value in ${{args}} and a dotted key in ${{args_json}}",
                )
            out: dict[str, Any] = {}
            for sub, sub_spec in nested.items():
                if not isinstance(sub, str) or not _PARAM.match(f"{name}.{sub}"):
                    raise self.error(f"{path}.parameters.{sub}", f"parameter name {sub!r}: use letters, digits, _ . -")
                out.update(self.param(f"{name}.{sub}", sub_spec, f"{path}.parameters.{sub}"))
            return out
        return {name: self.distribution(name, spec, path)}

    def distribution(self, name: str, spec: dict[str, Any], path: str) -> Any:
        dist = spec.get("distribution")
        if dist is None:
            dist = self.infer(spec, path)
        if not isinstance(dist, str):
            raise self.error(f"{path}.distribution", f"distribution must be a name such as uniform, got {dist!r}")
        if dist == "categorical_w_probabilities":
            dist = "categorical"
        if dist not in _KEYS:
            raise self.error(f"{path}.distribution", f"unknown W&B distribution {dist!r}")
        for key in spec:
            if key != "distribution" and key not in _KEYS[dist]:
                raise self.error(
                    f"{path}.{key}", f"{dist} takes no {key!r} (it takes {', '.join(sorted(_KEYS[dist]))})"
                )
        if self.method == "grid" and dist not in _GRID_OK:
            raise self.error(
                path,
                f"grid search cannot enumerate a {dist} distribution (W&B refuses it too); give values",
            )
        where = f"{path}.distribution" if "distribution" in spec else path
        return getattr(self, "_" + dist)(name, spec, path, where)

    def infer(self, spec: dict[str, Any], path: str) -> str:
        if "values" in spec:
            return "categorical"
        if "value" in spec:
            return "constant"
        if "min" in spec and "max" in spec:
            both_int = _integer(spec["min"]) and _integer(spec["max"])
            return "int_uniform" if both_int else "uniform"
        raise self.error(path, "cannot tell the distribution: give value, values, min and max, or distribution")

    def bounds(self, spec: dict[str, Any], path: str, positive: bool = False) -> tuple[Any, Any]:
        for key in ("min", "max"):
            if key not in spec:
                raise self.error(path, f"missing {key}")
            if not _number(spec[key]):
                raise self.error(f"{path}.{key}", f"{key} must be a number, got {spec[key]!r}")
        low, high = spec["min"], spec["max"]
        if low >= high:
            raise self.error(f"{path}.max", f"max ({high}) must be above min ({low})")
        if positive and low <= 0:
            raise self.error(f"{path}.min", f"min must be > 0 for a log scale of values, got {low}")
        return low, high

    def q(self, spec: dict[str, Any], path: str) -> Any:
        q = spec.get("q", 1)
        if not _number(q) or q <= 0:
            raise self.error(f"{path}.q", f"q must be a number > 0, got {q!r}")
        return q

    def moments(self, spec: dict[str, Any], path: str) -> list[float]:
        mu, sigma = spec.get("mu", 0.0), spec.get("sigma", 1.0)
        for key, value in (("mu", mu), ("sigma", sigma)):
            if not _number(value):
                raise self.error(f"{path}.{key}", f"{key} must be a number, got {value!r}")
        if sigma <= 0:
            raise self.error(f"{path}.sigma", f"sigma must be > 0, got {sigma}")
        return [mu, sigma]

    def exponents(self, spec: dict[str, Any], path: str, where: str, dist: str, invert: bool = False) -> list[float]:
        low, high = self.bounds(spec, path)
        for key, x in (("min", low), ("max", high)):
            if abs(x) > 700:
                raise self.error(f"{path}.{key}", f"e**{x:g} is out of range: {dist} bounds are exponents of e")
        values = [exp_bound(-high), exp_bound(-low)] if invert else [exp_bound(low), exp_bound(high)]
        if values[0] >= values[1]:
            raise self.error(path, f"the bounds e**min and e**max are too close to tell apart ({values[0]:g})")
        shown = [_exp_note(-high), _exp_note(-low)] if invert else [_exp_note(low), _exp_note(high)]
        self.note(
            where,
            f"{dist}: W&B reads min and max as exponents of e; scalehp bounds are values: "
            f"[{values[0]:g}, {values[1]:g}] ({'; '.join(shown)}"
            + (", the exponents being their logarithms to the decimals written)" if "~" in "".join(shown) else ")"),
        )
        return values

    # one method per W&B distribution: (name, spec, path, where) -> scalehp param

    def _constant(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        if "value" not in spec:
            raise self.error(path, "constant needs value")
        value = spec["value"]
        return {"constant": value} if isinstance(value, (dict, list)) or value is None else value

    def _categorical(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise self.error(f"{path}.values", "values must be a non-empty list")
        seen: list[Any] = []
        for i, value in enumerate(values):
            if value in seen:
                raise self.error(f"{path}.values.{i}", f"values lists {value!r} twice")
            seen.append(value)
        if self.algorithm == "optuna" and any(isinstance(v, (dict, list)) for v in values):
            raise self.error(
                f"{path}.values", "optuna chooses among numbers, strings, booleans and null, not lists or mappings"
            )
        if "probabilities" in spec:
            probabilities = spec["probabilities"]
            if self.method == "grid":
                raise self.error(f"{path}.probabilities", "grid search takes no probabilities (W&B refuses them too)")
            if not isinstance(probabilities, list) or len(probabilities) != len(values):
                raise self.error(f"{path}.probabilities", "give one probability per value")
            self.note(
                f"{path}.probabilities",
                f"scalehp has no weighted choice: each of the {len(values)} values is drawn equally often "
                f"(was {probabilities})",
            )
        return {"choice": values}

    def _int_uniform(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        low, high = self.bounds(spec, path)
        if not (_integer(low) and _integer(high)):
            raise self.error(path, f"int_uniform needs integer min and max, got {low!r} and {high!r}")
        if self.method == "grid":
            if high - low >= 10_000:
                raise self.error(path, f"grid search over {high - low + 1} integers is too many; give values")
            return {"choice": list(range(low, high + 1))}
        return {"int": [low, high]}

    def _uniform(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        low, high = self.bounds(spec, path)
        return {"float": [float(low), float(high)]}

    def _q_uniform(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        low, high = self.bounds(spec, path)
        q = self.q(spec, path)
        if self.method == "grid":  # W&B: numpy.arange(min, max, q) -- max left out
            self.check_grid(span(low, high, q), path)
            count = math.ceil((high - low) / q)
            whole = _integer(low) and _integer(q)
            values = [low + i * q if whole else round(low + i * q, 12) for i in range(count)]
            self.note(
                where,
                f"q_uniform on a grid: the values min, min+q, ... below max ({values[-1]:g} is the last), as W&B does",
            )
            return {"choice": values}
        if _integer(q):  # W&B returns integers when q is an integer
            lo, hi = round(low / q) * q, round(high / q) * q
            if lo >= hi:
                return lo
            return {"int": [int(lo), int(hi)], **({"step": q} if q != 1 else {})}
        if q > high - low:
            raise self.error(f"{path}.q", f"q ({q}) is larger than the range {low}..{high}")
        return self._multiples(self._index(low, q, path), self._index(high, q, path), q, [low, high], path)

    def _index(self, value: float, q: Any, path: str) -> int:
        """``round(value / q)``: the multiple of q W&B rounds ``value`` to."""
        try:
            return round(value / q)
        except OverflowError:
            raise self.error(f"{path}.q", f"q ({q:g}) is too small for values as large as {value:g}") from None

    def _multiples(self, first: int, last: int, q: Any, bounds: list[float], path: str, **extra: Any) -> Any:
        """W&B's values ``round(x / q) * q``: the multiples ``first * q .. last * q``, bounds included.

        W&B does not clip, so min and max round outwards as often as inwards; the bounds become those
        multiples, which a scalehp step takes exactly.
        """
        low, high = multiple(first, q), multiple(last, q)
        if first >= last:
            return low
        if [low, high] != [float(b) for b in bounds]:
            self.note(
                f"{path}.q",
                f"[{bounds[0]:g}, {bounds[1]:g}] -> [{low:g}, {high:g}]: W&B rounds each value to a multiple of "
                f"{q:g} without clipping, so it takes {low:g} .. {high:g}",
            )
        return {"float": [low, high], **extra, "step": q}

    def _log_uniform(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        return {"float": self.exponents(spec, path, where, "log_uniform"), "log": True}

    def _log_uniform_values(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        low, high = self.bounds(spec, path, positive=True)
        return {"float": [float(low), float(high)], "log": True}

    def _q_log(self, values: list[float], q: Any, path: str, where: str, dist: str) -> Any:
        first, last = self._index(values[0], q, path), self._index(values[1], q, path)
        if first == 0:  # W&B rounds the smallest values to 0, which no log range holds
            if last + 1 <= MAX_CHOICE_VALUES:
                taken = [k * q if _integer(q) else multiple(k, q) for k in range(last + 1)]
                self.note(
                    f"{path}.q",
                    f"{dist}: W&B rounds values below {q / 2:g} to 0, which no log range holds: its {len(taken)} "
                    f"values 0, {taken[1]:g}, ..., {taken[-1]:g} as a choice, each drawn equally often (not "
                    "log-uniformly) and unordered to the searchers",
                )
                return {"choice": taken}
            self.note(
                f"{path}.q",
                f"VALUES DIFFER: {dist}: W&B also takes 0 (it rounds values below {q / 2:g} to 0), which no log "
                f"range holds; too many values to list as a choice (more than {MAX_CHOICE_VALUES:,}): scalehp "
                f"takes {q:g} and up. Raise min to at least {q / 2:g} to keep W&B's values",
            )
            first = 1
        if _integer(q) and q == 1:
            if first >= last:
                raise self.error(path, f"{dist} with q 1 holds only the integer {first}")
            return {"int": [first, last], "log": True}
        if q > values[1] - values[0]:
            raise self.error(f"{path}.q", f"q ({q}) is larger than the range {values[0]:g}..{values[1]:g}")
        if _integer(q):
            self.note(
                f"{path}.q",
                f"scalehp has no integer log range with a step other than 1: a float log range quantized to "
                f"{q} (W&B gives integers such as {q}, scalehp whole-number floats such as {float(q)!r})",
            )
        return self._multiples(first, last, q, values, path, log=True)

    def _q_log_uniform(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        values = self.exponents(spec, path, where, "q_log_uniform")
        return self._q_log(values, self.q(spec, path), path, where, "q_log_uniform")

    def _q_log_uniform_values(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        low, high = self.bounds(spec, path, positive=True)
        return self._q_log([float(low), float(high)], self.q(spec, path), path, where, "q_log_uniform_values")

    def _inv_log_uniform(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        # log(1/X) ~ U(min, max)  <=>  log(X) ~ U(-max, -min): a log-uniform X in [e**-max, e**-min]
        return {"float": self.exponents(spec, path, where, "inv_log_uniform", invert=True), "log": True}

    def _inv_log_uniform_values(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        low, high = self.bounds(spec, path, positive=True)
        self.note(
            where,
            "inv_log_uniform_values: log(1/X) uniform between log(1/max) and log(1/min) is the same "
            f"distribution as log(X) uniform between log(min) and log(max): a log range [{low:g}, {high:g}]",
        )
        return {"float": [float(low), float(high)], "log": True}

    def _normal(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        return {"normal": self.moments(spec, path)}

    def _q_step(self, param: dict[str, Any], q: Any, path: str) -> dict[str, Any]:
        if _integer(q):
            self.note(
                f"{path}.q",
                f"W&B returns integers when q is an integer; scalehp rounds to multiples of {q} as "
                f"whole-number floats ({float(q)!r}, not {q})",
            )
        return {**param, "step": q}

    def _q_normal(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        return self._q_step({"normal": self.moments(spec, path)}, self.q(spec, path), path)

    def _log_normal(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        return {"lognormal": self.moments(spec, path)}

    def _q_log_normal(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        return self._q_step({"lognormal": self.moments(spec, path)}, self.q(spec, path), path)

    def _beta(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        a, b = spec.get("a", 1), spec.get("b", 1)
        for key, value in (("a", a), ("b", b)):
            if not _number(value) or value <= 0:
                raise self.error(f"{path}.{key}", f"{key} must be a number > 0, got {value!r}")
        if (a, b) != (1, 1):
            self.note(
                where,
                f"scalehp has no beta distribution: Beta({_fmt(a)}, {_fmt(b)}) -> a uniform float on its "
                f"support [0, 1] (its mean {a / (a + b):.3g} is no longer favoured)",
            )
        return {"float": [0.0, 1.0]}

    def _q_beta(self, name: str, spec: dict[str, Any], path: str, where: str) -> Any:
        self._beta(name, spec, path, where)  # its checks and its note on the shape
        q = self.q(spec, path)
        if q > 1:
            raise self.error(f"{path}.q", f"q ({q}) is larger than the range 0..1")
        return {"float": [0.0, multiple(round(1 / q), q)], "step": q}  # W&B: round(x / q) * q, unclipped

    # -- budget and early termination -------------------------------------------------

    def samples(self) -> int:
        run_cap = self.data.pop("run_cap", None)
        if run_cap is not None and (not _integer(run_cap) or run_cap < 1):
            raise self.error("run_cap", f"run_cap must be a positive integer, got {run_cap!r}")
        if self.method == "grid":
            combinations = self.grid_points  # (counted by space)
            if run_cap is not None and run_cap < combinations:
                self.note(
                    "run_cap",
                    f"grid search runs every one of the {combinations} combinations; scalehp cannot stop a grid "
                    f"after run_cap {run_cap} (remove params or values to shrink it)",
                )
            return 1
        if run_cap is not None:
            return run_cap
        self.note(
            "method",
            f"no run_cap: W&B's {self.method} search runs until stopped; budget.samples {DEFAULT_SAMPLES} chosen",
        )
        return DEFAULT_SAMPLES

    def epochs(self, space: dict[str, Any]) -> tuple[str, int] | None:
        for name, param in space.items():
            if name.rsplit(".", 1)[-1] not in EPOCH_PARAMS:
                continue
            if _count(param):
                return name, param
            if isinstance(param, dict):
                values = param.get("choice") or param.get("int")
                if (
                    isinstance(values, list)
                    and values
                    and all(_integer(v) and finite(v) for v in values)
                    and max(values) >= 1
                ):
                    return name, max(values)
        return None

    def early_terminate(self, space: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        raw = self.data.pop("early_terminate", None)
        epochs = self.epochs(space)
        if raw is None:
            return None, self.max_steps(epochs, None)
        if not isinstance(raw, dict) or raw.get("type") != "hyperband":
            raise self.error("early_terminate.type", "W&B's early_terminate type is hyperband")
        raw = self.section(
            raw, "early_terminate", known=("type", "min_iter", "max_iter", "s", "eta", "strict"), what="early_terminate"
        )
        eta = raw.get("eta", 3)
        if not _number(eta) or not 1 < eta <= 100:
            raise self.error("early_terminate.eta", f"eta must be a number above 1 (at most 100), got {eta!r}")
        if "max_iter" in raw:
            max_iter, s = raw["max_iter"], raw.get("s")
            if not _integer(max_iter) or not finite(max_iter) or max_iter < 1:
                raise self.error(
                    "early_terminate.max_iter", f"max_iter must be a positive integer, got {shown(max_iter)}"
                )
            if not _number(s) or s < 1:
                raise self.error("early_terminate.s", "max_iter needs s, the number of brackets (W&B requires it)")
            if s > 100:
                raise self.error("early_terminate.s", f"s is the number of brackets: at most 100, got {shown(s)}")
            bands: list[int] = []
            band = float(max_iter)
            for _ in range(int(s)):
                band /= eta
                if band < 1:
                    break
                bands.append(int(band))
            bands.sort()
            if not bands:
                raise self.error(
                    "early_terminate", "no bracket: max_iter / eta is below 1; raise max_iter or lower eta"
                )
            if "min_iter" in raw:
                self.note("early_terminate.min_iter", "min_iter left out: W&B itself ignores it when max_iter is given")
            grace, max_steps = bands[0], max_iter
            source = f"W&B's brackets at iterations {bands} (from max_iter {max_iter}, s {s}, eta {_fmt(eta)})"
            self.note("early_terminate.max_iter", f"max_iter -> budget.max_steps {max_iter}")
        elif "min_iter" in raw:
            grace = raw["min_iter"]
            if not _integer(grace) or not finite(grace) or grace < 1:
                raise self.error("early_terminate.min_iter", f"min_iter must be a positive integer, got {shown(grace)}")
            if "s" in raw:
                self.note("early_terminate.s", "s left out: W&B reads it only together with max_iter")
            max_steps = self.max_steps(epochs, grace)
            if grace >= max_steps:
                raise self.error(
                    "early_terminate.min_iter",
                    f"min_iter ({grace}) is not below the {max_steps} steps a run makes: no run could ever be stopped",
                )
            source = f"W&B's brackets at iterations {grace}, {grace}*{_fmt(eta)}, ... (from min_iter {grace})"
        else:
            raise self.error("early_terminate", "hyperband needs min_iter, or max_iter with s")
        rungs: list[Any] = []
        while grace * eta ** len(rungs) < max_steps:
            if len(rungs) == 10:
                rungs.append("...")
                break
            rungs.append(math.ceil(grace * eta ** len(rungs)))
        self.note(
            "early_terminate",
            f"hyperband -> scheduler asha (grace_steps {grace}, reduction_factor {_fmt(eta)}), rungs at steps "
            f"{rungs}: {source}; both keep the top 1/eta of the runs at a bracket. W&B counts an iteration per "
            "logged value of the metric, scalehp a step per report line the program prints",
        )
        if raw.get("strict"):
            self.note("early_terminate.strict", "strict left out: scalehp's asha has no stricter mode")
        return {"asha": {"grace_steps": grace, "reduction_factor": eta}}, max_steps

    def max_steps(self, epochs: tuple[str, int] | None, grace: int | None) -> int:
        if epochs is not None:
            name, steps = epochs
            self.note(
                f"parameters.{name}",
                f"budget.max_steps {steps}: the largest {name}, one report per epoch (W&B sets no step budget)",
            )
            return steps
        steps = DEFAULT_MAX_STEPS
        if grace is not None and grace * 3 > steps:
            steps = grace * 3
        self.note(
            "parameters",
            f"W&B sets no step budget: budget.max_steps {steps} chosen; set it to the epochs a run makes",
        )
        return steps

    # -- the program -----------------------------------------------------------------------

    def command(self) -> Any:
        named = "program" in self.data
        program = self.data.pop("program", None)
        if self.source.program is not None:
            if program is not None:
                self.note("program", f"program {program!r} replaced by --program {self.source.program!r}")
            program = self.source.program
        if program is not None and not isinstance(program, str):
            raise self.error("program", f"program must be a file name, got {program!r}")
        raw = self.data.pop("command", None)
        where = "command"
        if raw is None:
            raw, where = DEFAULT_COMMAND, "program"
        if not isinstance(raw, list) or not raw or not all(isinstance(a, (str, int, float)) for a in raw):
            raise self.error("command", "command is a list of strings (with macros such as ${program} and ${args})")
        run: list[str] = []
        for i, item in enumerate(raw):
            arg = self.argument(str(item), f"command.{i}" if where == "command" else "program", program)
            if arg is not None:
                run.append(arg)
        if not run:
            raise self.error("command", "the command is empty once ${env} is left out")
        if where == "program":
            self.note(
                "program",
                f"runs as `{' '.join(run)}`: W&B's default command ${{env}} ${{interpreter}} ${{program}} ${{args}}, "
                "without /usr/bin/env and with the Python that runs scalehp as the interpreter",
            )
        self.note(
            "program" if named else "command",
            "command.client wandb: the program runs unchanged against scalehp's stand-in of the wandb client "
            "(wandb.config holds the trial's params over the program's defaults; a wandb.log call with the metric "
            "is one step, as W&B's hyperband counts iterations; nothing is sent to W&B); lines it prints as "
            "name=value are read too",
        )
        return {"run": " ".join(run) if all(_WORD.match(a) for a in run) else run, "client": "wandb"}

    def argument(self, item: str, path: str, program: str | None) -> str | None:
        macros = _MACRO.findall(item)
        whole = len(macros) == 1 and item == "${" + macros[0] + "}"
        out = item
        for macro in macros:
            if macro == "env":
                if not whole:
                    raise self.error(path, "${env} must be an argument of its own")
                if path != "program":  # the default command's ${env} is explained in the program's note
                    self.note(path, "${env} (/usr/bin/env) left out: scalehp starts the program directly")
                return None
            if macro == "interpreter":
                replacement = "${python}"
                if path != "program":
                    self.note(path, "${interpreter} (python) -> ${python}, the Python that runs scalehp")
            elif macro == "program":
                if program is None:
                    raise self.error(path, "${program} needs the sweep's program (or scalehp import --program)")
                replacement = program
            elif macro in ("args", "args_no_hyphens", "args_json", "args_no_boolean_flags", "args_json_file"):
                if not whole:
                    raise self.error(path, f"${{{macro}}} must be an argument of its own")
                replacement = "${" + macro + "}"  # scalehp's command fills these in as W&B's agent does
            elif macro.startswith("envvar:"):
                raise self.error(
                    path,
                    f"scalehp does not expand environment variables in commands: write the value of "
                    f"{macro.split(':', 1)[1]} (or set command.env)",
                )
            else:
                raise self.error(path, f"unknown W&B command macro ${{{macro}}}")
            out = out.replace("${" + macro + "}", replacement, 1)
        return out


__all__ = ["convert", "exp_bound"]
