from __future__ import annotations

import math
import random

import pytest
from pydantic import TypeAdapter, ValidationError

from scalehp.space import Param, sample_config

parse = TypeAdapter(Param).validate_python


def draws(raw, n=2000):
    param = parse(raw)
    rng = random.Random(0)
    return [param.sample(rng) for _ in range(n)]


def test_float_bounds_and_log_scale():
    values = draws({"float": [1e-4, 1.0], "log": True})
    assert all(1e-4 <= v <= 1.0 for v in values)
    below = sum(v < 1e-2 for v in values) / len(values)
    assert 0.4 < below < 0.6  # half the log range lies below 1e-2


def test_float_step_quantizes():
    values = draws({"float": [0.0, 1.0], "step": 0.25})
    assert set(values) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_int_bounds_are_inclusive_and_step_respected():
    assert set(draws({"int": [1, 3]})) == {1, 2, 3}
    assert set(draws({"int": [0, 10], "step": 5})) == {0, 5, 10}
    log_values = draws({"int": [1, 1000], "log": True})
    assert min(log_values) >= 1 and max(log_values) <= 1000
    assert sum(v < 32 for v in log_values) / len(log_values) > 0.4


@pytest.mark.parametrize(
    "raw",
    [
        {"float": [1, 0]},
        {"float": [0, 1], "log": True},
        {"float": [0, 1], "step": 2},
        {"float": ["0", 1]},
        {"float": [0, math.inf]},
        {"int": [1.5, 3]},
        {"int": [1, 100], "log": True, "step": 2},
        {"grid": []},
        {"choice": [1, 1]},
        {"float": [0, 1], "int": [0, 1]},
        {"float": [0, 1], "lg": True},
    ],
)
def test_invalid_params(raw):
    with pytest.raises(ValidationError):
        parse(raw)


def test_bare_values_are_constants():
    assert parse(3).value == 3
    assert parse({"hidden": 3}).value == {"hidden": 3}
    assert parse([1, 2]).value == [1, 2]


def test_sample_config_is_seeded():
    space = {"x": parse({"float": [0, 1]}), "c": parse({"choice": ["a", "b", "c"]})}
    assert sample_config(space, 1) == sample_config(space, 1)
    assert sample_config(space, 1) != sample_config(space, 2)
