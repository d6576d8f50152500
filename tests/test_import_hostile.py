"""scalehp import on hostile files: every case gives one line naming the file (and key), never a traceback.

A corpus of the cases found by trying the importers as an attacker would: paths out of the
config's folder, files whose text must not be shown, grids of 10^12 points, numbers past a
float, NaN and inf bounds, nesting hundreds of levels deep, duplicate JSON keys.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.errors import SpecError
from scalehp.importers import import_file

SECRET = "hunter2-s3cr3t"

NNI = """\
experimentName: hostile
trialCommand: python3 trial.py
trialConcurrency: 1
maxTrialNumber: 10
tuner:
  name: {tuner}
{space}
trainingService:
  platform: local
"""


def nni(space: str, tuner: str = "Random") -> str:
    return NNI.format(space=space, tuner=tuner)


def nni_file(name: str) -> str:
    return nni(f"searchSpaceFile: {json.dumps(name)}")


DETERMINED = """\
name: hostile
entrypoint: python3 train.py
searcher:
  name: {searcher}
  metric: loss
  max_length: {{epochs: 3}}
{extra}hyperparameters:
{params}
"""


def determined(params: str, searcher: str = "random", extra: str = "  max_trials: 4\n") -> str:
    return DETERMINED.format(params=params, searcher=searcher, extra=extra)


KATIB = """\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {{name: hostile}}
spec:
  objective: {{type: minimize, objectiveMetricName: loss}}
  algorithm:
    algorithmName: {algorithm}
{settings}  parameters:
{params}
  trialTemplate:
    primaryContainerName: training
    trialParameters: [{{name: lr, reference: lr}}]
    trialSpec:
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training
                image: python:3.11
                command: [python3, train.py, "--lr=${{trialParameters.lr}}"]
{collector}"""

KATIB_LR = "    - {name: lr, parameterType: double, feasibleSpace: {min: '0.01', max: '0.1', step: '0.01'}}\n"


def katib(params: str = "", algorithm: str = "random", settings: str = "", collector: str = "") -> str:
    return KATIB.format(params=KATIB_LR + params, algorithm=algorithm, settings=settings, collector=collector)


WANDB = """\
program: train.py
method: {method}
metric: {{name: loss, goal: minimize}}
{extra}parameters:
{params}
"""


def wandb(params: str, method: str = "random", extra: str = "") -> str:
    return WANDB.format(params=params, method=method, extra=extra)


HYDRA = """\
defaults:
  - override hydra/sweeper: optuna
hydra:
  sweeper:
    sampler:
      _target_: optuna.samplers.{sampler}
    direction: minimize
    n_trials: 10
    params:
      x: {value}
