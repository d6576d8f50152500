"""W&B Sweeps -> scalehp: the example configs import, validate, compile and read back; the tricky mappings are exact."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.importers import FORMATS, import_file, ordered
from scalehp.importers._mapping import sanitize_name
from scalehp.importers.wandb import exp_bound
from scalehp.space import sample_config
from scalehp.spec import load_experiment, read_yaml
from tests.importing import notes

EXAMPLES = Path(__file__).parent / "import_examples" / "wandb"


def imported(name: str, **options):
    return import_file("wandb", EXAMPLES / name, **options)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_imports_compiles_and_reads_back(example, tmp_path):
    result = imported(example)
    text = result.yaml()
    data, _ = read_yaml(text)
    assert data == result.data and list(data) == list(ordered(result.data))  # the same data, the usual key order
    out = tmp_path / "exp.yaml"
    out.write_text(text)
    plan = compile_plan(load_experiment(out))
    assert plan.experiment.command is not None and plan.experiment.trainable is None
    for note in result.notes:  # every note points into the source file
        assert note.line is not None and note.message


def test_every_distribution_maps_to_its_exact_equivalent():
    result = imported("bayes_distributions.yaml")
    space = result.data["space"]
    assert space["optimizer"] == "adam" and space["seed"] == 7  # constants
    assert space["batch_size"] == {"choice": [16, 32, 64]}
    assert space["activation"] == {"choice": ["relu", "gelu", "silu"]}  # string choices
    assert space["use_bn"] == {"choice": [True, False]}  # booleans stay booleans
    assert space["layers"] == {"int": [1, 4]}  # integer bounds: int_uniform
    assert space["dropout"] == {"float": [0.0, 0.5]}  # float bounds: uniform
    assert space["momentum"] == {"float": [0.8, 0.99]}
    assert space["warmup_frac"] == {"float": [0.0, 0.3], "step": 0.05}  # q_uniform, float q
    assert space["hidden"] == {"int": [32, 256], "step": 32}  # q_uniform, integer q: integers
    # log_uniform: bounds are exponents of e, converted to values
    assert space["lr"] == {"float": [1.0e-4, 0.1], "log": True}
    assert space["weight_decay"] == {"float": [1.0e-6, 1.0e-2], "log": True}  # log_uniform_values: values
    assert space["width"] == {"int": [16, 512], "log": True}  # q_log_uniform_values with q 1: an int log range
    assert space["embed"] == {"float": [8.0, 512.0], "log": True, "step": 8}  # q_log_uniform: exponents
    assert space["eps"] == {"float": [1.0e-6, 1.0e-2], "log": True}  # inv_log_uniform: e**-max .. e**-min
    assert space["beta2"] == {"float": [0.9, 0.9999], "log": True}  # inv_log_uniform_values
    assert space["noise"] == {"normal": [0.0, 0.1]}
    assert space["shift"] == {"normal": [10, 3], "step": 1}
    assert space["scale"] == {"lognormal": [-2.3, 0.5]}  # mu and sigma of ln(value), as in W&B
    assert space["clip"] == {"lognormal": [0.0, 1.0], "step": 0.5}
    assert space["label_smoothing"] == {"float": [0.0, 1.0]}  # beta: the same support
    assert result.data["metric"] == {"name": "val/loss", "mode": "min", "goal": 0.05}
    assert result.data["budget"] == {"samples": 60, "max_steps": 100}  # run_cap; no step budget: the default
    assert result.data["search"] == {"algorithm": "hyperopt"}
    assert result.data["name"] == "cifar10-bayes-sweep-all-distributions"
    assert result.data["description"] == "every distribution W&B documents"
    assert result.data["command"] == {"run": "${python} train.py ${args}", "client": "wandb"}


def test_notes_say_what_changed_and_why():
    said = notes(imported("bayes_distributions.yaml"))
    assert "Gaussian process" in said["method"] and "hyperopt" in said["method"]
    assert "exponents of e" in said["parameters.lr.distribution"]
    assert "[0.0001, 0.1]" in said["parameters.lr.distribution"]
    assert "e**-9.21 = 0.000100034 ~ 0.0001" in said["parameters.lr.distribution"]
    assert "exponents of e" in said["parameters.embed.distribution"]
    assert "e**-13.8 = 1.01563e-06 ~ 1e-06" in said["parameters.eps.distribution"]
    assert "metric.goal 0.05" in said["metric.target"]
    assert "impute" in said["metric.impute"]
    assert "no beta distribution" in said["parameters.label_smoothing.distribution"]
    assert "whole-number floats" in said["parameters.embed.q"] and "whole-number floats" in said["parameters.shift.q"]
    assert "name=value" in said["program"] or any("wandb.log" in m for m in said.values())
    assert "budget.max_steps 100" in said["parameters"]
    assert {"project", "entity", "name"} <= set(said)
    # weight_decay, width, hidden, ... map exactly: no note for them
    assert not any(
        path.startswith(("parameters.weight_decay", "parameters.width", "parameters.hidden")) for path in said
    )


def test_grid_with_nested_parameters():
    result = imported("grid_nested.yaml")
    assert result.data["search"] == {"algorithm": "grid"}
    assert result.data["budget"]["samples"] == 1  # every combination once
    assert result.data["space"] == {
        "batch_size": {"choice": [32, 64]},
        "depth": {"choice": [1, 2, 3]},  # int_uniform on a grid: every integer
        "dropout": {"choice": [0.0, 0.1, 0.2]},  # q_uniform on a grid: numpy.arange(min, max, q), as W&B
        "optimizer.lr": {"choice": [0.001, 0.0001]},  # nested parameters: dotted names
        "optimizer.nadam.beta": {"choice": [0.9, 0.95]},
    }
    said = notes(result)
    assert "72 combinations" in said["run_cap"]
    assert "dotted names" in said["parameters.optimizer.parameters"]
    assert compile_plan(load_experiment(_write(result))).trials == 72


def test_hyperband_max_iter_becomes_asha_and_the_step_budget():
    result = imported("random_hyperband.yaml")
    assert result.data["scheduler"] == {"asha": {"grace_steps": 3, "reduction_factor": 3}}
    assert result.data["budget"] == {"samples": 20, "max_steps": 27}
    assert result.data["command"] == {"run": "${python} train.py --log-every=10 ${args_no_boolean_flags}", "client": "wandb"}
    assert result.data["metric"] == {"name": "val_acc", "mode": "max"}
    said = notes(result)
    assert "rungs at steps [3, 9]" in said["early_terminate"] and "[3, 9]" in said["early_terminate"]
    assert "logged value" in said["early_terminate"]
    assert "strict" in said["early_terminate.strict"]
    assert "equally often" in said["parameters.optimizer.probabilities"]
    assert "command.4" not in said  # scalehp's command fills in W&B's ${args_no_boolean_flags} itself
    assert "${python}" in said["command.1"]
    assert "budget.samples 20" in said["method"]
    plan = compile_plan(load_experiment(_write(result)))
    assert [r.step for r in plan.rungs] == [3, 9, 27]


def test_hyperband_min_iter_and_epochs_give_the_step_budget():
    result = imported("runnable.yaml")
    assert result.data["budget"] == {"samples": 4, "max_steps": 3}
    assert result.data["scheduler"] == {"asha": {"grace_steps": 1, "reduction_factor": 3}}
    assert result.data["command"] == {"run": "${python} tests/programs/quadratic.py ${args}", "client": "wandb"}
    assert "largest epochs" in notes(result)["parameters.epochs"]


def test_program_option_replaces_the_program():
    result = imported("runnable.yaml", program="other.py")
    assert result.data["command"] == {"run": "${python} other.py ${args}", "client": "wandb"}
    assert "--program" in notes(result)["program"]


def test_program_option_is_refused_by_formats_that_do_not_take_it(monkeypatch):
    monkeypatch.setitem(FORMATS, "no-program", "scalehp.importers")  # a module without TAKES_PROGRAM
    with pytest.raises(SpecError, match="--program is not used by no-program"):
        import_file("no-program", EXAMPLES / "runnable.yaml", program="x.py")


BASE = """\
program: train.py
method: random
metric: {name: loss, goal: minimize}
parameters:
  lr: {min: 0.001, max: 0.1}
