"""scalehp import --from nni: example configs from NNI's documentation, the tricky mappings, the notes, the errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.importers import import_file
from scalehp.space import flatten_space, sample_config
from scalehp.spec import load_experiment
from tests.importing import notes

EXAMPLES = Path(__file__).parent / "import_examples" / "nni"
MAPPABLE = sorted([*EXAMPLES.glob("*.yml"), *EXAMPLES.glob("*.json"), EXAMPLES / "nested" / "config.yml"])


def nni(name: str):
    return import_file("nni", EXAMPLES / name)


def write(tmp_path: Path, text: str, name: str = "config.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", MAPPABLE, ids=[str(p.relative_to(EXAMPLES)) for p in MAPPABLE])
def test_every_example_imports_validates_compiles_and_reads_back(path, tmp_path):
    imported = import_file("nni", path)
    out = tmp_path / "exp.yaml"
    out.write_text(imported.yaml())
    plan = compile_plan(load_experiment(out))
    assert plan.trials >= 1 and plan.experiment.command is not None
    assert "${args_json}" in plan.experiment.command.run


def test_every_search_space_type():
    imported = nni("detailed.yml")
    space = imported.data["space"]
    assert space["batch_size"] == {"choice": [16, 32, 64, 128]}
    assert space["optimizer"] == {"choice": ["adam", "sgd"]}  # string choices
    assert space["nesterov"] == {"choice": [True, False]}  # booleans
    assert space["hidden_layers"] == {"int": [1, 3]}  # randint's upper bound 4 is exclusive
    assert space["conv_size"] == {"choice": [2, 5, 10]}  # NNI: 2 (clipped), 5, 10; 2 is no multiple of 5
    assert space["epochs"] == {"int": [10, 100], "step": 10}  # whole numbers on the q grid: ints
    assert space["lr"] == {"float": [0.0001, 0.1], "log": True}
    assert space["weight_decay"] == {"float": [0.001, 0.1], "step": 0.001, "log": True}
    assert space["momentum"] == {"float": [0, 1]}
    assert space["dropout"] == {"normal": [0.3, 0.1]}
    assert space["width"] == {"normal": [128, 32], "step": 16}
    assert space["warmup"] == {"lognormal": [2.0, 0.5]}  # mu/sigma of ln(value) in both tools
    assert space["embedding"] == {"lognormal": [4.0, 0.5], "step": 8}
    assert "5.0" in notes(imported)["searchSpace.epochs"]
    assert "2, 5, 10" in notes(imported)["searchSpace.conv_size"]


def test_q_rounding_is_nnis_clip_round(tmp_path):
    """quniform [2, 10, 5] takes exactly NNI's values 2, 5 and 10 (clip(round(x / q) * q, low, high))."""
    experiment = load_experiment({**nni("detailed.yml").data, "results": str(tmp_path)})
    rng = random.Random(0)
    seen = {sample_config({"c": experiment.space["conv_size"]}, rng=rng)["c"] for _ in range(400)}
    assert seen == {2, 5, 10}


def q_space(tmp_path, kind: str, value: list, tuner: str = "Random") -> dict:
    """The one param a {_type: kind, _value: value} search space imports as, with the notes, validated."""
    text = BASE.replace("{_type: loguniform, _value: [0.001, 0.1]}", json.dumps({"_type": kind, "_value": value}))
    imported = import_file("nni", write(tmp_path, text.replace("name: TPE", f"name: {tuner}")))
    load_experiment({**imported.data, "results": str(tmp_path)})
    return imported


def nni_values(low: float, high: float, q: float) -> set[float]:
    """NNI's own rule, on a fine sweep of x: clip(round(x / q) * q, low, high)."""
    xs = [low + (high - low) * i / 20_000 for i in range(20_001)]
    return {round(min(high, max(low, round(x / q) * q)), 9) for x in xs}


def taken(param: dict, tmp_path) -> set[float]:
    """Every value scalehp draws for ``param`` (a few thousand draws cover the short ranges tested)."""
    space = load_experiment({**BASE_DATA, "space": {"p": param}, "results": str(tmp_path)}).space
    rng = random.Random(0)
    return {round(float(sample_config(space, rng=rng)["p"]), 9) for _ in range(3000)}


