"""Worker side: the function Ray runs, and the Trial it hands the user's trainable."""

from __future__ import annotations

import math
import tempfile
from typing import Any, Callable

from scalehp.compiler import Plan
from scalehp.errors import Infeasible
from scalehp.results.schema import INFEASIBLE
from scalehp.trial import Trial, load_checkpoint, save_checkpoint, trial_seed


class _RayTrial(Trial):
    """A :class:`Trial` inside a Ray Tune function trainable."""

    def _report(self, step: int, metrics: dict[str, Any], checkpoint: Any) -> None:
        from ray import tune

        result = {**metrics, "step": step, "node_id": _node_id()}
        if checkpoint is None:
            tune.report(result)
            return
        with tempfile.TemporaryDirectory(prefix="scalehp-ckpt-") as folder:
            save_checkpoint(checkpoint, folder)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))

    def restore(self) -> Any:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(folder)
        if isinstance(state, dict) and isinstance(state.get("step"), int):
            self._last_step = state["step"]
        return state


def _node_id() -> str | None:
    """The Ray node running this trial (all nodes of a one-machine cluster share one IP)."""
    import ray

    try:
        return ray.get_runtime_context().get_node_id()
    except RuntimeError:
        return None


def _trial_index(trial_id: str) -> int:
    try:
        return int(trial_id.rsplit("_", 1)[-1])
    except ValueError:
        return 0


def trial_name(trial: Any) -> str:
    """``trial_00007``: the trial's position in the run (Ray's experiment tag starts with it)."""
    head = str(getattr(trial, "experiment_tag", "") or "").split("_", 1)[0]
    return f"trial_{int(head):05d}" if head.isdigit() else f"trial_{trial.trial_id}"


def trial_dirname(trial: Any) -> str:
    """Ray's folder of one trial: its id (short, unique, no params in the name)."""
    return trial.trial_id


def entry_point(train: Callable, kind: str, plan: Plan) -> Callable[[dict], None]:
    """A fresh function for Ray to run (never the user's own object)."""
    max_steps = plan.experiment.budget.max_steps
    metric = plan.experiment.metric.name
    objectives = [m.name for m in plan.experiment.objectives]
    seed = plan.experiment.seed

    def scalehp_trial(config: dict) -> None:
        if kind == "ray":
            train(config)
            return
        from ray import tune

        context = tune.get_context()
        trial_id = context.get_trial_id() or "trial"
        index = _trial_index(context.get_trial_name() or "")
        trial = _RayTrial(trial_id, max_steps=max_steps, seed=trial_seed(seed, index), metric=metric)
        try:
            train(config, trial)
        except Infeasible as exc:  # a result, not an error: Ray would retry an error
            tune.report({**{name: math.nan for name in objectives}, INFEASIBLE: str(exc) or "infeasible"})

    scalehp_trial.__name__ = scalehp_trial.__qualname__ = f"scalehp_{plan.name.replace('-', '_').replace('.', '_')}"
    return scalehp_trial