"""


def hydra(value: str, sampler: str = "TPESampler") -> str:
    return HYDRA.format(value=json.dumps(value), sampler=sampler)


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


# (id, format, file name, text, key path named in the error or None, words in the error)
CASES = [
    # -- NNI's searchSpaceFile: only a file inside the config's folder, and none of its text shown
    ("nni-file-absolute", "nni", "config.yml", nni_file("/etc/passwd"), "searchSpaceFile", "relative"),
    ("nni-file-dotdot", "nni", "config.yml", nni_file("../../../../../../etc/passwd"), "searchSpaceFile", "outside"),
    ("nni-file-home", "nni", "config.yml", nni_file("~/.ssh/id_rsa"), "searchSpaceFile", "relative"),
    ("nni-file-home-user", "nni", "config.yml", nni_file("~root/.bashrc"), "searchSpaceFile", "relative"),
    ("nni-file-not-a-string", "nni", "config.yml", nni("searchSpaceFile: [a, b]"), "searchSpaceFile", "file name"),
    ("nni-file-nul", "nni", "config.yml", nni_file("space\0.json"), "searchSpaceFile", "NUL"),
    ("nni-file-symlink-out", "nni", "config.yml", nni_file("link.json"), "searchSpaceFile", "outside"),
    ("nni-file-symlink-loop", "nni", "config.yml", nni_file("loop.json"), "searchSpaceFile", None),
    ("nni-file-directory", "nni", "config.yml", nni_file("folder"), "searchSpaceFile", "a directory"),
    ("nni-file-fifo", "nni", "config.yml", nni_file("fifo.json"), "searchSpaceFile", "not a regular file"),
    ("nni-file-secret-yaml", "nni", "config.yml", nni_file("credentials"), "searchSpaceFile", "not shown"),
    ("nni-file-secret-json", "nni", "config.yml", nni_file("token.json"), "searchSpaceFile", "not shown"),
    ("nni-file-bad-yaml", "nni", "config.yml", nni_file("bad.yml"), "searchSpaceFile", "not shown"),
    ("nni-file-bad-json", "nni", "config.yml", nni_file("bad.json"), "searchSpaceFile", "not shown"),
    ("nni-file-duplicate-key", "nni", "config.yml", nni_file("twice.json"), "searchSpaceFile", "not shown"),
    ("nni-file-deep", "nni", "config.yml", nni_file("deep.json"), "searchSpaceFile", "not shown"),
    # -- grids counted before they are listed
    (
        "nni-grid-quniform-tiny-q",
        "nni",
        "config.yml",
        nni("searchSpace:\n  x: {_type: quniform, _value: [0, 1, 1.0e-12]}", "GridSearch"),
        "searchSpace.x",
        "10,000",
    ),
    (
        "nni-grid-randint-huge",
        "nni",
        "config.yml",
        nni("searchSpace:\n  x: {_type: randint, _value: [0, 1000000000000]}", "GridSearch"),
        "searchSpace.x",
        "10,000",
    ),
    (
        "nni-grid-product",
        "nni",
        "config.yml",
        nni(
            "searchSpace:\n" + "".join(f"  p{i}: {{_type: randint, _value: [0, 10]}}\n" for i in range(8)), "GridSearch"
        ),
        "searchSpace.p",
        "1,000,000",
    ),
    (
        "determined-grid-count",
        "determined",
        "config.yaml",
        determined("  lr: {type: double, minval: 0, maxval: 1, count: 1000000000000}", "grid", ""),
        "hyperparameters.lr.count",
        "10,000",
    ),
    (
        "determined-grid-int",
        "determined",
        "config.yaml",
        determined("  n: {type: int, minval: 0, maxval: 1000000000000, count: 1000000000000}", "grid", ""),
        "hyperparameters.n.count",
        "10,000",
    ),
    (
        "determined-grid-product",
        "determined",
        "config.yaml",
        determined(
            "".join(f"  p{i}: {{type: int, minval: 0, maxval: 100, count: 100}}\n" for i in range(4)), "grid", ""
        ),
        "hyperparameters.p",
        "1,000,000",
    ),
    (
        "katib-grid-int",
        "katib",
        "config.yaml",
        katib("    - {name: n, parameterType: int, feasibleSpace: {min: '0', max: '1000000000000'}}\n", "grid"),
        "spec.parameters.1.feasibleSpace",
        "10,000",
    ),
    (
        "katib-grid-double-step",
        "katib",
        "config.yaml",
        katib("    - {name: x, parameterType: double, feasibleSpace: {min: '0', max: '1', step: '1e-12'}}\n", "grid"),
        "spec.parameters.1.feasibleSpace",
        "10,000",
    ),
    (
        "wandb-grid-q-tiny",
        "wandb",
        "sweep.yaml",
        wandb("  x: {distribution: q_uniform, min: 0, max: 1, q: 1.0e-12}", "grid"),
        "parameters.x",
        "10,000",
    ),
    (
        "wandb-grid-product",
        "wandb",
        "sweep.yaml",
        wandb("".join(f"  p{i}: {{min: 0, max: 99}}\n" for i in range(4)), "grid"),
        "parameters.p",
        "1,000,000",
    ),
    (
        "hydra-grid-range",
        "hydra-optuna",
        "config.yaml",
        hydra("range(0, 1000000000000)", "GridSampler"),
        "hydra.sweeper.params.x",
        "10,000",
    ),
    (
        "hydra-grid-range-past-float",
        "hydra-optuna",
        "config.yaml",
        hydra(f"range(-{10**308}, {10**308})", "GridSampler"),
        "hydra.sweeper.params.x",
        "10,000",
    ),
    # -- overflow, numbers past a float, NaN and inf
    (
        "determined-log-overflow",
        "determined",
        "config.yaml",
        determined("  lr: {type: log, base: 10, minval: -4, maxval: 400}"),
        "hyperparameters.lr.maxval",
        "out of range",
    ),
    (
        "determined-log-underflow",
        "determined",
        "config.yaml",
        determined("  lr: {type: log, base: 10, minval: -400, maxval: 1}"),
        "hyperparameters.lr.minval",
        "out of range",
    ),
    (
        "determined-log-grid-overflow",
        "determined",
        "config.yaml",
        determined("  lr: {type: log, base: 10, minval: 1, maxval: 1000, count: 3}", "grid", ""),
        "hyperparameters.lr.maxval",
        "out of range",
    ),
    (
        "determined-huge-int",
        "determined",
        "config.yaml",
        determined(f"  n: {{type: int, minval: 0, maxval: {10**400}}}"),
        "hyperparameters.n.maxval",
        "finite",
    ),
    (
        "determined-nan",
        "determined",
        "config.yaml",
        determined("  x: {type: double, minval: .nan, maxval: 1}"),
        "hyperparameters.x.minval",
        "finite",
    ),
    (
        "determined-rungs",
        "determined",
        "config.yaml",
        determined(
            "  x: {type: double, minval: 0, maxval: 1}", "adaptive_asha", "  max_trials: 4\n  max_rungs: 100000\n"
        ),
        None,
        None,
    ),
    (
        "nni-nan",
        "nni",
        "config.yml",
        nni("searchSpace:\n  x: {_type: uniform, _value: [0, .nan]}"),
        "searchSpace.x._value.1",
        "finite",
    ),
    (
        "nni-inf",
        "nni",
        "config.yml",
        nni("searchSpace:\n  x: {_type: uniform, _value: [-.inf, 1]}"),
        "searchSpace.x._value.0",
        "finite",
    ),
    (
        "nni-huge-int",
        "nni",
        "config.yml",
        nni(f"searchSpace:\n  x: {{_type: randint, _value: [0, {10**400}]}}"),
        "searchSpace.x._value.1",
        "finite",
    ),
    (
        "nni-eta-one",
        "nni",
        "config.yml",
        nni("searchSpace:\n  x: {_type: uniform, _value: [0, 1]}", "Hyperband\n  classArgs: {eta: 1}"),
        "tuner.classArgs.eta",
        "above 1",
    ),
    (
        "nni-duration-past-float",
        "nni",
        "config.yml",
        nni("searchSpace:\n  x: {_type: uniform, _value: [0, 1]}\nmaxExperimentDuration: " + "9" * 400 + "d"),
        "maxExperimentDuration",
        "duration",
    ),
    (
        "katib-huge-int",
        "katib",
        "config.yaml",
        katib(f"    - {{name: n, parameterType: int, feasibleSpace: {{min: '0', max: '{10**400}'}}}}\n"),
        "spec.parameters.1.feasibleSpace.max",
        "finite",
    ),
    (
        "katib-eta-one",
        "katib",
        "config.yaml",
        katib("", "hyperband", "    algorithmSettings: [{name: r_l, value: '9'}, {name: eta, value: '1'}]\n"),
        "spec.algorithm.algorithmSettings.1",
        "above 1",
    ),
    (
        "katib-regex-repeat",
        "katib",
        "config.yaml",
        katib(
            collector="  metricsCollectorSpec:\n    collector: {kind: StdOut}\n    source:\n      filter:\n"
            "        metricsFormat: ['(a{99999999999})=(b)']\n"
        ),
        "spec.metricsCollectorSpec.source.filter.metricsFormat.0",
        "regular expression",
    ),
    (
        "katib-regex-deep",
        "katib",
        "config.yaml",
        katib(
            collector="  metricsCollectorSpec:\n    collector: {kind: StdOut}\n    source:\n      filter:\n"
            f"        metricsFormat: ['(a)=(b{'(' * 600}{')' * 600})']\n"
        ),
        "spec.metricsCollectorSpec.source.filter.metricsFormat.0",
        "500 characters",
    ),
    ("wandb-nan", "wandb", "sweep.yaml", wandb("  x: {min: 0, max: .nan}"), "parameters.x.max", "number"),
    (
        "wandb-inf",
        "wandb",
        "sweep.yaml",
        wandb("  x: {distribution: normal, mu: 0, sigma: .inf}"),
        "parameters.x.sigma",
        "number",
    ),
    (
        "wandb-min-iter-past-float",
        "wandb",
        "sweep.yaml",
        wandb("  epochs: {value: 10}", extra=f"early_terminate: {{type: hyperband, min_iter: {10**400}}}\n"),
        "early_terminate.min_iter",
        "positive integer",
    ),
    (
        "wandb-many-brackets",
        "wandb",
        "sweep.yaml",
        wandb(
            "  x: {min: 0, max: 1}",
            extra="early_terminate: {type: hyperband, max_iter: 1000000000, s: 1.0e+18, eta: 1.0000001}\n",
        ),
        "early_terminate.s",
        "at most 100",
    ),
    ("hydra-range-nan", "hydra-optuna", "config.yaml", hydra("range(0, nan)"), "hydra.sweeper.params.x", "finite"),
    ("hydra-range-inf", "hydra-optuna", "config.yaml", hydra("range(0, 10, inf)"), "hydra.sweeper.params.x", "finite"),
    (
        "hydra-interval-inf",
        "hydra-optuna",
        "config.yaml",
        hydra("interval(0, inf)"),
        "hydra.sweeper.params.x",
        "finite",
    ),
    (
        "hydra-interval-nan",
        "hydra-optuna",
        "config.yaml",
        hydra("tag(log, interval(nan, 1))"),
        "hydra.sweeper.params.x",
        "finite",
    ),
    (
        "hydra-interval-past-float",
        "hydra-optuna",
        "config.yaml",
        hydra(f"interval(0, {10**400})"),
        "hydra.sweeper.params.x",
        "finite",
    ),
    ("hydra-choice-nan", "hydra-optuna", "config.yaml", hydra("choice(nan, 1)"), "hydra.sweeper.params.x", "finite"),
    ("hydra-choice-inf", "hydra-optuna", "config.yaml", hydra("1, -inf"), "hydra.sweeper.params.x", "finite"),
    (
        "hydra-digits",
        "hydra-optuna",
        "config.yaml",
        hydra("choice(1, " + "9" * 5000 + ")"),
        "hydra.sweeper.params.x",
        "4,300 digits",
    ),
    # -- nesting hundreds of levels deep
    (
        "hydra-deep-list",
        "hydra-optuna",
        "config.yaml",
        hydra("[" * 1000 + "]" * 1000),
        "hydra.sweeper.params.x",
        "64 levels",
    ),
    (
        "hydra-deep-calls",
        "hydra-optuna",
        "config.yaml",
        hydra("choice(" * 1000 + "1" + ")" * 1000),
        "hydra.sweeper.params.x",
        "64 levels",
    ),
    (
        "hydra-deep-map",
        "hydra-optuna",
        "config.yaml",
        hydra("{a:" * 1000 + "1" + "}" * 1000),
        "hydra.sweeper.params.x",
        "64 levels",
    ),
    ("json-deep", "wandb", "sweep.json", deep_json(100_000), None, "64 levels"),
    ("json-deep-objects", "nni", "config.json", '{"a":' * 1000 + "1" + "}" * 1000, None, "64 levels"),
    ("yaml-deep-flow", "katib", "config.yaml", "a: " + deep_json(100_000), None, "64 levels"),
    (
        "yaml-deep-block",
        "determined",
        "config.yaml",
        "".join("  " * i + f"k{i}:\n" for i in range(600)),
        None,
        "64 levels",
    ),
    # -- JSON read strictly
    (
        "json-duplicate-key",
        "wandb",
        "sweep.json",
        '{"method": "grid", "method": "random"}',
        None,
        "duplicate key 'method'",
    ),
    ("json-nan", "wandb", "sweep.json", '{"method": "random", "run_cap": NaN}', None, "NaN is not a JSON number"),
    ("json-digits", "wandb", "sweep.json", '{"run_cap": ' + "9" * 5000 + "}", None, "4,300 digits"),
    ("yaml-digits", "wandb", "sweep.yaml", "run_cap: " + "9" * 5000 + "\n", None, "integer too large"),
    # -- keys that would break the line
    (
        "key-with-newline",
        "wandb",
        "sweep.yaml",
        wandb('  "a\\nb\\u2028c": {min: 0, max: 1}'),
        "parameters.a\\nb\\u2028c",
        "parameter name",
    ),
]


def setup_folder(tmp_path: Path) -> Path:
    """The config's folder, with the files the searchSpaceFile cases name; a secret file beside it."""
    folder = tmp_path / "configs"
    folder.mkdir()
    (tmp_path / "outside.json").write_text(json.dumps({"x": {"_type": "choice", "_value": [SECRET]}}))
    (folder / "link.json").symlink_to(tmp_path / "outside.json")
    (folder / "loop.json").symlink_to(folder / "loop.json")
    (folder / "folder").mkdir()
    os.mkfifo(folder / "fifo.json")
    (folder / "credentials").write_text(f"aws_secret_access_key: {SECRET}\n{SECRET}: [1, 2]\n")
    (folder / "token.json").write_text(json.dumps({"token": SECRET, SECRET: {"refresh": SECRET}}))
    (folder / "bad.yml").write_text(f"a: *{SECRET}\n")
    (folder / "bad.json").write_text(f'{{"a": {SECRET}}}')
    (folder / "twice.json").write_text(
        json.dumps({"x": {"_type": "choice", "_value": [1]}})[:-1] + f', "{SECRET}": 1, "{SECRET}": 2}}'
    )
    (folder / "deep.json").write_text('{"x": ' + "[" * 100 + f'"{SECRET}"' + "]" * 100 + "}")
    return folder


