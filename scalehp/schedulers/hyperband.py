"""Synchronous Hyperband (Li et al., 2018), as Ray's ``HyperBandScheduler`` runs it.

The core owns the brackets, as Ray's scheduler does: a new trial joins the current bracket
until it is full (Ray's order: bracket ``s = 0, 1, ...`` of a band, ``s = 0`` running its
trials to ``max_steps`` without halving), runs until the bracket's next rung and is paused
there; when every live trial of the bracket has reached the rung, the bracket halves: its
live trials ranked by their last value (NaN and inf worst), the best ``ceil(n / eta)``
continue (paused ones are resumed), the rest stop. A bracket whose last rung lies below
``max_steps`` (Ray rounds rungs down) stops its trials there. ``tests/test_scheduler_cores``
drives this core and Ray's ``HyperBandScheduler`` with the same reports and compares every
decision, the other trials' included.

``scalehp simulate`` runs on this core. The Tune runtime still lets Ray's class hold the
brackets (it pauses and resumes the trials) and takes only the halving from here
(:meth:`HyperbandCore.halve`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from scalehp.schedulers.base import (
    CONTINUE,
    MODEL_BASED,
    PAUSE,
    STOP,
    Bracket,
    Core,
    Decision,
    Options,
    Preview,
    Settings,
    finite_value,
    reported,
    sign,
)
from scalehp.space import Number

NAME = "hyperband"
NEEDS_CHECKPOINTS: str | None = "pauses trials and resumes them from checkpoints"


class HyperbandOptions(Options):
    """Synchronous Hyperband (Li et al., 2018): brackets of successive halving, paused trials resumed."""

    reduction_factor: Number = Field(3.0, gt=1, le=100, description="keep 1/reduction_factor at each rung")


@dataclass(frozen=True)
class HyperbandSettings(Settings):
    """Hyperband's plan options."""

    reduction_factor: float = 3.0
    brackets: int = 1


def preview(experiment: Any, trials: int) -> Preview:
    """Ray's brackets, and the steps expected when the run's trials fill them in order.

    Raises:
        SpecError: a reduction factor above ``budget.max_steps``.
    """
    options = experiment.scheduler.hyperband
    max_steps = experiment.budget.max_steps
    eta = options.reduction_factor
    # Ray's HyperBandScheduler: s_max + 1 brackets; bracket s starts n0 trials at r0 steps
    s_max_1 = int(round(math.log(max_steps) / math.log(eta))) + 1
    brackets = []
    for s in range(s_max_1):
        r0 = int(max_steps * eta ** (-s))
        if r0 == 0:
            continue
        n0 = int(math.ceil(s_max_1 / (s + 1) * eta**s))
        rungs, r = [r0], r0
        for _ in range(s):
            r = int(min(r * eta, max_steps))
            rungs.append(r)
        brackets.append(Bracket(index=s, trials=n0, rungs=tuple(rungs)))
    if max_steps < eta:
        raise experiment.error(
            "scheduler.hyperband.reduction_factor",
            f"reduction_factor ({eta:g}) is above budget.max_steps ({max_steps}): hyperband would never halve",
        )
    # expected steps: fill brackets in order with the run's trials, halving at each rung
    expected, left = 0, trials
    while left > 0:
        for bracket in brackets:
            if left <= 0:
                break
            n = min(bracket.trials, left)
            left -= n
            previous = 0
            for rung in bracket.rungs:
                expected += n * (rung - previous)
                previous = rung
                n = max(1, math.ceil(n / eta))
    warnings = []
    first = brackets[0].trials  # bracket 0 runs its trials to max_steps without halving
    tune = getattr(experiment, "runtime_name", "tune") == "tune"  # (a swarm's paused trial frees its worker)
    if tune and experiment.concurrency is not None and experiment.concurrency <= first:
        warnings.append(
            f"concurrency {experiment.concurrency} is not above bracket 0's {first} trials: a new trial joins the "
            "current bracket while it has room, and bracket 0 regains room as each of its trials ends, so every "
            f"trial runs to max_steps as under fifo; set concurrency above {first} to halve"
        )
    if experiment.search.algorithm in MODEL_BASED:
        warnings.append("hyperband pauses trials between rungs; a model-based searcher sees their results late")
    return Preview(
        settings=HyperbandSettings(max_steps=max_steps, reduction_factor=eta, brackets=len(brackets)),
        expected_steps=min(expected, trials * max_steps),
        keep_checkpoints=experiment.checkpoints.keep,
        brackets=tuple(brackets),
        warnings=tuple(warnings),
    )


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s scheduler and bracket lines."""
    o: HyperbandSettings = plan.scheduler_options
    lines = [f"scheduler   hyperband: reduction factor {o.reduction_factor:g}, {o.brackets} brackets"]
    lines.append("brackets    bracket  trials  halving at steps (trials are paused until their bracket catches up)")
    for b in plan.brackets:
        lines.append(f"            {str(b.index).rjust(7)}  {str(b.trials).rjust(6)}  {', '.join(map(str, b.rungs))}")
    return lines


@dataclass(frozen=True)
class Halving:
    """One halving of a bracket: trial ids kept and stopped, the cutoff (the worst kept value), the rows."""

    keep: tuple[str, ...]
    stop: tuple[str, ...]
    cutoff: float | None
    events: tuple[dict, ...]


class _Bracket:
    """Ray's hyperband ``_Bracket``: ``n`` trials at most, halved at ``rung`` steps, ``halves`` left."""

    def __init__(self, s: int, n0: int, r0: int) -> None:
        self.n, self.r, self.rung, self.halves = n0, r0, r0, s
        self.live: dict[str, tuple[int | None, float | None]] = {}  # trial id -> last (step, value), in order added
        self.processed = False  # Ray's ``is_being_processed``: set at the first halving, never cleared

    def filled(self) -> bool:
        return len(self.live) == self.n

    def reached(self) -> bool:
        """Every live trial has reached the rung (Ray's ``cur_iter_done``)."""
        return all((step or 0) >= self.rung for step, _ in self.live.values())

    def finished(self) -> bool:
        return self.halves == 0 and self.reached()

    def below_rung(self, trial_id: str) -> bool:
        """Ray's ``continue_trial``: the trial has not reached the rung yet."""
        return (self.live[trial_id][0] or 0) < self.rung


