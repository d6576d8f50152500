"""What every scheduler scalehp hands to Ray has in common (mixed in before Ray's class)."""

from __future__ import annotations

from typing import Any


def _placeholder() -> Any:
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


class Adapter:
    """Mixed in before Ray's scheduler class: not pickled with Ray's state (``scalehp resume``
    builds a new one and restores it from the tables), and tells the run's :class:`Snapshots`
    which controller runs it."""

    snapshots: Any = None
    sign_checkpoint: Any = None  # signs a checkpoint folder the scheduler writes itself

    def __reduce__(self) -> Any:
        return (_placeholder, ())

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        if self.snapshots is not None:
            self.snapshots.attach(tune_controller)
        super().on_trial_add(tune_controller, trial)  # type: ignore[misc]
