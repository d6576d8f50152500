"""PBT lineage: the family tree of a trial and the param schedule it actually trained with.

When PBT makes a trial exploit another, the trial drops its own weights, continues from the
donor's checkpoint and explores new params. The scheduler records this as an ``events`` row
with ``action="exploit"``, ``trial_id`` (the trial that copies), ``donor_trial_id``,
``step`` (when), ``old_params`` and ``new_params`` (JSON objects, param name -> value).

So the best trial's history is a chain of segments: its own steps after its last exploit,
before that the donor's steps up to that point, and so on back to a trial that never
exploited. :func:`lineage` finds that chain; :func:`param_schedule` reads the params in
effect along it from the ``reports`` table (which holds the config at every step).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from scalehp.errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def _as_params(value: Any) -> dict[str, Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ResultsError(f"PBT event params are not a JSON object: {value[:60]!r}") from None
    if not isinstance(value, dict):
        raise ResultsError(f"PBT event params are not a JSON object: {value!r}")
    return {str(k).removeprefix("param_"): v for k, v in value.items()}


def _one_run(frame: pd.DataFrame, run_id: str | None, what: str) -> pd.DataFrame:
    if run_id is not None:
        return frame[frame["run_id"] == run_id]
    if frame["run_id"].nunique() > 1:
        raise ResultsError(f"{what} is per run: name the run (run_id), these tables hold several")
    return frame


def exploits(events: pd.DataFrame, run_id: str | None = None) -> pd.DataFrame:
    """Every exploit decision: ``run_id, trial_id, step, donor_trial_id, old_params, new_params`` (dicts)."""
    import pandas as pd

    columns = ["run_id", "trial_id", "step", "donor_trial_id", "old_params", "new_params"]
    if events.empty or "donor_trial_id" not in events.columns or "action" not in events.columns:
        return pd.DataFrame(columns=columns)
    rows = events[events["action"] == "exploit"]
    if run_id is not None:
        rows = rows[rows["run_id"] == run_id]
    out = rows.reindex(columns=columns).copy()
    out["old_params"] = [_as_params(v) for v in out["old_params"]]
    out["new_params"] = [_as_params(v) for v in out["new_params"]]
    out["step"] = out["step"].astype("int64")
    return out.sort_values(["run_id", "step", "trial_id"], kind="stable").reset_index(drop=True)


def lineage(
    events: pd.DataFrame, trial_id: str, run_id: str | None = None, last_step: int | None = None
) -> pd.DataFrame:
    """The chain of trials whose training ``trial_id`` continues, newest segment first.

    Returns one row per segment: ``generation`` (0 for the trial itself, 1 for the donor it
    last copied, …), ``trial_id``, ``from_step`` (exclusive; 0 for the founder),
    ``to_step`` (inclusive; ``last_step`` or None for the trial's own open end), and
    ``donor_trial_id`` (the trial the segment's owner copied at ``from_step``, or None).
    """
    import pandas as pd

    edges = exploits(_one_run(events, run_id, "a PBT lineage") if len(events) else events)
    segments = []
    current, upto = trial_id, last_step
    for generation in range(len(edges) + 1):
        mine = edges[edges["trial_id"] == current]
        if upto is not None:
            # the trial itself may have copied at its last step; its donors only before the copy
            mine = mine[mine["step"] <= upto] if generation == 0 else mine[mine["step"] < upto]
        if mine.empty:
            segments.append((generation, current, 0, upto, None))
            break
        edge = mine.iloc[-1]
        donor = str(edge["donor_trial_id"])
        segments.append((generation, current, int(edge["step"]), upto, donor))
        current, upto = donor, int(edge["step"])
    else:  # pragma: no cover - a cycle cannot happen with steps strictly decreasing
        raise ResultsError(f"PBT lineage of {trial_id}: exploit events form a cycle")
    out = pd.DataFrame(segments, columns=["generation", "trial_id", "from_step", "to_step", "donor_trial_id"])
    out["to_step"] = out["to_step"].astype("Int64")
    return out


def param_schedule(
    reports: pd.DataFrame, events: pd.DataFrame, trial_id: str, run_id: str | None = None
) -> pd.DataFrame:
    """The params in effect at each step of ``trial_id``'s whole history, through its lineage.

    One row per step: ``step``, ``trial_id`` (whose training that step was), the
    ``param_*`` columns and the ``metric_*`` columns of that report.
    """
    import pandas as pd

    reports = _one_run(reports, run_id, "a PBT param schedule") if len(reports) else reports
    if run_id is None and len(reports):
        run_id = str(reports["run_id"].iloc[0])
    chain = lineage(events, trial_id, run_id=run_id)
    parts = []
    for _, segment in chain.iterrows():
        mine = reports[(reports["trial_id"] == segment["trial_id"]) & (reports["step"] > segment["from_step"])]
        if pd.notna(segment["to_step"]):
            mine = mine[mine["step"] <= segment["to_step"]]
        parts.append(mine)
    if not parts:
        return reports.iloc[0:0]
    keep = ["step", "trial_id"] + [c for c in reports.columns if c.startswith(("param_", "metric_"))]
    return pd.concat(parts)[keep].sort_values("step", kind="stable").reset_index(drop=True)
