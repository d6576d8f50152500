"""scalehp import --from katib: example manifests from Katib's docs, the tricky mappings, the notes, the errors."""

from __future__ import annotations

import math
import re
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

EXAMPLES = Path(__file__).parent / "import_examples" / "katib"
MAPPABLE = sorted(EXAMPLES.glob("*.yaml"))


def katib(name: str):
    return import_file("katib", EXAMPLES / name)


def line(text: str, needle: str) -> int:
    return next(i for i, row in enumerate(text.splitlines(), 1) if needle in row)


def variant(tmp_path: Path, old: str, new: str, base: str = "random.yaml") -> tuple[Path, str]:
    text = (EXAMPLES / base).read_text()
    assert old in text, old
    text = text.replace(old, new)
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path, text


@pytest.mark.parametrize("path", MAPPABLE, ids=[p.name for p in MAPPABLE])
def test_every_example_imports_validates_compiles_and_reads_back(path, tmp_path):
    imported = import_file("katib", path)
    out = tmp_path / "exp.yaml"
    out.write_text(imported.yaml())
    plan = compile_plan(load_experiment(out))
    assert plan.experiment.to_dict()["space"].keys() == imported.data["space"].keys()
    assert plan.experiment.command is not None and plan.trials >= 1
    assert list(imported.data)[:3] == ["version", "name", "command"]  # the usual key order


def test_random_example_maps_exactly():
    imported = katib("random.yaml")
    data = imported.data
    assert data["name"] == "random"
    assert data["metric"] == {"name": "Validation-accuracy", "mode": "max", "goal": 0.99}
    assert data["budget"] == {"samples": 12, "max_steps": 100}
    assert data["concurrency"] == 3 and data["seed"] == 10
    assert data["failure"] == {"max_failed_trials": 3}
    assert data["space"] == {
        "lr": {"float": [0.01, 0.03]},
        "num-layers": {"int": [2, 5]},
        "optimizer": {"choice": ["sgd", "adam", "ftrl"]},
    }
    assert data["search"] == {"algorithm": "random"}
    assert data["command"]["run"] == [
        "${python}",
        "/opt/mxnet-mnist/mnist.py",
        "--batch-size=64",
        "--lr=${lr}",
        "--num-layers=${num-layers}",
        "--optimizer=${optimizer}",
    ]
    assert data["resources"] == {"cpu": 2, "gpu": 1}  # limits alone are the requests
    found = notes(imported)
    container = "spec.trialTemplate.trialSpec.spec.template.spec.containers.0"
    assert "4Gi" in found[f"{container}.resources.limits.memory"]
    assert "container image" in found[f"{container}.image"]
    assert "${python}" in found[f"{container}.command"]
    assert "budget.max_steps is 100" in found["spec"]
    assert "namespace" in found["metadata.namespace"] or "Kubernetes" in found["metadata.namespace"]
    text = (EXAMPLES / "random.yaml").read_text()
    by_path = {n.path: n.line for n in imported.notes}
    assert by_path[f"{container}.resources.limits.memory"] == line(text, 'memory: "4Gi"')


def test_distributions_normal_and_lognormal_take_min_max_as_three_sigma():
    imported = katib("distributions.yaml")
    space = imported.data["space"]
    assert space["lr"] == {"normal": [0.03, pytest.approx(0.04 / 6)], "step": 0.01}
    mu, sigma = space["batch_size"]["lognormal"]
    assert mu == pytest.approx((math.log(32) + math.log(64)) / 2)
    assert sigma == pytest.approx((math.log(64) - math.log(32)) / 6)
    assert space["batch_size"]["step"] == 1  # an int param stays whole
    assert space["momentum"] == {"float": [0.001, 1]}
    assert space["epochs"] == {"int": [1, 3], "log": True}
    assert space["weight_decay"] == {"float": [1e-5, 1e-2], "log": True}  # "1e-5" is a number
    assert space["hidden"] == {"choice": [64, 128, 256]}  # discrete: numbers
    assert space["nesterov"] == {"choice": ["true", "false"]}  # categorical: strings, as Katib passes them
    found = notes(imported)
    assert "+-3 sigma" in found["spec.parameters.0.feasibleSpace.distribution"]
    assert "ln(value)" in found["spec.parameters.3.feasibleSpace.distribution"]
    # args after command, in order
    assert imported.data["command"]["run"][-3:] == [
        "--weight-decay=${weight_decay}",
        "--hidden=${hidden}",
        "--nesterov=${nesterov}",
    ]
    assert imported.data["resources"] == {"cpu": 0.5}


