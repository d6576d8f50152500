"""Hydra's Optuna sweeper (``hydra.sweeper``) -> a scalehp experiment.

The file is either a whole Hydra config (``defaults: [override hydra/sweeper: optuna]`` and
``hydra: {sweeper: ...}``) or the sweeper section alone (as ``--cfg hydra -p hydra.sweeper``
prints it). ``params`` use Hydra's override grammar, read here the way the sweeper hands them
to Optuna (``hydra_plugins/hydra_optuna_sweeper/_impl.py``):

* ``choice(a, b)`` and ``a,b`` -> ``{choice: [...]}``; ``shuffle(...)`` of a choice or range too;
* ``range(start, stop, step)`` -> an int (float if any number is a float) range with ``step``,
  ``[start, stop]`` with stop *included*, as the sweeper passes it to Optuna; Optuna counts from
  ``start`` and a scalehp step takes multiples of step, so a start that is no multiple gives a
  choice of Optuna's values (see :meth:`Mapping.counted_from_low`);
* ``interval(a, b)`` -> a float range; ``int(interval(...))`` an int range; ``tag(log, ...)`` a log scale;
* anything else is a fixed value -> a constant.

The old ``search_space`` form (``type``, ``low``, ``high``, ``log``, ``step``, ``choices``) is read too.
Each trial runs the Hydra app with the params as overrides: ``${python} APP ${args_no_hyphens}``;
the app comes from ``scalehp import --program``, else ``hydra.job.name`` + ``.py``, else a
placeholder named in a note. The full table is ``docs/import/hydra-optuna.md``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalehp.compiler import searcher_problem
from scalehp.defaults import INITIAL_POINTS, NSGA2_POPULATION, nsga2_population
from scalehp.errors import ScalehpError
from scalehp.importers import MAX_DEPTH, Imported, Source
from scalehp.importers._mapping import Mapping, finite, sanitize_name, shown, span
from scalehp.space import PARAM_NAME

_OPTUNA = "Optuna (which the sweeper hands the range)"
"""Who counts a stepped range from its low end, named in notes."""

TAKES_PROGRAM = True
"""``scalehp import --program APP`` names the Hydra app each trial runs."""

PLACEHOLDER_APP = "my_app.py"
"""The app in the command when neither ``--program`` nor ``hydra.job.name`` names it."""

SWEEPER = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"

_SWEEPER_KEYS = {
    "_target_",
    "defaults",
    "sampler",
    "direction",
    "storage",
    "study_name",
    "n_trials",
    "n_jobs",
    "max_failure_rate",
    "search_space",
    "params",
    "custom_search_space",
    "experiment_sequence",
}
_SEQUENCE = "hydra_plugins.hydra_optuna_sweeper._impl.OptunaExperimentSequence"

# Optuna sampler -> (scalehp search, a note when it is only the closest equivalent)
_SAMPLERS: dict[str, tuple[dict[str, Any], str | None]] = {
    "TPESampler": ({"algorithm": "optuna", "sampler": "tpe"}, None),
    "RandomSampler": ({"algorithm": "random"}, None),
    "CmaEsSampler": ({"algorithm": "optuna", "sampler": "cmaes"}, None),
    "NSGAIISampler": ({"algorithm": "optuna", "sampler": "nsga2"}, None),
    "GridSampler": ({"algorithm": "grid"}, None),
    "MOTPESampler": (
        {"algorithm": "optuna", "sampler": "tpe"},
        "MOTPESampler -> optuna tpe: Optuna's TPESampler took over multi-objective search (MOTPE was removed in Optuna 4)",
    ),
    "NSGAIIISampler": (
        {"algorithm": "optuna", "sampler": "nsga2"},
        "NSGAIIISampler -> optuna nsga2: scalehp has NSGA-II, not NSGA-III (reference points)",
    ),
    "QMCSampler": (
        {"algorithm": "optuna", "sampler": "qmc"},
        "QMCSampler -> optuna qmc: the same Sobol points, scrambled (scalehp always scrambles them; Optuna's "
        "default does not)",
    ),
    "GPSampler": ({"algorithm": "optuna", "sampler": "gp"}, None),
    "BruteForceSampler": (
        {"algorithm": "grid"},
        "BruteForceSampler -> grid search: both try every combination once",
    ),
}
_GROUPS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsgaii": "NSGAIISampler",
    "motpe": "MOTPESampler",
    "grid": "GridSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
    "nsgaiii": "NSGAIIISampler",
    "bruteforce": "BruteForceSampler",
}
# options of each sampler with the value that means "Optuna's default" (what scalehp uses)
_DEFAULTS: dict[str, dict[str, Any]] = {
    "TPESampler": {
        "consider_prior": (True, None),
        "prior_weight": (1.0, None),
        "consider_magic_clip": (True, None),
        "consider_endpoints": (False, None),
        "n_ei_candidates": (24,),
        "multivariate": (False,),
        "group": (False,),
        "warn_independent_sampling": (True, None),
        "constant_liar": (False,),
        "constraints_func": (None,),
    },
    "MOTPESampler": {
        "consider_prior": (True, None),
        "prior_weight": (1.0, None),
        "consider_magic_clip": (True, None),
        "consider_endpoints": (False, None),
        "n_ehvi_candidates": (24,),
    },
    "CmaEsSampler": {
        "x0": (None,),
        "sigma0": (None,),
        "independent_sampler": (None,),
        "warn_independent_sampling": (True,),
        "consider_pruned_trials": (False,),
        "restart_strategy": (None,),
        "popsize": (None,),
        "inc_popsize": (2,),
        "use_separable_cma": (False,),
        "with_margin": (False,),
        "lr_adapt": (False,),
        "source_trials": (None,),
    },
    "NSGAIISampler": {
        "mutation_prob": (None,),
        "crossover_prob": (0.9,),
        "swapping_prob": (0.5,),
        "constraints_func": (None,),
    },
    "NSGAIIISampler": {
        "mutation_prob": (None,),
        "crossover_prob": (0.9,),
        "swapping_prob": (0.5,),
        "dividing_parameter": (3,),
    },
    "QMCSampler": {
        "qmc_type": ("sobol",),
        "scramble": (False,),
        "warn_asynchronous_seeding": (True,),
        "warn_independent_sampling": (True,),
    },
    "GPSampler": {"deterministic_objective": (False,), "warn_independent_sampling": (True,)},
    "BruteForceSampler": {"avoid_premature_stop": (False,)},
    "RandomSampler": {},
    "GridSampler": {},
}


def convert(source: Source) -> Imported:
    """The scalehp experiment for the Hydra Optuna sweeper config in ``source``."""
    return _Converter(source).run()


# ---------------------------------------------------------------------------
# Hydra's override grammar (the part sweep values use)


@dataclass
class Choice:
    items: list[Any]
    shuffle: bool = False
    tags: set[str] = field(default_factory=set)


@dataclass
class Range:
    start: Any
    stop: Any
    step: Any = 1
    shuffle: bool = False
    tags: set[str] = field(default_factory=set)

    def values(self) -> list[Any]:
        out, i = [], 0
        while True:
            value = self.start + i * self.step
            if (self.step > 0 and value >= self.stop) or (self.step < 0 and value <= self.stop):
                return out
            if i >= 10_000:
                raise GrammarError("a range of more than 10,000 values cannot be a choice; narrow it")
            out.append(round(value, 12) if isinstance(value, float) else value)
            i += 1


@dataclass
class Interval:
    start: Any
    end: Any
    tags: set[str] = field(default_factory=set)


@dataclass
class Glob:
    include: Any


_SWEEPS = (Choice, Range, Interval, Glob)
# Hydra's lexer (hydra/grammar/OverrideLexer.g4): a value of one such token is a number, of several a string
_UINT = r"(?:0|[1-9](?:_?\d)*)"
_POINT = rf"(?:{_UINT}\.|{_UINT}?\.\d(?:_?\d)*)"
_INT = re.compile(rf"[+-]?{_UINT}")
_FLOAT = re.compile(rf"[+-]?(?:(?:{_UINT}|{_POINT})[eE][+-]?\d(?:_?\d)*|{_POINT}|[Ii][Nn][Ff]|[Nn][Aa][Nn])")
_UNQUOTED = re.compile(r"[A-Za-z0-9_\-/\\+.$%*@?|: \t]")  # what an unquoted value may hold
_ESCAPED = set("\\()[]{}:=, \t")  # what a backslash escapes there
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GrammarError(ScalehpError, ValueError):
    """A sweep value that is not Hydra's override grammar (or a part the Optuna sweeper cannot use)."""


