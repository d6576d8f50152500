"""Hydra's Optuna sweeper -> scalehp: examples import, compile and read back; the override grammar maps exactly."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.importers import import_file, ordered
from scalehp.importers.hydra_optuna import Choice, GrammarError, Interval, Range, parse_override
from scalehp.space import sample_config
from scalehp.spec import load_experiment, read_yaml
from tests.importing import notes

EXAMPLES = Path(__file__).parent / "import_examples" / "hydra_optuna"


def imported(name: str, **options):
    return import_file("hydra-optuna", EXAMPLES / name, **options)


def compiled(result, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(result.yaml())
    return compile_plan(load_experiment(path))


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_imports_compiles_and_reads_back(example, tmp_path):
    result = imported(example)
    data, _ = read_yaml(result.yaml())
    assert data == result.data and list(data) == list(ordered(result.data))
    plan = compiled(result, tmp_path)
    assert plan.experiment.command is not None
    assert plan.experiment.budget.max_steps == 1
    for note in result.notes:
        assert note.line is not None and note.message


def test_sweeper_section_alone():
    result = imported("sphere_sweeper.yaml")
    assert result.data["name"] == "sphere"
    assert result.data["space"] == {"x": {"float": [-5.5, 5.5], "step": 0.5}, "y": {"choice": [-5, 0, 5]}}
    assert result.data["search"] == {"algorithm": "optuna", "sampler": "tpe"}  # n_startup_trials 10: the default
    assert result.data["seed"] == 123 and result.data["concurrency"] == 1
    assert result.data["budget"] == {"samples": 20, "max_steps": 1}
    assert result.data["metric"] == {"name": "value", "mode": "min"}
    assert result.data["failure"] == {"fail_fast": True}  # max_failure_rate 0: one failure ends the sweep
    assert result.data["command"] == "${python} my_app.py ${args_no_hyphens}"
    said = notes(result)
    assert "stop included" in said["params.x"]
    assert "value=<number>" in said["direction"]
    assert "placeholder" in said["params"] and "--program" in said["params"]
    # n_ei_candidates 24, multivariate false, storage null: Optuna's defaults, nothing to say
    assert not any(path.startswith("sampler") or path == "storage" for path in said)


def test_whole_config_with_every_sweep_of_the_grammar():
    result = imported("full_config.yaml")
    assert result.data["space"] == {
        "optimizer.lr": {"float": [1.0e-4, 0.1], "log": True},  # tag(log, interval(1e-4, 1e-1))
        "optimizer.momentum": {"float": [0.8, 0.99]},
        "model.width": {"int": [8, 128], "log": True},  # tag(log, int(interval(8, 128)))
        "model.depth": {"int": [1, 4]},  # int(interval(1, 4))
        "model.activation": {"choice": ["relu", "gelu", "silu"]},  # a comma list
        "model.batch_norm": {"choice": [True, False]},
        "data.batch_size": {"choice": [32, 64, 128]},
        # range(1, 9, step=2): stop included, as the sweeper does; Optuna counts 1, 3, ... from low, and a
        # scalehp step takes multiples of 2, so the values are listed
        "data.workers": {"choice": [1, 3, 5, 7, 9]},
        "data.shuffle_seed": {"choice": [0, 1, 2]},  # shuffle(range): categorical
        "trainer.max_epochs": 10,  # fixed values: constants
        "trainer.precision": "bf16",
    }
    assert result.data["name"] == "mnist-tuning"
    assert result.data["metric"] == {"name": "value", "mode": "max"}
    assert result.data["search"] == {"algorithm": "optuna", "sampler": "tpe", "initial_points": 5}
    assert result.data["seed"] == 42 and result.data["concurrency"] == 4
    assert result.data["failure"] == {"max_failed_trials": 6}
    assert result.data["command"] == "${python} train.py ${args_no_hyphens}"  # hydra.job.name
    said = notes(result)
    assert "multivariate" in said["hydra.sweeper.sampler.multivariate"]
    assert "storage" in said["hydra.sweeper.storage"]
    assert "joblib" in said["defaults.3"]
    assert "train.py" in said["hydra.job.name"]
    assert "max_failed_trials 6" in said["hydra.sweeper.max_failure_rate"]
    assert "mnist-tuning" in said["hydra.sweeper.study_name"]
    assert "hydra.sweep" in said["hydra"]
    assert "data, model, optimizer, trainer" in said["data"]


def test_multi_objective_nsga2():
    result = imported("multi_objective.yaml")
    assert result.data["metric"] == [{"name": "value_0", "mode": "min"}, {"name": "value_1", "mode": "min"}]
    assert result.data["search"] == {"algorithm": "optuna", "sampler": "nsga2", "initial_points": 50}
    assert result.data["space"] == {"x": {"float": [0.0, 5.0], "step": 0.5}, "y": {"float": [0.0, 3.0], "step": 0.5}}
    assert "value_0=<number>" in notes(result)["direction"]


def test_grid_sampler_walks_what_hydra_walks(tmp_path):
    result = imported("grid.yaml")
    assert result.data["search"] == {"algorithm": "grid"}
    assert result.data["space"] == {
        "x": {"choice": [-1, 1]},
        "y": {"choice": [-1.0, 0.0]},  # Hydra's GridSampler: low + i*step, i < (high - low) // step
        "z": {"choice": ["foo", "bar"]},
    }
    assert compiled(result, tmp_path).trials == 8
    assert "stop left out" in notes(result)["hydra.sweeper.params.y"]


def test_deprecated_search_space_and_cmaes(tmp_path):
    result = imported("search_space_v1.yaml")
    assert result.data["space"] == {
        "x": {"float": [-5.5, 5.5], "step": 0.5},
        "lr": {"float": [1.0e-5, 0.1], "log": True},
        "units": {"int": [16, 256], "log": True},
        "layers": {"choice": [1, 3, 5, 7, 9]},  # Optuna counts 1, 3, ... from low; a scalehp step, multiples of 2
    }
    # scalehp's CMA-ES searches number ranges only: optuna's TPE, with a note
    assert result.data["search"] == {"algorithm": "optuna", "sampler": "tpe", "initial_points": 1}
    found = notes(result)
    assert "deprecated" in found["hydra.sweeper.search_space"]
    assert "CmaEsSampler" in found["hydra.sweeper.sampler"] and "choice" in found["hydra.sweeper.sampler"]
    assert "1, 3, 5" in found["hydra.sweeper.search_space.layers.step"]
    text = (EXAMPLES / "search_space_v1.yaml").read_text()
    assert "low: 1\n        high: 9" in text
    (tmp_path / "v1.yaml").write_text(text.replace("low: 1\n        high: 9", "low: 0\n        high: 8"))
    kept = import_file("hydra-optuna", tmp_path / "v1.yaml")
    assert kept.data["space"]["layers"] == {"int": [0, 8], "step": 2}  # 0, 2, ..., 8 in both tools
    assert kept.data["search"]["sampler"] == "cmaes"


def optuna_values(low, high, step) -> set:
    """Optuna's values of a stepped distribution: low, low + step, ... up to high."""
    count = int((high - low) // step) + 1 if isinstance(step, int) else int((high - low) / step + 1e-9) + 1
    return {round(low + k * step, 9) for k in range(count)}


def space_values(param, tmp_path) -> set:
    """Every value scalehp takes for ``param`` (listed, or drawn often enough to see each)."""
    data = {"name": "s", "command": "x", "metric": {"name": "v", "mode": "min"}, "results": str(tmp_path)}
    space = load_experiment({**data, "budget": {"samples": 1, "max_steps": 1}, "space": {"p": param}}).space
    rng = random.Random(0)
    return {round(float(sample_config(space, rng=rng)["p"]), 9) for _ in range(3000)}


@pytest.mark.parametrize(
    "override, expected, source",
    [
        ("range(1, 10, step=3)", {"choice": [1, 4, 7, 10]}, (1, 10, 3)),
        ("range(3, 10, step=3)", {"int": [3, 10], "step": 3}, (3, 10, 3)),  # low a multiple: a range
        ("range(0.25, 2.0, step=0.5)", {"choice": [0.25, 0.75, 1.25, 1.75]}, (0.25, 2.0, 0.5)),
        ("range(-5.5, 5.5, step=0.5)", {"float": [-5.5, 5.5], "step": 0.5}, (-5.5, 5.5, 0.5)),
    ],
)
def test_a_range_keeps_optunas_values_counted_from_start(tmp_path, override, expected, source):
    text = (EXAMPLES / "sphere_sweeper.yaml").read_text().replace("range(-5.5,5.5,step=0.5)", override)
    (tmp_path / "s.yaml").write_text(text)
    result = import_file("hydra-optuna", tmp_path / "s.yaml")
    assert result.data["space"]["x"] == expected
    assert space_values(expected, tmp_path) == optuna_values(*source)
    if "choice" in expected:
        assert "counted from low" in notes(result)["params.x"]


@pytest.mark.parametrize(
    "entry, expected, source",
    [
        ({"type": "int", "low": 1, "high": 9, "step": 4}, {"choice": [1, 5, 9]}, (1, 9, 4)),
        (
            {"type": "float", "low": 0.1, "high": 0.9, "step": 0.25},
            {"choice": [0.1, 0.35, 0.6, 0.85]},
            (0.1, 0.9, 0.25),
        ),
        (
            {"type": "float", "low": 0.5, "high": 0.9, "step": 0.25},
            {"float": [0.5, 0.9], "step": 0.25},
            (0.5, 0.9, 0.25),
        ),
    ],
)
def test_a_search_space_step_keeps_optunas_values(tmp_path, entry, expected, source):
    data = yaml.safe_load((EXAMPLES / "search_space_v1.yaml").read_text())
    data["hydra"]["sweeper"]["search_space"]["x"] = entry
    (tmp_path / "v1.yaml").write_text(yaml.safe_dump(data))
    result = import_file("hydra-optuna", tmp_path / "v1.yaml")
    assert result.data["space"]["x"] == expected
    assert space_values(expected, tmp_path) == optuna_values(*source)


def test_a_range_too_long_to_list_keeps_the_step_with_a_loud_note(tmp_path):
    text = (EXAMPLES / "sphere_sweeper.yaml").read_text().replace("range(-5.5,5.5,step=0.5)", "range(1, 5000, 2)")
    (tmp_path / "s.yaml").write_text(text)
    result = import_file("hydra-optuna", tmp_path / "s.yaml")
    assert result.data["space"]["x"] == {"int": [1, 5000], "step": 2}
    said = notes(result)["params.x"]
    assert "VALUES DIFFER" in said and "shifts by 1" in said


def test_optimized_metric_names_the_metric():
    result = imported("lightning_template.yaml")
    assert result.data["metric"] == {"name": "val/acc_best", "mode": "max"}
    assert result.data["name"] == "lightning_template"  # study_name null: the file name
    assert result.data["space"]["model.optimizer.lr"] == {"float": [0.0001, 0.1]}
    assert "optimized_metric" in notes(result)["optimized_metric"]


def test_program_option_names_the_app():
    result = imported("runnable.yaml", program="tests/programs/quadratic.py")
    assert result.data["command"] == "${python} tests/programs/quadratic.py ${args_no_hyphens}"
    assert result.data["search"] == {"algorithm": "random"}
    assert result.data["space"]["epochs"] == 1
    assert "failure" not in result.data  # max_failure_rate 1.0: failures never end the sweep
    assert not any("placeholder" in n.message for n in result.notes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("choice(a, b)", Choice(["a", "b"])),
        ("a,b,c", Choice(["a", "b", "c"])),
        ("choice('x,y', \"z\")", Choice(["x,y", "z"])),
        ("true, False, null, 1e-5, 2, .5", Choice([True, False, None, 1e-5, 2, 0.5])),  # choice(..., null) Hydra refuses
        ("range(1, 10)", Range(1, 10, 1)),
        ("range(0, 1, step=0.25)", Range(0, 1, 0.25)),
        ("range(5)", Range(0, 5, 1)),
        ("float(range(1, 3))", Range(1.0, 3.0, 1.0)),
        ("interval(0, 1)", Interval(0.0, 1.0)),
        ("int(interval(1, 4))", Interval(1, 4)),
        ("tag(log, interval(1e-4, 1e-1))", Interval(1e-4, 0.1, {"log"})),
        ("tag(log, int(interval(8, 128)))", Interval(8, 128, {"log"})),
        ("shuffle(range(0, 3))", Range(0, 3, 1, shuffle=True)),
        ("sort(3, 1, 2)", Choice([1, 2, 3])),
        ("str(choice(1, 2))", Choice(["1", "2"])),
        ("adam", "adam"),
        ("0.001", 0.001),
        ("[1, 2]", [1, 2]),
        ("{a: 1, b: x}", {"a": 1, "b": "x"}),
    ],
)
def test_override_grammar(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    "text", ["choice(", "range(a, b)", "interval(1)", "foo(1)", "choice(choice(1, 2))", "${db.host}"]
)
def test_override_grammar_errors(text):
    with pytest.raises(GrammarError):
        parse_override(text)


