"""Every example experiment validates, compiles and imports its trainable (or finds its command's program)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scalehp.command import experiment_trainable
from scalehp.compiler import compile_plan
from scalehp.spec import load_experiment

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.yaml"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_compiles(path):
    experiment = load_experiment(path)
    plan = compile_plan(experiment)
    assert plan.trials >= 1
    experiment_trainable(experiment)