def _primitive(text: str) -> Any:
    lower = text.lower()
    if lower == "null":
        return None
    if lower in ("true", "false"):
        return lower == "true"
    if _INT.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # more than 4,300 digits
            raise GrammarError("a number of more than 4,300 digits") from None
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


class _Parser:
    """A recursive-descent reader of one override value, e.g. ``tag(log, interval(1e-4, 1e-1))``."""

    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.depth = 0  # brackets and calls open at self.i

    def fail(self, message: str) -> GrammarError:
        return GrammarError(f"{message} at column {self.i + 1} of {shown(self.text, 80)}")

    def peek(self) -> str:
        self.skip()
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.i += 1

    def value(self) -> Any:
        """The whole value: one element, or a comma list (a choice sweep)."""
        items = [self.element()]
        while self.peek() == ",":
            self.i += 1
            items.append(self.element())
        if self.peek():
            raise self.fail("unexpected text")
        return items[0] if len(items) == 1 else Choice(items)

    def element(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        try:
            return self.inner()
        finally:
            self.depth -= 1

    def inner(self) -> Any:
        char = self.peek()
        if char in ("'", '"'):
            return self.quoted(char)
        if char == "[":
            return self.sequence("[", "]")
        if char == "{":
            return self.mapping()
        match = _IDENT.match(self.text, self.i)
        if match:
            after = match.end()
            while after < len(self.text) and self.text[after] in " \t":
                after += 1
            if after < len(self.text) and self.text[after] == "(":
                self.i = after + 1
                return self.call(match.group(0))
        return self.plain()

    def plain(self, stops: str = ",)]}") -> Any:
        """An unquoted value: a number, bool or null when it is one token, else a string (backslash
        escapes undone; ``\\,`` is a comma)."""
        start, chars = self.i, []  # (char, escaped)
        while self.i < len(self.text) and self.text[self.i] not in stops:
            char = self.text[self.i]
            if char == "\\" and self.text[self.i + 1 : self.i + 2] in _ESCAPED and self.i + 1 < len(self.text):
                chars.append((self.text[self.i + 1], True))
                self.i += 2
                continue
            if self.text.startswith("${", self.i):
                end = self.text.find("}", self.i)
                raise GrammarError(f"interpolation {shown(self.text[self.i : end + 1 or None])} can only be resolved by Hydra itself")
            if char in "([{'\"":
                raise self.fail("unexpected bracket or quote")
            if not _UNQUOTED.fullmatch(char):
                raise self.fail(f"{char!r} cannot be in an unquoted value (quote the value, or escape it)")
            chars.append((char, False))
            self.i += 1
        blank = [c in " \t" and not escaped for c, escaped in chars]
        first = next((i for i, b in enumerate(blank) if not b), len(chars))
        last = next((i for i in range(len(chars) - 1, -1, -1) if not blank[i]), -1)
        colon = [c == ":" and not escaped for c, escaped in chars]  # Hydra's colon takes the blanks beside it
        end = len(chars) if last >= 0 and colon[last] else last + 1
        chars = chars[0 if first < len(chars) and colon[first] else first : end]
        if not chars:
            self.i = start
            raise self.fail("missing value")
        text = "".join(char for char, _ in chars)
        return text if any(escaped for _, escaped in chars) else _primitive(text)

    def quoted(self, quote: str) -> str:
        """A quoted string as Hydra reads it: backslashes are special only before the quote (an odd
        run escapes it, an even run ends the string); anywhere else a backslash is itself."""
        self.i += 1
        out = []
        while self.i < len(self.text):
            char = self.text[self.i]
            if char == "\\":
                run = len(self.text[self.i :]) - len(self.text[self.i :].lstrip("\\"))
                after = self.i + run
                if self.text[after : after + 1] == quote:
                    out.append("\\" * (run // 2))
                    self.i = after + 1
                    if run % 2 == 0:
                        return "".join(out)
                    out.append(quote)
                    continue
                out.append(char * run)
                self.i = after
                continue
            if char == quote:
                self.i += 1
                return "".join(out)
            out.append(char)
            self.i += 1
        raise self.fail("unterminated quote")

    def sequence(self, open_: str, close: str) -> list[Any]:
        self.expect(open_)
        items: list[Any] = []
        if self.peek() == close:
            self.i += 1
            return items
        while True:
            items.append(self.element())
            if self.peek() == ",":
                self.i += 1
                continue
            self.expect(close)
            return items

    def mapping(self) -> dict[str, Any]:
        self.expect("{")
        out: dict[str, Any] = {}
        if self.peek() == "}":
            self.i += 1
            return out
        while True:
            key = self.plain(":,}")
            self.expect(":")
            out[str(key)] = self.element()
            if self.peek() == ",":
                self.i += 1
                continue
            self.expect("}")
            return out

    def call(self, name: str) -> Any:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if self.peek() == ")":
            self.i += 1
        else:
            while True:
                self.skip()
                match = _IDENT.match(self.text, self.i)
                named = None
                if match:
                    after = match.end()
                    while after < len(self.text) and self.text[after] in " \t":
                        after += 1
                    if after < len(self.text) and self.text[after] == "=":
                        named, self.i = match.group(0), after + 1
                item = self.element()
                if named:
                    kwargs[named] = item
                elif kwargs:
                    raise self.fail("a positional argument after a named one")
                else:
                    args.append(item)
                if self.peek() == ",":
                    self.i += 1
                    continue
                self.expect(")")
                break
        return self.apply(name, args, kwargs)

    def apply(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        try:
            if name == "choice":
                if not args or kwargs:
                    raise GrammarError("choice() takes one or more values, not named arguments")
                if any(a is None for a in args):
                    raise GrammarError("choice() cannot take null (Hydra refuses it)")
                if any(isinstance(a, _SWEEPS) for a in args):
                    raise GrammarError("nesting sweeps in choice() is not supported")
                return Choice(list(args))
            if name == "range":
                _signature(name, args, kwargs, ("start", "stop", "step"))
                params = dict(zip(("start", "stop", "step"), args)) | kwargs
                if "stop" not in params:
                    params = {
                        "start": 0,
                        "stop": params["start"],
                        **({"step": params["step"]} if "step" in params else {}),
                    }
                for key, value in params.items():
                    if not finite(value):
                        raise GrammarError(f"range() {key} must be a finite number, got {shown(value)}")
                if params.get("step", 1) == 0:
                    raise GrammarError("range() step must not be 0")
                return Range(**params)
            if name == "interval":
                _signature(name, args, kwargs, ("start", "end"))
                params = dict(zip(("start", "end"), args)) | kwargs
                for key in ("start", "end"):
                    if not finite(params.get(key)):
                        raise GrammarError(f"interval() needs a finite number as {key}, got {shown(params.get(key))}")
                return Interval(float(params["start"]), float(params["end"]))
            if name == "tag":
                _signature(name, [], kwargs, ("sweep",))
                items = list(args) + ([kwargs["sweep"]] if "sweep" in kwargs else [])
                if not items or not isinstance(items[-1], (Choice, Range, Interval)):
                    raise GrammarError("the last argument of tag() must be a choice(), range() or interval()")
                if not all(isinstance(t, str) for t in items[:-1]):
                    raise GrammarError("the tags of tag() are strings")
                sweep = items[-1]
                sweep.tags = set(items[:-1])
                return sweep
            if name in ("int", "float", "str", "bool"):
                _signature(name, [], kwargs, ("value",))
                if bool(args) == ("value" in kwargs):
                    raise GrammarError(f"{name}() takes values, or value=")
                value = kwargs["value"] if "value" in kwargs else (args[0] if len(args) == 1 else Choice(list(args)))
                return _cast(name, value)
            if name in ("shuffle", "sort"):
                _signature(name, [], kwargs, ("sweep", "list", "reverse") if name == "sort" else ("sweep", "list"))
                reverse = kwargs.get("reverse", False)
                value = kwargs.get("list", kwargs.get("sweep"))
                if value is None:
                    if not args:
                        raise GrammarError(f"{name}() needs values")
                    value = args[0] if len(args) == 1 else Choice(list(args))
                if isinstance(value, Interval):
                    raise GrammarError(f"{name}() does not take an interval")
                if name == "shuffle":
                    if isinstance(value, (Choice, Range)):
                        value.shuffle = True
                        return value
                    return value if isinstance(value, list) else [value]  # Hydra shuffles a list at random
                if isinstance(value, Choice):
                    value.items = sorted(value.items, reverse=bool(reverse))
                elif isinstance(value, Range):
                    _sort_range(value, bool(reverse))
                elif isinstance(value, list):
                    return sorted(value, reverse=bool(reverse))
                return value
            if name == "glob":
                return Glob(args[0] if args else kwargs.get("include"))
        except (KeyError, IndexError, TypeError) as exc:
            raise GrammarError(f"bad arguments to {name}(): {exc}") from None
        raise GrammarError(f"unknown function {name}()")


def _signature(name: str, args: list[Any], kwargs: dict[str, Any], names: tuple[str, ...]) -> None:
    """Refuse more positional arguments than ``names``, or a named one not among them (as Hydra does)."""
    if len(args) > len(names):
        raise GrammarError(f"{name}() takes at most {len(names)} arguments, got {len(args)}")
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise GrammarError(f"{name}() has no argument {unknown[0]!r}")


def _sort_range(sweep: Range, reverse: bool) -> None:
    """``sort(range(...))`` as Hydra does it: the same values, counted up (or down with reverse)."""
    if (sweep.start > sweep.stop) != reverse:
        step = abs(sweep.step)
        shift = -step if reverse else step
        sweep.start, sweep.stop, sweep.step = sweep.stop + shift, sweep.start + shift, -sweep.step


def _cast(kind: str, value: Any) -> Any:
    """``int(...)``, ``float(...)``, ``str(...)``, ``bool(...)`` as Hydra's: a cast choice or range
    loses its tags and shuffle (an interval keeps its tags)."""
    if isinstance(value, Choice):
        return Choice([_cast(kind, v) for v in value.items])
    if isinstance(value, Range):
        if kind not in ("int", "float"):
            raise GrammarError("a range can only be cast to int or float")
        return Range(_cast(kind, value.start), _cast(kind, value.stop), _cast(kind, value.step))
    if isinstance(value, Interval):
        if kind not in ("int", "float"):
            raise GrammarError(f"an interval cannot be cast to {kind}")
        return Interval(_cast(kind, value.start), _cast(kind, value.end), value.tags)
    if isinstance(value, list):
        return [_cast(kind, v) for v in value]
    if isinstance(value, dict):
        return {k: _cast(kind, v) for k, v in value.items()}
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value).lower() if isinstance(value, bool) else str(value)
        if isinstance(value, str):
            if value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise GrammarError(f"cannot cast {value!r} to bool")
        return bool(value)
    except (ValueError, OverflowError):
        raise GrammarError(f"cannot cast {value!r} to {kind}") from None


def parse_override(text: str) -> Any:
    """One value of ``hydra.sweeper.params`` as Hydra's override parser reads it.

    Example:
        >>> parse_override("tag(log, int(interval(8, 128)))")
        Interval(start=8, end=128, tags={'log'})
        >>> parse_override("adam,sgd")
        Choice(items=['adam', 'sgd'], shuffle=False, tags=set())
    """
    if not text.strip():  # ``key=`` (or blanks): Hydra's empty string
        return ""
    return _Parser(text).value()


# ---------------------------------------------------------------------------
# The converter


def _holds_sweep(value: Any) -> bool:
    """Whether a sweep (choice, range, interval, glob) is inside ``value``, a list or mapping."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
    return any(isinstance(v, _SWEEPS) or (isinstance(v, (list, dict)) and _holds_sweep(v)) for v in items)


def _number(value: Any) -> bool:
    """A finite number (not NaN, inf, a bool, or an int too large for a float)."""
    return finite(value)


def _short(value: Any) -> str:
    return value.rsplit(".", 1)[-1] if isinstance(value, str) else str(value)


class _Converter(Mapping):
    def __init__(self, source: Source):
        super().__init__(source)
        self.root: dict[str, Any] = source.data
        self.base = ""  # key path of the sweeper section in the file
        self.sweeper: dict[str, Any] = {}
        self.group_sampler: tuple[str, str] | None = None  # (sampler class, where it was chosen)
        self.seed: int | None = None
        self.optuna_selected = False

    def at(self, key: str) -> str:
        return f"{self.base}.{key}" if self.base else key

    # -- where the sweeper is -----------------------------------------------------

    def locate(self) -> None:
        data = self.root
        if "hydra" in data:
            hydra = data["hydra"]
            if not isinstance(hydra, dict) or not isinstance(hydra.get("sweeper"), dict):
                raise self.error("hydra", "no hydra.sweeper section: this config does not configure the Optuna sweeper")
            self.sweeper, self.base = hydra["sweeper"], "hydra.sweeper"
            self.defaults(data.get("defaults"), "defaults")
            if not self.optuna_selected:
                self.note(
                    "defaults" if "defaults" in data else "hydra.sweeper",
                    "the defaults select no hydra/sweeper: optuna; read as the Optuna sweeper's settings",
                )
            mode = hydra.get("mode")
            if mode not in (None, "MULTIRUN", "RUN"):
                raise self.error("hydra.mode", f"Hydra's mode is RUN or MULTIRUN, got {mode!r}")
            if mode == "RUN":
                self.note("hydra.mode", "RUN: the app alone runs one job (unless --multirun); scalehp runs the sweep")
            others = sorted(k for k in hydra if k not in ("sweeper", "mode", "job"))
            job = hydra.get("job") if isinstance(hydra.get("job"), dict) else {}
            others += [f"job.{k}" for k in job if k != "name"]
            if others:
                self.note(
                    "hydra",
                    f"hydra.{', hydra.'.join(others)}: settings of the app's own runs; they still apply when the "
                    "app runs each trial, scalehp does not read them",
                )
            app = sorted(k for k in data if k not in ("hydra", "defaults", "optimized_metric"))
            if app:
                self.note(
                    app[0],
                    f"the app's own config ({', '.join(app)}) stays with the app: each trial runs the app with the "
                    "searched params as overrides",
                )
        elif set(data) <= _SWEEPER_KEYS:
            self.sweeper, self.base = data, ""
        else:
            unknown = sorted(k for k in data if k not in _SWEEPER_KEYS)
            raise self.error(
                unknown[0],
                f"unknown key {unknown[0]!r}: give a Hydra config with hydra.sweeper, or the sweeper section alone",
            )
        target = self.sweeper.get("_target_")
        if target is not None and target != SWEEPER:
            raise self.error(self.at("_target_"), f"{target!r} is not Hydra's Optuna sweeper ({SWEEPER})")
        self.sweeper = self.section(self.sweeper, self.base, known=_SWEEPER_KEYS, what="Optuna sweeper")
        self.defaults(self.sweeper.get("defaults"), self.at("defaults"))

    def defaults(self, entries: Any, path: str) -> None:
        if entries is None:
            return
        if not isinstance(entries, list):
            raise self.error(path, "defaults is a list")
        optuna = False
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                if entry != "_self_":  # a config the app composes: it may set what this file does not
                    self.note(
                        f"{path}.{i}",
                        f"{entry!r}: a config Hydra composes into the app's; scalehp reads only this file (what the "
                        "composed one sets still applies in each trial's run)",
                    )
                continue
            for key, value in entry.items():
                group = str(key).removeprefix("override").strip().lstrip("/")
                if group.startswith("hydra/") and not isinstance(value, str):
                    raise self.error(f"{path}.{i}", f"{group} takes the name of one option, got {value!r}")
                if group == "hydra/sweeper":
                    if value != "optuna":
                        raise self.error(f"{path}.{i}", f"the sweeper is {value!r}, not optuna")
                    optuna = True
                elif group in ("hydra/sweeper/sampler", "sampler"):
                    if not isinstance(value, str) or value not in _GROUPS:
                        raise self.error(f"{path}.{i}", f"unknown Optuna sweeper sampler {value!r}")
                    self.group_sampler = (_GROUPS[value], f"{path}.{i}")
                elif group == "hydra/launcher":
                    self.note(
                        f"{path}.{i}",
                        f"launcher {value!r} left out: scalehp runs each trial as a command on Ray "
                        "(n_jobs -> concurrency)",
                    )
                else:
                    self.note(
                        f"{path}.{i}",
                        f"{group}: {value!r}: composed by Hydra when the app runs; scalehp reads only this file",
                    )
        self.optuna_selected = self.optuna_selected or optuna

    # -- the whole file ---------------------------------------------------------------

    def convert(self) -> Imported:
        self.locate()
        sw = self.sweeper
        if sw.get("custom_search_space") is not None:
            raise self.error(
                self.at("custom_search_space"),
                "custom_search_space runs Python code on the Optuna trial, which cannot be converted; "
                "write those params under params (a conditional choice for params that depend on another)",
            )
        sequence = sw.get("experiment_sequence")
        if sequence is not None and sequence != _SEQUENCE:
            raise self.error(
                self.at("experiment_sequence"),
                f"a custom experiment_sequence ({sequence}) is Python code that cannot be converted",
            )
        out: dict[str, Any] = {"name": self.name()}
        search, sampler = self.search()
        self.search_algorithm, self.sampler_name = search["algorithm"], sampler
        metric = self.metric()
        space, grid = self.space(sampler)
        if search.get("sampler") == "cmaes" and searcher_problem(space, "optuna", "cmaes") is not None:
            search["sampler"] = "tpe"
            self.note(
                self.at("sampler"),
                "CmaEsSampler: optuna's TPE sampler instead, since scalehp's CMA-ES searches number ranges only and "
                "the space holds a choice (Optuna samples such a param independently of CMA-ES)",
            )
        out["command"] = self.command()
        out["metric"] = metric
        out["budget"] = {"samples": self.samples(grid, space), "max_steps": 1}
        self.note(
            self.base or "params",
            "budget.max_steps 1: the sweeper sees one value per trial (what the app returns); raise it if the app "
            "prints a report per epoch",
        )
        n_jobs = sw.get("n_jobs", 2)  # the sweeper's default
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
            raise self.error(self.at("n_jobs"), f"n_jobs must be a positive integer, got {n_jobs!r}")
        out["concurrency"] = n_jobs
        if n_jobs > 1:
            self.note(
                self.at("n_jobs") if "n_jobs" in sw else (self.base or "params"),
                f"n_jobs {n_jobs}{'' if 'n_jobs' in sw else ' (the default)'} -> concurrency {n_jobs}: Hydra asks for n_jobs trials and waits for the whole "
                "batch; scalehp starts the next trial as soon as one ends",
            )
        seed = self.seed
        if seed is not None:
            out["seed"] = seed
        out["space"] = space
        out["search"] = search
        failure = self.failure()
        if failure:
            out["failure"] = failure
        if sw.get("storage") is not None:
            self.note(
                self.at("storage"),
                f"storage {sw['storage']!r} left out: scalehp keeps every trial in its Parquet results, "
                "not in an Optuna study",
            )
        if "search_space" in sw and "params" in sw:
            self.note(self.at("search_space"), "search_space left out: Hydra uses params when both are given")
        return self.done(out)

    def name(self) -> str:
        study = self.sweeper.get("study_name")
        job = self.job_name()
        if study is not None:
            raw, where = str(study), self.at("study_name")
        elif job is not None:
            raw, where = job, "hydra.job.name"
        else:
            raw, where = Path(self.source.path).stem, ""
        name = sanitize_name(raw) or "imported"
        if name != raw:
            self.note(where, f"{raw!r} is not a valid experiment name; named {name!r}")
        return name

    def job_name(self) -> str | None:
        hydra = self.root.get("hydra") if self.base else None
        job = hydra.get("job") if isinstance(hydra, dict) else None
        name = job.get("name") if isinstance(job, dict) else None
        return str(name) if name is not None else None

    # -- sampler -> search ---------------------------------------------------------------

    def search(self) -> tuple[dict[str, Any], str]:
        raw = self.sweeper.get("sampler")
        path = self.at("sampler")
        options: dict[str, Any] = {}
        sampler = "TPESampler"
        if self.group_sampler is not None:
            sampler, path = self.group_sampler
        if raw is not None:
            if not isinstance(raw, dict):
                raise self.error(path, "sampler is a mapping with _target_ (e.g. optuna.samplers.TPESampler)")
            options = {k: v for k, v in raw.items() if k not in ("_target_", "_partial_")}
            if raw.get("_target_") is not None:
                sampler, path = _short(raw["_target_"]), self.at("sampler._target_")
                if not str(raw["_target_"]).startswith("optuna.samplers."):
                    raise self.error(path, f"{raw['_target_']!r} is not one of Optuna's samplers")
        if sampler not in _SAMPLERS:
            raise self.error(path, f"no scalehp equivalent for Optuna's {sampler}")
        search, message = _SAMPLERS[sampler]
        search = dict(search)
        if message:
            self.note(path, message)
        self.seed = options.pop("seed", None)
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0):
            raise self.error(self.at("sampler.seed"), f"seed must be a non-negative integer, got {self.seed!r}")
        if sampler in ("TPESampler", "MOTPESampler", "GPSampler"):
            startup = options.pop("n_startup_trials", 10)
            search["initial_points"] = self.positive(startup, "sampler.n_startup_trials")
        elif sampler == "CmaEsSampler":
            startup = options.pop("n_startup_trials", 1)  # Optuna's default for CMA-ES
            search["initial_points"] = self.positive(startup, "sampler.n_startup_trials")
        elif sampler in ("NSGAIISampler", "NSGAIIISampler"):
            size = self.positive(options.pop("population_size", 50), "sampler.population_size")
            if size != nsga2_population(size):
                self.note(
                    self.at("sampler.population_size"),
                    f"population_size {size} -> {nsga2_population(size)}: scalehp's NSGA-II population is "
                    f"{NSGA2_POPULATION[0]} to {NSGA2_POPULATION[1]}",
                )
            search["initial_points"] = nsga2_population(size)
        defaults = _DEFAULTS.get(sampler, {})
        for key, value in options.items():
            if key in defaults:
                if value in defaults[key] and not isinstance(value, dict):
                    continue
                self.note(
                    self.at(f"sampler.{key}"),
                    f"{key} {value!r} left out: scalehp builds {sampler} with Optuna's default ({defaults[key][0]!r})",
                )
            else:
                raise self.error(self.at(f"sampler.{key}"), f"unknown {sampler} option {key!r}")
        if search["algorithm"] == "optuna" and search.get("sampler") == "tpe" and search.get("initial_points") == INITIAL_POINTS["optuna"]:
            del search["initial_points"]  # scalehp's default, as it is Optuna's
        return search, sampler

    def positive(self, value: Any, key: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(self.at(key), f"{key.rsplit('.', 1)[-1]} must be a positive integer, got {value!r}")
        return value

    # -- direction -> metric -----------------------------------------------------------------

    def metric(self) -> Any:
        raw = self.sweeper.get("direction", "minimize")
        path = self.at("direction")
        directions = raw if isinstance(raw, list) else [raw]
        if not directions:
            raise self.error(path, "direction is minimize, maximize or a list of them")
        modes = []
        for i, direction in enumerate(directions):
            word = _short(direction).lower() if isinstance(direction, str) else direction
            if word not in ("minimize", "maximize"):
                where = f"{path}.{i}" if isinstance(raw, list) else path
                raise self.error(where, f"direction must be minimize or maximize, got {direction!r}")
            modes.append("min" if word == "minimize" else "max")
        if "direction" not in self.sweeper:
            self.note(
                path,
                "no direction in this file: minimize, the sweeper's default; a config this one composes (its "
                "defaults list, a parent config) may set maximize: check metric.mode before running",
            )
        named = self.root.get("optimized_metric") if self.base else None
        if len(modes) == 1:
            if isinstance(named, str) and named:
                self.note(
                    "optimized_metric",
                    f"metric.name {named!r} from optimized_metric (the value the app returns): the app must also "
                    f"print it as a line `{named}=<value>`",
                )
                return {"name": named, "mode": modes[0]}
            self.note(
                path if "direction" in self.sweeper else (self.base or "params"),
                "metric.name 'value': the sweeper optimises the number the app returns, which scalehp cannot see; "
                "the app must print it as a line `value=<number>` (or set metric.name to a metric it prints)",
            )
            return {"name": "value", "mode": modes[0]}
        if self.search_algorithm != "optuna" or self.sampler_name == "CmaEsSampler":
            raise self.error(
                path,
                f"several directions need a multi-objective Optuna sampler in scalehp (TPESampler or "
                f"NSGAIISampler), not {self.sampler_name}",
            )
        names = [f"value_{i}" for i in range(len(modes))]
        self.note(
            path,
            f"{len(modes)} objectives -> metrics {', '.join(names)}: the app returns them as a tuple, which scalehp "
            f"cannot see; it must print them as `{names[0]}=<number> {names[1]}=<number>`",
        )
        return [{"name": n, "mode": m} for n, m in zip(names, modes)]

    # -- params -> space --------------------------------------------------------------------

    def space(self, sampler: str) -> tuple[dict[str, Any], bool]:
        grid = sampler in ("GridSampler", "BruteForceSampler")
        space: dict[str, Any] = {}
        params = self.sweeper.get("params")
        if params is not None:
            if not isinstance(params, dict):
                raise self.error(
                    self.at("params"), "params is a mapping of name -> override (e.g. lr: interval(0.001, 0.1))"
                )
            self.params_of(params, "params", self.param, grid, space)
        elif self.sweeper.get("search_space") is not None:
            old = self.sweeper["search_space"]
            if not isinstance(old, dict):
                raise self.error(self.at("search_space"), "search_space is a mapping of name -> {type, low, high, ...}")
            self.note(
                self.at("search_space"),
                "search_space is the sweeper's deprecated form (Hydra 1.1); read as params would be",
            )
            self.params_of(old, "search_space", self.old_param, grid, space)
        if not space:
            raise self.error(self.at("params"), "the sweeper searches no params: add params (e.g. x: interval(-5, 5))")
        if grid:
            searched = [p for p in space.values() if isinstance(p, dict) and "choice" in p]
            if not searched:
                raise self.error(self.at("params"), "grid search needs at least one choice or range to walk")
        return space, grid

    def params_of(self, raw: dict[str, Any], section: str, convert: Any, grid: bool, space: dict[str, Any]) -> None:
        """Each param of ``params`` (or the old ``search_space``) into ``space``, every bad one named in one run."""
        for key, value in raw.items():
            with self.gathering():
                where = self.at(f"{section}.{key}")
                name = self.param_name(str(key), where)
                space[name] = convert(value, where, grid)
                if grid and isinstance(space[name], dict) and "choice" in space[name]:
                    self.grid_param(len(space[name]["choice"]), where)
        self.settle()

    def param_name(self, key: str, path: str) -> str:
        name = key
        if key.startswith(("+", "~")):
            name = key.lstrip("+~")
            self.note(
                path,
                f"{key!r} -> {name!r}: scalehp passes {name}=value; add {name} to the app's config "
                f"(Hydra needs {key}=value for a key the config lacks)",
            )
        if not PARAM_NAME.fullmatch(name):
            raise self.error(path, f"{key!r} cannot be a scalehp param name (letters, digits, _ . / -)")
        return name

    def param(self, raw: Any, path: str, grid: bool) -> Any:
        if not isinstance(raw, str):  # a fixed value: the sweeper passes it as it is
            return {"constant": raw} if isinstance(raw, (list, dict)) or raw is None else raw
        try:
            value = parse_override(raw)
        except GrammarError as exc:
            raise self.error(path, f"not a sweep Hydra's Optuna sweeper reads: {exc}") from None
        if isinstance(value, Glob):
            raise self.error(
                path, "glob() picks options of a config group, which scalehp cannot list; write choice(...)"
            )
        inner = value.items if isinstance(value, Choice) else value if isinstance(value, (list, dict)) else []
        if _holds_sweep(inner):
            raise self.error(path, "a sweep inside a choice, list or mapping is not one Optuna can sample")
        if not isinstance(value, (Choice, Range, Interval)):
            return {"constant": value} if isinstance(value, (list, dict)) or value is None else value
        extra = sorted(value.tags - {"log"})
        if extra:
            self.note(path, f"tags {extra} left out: the Optuna sweeper reads only the log tag")
        if isinstance(value, Choice) or (isinstance(value, Range) and value.shuffle):
            try:
                items = value.items if isinstance(value, Choice) else value.values()
            except GrammarError as exc:
                raise self.error(path, str(exc)) from None
            for item in items:
                if isinstance(item, (list, dict)):
                    raise self.error(
                        path, f"the Optuna sweeper chooses among str, int, float, bool and null, not {shown(item)}"
                    )
                if isinstance(item, float) and not finite(item):
                    raise self.error(path, f"a choice of {item}: only finite numbers can be chosen")
            if not items:
                raise self.error(path, "the sweep holds no value")
            if len(set(map(repr, items))) != len(items):
                raise self.error(path, f"the choice lists a value twice: {items}")
            if "log" in value.tags:
                self.note(path, "tag log left out: the sweeper reads a choice as categorical")
            return {"choice": items}
        if isinstance(value, Range):
            return self.range(value, path, grid)
        return self.interval(value, path, grid)

    def range(self, value: Range, path: str, grid: bool) -> Any:
        start, stop, step = value.start, value.stop, value.step
        if step < 0:
            raise self.error(path, "a descending range() cannot be an Optuna distribution; write it ascending")
        floats = any(isinstance(v, float) for v in (start, stop, step))
        if grid:  # Hydra's GridSampler: low + i * step for i < (high - low) // step
            self.check_grid(span(start, stop, step), path)
            count = int((stop - start) // step)
            values = [round(start + i * step, 12) if floats else start + i * step for i in range(count)]
            if not values:
                raise self.error(path, "the range holds no grid value")
            self.note(
                path,
                f"range on a grid: {values[0]:g} .. {values[-1]:g} in steps of {step:g}, stop left out, as Hydra's GridSampler does",
            )
            return {"choice": values}
        if start >= stop:
            raise self.error(path, f"range() start ({start}) must be below stop ({stop})")
        if "log" in value.tags:
            self.note(path, "tag log left out: the sweeper reads only an interval's log tag, not a range's")
        self.note(
            path,
            f"range({start:g}, {stop:g}, {step:g}) -> [{start:g}, {stop:g}] with stop included: Hydra's range leaves "
            "stop out, but the Optuna sweeper hands Optuna an inclusive range, as scalehp does",
        )
        if floats:
            if step > stop - start:
                raise self.error(path, f"step ({step}) is larger than the range")
            return self.counted_from_low(float(start), float(stop), float(step), path, integer=False, tool=_OPTUNA)
        if step == 1:
            return {"int": [int(start), int(stop)]}
        return self.counted_from_low(int(start), int(stop), int(step), path, integer=True, tool=_OPTUNA)

    def interval(self, value: Interval, path: str, grid: bool) -> Any:
        start, end = value.start, value.end
        integer = isinstance(start, int) and isinstance(end, int)
        log = "log" in value.tags
        if grid:
            if log or not integer:
                raise self.error(
                    path, "Hydra's GridSampler takes discrete distributions only (choice, range, int interval)"
                )
            if end - start > 10_000:
                raise self.error(path, "a grid of more than 10,000 values; narrow the interval")
            values = list(range(start, end))
            self.note(path, f"int interval on a grid: {start} .. {end - 1}, end left out, as Hydra's GridSampler does")
            return {"choice": values}
        if start >= end:
            raise self.error(path, f"interval() start ({start}) must be below end ({end})")
        if log and start <= 0:
            raise self.error(path, f"a log interval needs start > 0, got {start}")
        param: dict[str, Any] = {"int": [start, end]} if integer else {"float": [float(start), float(end)]}
        return {**param, **({"log": True} if log else {})}

    def old_param(self, raw: Any, path: str, grid: bool) -> Any:
        if not isinstance(raw, dict) or raw.get("type") not in ("int", "float", "categorical"):
            raise self.error(path, "a search_space entry is {type: int|float|categorical, ...}")
        allowed = {"type", "choices", "low", "high", "log", "step"}
        for key in raw:
            if key not in allowed:
                raise self.error(f"{path}.{key}", f"unknown search_space key {key!r}")
        kind = raw["type"]
        if kind == "categorical":
            choices = raw.get("choices")
            if not isinstance(choices, list) or not choices:
                raise self.error(f"{path}.choices", "categorical needs a non-empty list of choices")
            return {"choice": choices}
        low, high = raw.get("low"), raw.get("high")
        if not _number(low) or not _number(high):
            raise self.error(path, f"{kind} needs numbers low and high")
        log, step = raw.get("log", False), raw.get("step")
        if not isinstance(log, bool):
            raise self.error(f"{path}.log", f"log must be true or false, got {log!r}")
        if step is not None and (not _number(step) or step <= 0):
            raise self.error(f"{path}.step", f"step must be a number > 0, got {step!r}")
        if grid:
            if kind == "float" and step is None or log:
                raise self.error(path, "Hydra's GridSampler takes discrete distributions only")
            return self.range(
                Range(int(low) if kind == "int" else low, int(high) if kind == "int" else high, step or 1), path, True
            )
        if kind == "int":
            low, high = int(low), int(high)
        if low >= high:
            raise self.error(path, f"low ({low}) must be below high ({high})")
        if log and low <= 0:
            raise self.error(f"{path}.low", f"a log range needs low > 0, got {low}")
        if step is not None and not log and step > high - low:
            raise self.error(f"{path}.step", f"step ({step}) is larger than the range {low}..{high}")
        if kind == "int":
            param: dict[str, Any] = {"int": [int(low), int(high)]}
            if log:
                param["log"] = True  # the sweeper ignores step on a log int (IntLogUniformDistribution)
                if step not in (None, 1):
                    self.note(f"{path}.step", "step left out: the sweeper ignores it on a log int range")
            elif step not in (None, 1):
                return self.counted_from_low(int(low), int(high), int(step), f"{path}.step", integer=True, tool=_OPTUNA)
            return param
        param = {"float": [float(low), float(high)]}
        if log:
            param["log"] = True
            if step is not None:
                self.note(f"{path}.step", "step left out: the sweeper ignores it on a log float range")
        elif step is not None:
            return self.counted_from_low(float(low), float(high), step, f"{path}.step", integer=False, tool=_OPTUNA)
        return param

    # -- budget, failures, the app ----------------------------------------------------------

    def samples(self, grid: bool, space: dict[str, Any]) -> int:
        n_trials = self.sweeper.get("n_trials", 20)
        if not isinstance(n_trials, int) or not finite(n_trials) or n_trials < 1:
            raise self.error(self.at("n_trials"), f"n_trials must be a positive integer, got {shown(n_trials)}")
        if not grid:
            return n_trials
        combinations = math.prod(len(p["choice"]) for p in space.values() if isinstance(p, dict) and "choice" in p)
        if n_trials < combinations:
            self.note(
                self.at("n_trials"),
                f"grid search runs every one of the {combinations} combinations; Hydra stops after n_trials "
                f"{n_trials}, scalehp cannot stop a grid early (remove values to shrink it)",
            )
        return 1

    def failure(self) -> dict[str, Any]:
        rate = self.sweeper.get("max_failure_rate", 0.0)
        path = self.at("max_failure_rate")
        if not _number(rate) or not 0 <= rate <= 1:
            raise self.error(path, f"max_failure_rate must be between 0 and 1, got {rate!r}")
        if rate == 0:
            return {"fail_fast": True}  # the sweeper's default: one failed trial ends the sweep
        if rate == 1:
            return {}
        n_trials = self.sweeper.get("n_trials", 20)
        allowed = math.floor(rate * n_trials) + 1
        self.note(
            path,
            f"max_failure_rate {rate:g} -> failure.max_failed_trials {allowed}: Hydra ends the sweep when more than "
            f"that share of one batch of n_jobs trials fails; scalehp counts failed trials over the whole run "
            f"({rate:g} of {n_trials} trials, plus one)",
        )
        return {"max_failed_trials": allowed}

    def command(self) -> str:
        program = self.source.program
        if program is None:
            job = self.job_name()
            if job is not None:
                program = f"{job}.py"
                self.note(
                    "hydra.job.name",
                    f"the app is taken to be {program} (Hydra names a job after its script); "
                    "give scalehp import --program APP if it is not",
                )
            else:
                program = PLACEHOLDER_APP
                self.note(
                    self.base or "params",
                    f"the sweeper config does not name the app it runs: the command runs {PLACEHOLDER_APP}, "
                    "a placeholder; give scalehp import --program APP (or edit command)",
                )
        words = ["${python}", program, "${args_no_hyphens}"]
        if not re.match(r"^[A-Za-z0-9_@%+=:,./-]+$", program):
            return words  # type: ignore[return-value]
        return " ".join(words)


__all__ = ["convert", "parse_override"]
