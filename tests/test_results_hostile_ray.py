"""PBT on real Ray with trials that report NaN and inf: events keep the values as reported."""

from __future__ import annotations

import math

import pytest

from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.runner.schedulers import WORST
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray


def test_pbt_events_record_nan_and_inf_as_reported(ray_local, tmp_path):
    experiment = load_experiment(
        {
            "name": "nonfinite",
            "trainable": "tests.nonfinite_trainables:by_kind",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": 1, "max_steps": 6},
            "seed": 0,
            "space": {"kind": {"grid": ["nan", "inf", "ok", "fine"]}, "x": {"float": [0.1, 1.0]}},
            "scheduler": {"pbt": {"interval_steps": 2, "quantile": 0.5, "mutate": ["x"], "synch": True}},
            "results": str(tmp_path / "results"),
        }
    )
    summary = run(experiment)
    assert summary.best_value is not None and math.isfinite(summary.best_value)
    events = read_results(summary.path).events
    assert len(events) and set(events["scheduler"]) == {"pbt"}
    numbers = events[["value", "cutoff", "donor_value"]].to_numpy(float).ravel()
    assert not (abs(numbers) == WORST).any(), events  # never the stand-in Ray ranked with
    values = events["value"].to_numpy(float)
    assert (values != values).any() and (values == math.inf).any(), events  # NaN and inf, as reported
