"""PBT lineage: the family tree of a trial and the param schedule it actually trained with.

When PBT makes a trial exploit another, the trial drops its own weights, continues from the
donor's checkpoint and explores new params. The scheduler records this as an ``events`` row
with ``action="exploit"``, ``trial_id`` (the trial that copies), ``donor_trial_id``,
``step`` (when), ``donor_step`` (the donor's checkpoint step the trial resumes from; optional),
``old_params`` and ``new_params`` (JSON objects as text, param name -> value; an Arrow map
column reads too), followed by an ``explore`` row whose ``new_params`` are the mutated params.

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
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):  # an Arrow map column reads as pairs
        value = dict(value.tolist() if hasattr(value, "tolist") else value)
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
    """Every exploit decision, oldest first.

    Columns: ``run_id, trial_id, time, step`` (the trial's step when it copied),
    ``donor_trial_id``, ``donor_step`` (the donor's checkpoint step, where the trial resumes;
    ``step`` when the events do not say), ``old_params``, ``new_params`` (dicts, as recorded)
    and ``explored_params``: the params the trial trained with after the copy (the
    ``new_params`` of the ``explore`` event recorded with the exploit, else ``new_params``).
    """
    import pandas as pd

    columns = ["run_id", "trial_id", "time", "step", "donor_trial_id", "donor_step", "old_params", "new_params"]
    if events.empty or "donor_trial_id" not in events.columns or "action" not in events.columns:
        return pd.DataFrame(columns=[*columns, "explored_params"])
    if run_id is not None:
        events = events[events["run_id"] == run_id]
    rows = events[events["action"] == "exploit"]
    out = rows.reindex(columns=columns).copy()
    out["old_params"] = [_as_params(v) for v in out["old_params"]]
    out["new_params"] = [_as_params(v) for v in out["new_params"]]
    out["step"] = out["step"].astype("int64")
    out["donor_step"] = out["donor_step"].fillna(out["step"]).astype("int64")
    explores = events[events["action"] == "explore"]
    explored = {
        (r, t, int(st)): _as_params(p)
        for r, t, st, p in zip(explores["run_id"], explores["trial_id"], explores["step"], explores["new_params"])
    }
    out["explored_params"] = [
        explored.get((r, t, st), new)
        for r, t, st, new in zip(out["run_id"], out["trial_id"], out["step"], out["new_params"])
    ]
    return out.sort_values(["run_id", "time", "trial_id"], kind="stable").reset_index(drop=True)


def lineage(
    events: pd.DataFrame, trial_id: str, run_id: str | None = None, last_step: int | None = None
) -> pd.DataFrame:
    """The chain of trials whose training ``trial_id`` continues, newest segment first.

    Returns one row per segment: ``generation`` (0 for the trial itself, 1 for the donor it
    last copied, …), ``trial_id``, ``from_step`` (exclusive: the checkpoint step it resumed
    from; 0 for the founder), ``to_step`` (inclusive: the step of the checkpoint the younger
    generation copied; ``last_step`` or None for the trial's own open end), ``until`` (when
    that copy happened; None for the trial itself) and ``donor_trial_id`` (whom the segment's
    owner copied at ``from_step``; None for the founder). An ancestor's segment is found by
    time: its last exploit before its checkpoint was copied.
    """
    import pandas as pd

    edges = exploits(_one_run(events, run_id, "a PBT lineage") if len(events) else events)
    segments = []
    current, upto, before = trial_id, last_step, None
    for generation in range(len(edges) + 1):
        mine = edges[edges["trial_id"] == current]
        if before is not None:
            mine = mine[mine["time"] < before]
        if mine.empty:
            segments.append((generation, current, 0, upto, before, None))
            break
        edge = mine.iloc[-1]
        donor = str(edge["donor_trial_id"])
        segments.append((generation, current, int(edge["donor_step"]), upto, before, donor))
        current, upto, before = donor, int(edge["donor_step"]), edge["time"]
    else:  # pragma: no cover - a cycle cannot happen with times strictly decreasing
        raise ResultsError(f"PBT lineage of {trial_id}: exploit events form a cycle")
    columns = ["generation", "trial_id", "from_step", "to_step", "until", "donor_trial_id"]
    out = pd.DataFrame(segments, columns=columns)
    out["to_step"] = out["to_step"].astype("Int64")
    return out


def param_schedule(
    reports: pd.DataFrame, events: pd.DataFrame, trial_id: str, run_id: str | None = None
) -> pd.DataFrame:
    """The params in effect at each step of ``trial_id``'s whole history, through its lineage.

    One row per step: ``step``, ``trial_id`` (whose training that step was), the
    ``param_*`` columns and the ``metric_*`` columns of that report. An ancestor's steps
    are its reports in the segment's step range written before its checkpoint was copied.
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
        if pd.notna(segment["until"]) and "time" in mine.columns:
            mine = mine[mine["time"] <= segment["until"]]
        parts.append(mine)
    if not parts:
        return reports.iloc[0:0]
    keep = ["step", "trial_id"] + [c for c in reports.columns if c.startswith(("param_", "metric_"))]
    return pd.concat(parts)[keep].sort_values("step", kind="stable").reset_index(drop=True)
