"""Hyperband, median stopping, PBT and PB2 in the experiment file: checks and plan preview (no Ray run)."""

from __future__ import annotations

import pytest

from scalehp.cli.experiment import describe_plan
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.spec import load_experiment
from tests.conftest import write


def experiment(**changes):
    data = {
        "name": "s",
        "trainable": "experiments.trainables.schedule:train",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 8, "max_steps": 12},
        "space": {
            "lr": {"float": [1e-3, 0.5], "log": True},
            "depth": {"int": [1, 4]},
            "act": {"choice": ["a", "b"]},
            "dim": 20,
        },
        "scheduler": {"pbt": {"interval_steps": 3, "mutate": ["lr"]}},
    }
    data.update(changes)
    return load_experiment(data)


def plan(**changes):
    return compile_plan(experiment(**changes))


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        (
            {"scheduler": {"pbt": {"mutate": ["lr", "width"]}}},
            "scheduler.pbt.mutate",
            "'width' is not a param of space",
        ),
        ({"scheduler": {"pbt": {"mutate": ["dim"]}}}, "scheduler.pbt.mutate", "'dim' is a constant in space"),
        ({"scheduler": {"pbt": {"mutate": {"lr": {"constant": 1}}}}}, "scheduler.pbt.mutate.lr", "a constant cannot"),
        ({"scheduler": {"pbt": {"mutate": []}}}, "scheduler.pbt.mutate", "at least one param"),
        ({"scheduler": "pbt"}, "scheduler.pbt.mutate", "required key is missing"),
        ({"scheduler": {"pbt": {"mutate": ["lr"], "quantile": 0.6}}}, "scheduler.pbt.quantile", "in (0, 0.5]"),
        ({"scheduler": {"pbt": {"mutate": ["lr"], "quantile": 0}}}, "scheduler.pbt.quantile", "in (0, 0.5]"),
        (
            {"scheduler": {"pbt": {"mutate": ["lr"], "perturbation_factors": [1.2, -1]}}},
            "scheduler.pbt.perturbation_factors.1",
            "> 0",
        ),
        (
            {"scheduler": {"pbt": {"mutate": ["lr"], "interval_steps": 12}}},
            "scheduler.pbt.interval_steps",
            "not below budget.max_steps (12)",
        ),
        (
            {"scheduler": {"pbt": {"mutate": ["lr"]}}, "search": {"algorithm": "hyperopt"}},
            "search.algorithm",
            "pbt cannot work with hyperopt",
        ),
        (
            {"scheduler": {"pb2": {"mutate": ["lr"]}}, "search": {"algorithm": "optuna"}},
            "search.algorithm",
            "pb2 cannot work with optuna",
        ),
        ({"scheduler": {"pb2": {"mutate": ["act"]}}}, "scheduler.pb2.mutate", "pb2 mutates float and int ranges only"),
        (
            {"scheduler": {"pbt": {"mutate": ["lr"]}}, "budget": {"samples": 1, "max_steps": 12}},
            "budget.samples",
            "population of at least 2",
        ),
        ({"scheduler": {"hyperband": {"reduction_factor": 1}}}, "scheduler.hyperband.reduction_factor", "must be > 1"),
        ({"scheduler": {"hyperband": {"reduction_factor": 20}}}, "scheduler.hyperband.reduction_factor", "never halve"),
        ({"scheduler": {"median_stopping": {"grace_steps": 12}}}, "scheduler.median_stopping.grace_steps", "not below"),
        (
            {"scheduler": {"median_stopping": {"min_samples": 8}}},
            "scheduler.median_stopping.min_samples",
            "more than 8 trials",
        ),
    ],
)
def test_scheduler_mistakes_are_spec_errors(changes, path, message):
    with pytest.raises(SpecError) as info:
        plan(**changes)
    assert info.value.path == path
    assert message in str(info.value)


def test_error_points_at_the_line(tmp_path):
    text = """
name: s
trainable: experiments.trainables.schedule:train
metric: {name: loss, mode: min}
budget: {samples: 4, max_steps: 10}
space:
  lr: {float: [0.001, 0.5], log: true}
scheduler:
  pbt:
    interval_steps: 2
    mutate: [lr, momentum]
"""
    with pytest.raises(SpecError) as info:
        compile_plan(load_experiment(write(tmp_path, text)))
    assert str(info.value).startswith(f"{tmp_path / 'exp.yaml'}:11: scheduler.pbt.mutate: 'momentum' is not a param")


def test_pbt_plan_schedule_and_checkpoints():
    p = plan(
        scheduler={
            "pbt": {"interval_steps": 3, "quantile": 0.25, "mutate": {"lr": None, "act": {"choice": ["a", "b", "c"]}}}
        },
        concurrency=2,
    )
    assert p.perturbation_steps == (3, 6, 9)
    o = p.scheduler_options.to_dict()
    assert o["population"] == 8 and o["exploits_per_round"] == 2 and o["expected_exploits"] == 6
    assert o["mutate"] == {"lr": "float [0.001, 0.5] log", "act": "choice a, b, c"}
    assert p.keep_checkpoints is None  # every checkpoint: a donor's may be restored much later
    assert p.concurrency is None and any("concurrency is ignored" in w for w in p.warnings)
    kept = plan(checkpoints={"keep": 20})
    assert kept.keep_checkpoints is None and any("checkpoints.keep is ignored" in w for w in kept.warnings)
    assert plan(scheduler={"pbt": {"mutate": ["lr"], "burn_in_steps": 5}}).perturbation_steps == (5, 8, 11)
    text = "\n".join(describe_plan(p))
    assert "perturb at  steps 3, 6, 9" in text and "about 6 (3 rounds x 2 trials)" in text
    assert "all kept per trial" in text and "population 8" in text
    assert plan(scheduler={"pb2": {"mutate": ["lr", "depth"]}}).perturbation_steps == (3, 6, 9)


