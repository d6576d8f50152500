"""scalehp import --from determined: example configs from Determined's docs, the tricky mappings, the errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.importers import import_file
from scalehp.importers._mapping import EPOCH_STEP
from scalehp.spec import load_experiment
from tests.importing import notes

EXAMPLES = Path(__file__).parent / "import_examples" / "determined"
MAPPABLE = sorted(EXAMPLES.glob("*.yaml"))


def determined(name: str):
    return import_file("determined", EXAMPLES / name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", MAPPABLE, ids=[p.name for p in MAPPABLE])
def test_every_example_imports_validates_compiles_and_reads_back(path, tmp_path):
    imported = import_file("determined", path)
    out = tmp_path / "exp.yaml"
    out.write_text(imported.yaml())
    plan = compile_plan(load_experiment(out))
    assert plan.trials >= 1


def test_log_bounds_are_exponents_converted_to_values_and_nested_groups_are_dotted():
    imported = determined("adaptive.yaml")
    space = imported.data["space"]
    # minval -5, maxval 1, base 10: the values 1e-5 .. 10, never the exponents
    assert space["optimizer_config.learning_rate"] == {"float": [1e-5, 10.0], "log": True}
    assert space["hidden"] == {"float": [16.0, 1024.0], "log": True}  # base 2, exponents 4..10
    assert space["optimizer_config.optimizer"] == {"choice": ["SGD", "Adam", "RMSprop"]}
    assert space["num_layers"] == {"int": [1, 3]}
    assert space["layer1_dropout"] == {"float": [0.2, 0.5]}
    assert space["use_bias"] == {"choice": [True, False]}
    assert space["global_batch_size"] == {"constant": 64}
    assert space["schedule"] == {"constant": [10, 20, 30]}  # type const with a list value
    experiment = load_experiment({**imported.data})
    assert experiment.space["optimizer_config.learning_rate"].low == 1e-5


def test_adaptive_asha_maps_divisor_rungs_and_mode():
    imported = determined("adaptive.yaml")
    data = imported.data
    assert data["metric"] == {"name": "validation_accuracy", "mode": "max"}
    assert data["budget"] == {"samples": 16, "max_steps": 16}
    # max_length 16 epochs, divisor 2, max_rungs 5: rungs at 16 / 2**4, 16 / 2**3, ... = 1, 2, 4, 8 (and 16);
    # standard mode runs brackets of 3, 4 and 5 rungs: rungs at Determined's steps, each bracket one higher
    assert data["scheduler"] == {"asha": {"reduction_factor": 2.0, "brackets": 3, "rungs": [1, 2, 4, 8]}}
    assert data["search"] == {"algorithm": "random"}
    assert data["concurrency"] == 8 and data["seed"] == 42
    assert data["resources"] == {"gpu": 2}
    assert data["failure"] == {"max_retries": 2}
    assert data["trainable"] == "model_def:train" and "command" not in data
    found = notes(imported)
    assert "Trial API" in found["entrypoint"] and "model_def:train" in found["entrypoint"]
    assert "stop_once" in found["searcher.name"] and "rungs at 1, 2, 4, 8 steps" in found["searcher.name"]
    assert "resources.max_slots" in found and "whole experiment" in found["max_restarts"]


def test_grid_counts_become_determineds_grid_points():
    imported = determined("grid.yaml")
    space = imported.data["space"]
    assert space["dropout"] == {"grid": [0.2, 0.3, 0.4, 0.5]}
    assert space["n_filters"] == {"grid": [8, 36, 64]}
    assert space["learning_rate"]["grid"] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1], rel=1e-12)
    assert space["optimizer"] == {"grid": ["sgd", "adam"]}
    assert imported.data["search"] == {"algorithm": "grid"} and imported.data["budget"]["samples"] == 1
    plan = compile_plan(load_experiment({**imported.data}))
    assert plan.trials == 4 * 3 * 4 * 2
    command = imported.data["command"]
    assert command["run"] == "${python} train.py --data-dir /data ${args_json}"
    assert command["env"] == {"OMP_NUM_THREADS": "1"}
    found = notes(imported)
    assert "bind_mounts" in found and "environment.image" in found
    assert "step=<batches trained>" in found["searcher.max_length"]


def test_int_grid_rounds_half_away_from_zero_and_clamps_the_count(tmp_path):
    text = """\
hyperparameters:
  a: {type: int, minval: 0, maxval: 5, count: 4}
  b: {type: int, minval: 1, maxval: 3, count: 10}
  c: {type: double, minval: 0, maxval: 1, count: 1}