BASE = """\
defaults:
  - override hydra/sweeper: optuna
hydra:
  sweeper:
    direction: minimize
    params:
      x: interval(-5, 5)
"""

ERRORS = [
    (BASE + "    custom_search_space: .objective.configure\n", "hydra.sweeper.custom_search_space", 8, "Python code"),
    (BASE + "      db: glob(*)\n", "hydra.sweeper.params.db", 8, "glob"),
    (BASE + "      opt: choice([1, 2], [3])\n", "hydra.sweeper.params.opt", 8, "str, int, float, bool and null"),
    (BASE + "      y: choice(1,\n", "hydra.sweeper.params.y", 8, "missing value at column 10"),
    (
        BASE + "    sampler: {_target_: optuna.samplers.PartialFixedSampler}\n",
        "hydra.sweeper.sampler._target_",
        8,
        "no scalehp equivalent",
    ),
    (
        BASE + "    sampler: {_target_: optuna.samplers.TPESampler, n_trees: 3}\n",
        "hydra.sweeper.sampler.n_trees",
        8,
        "unknown TPESampler option",
    ),
    (
        BASE + "    pruner: {_target_: optuna.pruners.MedianPruner}\n",
        "hydra.sweeper.pruner",
        8,
        "unknown Optuna sweeper key",
    ),
    (BASE + "    max_failure_rate: 2\n", "hydra.sweeper.max_failure_rate", 8, "between 0 and 1"),
    (BASE.replace("minimize", "minimise"), "hydra.sweeper.direction", 5, "minimize or maximize"),
    (BASE.replace("sweeper: optuna", "sweeper: ax"), "defaults.0", 2, "not optuna"),
    (BASE.replace("interval(-5, 5)", "range(5, 1)"), "hydra.sweeper.params.x", 7, "below stop"),
    (
        BASE + "    _target_: hydra_plugins.hydra_ax_sweeper.ax_sweeper.AxSweeper\n",
        "hydra.sweeper._target_",
        8,
        "not Hydra's Optuna sweeper",
    ),
    ("hydra:\n  job:\n    name: x\n", "hydra", 1, "no hydra.sweeper"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), ERRORS)