"""

ERRORS = [
    (BASE + "command: [python, train.py, '--params=${args_json_file}']\n", "command.2", 6, "an argument of its own"),
    (
        BASE + "command: ['${env}', '${interpreter}', '${program}', '--home=${envvar:HOME}']\n",
        "command.3",
        6,
        "environment",
    ),
    (BASE + "job: wandb/jobs/train:latest\n", "job", 6, "Launch"),
    (BASE + "early_terminate: {type: envelope}\n", "early_terminate.type", 6, "hyperband"),
    (
        BASE + "  epochs: {value: 50}\nearly_terminate: {type: hyperband, min_iter: 50}\n",
        "early_terminate.min_iter",
        7,
        "could ever be stopped",
    ),
    (BASE + "scheduler: {engine: optuna, source: opt.py}\n", "scheduler.source", 6, "Python"),
    (BASE + "max_runs: 3\n", "max_runs", 6, "unknown W&B sweep key"),
    (BASE.replace("metric: {name: loss, goal: minimize}\n", ""), "metric", None, "names no metric"),
    (BASE.replace("method: random", "method: grid"), "parameters.lr", 5, "grid search cannot enumerate a uniform"),
    (
        BASE.replace("{min: 0.001, max: 0.1}", "{distribution: cauchy, min: 0, max: 1}"),
        "parameters.lr.distribution",
        5,
        "unknown W&B distribution",
    ),
    (
        BASE.replace("{min: 0.001, max: 0.1}", "{distribution: normal, min: 0, max: 1}"),
        "parameters.lr.min",
        5,
        "normal takes no 'min'",
    ),
    (
        BASE.replace("{min: 0.001, max: 0.1}", "{distribution: log_uniform_values, min: 0, max: 1}"),
        "parameters.lr.min",
        5,
        "> 0",
    ),
    (BASE.replace("method: random", "method: custom"), "method", 2, "scheduler.engine"),
]


@pytest.mark.parametrize(("text", "path", "line", "message"), ERRORS)
def test_unmappable_settings_are_errors_with_file_line_and_key(tmp_path, text, path, line, message):
    source = tmp_path / "sweep.yaml"
    source.write_text(text)
    with pytest.raises(SpecError) as caught:
        import_file("wandb", source)
    error = caught.value
    assert error.path == path and error.line == line and error.source == str(source)
    assert message in error.message
    assert str(error).startswith(f"{source}:{line}: {path}: " if line else f"{source}: {path}: ")


def test_exponent_bounds_read_at_the_precision_written():
    assert exp_bound(-9.21) == 1.0e-4 and exp_bound(-2.3) == 0.1 and exp_bound(0) == 1.0
    assert exp_bound(-6.907755278982137) == 1.0e-3  # ln(0.001) written in full
    assert exp_bound(-1.234) == 0.291  # ln(0.291) = -1.2344: -1.234 is its logarithm to 3 decimals
    assert exp_bound(-1.23456) == 0.290963  # no short number has this logarithm: e**x to 6 digits
    assert exp_bound(4.6) == 100.0 and exp_bound(13.8) == 1.0e6
    assert exp_bound(-4) == 0.0183156 and exp_bound(2) == 7.38906  # whole exponents: powers of e


def test_names_are_made_valid():
    assert sanitize_name("my sweep (v2)") == "my-sweep-v2"
    assert sanitize_name("..weird..name..") == "weird.name"
    assert sanitize_name("***") == ""


def test_cli_writes_the_file_and_prints_the_notes(tmp_path):
    out = tmp_path / "exp.yaml"
    source = EXAMPLES / "random_hyperband.yaml"
    result = CliRunner().invoke(main, ["import", "--from", "wandb", str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == import_file("wandb", source).yaml()
    assert f"wrote {out}" in result.stderr
    assert "setting(s) not carried over exactly" in result.stderr
    assert f"{source}:11: early_terminate: hyperband -> scheduler asha" in result.stderr
    assert result.stdout == ""
    compile_plan(load_experiment(out))


def test_cli_prints_the_experiment_and_reports_errors(tmp_path):
    source = EXAMPLES / "runnable.yaml"
    result = CliRunner().invoke(main, ["import", "--from", "wandb", str(source)])
    assert result.exit_code == 0 and result.stdout == import_file("wandb", source).yaml()
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "command: [python, train.py, '--params=${args_json_file}']\n")
    result = CliRunner().invoke(main, ["import", "--from", "wandb", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:6: command.2:" in result.stderr


def _write(result) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "exp.yaml"
    path.write_text(result.yaml())
    return path


def test_bayes_example_is_searchable_by_hyperopt():
    """hyperopt draws every converted distribution (in-process, no Ray): values stay in their ranges and steps."""
    from scalehp.runner.search import first_suggestions
    from scalehp.spec import experiment_from_data

    data, _ = read_yaml(imported("bayes_distributions.yaml").yaml())
    for config in first_suggestions(compile_plan(experiment_from_data({**data, "seed": 0})), 8):
        assert 1.0e-4 <= config["lr"] <= 0.1 and 1.0e-6 <= config["eps"] <= 1.0e-2
        assert 8 <= config["embed"] <= 512 and config["embed"] % 8 == 0
        assert config["hidden"] % 32 == 0 and 32 <= config["hidden"] <= 256
        assert config["scale"] > 0 and config["clip"] % 0.5 == 0
        assert config["optimizer"] == "adam" and config["use_bn"] in (True, False)


def test_choices_over_mappings_and_several_metrics(tmp_path):
    source = tmp_path / "sweep.yaml"
    arch = "parameters:\n  arch: {values: [{depth: 2, width: 64}, {depth: 4, width: 32}]}\n"
    source.write_text("program: train.py\nmethod: bayes\nmetric: {name: loss}\n" + arch)
    result = import_file("wandb", source)  # hyperopt chooses among mappings
    assert result.data["space"]["arch"] == {"choice": [{"depth": 2, "width": 64}, {"depth": 4, "width": 32}]}
    several = "metrics: [{name: loss, goal: minimize}, {name: latency, goal: maximize}]\n"
    source.write_text("program: train.py\nmethod: custom\nscheduler: {engine: optuna}\n" + several + arch)
    with pytest.raises(SpecError, match="optuna chooses among numbers") as caught:
        import_file("wandb", source)  # optuna does not
    assert (caught.value.path, caught.value.line) == ("parameters.arch.values", 6)
    source.write_text(source.read_text().replace("{depth: 2, width: 64}, {depth: 4, width: 32}", "small, large"))
    result = import_file("wandb", source)
    assert result.data["metric"] == [{"name": "loss", "mode": "min"}, {"name": "latency", "mode": "max"}]
    assert result.data["search"] == {"algorithm": "optuna"}
    source.write_text(source.read_text().replace("method: custom\nscheduler: {engine: optuna}\n", "method: bayes\n"))
    with pytest.raises(SpecError, match="several metrics need method custom"):
        import_file("wandb", source)


def wandb_values(low: float, high: float, q: float, log: bool = False) -> set[float]:
    """W&B's own rule on a fine sweep of x in [min, max]: round(x / q) * q, not clipped."""
    points = [i / 20_000 for i in range(20_001)]
    xs = [low * (high / low) ** t for t in points] if log else [low + (high - low) * t for t in points]
    return {round(round(x / q) * q, 9) for x in xs}