@pytest.mark.parametrize(
    "kind, value, expected",
    [
        ("quniform", [2, 10, 5], {"choice": [2, 5, 10]}),  # 2 is clipped in: a value, no multiple
        ("quniform", [0, 13, 5], {"choice": [0, 5, 10, 13]}),  # 13 rounds to 15, clipped back to 13
        ("quniform", [3, 12, 5], {"int": [3, 12], "step": 5}),  # 3 rounds up to 5, 12 down to 10: multiples
        ("quniform", [0.1, 0.5, 0.2], {"choice": [0.1, 0.2, 0.4]}),
        ("quniform", [0.2, 1.0, 0.2], {"float": [0.2, 1.0], "step": 0.2}),  # bounds are multiples
        ("qloguniform", [1, 100, 10], {"choice": [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]}),
        ("qloguniform", [10, 100, 10], {"float": [10, 100], "step": 10, "log": True}),
        ("quniform", [2.6, 7, 5], {"constant": 5}),  # both ends round to 5
    ],
)
def test_q_ranges_keep_nnis_exact_values(tmp_path, kind, value, expected):
    imported = q_space(tmp_path, kind, value)
    param = imported.data["space"]["lr"]
    assert param == expected
    assert taken(param, tmp_path) == nni_values(*value)


def test_a_q_range_too_long_to_list_keeps_the_step_with_a_loud_note_but_a_grid_is_exact(tmp_path):
    imported = q_space(tmp_path, "quniform", [0.5, 5000.7, 1])  # 0.5 and 5000.7 clipped in, 5002 values
    assert imported.data["space"]["lr"] == {"float": [0.5, 5000.7], "step": 1}
    message = notes(imported)["searchSpace.lr"]
    assert message.startswith("VALUES DIFFER") and "0.5 and 5000.7" in message and "1,000" in message
    grid = q_space(tmp_path, "quniform", [0.5, 5000.7, 1], tuner="GridSearch")
    values = grid.data["space"]["lr"]["grid"]
    assert values[:3] == [0.5, 1.0, 2.0] and values[-2:] == [5000.0, 5000.7] and len(values) == 5002
    assert "searchSpace.lr" not in notes(grid)  # the grid lists NNI's values: nothing differs


def test_caps_budget_concurrency_gpus_tuner_and_assessor():
    imported = nni("detailed.yml")
    data = imported.data
    assert data["name"] == "MNIST-detailed"
    assert data["metric"] == {"name": "default", "mode": "max"}
    assert data["budget"] == {"samples": 80, "max_steps": 100, "soft_time_limit": 5400.0}  # 1.5h
    assert data["concurrency"] == 4 and data["seed"] == 12345
    assert data["resources"] == {"gpu": 0.5}  # one GPU shared by maxTrialNumberPerGpu: 2
    assert data["search"] == {"algorithm": "hyperopt", "initial_points": 10}
    assert data["scheduler"] == {"median_stopping": {"grace_steps": 5, "min_samples": 3}}
    assert data["command"] == {"run": "${python} mnist.py ${args_json}", "cwd": EXAMPLES.as_posix(), "client": "nni"}
    found = notes(imported)
    assert "30m" in found["maxTrialDuration"] and "logLevel" in found
    assert "constant_liar_type" not in found  # nested under tpe_args
    assert "tuner.classArgs.tpe_args.constant_liar_type" in found
    assert "tuner.classArgs.tpe_args.n_ei_candidates" in found
    assert "command.client nni" in found["trialCommand"] and "get_next_parameter" in found["trialCommand"]
    assert "'MNIST-detailed'" in found["experimentName"]


def test_nested_choice_from_a_search_space_file_is_a_conditional_space():
    imported = nni("nested/config.yml")
    layer = imported.data["space"]["layer0"]["choice"]
    assert layer == {
        "Empty": None,
        "Conv": {"kernel_size": {"choice": [1, 2, 3, 5]}},
        "Max_pool": {"pooling_size": {"choice": [2, 3, 5]}},
        "Avg_pool": {"pooling_size": {"choice": [2, 3, 5]}},
    }
    experiment = load_experiment({**imported.data})
    names = {node.name for node in flatten_space(experiment.space)}
    assert {"layer0", "layer0.kernel_size", "layer0.pooling_size", "layer1.kernel_size"} <= names
    found = notes(imported)
    assert "_name" in found["searchSpaceFile.layer0._value"]
    by_path = {n.path: n.line for n in imported.notes}
    assert by_path["searchSpaceFile.layer0._value"] == 4  # the searchSpaceFile line of the config
    assert imported.data["budget"]["soft_time_limit"] == 3600.0
    assert imported.data["resources"] == {"gpu": 0}


