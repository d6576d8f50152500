"""Which params drive the metric: fANOVA importance, computed by optuna.

The trials of a run become an in-memory optuna study (one finished trial per scalehp trial,
its params and its best value); optuna's :class:`~optuna.importance.FanovaImportanceEvaluator`
fits a random forest (scikit-learn) on them and splits the variance of the metric among the
params. Params that never vary are left out.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scalehp.analysis.tables import finite
from scalehp.errors import ResultsError
from scalehp.results.schema import param_names

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)

SAMPLE = 1_000
"""Trials importance models at most (a seeded random sample of them beyond that)."""
DEEP = 1_000
"""Trials up to which the forest is optuna's default (64 trees of depth 64); 32 of depth 8 beyond."""


def log_scaled(space: Any) -> dict[str, bool]:
    """Param name -> whether the space searches it on a log scale (``log: true``, ``lognormal``).

    ``space`` is the experiment's space as ``plan.json`` has it (untrusted): one that does
    not read as a space gives an empty map, and every param is then compared on its own scale.
    """
    from pydantic import TypeAdapter, ValidationError

    from scalehp.space import Param, flatten_space

    if not isinstance(space, dict):
        return {}
    try:
        nodes = flatten_space(TypeAdapter(dict[str, Param]).validate_python(space))
    except (ValidationError, ValueError, TypeError, RecursionError):
        return {}
    out: dict[str, bool] = {}
    for node in nodes:  # a name declared under several options: log if any declaration is
        out[node.name] = out.get(node.name, False) or node.param.log_scale
    return out


def _distribution(values: pd.Series, log: bool) -> Any:
    import optuna
    import pandas as pd

    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return optuna.distributions.CategoricalDistribution(sorted(values.astype(str).unique()))
    log_scale = log and float(values.min()) > 0
    low, high = float(values.min()), float(values.max())
    if pd.api.types.is_integer_dtype(values):
        return optuna.distributions.IntDistribution(int(low), int(high), log=log_scale)
    return optuna.distributions.FloatDistribution(low, high, log=log_scale)


def param_importance(
    trials: pd.DataFrame,
    mode: str,
    value: str = "best_value",
    params: list[str] | None = None,
    space: dict[str, Any] | None = None,
    seed: int = 0,
    sample: int = SAMPLE,
) -> pd.DataFrame:
    """fANOVA importance of each param for ``value``: ``param, importance`` (sums to 1), most important first.

    Past :data:`DEEP` scored trials the forest has 32 trees that stop at depth 8 (optuna's
    default, 64 trees of depth 64, takes 40 s at 2,000 trials and hours beyond; on 2,000 trials
    of a 4-param test function both give the same importances to 0.01, in 1 s), and with more than
    ``sample`` a random sample of them (seeded) is modelled; the frame's ``attrs["sampled"]`` is
    then ``(sample, trials scored)``.

    ``param`` is the param's name as the space declares it (``optimizer.lr``; see
    ``attrs["param_names"]`` of the frames of ``read_results``).

    Args:
        trials: the trials table (one run, or runs of one experiment).
        mode: ``min`` or ``max``, the direction of ``value``.
        value: the column to explain; by default each trial's best value of the metric.
        params: param names (``optimizer.lr``, or a column without ``param_``); by default
            every param that varies.
        space: the experiment's search space as in ``plan.json``: params it searches on a
            log scale (``log: true``, ``lognormal``) are compared on a log scale.
        seed: seed of the random forest.

    Raises:
        ResultsError: fewer than two trials with a value, or no param that varies.
    """
    import optuna
    import pandas as pd
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    logs = log_scaled(space)
    if value not in trials.columns:
        raise ResultsError(f"importance: no column {value!r} in the trials")
    names = param_names(trials)  # column -> name
    scored = trials[finite(trials[value]).notna()]  # NaN and infinite values are not scores
    if params is None:
        # params of these trials (a frame over several experiments has others' columns, all empty)
        columns = {n: c for c, n in names.items() if scored[c].notna().any()}
    else:
        by_name = {n: c for c, n in names.items()}
        columns = {p: by_name.get(p, f"param_{p}") for p in params}
        columns = {p: c for p, c in columns.items() if c in scored.columns}
    scored = scored.dropna(subset=list(columns.values()))
    varying = {p: c for p, c in columns.items() if scored[c].nunique() > 1}
    if len(scored) < 2:
        raise ResultsError(f"importance needs at least two trials with a value of {value}, got {len(scored)}")
    if not varying:
        raise ResultsError("importance: no param takes more than one value in these trials")
    scored_count = len(scored)
    if scored_count > sample:
        scored = scored.sample(sample, random_state=seed)
    depth, trees = (64, 64) if scored_count <= DEEP else (8, 32)

    distributions = {p: _distribution(scored[c], logs.get(p, False)) for p, c in varying.items()}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # optuna logs each new study at INFO
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(verbosity)
    frozen = []
    for _, row in scored.iterrows():
        chosen = {}
        for p, c in varying.items():
            v = row[c]
            if isinstance(distributions[p], optuna.distributions.CategoricalDistribution):
                v = str(v)
            elif isinstance(distributions[p], optuna.distributions.IntDistribution):
                v = int(v)
            else:
                v = float(v)
            chosen[p] = v
        frozen.append(optuna.trial.create_trial(params=chosen, distributions=distributions, value=float(row[value])))
    study.add_trials(frozen)
    evaluator = FanovaImportanceEvaluator(seed=seed, max_depth=depth, n_trees=trees)
    importances = get_param_importances(study, evaluator=evaluator, normalize=True)
    out = pd.DataFrame({"param": list(importances), "importance": [float(v) for v in importances.values()]})
    out = out.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    if scored_count > sample:
        out.attrs["sampled"] = (sample, scored_count)
    return out
