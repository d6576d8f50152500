"""Parameter kinds of a search space.

In an experiment file each entry of ``space`` is one of::

    lr:        {float: [1.0e-4, 1.0e-1], log: true}     # continuous, optional log and step
    hidden:    {int: [16, 256], log: true, step: 1}     # integers, both bounds included
    optimizer: {choice: [adam, sgd]}                    # sampled by the search algorithm
    seed:      {grid: [0, 1, 2]}                        # every value, times `budget.samples`
    dropout:   {normal: [0.3, 0.1]}                     # Normal(mean, sd); optional step
    lr:        {lognormal: [-6.9, 1.0]}                 # ln(value) ~ Normal(mu, sigma): median e**mu
    epochs: 3                                           # anything else is a constant

Bounds are always values, never exponents: ``{float: [1.0e-4, 1.0e-1], log: true}`` samples
between 0.0001 and 0.1. A ``step`` means the multiples of ``step`` that lie in ``[low, high]``
(``{int: [2, 20], step: 3}`` takes 3, 6, ..., 18), under every searcher, as Ray's q-domains,
hyperopt's ``quniform`` and W&B count them. ``lognormal`` is the one kind whose two numbers live in log space
(the mean and sd of ``ln(value)``, as in numpy, hyperopt, NNI and W&B).

Conditional spaces: a choice whose options are a mapping gives each option its own
sub-space, active only while that option is chosen; ``count`` repeats a sub-space once per
active layer::

    optimizer:
      choice:
        adam: {beta1: {float: [0.8, 0.99]}}
        sgd:  {momentum: {float: [0.0, 0.99]}, nesterov: {choice: [true, false]}}
        lbfgs: {}                                       # an option without sub-params
    layers:
      count: [1, 3]                                     # how many layers (an int)
      each: {width: {int: [16, 256], log: true}}        # params of every active layer

One rule names nested params: a sub-param is called ``<parent>.<name>`` and a repeated one
``<parent>.<i>.<name>`` (``i`` from 1), e.g. ``optimizer.beta1`` and ``layers.2.width``.
The trainable's config is flat and holds exactly the active params (``"optimizer.beta1"``
only when ``optimizer`` is ``adam``); the Parquet column follows the usual rule
(``param_optimizer_beta1``) and is null where the param is inactive. Sub-params of the same
name under several options of one choice are one param and must share a column type.

The classes here are plain data that carry their own behaviour, so no caller needs to ask
which class a param is: each checks itself, samples a value with a ``random.Random`` (for
``scalehp try`` and ``LocalTrial``), describes itself, says whether a value ``fits`` it,
clips a searcher's value into its domain, lists its ``finite_values`` (for grids
and enumeration), gives the Arrow type of its column and whether it is searched on a
log scale. What differs per searcher (Ray Tune domains, hyperopt expressions, optuna
suggestions) lives in the runner, in one table per searcher keyed by :attr:`kind`.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Sequence, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator


def _number(value: Any) -> Any:
    # YAML strings such as "0.1" or booleans must never pass as numbers.
    if isinstance(value, (bool, str)):
        raise ValueError(f"expected a number, got {value!r}")
    return value


MAX_STEPS = 10**12
"""The most values a float range with a ``step`` may hold (a step of 5e-324 would overflow sampling)."""

PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]{0,99}")
"""The one rule for a param's name (used with fullmatch); a sub-param's own name has no ``.``."""

MAX_NODES = 10_000
"""The most params a space may hold once conditional and repeated sub-params are spread out."""


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"expected an integer, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise ValueError("integer too large (more than 64 bits)")
    return value


Number = Annotated[float, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (searchers hand those back)."""
    return value.item() if hasattr(value, "item") else value