def test_bare_search_space_file():
    imported = nni("search_space.json")
    assert imported.data["name"] == "search_space"
    assert imported.data["space"]["learning_rate"] == {"float": [0.0001, 0.1]}
    assert imported.data["command"] == {"run": "${python} trial.py ${args_json}", "client": "nni"}
    assert any("bare search space" in n.message for n in imported.notes)


def test_hyperband_and_bohb_become_asha():
    hyperband = nni("hyperband.yml").data
    # R = 60, eta = 3: s_max = 3; NNI's rounds floor(60 / 27), floor(60 / 9), floor(60 / 3) = 2, 6, 20
    # (Ray's grace * eta**k would give 2, 6, 18, 54); four brackets, the last with no rung
    assert hyperband["scheduler"] == {"asha": {"reduction_factor": 3.0, "brackets": 4, "rungs": [2, 6, 20]}}
    assert hyperband["budget"]["max_steps"] == 60 and hyperband["search"] == {"algorithm": "random"}
    assert hyperband["command"]["env"] == {"SCALEHP_NNI_TRIAL_BUDGET": "60"}  # nni.get_next_parameter()'s TRIAL_BUDGET
    bohb = nni("bohb.yml")
    assert bohb.data["search"] == {"algorithm": "hyperopt"}
    assert bohb.data["scheduler"]["asha"]["grace_steps"] == 1 and bohb.data["budget"]["max_steps"] == 27
    found = notes(bohb)
    assert "remote" in found["trainingService.platform"] and "trainingService.machineList" in found
    assert "top_n_percent" in found["tuner.classArgs.top_n_percent"] or "BOHB" in found["tuner.classArgs.top_n_percent"]


def test_grid_search_enumerates_and_continuous_grid_falls_back_to_random(tmp_path):
    imported = nni("gridsearch.yml")
    assert imported.data["space"] == {
        "optimizer": {"grid": ["sgd", "adam"]},
        "layers": {"grid": [1, 2, 3]},
        "dropout": {"grid": [0.1, 0.2, 0.4]},  # round(x / 0.2) * 0.2 clipped to [0.1, 0.5]: 0.1, 0.2, 0.4
    }
    assert imported.data["search"] == {"algorithm": "grid"} and imported.data["budget"]["samples"] == 1
    assert "18 trials" in notes(imported)["maxTrialNumber"]
    text = (
        (EXAMPLES / "gridsearch.yml")
        .read_text()
        .replace("{_type: quniform, _value: [0.1, 0.5, 0.2]}", "{_type: uniform, _value: [0.1, 0.5]}")
    )
    fallback = import_file("nni", write(tmp_path, text))
    assert fallback.data["search"] == {"algorithm": "random"}
    assert fallback.data["space"]["dropout"] == {"float": [0.1, 0.5]}
    assert "random search instead" in notes(fallback)["tuner.name"]


def test_evolution_and_curvefitting_choose_the_closest_with_notes():
    imported = nni("evolution_curvefitting.yml")
    assert imported.data["search"] == {"algorithm": "optuna", "sampler": "nsga2"}
    assert imported.data["scheduler"] == {"median_stopping": {"grace_steps": 6, "min_samples": 3}}
    found = notes(imported)
    assert "genetic" in found["tuner.name"] and "Curvefitting" in found["assessor.name"]
    assert {"assessor.classArgs.epoch_num", "assessor.classArgs.threshold", "assessor.classArgs.gap"} <= set(found)


def test_unmappable_batch_tuner_is_an_error_at_its_line():
    path = EXAMPLES / "unmappable" / "batch.yml"
    with pytest.raises(SpecError) as info:
        import_file("nni", path)
    assert info.value.path == "tuner.name"
    assert info.value.line == next(i for i, r in enumerate(path.read_text().splitlines(), 1) if "name: Batch" in r)


BASE = """\
searchSpace:
  lr: {_type: loguniform, _value: [0.001, 0.1]}
trialCommand: python3 train.py
trialConcurrency: 1
tuner:
  name: TPE
"""


