"""normal and lognormal params: reading, sampling, the searchers that take them, real runs."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.results.schema import param_type
from scalehp.space import LogNormalParam, NormalParam, sample_config
from scalehp.spec import load_experiment


def experiment(tmp_path=None, space=None, **changes):
    data = {
        "name": "gauss",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 4, "max_steps": 2},
        "seed": 3,
        "space": space or {"x": {"normal": [0.3, 0.2]}, "lr": {"lognormal": [-4.6, 0.5]}},
        "results": str(tmp_path / "results") if tmp_path else "results",
    }
    data.update(changes)
    return load_experiment(data)


def test_normal_and_lognormal_sample_their_distributions():
    exp = experiment()
    normal, lognormal = exp.space["x"], exp.space["lr"]
    assert isinstance(normal, NormalParam) and isinstance(lognormal, LogNormalParam)
    rng = random.Random(0)
    xs = [normal.sample(rng) for _ in range(4000)]
    lrs = [lognormal.sample(rng) for _ in range(4000)]
    assert abs(statistics.fmean(xs) - 0.3) < 0.02 and abs(statistics.stdev(xs) - 0.2) < 0.02
    assert min(lrs) > 0
    # mu and sigma are those of ln(value): the median is e**mu, ln's spread is sigma
    assert abs(statistics.median(lrs) / math.exp(-4.6) - 1) < 0.05
    assert abs(statistics.stdev(math.log(v) for v in lrs) - 0.5) < 0.03
    assert lognormal.describe() == "lognormal ln(x) ~ N(-4.6, 0.5), median 0.0101"
    assert normal.describe() == "normal mean 0.3 sd 0.2"


def test_step_quantizes_a_normal_value():
    exp = experiment(space={"units": {"normal": [64, 16], "step": 8}, "lr": {"lognormal": [0, 1], "step": 0.5}})
    for seed in range(50):
        config = sample_config(exp.space, seed=seed)
        assert config["units"] % 8 == 0 and config["lr"] % 0.5 == 0


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ({"normal": [0, 0]}, "space.p: the standard deviation must be > 0, got 0.0"),
        ({"lognormal": [0, -1]}, "space.p: the standard deviation must be > 0, got -1.0"),
        ({"normal": [0, ".inf"]}, "space.p.normal.1: expected a number"),
        ({"normal": [0, 1], "step": 0}, "space.p: step must be > 0"),
        ({"normal": [0, 1], "log": True}, "space.p.log: unknown key 'log'"),
        ({"normal": [0, 1], "float": [0, 1]}, "give one kind per param, not float and normal"),
    ],
)
def test_bad_gaussian_params_name_the_key(param, message):
    with pytest.raises(SpecError) as error:
        experiment(space={"p": param})
    assert message in str(error.value)


def test_searchers_that_cannot_take_a_gaussian_say_what_to_use():
    with pytest.raises(
        SpecError, match=r"space.x: optuna has no normal distribution for 'x'; use search.algorithm hyperopt"
    ):
        compile_plan(experiment(search={"algorithm": "optuna"}))
    with pytest.raises(SpecError, match=r"space.x: grid search cannot enumerate a normal range"):
        compile_plan(experiment(search={"algorithm": "grid"}))
    with pytest.raises(SpecError, match=r"space.seed: random search with a lognormal param cannot also walk a grid"):
        compile_plan(experiment(space={"lr": {"lognormal": [0, 1]}, "seed": {"grid": [1, 2]}}))


def test_columns_are_float64():
    exp = experiment()
    assert str(param_type(exp.space["x"])) == str(param_type(exp.space["lr"])) == "double"


def test_hyperopt_draws_gaussians_in_their_own_distributions():
    from scalehp.runner.search import first_suggestions, owns_space

    exp = experiment(
        space={"x": {"normal": [0.3, 0.2], "step": 0.05}, "lr": {"lognormal": [-4.6, 0.5]}},
        search={"algorithm": "hyperopt"},
        budget={"samples": 30, "max_steps": 2},
    )
    assert owns_space(exp)
    configs = first_suggestions(compile_plan(exp), 20)
    assert all(c["lr"] > 0 for c in configs)
    assert all(abs(c["x"] / 0.05 - round(c["x"] / 0.05)) < 1e-9 for c in configs)
    assert len({c["lr"] for c in configs}) == 20


def test_random_search_holds_a_lognormal_space_itself():
    from scalehp.runner.search import first_suggestions, owns_space

    plan = compile_plan(experiment())
    assert owns_space(plan.experiment)  # Ray has no lognormal domain
    assert first_suggestions(plan, 3) == first_suggestions(plan, 3)  # seeded
    assert not owns_space(experiment(space={"x": {"normal": [0.3, 0.2]}}))  # Ray's randn


@pytest.mark.ray
@pytest.mark.parametrize("algorithm", ["random", "hyperopt"])
def test_gaussian_params_run_and_land_in_parquet(ray_local, tmp_path, algorithm):
    from scalehp.results.store import read_results
    from scalehp.runner import run

    space = {"x": {"normal": [0.3, 0.2]}, "lr": {"lognormal": [-4.6, 0.5]}, "units": {"normal": [64, 16], "step": 8}}
    summary = run(experiment(tmp_path, space=space, search={"algorithm": algorithm}))
    trials = read_results(summary.path).trials
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    assert (trials["param_lr"] > 0).all() and trials["param_x"].nunique() == 4
    assert ((trials["param_units"] % 8) == 0).all()
    assert str(trials["param_lr"].dtype) == "float64"
    # the trainable saw the same x that the table records
    assert ((trials["metric_x_seen"] - trials["param_x"]).abs() < 1e-12).all()


@pytest.mark.ray
def test_plain_random_search_with_a_normal_param_uses_rays_domain(ray_local, tmp_path):
    from scalehp.results.store import read_results
    from scalehp.runner import run

    summary = run(experiment(tmp_path, space={"x": {"normal": [0.3, 0.2]}, "tag": {"grid": ["a", "b"]}}))
    trials = read_results(summary.path).trials
    assert len(trials) == 8 and sorted(trials["param_tag"].value_counts().tolist()) == [4, 4]
    assert trials["param_x"].nunique() == 8