def space_values(param: Any, tmp_path: Path) -> set[float]:
    """Every value scalehp takes for ``param`` (drawn often enough to see each)."""
    data = {"name": "s", "command": "x", "metric": {"name": "v", "mode": "min"}, "results": str(tmp_path)}
    space = load_experiment({**data, "budget": {"samples": 1, "max_steps": 1}, "space": {"p": param}}).space
    rng = random.Random(0)
    return {round(float(sample_config(space, rng=rng)["p"]), 9) for _ in range(4000)}


@pytest.mark.parametrize(
    "spec, expected, rule",
    [
        # min and max round outwards (W&B does not clip): the bounds become those multiples
        (
            "{distribution: q_uniform, min: 0.05, max: 0.87, q: 0.1}",
            {"float": [0.0, 0.9], "step": 0.1},
            (0.05, 0.87, 0.1),
        ),
        ("{distribution: q_uniform, min: 3, max: 14, q: 5}", {"int": [5, 15], "step": 5}, (3, 14, 5)),
        (
            "{distribution: q_log_uniform_values, min: 0.012, max: 0.1, q: 0.01}",
            {"float": [0.01, 0.1], "log": True, "step": 0.01},
            (0.012, 0.1, 0.01, True),
        ),
        # W&B rounds the smallest values to 0, which no log range holds: the values as a choice
        (
            "{distribution: q_log_uniform_values, min: 0.001, max: 0.05, q: 0.01}",
            {"choice": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]},
            (0.001, 0.05, 0.01, True),
        ),
        (
            "{distribution: q_log_uniform_values, min: 0.3, max: 6}",
            {"choice": [0, 1, 2, 3, 4, 5, 6]},
            (0.3, 6, 1, True),
        ),
        ("{distribution: q_beta, q: 0.6}", {"float": [0.0, 1.2], "step": 0.6}, (0, 1, 0.6)),
    ],
)
def test_quantized_distributions_keep_wandbs_exact_values(tmp_path, spec, expected, rule):
    source = tmp_path / "sweep.yaml"
    source.write_text(BASE.replace("{min: 0.001, max: 0.1}", spec))
    result = import_file("wandb", source)
    assert result.data["space"]["lr"] == expected
    assert space_values(expected, tmp_path) == wandb_values(*rule)


