"""A vectorized objective: the 6-dimensional Hartmann function over a whole batch of configs at
once with numpy (``runtime: {swarm: {vectorized: true}}``).

Its global minimum is -3.32237 at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
(Surjanovic and Bingham, Virtual Library of Simulation Experiments).
"""

from __future__ import annotations

import numpy as np

_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])
NAMES = ("x1", "x2", "x3", "x4", "x5", "x6")


def hartmann6(configs: list[dict]) -> list[dict]:
    """One call for the whole batch: a (configs x 6) array, one vector operation."""
    x = np.array([[config[name] for name in NAMES] for config in configs])
    inner = (_A[None, :, :] * (x[:, None, :] - _P[None, :, :]) ** 2).sum(axis=2)
    values = -(_ALPHA[None, :] * np.exp(-inner)).sum(axis=1)
    return [{"value": float(v)} for v in values]
