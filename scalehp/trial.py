"""The :class:`Trial` a trainable receives, and :class:`LocalTrial` to run one without Ray.

A trainable is a plain function::

    def train(config: dict, trial: scalehp.Trial) -> None:
        state = trial.restore()                  # None on a fresh start
        start = state["step"] if state else 0
        for step in range(start + 1, trial.max_steps + 1):
            ...                                  # one unit of training
            trial.report(step, {"val_loss": loss}, checkpoint={"step": step, "model": model.state_dict()})

``step`` is the unit of the budget (``budget.max_steps``) and of every scheduler. A plain
Ray Tune function ``def train(config)`` that calls ``ray.tune.report`` also runs unchanged
under ``scalehp run``; its steps are Ray's ``training_iteration``.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Callable, Literal

from scalehp.errors import RunError, SpecError, TrialError

TrainableKind = Literal["scalehp", "ray"]
_CHECKPOINT_FILE = "state.pt"


class MetricMissingError(TrialError, ValueError):
    """A report without the experiment's metric: the run stops at the first one."""


class Trial:
    """What a trainable gets to talk to the tuner. Subclasses connect it to Ray or run it locally.

    Attributes:
        trial_id: unique within the run.
        max_steps: the experiment's ``budget.max_steps``; a trainable should stop there.
        seed: a seed for this trial, derived from the experiment's seed and the trial.
        metric: the name of the experiment's metric; every report must include it.
    """

    def __init__(self, trial_id: str, *, max_steps: int, seed: int, metric: str):
        self.trial_id = trial_id
        self.max_steps = max_steps
        self.seed = seed
        self.metric = metric
        self._last_step: int | None = None

    def report(self, step: int, metrics: dict[str, Any], checkpoint: Any = None) -> None:
        """Report the metrics after ``step`` steps, optionally with a checkpoint.

        Args:
            step: steps done so far (1 after the first), increasing from report to report.
            metrics: name -> number; must include the experiment's metric.
            checkpoint: data that ``torch.load(weights_only=True)`` reads back: tensors,
                dicts, lists, tuples, numbers, strings (typically a dict of state dicts and the
                step); :meth:`restore` gives it back after a restart or a PBT exploit.

        Raises:
            ValueError: a step that does not increase, the experiment's metric missing, or a
                checkpoint that holds more than data.
        """
        self._check(step, metrics)
        self._report(int(step), dict(metrics), checkpoint)
        self._last_step = int(step)

    def restore(self) -> Any:
        """The last checkpoint to continue from, or ``None`` when the trial starts fresh."""
        return None

    def _report(self, step: int, metrics: dict[str, Any], checkpoint: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def _check(self, step: Any, metrics: Any) -> None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 1:
            raise ValueError(f"trial.report: step must be an integer >= 1, got {step!r}")
        if step > self.max_steps:
            raise ValueError(f"trial.report: step {step} is beyond budget.max_steps ({self.max_steps})")
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"trial.report: step {step} does not increase (last was {self._last_step})")
        if not isinstance(metrics, dict):
            raise ValueError(f"trial.report: metrics must be a dict, got {type(metrics).__name__}")
        if self.metric not in metrics:
            raise MetricMissingError(
                f"the trainable reported {sorted(metrics)} but not the experiment's metric {self.metric!r}: "
                "fix metric.name or the trainable's report"
            )
        if "step" in metrics:
            raise ValueError("trial.report: 'step' is reserved; pass it as the first argument")


