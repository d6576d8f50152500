"""Stand-ins for the client libraries of other tuners, for command trials (``command.client``).

A W&B sweep program or an NNI trial runs here unchanged: the command's environment puts this
folder first on ``PYTHONPATH``, so ``import wandb`` or ``import nni`` in the program finds a
stand-in that hands it the trial's params and prints what it logs as JSON lines, which the
command trial reads as reports. Nothing is sent anywhere; the real library, installed or not,
is not used by these trials. Each stand-in covers what sweep programs and trials use:

* ``wandb``: ``init`` (its ``config`` are defaults: the sweep's params win, as in a W&B sweep),
  ``config`` (keys and attributes, ``update``, nested params as nested mappings), ``log``
  (a call that logs the metric is one step, as W&B's Hyperband counts iterations; other values
  logged since ride along with it), ``summary``, ``run``, ``define_metric``, ``watch``, ``save``,
  ``finish``, ``Settings``;
* ``nni``: ``get_next_parameter`` (nested choices as ``{"_name": option, ...}``),
  ``get_current_parameter``, ``report_intermediate_result`` (one step each),
  ``report_final_result`` (the last step's values: NNI's result), ``get_trial_id``, ``get_experiment_id``,
  ``get_sequence_id``.

These modules import nothing from scalehp: the program may run under another Python.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
"""What goes first on a command trial's ``PYTHONPATH`` (it holds ``wandb/`` and ``nni/``)."""