def check_one_line(exc: SpecError, path: Path, key: str | None, words: str | None) -> None:
    text = str(exc)
    assert len(text.splitlines()) == 1, text
    assert text.startswith(str(path)), text  # names the file
    assert SECRET not in text and "root:" not in text, text
    assert len(text) < 500, text
    if key is not None:
        assert key in exc.path, text
    if words is not None:
        assert words in exc.message, text


@pytest.mark.parametrize(("fmt", "name", "text", "key", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_file_gives_one_line_naming_file_and_key(tmp_path, fmt, name, text, key, words):
    path = setup_folder(tmp_path) / name
    path.write_text(text)
    start = time.monotonic()
    try:
        import_file(fmt, path)
    except SpecError as exc:
        check_one_line(exc, path, key, words)
    else:
        assert key is None and words is None, "imported, but an error was expected"
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(("fmt", "name", "text"), [c[1:4] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_file_on_the_command_line(tmp_path, fmt, name, text):
    path = setup_folder(tmp_path) / name
    path.write_text(text)
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(main, ["import", "--from", fmt, str(path), "-o", str(out)])
    if result.exit_code == 0:
        assert out.exists()
        return
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {path}"), result.stderr
    assert SECRET not in result.output
    assert not out.exists()


def test_a_search_space_file_inside_the_folder_still_imports(tmp_path):
    folder = tmp_path / "configs"
    (folder / "spaces").mkdir(parents=True)
    (folder / "spaces" / "space.json").write_text(json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}))
    path = folder / "config.yml"
    path.write_text(nni_file("spaces/../spaces/space.json"))
    assert import_file("nni", path).data["space"] == {"x": {"float": [0, 1]}}


def test_a_symlinked_search_space_file_inside_the_folder_imports(tmp_path):
    (tmp_path / "space.json").write_text(json.dumps({"x": {"_type": "uniform", "_value": [0, 1]}}))
    (tmp_path / "link.json").symlink_to(tmp_path / "space.json")
    path = tmp_path / "config.yml"
    path.write_text(nni_file("link.json"))
    assert import_file("nni", path).data["space"] == {"x": {"float": [0, 1]}}


def test_a_file_name_with_a_nul_byte_is_one_line():
    with pytest.raises(SpecError, match="NUL byte") as info:
        import_file("wandb", "sweep\0.yaml")
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    "fmt, example, old, new, key",
    [
        ("nni", "nni/hyperband.yml", "    eta: 3", "    eta: 1.0000001", "advisor.classArgs.eta"),
        ("katib", "katib/hyperband.yaml", 'value: "2"', 'value: "1.0000001"', "spec.algorithm.algorithmSettings"),
        ("determined", "determined/adaptive.yaml", "max_rungs: 5", "max_rungs: 1000000000", "searcher.max_rungs"),
    ],
)
def test_a_hyperband_of_millions_of_rungs_is_refused_at_its_key_at_once(tmp_path, fmt, example, old, new, key):
    """An eta just above 1 (or a huge rung count) would list millions of rungs: refused before any is."""
    source = Path(__file__).parent / "import_examples" / example
    text = source.read_text()
    assert old in text
    path = tmp_path / source.name
    path.write_text(text.replace(old, new))
    start = time.monotonic()
    with pytest.raises(SpecError) as caught:
        import_file(fmt, path)
    assert caught.value.path.startswith(key) and "100" in caught.value.message
    assert time.monotonic() - start < 5
