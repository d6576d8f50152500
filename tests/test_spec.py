from __future__ import annotations

import json
import math

import pytest

from scalehp.errors import SpecError
from scalehp.space import ChoiceParam, ConstantParam, FloatParam, IntParam
from scalehp.spec import json_schema, load_experiment, read_yaml

DIGITS_ASHA_DIGEST = "a574fd34d478df89"  # experiments/digits_asha.yaml, compiled by scalehp before this file's newest keys

GOOD = """\
version: 1
name: demo
trainable: tests.trainables:quadratic
metric: {name: loss, mode: min}
budget: {samples: 4, max_steps: 5, time_limit: 2m}
space:
  x: {float: [1e-3, 1.0], log: true}
  n: {int: [1, 8], step: 1}
  opt: {choice: [adam, sgd]}
  epochs: 3
scheduler: {asha: {grace_steps: 1}}
"""


def load_text(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return load_experiment(path)


def error_of(tmp_path, text) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_text(tmp_path, text)
    return info.value


def test_good_file_loads_with_kinds_and_defaults(tmp_path):
    exp = load_text(tmp_path, GOOD)
    assert isinstance(exp.space["x"], FloatParam) and exp.space["x"].low == 1e-3 and exp.space["x"].log
    assert isinstance(exp.space["n"], IntParam)
    assert isinstance(exp.space["opt"], ChoiceParam)
    assert isinstance(exp.space["epochs"], ConstantParam) and exp.space["epochs"].value == 3
    assert exp.budget.time_limit == 120
    assert exp.scheduler.name == "asha" and exp.scheduler.asha.reduction_factor == 3
    assert exp.resources.cpu == 1 and exp.search.algorithm == "random"


def test_same_experiment_from_python_dict(tmp_path):
    from_file = load_text(tmp_path, GOOD)
    from_dict = load_experiment(from_file.to_dict())
    assert from_dict.to_dict() == from_file.to_dict()
    assert from_dict.source == "<dict>"


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (("mode: min", "mode: minimum"), "metric.mode", "expected 'min' or 'max'"),
        (("samples: 4", "samples: 0"), "budget.samples", ">= 1"),
        (("samples: 4", "samples: four"), "budget.samples", "expected an integer"),
        (("[1e-3, 1.0], log: true", "[0, 1.0], log: true"), "space.x", "log scale needs low > 0"),
        (("[1e-3, 1.0]", "[1.0, 0.1]"), "space.x", "must be below high"),
        (("{choice: [adam, sgd]}", "{choice: []}"), "space.opt", "at least one value"),
        (("{choice: [adam, sgd]}", "{choice: [adam, adam]}"), "space.opt", "twice"),
        (("{int: [1, 8], step: 1}", "{int: [1, 8], choice: [1]}"), "space.n", "one kind per param"),
        (("log: true}", "lgo: true}"), "space.x.lgo", "did you mean 'log'"),
        (("scheduler:", "schedulr:"), "schedulr", "did you mean 'scheduler'"),
        (("log: true}", "log: true, mutate: [x]}"), "space.x.mutate", "'mutate' here; it belongs under scheduler.pbt"),
        (("name: demo", "name: ../escape"), "name", "not a valid name"),
        (("name: demo", "name: /abs"), "name", "not a valid name"),
        (("quadratic", "quadratic()"), "trainable", "module:function"),
        (("time_limit: 2m", "time_limit: soon"), "budget.time_limit", "duration"),
        (("{asha: {grace_steps: 1}}", "{asha: {grace_steps: 1}, fifo: {}}"), "scheduler", "exactly one"),
        (("{asha: {grace_steps: 1}}", "{asha: {reduction_factor: 1}}"), "scheduler.asha.reduction_factor", "> 1"),
        (("version: 1", "version: 2"), "version", "expected 1"),
    ],
)
def test_errors_name_file_line_and_key_path(tmp_path, change, path, words):
    old, new = change
    assert old in GOOD
    error = error_of(tmp_path, GOOD.replace(old, new, 1))
    assert error.path == path, str(error)
    assert words in str(error)
    assert str(error).startswith(str(tmp_path / "exp.yaml") + ":")
    assert error.line is not None and "\n" not in str(error)


def test_missing_key(tmp_path):
    error = error_of(tmp_path, GOOD.replace("metric: {name: loss, mode: min}\n", ""))
    assert error.path == "metric" and "missing" in str(error)


def test_empty_space_is_an_error(tmp_path):
    text = GOOD.split("space:")[0] + "space: {}\n"
    assert error_of(tmp_path, text).path == "space"


def test_yaml_numbers_booleans_and_strings_are_strict():
    data, _ = read_yaml(
        "a: 1e-3\nb: yes\nc: no\nd: true\ne: 0x10\nf: '1e-3'\ng: 1_000\nh: .inf\ni: 2024-01-01\nj: 1:30\n"
    )
    assert data["a"] == 0.001 and isinstance(data["a"], float)
    assert data["b"] == "yes" and data["c"] == "no" and data["d"] is True
    assert data["e"] == "0x10" and data["f"] == "1e-3" and data["g"] == "1_000"
    assert data["h"] == math.inf and data["i"] == "2024-01-01" and data["j"] == "1:30"


def test_duplicate_keys_are_errors():
    with pytest.raises(SpecError, match=r"duplicate key 'a' \(first on line 1\)") as info:
        read_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert info.value.line == 3


def test_alias_bomb_is_refused_fast():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        bomb += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
    with pytest.raises(SpecError, match="expands to more than"):
        read_yaml(bomb)


