"""What the wandb and nni stand-ins share: the trial's params and the lines they print.

It imports nothing from scalehp (the program may run under another Python); see
``scalehp.clients``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def params() -> dict:
    """The trial's params, as scalehp hands them to the command (``SCALEHP_PARAMS``)."""
    try:
        data = json.loads(os.environ.get("SCALEHP_PARAMS") or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def nested(flat: dict, named: bool = False) -> dict:
    """Dotted names as nested mappings (``{"opt.lr": 1}`` -> ``{"opt": {"lr": 1}}``); with
    ``named``, a branch param's option goes under ``_name`` (NNI's nested choices)."""
    branches = set(json.loads(os.environ.get("SCALEHP_BRANCHES") or "[]")) if named else set()
    out: dict = {}
    for key in sorted(flat, key=lambda k: k.count(".")):
        value = flat[key]
        parts = key.split(".")
        here = out
        for part in parts[:-1]:
            inner = here.get(part)
            if not isinstance(inner, dict):
                inner = {"_name": inner} if named and part in here else {}
                here[part] = inner
            here = inner
        if named and key in branches:
            here[parts[-1]] = {"_name": value, **(here.get(parts[-1]) or {})}
        else:
            here[parts[-1]] = value
    return out


def metric() -> str:
    return os.environ.get("SCALEHP_METRIC") or "default"


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _flat(values: dict, prefix: str = "") -> dict:
    out: dict = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def emit(step: int | None, values: dict) -> None:
    """One line the command trial reads: a JSON object of the numbers (``step`` first)."""
    numbers = {k: n for k, v in _flat(values).items() if (n := number(v)) is not None}
    line = {"step": step, **numbers} if step is not None else numbers
    if line:
        sys.stdout.write(json.dumps(line, allow_nan=True) + "\n")
        sys.stdout.flush()
