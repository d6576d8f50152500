"""Hostile experiment files and command lines: one line on stderr, exit code 2, nothing written.

Every case here once ended in a traceback, a hang, a silently wrong column or a file
written where it should not be (issue 13). The CLI runs for real (click's runner in this
process, or a subprocess where a hang or a signal is the risk).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.space import (
    ChoiceParam,
    ConditionalParam,
    CountParam,
    IntParam,
    enumerate_configs,
    space_size,
)
from scalehp.spec import load_experiment, read_yaml
from tests.results_factory import quad_run

ROOT = Path(__file__).resolve().parent.parent
HEAD = (
    "name: hostile\ntrainable: tests.trainables:quadratic\nmetric: {name: loss, mode: min}\n"
    "budget: {samples: 2, max_steps: 3}\n"
)
GOOD = HEAD + "space: {x: {float: [0.0, 1.0]}}\n"
COMMANDS = ("validate", "plan", "run", "try")


def base(**overrides: object) -> dict:
    data = {
        "name": "hostile",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 2, "max_steps": 3},
        "space": {"x": {"float": [0.0, 1.0]}},
    }
    data.update(overrides)
    return data


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_one_line(code: int, stderr: str, *words: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "\x1b" not in lines[0]
    return lines[0]


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    return tmp_path


# ---------------------------------------------------------------------------
# 1. nesting


@pytest.mark.parametrize("depth", [100, 300, 1000, 5000])
@pytest.mark.parametrize("command", COMMANDS)
def test_deep_nesting_is_one_line_in_every_command(here, command, depth):
    path = here / "deep.yaml"
    path.write_text(HEAD + "space:\n  x: {constant: " + "[" * depth + "]" * depth + "}\n")
    before = files_in(here)
    line = assert_one_line(*invoke(command, str(path))[::2], str(path), "space.x.constant.0", "nested more than")
    assert ":6: " in line  # the line of the too deep value
    assert files_in(here) == before


def test_submit_reads_the_file_the_same_way(here):
    path = here / "deep.yaml"
    path.write_text(HEAD + "space:\n  x: {constant: " + "[" * 1000 + "]" * 1000 + "}\n")
    code, _, stderr = invoke("submit", "deep.yaml", "--address", "http://127.0.0.1:9")  # nothing listens there
    assert_one_line(code, stderr, "deep.yaml:6: space.x.constant.0", "nested more than")


def test_deep_nesting_from_python_and_a_dict_that_holds_itself():
    deep: list = []
    inner = deep
    for _ in range(1000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(SpecError, match=r"space\.x\.constant\.0\.0.*nested more than 64 levels"):
        load_experiment(base(space={"x": {"constant": deep}}))
    looped: dict = {"a": 1}
    looped["self"] = looped
    with pytest.raises(SpecError, match="nested more than"):
        load_experiment(base(space={"x": {"constant": looped}}))
    # the cap leaves room for any real experiment (and for pydantic's own limit near 250)
    ok: list = [1]
    for _ in range(55):
        ok = [ok]
    assert compile_plan(load_experiment(base(space={"x": {"constant": ok}}))).digest


def test_resume_refuses_a_deeply_nested_plan(here):
    """An unsigned folder is refused before its plan is even compiled; nothing is written either way."""
    import json

    run_dir = here / "run"
    (run_dir / "ray").mkdir(parents=True)
    (run_dir / "ray" / "tuner.pkl").write_bytes(b"")
    deep: object = 1
    for _ in range(200):
        deep = [deep]
    (run_dir / "plan.json").write_text(
        json.dumps({"run_id": "r", "digest": "x", "experiment": base(space={"x": {"constant": deep}})})
    )
    before = files_in(here)
    code, _, stderr = invoke("resume", str(run_dir), "--quiet")
    assert_one_line(code, stderr, "integrity.json", "not signed")
    assert files_in(here) == before


# ---------------------------------------------------------------------------
# 2. numbers


@pytest.mark.parametrize(
    ("param", "where"),
    [
        ("x: " + "7" * 5000, "space.x"),
        ("x: {int: [1, " + "9" * 4400 + "]}", "space.x.int.1"),
        ("x: {int: [1, " + "9" * 400 + "], log: true}", "space.x.int.1"),
        ("x: {int: [1, 1.0e+300], log: true}", "space.x.int.1"),
        ("x: {choice: [1, " + "9" * 30 + "]}", "space.x.choice.1"),
        ("x: {float: [0.0, 1.0], step: 5e-324}", "space.x"),
        ("x: {float: [1.0e+300, 1.0e+301], step: 1.0e-300}", "space.x"),
        ("x: {normal: [0.0, 1.0], step: 5e-324}", "space.x"),
        ("x: {lognormal: [0.0, 1.0], step: 5e-324}", "space.x"),
        ("x: {lognormal: [800.0, 1.0]}", "space.x"),
        ("x: {lognormal: [800.0, 1.0], step: 0.1}", "space.x"),
        ("x: {normal: [1.0e+308, 1.0e+308]}", "space.x"),
        ("x: {float: [-1.0e+308, 1.0e+308]}", "space.x"),
    ],
)
def test_numbers_that_overflow_are_one_line(here, param, where):
    path = here / "numbers.yaml"
    path.write_text(HEAD + "space:\n  " + param + "\n")
    for command in ("validate", "plan"):
        assert_one_line(*invoke(command, str(path))[::2], f"{path}:6: {where}: ")


def test_huge_integers_from_python():
    with pytest.raises(SpecError, match=r"space\.x: integer too large"):
        load_experiment(base(space={"x": 10**400}))
    with pytest.raises(SpecError, match=r"space\.x\.int\.1: integer too large"):
        load_experiment(base(space={"x": {"int": [1, 2**63]}}))
    assert load_experiment(base(space={"x": {"int": [1, 2**63 - 1], "log": True}})).space["x"].high == 2**63 - 1


def test_spaces_are_counted_not_walked():
    # a repeated layer holding a conditional choice: 2**60 configs in the last count alone
    space = {
        "a": CountParam(
            count=[0, 60], each={"b": ConditionalParam(choice={"p": {"q": ChoiceParam(choice=[1, 2])}, "r": None})}
        )
    }
    start = time.monotonic()
    assert space_size(space) == sum(3**k for k in range(61))
    assert len(enumerate_configs(space, 10)) == 10
    assert time.monotonic() - start < 2
    # counting from the structure agrees with walking every config of small spaces
    small = {
        "opt": ConditionalParam(choice={"adam": {"b": ChoiceParam(choice=[1, 2, 3])}, "sgd": None}),
        "layers": CountParam(count=[1, 3], each={"w": IntParam(int=[1, 2]), "k": ChoiceParam(choice=["a", "b"])}),
        "z": ChoiceParam(choice=[True, False]),
    }
    assert space_size(small) == len(enumerate_configs(small, 10**6)) == (3 + 1) * (4 + 16 + 64) * 2


@pytest.mark.slow
def test_plan_shows_a_space_of_10_to_the_19800(here):
    path = here / "huge.yaml"
    layer = ", ".join(f"p{i}: {{choice: [{', '.join(map(str, range(100)))}]}}" for i in range(99))
    path.write_text(HEAD + f"space:\n  a: {{count: [0, 100], each: {{{layer}}}}}\n")
    code, stdout, stderr = invoke("plan", str(path))
    assert code == 0, stderr
    assert "finite      about 10^19800 distinct configs; the first 10:" in stdout


def test_count_inside_count_is_refused_before_it_is_built(here):
    path = here / "layers.yaml"
    layer = "{c: {count: [0, 100], each: {d: {choice: [1, 2]}}}}"
    path.write_text(HEAD + f"space:\n  a: {{count: [0, 100], each: {{b: {{count: [0, 100], each: {layer}}}}}}}\n")
    start = time.monotonic()
    assert_one_line(*invoke("plan", str(path))[::2], "space.a", "spreads out to")
    assert time.monotonic() - start < 5


def test_a_long_choice_validates_in_bounded_time():
    start = time.monotonic()
    load_experiment(base(space={"x": {"choice": list(range(60_000))}}))
    assert time.monotonic() - start < 5
    with pytest.raises(SpecError, match="lists 59999 twice"):
        load_experiment(base(space={"x": {"choice": [*range(60_000), 59_999]}}))


# ---------------------------------------------------------------------------
# 3. and 4. names and columns


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"name": "x\n"}, "name"),
        ({"name": "x\x1b[2J"}, "name"),
        ({"space": {"lr\n": 1}}, "space"),
        ({"space": {"opt": {"choice": {"adam": {"beta\n": 1}}}}}, "space.opt"),
        ({"metric": {"name": "loss\n", "mode": "min"}}, "metric.name"),
        ({"metric": {"name": "lo\x07ss", "mode": "min"}}, "metric.name"),
        ({"metric": {"name": "lo\u202ess", "mode": "min"}}, "metric.name"),
        ({"trainable": "tests.trainables:quadratic\n"}, "trainable"),
        ({"resources": {"custom": {"TPU\x1b": 1}}}, "resources.custom"),
    ],
)
def test_names_end_without_newline_and_hold_no_control_characters(change, where):
    with pytest.raises(SpecError) as error:
        load_experiment(base(**change))
    assert error.value.path.startswith(where), error.value
    assert error.value.message.isprintable(), error.value.message  # the CLI escapes the key path too


def test_params_whose_columns_differ_only_in_case_are_refused():
    with pytest.raises(SpecError, match=r"space\.LR: params 'lr' and 'LR' map to columns 'param_lr' and 'param_LR'"):
        compile_plan(load_experiment(base(space={"lr": {"float": [0.1, 0.2]}, "LR": {"float": [0.3, 0.4]}})))
    with pytest.raises(SpecError, match="'a_B' and 'a/b'"):
        compile_plan(load_experiment(base(space={"a_B": 1, "a/b": 2})))
    both = [{"name": "loss", "mode": "min"}, {"name": "LOSS", "mode": "max"}]
    exp = base(metric=both, search={"algorithm": "optuna"})
    with pytest.raises(SpecError, match="metrics 'loss' and 'LOSS'"):
        compile_plan(load_experiment(exp))
    # equal readable columns are told apart by a hash, as before
    exp = base(metric=[{"name": "val/loss", "mode": "min"}, {"name": "val_loss", "mode": "max"}])
    plan = compile_plan(load_experiment({**exp, "search": {"algorithm": "optuna"}}))
    assert plan.metric_columns["val_loss"] == "metric_val_loss"


# ---------------------------------------------------------------------------
# 5. the results root


@pytest.mark.parametrize(
    ("results", "words"),
    [
        ("afile", "is a file"),
        ("afile/runs", "'afile' is a file"),
        ("runs\x00x", "NUL"),
        ("ftp://host/runs", "unknown URI scheme 'ftp'"),
        ("gopher://host/runs", "unknown URI scheme"),
        ("s3://", "names no bucket or folder"),
        ("file:///", "names no bucket or folder"),
        ("runs/" + "r" * 300, "300 bytes long"),
        ("runs/" + "é" * 128, "256 bytes long"),
        ("runs\n", "control character"),
    ],
)
def test_results_root_is_refused_at_validation(here, results, words):
    (here / "afile").write_text("not a folder")
    path = here / "exp.yaml"
    path.write_text(GOOD + f"results: {results!r}\n".replace("'", '"').replace("\x00", "\\0").replace("\n\"", '\\n"'))
    assert read_yaml(path.read_text())[0]["results"] == results
    before = files_in(here)
    for command in ("validate", "run"):
        line = assert_one_line(*invoke(command, str(path))[::2], f"{path}:6: results: ", words)
        assert "Traceback" not in line
    assert files_in(here) == before


def test_results_roots_that_work(here):
    for results in ("runs", "runs/a/b", "file:///tmp/runs", "s3://bucket/runs", "gs://bucket/x", "./x:y"):
        assert load_experiment(base(results=results)).results == results


@pytest.mark.slow
def test_run_results_option_is_checked_before_ray(here):
    (here / "exp.yaml").write_text(GOOD)
    (here / "afile").write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = (
        "import sys; from scalehp.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print('ray imported' if 'ray' in sys.modules else 'no ray'); raise\n"
    )
    for results, words in (("afile", "is a file"), ("ftp://x/y", "unknown URI scheme"), ("r" * 256, "256 bytes")):
        process = subprocess.run(
            [sys.executable, "-c", code, "run", "exp.yaml", "--results", results],
            capture_output=True,
            text=True,
            cwd=here,
            env=env,
            timeout=120,
        )
        assert_one_line(process.returncode, process.stderr, "--results: ", words)
        assert process.stdout.strip() == "no ray"
    assert files_in(here) == {"exp.yaml", "afile"}


# ---------------------------------------------------------------------------
# 8. files that are not regular files


def _cli_process(args: list[str], cwd: Path, timeout: float = 30, **extra: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "scalehp.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        **extra,
    )


_EVERY_COMMAND = r"""
import json, sys
from click.testing import CliRunner
from scalehp.cli import main
out = {}
for command in ("validate", "plan", "run", "try"):
    for name in sys.argv[1:]:
        result = CliRunner().invoke(main, [command, name])
        out[f"{command} {name}"] = [result.exit_code, result.stderr]
