"""Trainables for the cluster tests: slow enough (a short sleep per step) that trials overlap
on several nodes and a node can be killed while they run; checkpoint at every step."""

from __future__ import annotations

import time


def paced(config: dict, trial) -> None:
    """Loss falls with steps. Also reports from which step a retried trial went on
    (``restored_from``) and what Ray placed it with (``assigned_<resource>``)."""
    import ray

    assigned = {f"assigned_{k}": float(v) for k, v in ray.get_runtime_context().get_assigned_resources().items()}
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        time.sleep(config["pause"])
        loss = (config["x"] - 0.3) ** 2 + 1.0 / step
        metrics = {"loss": loss, "restored_from": float(start), **assigned}
        trial.report(step, metrics, checkpoint={"step": step})