BASE_DATA = {
    "name": "q",
    "command": {"run": "${python} t.py ${args_json}"},
    "metric": {"name": "default", "mode": "min"},
    "budget": {"samples": 1, "max_steps": 1},
}


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("name: TPE", "name: PBT", "tuner.name", "checkpoints"),
        ("name: TPE", "name: MyTuner", "tuner.name", "unknown NNI tuner"),
        ("_type: loguniform", "_type: lognormalish", "searchSpace.lr._type", "unknown NNI type"),
        ("_value: [0.001, 0.1]", "_value: [0.001]", "searchSpace.lr._value", "takes 2 numbers"),
        ("python3 train.py", "python3 train.py && rm -rf out", "trialCommand", "shell"),
        ("trialConcurrency: 1", "trialConcurrency: 1\nuseAnnotation: true", "useAnnotation", "annotations"),
        ("trialConcurrency: 1", "trialConcurrency: 1\nmaxTrialNum: 3", "maxTrialNum", "v1 config"),
    ],
)
def test_settings_without_equivalent_are_errors_with_file_line_and_key(tmp_path, old, new, key, words):
    path = write(tmp_path, BASE.replace(old, new))
    with pytest.raises(SpecError) as info:
        import_file("nni", path)
    assert info.value.path == key, str(info.value)
    assert words in info.value.message
    assert info.value.line is not None and f"{path}:{info.value.line}: {key}:" in str(info.value)


def test_errors_in_a_search_space_file_name_that_file(tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({"lr": {"_type": "uniform", "_value": [0.1]}}))
    path = write(
        tmp_path,
        BASE.replace(
            "searchSpace:\n  lr: {_type: loguniform, _value: [0.001, 0.1]}\n", "searchSpaceFile: space.json\n"
        ),
    )
    with pytest.raises(SpecError) as info:
        import_file("nni", path)
    assert info.value.source == str(tmp_path / "space.json") and info.value.path == "lr._value"
    missing = write(
        tmp_path,
        BASE.replace("searchSpace:\n  lr: {_type: loguniform, _value: [0.001, 0.1]}\n", "searchSpaceFile: nope.json\n"),
    )
    with pytest.raises(SpecError, match="cannot read") as info:
        import_file("nni", missing)
    assert info.value.path == "searchSpaceFile" and info.value.line == 1


def test_nested_choice_needs_names_and_defaults_get_notes(tmp_path):
    text = BASE.replace("lr: {_type: loguniform, _value: [0.001, 0.1]}", "opt: {_type: choice, _value: [{lr: 1}, sgd]}")
    with pytest.raises(SpecError, match="_name"):
        import_file("nni", write(tmp_path, text))
    imported = import_file("nni", write(tmp_path, BASE))
    found = notes(imported)
    assert imported.data["metric"] == {"name": "default", "mode": "min"} and "optimize_mode" in found["tuner.classArgs"]
    assert imported.data["budget"]["samples"] == 100 and "no maxTrialNumber" in found["maxTrialNumber"]


def test_cli_writes_the_file_and_prints_the_notes(tmp_path):
    out = tmp_path / "nested.yaml"
    result = CliRunner().invoke(
        main, ["import", "--from", "nni", str(EXAMPLES / "nested" / "config.yml"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert load_experiment(out).budget.soft_time_limit == 3600
    assert "searchSpaceFile.layer0._value" in result.stderr


@pytest.mark.parametrize(
    "old, new, at, words",
    [
        ("maxTrialNumber: 80", "maxTrialNumber: 1", "assessor", "min_samples (1) needs more than 1 trials"),
        ("start_step: 5", "start_step: 100", "assessor.classArgs.start_step", "grace_steps (100) is not below"),
    ],
)
def test_medianstop_that_could_stop_no_trial_is_no_scheduler_with_a_note(tmp_path, old, new, at, words):
    text = (EXAMPLES / "detailed.yml").read_text()
    assert old in text
    path = write(tmp_path, text.replace(old, new))  # its search space is inline
    imported = import_file("nni", path)
    assert "scheduler" not in imported.data
    message = notes(imported)[at]
    assert words in message and "no scheduler (the same run)" in message
    assert "not the same" in notes(nni("detailed.yml"))["assessor.name"]  # NNI's rule is not Ray's: said
