"""A stand-in for the ``wandb`` client, for W&B sweep programs run as scalehp command trials.

``wandb.init()`` hands the program the trial's params as ``wandb.config``; ``wandb.log`` prints
what it logs as JSON lines that the command trial reads. A log call holding the experiment's
metric is one step (W&B's Hyperband counts the metric's logged values the same way); values
logged by other calls since the last step are reported with the next one. Nothing leaves the
machine. See ``scalehp.clients``.
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


class Config(dict):
    """``wandb.config``: the run's params, by key or attribute."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def update(self, other: Any = None, allow_val_change: bool = False, **more: Any) -> None:  # noqa: ARG002
        """Defaults from the program; the sweep's params keep their values (as in a W&B sweep)."""
        for key, value in dict(other or {}, **more).items():
            self[key] = _under(value, _SWEPT[key]) if key in _SWEPT else value

    def setdefaults(self, d: dict) -> None:
        for key, value in d.items():
            self.setdefault(key, value)

    def as_dict(self) -> dict:
        return dict(self)


def _under(default: Any, swept: Any) -> Any:
    """A program's default with the sweep's values over it (nested params merged)."""
    if isinstance(default, dict) and isinstance(swept, dict):
        return {**default, **{k: _under(default.get(k), v) for k, v in swept.items()}}
    return swept


class Summary(dict):
    """``run.summary``: values set here are reported when the run finishes."""

    def update(self, other: Any = None, **more: Any) -> None:
        super().update(dict(other or {}, **more))


class Settings:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


class Run:
    def __init__(self, name: str | None, project: str | None) -> None:
        self.id = os.environ.get("SCALEHP_TRIAL_ID", "local")
        self.name = name or self.id
        self.project = project
        self.config = config
        self.summary = summary

    def log(self, data: dict, step: int | None = None, commit: bool | None = None) -> None:
        log(data, step=step, commit=commit)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        finish(exit_code, quiet)

    def define_metric(self, *args: Any, **kwargs: Any) -> None:
        return None

    def watch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        finish()


_SWEPT = _base.nested(_base.params())
config = Config(_SWEPT)
summary = Summary()
run: Run | None = None
_steps = 0  # calls that logged the metric
_since: dict = {}  # values logged since the last step


def init(project: str | None = None, entity: str | None = None, config: Any = None, name: str | None = None, **kwargs: Any) -> Run:  # noqa: ARG001
    """The run: ``config`` (a mapping or an object with ``__dict__``) gives defaults."""
    global run
    if config is not None:
        globals()["config"].update(config if isinstance(config, dict) else vars(config))
    if run is None:
        run = Run(name, project)
    return run


def log(data: dict, step: int | None = None, commit: bool | None = None) -> None:  # noqa: ARG001
    """Values of this step; a call with the experiment's metric ends the step."""
    global _steps
    _since.update(data)
    if _base.metric() in data:
        _steps += 1
        _base.emit(_steps, _since)
        _since.clear()


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:  # noqa: ARG001
    """Report a summary value of the metric when the program never logged it."""
    global run
    name = _base.metric()
    if _steps == 0 and name in summary:
        _base.emit(1, {**_since, **summary})
    run = None


def define_metric(*args: Any, **kwargs: Any) -> None:
    return None


def watch(*args: Any, **kwargs: Any) -> None:
    return None


def save(*args: Any, **kwargs: Any) -> None:
    return None


def login(*args: Any, **kwargs: Any) -> bool:
    return True


def agent(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("wandb.agent: scalehp runs the sweep; run the program itself (scalehp import, then scalehp run)")


def sweep(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("wandb.sweep: scalehp runs the sweep; import its file (scalehp import --from wandb)")


atexit.register(finish)