print(json.dumps(out))
"""


def test_fifo_dev_zero_symlink_loop_and_folder_are_one_line_without_hanging(here):
    import json

    os.mkfifo(here / "fifo.yaml")
    os.symlink(here / "loop-b.yaml", here / "loop-a.yaml")
    os.symlink(here / "loop-a.yaml", here / "loop-b.yaml")
    (here / "folder.yaml").mkdir()
    cases = {
        "fifo.yaml": "not a regular file",
        "/dev/zero": "not a regular file",
        "loop-a.yaml": "symbolic links",
        "folder.yaml": "a directory",
    }
    before = files_in(here)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.run(  # in a subprocess with a timeout: a hang fails here, it does not hang the suite
        [sys.executable, "-c", _EVERY_COMMAND, *cases], capture_output=True, text=True, cwd=here, env=env, timeout=60
    )
    outcomes = json.loads(process.stdout)
    for name, words in cases.items():
        for command in COMMANDS:
            assert_one_line(*outcomes[f"{command} {name}"], f"error: {name}: ", words)
    assert files_in(here) == before


# ---------------------------------------------------------------------------
# 7. the error printer


def test_control_characters_never_reach_the_terminal(here):
    evil = "a\x1b]0;pwned\x07\x1b[2J\nb\u202e.yaml"
    code, _, stderr = invoke("validate", evil)
    line = assert_one_line(code, stderr, "\\x1b]0;pwned\\x07\\x1b[2J\\nb\\u202e.yaml: no such file")
    assert "\x07" not in line and "\u202e" not in line
    path = here / "keys.yaml"
    path.write_text(GOOD + '"\\e[31mred": 1\n')
    line = assert_one_line(*invoke("plan", str(path))[::2], "unknown key '\\x1b[31mred'")
    # a value printed by `plan` is escaped too
    path.write_text(HEAD + 'space: {x: {choice: ["\\e[2J", b]}}\n')
    code, stdout, _ = invoke("plan", str(path))
    assert code == 0 and "\x1b" not in stdout and "\\x1b[2J" in stdout


def test_a_file_name_that_is_not_utf8_is_one_line(here):
    name = os.fsdecode(b"bad-\xff.yaml")
    process = _cli_process(["validate", name], here)
    assert_one_line(process.returncode, process.stderr, "\\udcff", "no such file")


# ---------------------------------------------------------------------------
# 6. output files


@pytest.fixture
def source(here):
    path = here / "in.yaml"
    path.write_text((ROOT / "tests/import_examples/katib/random.yaml").read_text())
    return path


def _import(*args: str) -> tuple[int, str, str]:
    return invoke("import", "--from", "katib", "in.yaml", *args)


def test_import_output_refuses_to_overwrite_without_force(source):
    assert _import("-o", "out.yaml")[0] == 0
    (source.parent / "out.yaml").write_text("mine")
    assert_one_line(*_import("-o", "out.yaml")[::2], "out.yaml: already exists; add --force")
    assert (source.parent / "out.yaml").read_text() == "mine"
    assert _import("-o", "out.yaml", "--force")[0] == 0
    assert "metric:" in (source.parent / "out.yaml").read_text()
    assert files_in(source.parent) == {"in.yaml", "out.yaml"}  # no temporary left


def test_import_output_never_overwrites_its_input(source):
    original = source.read_text()
    for name in ("in.yaml", "./in.yaml", str(source)):
        assert_one_line(*_import("-o", name, "--force")[::2], "is the input file")
    os.link(source, source.parent / "hard.yaml")
    assert_one_line(*_import("-o", "hard.yaml", "--force")[::2], "is the input file")
    assert source.read_text() == original


def test_output_never_written_through_a_symlink(source):
    here = source.parent
    (here / "target.txt").write_text("precious")
    os.symlink(here / "target.txt", here / "link.yaml")
    os.symlink(here / "nowhere.txt", here / "dangling.yaml")
    for name in ("link.yaml", "dangling.yaml"):
        for force in ((), ("--force",)):
            assert_one_line(*_import("-o", name, *force)[::2], f"{name}: is a symbolic link")
    assert (here / "target.txt").read_text() == "precious"
    assert not (here / "nowhere.txt").exists()


@pytest.mark.parametrize(
    ("output", "words"),
    [("missing/out.yaml", "no such folder"), ("/dev/full", "not a regular file"), (".", "not a regular file")],
)
def test_output_into_nowhere_is_one_line(source, output, words):
    before = files_in(source.parent)
    for force in ((), ("--force",)):
        assert_one_line(*_import("-o", output, *force)[::2], f"error: {output}: ", words)
    assert files_in(source.parent) == before


def test_a_failed_write_leaves_no_partial_file(source):
    # a real write failure: the file size limit makes write() fail with EFBIG half way
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    args = ["import", "--from", "katib", "in.yaml", "-o", "out.yaml"]
    process = _cli_process(args, source.parent, preexec_fn=limit)
    assert_one_line(process.returncode, process.stderr, "out.yaml: cannot write: File too large")
    assert files_in(source.parent) == {"in.yaml"}


@pytest.fixture
def results_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    quad_run(root, "quad-1", seed=1, trials=6, max_steps=3)
    return root


@pytest.mark.slow
def test_report_output_is_written_whole_and_refused_like_import(here, results_root):
    root = str(results_root)
    (here / "report.html").write_text("mine")
    assert_one_line(*invoke("report", root)[::2], "report.html: already exists; add --force")
    os.symlink(here / "report.html", here / "link.html")
    assert_one_line(*invoke("report", root, "-o", "link.html", "--force")[::2], "symbolic link")
    assert_one_line(*invoke("report", root, "-o", "missing/r.html")[::2], "no such folder")
    assert_one_line(*invoke("report", root, "-o", "/dev/full", "--force")[::2], "not a regular file")
    assert (here / "report.html").read_text() == "mine"
    code, stdout, stderr = invoke("report", root, "--force")
    assert code == 0, stderr
    assert (here / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert files_in(here) == {"report.html", "link.html"}


def test_usage_errors_are_one_line_too(here):
    for args in (["validate"], ["nope\x1b[2J"], ["report", "--top", "x", "r"], ["plan", "x.yaml", "--format", "\x1b"]):
        line = assert_one_line(*invoke(*args)[::2], "--help')")
        assert line.isprintable(), line
    assert invoke()[0] in (0, 2)  # no command at all: the help, as before


def test_an_error_about_a_huge_key_is_one_short_line(here):
    path = here / "big.yaml"
    path.write_text(GOOD + "? " + "k" * 200_000 + "\n: 1\n")
    line = assert_one_line(*invoke("validate", str(path))[::2], f"{path}:6: ", "more characters)")
    assert len(line) < 2100


@pytest.mark.parametrize("make", ["file", "list", "deep", "missing"])
def test_resume_of_something_that_is_not_a_run_folder_is_one_line(tmp_path, make):
    """``scalehp resume`` reads plan.json as untrusted input before anything else."""
    import subprocess
    import sys

    target = tmp_path / "run"
    if make == "file":
        target.write_text("x")
    elif make != "missing":
        target.mkdir()
        (target / "plan.json").write_text("[1, 2]" if make == "list" else "[" * 5000)
    done = subprocess.run(
        [sys.executable, "-m", "scalehp.cli", "resume", str(target)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert str(target) in errors[0]
