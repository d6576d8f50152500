"""What every scheduler module shares: decisions, the core interface, the plan preview, NaN ranking.

A scheduler lives in one module of :mod:`scalehp.schedulers` (``fifo``, ``asha``, ...): its
options as the experiment file writes them, the typed options the plan carries, the preview
``scalehp plan`` shows, what it needs of a trial, and a *core*: its decisions as plain Python,
deterministic given the options, the metric's mode, the experiment seed and the order of calls.
No module here imports Ray; the runner wraps these cores in Ray's scheduler interface.

A NaN or infinite metric is the worst value, never ignored: cores decide with a finite stand-in
for it (:func:`finite_value`), and event rows keep what the trial reported; a cut-off computed
from a stand-in is recorded as the worst infinity (:func:`reported`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from pydantic import BaseModel, ConfigDict

CONTINUE, STOP, PAUSE, EXPLOIT = "continue", "stop", "pause", "exploit"

WORST = 1e300
"""The finite stand-in for a NaN or infinite value (a percentile of inf and -inf is NaN)."""

EVENT_KEYS = (
    "trial_id",
    "step",
    "scheduler",
    "action",
    "rung",
    "bracket",
    "value",
    "cutoff",
    "donor_trial_id",
    "donor_step",
    "donor_value",
    "old_params",
    "new_params",
)
"""The keys an event row may have (the events table less run_id, experiment and time)."""


def worst(mode: str) -> float:
    """The stand-in, in the metric's own terms: large for ``min``, very negative for ``max``."""
    return WORST if mode == "min" else -WORST


def finite_value(value: float | None, mode: str) -> float | None:
    """The value a core decides with: NaN and ±inf become the worst finite value, None stays None."""
    if isinstance(value, (int, float)) and not math.isfinite(value):
        return worst(mode)
    return value


def reported(value: float | None) -> float | None:
    """A value decided with, in the metric's terms: the stand-in becomes the worst infinity it stood for."""
    if value is None or not abs(value) >= WORST:  # (NaN stays NaN)
        return value
    return math.copysign(math.inf, value)


def finite(result: dict, metric: str, mode: str) -> dict:
    """The result with a NaN or infinite metric replaced by the worst finite value."""
    value = result.get(metric) if result else None
    if isinstance(value, (int, float)) and not math.isfinite(value):
        return {**result, metric: worst(mode)}
    return result


def sign(mode: str) -> float:
    """+1 where larger is better (``max``), -1 for ``min``: ``sign * value`` is a reward (Ray's metric_op)."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return 1.0 if mode == "max" else -1.0


@dataclass(frozen=True)
class Decision:
    """A core's answer to a report: the action, and the event rows that explain it.

    ``donor`` and ``config`` are set by the population cores on ``exploit``: the trial to copy
    and the explored config to resume with. ``others`` are decisions taken at the same time about
    other, paused trials, as (trial id, ``continue`` or ``stop``): Hyperband halving a bracket
    resumes the paused trials it keeps and stops the rest.
    """

    action: str
    events: tuple[dict, ...] = ()
    donor: str | None = None
    config: dict[str, Any] | None = None
    others: tuple[tuple[str, str], ...] = ()


class Core:
    """One scheduler's decisions; pure, deterministic given (options, mode, seed) and the order of calls."""

    def report(self, trial_id: str, step: int, value: float | None) -> Decision:
        """A trial reported ``value`` at ``step``: what it does next."""
        return Decision(CONTINUE)

    def remove(
        self, trial_id: str, *, completed: bool = True, last: tuple[int, float | None] | None = None
    ) -> Decision | None:
        """The trial ended; ``completed`` (finished or stopped while running, Ray's ``on_trial_complete``)
        feeds its last result once more as Ray does (``last``: (step, value) of that result, when the
        runtime has it), ``False`` (an error, or removed while paused) does not.

        Returns what the end decided about other trials (Hyperband: a bracket waiting on this trial
        halves), or None."""
        return None

    def restore(self, events: list[dict]) -> None:
        """Rebuild the state from recorded event rows, in recorded order."""

    def decides_at(self, trial_id: str) -> tuple[int, ...] | None:
        """The steps at which this core may decide anything but ``continue`` about the trial (the
        swarm runtime asks only there; ``max_steps`` ends a trial without asking), or None: any step."""
        return None


class Options(BaseModel):
    """The experiment file's options of one scheduler (strict, frozen, as every model of the file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class Settings:
    """What the plan carries of a scheduler's options, with defaults resolved against the experiment."""

    max_steps: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``plan.json`` as ``scheduler_options``."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    return value


@dataclass(frozen=True)
class Rung:
    """One ASHA rung: the step at which trials are compared, and how many get there."""

    step: int
    trials: int  # expected to reach this step under synchronous halving (ASHA may promote a few more)


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: trials it starts with and the steps at which it halves."""

    index: int
    trials: int
    rungs: tuple[int, ...]  # steps at which the bracket keeps 1/reduction_factor of its trials


@dataclass(frozen=True)
class Preview:
    """What the compiler adds to the plan for a scheduler: its settings and what ``scalehp plan`` shows."""

    settings: Settings
    expected_steps: int
    keep_checkpoints: int | None
    rungs: tuple[Rung, ...] = ()
    brackets: tuple[Bracket, ...] = ()
    perturbation_steps: tuple[int, ...] = ()
    warnings: tuple[str, ...] = ()


MODEL_BASED = ("hyperopt", "optuna")


__all__ = [
    "CONTINUE",
    "EVENT_KEYS",
    "EXPLOIT",
    "MODEL_BASED",
    "PAUSE",
    "STOP",
    "WORST",
    "Bracket",
    "Core",
    "Decision",
    "Options",
    "Preview",
    "Rung",
    "Settings",
    "finite",
    "finite_value",
    "reported",
    "sign",
    "worst",
]