searcher: {name: grid, metric: loss, max_length: {epochs: 2}}
entrypoint: python3 train.py
"""
    space = import_file("determined", write(tmp_path, text)).data["space"]
    assert space["a"] == {"grid": [0, 2, 3, 5]}  # 0, 1.67, 3.33, 5 -> Go's math.Round
    assert space["b"] == {"grid": [1, 2, 3]}
    assert space["c"] == {"grid": [0.5]}


def test_const_single_searcher_and_trial_class():
    imported = determined("const.yaml")
    data = imported.data
    assert data["name"] == "mnist_pytorch_const" and data["description"].startswith("MNIST")
    assert data["budget"] == {"samples": 1, "max_steps": 937}
    assert data["space"]["use_bias"] == {"constant": True} and data["space"]["activation"] == {"constant": "relu"}
    found = notes(imported)
    assert {"data", "min_validation_period", "checkpoint_storage"} <= set(found)


def test_launcher_is_dropped_with_a_note_and_max_time_gives_the_steps():
    imported = determined("launcher.yaml")
    data = imported.data
    assert data["command"]["run"] == "${python} train.py ${args_json}"
    assert data["budget"] == {"samples": 20, "max_steps": 500}
    assert data["space"]["model.width"] == {"int": [16, 256]} and data["space"]["model.depth"] == {"constant": 3}
    found = notes(imported)
    assert "torch_distributed" in found["entrypoint"] and "step=<batches>" in found["searcher.max_time"]
    assert data["command"]["step"] == "step"  # lines without step=<batches> update metrics, not count
    assert "resources.resource_pool" in found


def test_an_epoch_budget_makes_the_epoch_a_commands_step():
    imported = determined("quadratic.yaml")
    assert imported.data["budget"]["max_steps"] == 4
    assert imported.data["command"]["step"] == EPOCH_STEP
    assert "command.step finds the epoch" in notes(imported)["searcher.max_length"]


def test_unmappable_pbt_is_an_error_at_its_line():
    path = EXAMPLES / "unmappable" / "pbt.yaml"
    with pytest.raises(SpecError) as info:
        import_file("determined", path)
    assert info.value.path == "searcher.name"
    assert info.value.line == next(i for i, r in enumerate(path.read_text().splitlines(), 1) if r == "  name: pbt")


BASE = """\
name: base
hyperparameters:
  lr: {type: log, minval: -4, maxval: -1, base: 10}
searcher:
  name: random
  metric: loss
  max_trials: 3
  max_length: {epochs: 2}
entrypoint: python3 train.py
"""


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("name: random", "name: custom", "searcher.name", "custom searcher"),
        ("name: random", "name: adaptive_simple", "searcher.name", "end-of-life"),
        ("name: random", "name: bayes", "searcher.name", "unknown Determined searcher"),
        ("type: log", "type: loguniform", "hyperparameters.lr.type", "unknown hyperparameter type"),
        ("name: random", "name: grid", "hyperparameters.lr", "count"),
        ("max_length: {epochs: 2}", "max_length: {minutes: 2}", "searcher.max_length", "epochs|batches|records"),
        ("python3 train.py", "python3 train.py | tee log", "entrypoint", "shell"),
        ("base: 10", "base: 1", "hyperparameters.lr.base", "not 1"),
    ],
)
def test_settings_without_equivalent_are_errors_with_file_line_and_key(tmp_path, old, new, key, words):
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(SpecError) as info:
        import_file("determined", path)
    assert info.value.path == key, str(info.value)
    assert words in info.value.message
    assert info.value.line is not None and f"{path}:{info.value.line}: {key}:" in str(info.value)


def test_defaults_when_the_source_is_silent(tmp_path):
    imported = import_file("determined", write(tmp_path, BASE.replace("  max_length: {epochs: 2}\n", "")))
    data, found = imported.data, notes(imported)
    assert data["metric"]["mode"] == "min"  # smaller_is_better defaults to true
    assert data["concurrency"] == 16  # Determined's default max_concurrent_trials
    assert data["budget"]["max_steps"] == 100 and "no max_length" in found["searcher"]
    assert data["space"]["lr"] == {"float": [0.0001, 0.1], "log": True}


def test_cli(tmp_path):
    out = tmp_path / "adaptive.yaml"
    result = CliRunner().invoke(
        main, ["import", "--from", "determined", str(EXAMPLES / "adaptive.yaml"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert load_experiment(out).space["optimizer_config.learning_rate"].high == 10.0
    assert "Trial API" in result.stderr


def test_adaptive_asha_places_rungs_where_determined_does_not_where_ray_would(tmp_path):
    """max_length 100, divisor 4, 4 rungs: Determined compares at 1, 6, 25 (and ends at 100);
    Ray's grace * divisor**k would give 1, 4, 16, 64."""
    path = tmp_path / "asha.yaml"
    path.write_text(
        "name: rungs\nentrypoint: python3 train.py\nhyperparameters:\n  lr: {type: double, minval: 0.001, maxval: 0.1}\n"
        "searcher:\n  name: adaptive_asha\n  metric: val_loss\n  smaller_is_better: true\n  max_trials: 64\n"
        "  max_length: {epochs: 100}\n  divisor: 4\n  max_rungs: 4\n  mode: aggressive\n  stop_once: true\n"
    )
    imported = import_file("determined", path)
    assert imported.data["scheduler"] == {"asha": {"reduction_factor": 4.0, "brackets": 1, "rungs": [1, 6, 25]}}
    plan = compile_plan(load_experiment({**imported.data, "results": str(tmp_path / "r")}))
    assert [r.step for r in plan.rungs] == [1, 6, 25, 100]