def test_hyperband_is_asha_with_the_same_brackets_and_the_resource_param_is_the_full_budget():
    imported = katib("hyperband.yaml")
    data = imported.data
    assert data["scheduler"] == {"asha": {"grace_steps": 1, "reduction_factor": 2.0, "brackets": 4}}
    assert data["budget"]["max_steps"] == 8
    assert data["space"]["num-epochs"] == {"constant": 8}
    assert data["search"] == {"algorithm": "random"}
    found = notes(imported)
    assert "asha" in found["spec.algorithm.algorithmName"]
    assert "'num-epochs'" in found["spec.algorithm.algorithmSettings.0"]
    assert "spec" not in found  # r_l gave the step budget
    # the budget is epochs: a step is the epoch a line names, not a line (mxnet-mnist prints Epoch[0] ...)
    assert data["command"]["step"] == EPOCH_STEP
    assert "command.step finds the epoch" in found["spec.algorithm.algorithmSettings.0"]
    pattern = re.compile(EPOCH_STEP)
    for line, epoch in [("Epoch[0] Validation-accuracy=0.93", "0"), ("Train Epoch: 2 [640/60000 (1%)]\tloss=0.3", "2"),
                        ("epoch=3 loss=1", "3"), ('{"epoch": 4, "loss": 1}', "4")]:
        assert pattern.search(line).group(1) == epoch
    assert pattern.search("num_epochs=20 epochs=3 loss=1") is None
    assert "with the same brackets" in found["spec.algorithm.algorithmName"]  # r_l 8 is a power of eta 2


def test_hyperband_whose_brackets_katib_rounds_apart_says_both(tmp_path):
    """r_l 60, eta 3: Katib's brackets run 2, 6, 18, 54 | 6, 18, 54 | 20 | (60 alone); one geometric
    rung list gives 18, 54 and 54 to the last two: said, with both."""
    text = (EXAMPLES / "hyperband.yaml").read_text()
    r_l = re.search(r'name: "r_l"\n\s+value: "(\d+)"', text)
    eta = re.search(r'name: "eta"\n\s+value: "(\d+)"', text)
    assert r_l and eta
    text = text.replace(r_l.group(0), r_l.group(0).replace(r_l.group(1), "60"))
    text = text.replace(eta.group(0), eta.group(0).replace(eta.group(1), "3"))
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    imported = import_file("katib", path)
    assert imported.data["scheduler"] == {"asha": {"grace_steps": 2, "reduction_factor": 3.0, "brackets": 4}}
    said = notes(imported)["spec.algorithm.algorithmName"]
    assert "rungs at 2, 6, 18, 54; 6, 18, 54; 18, 54; 54 per bracket" in said
    assert "Katib's brackets run 2, 6, 18, 54; 6, 18, 54; 20; none" in said


def test_grid_enumerates_steps_and_runs_every_point():
    imported = katib("grid.yaml")
    space = imported.data["space"]
    assert space["lr"] == {"grid": [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01]}
    assert space["num-layers"] == {"grid": [2, 3, 4, 5]}
    assert space["optimizer"] == {"grid": ["sgd", "adam", "ftrl"]}
    assert imported.data["budget"]["samples"] == 1
    plan = compile_plan(load_experiment({**imported.data, "results": "unused"}))
    assert plan.trials == 120
    assert "120 trials" in notes(imported)["spec.maxTrialCount"]


