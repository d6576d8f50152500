"""Same seed, same decisions: small deterministic runs give the events and trial ends recorded
in ``tests/golden/events.json``, which were written by scalehp before its schedulers moved to
their own decision cores (``scalehp/schedulers/``) and its bookkeeping to ``RunRecorder``.

Trial ids are compared by their index (Ray's id prefix is random per run); times and run ids
are left out. Concurrency 1 and a seeded random searcher make the order of reports fixed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scalehp.results.store import read_results
from scalehp.runner import run
from scalehp.spec import load_experiment

GOLDEN = json.loads((Path(__file__).parent / "golden" / "events.json").read_text())

CASES = {
    "asha": {"asha": {"grace_steps": 1, "reduction_factor": 2}},
    "median_stopping": {"median_stopping": {"grace_steps": 2, "min_samples": 2}},
    "hyperband": {"hyperband": {"reduction_factor": 3}},
}
COLUMNS = ["trial_id", "step", "scheduler", "action", "rung", "bracket", "value", "cutoff"]


def _plain(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _index(trial_id: str) -> str:
    """The trial's index as Tune's ids end (``abc12_00003``); a swarm id (``t0000003``) alike."""
    from scalehp.swarm import trial_index

    index = trial_index(trial_id)
    return trial_id.split("_")[-1] if index is None else f"{index:05d}"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_seed_gives_the_events_scalehp_recorded_before_the_decision_cores(ray_local, tmp_path, case):
    summary = run(load_experiment(golden_experiment(case, tmp_path)))
    ends, rows = decisions(read_results(summary.path))
    expected = GOLDEN[case]
    assert ends == expected["trials"]
    for got, want in zip(rows, expected["events"]):
        assert got.keys() == want.keys()
    assert_same_events(rows, expected["events"])


def golden_experiment(case: str, results: Path, **changes) -> dict:
    """The experiment whose seeded run recorded ``GOLDEN[case]`` (``changes``: keys added, e.g. a runtime)."""
    return {
        "name": case.replace("_", "-"),
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 8, "max_steps": 9},
        "concurrency": 1,
        "seed": 3,
        "space": {"x": {"float": [0.0, 1.0]}},
        "scheduler": CASES[case],
        "search": {"algorithm": "random"},
        "results": str(results),
        **changes,
    }


def decisions(tables) -> tuple[list, list[dict]]:
    """A run's trial ends ``[index, status, steps]`` and its decision rows, as the golden file holds them."""
    events = tables.events[[c for c in COLUMNS if c in tables.events]]
    events = events[events["action"].isin(["continue", "stop", "pause"])]
    rows = [{k: _plain(v) for k, v in row.items()} for row in events.to_dict("records")]
    for row in rows:
        row["trial_id"] = _index(row["trial_id"])
    trials = tables.trials.sort_values("trial_id")
    ends = [[_index(t), s, int(n)] for t, s, n in zip(trials["trial_id"], trials["status"], trials["steps"])]
    return ends, rows


def assert_same_events(rows: list[dict], expected: list[dict], context: str = "") -> None:
    """The same decisions, in order; values to 1e-12."""
    assert len(rows) == len(expected), context
    for got, want in zip(rows, expected):
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-12), (context, key, got, want)
            else:
                assert got[key] == value, (context, key, got, want)