def test_unmappable_settings_are_errors_with_file_line_and_key(tmp_path, text, path, line, message):
    source = tmp_path / "config.yaml"
    source.write_text(text)
    with pytest.raises(SpecError) as caught:
        import_file("hydra-optuna", source)
    error = caught.value
    assert (error.path, error.line, error.source) == (path, line, str(source))
    assert message in error.message
    assert str(error).startswith(f"{source}:{line}: {path}: ")


def test_grid_refuses_a_continuous_interval(tmp_path):
    source = tmp_path / "config.yaml"
    source.write_text(BASE.replace("optuna\n", "optuna\n  - override hydra/sweeper/sampler: grid\n", 1))
    with pytest.raises(SpecError, match="discrete distributions only"):
        import_file("hydra-optuna", source)


def test_plus_prefixed_keys_become_plain_params(tmp_path):
    source = tmp_path / "config.yaml"
    source.write_text(BASE + "      +w: interval(0, 1)\n")
    result = import_file("hydra-optuna", source)
    assert result.data["space"]["w"] == {"float": [0.0, 1.0]}
    assert "add w to the app's config" in notes(result)["hydra.sweeper.params.+w"]


def test_cli_takes_the_program(tmp_path):
    out = tmp_path / "exp.yaml"
    source = EXAMPLES / "runnable.yaml"
    args = ["import", "--from", "hydra-optuna", str(source), "--program", "tests/programs/quadratic.py", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "${python} tests/programs/quadratic.py ${args_no_hyphens}" in out.read_text()
    assert f"{source}:10: optimized_metric:" in result.stderr
    compile_plan(load_experiment(out))


def test_several_directions_need_a_multi_objective_sampler(tmp_path):
    source = tmp_path / "config.yaml"
    text = BASE.replace("direction: minimize", "direction: [minimize, maximize]")
    source.write_text(text.replace("optuna\n", "optuna\n  - override hydra/sweeper/sampler: random\n", 1))
    with pytest.raises(SpecError, match="not RandomSampler") as caught:
        import_file("hydra-optuna", source)
    assert caught.value.path == "hydra.sweeper.direction"


@pytest.mark.parametrize(
    ("group", "target", "search", "noted"),
    [
        ("gp", None, {"algorithm": "optuna", "sampler": "gp", "initial_points": 10}, False),
        (None, "optuna.samplers.GPSampler", {"algorithm": "optuna", "sampler": "gp", "initial_points": 4}, False),
        ("qmc", None, {"algorithm": "optuna", "sampler": "qmc"}, True),
    ],
)
def test_gp_and_qmc_samplers_are_scalehps_own(tmp_path, group, target, search, noted):
    source = tmp_path / "config.yaml"
    sampler = f"  - override hydra/sweeper/sampler: {group}\n" if group else ""
    chosen = f"    sampler: {{_target_: {target}, n_startup_trials: 4}}\n" if target else ""
    source.write_text(
        f"defaults:\n  - override hydra/sweeper: optuna\n{sampler}"
        f"hydra:\n  sweeper:\n    direction: minimize\n    n_trials: 12\n{chosen}"
        "    params:\n      x: range(-5.0, 5.0)\n      opt: choice(adam, sgd)\nx: 1\nopt: adam\n"
    )
    result = import_file("hydra-optuna", source)
    assert result.data["search"] == search
    assert ("hydra.sweeper.sampler" in notes(result) or any("QMCSampler" in m for m in notes(result).values())) == noted
    assert compiled(result, tmp_path).sampler == search["sampler"]
