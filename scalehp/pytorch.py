"""torch helpers for trainables: device choice, seeding, checkpoint state.

    device = scalehp.pytorch.device()
    scalehp.pytorch.seed_everything(trial.seed)
    state = trial.restore()
    step = scalehp.pytorch.load_state(state, model, optimizer) if state else 0
    scalehp.pytorch.set_hyperparams(optimizer, lr=config["lr"])   # PBT: the config wins over the donor's
    ...
    trial.report(step, metrics, checkpoint=scalehp.pytorch.state(step, model, optimizer))

torch is imported inside the functions: scalehp itself runs without it.
"""

from __future__ import annotations

import random
from typing import Any


def device(prefer_gpu: bool = True) -> Any:
    """``cuda`` when this process was given a GPU (by Ray or by hand), else ``cpu``."""
    import torch

    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (when installed) and torch's random generators."""
    import torch

    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with torch's usual installs
        pass
    else:
        np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        pass
    else:  # as plain data (a checkpoint holds no NumPy objects): name, keys, pos, has_gauss, cached_gaussian
        name, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [str(name), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def state(step: int, model: Any, optimizer: Any = None, **extra: Any) -> dict[str, Any]:
    """A checkpoint for ``trial.report``: model, optimizer, step and RNG state, plus ``extra``.

    All of it is data that ``torch.load(weights_only=True)`` reads back (tensors, dicts,
    lists, numbers, strings); so must ``extra`` be.
    """
    data = {"step": int(step), "model": model.state_dict(), "rng": _rng_state(), **extra}
    if optimizer is not None:
        data["optimizer"] = optimizer.state_dict()
    return data


def load_state(data: dict[str, Any], model: Any, optimizer: Any = None, *, restore_rng: bool = True) -> int:
    """Load what :func:`state` saved into ``model`` (and ``optimizer``); return the step it was taken at."""
    import torch

    model.load_state_dict(data["model"])
    if optimizer is not None and "optimizer" in data:
        optimizer.load_state_dict(data["optimizer"])
    rng = data.get("rng")
    if restore_rng and rng:
        random.setstate(rng["python"])
        torch.set_rng_state(rng["torch"])
        if "numpy" in rng:
            import numpy as np

            name, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    return int(data["step"])


def set_hyperparams(optimizer: Any, **values: Any) -> None:
    """Set ``lr``, ``momentum``, ``weight_decay``, … in every param group of ``optimizer``.

    Loading an optimizer's state dict also loads the hyperparams it was saved with. After a
    PBT exploit those are the donor's, not the trial's new (explored) config: call this after
    :func:`load_state` so the config is what the optimizer uses. Only keys the param groups
    already have are set; ``None`` values are skipped.

    Example:
        >>> import torch
        >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
        >>> set_hyperparams(opt, lr=0.01, momentum=None)
        >>> opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]
        (0.01, 0.9)
    """
    for group in optimizer.param_groups:
        for key, value in values.items():
            if value is not None and key in group:
                group[key] = value