@pytest.mark.parametrize(
    "feasible, expected",
    [
        ('min: "2"\n        max: "9"\n        step: "3"', {"choice": [2, 5, 8]}),  # Katib: min, min + step, ...
        ('min: "3"\n        max: "9"\n        step: "3"', {"int": [3, 9], "step": 3}),  # min a multiple: a range
        ('min: "2"\n        max: "4"\n        step: "3"', {"constant": 2}),  # only min fits
    ],
)
def test_an_int_step_keeps_katibs_values_counted_from_min(tmp_path, feasible, expected):
    path, _ = variant(tmp_path, 'min: "2"\n        max: "5"', feasible)
    imported = import_file("katib", path)
    param = imported.data["space"]["num-layers"]
    assert param == expected
    experiment = load_experiment({**imported.data, "results": str(tmp_path)})
    node = experiment.space["num-layers"]
    taken = set(node.finite_values()) if hasattr(node, "finite_values") else {node.value}
    low, high, step = (int(n.split('"')[1]) for n in feasible.split("\n"))
    assert taken == set(range(low, high + 1, step))
    if "choice" in param:
        assert "2, 5, 8" in notes(imported)["spec.parameters.1.feasibleSpace.step"]


def test_a_double_step_keeps_katibs_values_and_its_grid(tmp_path):
    path, _ = variant(
        tmp_path, 'min: "0.001"\n        max: "0.01"', 'min: "0.0015"\n        max: "0.01"', base="grid.yaml"
    )
    grid = import_file("katib", path)
    assert grid.data["space"]["lr"]["grid"] == [0.0015, 0.0025, 0.0035, 0.0045, 0.0055, 0.0065, 0.0075, 0.0085, 0.0095]
    random_text = path.read_text().replace("algorithmName: grid", "algorithmName: random")
    path.write_text(random_text)
    imported = import_file("katib", path)
    assert imported.data["space"]["lr"] == {"choice": grid.data["space"]["lr"]["grid"]}
    load_experiment({**imported.data, "results": str(tmp_path)})
    log_text = random_text.replace('step: "0.001"', 'step: "0.001"\n        distribution: logUniform')
    path.write_text(log_text)
    log = import_file("katib", path)
    assert log.data["space"]["lr"] == {"choice": grid.data["space"]["lr"]["grid"]}
    assert "log scale left out" in notes(log)["spec.parameters.0.feasibleSpace.step"]


def test_a_step_too_long_to_list_keeps_the_range_with_a_loud_note(tmp_path):
    path, _ = variant(tmp_path, 'min: "2"\n        max: "5"', 'min: "1"\n        max: "5000"\n        step: "2"')
    imported = import_file("katib", path)
    assert imported.data["space"]["num-layers"] == {"int": [1, 5000], "step": 2}
    message = notes(imported)["spec.parameters.1.feasibleSpace.step"]
    assert message.startswith("VALUES DIFFER") and "shifts by 1" in message and "1,000" in message


def test_median_stop_tpe_and_metric_strategies():
    imported = katib("median_stop.yaml")
    data = imported.data
    assert data["search"] == {"algorithm": "hyperopt"}  # Katib's tpe is hyperopt's
    assert data["seed"] == 10
    assert data["scheduler"] == {"median_stopping": {"grace_steps": 2, "min_samples": 1}}
    found = notes(imported)
    assert "n_EI_candidates" in found["spec.algorithm.algorithmSettings.0"]
    assert "gamma" in found["spec.algorithm.algorithmSettings.2"]
    assert "spec.algorithm.algorithmSettings.1" not in found  # random_state -> seed, exactly
    assert "Train-accuracy" in found["spec.objective.metricStrategies.0"]
    assert "spec.objective.metricStrategies.1" not in found  # max for a maximized objective is the default
    assert "spec.trialTemplate.retain" in found
    assert "scalehp resume" in found["spec.resumePolicy"]
    rule = found["spec.earlyStopping.algorithmName"]  # the two rules differ: said, not called exact
    assert "not the same" in rule and "mean of the succeeded trials" in rule


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ('maxTrialCount: 15', 'maxTrialCount: 1', "min_trials_required", "min_samples (1) needs more than 1 trials"),
        ('value: "2"\n  parallel', 'value: "400"\n  parallel', "start_step", "grace_steps (400) is not below"),
    ],
)
def test_median_stop_that_could_stop_no_trial_is_no_scheduler_with_a_note_not_a_lowered_value(
    tmp_path, old, new, key, words
):
    path, _ = variant(tmp_path, old, new, base="median_stop.yaml")
    imported = import_file("katib", path)
    assert "scheduler" not in imported.data
    message = notes(imported)[f"spec.earlyStopping.algorithmSettings.{key}"]
    assert words in message and "no scheduler (the same run)" in message