class HyperbandCore(Core):
    """Hyperband's decisions: brackets filled in Ray's order, trials paused at rungs, brackets halved.

    ``report`` answers ``continue``, ``pause`` or ``stop`` for the reporting trial, with the
    decisions about the bracket's paused trials in ``Decision.others``; ``remove`` may halve a
    bracket that was waiting only on the removed trial.
    """

    def __init__(self, settings: HyperbandSettings, mode: str, seed: int | None = None) -> None:
        self.settings = settings
        self.mode = mode
        self._sign = sign(mode)
        eta, max_t = settings.reduction_factor, settings.max_steps
        self._s_max_1 = int(np.round(np.log(max_t) / np.log(eta))) + 1  # Ray's, numpy's rounding
        self._bands: list[list[_Bracket | None]] = [[]]
        self._current: _Bracket | None = None
        self._of: dict[str, _Bracket] = {}

    def add(self, trial_id: str) -> None:
        """A new trial joins the current bracket, or the next one once it is full (Ray's ``on_trial_add``)."""
        if trial_id in self._of:
            return
        eta, max_t = self.settings.reduction_factor, self.settings.max_steps
        if self._current is None or self._current.filled():
            while True:
                if len(self._bands[-1]) == self._s_max_1:
                    self._bands.append([])
                band = self._bands[-1]
                s = len(band)
                r0 = int(max_t * eta ** (-s))
                self._current = _Bracket(s, int(np.ceil(self._s_max_1 / (s + 1) * eta**s)), r0) if r0 else None
                band.append(self._current)
                if self._current is not None:
                    break
        self._current.live[trial_id] = (None, None)
        self._of[trial_id] = self._current

    def decides_at(self, trial_id: str) -> tuple[int, ...]:
        """The rungs ahead of the trial's bracket below ``max_steps`` (the trial joins it now)."""
        self.add(trial_id)
        eta, max_t = self.settings.reduction_factor, self.settings.max_steps
        steps, rung = [], self._of[trial_id].rung
        while rung < max_t:
            steps.append(rung)
            rung = int(min(rung * eta, max_t))
        return tuple(steps)

    def report(self, trial_id: str, step: int, value: float | None) -> Decision:
        self.add(trial_id)
        bracket = self._of[trial_id]
        bracket.live[trial_id] = (step, value)
        if bracket.below_rung(trial_id):
            return Decision(CONTINUE)
        return self._process(bracket, trial_id)

    def remove(
        self, trial_id: str, *, completed: bool = True, last: tuple[int, float | None] | None = None
    ) -> Decision | None:
        """The trial left its bracket (Ray's ``on_trial_remove``); a bracket now waiting on nobody halves."""
        bracket = self._of.pop(trial_id, None)
        if bracket is None:
            return None
        bracket.live.pop(trial_id, None)
        if not bracket.finished() and not bracket.processed:
            return self._process(bracket, None)
        return None

    def _drop(self, bracket: _Bracket, trial_id: str) -> None:
        bracket.live.pop(trial_id, None)
        self._of.pop(trial_id, None)

    def _process(self, bracket: _Bracket, current: str | None) -> Decision:
        """Ray's ``_process_bracket``: pause until the bracket has reached its rung, then halve it."""
        action, events, others = PAUSE, [], []
        if not bracket.reached():
            if current is None:
                return Decision(CONTINUE)
            step, value = bracket.live[current]
            return Decision(PAUSE, (self.paused(current, step, value, bracket.rung, bracket.halves),))
        if bracket.finished():  # the last rung lies below max_steps: its trials stop there
            for trial_id, (step, value) in list(bracket.live.items()):
                row = self.ended(trial_id, step, value, bracket.rung, bracket.halves)
                if row is not None:
                    events.append(row)
                if trial_id != current:
                    others.append((trial_id, STOP))
                    self._drop(bracket, trial_id)
            return Decision(STOP, tuple(events), others=tuple(others))
        bracket.processed = True
        rung, number, live = bracket.rung, bracket.halves, dict(bracket.live)
        bracket.halves -= 1
        bracket.n = self.kept(bracket.n)
        bracket.r = int(min(bracket.r * self.settings.reduction_factor, self.settings.max_steps))
        bracket.rung = bracket.r
        halving = self.halve(live, min(bracket.n, len(live)), rung, number)
        events += halving.events
        for trial_id in halving.stop:
            if trial_id == current:
                action = STOP
            else:
                others.append((trial_id, STOP))
            self._drop(bracket, trial_id)
        for trial_id in halving.keep:
            if bracket.below_rung(trial_id):
                if trial_id == current:
                    action = CONTINUE
                else:
                    others.append((trial_id, CONTINUE))
            elif bracket.finished():
                if trial_id == current:
                    action = STOP
                else:
                    others.append((trial_id, STOP))
                self._drop(bracket, trial_id)
        if action == PAUSE and current is not None:
            step, value = live[current]
            events.append(self.paused(current, step, value, bracket.rung, bracket.halves))
        return Decision(action, tuple(events), others=tuple(others))

    def kept(self, n: int) -> int:
        """How many of a bracket's ``n`` trials survive a halving (Ray's ``ceil(n / eta)``)."""
        return int(np.ceil(n / self.settings.reduction_factor))

    def halve(
        self, results: dict[str, tuple[int | None, float | None]], keep: int, rung: int, bracket: int
    ) -> Halving:
        """Rank ``results`` (trial id -> (step, value as reported), in the bracket's order) and keep the best ``keep``.

        As Ray's ``successive_halving``: a stable sort by ``sign * value``, the last ``keep`` kept.
        """
        decided = {t: finite_value(v, self.mode) for t, (_, v) in results.items()}
        worst_reward = -math.inf
        order = sorted(
            results, key=lambda t: worst_reward if decided[t] is None else self._sign * decided[t]
        )
        good, bad = order[-keep:], order[:-keep]  # Ray's slices, literally
        kept = [decided[t] for t in good if decided[t] is not None]
        cutoff = reported((max(kept) if self.mode == "min" else min(kept)) if kept else None)
        rows = []
        for action, trials in ((CONTINUE, good), (STOP, bad)):
            for t in trials:
                rows.append(
                    {
                        "trial_id": t,
                        "step": results[t][0],
                        "scheduler": NAME,
                        "action": action,
                        "rung": rung,
                        "bracket": bracket,
                        "value": results[t][1],
                        "cutoff": cutoff,
                    }
                )
        return Halving(keep=tuple(good), stop=tuple(bad), cutoff=cutoff, events=tuple(rows))

    def paused(self, trial_id: str, step: int | None, value: float | None, rung: int, bracket: int) -> dict:
        """The row for a trial paused until its bracket catches up."""
        return {
            "trial_id": trial_id,
            "step": step,
            "scheduler": NAME,
            "action": PAUSE,
            "rung": rung,
            "bracket": bracket,
            "value": value,
        }

    def ended(self, trial_id: str, step: int | None, value: float | None, rung: int, bracket: int) -> dict | None:
        """The row for a trial stopped because its bracket's last rung is below ``max_steps``; None at the end."""
        if step is None or step >= self.settings.max_steps:
            return None
        return {**self.paused(trial_id, step, value, rung, bracket), "action": STOP}


def core(settings: HyperbandSettings, mode: str, seed: int | None = None) -> HyperbandCore:
    return HyperbandCore(settings, mode, seed)


__all__ = ["Halving", "HyperbandCore", "HyperbandOptions", "HyperbandSettings", "core", "describe", "preview"]
