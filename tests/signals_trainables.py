"""Trainables for the signal, worker-death and hung-trial tests (tests/test_signals.py)."""

from __future__ import annotations


def slow(config: dict, trial) -> None:
    """Checkpoints every step and sleeps ``sleep`` seconds per step: for interrupting a run."""
    import time

    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        time.sleep(config["sleep"])
        trial.report(step, {"loss": config["x"] + 1.0 / step}, checkpoint={"step": step})


def _attempt(config: dict, trial) -> int:
    """This attempt's number for this trial, from 1 (a file in ``marker_dir`` counts them)."""
    from pathlib import Path

    marker = Path(config["marker_dir"]) / f"{trial.trial_id}.attempts"
    attempt = int(marker.read_text()) + 1 if marker.exists() else 1
    marker.write_text(str(attempt))
    return attempt


def dies(config: dict, trial) -> None:
    """Its worker process is killed (SIGKILL, as the kernel's OOM killer does) at step 2 of each
    of its first ``deaths`` attempts; runs to the end after that."""
    import os
    import signal

    attempt = _attempt(config, trial)
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        if step == 2 and attempt <= config["deaths"]:
            os.kill(os.getpid(), signal.SIGKILL)
        trial.report(step, {"loss": config["deaths"] + 1.0 / step}, checkpoint={"step": step})


def eats_memory(config: dict, trial) -> None:
    """Holds ``mb`` MB at step 2 of its first attempt when ``eat`` (Ray's memory monitor kills
    it long before it lets go), then runs normally."""
    import time

    attempt = _attempt(config, trial)
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        if step == 2 and config["eat"] and attempt == 1:
            block = bytearray(config["mb"] << 20)  # zero-filled: every page is touched
            time.sleep(60)
            del block
        trial.report(step, {"loss": float(config["eat"]) + 1.0 / step}, checkpoint={"step": step})


def hangs(config: dict, trial) -> None:
    """Reports once, then hangs in its own code without reporting again (a deadlock, a stuck read)."""
    import time

    trial.report(1, {"loss": config["x"]})
    while True:
        time.sleep(3600)
