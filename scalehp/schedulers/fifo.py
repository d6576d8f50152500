"""FIFO: every trial runs to ``budget.max_steps``; nothing to decide, nothing recorded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scalehp.schedulers.base import Core, Options, Preview, Settings

NAME = "fifo"
NEEDS_CHECKPOINTS: str | None = None  # a command trial can run under it


class FifoOptions(Options):
    """Run every trial to ``budget.max_steps``."""


@dataclass(frozen=True)
class FifoSettings(Settings):
    """FIFO's plan options: only the step budget."""


def preview(experiment: Any, trials: int) -> Preview:
    """Every trial runs every step."""
    max_steps = experiment.budget.max_steps
    return Preview(
        settings=FifoSettings(max_steps=max_steps),
        expected_steps=trials * max_steps,
        keep_checkpoints=experiment.checkpoints.keep,
    )


def describe(plan: Any) -> list[str]:
    """``scalehp plan``'s scheduler line."""
    return ["scheduler   fifo: every trial runs to the end"]


class FifoCore(Core):
    """Always continue (Ray stops a trial at ``max_steps`` through the trainable itself)."""

    def decides_at(self, trial_id: str) -> tuple[int, ...]:
        return ()


def core(settings: FifoSettings, mode: str, seed: int | None = None) -> FifoCore:
    return FifoCore()


__all__ = ["FifoCore", "FifoOptions", "FifoSettings", "core", "describe", "preview"]
