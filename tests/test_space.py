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


def test_a_step_takes_the_multiples_of_step_between_the_bounds():
    """One rule for every searcher: the multiples of ``step`` in [low, high], not low + k * step."""
    ints = parse({"int": [2, 20], "step": 3})
    assert set(draws({"int": [2, 20], "step": 3})) == set(ints.finite_values()) == {3, 6, 9, 12, 15, 18}
    assert ints.size() == 6 and (ints.first, ints.last) == (3, 18)
    assert [ints.clip(v) for v in (-5, 2, 4.4, 4.6, 19, 99)] == [3, 3, 3, 6, 18, 18]
    assert ints.fits(9) and ints.fits(9.0) and not ints.fits(2) and not ints.fits(20) and not ints.fits(8)
    assert ints.describe() == "int [2, 20] step 3 (multiples 3 .. 18)"
    assert set(parse({"int": [-7, 7], "step": 3}).finite_values()) == {-6, -3, 0, 3, 6}

    floats = parse({"float": [0.05, 1.0], "step": 0.1})
    tenths = {round(k / 10, 10) for k in range(1, 11)}
    assert set(draws({"float": [0.05, 1.0], "step": 0.1})) == tenths  # 0.3, not 0.30000000000000004
    assert (floats.first, floats.last) == (0.1, 1.0)
    assert [floats.clip(v) for v in (0.0, 0.05, 0.26, 0.3, 7.0)] == [0.1, 0.1, 0.3, 0.3, 1.0]
    assert floats.fits(0.3) and floats.fits(0.1 * 3) and not floats.fits(0.05) and not floats.fits(0.35)
    assert floats.describe() == "float [0.05, 1] step 0.1 (multiples 0.1 .. 1)"
    assert parse({"float": [0.5, 10.0], "step": 0.5}).describe() == "float [0.5, 10] step 0.5"  # aligned: as written
    logs = draws({"float": [0.05, 64.0], "log": True, "step": 0.1})
    assert min(logs) >= 0.1 and max(logs) <= 64.0 and all(abs(v * 10 - round(v * 10)) < 1e-9 for v in logs)


@pytest.mark.parametrize("raw", [{"int": [2, 5], "step": 3}, {"float": [0.05, 0.16], "step": 0.1}])
def test_a_range_with_fewer_than_two_multiples_of_its_step_is_refused(raw):
    with pytest.raises(ValidationError, match="holds one multiple .* widen the range"):
        parse(raw)


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
