"""The answers as pictures: matplotlib figures, saved as PNG.

Figures are built with :class:`matplotlib.figure.Figure` directly (the Agg renderer, no
pyplot and no global state), so they work without a display and in threads. Every function
takes the frames the other analysis modules return and gives a Figure; :func:`png` turns one
into PNG bytes.

Every text that comes from the results (metric and param names, param values, trial and run
ids) goes through :func:`_label`, so that a ``$`` in it is drawn as a ``$``: matplotlib
would read a pair of them as mathtext (and fail on one it cannot parse).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

BEST = "#d62728"


def _label(value: object) -> str:
    """A text from the results, to be drawn exactly as it is (``$`` escaped; no mathtext)."""
    return str(value).replace("$", r"\$")


def _figure(width: float = 7.0, height: float = 4.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def learning_curves(
    curves: pd.DataFrame,
    metric: str,
    best: str | None = None,
    log_y: bool = False,
    max_trials: int = 200,
    total: int | None = None,
) -> Figure:
    """Each trial's metric over its steps (from :func:`scalehp.analysis.curves.learning_curves`); ``best`` in red.

    With more than ``max_trials`` trials, a random sample of them (seeded) and ``best`` are drawn.
    ``total``: the trials the curves were sampled from, when the caller sampled them already.
    """
    fig = _figure()
    ax = fig.add_subplot()
    total = max(total or 0, curves["trial_id"].nunique())
    if curves["trial_id"].nunique() > max_trials:
        import pandas as pd

        keys = curves[["run_id", "trial_id"]].drop_duplicates().sample(max_trials, random_state=0)
        keep = pd.MultiIndex.from_frame(curves[["run_id", "trial_id"]]).isin(pd.MultiIndex.from_frame(keys))
        curves = curves[keep | (curves["trial_id"] == best).to_numpy()]
    many = curves["trial_id"].nunique() > 30
    for (_, trial), rows in curves.groupby(["run_id", "trial_id"], sort=False):
        if trial == best:
            continue
        marker = "." if len(rows) == 1 else None  # a trial stopped at its first report
        ax.plot(rows["step"], rows["value"], color="#1f77b4", alpha=0.25 if many else 0.5, linewidth=1, marker=marker)
    if best is not None:
        rows = curves[curves["trial_id"] == best]
        marker = "o" if len(rows) == 1 else None
        ax.plot(rows["step"], rows["value"], color=BEST, linewidth=2, marker=marker, label=f"best trial {_label(best)}")
        ax.legend(loc="best")
    shown = curves["trial_id"].nunique()
    title = f"Learning curves ({total:,} trials)" if shown == total else f"Learning curves ({shown:,} of {total:,} trials)"
    ax.set(xlabel="step", ylabel=_label(metric), title=title)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return fig


def anytime(frame: pd.DataFrame, metric: str, by: str = "wall") -> Figure:
    """Best value so far per run (from :func:`scalehp.analysis.curves.anytime`)."""
    fig = _figure()
    ax = fig.add_subplot()
    # only the points where the best changes, and each run's last: the same steps, far fewer points
    changed = frame["best"].ne(frame.groupby("run_id", sort=False)["best"].shift())
    frame = frame[changed | ~frame.duplicated("run_id", keep="last")]
    for run_id, rows in frame.groupby("run_id", sort=False):
        ax.step(rows["x"], rows["best"], where="post", label=_label(run_id), linewidth=1.5)
    xlabel = "wall time since the run's first report (s)" if by == "wall" else "steps run by all trials"
    ax.set(xlabel=xlabel, ylabel=f"best {_label(metric)} so far", title="Anytime performance")
    ax.grid(alpha=0.3)
    if frame["run_id"].nunique() <= 12:
        ax.legend(loc="best", fontsize="small")
    return fig


def importance(frame: pd.DataFrame, value: str = "best value") -> Figure:
    """Param importance bars (from :func:`scalehp.analysis.importance.param_importance`)."""
    fig = _figure(6.0, 0.6 + 0.45 * max(len(frame), 2))
    ax = fig.add_subplot()
    ordered = frame.iloc[::-1]
    ax.barh([_label(p) for p in ordered["param"]], ordered["importance"], color="#1f77b4")
    title = "Param importance"
    if "sampled" in frame.attrs:
        title += " ({:,} of {:,} trials, a random sample)".format(*frame.attrs["sampled"])
    ax.set(xlabel=f"fANOVA importance for {_label(value)}", xlim=(0, 1), title=title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def parallel_coordinates(
    trials: pd.DataFrame, params: list[str], mode: str, value: str = "best_value", max_trials: int = 1000
) -> Figure:
    """One line per trial across its params, coloured by ``value`` (best trials darkest).

    With more than ``max_trials`` trials, the best tenth of ``max_trials`` and a random sample
    (seeded) of the rest are drawn; the title says how many of how many."""
    import numpy as np
    import pandas as pd
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    scored = trials.dropna(subset=[value])
    total = len(scored)
    if total > max_trials:
        best = scored[value].nsmallest(max_trials // 10) if mode == "min" else scored[value].nlargest(max_trials // 10)
        top = scored.loc[best.index]
        scored = pd.concat([top, scored.drop(index=best.index).sample(max_trials - len(top), random_state=0)])
    axes_names = [*params, value]
    columns, ticks = [], []
    for name in axes_names:
        column = scored[name if name == value else f"param_{name}"]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            numbers = column.astype(float)
            low, high = float(numbers.min()), float(numbers.max())
            ticks.append((f"{low:.3g}", f"{high:.3g}"))
        else:
            codes, labels = pd.factorize(column.astype(str), sort=True)
            numbers = pd.Series(codes, index=column.index, dtype=float)
            low, high = 0.0, float(max(len(labels) - 1, 1))
            ticks.append((_label(labels[0]), _label(labels[-1])) if len(labels) else ("", ""))
        columns.append((numbers - low) / (high - low) if high > low else numbers * 0 + 0.5)
    data = np.column_stack([c.to_numpy() for c in columns]) if columns else np.empty((0, 0))
    fig = _figure(max(6.0, 1.5 * len(axes_names)), 4.0)
    ax = fig.add_subplot()
    values = scored[value].to_numpy(float)
    cmap = colormaps["viridis" if mode == "min" else "viridis_r"]  # the best value darkest
    norm = Normalize(values.min(), values.max()) if len(values) else Normalize(0, 1)
    order = np.argsort(-values if mode == "min" else values)  # best drawn last, on top
    xs = np.arange(len(axes_names))
    lines = [np.column_stack([xs, data[i]]) for i in order]
    ax.add_collection(LineCollection(lines, colors=[cmap(norm(values[i])) for i in order], alpha=0.7, linewidths=1))
    ax.set_xlim(-0.3, len(axes_names) - 0.7)
    for x, (low, high) in zip(xs, ticks):
        ax.axvline(x, color="black", linewidth=0.8)
        ax.annotate(low, (x, -0.02), ha="center", va="top", fontsize="x-small")
        ax.annotate(high, (x, 1.02), ha="center", va="bottom", fontsize="x-small")
    ax.set_xticks(xs, [_label(n) for n in axes_names])
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.12)
    shown = f"\n{len(scored):,} of {total:,} trials: the best {max_trials // 10:,} and a random sample" if total > len(scored) else ""
    ax.set_title(f"Parallel coordinates (darker: better){shown}", pad=14)
    fig.colorbar(cmap_mappable(cmap, norm), ax=ax, label=_label(value))
    return fig


def cmap_mappable(cmap, norm):  # noqa: ANN001, ANN201
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def asha_rungs(events: pd.DataFrame, stats: pd.DataFrame, metric: str) -> Figure:
    """ASHA decisions: each trial's value at each rung (promoted or stopped), the last cut-off,
    and how many trials reached and passed each rung (from :func:`scalehp.analysis.asha.rung_stats`)."""
    fig = _figure(7.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.3])
    rungs = [int(r) for r in stats["rung"]]
    position = {r: i for i, r in enumerate(rungs)}
    asha = events[(events["scheduler"] == "asha") & events["rung"].isin(rungs)] if len(stats) else events.iloc[0:0]
    for action, color, marker in (("continue", "#2ca02c", "o"), ("stop", BEST, "x")):
        rows = asha[asha["action"] == action]
        xs = [position[int(r)] for r in rows["rung"]]
        top.scatter(xs, rows["value"], color=color, marker=marker, s=18, label=action, alpha=0.7)
    xs = list(range(len(rungs)))
    top.plot(xs, stats["cutoff_last"], color="black", linestyle="--", marker="_", label="last cut-off")
    bottom.bar(xs, stats["trials"], color="#1f77b4", label="reached")
    bottom.bar(xs, stats["promoted"], color="#2ca02c", label="promoted")
    top.set(ylabel=_label(metric), title="ASHA rungs: values at each rung and the cut-off to beat")
    top.legend(loc="best", fontsize="small")
    top.grid(alpha=0.3)
    bottom.set_xticks(xs, [str(r) for r in rungs])
    bottom.set(xlabel="rung (step)", ylabel="trials")
    bottom.legend(loc="best", fontsize="small")
    return fig


def pbt_lineage(exploits: pd.DataFrame, lineage: pd.DataFrame, schedule: pd.DataFrame, params: list[str]) -> Figure:
    """PBT: every exploit as an arrow between trials over steps, the best trial's lineage in red,
    and below it the params the best trial's history trained with at each step."""
    import pandas as pd

    fig = _figure(7.0, 3.0 + 1.6 * max(len(params), 1))
    axes = fig.subplots(1 + max(len(params), 1), 1, sharex=True, height_ratios=[3] + [1.6] * max(len(params), 1))
    tree = axes[0]
    names = sorted(set(exploits["trial_id"]) | set(exploits["donor_trial_id"]) | set(lineage["trial_id"]))
    row = {name: i for i, name in enumerate(names)}
    last = int(schedule["step"].max()) if len(schedule) else int(exploits["donor_step"].max() if len(exploits) else 1)
    for _, edge in exploits.iterrows():
        tree.annotate(
            "",
            xy=(edge["donor_step"], row[edge["trial_id"]]),
            xytext=(edge["donor_step"], row[edge["donor_trial_id"]]),
            arrowprops={"arrowstyle": "->", "color": "#7f7f7f", "alpha": 0.6},
        )
    for _, segment in lineage.iterrows():
        end = segment["to_step"] if pd.notna(segment["to_step"]) else last
        tree.plot([segment["from_step"], end], [row[segment["trial_id"]]] * 2, color=BEST, linewidth=3)
    tree.set_yticks(range(len(names)), [_label(n) for n in names], fontsize="x-small")
    tree.set_ylim(-0.5, len(names) - 0.5)
    tree.set(ylabel="trial", title="PBT: exploits (grey arrows: donor -> trial) and the best trial's lineage (red)")
    tree.grid(alpha=0.3)
    for ax, param in zip(axes[1:], params or [None]):
        if param is None or f"param_{param}" not in schedule.columns:
            continue
        ax.step(schedule["step"], schedule[f"param_{param}"], where="post", color=BEST)
        ax.set(ylabel=_label(param))
        ax.grid(alpha=0.3)
    axes[-1].set(xlabel="step")
    return fig
