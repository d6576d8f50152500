"""A problem where the learning rate schedule matters: noisy gradient descent on a quadratic.

Minimise ``0.5 * |w|^2`` in ``dim`` dimensions from ``w = 10``, with gradients that carry
Gaussian noise. A large learning rate gets close fast but then jitters at a noise floor
proportional to it; a small one has a low floor but gets there too slowly. No fixed
learning rate does as well as one that starts large and decays, which is what PBT finds:
it copies the trials that are ahead and keeps trying smaller and larger rates.

One step is ``inner`` noisy updates (default 10). numpy only, a few microseconds a step.
"""

from __future__ import annotations

import numpy as np

import scalehp


def train(config: dict, trial: scalehp.Trial) -> None:
    dim, inner, noise = int(config.get("dim", 20)), int(config.get("inner", 10)), float(config.get("noise", 1.0))
    state = trial.restore()
    w, start = (np.full(dim, 10.0), 0) if state is None else (np.asarray(state["w"], dtype=float), state["step"])
    for step in range(start + 1, trial.max_steps + 1):
        # the noise of a step depends on this trial and the step only: a trial that copies a
        # donor's weights does not also copy its future noise, and a resumed trial repeats itself
        rng = np.random.default_rng([trial.seed, step])
        lr = float(config["lr"])
        for _ in range(inner):
            w = w - lr * (w + noise * rng.standard_normal(dim))
        loss = 0.5 * float(w @ w)
        trial.report(step, {"loss": loss, "lr_used": lr}, checkpoint={"step": step, "w": w.tolist()})
