"""scalehp: declarative hyperparameter tuning on Ray Tune, with every result in Parquet.

The pipeline, one step each::

    load_experiment(path)  -> Experiment     spec.py, space.py      (YAML -> validated, frozen)
    compile_plan(exp)      -> Plan           compiler.py, schedulers/, warmstart.py
                                                                    (checks, budget and schedule preview)
    run(plan)              -> RunSummary     runner/, recorder.py   (Ray Tune -> Parquet tables; the
                                                                    recorder writes them, schedulers/ decide;
                                                                    ``runtime: swarm``: swarm/, batches of
                                                                    short trials on Ray workers)
    read_results(path)     -> Results        results/               (trials, reports, events)
    answers                                  analysis/              (leaderboard, curves, importance, plots, report)
    watching                                 dashboard/             (``scalehp dashboard``: the tables, live,
                                                                    in the browser)

A trainable is ``def train(config, trial)`` that calls ``trial.report(step, metrics)``
(trial.py; torch helpers in pytorch.py); ``LocalTrial`` runs one without Ray. A program that
is not a Python function runs as ``command:`` (command.py: one process per trial, metrics read
from its output). Other tools' sweeps become experiment files in importers/ (``scalehp import``).
Clusters: jobs.py (Ray Jobs API). ``scalehp --help`` shows the command line (cli/, the only
code that prints).
"""

from scalehp.compiler import Plan, compile_plan
from scalehp.errors import Infeasible, ResultsError, RunError, ScalehpError, SpecError
from scalehp.results.store import Results, read_results
from scalehp.spec import Experiment, load_experiment
from scalehp.trial import LocalTrial, Trial

__version__ = "0.1.0"


def run(experiment, **options):  # noqa: ANN001, ANN003, ANN201 - documented in scalehp.runner.run
    """Run an experiment (or plan) on Ray Tune; see :func:`scalehp.runner.run`."""
    from scalehp.runner import run as _run

    return _run(experiment, **options)


__all__ = [
    "Experiment",
    "Infeasible",
    "LocalTrial",
    "Plan",
    "Results",
    "ResultsError",
    "RunError",
    "ScalehpError",
    "SpecError",
    "Trial",
    "compile_plan",
    "load_experiment",
    "read_results",
    "run",
]