def values_type(values: list) -> Any:
    """The Arrow type of a column holding ``values`` (a choice's options, a grid's values).

    Ints stay int64, floats (or ints mixed with floats) float64, booleans bool; anything
    else, or a mix, is stored as text.
    """
    import pyarrow as pa  # only the column types need it

    kinds = {type(v) for v in values if v is not None}
    if kinds and kinds <= {bool}:
        return pa.bool_()
    if kinds and kinds <= {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    return pa.string()


class _Kind(BaseModel):
    """What every param kind answers, so callers never dispatch on the class."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: ClassVar[str] = ""
    numeric: ClassVar[bool] = False
    """Its values are numbers (its column is int64 or float64)."""
    integer: ClassVar[bool] = False
    """Its values are integers (its column is int64)."""
    searched: ClassVar[bool] = True
    """A searcher draws it (False for a constant, which is filled in as it is)."""
    nested: ClassVar[bool] = False
    """Other params hang under it (a conditional choice or a count)."""

    def sample(self, rng: random.Random) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def log_scale(self) -> bool:
        """Whether its values are best compared on a log scale (``log: true``, ``lognormal``)."""
        return False

    def finite_values(self) -> Sequence[Any] | None:
        """Every value it takes, in order, or None for a range of floats."""
        return None

    def size(self) -> int | None:
        """How many distinct configs it stands for (its sub-params included); None: infinitely many."""
        values = self.finite_values()
        return None if values is None else len(values)

    def fits(self, value: Any) -> bool:
        """Whether ``value`` is one it can take (an earlier run's value for warm start)."""
        values = self.finite_values()
        return values is not None and value in values

    def clip(self, value: Any) -> Any:
        """A searcher's (or PBT's) value brought into its domain: rounded, on its step, inside its bounds."""
        return _plain(value)

    @property
    def arrow_type(self) -> Any:
        """The Arrow type of its Parquet column (``pyarrow.DataType``)."""
        import pyarrow as pa

        if self.numeric:
            return pa.int64() if self.integer else pa.float64()
        return values_type(list(self.finite_values() or []))

    def branches(self, name: str, path: str) -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
        """Its sub-spaces: ``(name prefix, key path, values under which they are active, sub-space)``."""
        return []

    def sub_nodes(self) -> int:
        """How many params hang under it once spread out (counted without spreading)."""
        return 0


def _check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if not math.isfinite(low) or not math.isfinite(high):
        raise ValueError("bounds must be finite numbers")
    if low >= high:
        raise ValueError(f"low ({low}) must be below high ({high})")
    if not math.isfinite(float(high) - float(low)):
        raise ValueError(f"the range {low}..{high} is wider than a float can hold")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got {low}")
    if step is not None:
        if step <= 0:
            raise ValueError(f"step must be > 0, got {step}")
        if step > high - low:
            raise ValueError(f"step ({step}) is larger than the range {low}..{high}")


def _check_step(extent: float, step: float) -> None:
    """Refuse a step so small that value / step overflows or the values cannot be counted."""
    if extent / step > MAX_STEPS:
        raise ValueError(
            f"step {step:g} is too small for values up to {extent:g}: more than {MAX_STEPS:.0e} steps"
        )


def _index(bound: float, step: float, round_fn: Any) -> int:
    """``bound / step`` as the index of a multiple of ``step``, rounded inwards with ``round_fn``
    (``math.ceil`` for a lower bound) unless the bound is a multiple up to float rounding."""
    units = bound / step
    nearest = round(units)
    if math.isclose(units, nearest):  # as Ray's q-domains tell a multiple
        return int(nearest)
    return int(round_fn(units))


def _multiple(index: int, step: float) -> float:
    """``index * step`` as the float nearest the decimal product (3 x 0.1 is 0.3, not 0.30000000000000004)."""
    return float(Decimal(repr(float(step))) * index)


def _check_multiples(count: int, low: float, high: float, step: float, first: Any) -> None:
    """Refuse a stepped range that holds fewer than two multiples of its step (nothing to search)."""
    if count >= 2:
        return
    held = "no multiple" if count < 1 else f"one multiple ({first:g})"
    raise ValueError(
        f"[{low:g}, {high:g}] holds {held} of step {step:g}, and a stepped param takes the multiples of "
        f"step between its bounds: widen the range, change the step, or write the value as a constant"
    )


class FloatParam(_Kind):
    """A float in ``[low, high]``; ``log`` samples uniformly in log space.

    With ``step`` it takes the multiples of ``step`` that lie in ``[low, high]`` (from
    :attr:`first` to :attr:`last`), under every searcher: one rule, the one of Ray's
    ``quniform``, hyperopt's ``quniform`` and W&B (optuna counts from ``low``, so it is
    handed the aligned bounds). ``{float: [0.05, 1.0], step: 0.1}`` takes 0.1, 0.2, ..., 1.0.
    """

    kind: ClassVar[str] = "float"
    numeric: ClassVar[bool] = True
    bounds: tuple[Number, Number] = Field(alias="float", description="[low, high]")
    log: bool = False
    step: Number | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        if self.step is not None:
            _check_step(max(abs(self.low), abs(self.high)), self.step)
            first, last = self._indices()
            _check_multiples(last - first + 1, self.low, self.high, self.step, self.first)
        return self

    @property
    def low(self) -> float:
        return float(self.bounds[0])

    @property
    def high(self) -> float:
        return float(self.bounds[1])

    def _indices(self) -> tuple[int, int]:
        """The indices ``k`` of the first and last multiples ``k * step`` inside the bounds."""
        assert self.step
        return _index(self.low, self.step, math.ceil), _index(self.high, self.step, math.floor)

    @property
    def first(self) -> float:
        """The smallest value it takes: ``low``, or with a step the first multiple of step from ``low`` up."""
        if not self.step:
            return self.low
        return max(self.low, _multiple(self._indices()[0], self.step))

    @property
    def last(self) -> float:
        """The largest value it takes: ``high``, or with a step the last multiple of step from ``high`` down."""
        if not self.step:
            return self.high
        return min(self.high, _multiple(self._indices()[1], self.step))

    def _on_step(self, value: float) -> float:
        """The multiple of step nearest ``value`` between :attr:`first` and :attr:`last`."""
        assert self.step
        lowest, highest = self._indices()
        index = min(highest, max(lowest, round(value / self.step)))
        return min(self.last, max(self.first, _multiple(index, self.step)))

    def sample(self, rng: random.Random) -> float:
        first, last = self.first, self.last
        if self.log:
            value = math.exp(rng.uniform(math.log(first), math.log(last)))
        else:
            value = rng.uniform(first, last)
        return self._on_step(value) if self.step else min(last, max(first, value))

    def describe(self) -> str:
        extra = (" log" if self.log else "") + (f" step {self.step:g}" if self.step else "")
        if self.step and (self.first, self.last) != (self.low, self.high):
            extra += f" (multiples {self.first:g} .. {self.last:g})"
        return f"float [{self.low:g}, {self.high:g}]{extra}"

    @property
    def log_scale(self) -> bool:
        return self.log

    def fits(self, value: Any) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        if not self.step:
            return self.low <= value <= self.high
        return abs(self.clip(value) - value) <= 1e-9 * max(self.step, abs(value))

    def clip(self, value: Any) -> float:
        value = float(_plain(value))
        if self.step:
            return self._on_step(value)
        return min(self.high, max(self.low, value))


class IntParam(_Kind):
    """An integer in ``[low, high]``, both included; ``log`` as for floats.

    With ``step`` it takes the multiples of ``step`` in ``[low, high]``, as a float does:
    ``{int: [2, 20], step: 3}`` takes 3, 6, ..., 18 under every searcher.
    """

    kind: ClassVar[str] = "int"
    numeric: ClassVar[bool] = True
    integer: ClassVar[bool] = True
    bounds: tuple[Integer, Integer] = Field(alias="int", description="[low, high], both included")
    log: bool = False
    step: Integer | None = None

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        if self.log and self.step not in (None, 1):
            raise ValueError("log scale and a step other than 1 cannot be combined for ints")
        if self.step and self.step > 1:
            _check_multiples(self.size(), self.low, self.high, self.step, self.first)
        return self

    @property
    def low(self) -> int:
        return int(self.bounds[0])

    @property
    def high(self) -> int:
        return int(self.bounds[1])

    @property
    def first(self) -> int:
        """The smallest value it takes: the first multiple of step from ``low`` up."""
        step = self.step or 1
        return -(-self.low // step) * step

    @property
    def last(self) -> int:
        """The largest value it takes: the last multiple of step from ``high`` down."""
        step = self.step or 1
        return self.high // step * step

    def sample(self, rng: random.Random) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(self.high, int(value))
        step = self.step or 1
        return self.first + step * rng.randrange((self.last - self.first) // step + 1)

    def describe(self) -> str:
        extra = (" log" if self.log else "") + (f" step {self.step}" if self.step else "")
        if (self.first, self.last) != (self.low, self.high):
            extra += f" (multiples {self.first} .. {self.last})"
        return f"int [{self.low}, {self.high}]{extra}"

    @property
    def log_scale(self) -> bool:
        return self.log

    def finite_values(self) -> range:
        return range(self.first, self.last + 1, self.step or 1)

    def size(self) -> int:
        return (self.last - self.first) // (self.step or 1) + 1  # len() of a range stops at sys.maxsize

    def fits(self, value: Any) -> bool:
        if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
            return False
        return self.first <= value <= self.last and int(value) % (self.step or 1) == 0

    def clip(self, value: Any) -> int:
        value = int(round(_plain(value)))
        step = self.step or 1
        if step > 1:
            index, rest = divmod(value, step)
            value = (index + (2 * rest >= step)) * step  # the nearest multiple (a tie goes up)
        return min(self.last, max(self.first, value))


def _distinct(values: list[Any], what: str) -> list[Any]:
    if not values:
        raise ValueError(f"{what} needs at least one value")
    hashed: set[Any] = set()
    unhashable: list[Any] = []  # lists and mappings: compared one by one (few in practice)
    for value in values:
        try:
            twice = value in hashed
            hashed.add(value)
        except TypeError:
            twice = value in unhashable
            unhashable.append(value)
        if twice:
            raise ValueError(f"{what} lists {value!r} twice")
    return values


class _Gaussian(_Kind):
    """Shared by :class:`NormalParam` and :class:`LogNormalParam`: two numbers and an optional step."""

    numeric: ClassVar[bool] = True
    moments: tuple[Number, Number]
    step: Number | None = None

    @model_validator(mode="after")
    def _check(self) -> _Gaussian:
        if not all(math.isfinite(v) for v in self.moments):
            raise ValueError("mean and standard deviation must be finite numbers")
        if self.sd <= 0:
            raise ValueError(f"the standard deviation must be > 0, got {self.sd}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        extent = self._extent()
        if not math.isfinite(extent):
            raise ValueError(f"[{self.mean:g}, {self.sd:g}]: values would overflow a float")
        if self.step is not None:
            _check_step(extent, self.step)
        return self

    def _extent(self) -> float:
        """How far from 0 nearly every value lies (ten standard deviations); inf if beyond a float."""
        return abs(self.mean) + 10 * self.sd

    @property
    def mean(self) -> float:
        return float(self.moments[0])

    @property
    def sd(self) -> float:
        return float(self.moments[1])

    def _quantize(self, value: float) -> float:
        return round(value / self.step) * self.step if self.step else value

    def fits(self, value: Any) -> bool:
        return _is_number(value) and math.isfinite(value)


class NormalParam(_Gaussian):
    """A float drawn from Normal(mean, sd); ``step`` rounds it to a multiple of step."""

    kind: ClassVar[str] = "normal"
    moments: tuple[Number, Number] = Field(alias="normal", description="[mean, standard deviation]")

    def sample(self, rng: random.Random) -> float:
        return self._quantize(rng.gauss(self.mean, self.sd))

    def describe(self) -> str:
        return f"normal mean {self.mean:g} sd {self.sd:g}" + (f" step {self.step:g}" if self.step else "")


class LogNormalParam(_Gaussian):
    """A positive float whose natural log is Normal(mu, sigma): the median is ``exp(mu)``."""

    kind: ClassVar[str] = "lognormal"
    moments: tuple[Number, Number] = Field(alias="lognormal", description="[mu, sigma] of ln(value)")

    def _extent(self) -> float:
        exponent = self.mean + 10 * self.sd
        return math.exp(exponent) if exponent <= 700 else math.inf  # math.exp overflows just above 709

    def sample(self, rng: random.Random) -> float:
        return self._quantize(math.exp(rng.gauss(self.mean, self.sd)))

    @property
    def log_scale(self) -> bool:
        return True

    def fits(self, value: Any) -> bool:
        return super().fits(value) and value > 0

    def describe(self) -> str:
        extra = f" step {self.step:g}" if self.step else ""
        return f"lognormal ln(x) ~ N({self.mean:g}, {self.sd:g}), median {math.exp(self.mean):.3g}{extra}"


class ChoiceParam(_Kind):
    """One of ``options``, picked by the search algorithm."""

    kind: ClassVar[str] = "choice"
    options: list[Any] = Field(alias="choice")

    @model_validator(mode="after")
    def _check(self) -> ChoiceParam:
        _distinct(self.options, "choice")
        return self

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.options)

    def describe(self) -> str:
        return "choice " + ", ".join(map(str, self.options))

    def finite_values(self) -> list[Any]:
        return list(self.options)


class GridParam(_Kind):
    """Every value in turn: the run holds ``samples`` trials for each grid point."""

    kind: ClassVar[str] = "grid"
    values: list[Any] = Field(alias="grid")

    @model_validator(mode="after")
    def _check(self) -> GridParam:
        _distinct(self.values, "grid")
        return self

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.values)

    def describe(self) -> str:
        return "grid " + ", ".join(map(str, self.values))

    def finite_values(self) -> list[Any]:
        return list(self.values)


class ConstantParam(_Kind):
    """A fixed value handed to every trial."""

    kind: ClassVar[str] = "constant"
    searched: ClassVar[bool] = False
    value: Any = Field(alias="constant")

    def sample(self, rng: random.Random) -> Any:
        return self.value

    def describe(self) -> str:
        return f"constant {self.value!r}"

    def finite_values(self) -> list[Any]:
        return [self.value]

    def fits(self, value: Any) -> bool:
        return True  # filled in as declared, whatever an earlier run had


def _sub_space(space: dict[str, Any], where: str) -> dict[str, Any]:
    for name, param in space.items():
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name) or "." in name:
            raise ValueError(
                f"{where}: sub-param name {name!r}: use letters, digits, _ and -, starting with a letter or _"
            )
        if param.kind == "grid":
            raise ValueError(f"{where}: grid values are only allowed at the top level of the space ({name!r})")
    return space


class ConditionalParam(_Kind):
    """A choice whose options carry their own sub-params, active only while the option is chosen."""

    kind: ClassVar[str] = "conditional"
    nested: ClassVar[bool] = True
    options: dict[Union[str, int], Union[dict[str, "Param"], None]] = Field(
        alias="choice", description="option -> its sub-params (an empty mapping or null for none)"
    )

    @model_validator(mode="after")
    def _check(self) -> ConditionalParam:
        if not self.options:
            raise ValueError("choice needs at least one option")
        for option, sub in self.options.items():
            _sub_space(sub or {}, f"option {option!r}")
        return self

    @property
    def values(self) -> list[Any]:
        return list(self.options)

    def sub_space(self, option: Any) -> dict[str, Any]:
        return self.options[option] or {}

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.values)

    def describe(self) -> str:
        return "choice " + ", ".join(
            f"{o} ({len(s or {})} sub-params)" if s else str(o) for o, s in self.options.items()
        )

    def finite_values(self) -> list[Any]:
        return self.values

    def size(self) -> int | None:
        sizes = [space_size(sub or {}) for sub in self.options.values()]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]

    def branches(self, name: str, path: str) -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
        return [(f"{name}.", f"{path}.choice.{option}", (option,), sub or {}) for option, sub in self.options.items()]

    def sub_nodes(self) -> int:
        return sum(count_nodes(sub or {}) for sub in self.options.values())


