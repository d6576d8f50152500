"""PBT and PB2 on Ray Tune, subclassed so that every exploit and explore is an event row.

At each perturbation step (every ``interval_steps`` steps of a trial) Ray ranks the
population by its last value. A trial in the bottom quantile *exploits* a random trial of the
top quantile (the donor): it stops, takes the donor's config and the donor's checkpoint from
the donor's last perturbation step, then *explores* by mutating that config, and resumes from
the donor's step. scalehp records, per trial and perturbation step:

* ``continue``: not in the bottom quantile (``cutoff``: the best value in the bottom quantile);
* ``exploit``:  ``donor_trial_id``, ``donor_step`` (where the trial resumes), ``donor_value``,
  ``old_params`` (its own mutated params) and ``new_params`` (the donor's);
* ``explore``:  the same donor, ``old_params`` (the donor's) and ``new_params`` (the mutated ones);
* ``skip``:     in the bottom quantile, but the donor reported no checkpoint at its perturbation
  step, so nothing was copied (the trainable should checkpoint at those steps).

A NaN or infinite value ranks last (Ray would leave the trial out of the ranking): Ray ranks
by a finite stand-in for it, and the events record the value as the trial reported it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

from scalehp.compiler import Plan
from scalehp.runner.adapter import Adapter
from scalehp.runner.search import domain, has_domain
from scalehp.schedulers.base import finite, reported
from scalehp.schedulers.pbt import mutations

log = logging.getLogger(__name__)


def _json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _rows(events: Any, scheduler: str, actions: list[str]) -> list[dict[str, Any]]:
    """The scheduler's ``events`` rows with these actions, in the order they were recorded."""
    if not len(events) or "scheduler" not in events:
        return []
    rows = events[(events["scheduler"] == scheduler) & events["action"].isin(actions)]
    return rows.sort_values(["time"], kind="stable").to_dict("records")


def _last_decisions(events: Any, scheduler: str) -> dict[str, dict[str, Any]]:
    """Trial id -> the step and value of its last PBT/PB2 decision."""
    out: dict[str, dict[str, Any]] = {}
    for row in _rows(events, scheduler, ["continue", "exploit", "skip"]):
        step = row.get("step")
        if step is None or step != step:
            continue
        value = row.get("value")
        if row["action"] == "exploit" and row.get("donor_step") == row.get("donor_step"):  # it went on from there
            step, value = row["donor_step"], row.get("donor_value")
        out[row["trial_id"]] = {"step": int(step), "value": None if value is None else float(value)}
    return out


def _last_exploits(events: Any, scheduler: str) -> dict[str, dict[str, Any]]:
    """Trial id -> its last decision when that was an exploit: the donor, its step, the explored params."""
    out: dict[str, dict[str, Any]] = {}
    for row in _rows(events, scheduler, ["continue", "skip", "explore"]):
        if row["action"] != "explore":
            out.pop(row["trial_id"], None)
            continue
        try:
            params = json.loads(row.get("new_params") or "{}")
        except ValueError:
            continue
        step = row.get("donor_step")
        if isinstance(params, dict) and step == step and step is not None:
            out[row["trial_id"]] = {"donor_trial_id": row.get("donor_trial_id"), "donor_step": int(step), "params": params}
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def _checkpoint_at(trial: Any, time_attr: str, step: int) -> Any:
    """The trial's checkpoint (Ray's ``_TrainingResult``) saved at ``step``, if it is still on disk."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    if manager is None:
        return None
    results = list(getattr(manager, "_checkpoint_results", []))
    latest = getattr(manager, "_latest_checkpoint_result", None)
    if latest is not None:
        results.append(latest)
    for result in reversed(results):
        path = getattr(getattr(result, "checkpoint", None), "path", None)
        if (result.metrics or {}).get(time_attr) == step and path and os.path.isdir(path):
            return copy.copy(result)
    return None


def exploit_folder(trial: Any, step: Any) -> str | None:
    """Where a trial keeps the donor's checkpoint of its exploit at ``step`` (its own folder, a
    name Ray's numbering never reaches), or None when its storage is not a local folder."""
    base = getattr(getattr(trial, "storage", None), "trial_fs_path", None)
    if not base or not os.path.isdir(base):
        return None
    return os.path.join(base, f"checkpoint_9{int(step):08d}")


def keep_donor_checkpoint(trial: Any, step: Any, sign: Callable[[Any], None] | None) -> None:
    """The exploiting trial restores from its own copy of the donor's checkpoint (hard links where
    the filesystem has them): the donor's ``checkpoints.keep`` may delete its copy before a resumed
    run restores from it. The copy is signed before Ray's state can name it."""
    manager = getattr(getattr(trial, "run_metadata", None), "checkpoint_manager", None)
    latest = getattr(manager, "_latest_checkpoint_result", None)
    source = getattr(getattr(latest, "checkpoint", None), "path", None)
    target = exploit_folder(trial, step)
    if not source or not os.path.isdir(source) or target is None:
        return  # remote storage: as Ray does it
    from ray.train import Checkpoint

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if os.path.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(source, target, copy_function=link)
    if sign is not None:
        sign(Path(target))
    kept = copy.copy(latest)
    kept.checkpoint = Checkpoint.from_directory(target)
    manager._latest_checkpoint_result = kept


