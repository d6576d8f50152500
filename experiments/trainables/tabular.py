"""The trainable of the tabular benchmarks (NAS-Bench-201, FCNet, HPOBench): there is none to run.

Their experiment files (``experiments/simulate_nasbench201.yaml``, ``simulate_fcnet.yaml``,
``simulate_hpobench.yaml``) exist for ``scalehp simulate``, which replays a bundled bank
converted by ``benchmarks/convert_hpo_bench.py`` and never calls a trainable. An experiment
file needs one all the same; this one tells a ``scalehp run`` of such a file what to do instead.
"""

from __future__ import annotations


def train(config: dict) -> None:
    """Refuse at once: a tabular benchmark's numbers come from its table, not from training."""
    raise RuntimeError(
        "a tabular benchmark is not trained: simulate it, e.g. "
        "scalehp simulate experiments/simulate_nasbench201.yaml --bench nasbench201-cifar10 --workers 8"
    )
