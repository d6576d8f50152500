from __future__ import annotations

import pytest

from scalehp.errors import SpecError
from scalehp.trial import LocalTrial, load_trainable, trial_seed
from tests import trainables


def test_local_trial_runs_a_trainable_and_round_trips_checkpoints(tmp_path):
    trial = LocalTrial(max_steps=4, metric="loss", checkpoint_dir=tmp_path)
    trainables.quadratic({"x": 0.3}, trial)
    assert [r["step"] for r in trial.reports] == [1, 2, 3, 4]
    assert trial.restore() == {"step": 4}
    again = LocalTrial(max_steps=6, metric="loss")
    again.checkpoint = trial.restore()
    trainables.quadratic({"x": 0.3}, again)
    assert [r["step"] for r in again.reports] == [5, 6]  # continued, not restarted


@pytest.mark.parametrize(
    ("step", "metrics", "words"),
    [
        (0, {"loss": 1}, "step must be an integer >= 1"),
        (1.5, {"loss": 1}, "step must be an integer"),
        (9, {"loss": 1}, "beyond budget.max_steps"),
        (1, {"acc": 1}, "but not the experiment's metric 'loss'"),
        (1, {"loss": 1, "step": 3}, "reserved"),
    ],
)
def test_report_checks(step, metrics, words):
    with pytest.raises(ValueError, match=words):
        LocalTrial(max_steps=5, metric="loss").report(step, metrics)


def test_steps_must_increase():
    trial = LocalTrial(max_steps=5, metric="loss")
    trial.report(2, {"loss": 1})
    with pytest.raises(ValueError, match="does not increase"):
        trial.report(2, {"loss": 1})


def test_load_trainable_kinds_and_errors():
    assert load_trainable("tests.trainables:quadratic")[1] == "scalehp"
    assert load_trainable("tests.trainables:plain_ray")[1] == "ray"
    with pytest.raises(SpecError, match="cannot import 'tests.nope'") as info:
        load_trainable("tests.nope:train", source="x.yaml", line=3)
    assert str(info.value).startswith("x.yaml:3: trainable:")
    with pytest.raises(SpecError, match="has no function 'nope'.*quadratic"):
        load_trainable("tests.trainables:nope")


def test_trial_seeds_differ_and_repeat():
    seeds = {trial_seed(0, i) for i in range(100)}
    assert len(seeds) == 100
    assert trial_seed(1, 5) == trial_seed(1, 5) != trial_seed(2, 5)