def test_bayesian_optimization_is_optunas_gp_with_a_note_and_file_collector_is_noted():
    imported = katib("bayesian_file_collector.yaml")
    assert imported.data["search"] == {"algorithm": "optuna", "sampler": "gp", "initial_points": 5}
    assert "metric_format" not in imported.data["command"]
    found = notes(imported)
    assert "optuna's Gaussian-process sampler (sampler gp)" in found["spec.algorithm.algorithmName"]
    assert "base_estimator" in found["spec.algorithm.algorithmSettings.2"]
    assert "optuna's GP sampler runs its defaults" in found["spec.algorithm.algorithmSettings.2"]
    assert "acq_func" in found["spec.algorithm.algorithmSettings.3"]
    assert "print accuracy=<value>" in found["spec.metricsCollectorSpec.collector.kind"]


def test_metrics_format_becomes_named_groups_that_read_the_programs_output():
    imported = katib("quadratic.yaml")
    pattern = re.compile(imported.data["command"]["metric_format"])
    found = {m["name"]: float(m["value"]) for m in pattern.finditer("epoch=1 val_loss=1.5 val/acc=0.4")}
    assert found == {"epoch": 1.0, "val_loss": 1.5, "val/acc": 0.4}
    assert imported.data["resources"] == {"cpu": 0.5}  # 500m
    assert imported.data["command"]["run"][:2] == ["${python}", "tests/programs/quadratic.py"]


def test_default_metrics_format_needs_no_metric_format(tmp_path):
    default = r'"([\\w|-]+)\\s*=\\s*([+-]?\\d*(\\.\\d+)?([Ee][+-]?\\d+)?)"'
    path, _ = variant(
        tmp_path,
        '          - "([\\\\w/-]+)=([+-]?\\\\d+(?:\\\\.\\\\d+)?(?:[Ee][+-]?\\\\d+)?)"',
        f"          - {default}",
        base="quadratic.yaml",
    )
    assert "metric_format" not in import_file("katib", path).data["command"]


def test_unmappable_pbt_is_an_error_at_its_line():
    path = EXAMPLES / "unmappable" / "pbt.yaml"
    with pytest.raises(SpecError) as info:
        import_file("katib", path)
    assert info.value.path == "spec.algorithm.algorithmName"
    assert info.value.line == line(path.read_text(), "algorithmName: pbt")
    assert "checkpoints" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("algorithmName: random", "algorithmName: enas", "spec.algorithm.algorithmName", "architecture search"),
        ("algorithmName: random", "algorithmName: simulated-annealing", "spec.algorithm.algorithmName", "unknown"),
        ("parameterType: int", "parameterType: integer", "spec.parameters.1.parameterType", "expected double"),
        ("type: maximize", "type: biggest", "spec.objective.type", "minimize or maximize"),
        ("kind: Experiment", "kind: Suggestion", "kind", "Experiment"),
        (
            "reference: lr",
            "reference: learning_rate",
            "spec.trialTemplate.trialParameters.0.reference",
            "not a parameter",
        ),
        (
            '"--lr=${trialParameters.learningRate}"',
            '"--lr=${trialParameters.rate}"',
            "spec.trialTemplate.trialSpec.spec.template.spec.containers.0.command",
            "not in trialTemplate.trialParameters",
        ),
        (
            "primaryContainerName: training-container",
            "primaryContainerName: trainer",
            "spec.trialTemplate.primaryContainerName",
            "no container named",
        ),
    ],
)
def test_settings_without_equivalent_are_errors_with_file_line_and_key(tmp_path, old, new, key, words):
    path, text = variant(tmp_path, old, new)
    with pytest.raises(SpecError) as info:
        import_file("katib", path)
    assert info.value.path == key, str(info.value)
    assert words in info.value.message
    assert info.value.line is not None and info.value.source == str(path)
    assert f"{path}:{info.value.line}: {key}:" in str(info.value)


