"""Parameter kinds of a search space.

In an experiment file each entry of ``space`` is one of::

    lr:        {float: [1.0e-4, 1.0e-1], log: true}     # continuous, optional log and step
    hidden:    {int: [16, 256], log: true, step: 1}     # integers, both bounds included
    optimizer: {choice: [adam, sgd]}                    # sampled by the search algorithm
    seed:      {grid: [0, 1, 2]}                        # every value, times `budget.samples`
    epochs: 3                                           # anything else is a constant

The classes here are plain data: they know how to check themselves, sample a value
with a ``random.Random`` (for ``scalehp try`` and ``LocalTrial``) and describe
themselves. Turning them into Ray Tune domains is the runner's job.
"""

from __future__ import annotations

import math
import random
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, model_validator


def _number(value: Any) -> Any:
    # YAML strings such as "0.1" or booleans must never pass as numbers.
    if isinstance(value, (bool, str)):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _integer(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"expected an integer, got {value!r}")
    return value


Number = Annotated[float, BeforeValidator(_number)]
Integer = Annotated[int, BeforeValidator(_integer)]


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: ClassVar[str] = ""

    def sample(self, rng: random.Random) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


def _check_bounds(low: float, high: float, log: bool, step: float | None) -> None:
    if not math.isfinite(low) or not math.isfinite(high):
        raise ValueError("bounds must be finite numbers")
    if low >= high:
        raise ValueError(f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got {low}")
    if step is not None:
        if step <= 0:
            raise ValueError(f"step must be > 0, got {step}")
        if step > high - low:
            raise ValueError(f"step ({step}) is larger than the range {low}..{high}")


class FloatParam(_Kind):
    """A float in ``[low, high]``; ``log`` samples uniformly in log space; ``step`` quantizes."""

    kind: ClassVar[str] = "float"
    bounds: tuple[Number, Number] = Field(alias="float", description="[low, high]")
    log: bool = False
    step: Number | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        return self

    @property
    def low(self) -> float:
        return float(self.bounds[0])

    @property
    def high(self) -> float:
        return float(self.bounds[1])

    def sample(self, rng: random.Random) -> float:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        if self.step:
            value = min(self.high, max(self.low, round(value / self.step) * self.step))
        return value

    def describe(self) -> str:
        extra = (" log" if self.log else "") + (f" step {self.step:g}" if self.step else "")
        return f"float [{self.low:g}, {self.high:g}]{extra}"


class IntParam(_Kind):
    """An integer in ``[low, high]``, both included; ``log`` and ``step`` as for floats."""

    kind: ClassVar[str] = "int"
    bounds: tuple[Integer, Integer] = Field(alias="int", description="[low, high], both included")
    log: bool = False
    step: Integer | None = None

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_bounds(self.low, self.high, self.log, self.step)
        if self.log and self.step not in (None, 1):
            raise ValueError("log scale and a step other than 1 cannot be combined for ints")
        return self

    @property
    def low(self) -> int:
        return int(self.bounds[0])

    @property
    def high(self) -> int:
        return int(self.bounds[1])

    def sample(self, rng: random.Random) -> int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(self.high, int(value))
        step = self.step or 1
        return self.low + step * rng.randrange((self.high - self.low) // step + 1)

    def describe(self) -> str:
        extra = (" log" if self.log else "") + (f" step {self.step}" if self.step else "")
        return f"int [{self.low}, {self.high}]{extra}"


def _distinct(values: list[Any], what: str) -> list[Any]:
    if not values:
        raise ValueError(f"{what} needs at least one value")
    seen = []
    for value in values:
        if value in seen:
            raise ValueError(f"{what} lists {value!r} twice")
        seen.append(value)
    return values


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


class ConstantParam(_Kind):
    """A fixed value handed to every trial."""

    kind: ClassVar[str] = "constant"
    value: Any = Field(alias="constant")

    def sample(self, rng: random.Random) -> Any:
        return self.value

    def describe(self) -> str:
        return f"constant {self.value!r}"


KINDS = ("float", "int", "choice", "grid", "constant")


def _kind_of(raw: Any) -> str:
    if isinstance(raw, BaseModel):
        return getattr(raw, "kind", "constant")
    if isinstance(raw, dict):
        named = [k for k in KINDS if k in raw]
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
        Annotated[ChoiceParam, Tag("choice")],
        Annotated[GridParam, Tag("grid")],
        Annotated[ConstantParam, Tag("constant")],
        Annotated[Annotated[ConstantParam, BeforeValidator(_wrap_bare)], Tag("bare")],
        Annotated[_Ambiguous, Tag("ambiguous")],
    ],
    Discriminator(_kind_of),
]
"""One search-space entry: ``{float: …}``, ``{int: …}``, ``{choice: …}``, ``{grid: …}`` or a constant."""


def sample_config(space: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """Draw one config from ``space`` (name -> param) without any search algorithm.

    Example:
        >>> sample_config({"lr": FloatParam(**{"float": [0.1, 0.2]}), "depth": ConstantParam(constant=2)}, seed=0)["depth"]
        2
    """
    rng = random.Random(seed)
    return {name: param.sample(rng) for name, param in space.items()}