class CountParam(_Kind):
    """A number of layers (an int in ``[low, high]``) with the sub-params in ``each`` for every active layer."""

    kind: ClassVar[str] = "count"
    numeric: ClassVar[bool] = True
    integer: ClassVar[bool] = True
    nested: ClassVar[bool] = True
    bounds: tuple[Integer, Integer] = Field(alias="count", description="[low, high] layers, both included")
    each: dict[str, "Param"] = Field(description="the params of one layer, repeated for every active layer")

    @model_validator(mode="after")
    def _check(self) -> CountParam:
        if not 0 <= self.low < self.high or self.high > 100:
            raise ValueError(f"count needs 0 <= low < high <= 100, got [{self.low}, {self.high}]")
        if not self.each:
            raise ValueError("count needs at least one param in 'each'")
        _sub_space(self.each, "each")
        check_nodes({"": self})
        return self

    @property
    def low(self) -> int:
        return int(self.bounds[0])

    @property
    def high(self) -> int:
        return int(self.bounds[1])

    @property
    def values(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.low, self.high)

    def describe(self) -> str:
        return f"count [{self.low}, {self.high}], each with " + ", ".join(self.each)

    def finite_values(self) -> list[int]:
        return self.values

    def size(self) -> int | None:
        each = space_size(self.each)
        return None if each is None else sum(each**layers for layers in self.values)

    def fits(self, value: Any) -> bool:
        return _is_number(value) and float(value).is_integer() and self.low <= value <= self.high

    def clip(self, value: Any) -> int:
        return min(self.high, max(self.low, int(round(_plain(value)))))

    def branches(self, name: str, path: str) -> list[tuple[str, str, tuple[Any, ...], dict[str, Any]]]:
        return [
            (f"{name}.{i}.", f"{path}.each", tuple(v for v in self.values if v >= i), self.each)
            for i in range(1, self.high + 1)
        ]

    def sub_nodes(self) -> int:
        return self.high * count_nodes(self.each)