def test_python_tags_and_merge_keys_are_refused():
    with pytest.raises(SpecError, match="tag"):
        read_yaml("a: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(SpecError, match="merge keys"):
        read_yaml("base: &b {x: 1}\nother:\n  <<: *b\n")


def test_invalid_yaml_has_a_line(tmp_path):
    error = error_of(tmp_path, "name: [unclosed\n")
    assert "not valid YAML" in str(error) and error.line is not None


def test_not_a_mapping_and_missing_file(tmp_path):
    assert "mapping" in str(error_of(tmp_path, "- a\n- b\n"))
    with pytest.raises(SpecError, match="no such file"):
        load_experiment(tmp_path / "nope.yaml")


def test_json_schema_covers_the_keys():
    schema = json_schema()
    text = json.dumps(schema)
    for key in ("trainable", "metric", "budget", "space", "scheduler", "asha", "grace_steps", "float", "choice"):
        assert f'"{key}"' in text
    assert schema["additionalProperties"] is False


# ---------------------------------------------------------------------------
# dump_yaml: what importers write must read back as the same data


def test_dump_yaml_reads_back_as_the_same_data():
    from scalehp.spec import dump_yaml, read_yaml

    data = {
        "name": "x",
        "description": "two\nlines",
        "metric": {"name": "metrics/mAP_0.5", "mode": "max", "goal": 0.75},
        "space": {
            "lr": {"float": [1e-5, 0.1], "log": True},
            "looks_like_numbers": {"choice": ["1e-5", "0x10", "1_000", ".5", "-.inf", "12:30"]},
            "looks_like_other": {"choice": ["true", "false", "null", "~", "yes", "no", "on", "", " pad "]},
            "flags": {"choice": [True, False, None]},
            "optimizer.config.lr": {"lognormal": [-6.9, 1.0]},
            "opt": {"choice": {"adam": {"beta1": {"float": [0.8, 0.99]}}, "sgd": None}},
            "layers": {"count": [1, 3], "each": {"width": {"int": [16, 256], "log": True}}},
            "nested": {"constant": {"a": [1, {"b": "c"}], "d": 1.5e-300}},
            "big": 1e300,
        },
    }
    text = dump_yaml(data)
    assert read_yaml(text)[0] == data
    assert "  lr: {float: [1.0e-05, 0.1], log: true}\n" in text  # a param on one line


# ---------------------------------------------------------------------------
# command, goal, failed-trial cap


def _base(**changes):
    data = {
        "name": "cmd",
        "metric": {"name": "val/loss", "mode": "min"},
        "budget": {"samples": 2, "max_steps": 3},
        "space": {"lr": {"float": [0.001, 0.1], "log": True}},
    }
    data.update(changes)
    return data


def test_command_short_forms_and_the_full_form():
    short = load_experiment(_base(command="${python} train.py ${args}"))
    listed = load_experiment(_base(command=["${python}", "train.py", "${args}"]))
    full = load_experiment(
        _base(command={"run": "python t.py", "env": {"A": "1"}, "metric_format": r"(?P<name>\w+):\s*(?P<value>\S+)"})
    )
    assert short.command.run == "${python} train.py ${args}" and short.trainable is None
    assert listed.command.run == ["${python}", "train.py", "${args}"]
    assert full.command.env == {"A": "1"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "command: give trainable ('module:function') or command"),
        ({"trainable": "m:f", "command": "x"}, "command: give trainable or command, not both"),
        ({"command": ""}, "command.run: the command is empty"),
        (
            {"command": {"run": "x", "metric_format": "(?P<name>x)"}},
            "needs the groups (?P<name>...) and (?P<value>...)",
        ),
        ({"command": {"run": "x", "metric_format": "("}}, "command.metric_format: not a regular expression"),
        ({"command": "x", "failure": {"max_failed_trials": 0}}, "failure.max_failed_trials: must be >= 1"),
        ({"command": "x", "metric": {"name": "l", "mode": "min", "goal": "high"}}, "metric.goal: expected a number"),
    ],
)
def test_command_goal_and_cap_errors_name_the_key(changes, message):
    with pytest.raises(SpecError) as error:
        load_experiment(_base(**changes))
    assert message in str(error.value)


def test_an_error_in_a_dotted_param_names_its_own_line(tmp_path):
    from scalehp.compiler import compile_plan

    text = GOOD.replace("  epochs: 3\n", "  epochs: 3\n  optimizer.config.lr: {grid: [0.1, 0.01]}\n")
    text += "search: {algorithm: hyperopt}\n"
    with pytest.raises(SpecError) as error:
        compile_plan(load_text(tmp_path, text))  # a cross-field error, found after reading
    assert error.value.path == "space.optimizer.config.lr" and error.value.line == 11


def test_an_experiment_keeps_its_digest_across_new_optional_keys():
    """Keys an experiment does not use stay out of its data, so a run started by an earlier
    scalehp resumes (resume compares the plan's digest): digits_asha.yaml's, as 0.1.0 computed it
    before constraints, soft_time_limit, command.step/client, asha.rungs and swarm.vectorized."""
    from scalehp.compiler import compile_plan

    exp = load_experiment("experiments/digits_asha.yaml")
    text = str(exp.to_dict())
    assert not any(key in text for key in ("constraints", "soft_time_limit", "vectorized", "rungs", "client"))
    assert compile_plan(exp).digest == DIGITS_ASHA_DIGEST
