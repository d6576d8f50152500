"""Trainables for the kill harness (tests/test_kill_harness.py).

Deterministic: a step's value is a pure function of the checkpoint it continues from, the
config and the step, so an interrupted and resumed run must make the same decisions as an
uninterrupted one. Every executed step (and every start) is appended to the file named by
``SCALEHP_STEP_LOG`` independently of scalehp's tables, so the harness can tell which steps
really ran, in which driver incarnation (``SCALEHP_KILL_ROUND``, inherited from the driver
by its local Ray's workers) and in which process.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

STEP_LOG = "SCALEHP_STEP_LOG"
ROUND = "SCALEHP_KILL_ROUND"


def _noise(config: dict, step: int) -> float:
    """A number in [0, 1) fixed by the config's ``x`` and the step (not by the process or the trial id)."""
    key = json.dumps({"x": config.get("x"), "step": step}, sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def log_line(**fields: object) -> None:
    """One JSON line, appended with O_APPEND and fsynced: on disk before the step is reported."""
    path = os.environ.get(STEP_LOG)
    if not path:
        return
    fields = {"round": int(os.environ.get(ROUND, "0")), "pid": os.getpid(), "time": time.time(), **fields}
    data = (json.dumps(fields, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)  # one write(2) of a short line: never interleaved with another process's
        os.fsync(fd)
    finally:
        os.close(fd)


def train(config: dict, trial) -> None:
    """``w`` shrinks by a factor set by ``lr`` each step, plus a little deterministic noise from ``x``.

    Checkpoints ``{"step", "w"}`` every step and continues from the restored one (after a
    resume, a retry or a PBT exploit). ``loss`` is ``w``: with ``lr`` fixed (ASHA, Hyperband) a
    pure function of the config and the step.
    """
    state = trial.restore()
    start, w = (0, 10.0) if state is None else (int(state["step"]), float(state["w"]))
    lr = float(config.get("lr", 0.5))
    log_line(event="start", trial_id=trial.trial_id, step=start, lr=lr, x=config.get("x"), w=w)
    for step in range(start + 1, trial.max_steps + 1):
        time.sleep(float(config.get("sleep", 0.1)))
        w = w * (1.0 - 0.5 * lr) + 0.5 * _noise(config, step)
        log_line(event="step", trial_id=trial.trial_id, step=step, lr=lr, x=config.get("x"), w=w)
        trial.report(step, {"loss": w, "lr_used": lr}, checkpoint={"step": step, "w": w})