def test_a_log_range_rounding_to_0_too_long_to_list_keeps_the_range_with_a_loud_note(tmp_path):
    source = tmp_path / "sweep.yaml"
    spec = "{distribution: q_log_uniform_values, min: 0.1, max: 5000}"
    source.write_text(BASE.replace("{min: 0.001, max: 0.1}", spec))
    result = import_file("wandb", source)
    assert result.data["space"]["lr"] == {"int": [1, 5000], "log": True}
    said = notes(result)["parameters.lr.q"]
    assert said.startswith("VALUES DIFFER") and "also takes 0" in said and "1,000" in said


def test_bayes_is_optunas_gaussian_process_where_optuna_can_draw_the_space(tmp_path):
    source = tmp_path / "sweep.yaml"
    source.write_text(
        "program: train.py\nmethod: bayes\nmetric: {name: loss}\nrun_cap: 12\n"
        "parameters:\n  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}\n"
        "  layers: {distribution: int_uniform, min: 1, max: 4}\n  act: {values: [relu, gelu]}\n"
    )
    result = import_file("wandb", source)
    assert result.data["search"] == {"algorithm": "optuna", "sampler": "gp"}
    assert "Gaussian-process Bayesian optimisation, as W&B's bayes" in notes(result)["method"]
    plan = compile_plan(load_experiment(_write(result)))
    assert plan.sampler == "gp" and plan.trials == 12
    # a normal distribution optuna cannot draw: hyperopt, and the note names the param
    source.write_text(source.read_text() + "  noise: {distribution: normal, mu: 0, sigma: 1}\n")
    result = import_file("wandb", source)
    assert result.data["search"] == {"algorithm": "hyperopt"}
    assert "optuna has no normal distribution for 'noise'" in notes(result)["method"]