KINDS = ("float", "int", "normal", "lognormal", "choice", "grid", "constant", "count")


def _kind_of(raw: Any) -> str:
    if isinstance(raw, BaseModel):
        return getattr(raw, "kind", "constant")
    if isinstance(raw, dict):
        named = [k for k in KINDS if k in raw]
        if named == ["choice"] and isinstance(raw["choice"], dict):
            return "conditional"
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            return "ambiguous"
    return "bare"


def _wrap_bare(raw: Any) -> Any:
    return {"constant": raw}


class _Ambiguous(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _fail(cls, raw: Any) -> Any:
        named = [k for k in KINDS if k in raw]
        raise ValueError(f"give one kind per param, not {' and '.join(named)}")


Param = Annotated[
    Union[
        Annotated[FloatParam, Tag("float")],
        Annotated[IntParam, Tag("int")],
        Annotated[NormalParam, Tag("normal")],
        Annotated[LogNormalParam, Tag("lognormal")],
        Annotated[ChoiceParam, Tag("choice")],
        Annotated[ConditionalParam, Tag("conditional")],
        Annotated[CountParam, Tag("count")],
        Annotated[GridParam, Tag("grid")],
        Annotated[ConstantParam, Tag("constant")],
        Annotated[Annotated[ConstantParam, BeforeValidator(_wrap_bare)], Tag("bare")],
        Annotated[_Ambiguous, Tag("ambiguous")],
    ],
    Discriminator(_kind_of),
]
"""One search-space entry: ``{float: …}``, ``{int: …}``, ``{normal: …}``, ``{lognormal: …}``, ``{choice: …}``, ``{grid: …}``, ``{count: …}`` or a constant."""

ConditionalParam.model_rebuild()
CountParam.model_rebuild()

KIND_MODELS = (FloatParam, IntParam, NormalParam, LogNormalParam, ChoiceParam, GridParam, ConstantParam, CountParam)
"""The model of each kind an experiment file spells out (a conditional choice is spelled as a choice)."""

# ---------------------------------------------------------------------------
# The space as a flat list of nodes


@dataclass(frozen=True)
class Node:
    """One param of a (possibly conditional) space, flattened.

    ``name`` is the config key (``optimizer.beta1``), ``label`` is unique among all nodes
    (the same name declared under two options gets two labels) and is what searchers see,
    ``path`` is the key path in the experiment file, and ``when`` lists the conditions
    ``(ancestor name, allowed values)`` that must all hold for the node to be active.
    Conditional and count params are nodes too: their value is the option or the count.
    """

    name: str
    label: str
    path: str
    param: Any
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    parent: str | None = None  # the label of the conditional or count param this one hangs under

    def active(self, config: dict[str, Any]) -> bool:
        return all(name in config and config[name] in allowed for name, allowed in self.when)

    @property
    def values(self) -> Sequence[Any] | None:
        """The finite values this node takes, or None for a range of floats."""
        return self.param.finite_values()


def count_nodes(space: dict[str, Any]) -> int:
    """How many nodes :func:`flatten_space` gives for ``space``, counted without building them."""
    return sum(1 + param.sub_nodes() for param in space.values())


def check_nodes(space: dict[str, Any]) -> None:
    """Refuse a space that spreads out to more than :data:`MAX_NODES` params (counts inside counts)."""
    nodes = count_nodes(space)
    if nodes > MAX_NODES:
        raise ValueError(f"the space spreads out to {nodes} params (sub-params once per layer); at most {MAX_NODES}")


def _flatten(
    space: dict[str, Any], prefix: str, path: str, when: tuple, parent: str | None, out: list[Node], labels: set[str]
) -> None:
    for key, param in space.items():
        name = f"{prefix}{key}"
        key_path = f"{path}.{key}"
        label = name if name not in labels else f"{name}[{len(out)}]"
        labels.add(label)
        out.append(Node(name, label, key_path, param, when, parent))
        for sub_prefix, sub_path, allowed, sub in param.branches(name, key_path):
            _flatten(sub, sub_prefix, sub_path, when + ((name, allowed),), label, out, labels)


def flatten_space(space: dict[str, Any]) -> list[Node]:
    """The nodes of ``space`` (name -> param) in order: every parent before its sub-params.

    Example:
        >>> space = {"opt": ConditionalParam(choice={"adam": {"beta1": FloatParam(**{"float": [0.8, 0.99]})}, "sgd": None})}
        >>> [(n.name, n.when) for n in flatten_space(space)]
        [('opt', ()), ('opt.beta1', (('opt', ('adam',)),))]
    """
    check_nodes(space)
    out: list[Node] = []
    _flatten(space, "", "space", (), None, out, set())
    return out


def is_conditional(space: dict[str, Any]) -> bool:
    """Whether ``space`` has params that are active only under a condition."""
    return any(p.nested for p in space.values())


def resolve(nodes: list[Node], values: dict[str, Any]) -> dict[str, Any]:
    """The trainable's config from values by node label: active params only, constants filled in."""
    config: dict[str, Any] = {}
    for node in nodes:
        if not node.active(config):
            continue
        if not node.param.searched:
            config[node.name] = node.param.value  # a constant
        elif node.label in values:
            config[node.name] = values[node.label]
    return config


def sample_config(space: dict[str, Any], seed: int | None = None, rng: random.Random | None = None) -> dict[str, Any]:
    """Draw one config from ``space`` (name -> param) without any search algorithm.

    Only the params whose conditions hold are drawn (and present).

    Example:
        >>> sample_config({"lr": FloatParam(**{"float": [0.1, 0.2]}), "depth": ConstantParam(constant=2)}, seed=0)["depth"]
        2
    """
    rng = rng or random.Random(seed)
    config: dict[str, Any] = {}
    for node in flatten_space(space):
        if node.active(config):
            config[node.name] = node.param.sample(rng)
    return config


def space_size(space: dict[str, Any]) -> int | None:
    """How many distinct configs ``space`` holds, or None when a float range makes it infinite.

    Counted from the structure (an option's sub-space adds, a layer's multiplies), never by
    walking the configs, so a space of 10**100 configs is counted at once.
    """
    total = 1
    for param in space.values():
        size = param.size()
        if size is None:
            return None
        total *= size
    return total


def enumerate_configs(space: dict[str, Any], limit: int = 20) -> list[dict[str, Any]]:
    """The first ``limit`` configs of a finite space, in order (conditions respected).

    Example:
        >>> enumerate_configs({"a": ChoiceParam(choice=[1, 2]), "b": ConstantParam(constant="x")})
        [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
    """
    nodes = flatten_space(space)
    out: list[dict[str, Any]] = []

    def walk(config: dict[str, Any], index: int) -> None:
        while index < len(nodes) and not nodes[index].active(config):
            index += 1
        if len(out) >= limit:
            return
        if index == len(nodes):
            out.append(config)
            return
        node = nodes[index]
        for value in node.values or []:
            walk({**config, node.name: value}, index + 1)
            if len(out) >= limit:
                return

    if space_size(space) is not None:
        walk({}, 0)
    return out