def test_hyperband_brackets_match_ray():
    from ray.tune.schedulers import HyperBandScheduler

    for max_steps, eta in [(12, 3), (81, 3), (4, 2), (20, 2.5)]:
        p = plan(scheduler={"hyperband": {"reduction_factor": eta}}, budget={"samples": 8, "max_steps": max_steps})
        ray_hb = HyperBandScheduler(max_t=max_steps, reduction_factor=eta)
        expected = [(s, ray_hb._get_n0(s), ray_hb._get_r0(s)) for s in range(ray_hb._s_max_1) if ray_hb._get_r0(s) > 0]
        assert [(b.index, b.trials, b.rungs[0]) for b in p.brackets] == expected
        # Ray multiplies by eta and rounds down: a bracket can end below max_steps (12, 3: 1, 3, 9)
        assert all(b.rungs[-1] <= max_steps and len(b.rungs) == b.index + 1 for b in p.brackets)
    text = "\n".join(describe_plan(plan(scheduler="hyperband")))
    assert "hyperband: reduction factor 3, 3 brackets" in text and "1, 3, 9" in text


def test_median_stopping_plan():
    p = plan(scheduler={"median_stopping": {"grace_steps": 2, "min_samples": 2}})
    assert p.scheduler_options.to_dict() == {"max_steps": 12, "grace_steps": 2, "min_samples": 2}
    assert "median stopping: after 2 steps" in "\n".join(describe_plan(p))


def test_plan_json_has_schedule():
    data = plan().to_dict()
    assert data["perturbation_steps"] == [3, 6, 9] and data["keep_checkpoints"] is None
    assert plan(scheduler="hyperband").to_dict()["brackets"][0] == {"index": 0, "trials": 3, "rungs": [12]}


def test_set_hyperparams_overrides_a_loaded_optimizer():
    import torch

    from scalehp import pytorch

    model = torch.nn.Linear(2, 1)
    donor = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    state = pytorch.state(4, model, donor)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.5)
    assert pytorch.load_state(state, model, optimizer) == 4
    assert optimizer.param_groups[0]["lr"] == 0.1  # the donor's, as loaded
    pytorch.set_hyperparams(optimizer, lr=0.02, momentum=0.8, weight_decay=None, betas=(0.9, 0.9))
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.02, 0.8, 1e-3) and "betas" not in group


def test_schedule_trainable_resumes_from_a_donor_checkpoint():
    from experiments.trainables.schedule import train
    from scalehp.trial import LocalTrial

    donor = LocalTrial(max_steps=4, metric="loss", seed=1)
    train({"lr": 0.1, "dim": 3, "inner": 2}, donor)
    trial = LocalTrial(max_steps=6, metric="loss", seed=2)
    trial.checkpoint = donor.checkpoint  # what a PBT exploit hands over
    train({"lr": 0.01, "dim": 3, "inner": 2}, trial)
    assert [r["step"] for r in trial.reports] == [5, 6]
    assert {r["lr_used"] for r in trial.reports} == {0.01}


class _Trial:
    """What Ray's HyperBandScheduler reads of a trial."""

    is_saving = False

    def __init__(self, trial_id: str, status: str) -> None:
        self.trial_id, self.status = trial_id, status


class _Decisions:
    """The recorder's two calls a scheduler makes."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def decide(self, event: dict) -> None:
        self.events.append(event)

    def decided(self, trial_id: str, step: int, scheduler: str) -> None:
        return None


def test_a_resumed_hyperband_does_not_wait_on_trials_that_had_ended():
    """On resume Ray adds every saved trial to the new scheduler, ended ones included; an ended
    trial never reports, and a bracket holding it would pause its other trials for ever."""
    from ray.tune.experiment import Trial

    from scalehp.runner.schedulers import scheduler

    p = plan(scheduler={"hyperband": {"reduction_factor": 2}}, budget={"samples": 6, "max_steps": 4})
    decisions = _Decisions()
    made = scheduler(p, "training_iteration", decisions)
    made.set_search_properties("loss", "min")
    # bracket 0 (3 trials, no halving), then bracket 1 (3 trials, halving at step 2)
    trials = [_Trial(f"t{i}", Trial.TERMINATED if i == 3 else Trial.PENDING) for i in range(6)]
    for trial in trials:
        made.on_trial_add(None, trial)
    t4, t5 = trials[4], trials[5]
    t4.status = Trial.RUNNING
    assert made.on_trial_result(None, t4, {"training_iteration": 2, "loss": 0.5}) == "PAUSE"
    t4.status, t5.status = Trial.PAUSED, Trial.RUNNING
    # t5 was the last live trial below the rung: the bracket halves (ceil(3 / 2) = 2 kept), nobody waits on t3
    assert made.on_trial_result(None, t5, {"training_iteration": 2, "loss": 0.3}) == "CONTINUE"
    bracket, _ = made._trial_info[t4]
    assert t4 in bracket.trials_to_unpause
    assert [(e["trial_id"], e["action"]) for e in decisions.events] == [("t4", "pause"), ("t4", "continue"), ("t5", "continue")]
