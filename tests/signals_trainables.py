"""Trainables for the signal, worker-death and hung-trial tests."""

from __future__ import annotations


def slow(config: dict, trial) -> None:
    """Checkpoints every step and sleeps ``sleep`` seconds per step: for interrupting a run."""
    import time

    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        time.sleep(config.get("sleep", 0.2))
        trial.report(step, {"loss": config["x"] + 1.0 / step}, checkpoint={"step": step})


def dies_once(config: dict, trial) -> None:
    """Its worker is killed (SIGKILL, as the out-of-memory killer does) at step 2 of its first
    attempt when ``x`` < ``die_below``; runs to the end otherwise, and when retried."""
    import os
    import signal
    from pathlib import Path

    marker = Path(config["marker_dir"]) / f"{trial.trial_id}.died"
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        if step == 2 and config["x"] < config["die_below"] and not marker.exists():
            marker.write_text("died once")
            os.kill(os.getpid(), signal.SIGKILL)
        trial.report(step, {"loss": config["x"] + 1.0 / step}, checkpoint={"step": step})


def hangs(config: dict, trial) -> None:
    """Reports once, then hangs without reporting again (a deadlock, a stuck read)."""
    import time

    trial.report(1, {"loss": config["x"]})
    while True:
        time.sleep(3600)


def eats_memory(config: dict, trial) -> None:
    """Holds ``mb`` MB at step 2 of its first attempt (Ray's memory monitor kills it), then runs normally."""
    import time
    from pathlib import Path

    marker = Path(config["marker_dir"]) / f"{trial.trial_id}.ate"
    state = trial.restore()
    start = state["step"] if state else 0
    for step in range(start + 1, trial.max_steps + 1):
        if step == 2 and config["x"] < config["die_below"] and not marker.exists():
            marker.write_text("ate memory")
            block = bytearray(config["mb"] << 20)  # zero-filled: every page is touched
            time.sleep(30)  # the monitor checks every refresh_ms; it kills long before this ends
            del block
        trial.report(step, {"loss": config["x"] + 1.0 / step}, checkpoint={"step": step})