def test_grid_double_without_step_is_an_error(tmp_path):
    path, text = variant(tmp_path, '        step: "0.001"\n', "", base="grid.yaml")
    with pytest.raises(SpecError, match="double with feasibleSpace.step") as info:
        import_file("katib", path)
    assert info.value.path == "spec.parameters.0"


def test_trial_parameter_in_env_is_an_error_and_plain_env_is_kept(tmp_path):
    env = '                env:\n                  - name: LR\n                    value: "${trialParameters.learningRate}"\n'
    path, _ = variant(tmp_path, "                resources:\n", env + "                resources:\n")
    with pytest.raises(SpecError, match="move it to the command"):
        import_file("katib", path)
    plain = '                env:\n                  - name: OMP_NUM_THREADS\n                    value: "1"\n'
    path, _ = variant(tmp_path, "                resources:\n", plain + "                resources:\n")
    assert import_file("katib", path).data["command"]["env"] == {"OMP_NUM_THREADS": "1"}


def test_config_map_template_is_an_error(tmp_path):
    old = "  trialTemplate:\n    primaryContainerName: training-container\n"
    new = "  trialTemplate:\n    configMap:\n      configMapName: trial-templates\n    primaryContainerName: training-container\n"
    path, _ = variant(tmp_path, old, new)
    with pytest.raises(SpecError, match="ConfigMap") as info:
        import_file("katib", path)
    assert info.value.path == "spec.trialTemplate.configMap"


def test_name_param_names_failures_and_caps(tmp_path):
    text = (EXAMPLES / "random.yaml").read_text()
    text = text.replace("  name: random\n", "  name: My Random Search!\n")
    text = text.replace("    - name: lr\n", "    - name: --lr\n").replace("reference: lr", "reference: --lr")
    text = text.replace("maxFailedTrialCount: 3", "maxFailedTrialCount: 0").replace("  maxTrialCount: 12\n", "")
    text = text.replace("  parallelTrialCount: 3\n", "")
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    imported = import_file("katib", path)
    data, found = imported.data, notes(imported)
    assert data["name"] == "My-Random-Search"
    assert "'My-Random-Search'" in found["metadata.name"]
    assert "lr" in data["space"] and "--lr=${lr}" in data["command"]["run"]
    assert "renamed 'lr'" in found["spec.parameters.0.name"]
    assert data["failure"] == {"fail_fast": True}
    assert data["budget"]["samples"] == 100 and "no maxTrialCount" in found["spec.maxTrialCount"]
    assert data["concurrency"] == 3  # Katib's default parallelTrialCount


def test_cli_writes_the_file_and_prints_the_notes(tmp_path):
    out = tmp_path / "random.scalehp.yaml"
    result = CliRunner().invoke(main, ["import", "--from", "katib", str(EXAMPLES / "random.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    experiment = load_experiment(out)
    assert experiment.name == "random" and experiment.metric.goal == 0.99
    assert "setting(s) not carried over exactly" in result.stderr
    assert f"{EXAMPLES / 'random.yaml'}:" in result.stderr and "memory 4Gi" in result.stderr
    assert result.stdout == ""


def test_cli_error_is_one_line_with_exit_code_2(tmp_path):
    result = CliRunner().invoke(main, ["import", "--from", "katib", str(EXAMPLES / "unmappable" / "pbt.yaml")])
    assert result.exit_code == 2
    assert "spec.algorithm.algorithmName" in result.output and "Traceback" not in result.output
