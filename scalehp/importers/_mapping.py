"""What the converters share: notes, names, numbers, commands, searchers.

A :class:`Mapping` walks one source file (:meth:`Mapping.run`). Each converter takes the keys it
understands out of a section with :meth:`Mapping.section` and calls :meth:`Mapping.rest` for what
is left, so a key it does not convert still becomes a note instead of disappearing. Where the
converter knows every key the source tool has in a section (``known=``), any other key is an
error naming the closest one; such problems, and every bad parameter, are gathered and reported
together (:meth:`Mapping.settle`).
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from collections.abc import Collection
from decimal import Decimal
from pathlib import Path
from typing import Any

from scalehp.errors import SpecError
from scalehp.importers import MAX_DEPTH, Imported, Note, Source, depth
from scalehp.schedulers.asha import MAX_RUNGS, rung_count
from scalehp.schedulers.median_stopping import never_stops
from scalehp.space import PARAM_NAME
from scalehp.spec import is_name, parse_duration

_SHELL = re.compile(r"&&|\|\||[|;<>`]|\$\(|\$[A-Za-z_{]")
_PLACEHOLDER = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_./-]*\}")
PYTHONS = ("python", "python3")

DEFAULT_MAX_STEPS = 100
"""Steps per trial when the source sets no per-trial length (a step is one report of the metric)."""
EPOCH_STEP = r"(?i)\bepoch\W{0,3}(\d+)"
"""``command.step`` where a source counts epochs: the number after "epoch" in a line
(``epoch=3``, ``Epoch: 3``, ``Train Epoch: 3 [...]``, ``Epoch[2]``, a JSON ``"epoch": 3``)."""
EPOCH_NOTE = (
    "command.step finds the epoch in each printed line (epoch=3, Epoch: 3, Epoch[2]): a step is an epoch, "
    "reported when the next begins or the program ends, not every line that holds the metric"
)

DEFAULT_SAMPLES = 100
"""Trials when the source sets no trial cap."""
MAX_GRID_VALUES = 10_000
"""The most values one grid param may take: counted before its values are listed."""
MAX_GRID_POINTS = 1_000_000
"""The most combinations a grid may have (the compiler's cap on a run's trials)."""
MAX_CHOICE_VALUES = 1_000
"""The most values an importer lists as a choice to keep a stepped range's exact values (scalehp's
step takes the multiples of step; a source that counts from low, or clips to its bounds, can take others)."""


class _Gather:
    """Keeps a :class:`SpecError` raised inside it (see :meth:`Mapping.gathering`)."""

    def __init__(self, problems: list[SpecError]) -> None:
        self.problems = problems

    def __enter__(self) -> _Gather:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, trace: Any) -> bool:
        if isinstance(exc, SpecError):
            self.problems.append(exc)
            return True
        return False


class Mapping:
    """One conversion in progress: the source, the notes so far, and helpers that raise or note."""

    def __init__(self, source: Source):
        self.source = source
        self.notes: list[Note] = []
        self.problems: list[SpecError] = []  # gathered (see gathering), raised together by settle
        self.grid_points = 1  # combinations of the grid params counted so far (grid_param)
        if depth(source.data) > MAX_DEPTH:  # read_source refuses such files; this is for data given directly
            raise source.error("", f"nested more than {MAX_DEPTH} levels deep")

    def note(self, path: str, message: str) -> None:
        self.notes.append(self.source.note(path, message))

    def error(self, path: str, message: str) -> SpecError:
        return self.source.error(path, message)

    def gathering(self) -> _Gather:
        """``with self.gathering(): ...`` around one param's conversion: its error is kept, and the
        next param is converted too, so that :meth:`settle` names every bad param in one run."""
        return _Gather(self.problems)

    def settle(self) -> None:
        """Raise the problems gathered so far: the first, with the others as its ``also``.

        Raises:
            SpecError: when there were any.
        """
        if not self.problems:
            return
        first, *rest = self.problems
        self.problems = []
        more = f" (and {len(rest)} more error{'s' if len(rest) > 1 else ''})" if rest else ""
        raise SpecError(first.message + more, source=first.source, path=first.path, line=first.line, also=tuple(rest[:20]))

    def run(self) -> Imported:
        """The conversion (the subclass's ``convert()``), with every problem gathered on the way and the
        first one raised after them reported together (see :meth:`settle`)."""
        try:
            imported = self.convert()
        except SpecError as exc:
            if not self.problems:
                raise
            self.problems.append(exc)
        self.settle()
        return imported

    def convert(self) -> Imported:
        raise NotImplementedError

    def done(self, data: dict[str, Any]) -> Imported:
        self.settle()
        return Imported({"version": 1, **data}, self.notes)

    # -- walking mappings -------------------------------------------------------------------

    def section(
        self, value: Any, path: str, *, required: bool = False, known: Collection[str] | None = None, what: str = ""
    ) -> dict[str, Any]:
        """A mapping at ``path`` as a copy that the caller pops keys from (empty when absent).

        ``known``: the keys the source tool has in this section (``what``, e.g. "W&B sweep"); any
        other key is a problem (a misspelling, most often) gathered for :meth:`settle` and left out
        of the copy. Without it, a key nobody pops becomes a note by :meth:`rest`.
        """
        if value is None:
            if required:
                raise self.error(path, "required section is missing")
            return {}
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping of keys, got {type(value).__name__}")
        out = dict(value)
        for key in [k for k in out if known is not None and k not in known]:
            del out[key]
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problems.append(self.error(join(path, key), f"unknown {what} key {shown(key)}{hint}".replace("  ", " ")))
        return out

    def items(self, value: Any, path: str) -> list[Any]:
        """A list at ``path`` (empty when absent)."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(path, f"expected a list, got {type(value).__name__}")
        return value

    def rest(self, left: dict[str, Any], path: str, why: str = "no scalehp equivalent; left out") -> None:
        """A note for every key nobody took out of ``left``."""
        for key, value in left.items():
            if value is None:
                continue  # null means "not set" in these formats
            self.note(join(path, key), why)

    # -- values --------------------------------------------------------------------------------

    def number(self, value: Any, path: str, *, integer: bool = False) -> float | int:
        """A number from a YAML number or a numeric string (Katib writes ``min: "0.01"``)."""
        if isinstance(value, bool) or value is None:
            raise self.error(path, f"expected a number, got {value!r}")
        if isinstance(value, str):
            text = value.strip()
            try:
                value = int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
            except ValueError:
                raise self.error(path, f"expected a number, got {shown(value)}") from None
        if not finite(value):
            raise self.error(path, f"expected a finite number, got {shown(value)}")
        if integer:
            if isinstance(value, float) and not value.is_integer():
                raise self.error(path, f"expected a whole number, got {value!r}")
            return int(value)
        return value

    def count(self, value: Any, path: str, *, minimum: int = 1, most: int | None = None) -> int:
        """A whole number of at least ``minimum`` (trial caps, concurrency), and at most ``most``."""
        number = self.number(value, path, integer=True)
        if number < minimum:
            raise self.error(path, f"must be at least {minimum}, got {number}")
        if most is not None and number > most:
            raise self.error(path, f"must be at most {most:,}, got {shown(number)}")
        return int(number)

    def eta(self, value: Any, path: str, max_steps: int) -> float:
        """Hyperband's reduction factor for a budget of ``max_steps``: above 1, and far enough from 1
        that the rungs up to ``max_steps`` number at most :data:`~scalehp.schedulers.asha.MAX_RUNGS`."""
        eta = float(self.number(value, path))
        if eta <= 1:
            raise self.error(path, f"eta must be above 1, got {eta:g}")
        if rung_count(max_steps, 1, eta) > MAX_RUNGS:
            raise self.error(path, f"eta {eta:.10g} is too close to 1 for a budget of {max_steps}: more than {MAX_RUNGS} rungs")
        return eta

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(path, f"expected a non-empty string, got {value!r}")
        return value

    def duration(self, value: Any, path: str) -> float:
        """Seconds from ``number + s|m|h|d`` (NNI's format: ``30m``, ``1.5h``; spaces allowed) or a number
        of seconds, by the experiment files' own rule (:func:`scalehp.spec.parse_duration`)."""
        try:
            seconds = float(parse_duration(re.sub(r"\s+", "", value) if isinstance(value, str) else value))
        except (TypeError, ValueError, OverflowError):
            seconds = None
        if seconds is None or not (math.isfinite(seconds) and seconds > 0):
            raise self.error(path, f"expected a duration such as 30m, 2h or 0.5d, got {shown(value)}")
        return seconds

    def check_grid(self, count: float, path: str) -> None:
        """Refuse a grid param of ``count`` values before they are listed: at most :data:`MAX_GRID_VALUES`."""
        if not count <= MAX_GRID_VALUES:  # also NaN
            raise self.error(
                path, f"a grid of more than {MAX_GRID_VALUES:,} values; narrow the range or take a larger step"
            )

    def grid_param(self, size: int, path: str) -> None:
        """Count one more grid param, of ``size`` values, into :attr:`grid_points`: at most :data:`MAX_GRID_POINTS`."""
        self.grid_points *= max(1, size)
        if self.grid_points > MAX_GRID_POINTS:
            raise self.error(path, f"a grid of more than {MAX_GRID_POINTS:,} combinations; take fewer values")

    def counted_from_low(
        self, low: Any, high: Any, step: Any, path: str, *, integer: bool, log: bool = False, tool: str
    ) -> Any:
        """A stepped range whose source takes ``low, low + step, ...`` up to ``high`` (optuna's rule), with
        exactly those values.

        scalehp's step takes the multiples of step in ``[low, high]``: the same values when ``low`` is a
        multiple. Otherwise the values are listed as a choice (at most :data:`MAX_CHOICE_VALUES`), and
        past that the stepped range stays, with a note saying how every value shifts.
        """
        param: dict[str, Any] = {"int" if integer else "float": [low, high], "step": step}
        if log:
            param["log"] = True
        count = span(low, high, step)
        if count < MAX_CHOICE_VALUES:  # also not inf
            count = int((high - low) // step) + 1 if integer else int(math.floor(count + 1e-9)) + 1
        if count < 1:
            return param  # low above high: scalehp's own check says so
        if count == 1:
            self.note(path, f"{tool} takes only {low:g} (the step is larger than the range): a constant")
            return {"constant": low}
        if is_multiple(low, step):
            return param
        if count <= MAX_CHOICE_VALUES:
            values = [low + k * step if integer else stepped(low, step, k) for k in range(count)]
            shown_values = ", ".join(f"{v:g}" for v in values[:3]) + (", ..." if count > 3 else "")
            self.note(
                path,
                f"{tool} takes {shown_values} ({count} values counted from low {low:g}), but a scalehp step takes "
                f"the multiples of {step:g} and {low:g} is not one: the same values as a choice, each drawn "
                "equally often" + (" (the log scale left out)" if log else "") + " and unordered to the searchers",
            )
            return {"choice": values}
        first = (-(-low // step) if integer else math.ceil(low / step)) * step
        self.note(
            path,
            f"VALUES DIFFER: {tool} takes {low:g}, {stepped(low, step, 1):g}, ... (counting from low), but scalehp's "
            f"step takes the multiples of {step:g} in [{low:g}, {high:g}] ({first:g}, ...): every value shifts by "
            f"{first - low:g}. They are too many to list as a choice (more than {MAX_CHOICE_VALUES:,}): make low a "
            "multiple of step to keep the source's values",
        )
        return param

    def median_stopping(
        self, scheduler: dict[str, Any], trials: int, max_steps: int, paths: dict[str, str]
    ) -> dict[str, Any] | None:
        """A ``median_stopping`` scheduler as converted, or None where its numbers let it stop no trial
        of this run (the scheduler's own rule, :func:`~scalehp.schedulers.median_stopping.never_stops`):
        the source's rule could stop none either, so the run without it is the same run, with a note
        at the source key (``paths``: option -> key path). A value is never lowered to fit.
        """
        options = scheduler["median_stopping"]
        problem = never_stops(options["grace_steps"], options["min_samples"], trials, max_steps)
        if problem is None:
            return scheduler
        option, why = problem
        self.note(
            paths[option],
            f"{why} (as median_stopping.{option}): the source's early stopping could stop no trial of this run, "
            "so the run has no scheduler (the same run)",
        )
        return None

    # -- names -----------------------------------------------------------------------------------

    def experiment_name(self, raw: Any, path: str) -> str:
        """The experiment's name from the source's own, made valid (with a note when changed)."""
        stem = Path(self.source.path).stem
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            name = sanitize_name(stem) or "imported"
            self.note(path, f"the source has no name; named the experiment {name!r} after the file")
            return name
        text = str(raw)
        name = sanitize_name(text) or sanitize_name(stem) or "imported"
        if name != text:
            self.note(path, f"{text!r} is not a valid scalehp name (letters, digits, - _ .); named it {name!r}")
        return name

    def param_name(self, raw: Any, path: str, *, nested: bool = False) -> str:
        """A param name as it is, or an error telling how to rename it."""
        if not isinstance(raw, str) or not PARAM_NAME.fullmatch(raw) or (nested and "." in raw):  # (the space's rule)
            allowed = "letters, digits, _ / -" if nested else "letters, digits, _ . / -"
            raise self.error(
                path, f"param name {raw!r} cannot be a scalehp param name ({allowed}, starting with a letter or _)"
            )
        return raw

    # -- commands --------------------------------------------------------------------------------

    def shell_words(self, command: str, path: str) -> list[str]:
        """The words of a command line that needs no shell, or an error naming the shell feature."""
        try:
            words = shlex.split(command)
        except ValueError as exc:
            raise self.error(path, f"cannot split the command into words: {exc}") from None
        if not words:
            raise self.error(path, "the command is empty")
        feature = _SHELL.search(command)
        if feature:
            raise self.error(
                path,
                f"the command uses the shell ({feature.group(0)!r}); scalehp runs a command without a shell: "
                "put those steps in a script and run that",
            )
        return words

    def python_first(self, words: list[str], path: str) -> list[str]:
        """``python``/``python3`` as the program becomes ``${python}`` (scalehp's own Python), with a note."""
        if words and words[0] in PYTHONS:
            self.note(path, f"{words[0]!r} runs as ${{python}}: the Python that runs scalehp (and its environment)")
            return ["${python}", *words[1:]]
        return words


def finite(value: Any) -> bool:
    """Whether ``value`` is a number (not a bool) that a float holds: not NaN, inf, or an int past 1.8e308."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def span(low: float, high: float, step: float) -> float:
    """``(high - low) / step``: how many steps a range holds, inf where a float cannot hold it."""
    try:
        return (high - low) / step
    except OverflowError:  # int / int past a float
        return math.inf


def is_multiple(value: Any, step: Any) -> bool:
    """Whether ``value`` is a multiple of ``step`` as scalehp's stepped params tell one (up to float rounding)."""
    if isinstance(value, int) and isinstance(step, int):
        return value % step == 0
    try:
        units = value / step
        return math.isclose(units, round(units))
    except OverflowError:  # a multiple too large for a float to tell apart
        return True


def stepped(low: Any, step: Any, index: int) -> float:
    """``low + index * step`` as the float nearest the decimal result (0.1 + 2 x 0.1 is 0.3)."""
    return float(Decimal(repr(float(low))) + Decimal(repr(float(step))) * index)


def multiple(index: int, step: Any) -> float:
    """``index * step`` as the float nearest the decimal product (3 x 0.1 is 0.3, not 0.30000000000000004)."""
    return float(Decimal(repr(float(step))) * index)


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters (a number of 4,000 digits is not shown whole)."""
    try:
        text = repr(value)
    except ValueError:  # an int of more than 4,300 digits
        return "a number of more than 4,300 digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def sanitize_name(text: str) -> str:
    """``text`` as a valid experiment name: invalid characters become '-', at most 100 characters."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text.strip())
    name = re.sub(r"\.{2,}", ".", name).lstrip("-_.")[:100].rstrip("-_.")
    return name if is_name(name) else ""


def command_line(words: list[str]) -> str:
    """Words back to one command string (placeholders left unquoted)."""
    out = []
    for word in words:
        if _PLACEHOLDER.fullmatch(word):
            out.append(word)
        else:
            out.append(shlex.quote(word))
    return " ".join(out)


# -- searchers --------------------------------------------------------------------------------


def asha_from_hyperband(max_steps: int, eta: float) -> dict[str, Any]:
    """ASHA options that match Hyperband's brackets for a maximum budget ``max_steps`` and factor ``eta``.

    Hyperband's smallest budget is ``max_steps / eta**s_max`` with ``s_max = floor(log_eta(max_steps))``
    and it runs ``s_max + 1`` brackets; Ray's ASHA bracket ``s`` starts at ``grace * eta**s``.
    """
    s_max = int(math.floor(math.log(max_steps) / math.log(eta) + 1e-9)) if max_steps > 1 else 0
    grace = max(1, int(max_steps / eta**s_max))
    return {"grace_steps": grace, "reduction_factor": eta, "brackets": max(1, min(10, s_max + 1))}


def tidy(value: float) -> float:
    """A computed value without floating-point dust (0.30000000000000004 -> 0.3): 12 significant digits."""
    return float(f"{value:.12g}")


def go_round(value: float) -> int:
    """Round half away from zero, as Go's ``math.Round`` (Determined's grid)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def capturing_groups(pattern: str) -> list[int]:
    """The positions of the opening parentheses of the capturing groups of a regular expression."""
    positions, i, in_class = [], 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "]":
                i += 1
            elif pattern[i + 1 : i + 3] == "^]":
                i += 2
        elif char == "(" and pattern[i + 1 : i + 2] != "?":
            positions.append(i)
        i += 1
    return positions


def named_metric_format(pattern: str) -> str | None:
    """A Katib ``metricsFormat`` regex (group 1 = name, group 2 = value) with those groups named."""
    groups = capturing_groups(pattern)
    if len(groups) < 2:
        return None
    first, second = groups[0], groups[1]
    return pattern[: first + 1] + "?P<name>" + pattern[first + 1 : second + 1] + "?P<value>" + pattern[second + 1 :]
