"""What an importer must not do quietly (issue #18): a file of the wrong kind, an old API, a metric
that names nothing, a direction this file does not hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.errors import SpecError
from scalehp.importers import import_file
from tests.importing import notes

EXAMPLES = Path(__file__).parent / "import_examples"


@pytest.mark.parametrize("kind", ["wandb", "katib", "nni", "determined", "hydra-optuna"])
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("sweep.py", "sweep = {'method': 'random'}\n"),
        ("sweep.yaml", "# an Optuna study\nimport optuna\n\ndef objective(trial):\n    return 1.0\n"),
        ("sweep.yaml", "from ray import tune\ntune.run(train)\n"),
    ],
)
def test_python_code_given_as_a_sweep_file_is_named_as_code(tmp_path, kind, name, text):
    source = tmp_path / name
    source.write_text(text)
    with pytest.raises(SpecError, match="Python code, not a sweep file") as caught:
        import_file(kind, source)
    assert caught.value.source == str(source)
    out = CliRunner().invoke(main, ["import", "--from", kind, str(source), "-o", str(tmp_path / "exp.yaml")])
    assert out.exit_code == 2 and "Python code" in out.output and not (tmp_path / "exp.yaml").exists()


def test_a_katib_v1alpha3_manifest_is_named_as_such(tmp_path):
    source = tmp_path / "old.yaml"
    source.write_text((EXAMPLES / "katib" / "random.yaml").read_text().replace("kubeflow.org/v1beta1", "kubeflow.org/v1alpha3"))
    with pytest.raises(SpecError, match="kubeflow.org/v1alpha3 is Katib's old API") as caught:
        import_file("katib", source)
    assert caught.value.path == "apiVersion"


@pytest.mark.parametrize("metric", ["none", "None", "null_metric_is_fine", "''"])
def test_a_determined_metric_that_names_nothing_is_refused(tmp_path, metric):
    source = tmp_path / "grid.yaml"
    source.write_text((EXAMPLES / "determined" / "grid.yaml").read_text().replace("metric: validation_error", f"metric: {metric}"))
    if metric == "null_metric_is_fine":
        assert import_file("determined", source).data["metric"]["name"] == metric
        return
    with pytest.raises(SpecError) as caught:
        import_file("determined", source)
    assert caught.value.path == "searcher.metric"


def test_a_hydra_direction_this_file_does_not_hold_is_said(tmp_path):
    source = tmp_path / "config.yaml"
    source.write_text(
        "defaults:\n  - base_sweeper\n  - override hydra/sweeper: optuna\n"
        "hydra:\n  sweeper:\n    n_trials: 8\n    params:\n      x: range(-5.0, 5.0)\nx: 1\n"
    )
    result = import_file("hydra-optuna", source)
    assert result.data["metric"]["mode"] == "min"
    said = " ".join(notes(result).values())
    assert "no direction in this file" in said and "check metric.mode" in said
    source.write_text(source.read_text().replace("    n_trials: 8\n", "    n_trials: 8\n    direction: maximize\n"))
    assert "no direction in this file" not in " ".join(notes(import_file("hydra-optuna", source)).values())


@pytest.mark.parametrize(
    "fmt, text, paths",
    [
        ("wandb", "method: random\nmetric: {name: loss, goal: minimize}\nparameters:\n  a: {min: 2, max: 1}\n  b: {values: []}\n"
         "  c: {distribution: nosuch, min: 0, max: 1}\n", ["parameters.a", "parameters.b", "parameters.c"]),
        ("nni", "trialCommand: python3 t.py\nsearchSpace:\n  a: {_type: choice, _value: []}\n  b: {_type: nosuch, _value: [1]}\n"
         "tuner: {name: Random}\n", ["searchSpace.a", "searchSpace.b"]),
        # misspelt keys (a key the source tool does not have) and bad params, together
        ("wandb", "method: random\nrun_caps: 3\nmetric: {name: loss, goal: minimize, target_: 1}\nparameters:\n"
         "  a: {min: 2, max: 1}\n", ["run_caps", "metric.target_", "parameters.a"]),
        ("katib", "apiVersion: kubeflow.org/v1beta1\nkind: Experiment\nmetadata: {name: x}\nspec:\n"
         "  maxTrialCont: 3\n  objective: {type: minimize, objectiveMetricName: loss, goals: 0.1}\n"
         "  algorithm: {algorithmName: random}\n  parameters:\n"
         "    - {name: lr, parameterType: nosuch, feasibleSpace: {min: '0.01', max: '0.1'}}\n"
         "    - {name: b, parameterType: int, feasibleSpace: {min: '1', max: '3', stepp: '1'}}\n"
         "  trialTemplate: {trialSpec: {}}\n",
         ["spec.maxTrialCont", "spec.objective.goals", "spec.parameters.0", "spec.parameters.1.feasibleSpace.stepp"]),
        ("nni", "trialCommand: python3 t.py\nmaxTrialNumbr: 3\nsearchSpace:\n  a: {_type: nosuch, _value: [1]}\n"
         "tuner: {name: Random}\n", ["maxTrialNumbr", "searchSpace.a"]),
        ("hydra-optuna", "hydra:\n  sweeper:\n    n_trial: 8\n    directon: maximize\n    params:\n      x: range(5, 1)\n",
         ["hydra.sweeper.n_trial", "hydra.sweeper.directon", "hydra.sweeper.params.x"]),
    ],
)
def test_every_bad_param_of_a_file_is_named_in_one_run(tmp_path, fmt, text, paths):
    """Not one problem per run: each bad parameter is named, file and line, in the same error."""
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        import_file(fmt, path)
    found = [caught.value.path, *(e.path for e in caught.value.also)]
    assert len(found) == len(paths) and all(p == want or p.startswith(want + ".") for p, want in zip(found, paths))
    assert all(e.line is not None and e.source == str(path) for e in (caught.value, *caught.value.also))
    result = CliRunner().invoke(main, ["import", "--from", fmt, str(path)])
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2 and len(lines) == len(paths) and "Traceback" not in result.output


def test_every_bad_key_of_an_experiment_file_is_named_in_one_run(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        "version: 1\nname: bad\ntrainable: tests.trainables:quadratic\nmetric: {name: loss, mode: minimize}\n"
        "budget: {samples: 0, max_steps: 5}\nspace:\n  x: {float: [0.0, 1.0]}\nconcurrency: -1\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 2
    assert [line.split(": ")[2] for line in lines] == ["metric.mode", "budget.samples", "concurrency"]
    assert lines[0].endswith("(and 2 more errors)") and ":5: budget.samples" in lines[1] and ":8: concurrency" in lines[2]


@pytest.mark.parametrize(
    "text, key, words",
    [
        ("trial_command: python3 t.py\nsearchSpace: {a: {_type: choice, _value: [1]}}\n", "trial_command",
         "camelCase (trialCommand)"),
        ("experimentType: nas\ntrialCommand: python3 t.py\nsearchSpace: {a: {_type: choice, _value: [1]}}\n",
         "experimentType", "not NNI's 'nas'"),
    ],
)
def test_nni_keys_it_reads_otherwise_are_named(tmp_path, text, key, words):
    path = tmp_path / "config.yml"
    path.write_text(text)
    with pytest.raises(SpecError) as caught:
        import_file("nni", path)
    assert caught.value.path == key and words in caught.value.message