def save_checkpoint(state: Any, folder: str | Path) -> Path:
    """Write a checkpoint object into ``folder`` (``torch.save`` when torch is installed).

    A checkpoint holds data only: tensors, dicts, lists, tuples, numbers, strings (what
    ``torch.load(weights_only=True)`` reads back), never objects whose loading runs code.

    Raises:
        ValueError: ``state`` holds something else (a NumPy array, a model object, ...).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _CHECKPOINT_FILE
    with open(path, "w+b") as handle:  # (to the file, not to memory: a model's state can be large)
        try:
            _write_checkpoint(state, handle)
        except ValueError:
            handle.close()
            path.unlink(missing_ok=True)
            raise
    return path


def check_checkpoint(state: Any) -> None:
    """Refuse a checkpoint that would not load back as data only (as :func:`save_checkpoint` does).

    Raises:
        ValueError: ``state`` holds something else (a NumPy array, a model object, ...).
    """
    _write_checkpoint(state, io.BytesIO())


def _write_checkpoint(state: Any, handle: Any) -> None:
    try:
        import torch
    except ImportError:
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _DataUnpickler(io.BytesIO(data)).load()
        except pickle.UnpicklingError as exc:
            raise ValueError(f"trial.report: {_CHECKPOINT_DATA} ({exc})") from None
        handle.write(data)
        return
    torch.save(state, handle)
    handle.flush()
    handle.seek(0)
    found = _unsafe_globals(handle)
    if found:
        raise ValueError(f"trial.report: {_CHECKPOINT_DATA} (it holds {found})")


def _unsafe_globals(file: Any) -> str:
    """What in a torch checkpoint ``weights_only=True`` refuses ("" when nothing), without loading it."""
    import torch

    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is None:  # torch < 2.5: load it the way it will be loaded
        try:
            torch.load(file, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError:
            return "objects that are not data"
        return ""
    return _names(scan(file))


def _names(found: list[str]) -> str:
    """Names read from a checkpoint (anyone's text): escaped, at most five."""
    names = sorted(found)
    return ", ".join(ascii(n[:100]) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def load_checkpoint(folder: str | Path) -> Any:
    """Read back what :func:`save_checkpoint` wrote, as data only: nothing in it is run.

    Raises:
        RunError: the file holds anything but data (an object whose loading would run code).
    """
    path = Path(folder) / _CHECKPOINT_FILE
    try:
        import torch
    except ImportError:
        try:
            with open(path, "rb") as handle:
                return _DataUnpickler(handle).load()
        except pickle.UnpicklingError as exc:
            raise RunError(f"{path}: not loaded: {_CHECKPOINT_DATA} ({exc})") from None
    try:
        return torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        try:
            found = _unsafe_globals(path) or "objects that are not data"
        except Exception:  # noqa: BLE001 - only for the message
            found = "objects that are not data"
        raise RunError(f"{path}: not loaded: {_CHECKPOINT_DATA} (it holds {found})") from None


_CHECKPOINT_DATA = "a checkpoint holds only tensors, dicts, lists, tuples, numbers and strings"


class _DataUnpickler(pickle.Unpickler):
    """Without torch: plain data only; any class or function in the pickle is refused."""

    _ALLOWED = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it holds {_names([f'{module}.{name}'])}")


def trial_seed(experiment_seed: int | None, index: int) -> int:
    """A per-trial seed: fixed by the experiment's seed and the trial's position."""
    base = 0 if experiment_seed is None else experiment_seed
    return (base * 1_000_003 + index * 7919 + 17) % (2**31 - 1)


class LocalTrial(Trial):
    """Runs a trainable in this process, without Ray: for debugging and tests.

    Reports are kept in :attr:`reports`; checkpoints are kept in memory, once known to be
    data (and round-tripped through :func:`save_checkpoint` when ``checkpoint_dir`` is given).

    Example:
        >>> trial = LocalTrial(max_steps=3, metric="loss")
        >>> for step in range(1, 4):
        ...     trial.report(step, {"loss": 1 / step})
        >>> [r["loss"] for r in trial.reports]
        [1.0, 0.5, 0.3333333333333333]
    """

    def __init__(
        self,
        *,
        max_steps: int,
        metric: str,
        seed: int = 0,
        trial_id: str = "local",
        checkpoint_dir: str | Path | None = None,
        on_report: Callable[[dict[str, Any]], None] | None = None,
    ):
        super().__init__(trial_id, max_steps=max_steps, seed=seed, metric=metric)
        self.reports: list[dict[str, Any]] = []
        self.checkpoint: Any = None
        self._checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._on_report = on_report

    def _report(self, step: int, metrics: dict[str, Any], checkpoint: Any) -> None:
        row = {"step": step, **metrics}
        self.reports.append(row)
        if checkpoint is not None:
            if self._checkpoint_dir is not None:
                save_checkpoint(checkpoint, self._checkpoint_dir)
                checkpoint = load_checkpoint(self._checkpoint_dir)
            else:
                check_checkpoint(checkpoint)  # what a run would refuse to save, refused here too
            self.checkpoint = checkpoint
        if self._on_report is not None:
            self._on_report(row)

    def restore(self) -> Any:
        return self.checkpoint


def load_trainable(
    reference: str, *, source: str = "<dict>", line: int | None = None
) -> tuple[Callable, TrainableKind]:
    """Import ``module:function`` and tell which calling convention it uses.

    ``def f(config, trial)`` is a scalehp trainable; ``def f(config)`` a plain Ray Tune one.
    The current folder is importable, as with ``python -m``.

    Raises:
        SpecError: the module or function cannot be imported, or has another signature.
    """

    def fail(message: str) -> SpecError:
        return SpecError(message, source=source, path="trainable", line=line)

    module_name, _, function_name = reference.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise fail(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - user code failing at import is reported, not raised raw
        raise fail(f"importing {module_name!r} raised {exc.__class__.__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if function is None:
        public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise fail(
            f"module {module_name!r} has no function {function_name!r} (it has: {', '.join(sorted(public)) or 'none'})"
        )
    if not callable(function):
        raise fail(f"{reference!r} is not a function")
    try:
        parameters = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return function, "ray"
    if len(parameters) == 2:
        return function, "scalehp"
    if len(parameters) == 1:
        return function, "ray"
    raise fail(f"{reference!r} must take (config, trial) or (config), not {len(parameters)} arguments")
