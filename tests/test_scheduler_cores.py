"""The schedulers' pure decision cores: the same decisions as Ray's schedulers, min and max alike.

Ray's scheduler classes are driven directly (no Ray cluster): a trial is any object with a
``trial_id``. Ray decides with the finite stand-in for NaN and inf (as the runner feeds it),
the cores take the values as reported.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalehp.schedulers import (
    CONTINUE,
    EXPLOIT,
    STOP,
    AshaSettings,
    HyperbandSettings,
    MedianStoppingSettings,
    PbtSettings,
    core_for,
)
from scalehp.schedulers import describe as describe_scheduler
from scalehp.schedulers.asha import AshaCore
from scalehp.schedulers.base import EVENT_KEYS, WORST, finite
from scalehp.space import ChoiceParam, FloatParam, IntParam

MAX_STEPS = 20


@dataclass(frozen=True)
class FakeTrial:
    trial_id: str


def reports(seed: int, trials: int = 12, max_steps: int = MAX_STEPS) -> list[tuple[str, int, float]]:
    """Interleaved reports (trial id, step, value): each trial reports steps 1, 2, ... in order, some NaN or inf."""
    rng = random.Random(seed)
    level = {f"t{i}": rng.uniform(0, 10) for i in range(trials)}
    step = dict.fromkeys(level, 0)
    out = []
    while any(s < max_steps for s in step.values()):
        trial = rng.choice([t for t, s in step.items() if s < max_steps])
        step[trial] += 1
        roll = rng.random()
        if roll < 0.04:
            value = math.nan
        elif roll < 0.06:
            value = math.inf
        elif roll < 0.08:
            value = -math.inf
        else:
            value = level[trial] / step[trial] ** 0.5 + rng.gauss(0, 0.5)
        out.append((trial, step[trial], value))
    return out


def mirrored(sequence):
    return [(t, s, -v) for t, s, v in sequence]


def drive_core(core, sequence, max_steps=MAX_STEPS):
    """Decisions (trial id, step, action) and events of a core; a stopped trial reports no more."""
    done, decisions, events = set(), [], []
    for trial, step, value in sequence:
        if trial in done:
            continue
        decision = core.report(trial, step, value)
        decisions.append((trial, step, decision.action))
        events += decision.events
        if decision.action == STOP or step >= max_steps:
            core.remove(trial)
            done.add(trial)
    return decisions, events


def drive_ray(scheduler, sequence, mode, max_steps=MAX_STEPS):
    trials = {t: FakeTrial(t) for t, _, _ in sequence}
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)
    done, decisions = set(), []
    for trial, step, value in sequence:
        if trial in done:
            continue
        result = finite({"step": step, "m": value}, "m", mode)
        action = scheduler.on_trial_result(None, trials[trial], result).lower()  # Ray's are "CONTINUE", "STOP"
        decisions.append((trial, step, action))
        if action == STOP or step >= max_steps:
            scheduler.on_trial_complete(None, trials[trial], result)
            done.add(trial)
    return decisions


ASHA = [
    AshaSettings(max_steps=MAX_STEPS, grace_steps=1, reduction_factor=3, brackets=1),
    AshaSettings(max_steps=MAX_STEPS, grace_steps=2, reduction_factor=2, brackets=1),
    AshaSettings(max_steps=MAX_STEPS, grace_steps=1, reduction_factor=2.5, brackets=3),
]


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("settings", ASHA)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asha_core_decides_as_rays_async_hyperband(mode, settings, seed):
    from ray.tune.schedulers import AsyncHyperBandScheduler

    sequence = reports(seed)
    ray = AsyncHyperBandScheduler(
        time_attr="step",
        metric="m",
        mode=mode,
        max_t=settings.max_steps,
        grace_period=settings.grace_steps,
        reduction_factor=settings.reduction_factor,
        brackets=settings.brackets,
    )
    core = core_for("asha", settings, mode, seed=seed)

    class Assigned(dict):  # Ray draws brackets from numpy's global generator: give each trial the core's
        def __setitem__(self, trial_id, bracket):
            super().__setitem__(trial_id, ray._brackets[core.bracket_of(trial_id)])

    ray._trial_info = Assigned()
    expected = drive_ray(ray, sequence, mode)
    decisions, events = drive_core(core, sequence)
    assert decisions == expected
    assert any(a == STOP for _, s, a in decisions if s < MAX_STEPS)  # the sequences do exercise stopping
    for row in events:
        assert set(row) <= set(EVENT_KEYS) and row["scheduler"] == "asha"
        assert row["cutoff"] is None or abs(row["cutoff"]) != WORST  # never the stand-in


def test_asha_events_keep_reported_values_and_worst_cutoff():
    settings = AshaSettings(max_steps=10, grace_steps=1, reduction_factor=2, brackets=1)
    core = core_for("asha", settings, "min", seed=0)
    first = core.report("a", 1, math.nan).events[0]
    assert math.isnan(first["value"]) and first["cutoff"] is None and first["action"] == CONTINUE
    second = core.report("b", 1, 3.0).events[0]
    assert second["cutoff"] == math.inf and second["action"] == CONTINUE  # cutoff from a stand-in: +inf for min
    third = core.report("c", 1, math.inf)
    assert third.action == STOP and third.events[0]["value"] == math.inf
    maximise = core_for("asha", settings, "max", seed=0)
    maximise.report("a", 1, math.nan)
    assert maximise.report("b", 1, 3.0).events[0]["cutoff"] == -math.inf
    assert core.report("a", 10, 1.0).action == STOP  # max_steps ends a trial, no row
    assert core.report("a", 10, 1.0).events == ()


def test_asha_brackets_by_seed_and_trial_id_weighted_as_ray():
    settings = ASHA[2]
    core = core_for("asha", settings, "min", seed=5)
    ids = [f"t{i}" for i in range(3000)]
    drawn = [core.bracket_of(t) for t in ids]
    assert [core_for("asha", settings, "min", seed=5).bracket_of(t) for t in reversed(ids)] == drawn[::-1]
    assert drawn != [core_for("asha", settings, "min", seed=6).bracket_of(t) for t in ids]
    from ray.tune.schedulers.async_hyperband import _Bracket

    sizes = np.array([len(_Bracket(1, MAX_STEPS, 2.5, s)._rungs) for s in range(3)])
    weights = np.e ** (sizes - sizes.max()) / (np.e ** (sizes - sizes.max())).sum()
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, weights, atol=0.03)


@pytest.mark.parametrize("settings", ASHA)
def test_asha_mirrored_values_mirrored_decisions(settings):
    sequence = reports(7)
    low, low_events = drive_core(core_for("asha", settings, "min", seed=3), sequence)
    high, high_events = drive_core(core_for("asha", settings, "max", seed=3), mirrored(sequence))
    assert low == high
    for a, b in zip(low_events, high_events, strict=True):
        assert a["cutoff"] == (None if b["cutoff"] is None else -b["cutoff"])


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("settings", ASHA)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asha_restore_continues_as_if_never_stopped(mode, settings, seed):
    sequence = reports(seed)
    whole = core_for("asha", settings, mode, seed=seed)
    decisions, _ = drive_core(whole, sequence)
    cut = len(sequence) // 2
    first = core_for("asha", settings, mode, seed=seed)
    before, events = drive_core(first, sequence[:cut])
    stopped = {t for t, _, a in before if a == STOP}
    restored = core_for("asha", settings, mode, seed=seed)
    restored.restore(events)
    rest = [r for r in sequence[cut:] if r[0] not in stopped]
    after, _ = drive_core(restored, rest)
    assert before + after == decisions


def median_ray(settings, mode):
    from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

    class NoPause(MedianStoppingRule):  # as the runner: continue where Ray would pause
        def _on_insufficient_samples(self, tune_controller, trial, time):
            return TrialScheduler.CONTINUE

    return NoPause(
        time_attr="step",
        metric="m",
        mode=mode,
        grace_period=settings.grace_steps,
        min_samples_required=settings.min_samples,
    )


MEDIAN = [
    MedianStoppingSettings(max_steps=MAX_STEPS, grace_steps=1, min_samples=3),
    MedianStoppingSettings(max_steps=MAX_STEPS, grace_steps=4, min_samples=2),
]


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("settings", MEDIAN)
@pytest.mark.parametrize("seed", [0, 1, 2, 27, 44])  # 27, 44: a completed trial's last value counts twice
def test_median_core_decides_as_rays_median_stopping_rule(mode, settings, seed):
    sequence = reports(seed)
    expected = drive_ray(median_ray(settings, mode), sequence, mode)
    decisions, events = drive_core(core_for("median_stopping", settings, mode, seed=seed), sequence)
    assert decisions == expected
    for row in events:
        assert set(row) <= set(EVENT_KEYS) and abs(row["cutoff"]) != WORST and abs(row["value"]) != WORST


@pytest.mark.parametrize("settings", MEDIAN)
def test_median_mirrored_values_mirrored_decisions(settings):
    sequence = reports(5)
    low, low_events = drive_core(core_for("median_stopping", settings, "min"), sequence)
    high, high_events = drive_core(core_for("median_stopping", settings, "max"), mirrored(sequence))
    assert low == high and any(a == STOP for _, _, a in low)
    assert [(e["value"], e["cutoff"]) for e in low_events] == [(-e["value"], -e["cutoff"]) for e in high_events]


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("seed", [3, 27, 44])
def test_median_restore_continues_as_if_never_stopped(mode, seed):
    settings = MEDIAN[0]
    sequence = reports(seed)
    decisions, _ = drive_core(core_for("median_stopping", settings, mode), sequence)
    cut = len(sequence) // 2
    before, events = drive_core(core_for("median_stopping", settings, mode), sequence[:cut])
    stopped = {t: s for t, s, a in before if a == STOP}
    # what the reports table holds: every report a trial made (none after its stop)
    reported_rows = [(t, s, v) for t, s, v in sequence[:cut] if s <= stopped.get(t, MAX_STEPS)]
    restored = core_for("median_stopping", settings, mode)
    restored.restore(events, reported_rows)
    after, _ = drive_core(restored, [r for r in sequence[cut:] if r[0] not in stopped])
    assert before + after == decisions


def test_median_stand_in_recorded_as_worst_infinity():
    settings = MedianStoppingSettings(max_steps=10, grace_steps=1, min_samples=1)
    core = core_for("median_stopping", settings, "min")
    core.report("a", 1, math.nan)
    decision = core.report("b", 1, 1.0)
    assert decision.action == CONTINUE and decision.events[0]["cutoff"] == math.inf
    decision = core.report("c", 1, math.inf)
    assert decision.action == STOP and decision.events[0]["value"] == math.inf


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hyperband_halving_as_rays_bracket(mode, seed):
    from ray.tune.schedulers.hyperband import _Bracket

    rng = random.Random(seed)
    settings = HyperbandSettings(max_steps=27, reduction_factor=3, brackets=4)
    core = core_for("hyperband", settings, mode)
    for n in (9, 5, 3, 2):
        bracket = _Bracket("step", n, 3, 27, 3, 2)
        trials = [FakeTrial(f"t{i}") for i in range(n)]
        results = {}
        for trial in trials:
            value = rng.choice([math.nan, math.inf, rng.uniform(0, 1), rng.uniform(0, 1), 0.5])
            bracket.add_trial(trial)
            bracket._live_trials[trial] = finite({"step": 3, "m": value}, "m", mode)
            results[trial.trial_id] = (3, value)
        keep = core.kept(bracket._n)
        good, bad = bracket.successive_halving("m", 1.0 if mode == "max" else -1.0)
        halving = core.halve(results, keep, rung=3, bracket=2)
        assert list(halving.keep) == [t.trial_id for t in good] and list(halving.stop) == [t.trial_id for t in bad]
        assert [e["action"] for e in halving.events] == [CONTINUE] * len(good) + [STOP] * len(bad)
        assert halving.cutoff is None or abs(halving.cutoff) != WORST


class _HyperbandTrial:
    """What Ray's Hyperband reads of a trial: its id, its status, whether it is saving."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id, self.status, self.is_saving = trial_id, "PENDING", False


