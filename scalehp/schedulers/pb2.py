"""Population based bandits (Parker-Holder et al., 2020): PBT whose explore step is a GP bandit.

Ranking, quantiles, donors and event rows are PBT's (:mod:`scalehp.schedulers.pbt`). The GP
bandit that picks the new values is Ray's (``ray.tune.schedulers.pb2``); the core's own
explore step only keeps the donor's values inside the space's bounds, and the runner replaces
them with the bandit's.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from scalehp.schedulers.base import Options
from scalehp.schedulers.pbt import (
    NEEDS_CHECKPOINTS,
    Pb2Settings,
    PopulationCore,
    clip,
    describe,
    population_preview,
)
from scalehp.space import Integer, Number

NAME = "pb2"


class Pb2Options(Options):
    """Population based bandits (Parker-Holder et al., 2020): PBT whose explore step is a GP bandit."""

    interval_steps: Integer | None = Field(
        None, ge=1, description="steps between perturbations (default: a quarter of budget.max_steps)"
    )
    quantile: Number = Field(0.25, description="the bottom quantile copies the top quantile; in (0, 0.5]")
    mutate: list[str] = Field(description="float/int params that change during training; bounds from space")
    synch: bool = Field(False, description="perturb all trials together at the same step")


preview = population_preview


class Pb2Core(PopulationCore):
    """PB2's decisions: PBT's, with the donor's config (clipped) as the explore step's stand-in."""

    name = NAME

    def new_config(self, trial_id: str, donor: str, rng: Any) -> dict[str, Any]:
        return clip(dict(self._states[donor].config), self.settings.params)


def core(settings: Pb2Settings, mode: str, seed: int | None = None) -> Pb2Core:
    return Pb2Core(settings, mode, seed)


__all__ = ["NEEDS_CHECKPOINTS", "Pb2Core", "Pb2Options", "Pb2Settings", "core", "describe", "preview"]
