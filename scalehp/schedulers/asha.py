"""ASHA, asynchronous successive halving (Li et al., 2020), as Ray's ``AsyncHyperBandScheduler`` runs it.

A bracket has rungs at ``grace_steps * reduction_factor**k`` steps, or at the steps ``rungs``
lists (other tools place them otherwise: Determined at ``max_length / divisor**k``, 1, 6, 25 for
100 steps and divisor 4, where Ray's rule gives 1, 4, 16, 64). The first time a trial
reaches a rung it is compared with every trial recorded there before it: it stops when its
value is worse than the ``1 - 1/reduction_factor`` percentile of theirs, and is recorded there
either way. A trial reaching ``budget.max_steps`` stops. With several brackets (each starting
one rung higher) a trial is assigned to one at random, weighted towards the ones with more
rungs as Ray weighs them, from a generator seeded with the experiment seed and the trial id:
the same trial lands in the same bracket whatever the order of trials, and after a restore.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from scalehp.schedulers.base import (
    CONTINUE,
    STOP,
    Core,
    Decision,
    Options,
    Preview,
    Rung,
    Settings,
    finite_value,
    reported,
    sign,
)
from scalehp.space import Integer, Number

NAME = "asha"
NEEDS_CHECKPOINTS: str | None = None  # stopped trials never resume


MAX_RUNGS = 100
"""The most rungs a bracket may have, explicit or from grace_steps and reduction_factor (a factor
close to 1 over a long budget would make millions)."""


def rung_count(max_steps: int, grace: float, rf: float) -> int:
    """How many steps ``grace * rf**k`` bracket 0 holds up to ``max_steps`` (Ray's count)."""
    return int(math.log(max_steps / grace) / math.log(rf) + 1)


class AshaOptions(Options):
    """Asynchronous successive halving (Li et al., 2020)."""

    grace_steps: Integer = Field(1, ge=1, description="steps before a trial can first be stopped")
    reduction_factor: Number = Field(3.0, gt=1, le=100, description="keep 1/reduction_factor at each rung")
    brackets: Integer = Field(1, ge=1, le=10)
    rungs: tuple[Integer, ...] | None = Field(
        None,
        min_length=1,
        max_length=MAX_RUNGS,
        description="the steps trials are compared at, ascending and below budget.max_steps (default: grace_steps * "
        "reduction_factor**k); with brackets, bracket k starts at the k-th (one past the last: no rung)",
    )


@dataclass(frozen=True)
class AshaSettings(Settings):
    """ASHA's plan options."""

    grace_steps: int = 1
    reduction_factor: float = 3.0
    brackets: int = 1
    rungs: tuple[int, ...] | None = None  # explicit rung steps (else grace_steps * reduction_factor**k)


def preview(experiment: Any, trials: int) -> Preview:
    """Rungs of bracket 0 and the steps expected under synchronous halving.

    Raises:
        SpecError: ``grace_steps`` above ``budget.max_steps``; ``rungs`` out of order, at or
            above ``budget.max_steps``, given with ``grace_steps``, or fewer than the brackets need.
    """
    options = experiment.scheduler.asha
    max_steps, rf = experiment.budget.max_steps, options.reduction_factor
    if options.rungs is not None:
        milestones = _checked_rungs(experiment, options)
        grace = milestones[0]
    else:
        grace = options.grace_steps
        if grace > max_steps:
            raise experiment.error(
                "scheduler.asha.grace_steps",
                f"grace_steps ({grace}) is above budget.max_steps ({max_steps}): no trial could ever be stopped",
            )
        # Ray's bracket 0: milestones grace * rf**k below max_steps
        count = rung_count(max_steps, grace, rf)
        if count > MAX_RUNGS:
            raise experiment.error(
                "scheduler.asha.reduction_factor",
                f"reduction_factor {rf:.10g} from grace_steps {grace} to budget.max_steps {max_steps} makes {count:,} "
                f"rungs, more than {MAX_RUNGS}: raise reduction_factor or grace_steps",
            )
        milestones = tuple(int(math.ceil(s)) for s in (grace * rf**k for k in range(count)) if s < max_steps)
    rungs = [Rung(step=m, trials=max(1, math.ceil(trials / rf**k))) for k, m in enumerate(milestones)]
    rungs.append(Rung(step=max_steps, trials=max(1, math.ceil(trials / rf ** len(milestones)))))
    expected, previous = 0, 0
    for rung in rungs:
        expected += rung.trials * (rung.step - previous)
        previous = rung.step
    settings = AshaSettings(
        max_steps=max_steps, grace_steps=grace, reduction_factor=rf, brackets=options.brackets,
        rungs=milestones if options.rungs is not None else None,
    )
    return Preview(
        settings=settings, expected_steps=expected, keep_checkpoints=experiment.checkpoints.keep, rungs=tuple(rungs)
    )


def _checked_rungs(experiment: Any, options: AshaOptions) -> tuple[int, ...]:
    """Explicit ``rungs``, checked against the budget and the other options."""
    key, max_steps = "scheduler.asha.rungs", experiment.budget.max_steps
    rungs = tuple(int(r) for r in options.rungs)
    if "grace_steps" in options.model_fields_set:
        raise experiment.error("scheduler.asha.grace_steps", "give rungs or grace_steps, not both (the first rung is the grace)")
    if any(r < 1 for r in rungs) or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise experiment.error(key, f"rungs must be steps from 1 up, each above the one before, got {list(rungs)}")
    if rungs[-1] >= max_steps:
        raise experiment.error(
            key, f"every rung must be below budget.max_steps ({max_steps}), where a trial ends anyway; got {rungs[-1]}"
        )
    if options.brackets > len(rungs) + 1:  # (the last may have none: its trials run to max_steps)
        raise experiment.error(
            "scheduler.asha.brackets", f"{options.brackets} brackets need at least {options.brackets - 1} rungs, got {len(rungs)}"
        )
    return rungs


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s scheduler line."""
    o: AshaSettings = plan.scheduler_options
    if o.rungs is not None:
        return [
            f"scheduler   asha: rungs at {', '.join(map(str, o.rungs))} steps, reduction factor {o.reduction_factor:g}, "
            f"{o.brackets} bracket{'s' if o.brackets > 1 else ''}"
        ]
    return [
        f"scheduler   asha: grace {o.grace_steps} steps, reduction factor {o.reduction_factor:g}, "
        f"{o.brackets} bracket{'s' if o.brackets > 1 else ''}"
    ]


class _Recorded(dict):
    """A rung's trial id -> reward, with the rewards also kept sorted (cut-offs in O(1), not O(n))."""

    def __init__(self) -> None:
        super().__init__()
        self.sorted: list[float] = []

    def __setitem__(self, trial_id: str, reward: float) -> None:
        if trial_id in self:
            del self.sorted[bisect.bisect_left(self.sorted, self[trial_id])]
        bisect.insort(self.sorted, reward)
        super().__setitem__(trial_id, reward)


def percentile(ordered: list[float], p: float) -> float:
    """``numpy.nanpercentile(values, p)`` (the ``linear`` method) of sorted, NaN-free values, to the
    last bit: numpy's own virtual index, floor and interpolation, done on the two values needed."""
    n = len(ordered)
    q = p / 100
    virtual = (n - 1) * q
    below = math.floor(virtual)
    gamma = virtual - below
    a = ordered[min(max(below, 0), n - 1)]
    b = ordered[min(max(below + 1, 0), n - 1)]
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


class _Bracket:
    """Ray's ``_Bracket``: rungs highest first, each holding trial id -> reward (``sign * value``)."""

    def __init__(self, grace: int, max_steps: int, rf: float, s: int, rungs: tuple[int, ...] | None = None) -> None:
        self.rf = rf
        if rungs is not None:  # explicit: bracket s starts at the s-th
            self.rungs: list[tuple[float, _Recorded]] = [(float(m), _Recorded()) for m in reversed(rungs[s:])]
            return
        count = int(np.log(max_steps / grace) / np.log(rf) - s + 1)
        self.rungs = [(grace * rf ** (k + s), _Recorded()) for k in reversed(range(count))]

    def steps(self, max_steps: int) -> tuple[int, ...]:
        """The rung steps below ``max_steps``, ascending (at ``max_steps`` a trial ends)."""
        return tuple(sorted(s for s in {int(math.ceil(m)) for m, _ in self.rungs} if s < max_steps))

    def cutoff(self, recorded: _Recorded) -> float | None:
        if not recorded:
            return None
        return float(percentile(recorded.sorted, (1 - 1 / self.rf) * 100))  # (rewards are finite: no NaN)

    def rung(self, trial_id: str, step: float) -> tuple[float, dict[str, float]] | None:
        """The rung this report is compared at: the highest one reached that the trial is not recorded in."""
        for milestone, recorded in self.rungs:
            if step >= milestone and trial_id not in recorded:
                return milestone, recorded
        return None


class AshaCore(Core):
    """ASHA's decisions: Ray's ``AsyncHyperBandScheduler`` rule, with NaN and inf ranked worst."""

    def __init__(self, settings: AshaSettings, mode: str, seed: int | None = None) -> None:
        self.settings = settings
        self.mode = mode
        self._sign = sign(mode)
        self._brackets = [
            _Bracket(settings.grace_steps, settings.max_steps, settings.reduction_factor, s, settings.rungs)
            for s in range(settings.brackets)
        ]
        sizes = np.array([len(b.rungs) for b in self._brackets])
        probs = np.e ** (sizes - sizes.max())
        self._weights = probs / probs.sum()
        self._salt = str(random.SystemRandom().getrandbits(64) if seed is None else seed)
        self._bracket: dict[str, int] = {}  # trial id -> index of its bracket
        self._last: dict[str, tuple[float, float]] = {}  # trial id -> (step, value decided with) last reported

    def add(self, trial_id: str) -> int:
        """Assign the trial its bracket (Ray does when the trial is added); returns the bracket's index."""
        if trial_id not in self._bracket:
            self._bracket[trial_id] = self.bracket_of(trial_id)
        return self._bracket[trial_id]

    def bracket_of(self, trial_id: str) -> int:
        """The bracket a trial is drawn into: Ray's weights, a generator seeded by (seed, trial id)."""
        if len(self._brackets) == 1:
            return 0
        digest = hashlib.sha256(f"{self._salt}:{trial_id}".encode()).digest()
        rng = np.random.RandomState(int.from_bytes(digest[:4], "little"))
        return int(rng.choice(len(self._brackets), p=self._weights))

    def decides_at(self, trial_id: str) -> tuple[int, ...]:
        """The rung steps of the trial's bracket below ``max_steps`` (at ``max_steps`` a trial ends)."""
        return self._brackets[self.add(trial_id)].steps(self.settings.max_steps)

    def report(self, trial_id: str, step: int, value: float | None) -> Decision:
        index = self.add(trial_id)
        if value is None or step is None:  # Ray decides nothing on a result without the metric
            return Decision(CONTINUE)
        decided = finite_value(value, self.mode)
        self._last[trial_id] = (step, decided)
        if step >= self.settings.max_steps:
            return Decision(STOP)
        bracket = self._brackets[index]
        found = bracket.rung(trial_id, step)
        if found is None:
            return Decision(CONTINUE)
        milestone, recorded = found
        cutoff = bracket.cutoff(recorded)
        reward = self._sign * decided
        action = STOP if cutoff is not None and reward < cutoff else CONTINUE
        recorded[trial_id] = reward
        event = {
            "trial_id": trial_id,
            "step": step,
            "scheduler": NAME,
            "action": action,
            "rung": int(math.ceil(milestone)),
            "value": value,
            "cutoff": None if cutoff is None else reported(cutoff * self._sign),
        }
        return Decision(action, (event,))

    def remove(self, trial_id: str, *, completed: bool = True, last: tuple[int, float | None] | None = None) -> None:
        """As Ray: a completed trial's last result is recorded at a rung it passed unrecorded (no event).

        ``last``: (step, value) of the result the trial ended with, when the runtime has it.
        """
        known = self._last.pop(trial_id, None)
        if last is not None and last[0] is not None and last[1] is not None:
            known = (last[0], finite_value(last[1], self.mode))
        last = known
        index = self._bracket.pop(trial_id, None)
        if completed and last is not None and index is not None:
            found = self._brackets[index].rung(trial_id, last[0])
            if found is not None:
                found[1][trial_id] = self._sign * last[1]

    def restore(self, events: list[dict]) -> None:
        """Rungs from the continue/stop rows (rung, value); a stopped trial's records stay, the trial ends."""
        for row in events:
            if row.get("scheduler") != NAME or row.get("action") not in (CONTINUE, STOP) or row.get("rung") is None:
                continue
            trial_id = row["trial_id"]
            bracket = self._brackets[self.bracket_of(trial_id)]
            decided = finite_value(row.get("value"), self.mode)
            for milestone, recorded in bracket.rungs:
                if int(math.ceil(milestone)) == int(row["rung"]) and decided is not None:
                    recorded[trial_id] = self._sign * decided
                    break
            if row["action"] == STOP:
                self._bracket.pop(trial_id, None)
                self._last.pop(trial_id, None)
            else:
                self._bracket[trial_id] = self.bracket_of(trial_id)


def core(settings: AshaSettings, mode: str, seed: int | None = None) -> AshaCore:
    return AshaCore(settings, mode, seed)


def bracket_steps(settings: AshaSettings) -> list[tuple[int, ...]]:
    """Each bracket's rung steps below ``max_steps``, bracket 0 first: what the core decides at.

    Example:
        >>> bracket_steps(AshaSettings(max_steps=60, grace_steps=2, reduction_factor=3.0, brackets=4))
        [(2, 6, 18, 54), (6, 18, 54), (18, 54), (54,)]
    """
    return [
        _Bracket(settings.grace_steps, settings.max_steps, settings.reduction_factor, s, settings.rungs).steps(
            settings.max_steps
        )
        for s in range(settings.brackets)
    ]


__all__ = [
    "MAX_RUNGS",
    "AshaCore",
    "AshaOptions",
    "AshaSettings",
    "bracket_steps",
    "core",
    "describe",
    "preview",
    "rung_count",
]