def _kept_copy(trial: Any, exploit: dict, time_attr: str) -> Any:
    """The trial's copy of its exploit's donor checkpoint (:func:`keep_donor_checkpoint`), as Ray's result."""
    target = exploit_folder(trial, exploit["step"])
    if target is None or not os.path.isdir(target):
        return None
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult  # (Ray's PBT uses it the same way)

    return _TrainingResult(checkpoint=Checkpoint.from_directory(target), metrics={time_attr: exploit["donor_step"]})


def _draw(seed: Any, trial_id: str, step: Any) -> random.Random:
    """A generator for one decision, seeded by (seed, trial, step): the same after a resume."""
    digest = hashlib.sha256(f"{seed}:{trial_id}:{step}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _clip(distributions: dict[str, Any]) -> Callable[[dict], dict]:
    """Ray multiplies a param by a perturbation factor without bounds: keep it inside its range."""

    def explore(config: dict) -> dict:
        for name, param in distributions.items():
            if param.kind in ("float", "int") and isinstance(config.get(name), (int, float)):
                config[name] = param.clip(config[name])
        return config

    return explore


def population_scheduler(plan: Plan, time_attr: str, recorder: Any, tables: Any = None) -> Any:
    """Ray's PopulationBasedTraining or PB2 for the plan, recording each decision.

    ``tables`` (on resume): the run's tables; each trial's last perturbation step and value
    come from its last decision in ``events`` (Ray's own record of them is not kept).
    """
    record = recorder.decide
    restored = _last_decisions(tables.events, plan.scheduler) if tables is not None else {}
    exploits = _last_exploits(tables.events, plan.scheduler) if tables is not None else {}
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    experiment = plan.experiment
    metric, mode = experiment.metric.name, experiment.metric.mode
    name = plan.scheduler
    options = plan.scheduler_options
    distributions = mutations(experiment)
    names = list(distributions)

    def own(trial: Any) -> dict[str, Any]:
        return {key: trial.config.get(key) for key in names}

    def value_of(score: float | None, metric_op: float) -> float | None:
        return None if score is None else float(score * metric_op)

    class Recording:
        """Mixed into Ray's PBT/PB2: records decisions; a NaN or infinite value ranks last."""

        _exploited: Any = None

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._reported: Any = None  # the metric of the result being handled, as the trial reported it
            self._values: dict[str, Any] = {}  # trial id -> that value at its last perturbation step

        def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
            self._reported = result.get(metric) if result else None
            return super().on_trial_result(tune_controller, trial, finite(result, metric, mode))

        def _save_trial_state(self, state: Any, time: Any, result: dict, trial: Any) -> Any:
            score = super()._save_trial_state(state, time, result, trial)
            self._values[trial.trial_id] = self._reported  # Ray keeps the finite stand-in as its score
            return score

        def value(self, trial: Any) -> float | None:
            """The trial's metric at its last perturbation step, as it reported it (NaN, inf as they were)."""
            state = self._trial_state[trial]
            return self._values.get(trial.trial_id, reported(value_of(state.last_score, self._metric_op)))

        def _checkpoint_or_exploit(self, trial: Any, tune_controller: Any, upper: list, lower: list) -> None:
            self._exploited = None
            was_lower = trial in lower
            if was_lower:
                # a donor is never ahead of the trial (its curve keeps every step), and is drawn
                # with the experiment's seed (Ray draws from the global generator)
                step = self._trial_state[trial].last_train_time
                behind = [t for t in upper if self._trial_state[t].last_train_time <= step]
                if behind:
                    upper = [_draw(experiment.seed, trial.trial_id, step).choice(behind)]
                else:
                    lower = [t for t in lower if t is not trial]
            super()._checkpoint_or_exploit(trial, tune_controller, upper, lower)
            if self._exploited is trial:
                return
            state = self._trial_state[trial]
            event = {
                "trial_id": trial.trial_id,
                "step": state.last_train_time,
                "scheduler": name,
                "value": self.value(trial),
            }
            if was_lower:
                record({**event, "action": "skip"})
            else:  # the cutoff: the value of the best trial in the bottom quantile, as Ray ranked them
                best = max(lower, key=lambda t: self._trial_state[t].last_score, default=None)
                record({**event, "action": "continue", "cutoff": None if best is None else self.value(best)})

        def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
            state, donor = self._trial_state[trial], self._trial_state[trial_to_clone]
            self._pending = {
                "trial_id": trial.trial_id,
                "step": state.last_train_time,
                "scheduler": name,
                "value": self.value(trial),
                "donor_trial_id": trial_to_clone.trial_id,
                "donor_step": (donor.last_result or {}).get(time_attr, donor.last_train_time),
                "donor_value": self.value(trial_to_clone),
            }
            try:
                super()._exploit(tune_controller, trial, trial_to_clone)
            finally:
                self._pending = None
            keep_donor_checkpoint(trial, state.last_train_time, self.sign_checkpoint)
            self._exploited = trial
            if self.snapshots is not None:
                self.snapshots.force()  # Ray's saved state holds the exploit as soon as it is done

        def _get_new_config(self, trial: Any, trial_to_clone: Any) -> Any:
            # Ray's _exploit computes the new config here, then acts on it: the decision is on
            # disk first (exploit and explore rows), and reports carry the new params from now on
            new_config, operations = super()._get_new_config(trial, trial_to_clone)
            event = getattr(self, "_pending", None)
            if event is not None and event["trial_id"] == trial.trial_id:
                before, donor_params = own(trial), own(trial_to_clone)
                after = {key: new_config.get(key) for key in names}
                recorder.decide({**event, "action": "exploit", "old_params": _json(before), "new_params": _json(donor_params)})
                recorder.decide({**event, "action": "explore", "old_params": _json(donor_params), "new_params": _json(after)})
                recorder.set_config(trial.trial_id, new_config)
            return new_config, operations

        def restore_trials(self, trials: list) -> None:
            """Resume: an exploit on disk that Ray's saved state does not hold yet is done now
            (the explored params, the donor's checkpoint at the donor's step)."""
            by_id = {t.trial_id: t for t in trials}
            for trial_id, exploit in exploits.items():
                trial, donor = by_id.get(trial_id), by_id.get(exploit["donor_trial_id"])
                if trial is None or trial.status in ("TERMINATED", "ERROR"):
                    continue
                if all(_same(trial.config.get(k), v) for k, v in exploit["params"].items()):
                    continue  # Ray's state has it
                found = _checkpoint_at(donor, time_attr, exploit["donor_step"]) if donor is not None else None
                if found is None:  # the donor's own copy is gone: the trial's copy, if it was made
                    found = _kept_copy(trial, exploit, time_attr)
                trial.set_config({**trial.config, **exploit["params"]})
                if found is not None:
                    trial.run_metadata.checkpoint_manager._latest_checkpoint_result = found
                else:
                    log.warning("trial %s: the donor's checkpoint of its exploit is gone; it starts over", trial_id)
                    trial.run_metadata.checkpoint_manager._latest_checkpoint_result = None
                recorder.set_config(trial_id, trial.config)

        def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
            super().on_trial_add(tune_controller, trial)
            last = restored.get(trial.trial_id)
            if last is not None:  # resumed: where the trial was in the population, from the events
                state = self._trial_state[trial]
                state.last_perturbation_time = last["step"]
                state.last_train_time = last["step"]
                found = _checkpoint_at(trial, time_attr, last["step"])
                if found is not None:  # a donor again at once
                    state.last_checkpoint = found.checkpoint
                    state.last_result = found.metrics
                value = last["value"]
                if value is not None and value == value:
                    self._values[trial.trial_id] = value
                    state.last_score = finite({metric: value}, metric, mode)[metric] * self._metric_op

    common = {
        "time_attr": time_attr,
        "perturbation_interval": options.interval_steps,
        "quantile_fraction": options.quantile,
        "synch": options.synch,
        "log_config": False,  # the events table is the log
        "custom_explore_fn": _clip(distributions),
    }
    if name == "pb2":

        class RecordingPB2(Adapter, Recording, PB2):
            pass

        bounds = {key: [float(p.low), float(p.high)] for key, p in distributions.items()}
        return RecordingPB2(hyperparam_bounds=bounds, **common)

    class RecordingPBT(Adapter, Recording, PopulationBasedTraining):
        pass

    hyperparam_mutations = {}
    rng = random.Random(experiment.seed)  # resampled values repeat with the experiment's seed
    for key, param in distributions.items():
        if param.kind in ("choice", "grid"):  # a list: Ray moves to a neighbouring value
            hyperparam_mutations[key] = list(param.finite_values())
        elif has_domain(param):
            hyperparam_mutations[key] = domain(param)
        else:  # no Ray domain (lognormal): PBT takes a function that draws a value
            hyperparam_mutations[key] = functools.partial(param.sample, rng)
    return RecordingPBT(
        burn_in_period=options.burn_in_steps,
        hyperparam_mutations=hyperparam_mutations,
        resample_probability=options.resample_probability,
        perturbation_factors=tuple(options.perturbation_factors),
        **common,
    )


__all__ = ["population_scheduler"]
