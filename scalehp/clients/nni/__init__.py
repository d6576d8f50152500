"""A stand-in for the ``nni`` trial API, for NNI trial code run as scalehp command trials.

``nni.get_next_parameter()`` hands the trial its params (a nested choice as
``{"_name": option, sub-params...}``, as NNI does); each ``report_intermediate_result`` is one
step and ``report_final_result`` gives the last step its values (the result NNI's tuner sees).
They are printed as JSON lines that the command trial reads, a step when the next begins or
the trial ends (so that the final result can still give it its values). A result is a number
or a mapping with ``default`` (the metric) and other numbers. Nothing leaves the machine. See
``scalehp.clients``.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

try:  # in the trial's program, scalehp/clients is first on its PYTHONPATH
    import _scalehp_stand_in as _base
except ImportError:  # imported as part of the scalehp package
    from scalehp.clients import _scalehp_stand_in as _base

__version__ = "0.0.0+scalehp-stand-in"

_steps = 0
_pending: dict | None = None  # the last intermediate result, not printed yet
_params: dict | None = None


def get_next_parameter() -> dict:
    """The trial's params (and ``TRIAL_BUDGET`` when the experiment was NNI's Hyperband)."""
    global _params
    _params = _base.nested(_base.params(), named=True)
    budget = os.environ.get("SCALEHP_NNI_TRIAL_BUDGET")
    if budget:
        _params["TRIAL_BUDGET"] = int(budget) if budget.isdigit() else float(budget)
    return dict(_params)


def get_current_parameter(tag: str | None = None) -> Any:
    current = _params if _params is not None else get_next_parameter()
    return current if tag is None else current[tag]


def _values(metric: Any) -> dict:
    name = _base.metric()
    if isinstance(metric, dict):
        values = dict(metric)
        if "default" in values and name != "default":
            values[name] = values.pop("default")
        return values
    return {name: metric}


def report_intermediate_result(metric: Any) -> None:
    """One step; printed when the next begins or the trial ends, so that a final result can
    still give it its values."""
    global _steps, _pending
    _flush()
    _steps += 1
    _pending = _values(metric)


def report_final_result(metric: Any) -> None:
    """The trial's result: the values of its last step (step 1 without intermediate results)."""
    global _steps, _pending
    if _pending is None:
        _steps += 1
        _pending = {}
    _pending.update(_values(metric))
    _flush()


def _flush() -> None:
    global _pending
    if _pending is not None:
        _base.emit(_steps, _pending)
        _pending = None


def get_trial_id() -> str:
    return os.environ.get("SCALEHP_TRIAL_ID", "local")


def get_experiment_id() -> str:
    return "scalehp"


def get_sequence_id() -> int:
    return 0


atexit.register(_flush)
