"""PBT and Hyperband on real Ray with trials that report NaN and inf: events keep the values as reported."""

from __future__ import annotations

import math

import pytest

from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.runner.schedulers import WORST
from scalehp.spec import load_experiment

pytestmark = pytest.mark.ray

SCHEDULERS = {
    "pbt": ({"pbt": {"interval_steps": 2, "quantile": 0.5, "mutate": ["x"], "synch": True}}, 1, 6),
    "hyperband": ({"hyperband": {"reduction_factor": 2}}, 2, 4),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_events_record_nan_and_inf_as_reported(ray_local, tmp_path, name):
    scheduler, samples, max_steps = SCHEDULERS[name]
    experiment = load_experiment(
        {
            "name": "nonfinite",
            "trainable": "tests.nonfinite_trainables:by_kind",
            "metric": {"name": "loss", "mode": "min"},
            "budget": {"samples": samples, "max_steps": max_steps},
            "seed": 0,
            "space": {"kind": {"grid": ["nan", "inf", "ok", "fine"]}, "x": {"float": [0.1, 1.0]}},
            "scheduler": scheduler,
            "results": str(tmp_path / "results"),
        }
    )
    summary = run(experiment)
    assert summary.best_value is not None and math.isfinite(summary.best_value)
    events = read_results(summary.path).events
    assert len(events) and set(events["scheduler"]) == {name}
    numbers = events[["value", "cutoff", "donor_value"]].to_numpy(float).ravel()
    assert not (abs(numbers) == WORST).any(), events  # never the stand-in Ray ranked with
    values = events["value"].to_numpy(float)
    assert (values != values).any() and (values == math.inf).any(), events  # NaN and inf, as reported