class _HyperbandController:
    """Ray's ``TuneController.stop_trial`` as Hyperband sees it: a paused trial is removed, a running one completed."""

    def __init__(self, scheduler) -> None:
        self.scheduler, self.stopped = scheduler, []

    def stop_trial(self, trial) -> None:
        if trial.status in ("PAUSED", "PENDING"):
            self.scheduler.on_trial_remove(self, trial)
        elif trial.status == "RUNNING":
            self.scheduler.on_trial_complete(self, trial, None)
        trial.status = "TERMINATED"
        self.stopped.append(trial.trial_id)


def _unpaused(scheduler, trials) -> set[str]:
    """Paused trials Ray's Hyperband has marked to run again."""
    marked = {t.trial_id for band in scheduler._hyperbands for b in band if b for t in b.trials_to_unpause}
    return {t for t in marked if trials[t].status == "PAUSED"}


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize(("max_steps", "eta", "workers", "n"), [(9, 3, 4, 30), (20, 3, 8, 60), (16, 2, 12, 60), (27, 3, 30, 50)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hyperband_core_owns_brackets_and_decides_as_rays_hyperband_scheduler(mode, max_steps, eta, workers, n, seed):
    """One execution drives Ray's scheduler and the core side by side: every trial's action, every
    paused trial resumed or stopped by a halving, and the brackets trials join, are the same."""
    from ray.tune.schedulers import HyperBandScheduler

    rng = random.Random(seed)
    level = {f"t{i}": rng.uniform(0, 10) for i in range(n)}
    ray = HyperBandScheduler(time_attr="step", metric="m", mode=mode, max_t=max_steps, reduction_factor=eta)
    controller = _HyperbandController(ray)
    core = core_for("hyperband", HyperbandSettings(max_steps=max_steps, reduction_factor=eta), mode)
    trials: dict[str, _HyperbandTrial] = {}
    steps: dict[str, int] = {}
    halvings = 0

    def same_others(decision, before: list[str], paused_before: set[str]) -> None:
        nonlocal halvings
        stopped = set(controller.stopped[len(before):]) & paused_before
        resumed = _unpaused(ray, trials)
        core_stopped = {t for t, a in (decision.others if decision else ()) if a == STOP}
        core_resumed = {t for t, a in (decision.others if decision else ()) if a == CONTINUE}
        assert (core_stopped, core_resumed) == (stopped, resumed)
        halvings += bool(core_stopped or core_resumed)
        for t in resumed:
            trials[t].status = "RUNNING"

    while True:
        live = [t for t in trials.values() if t.status in ("RUNNING", "PAUSED")]
        if len(live) < workers and len(trials) < n:
            trial = _HyperbandTrial(f"t{len(trials)}")
            trials[trial.trial_id], steps[trial.trial_id] = trial, 0
            ray.on_trial_add(controller, trial)
            core.add(trial.trial_id)
            assert ray._trial_info[trial][0]._halves == core._of[trial.trial_id].halves
            trial.status = "RUNNING"
            continue
        running = [t for t in trials.values() if t.status == "RUNNING"]
        if not running:
            break
        trial = rng.choice(running)
        steps[trial.trial_id] += 1
        step = steps[trial.trial_id]
        value = level[trial.trial_id] / step**0.5 + rng.gauss(0, 0.3)
        value = math.nan if rng.random() < 0.03 else value
        result = finite({"step": step, "m": value}, "m", mode)
        before, paused_before = list(controller.stopped), {t.trial_id for t in live if t.status == "PAUSED"}
        if step >= max_steps:  # scalehp's stopper ends it before the scheduler sees the result
            trial.status = "TERMINATED"
            ray.on_trial_complete(controller, trial, result)
            same_others(core.remove(trial.trial_id, last=(step, value)), before, paused_before)
            continue
        action = ray.on_trial_result(controller, trial, result).lower()
        decision = core.report(trial.trial_id, step, value)
        assert decision.action == action, (trial.trial_id, step)
        same_others(decision, before, paused_before)
        if action == "pause":
            trial.status = "PAUSED"
        elif action == STOP:
            before, paused_before = list(controller.stopped), {t.trial_id for t in trials.values() if t.status == "PAUSED"}
            controller.stop_trial(trial)
            same_others(core.remove(trial.trial_id), before, paused_before)
    assert all(t.status == "TERMINATED" for t in trials.values()) and len(trials) == n
    assert halvings > 0


def test_hyperband_at_concurrency_within_the_first_bracket_runs_every_trial_to_the_end():
    """Ray's rule, kept: a new trial joins the current bracket while it has room, and the first
    bracket (no halving) regains room each time one of its trials ends."""
    core = core_for("hyperband", HyperbandSettings(max_steps=9, reduction_factor=3), "min")
    for i in range(20):  # one worker: each trial runs alone, start to end
        core.add(f"t{i}")
        for step in range(1, 9):
            assert core.report(f"t{i}", step, float(i)).action == CONTINUE
        core.remove(f"t{i}", last=(9, float(i)))
    assert [b.halves for b in core._bands[0] if b] == [0]


def test_fifo_core_always_continues():
    from scalehp.schedulers import FifoSettings

    core = core_for("fifo", FifoSettings(max_steps=3), "min")
    assert all(core.report("a", s, v).action == CONTINUE for s, v in [(1, math.nan), (2, 1.0), (3, math.inf)])
    assert core.report("a", 3, 1.0).events == ()


def pbt_settings(**changes):
    params = {
        "lr": FloatParam(float=(1e-3, 0.5), log=True),
        "depth": IntParam(int=(1, 8)),
        "act": ChoiceParam(choice=["a", "b", "c"]),
    }
    data = dict(
        max_steps=12,
        population=8,
        interval_steps=3,
        burn_in_steps=0,
        quantile=0.25,
        exploits_per_round=2,
        expected_exploits=6,
        synch=False,
        mutate={k: p.describe() for k, p in params.items()},
        keep_checkpoints=None,
        params=params,
        resample_probability=0.25,
        perturbation_factors=(1.2, 0.8),
    )
    data.update(changes)
    return PbtSettings(**data)


def drive_population(core, sequence, configs):
    for trial, config in configs.items():
        core.add(trial, config)
    out = []
    for trial, step, value in sequence:
        decision = core.report(trial, step, value)
        out.append((trial, step, decision.action, decision.donor, json.dumps(decision.config, sort_keys=True)))
        out += [tuple(sorted((k, str(v)) for k, v in e.items())) for e in decision.events]
    return out


def population_configs(seed):
    rng = random.Random(seed)
    return {
        f"t{i}": {"lr": rng.uniform(1e-3, 0.5), "depth": rng.randint(1, 8), "act": rng.choice("abc"), "dim": 3}
        for i in range(8)
    }


def test_pbt_core_is_deterministic_and_mirrored():
    sequence = reports(11, trials=8, max_steps=12)
    configs = population_configs(1)
    one = drive_population(core_for("pbt", pbt_settings(), "min", seed=42), sequence, configs)
    two = drive_population(core_for("pbt", pbt_settings(), "min", seed=42), sequence, configs)
    assert one == two
    mirror = drive_population(core_for("pbt", pbt_settings(), "max", seed=42), mirrored(sequence), configs)
    assert [r[:5] for r in one if len(r) == 5] == [r[:5] for r in mirror if len(r) == 5]
    assert any(r[2] == EXPLOIT for r in one if len(r) == 5)


def test_pbt_exploit_rows_and_bounds():
    settings = pbt_settings(resample_probability=0.0, perturbation_factors=(100.0,))
    core = core_for("pbt", settings, "min", seed=0)
    for trial, config in population_configs(2).items():
        core.add(trial, config)
    decisions = []
    for trial, step, value in reports(4, trials=8, max_steps=12):
        decisions.append(core.report(trial, step, value))
    exploits = [d for d in decisions if d.action == EXPLOIT]
    assert exploits
    for decision in exploits:
        exploit, explore = decision.events
        assert exploit["action"] == "exploit" and explore["action"] == "explore"
        assert exploit["donor_trial_id"] == decision.donor == explore["donor_trial_id"]
        assert json.loads(exploit["new_params"]) == json.loads(explore["old_params"])
        assert json.loads(explore["new_params"]) == {k: decision.config[k] for k in ("lr", "depth", "act")}
        assert decision.config["lr"] == 0.5 and decision.config["depth"] == 8  # x100, clipped to the range
        assert decision.config["dim"] == 3  # a param not mutated is the donor's
        assert set(exploit) <= set(EVENT_KEYS)
    continues = [e for d in decisions if d.action == CONTINUE for e in d.events]
    assert continues and all(e["action"] == "continue" for e in continues)


def test_pbt_quantiles_as_rays():
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pbt import _PBTTrialState

    rng = random.Random(3)
    for size in (2, 3, 5, 8, 13):
        for quantile in (0.25, 0.5, 0.1):
            settings = pbt_settings(quantile=quantile)
            core = core_for("pbt", settings, "max", seed=0)
            ray = PopulationBasedTraining(
                time_attr="step", metric="m", mode="max", quantile_fraction=quantile, hyperparam_mutations={"x": [1, 2]}
            )
            for i in range(size):
                trial = _LiveTrial(f"t{i}")
                trial_state = _PBTTrialState(trial)
                value = rng.choice([rng.uniform(0, 1), 0.5])
                trial_state.last_score = value
                ray._trial_state[trial] = trial_state
                core.add(trial.trial_id, {})
                core.report(trial.trial_id, 3, value)
            lower, upper = ray._quantiles()
            assert core.quantiles() == ([t.trial_id for t in lower], [t.trial_id for t in upper])


class _LiveTrial:
    """What Ray's PBT reads of a trial to rank it."""

    def __init__(self, trial_id):
        self.trial_id, self.experiment_tag, self.config = trial_id, "", {}

    def is_finished(self):
        return False


def test_population_restore_keeps_last_values_and_explored_params():
    settings = pbt_settings()
    core = core_for("pbt", settings, "min", seed=0)
    configs = population_configs(5)
    events = []
    for trial, config in configs.items():
        core.add(trial, config)
    for trial, step, value in reports(6, trials=8, max_steps=12):
        events += core.report(trial, step, value).events
    restored = core_for("pbt", settings, "min", seed=0)
    for trial, config in configs.items():
        restored.add(trial, config)
    restored.restore(events)
    assert restored.quantiles() == core.quantiles()
    for trial in configs:
        assert {k: restored.config(trial)[k] for k in ("lr", "depth", "act")} == {
            k: core.config(trial)[k] for k in ("lr", "depth", "act")
        }


def test_schedulers_import_no_ray():
    code = "import sys, scalehp.schedulers, scalehp.spec, scalehp.compiler; assert 'ray' not in sys.modules, 'ray'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize(
    "scheduler",
    [
        "fifo",
        "asha",
        "hyperband",
        "median_stopping",
        {"pbt": {"mutate": ["lr"], "interval_steps": 3}},
        {"pb2": {"mutate": ["lr"], "interval_steps": 3}},
    ],
)
def test_every_plan_has_a_core_and_typed_options(scheduler):
    from scalehp import schedulers
    from scalehp.compiler import compile_plan
    from scalehp.spec import load_experiment

    plan = compile_plan(
        load_experiment(
            {
                "name": "s",
                "trainable": "tests.trainables:quadratic",
                "metric": {"name": "loss", "mode": "max"},
                "budget": {"samples": 8, "max_steps": 12},
                "space": {"lr": {"float": [1e-3, 0.5]}},
                "scheduler": scheduler,
                "seed": 3,
            }
        )
    )
    core = schedulers.core(plan)
    assert isinstance(core, schedulers.Core) and isinstance(plan.scheduler_options, schedulers.Settings)
    assert plan.to_dict()["scheduler_options"] == plan.scheduler_options.to_dict()
    json.dumps(plan.to_dict())
    assert core.report("t0", 1, 1.0).action in (CONTINUE, STOP)
    with pytest.raises(FrozenInstanceError):
        plan.scheduler_options.max_steps = 3


class _Controller:
    """What Ray's PBT asks of the controller when it ranks: no searcher, every trial running."""

    search_alg = None

    def __init__(self, trials):
        self.trials = trials

    def get_trials(self):
        return self.trials


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize(("interval", "burn_in", "quantile"), [(3, 0, 0.25), (2, 5, 0.5), (4, 0, 0.1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_pbt_perturbs_and_ranks_as_rays_population_based_training(mode, interval, burn_in, quantile, seed):
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pbt import _PBTTrialState

    settings = pbt_settings(interval_steps=interval, burn_in_steps=burn_in, quantile=quantile)
    core = core_for("pbt", settings, mode, seed=seed)
    configs = population_configs(seed)
    seen_core, seen_ray, pending = [], [], {}
    original = core.decide

    def decide(trial_id, lower, upper):
        seen_core.append((trial_id, list(lower), list(upper)))
        return original(trial_id, lower, upper)

    core.decide = decide

    class Ranked(PopulationBasedTraining):  # Ray's ranking and timing; the exploit as the core chose it
        def _checkpoint_or_exploit(self, trial, tune_controller, upper, lower):
            seen_ray.append((trial.trial_id, [t.trial_id for t in lower], [t.trial_id for t in upper]))
            if trial in lower:
                donor = self._trial_state[trials[pending["donor"]]]
                self._trial_state[trial].last_perturbation_time = donor.last_perturbation_time
                self._trial_state[trial].last_train_time = donor.last_train_time

    ray = Ranked(
        time_attr="step",
        metric="m",
        mode=mode,
        perturbation_interval=interval,
        burn_in_period=burn_in,
        quantile_fraction=quantile,
        hyperparam_mutations={"act": ["a", "b", "c"]},
    )
    trials = {t: _LiveTrial(t) for t in configs}
    for t in trials.values():
        t.status = "RUNNING"
    controller = _Controller(list(trials.values()))
    for trial_id, config in configs.items():
        ray._trial_state[trials[trial_id]] = _PBTTrialState(trials[trial_id])  # on_trial_add, less its checks
        core.add(trial_id, config)
    for trial_id, step, value in reports(seed + 20, trials=8, max_steps=12):
        decision = core.report(trial_id, step, value)
        pending["donor"] = decision.donor
        ray.on_trial_result(controller, trials[trial_id], finite({"step": step, "m": value}, "m", mode))
    assert seen_core == seen_ray and any(lower for _, lower, _ in seen_core)


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pbt_restore_continues_as_if_never_stopped(mode, seed):
    settings = pbt_settings()
    configs = population_configs(seed)
    sequence = reports(seed + 40, trials=8, max_steps=12)
    whole = drive_population(core_for("pbt", settings, mode, seed=seed), sequence, configs)
    cut = len(sequence) // 2
    first = core_for("pbt", settings, mode, seed=seed)
    for trial, config in configs.items():
        first.add(trial, config)
    events = [e for r in sequence[:cut] for e in first.report(*r).events]
    assert any(e["action"] == "explore" for e in events)
    restored = core_for("pbt", settings, mode, seed=seed)
    for trial, config in configs.items():
        restored.add(trial, config)
    restored.restore(events)
    after = drive_population(restored, sequence[cut:], {})
    assert whole[len(whole) - len(after) :] == after


def test_core_for_takes_max_steps_and_seed_positionally():
    settings = AshaSettings(max_steps=100, grace_steps=1, reduction_factor=2, brackets=3)
    core = core_for("asha", settings, "min", 10, 7)
    assert core.settings.max_steps == 10 and core.report("t", 10, 1.0).action == STOP
    assert core.bracket_of("t") == core_for("asha", settings, "min", None, 7).bracket_of("t")


@settings(max_examples=500, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-1e300, max_value=1e300, allow_nan=False), min_size=1, max_size=40),
    rf=st.sampled_from([2, 3, 4, 1.5, 2.7, 10]),
)
def test_asha_cutoffs_from_sorted_rewards_equal_numpys_to_the_last_bit(values, rf):
    from scalehp.schedulers.asha import percentile

    p = (1 - 1 / rf) * 100
    assert percentile(sorted(values), p) == float(np.nanpercentile(values, p))


# ---------------------------------------------------------------------------
# ASHA with the rungs given (Determined's placement, not Ray's)


def test_asha_with_explicit_rungs_decides_at_those_steps_only():
    settings = AshaSettings(max_steps=100, grace_steps=1, reduction_factor=4, brackets=1, rungs=(1, 6, 25))
    core = AshaCore(settings, "min", seed=0)
    decided = []
    for trial in range(8):
        for step in range(1, 101):
            decision = core.report(f"t{trial}", step, 1.0 / step + trial)  # later trials worse
            decided += [(e["trial_id"], e["step"], e["rung"]) for e in decision.events]
            if decision.action == "stop":
                break
    assert {rung for _, _, rung in decided} == {1, 6, 25}
    assert all(step == rung for _, step, rung in decided)
    assert core.decides_at("t0") == (1, 6, 25)


def test_asha_brackets_over_explicit_rungs_start_one_rung_higher_each():
    settings = AshaSettings(max_steps=100, grace_steps=1, reduction_factor=4, brackets=2, rungs=(1, 6, 25))
    core = AshaCore(settings, "min", seed=3)
    seen = {core.decides_at(f"t{i}") for i in range(40)}
    assert seen == {(1, 6, 25), (6, 25)}


@pytest.mark.parametrize(
    "asha, says",
    [
        ({"rungs": [1, 6, 6]}, "each above the one before"),
        ({"rungs": [0, 6]}, "from 1 up"),
        ({"rungs": [1, 6, 100]}, "below budget.max_steps"),
        ({"rungs": [1, 6], "grace_steps": 2}, "rungs or grace_steps, not both"),
        ({"rungs": [1], "brackets": 3}, "3 brackets need at least 2 rungs"),
    ],
)
def test_explicit_rungs_are_checked_at_their_key(tmp_path, asha, says):
    from scalehp.compiler import compile_plan
    from scalehp.errors import SpecError
    from scalehp.spec import load_experiment

    exp = load_experiment({
        "name": "rungs", "trainable": "tests.trainables:quadratic", "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 8, "max_steps": 100}, "space": {"x": {"float": [0.0, 1.0]}},
        "scheduler": {"asha": {"reduction_factor": 4, **asha}},
    })
    with pytest.raises(SpecError, match=says):
        compile_plan(exp)


def test_the_plan_shows_explicit_rungs():
    from scalehp.compiler import compile_plan
    from scalehp.spec import load_experiment

    plan = compile_plan(load_experiment({
        "name": "rungs", "trainable": "tests.trainables:quadratic", "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 64, "max_steps": 100}, "space": {"x": {"float": [0.0, 1.0]}},
        "scheduler": {"asha": {"reduction_factor": 4, "rungs": [1, 6, 25]}},
    }))
    assert describe_scheduler(plan)[0] == "scheduler   asha: rungs at 1, 6, 25 steps, reduction factor 4, 1 bracket"
    assert [r.step for r in plan.rungs] == [1, 6, 25, 100] and [r.trials for r in plan.rungs] == [64, 16, 4, 1]
    assert plan.to_dict()["scheduler_options"]["rungs"] == [1, 6, 25]
