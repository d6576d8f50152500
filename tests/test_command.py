"""Command trials without Ray: templates, output lines, compiler checks, and real programs run locally."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.command import CommandError, expand, experiment_trainable, format_value, parse_line, run_command
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.spec import Command, load_experiment
from scalehp.trial import LocalTrial, MetricMissingError
from tests.conftest import write

QUADRATIC = "${python} tests/programs/quadratic.py ${args}"


def experiment(**changes):
    data = {
        "name": "cmd",
        "command": QUADRATIC,
        "metric": {"name": "val_loss", "mode": "min"},
        "budget": {"samples": 4, "max_steps": 3},
        "seed": 0,
        "space": {"lr": {"float": [1.0e-4, 1.0], "log": True}, "dropout": {"float": [0.0, 1.0]}, "epochs": 3},
    }
    data.update(changes)
    return load_experiment(data)


# ---------------------------------------------------------------------------
# templates


def test_expand_fills_every_placeholder():
    config = {"lr": 0.001, "optimizer.beta1": 0.9, "layers": 3, "tiny": 1e-05, "use_bn": True, "act": "relu"}
    argv = expand(
        "${python} train.py ${args} --beta=${optimizer.beta1} --out=runs/${trial_id} '$${literal}'", config, "t7"
    )
    assert argv[0] == sys.executable and argv[1] == "train.py"
    assert argv[2:8] == [
        "--lr=0.001",
        "--optimizer.beta1=0.9",
        "--layers=3",
        "--tiny=1e-05",
        "--use_bn=True",
        "--act=relu",
    ]
    assert argv[8:] == ["--beta=0.9", "--out=runs/t7", "${literal}"]
    assert expand(["train.py", "${args_no_hyphens}"], {"a.b": 1, "c": "x"}, "t") == ["train.py", "a.b=1", "c=x"]
    assert expand("p ${args_no_boolean_flags}", {"a": True, "b": False, "c": 2}, "t") == ["p", "--a", "--c=2"]
    (one,) = expand(["${args_json}"], {"lr": 0.5, "sizes": [1, 2], "name": "x"}, "t")
    assert json.loads(one) == {"lr": 0.5, "sizes": [1, 2], "name": "x"}


def test_expand_values_and_inactive_params():
    assert [format_value(v) for v in (None, {"a": 1}, 2.5e-08, False)] == ["null", '{"a": 1}', "2.5e-08", "False"]
    np = pytest.importorskip("numpy")
    assert format_value(np.float64(0.25)) == "0.25" and format_value(np.int64(4)) == "4"
    # an argument holding an inactive param of a conditional space is left out, whole
    argv = expand("p --opt=${opt} --beta1=${opt.beta1} ${args}", {"opt": "sgd"}, "t", params=["opt", "opt.beta1"])
    assert argv == ["p", "--opt=sgd", "--opt=sgd"]


def test_expand_rejects_unknown_and_misplaced_placeholders():
    with pytest.raises(ValueError, match=r"unknown placeholder \$\{lrr\} \(did you mean \$\{lr\}\?\)"):
        expand("p --lr=${lrr}", {"lr": 1}, "t")
    with pytest.raises(ValueError, match="several arguments"):
        expand(["p", "--all=${args}"], {"lr": 1}, "t")


# ---------------------------------------------------------------------------
# output lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("epoch=3 val_loss=0.25 val/acc=0.9", (3, {"val_loss": 0.25, "val/acc": 0.9})),
        ("metrics/mAP_0.5=0.61, val_loss = 1.5E-3;", (None, {"metrics/mAP_0.5": 0.61, "val_loss": 0.0015})),
        ("step=7 epoch=2 val_loss=-2e+2", (7, {"epoch": 2.0, "val_loss": -200.0})),
        ("val_loss=nan lr=.5", (None, {"val_loss": float("nan"), "lr": 0.5})),
        ("Epoch 2: val_loss=0.4.", (None, {"val_loss": 0.4})),
        ('{"epoch": 1, "val_loss": 0.5, "note": "x", "val": {"acc": 0.8}}', (1, {"val_loss": 0.5, "val/acc": 0.8})),
        ("epoch=1.5 val_loss=1", (None, {"epoch": 1.5, "val_loss": 1.0})),
        ("--val_loss=0.1 starting", None),
        ("val_loss=0.1.2", None),
        ("loading data", None),
        ("{not json} val_loss=3", (None, {"val_loss": 3.0})),
    ],
)
def test_parse_line_default_format(line, expected):
    parsed = parse_line(line, "val_loss")
    if expected is None or parsed is None:
        assert parsed == expected
        return
    assert parsed[0] == expected[0]
    assert parsed[1].keys() == expected[1].keys()
    for key, value in expected[1].items():
        assert parsed[1][key] == pytest.approx(value, nan_ok=True)


def test_parse_line_custom_formats():
    named = r"(?P<name>[\w/]+):\s*(?P<value>[-+\d.eE]+)"
    assert parse_line("loss: 1.5e-2 - val/loss: 0.5", "val/loss", named) == (None, {"loss": 0.015, "val/loss": 0.5})
    katib = r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}"  # Katib's metricsFormat: plain groups
    line = "{metricName: accuracy, metricValue: 0.9871};{metricName: loss, metricValue: 0.0412}"
    assert parse_line(line, "accuracy", katib) == (None, {"accuracy": 0.9871, "loss": 0.0412})
    assert parse_line(line, "accuracy") is None


def test_metric_format_is_checked_by_the_spec():
    with pytest.raises(SpecError, match=r"command\.metric_format: metric_format needs the groups"):
        experiment(command={"run": QUADRATIC, "metric_format": r"loss=(\d+)"})
    with pytest.raises(SpecError, match="not a regular expression"):
        experiment(command={"run": QUADRATIC, "metric_format": r"(?P<name>"})
    command = Command(run=["p", "--epochs", 3], env={"OMP_NUM_THREADS": 1})
    assert command.run == ["p", "--epochs", "3"] and command.env == {"OMP_NUM_THREADS": "1"}


# ---------------------------------------------------------------------------
# compiler checks


def test_compiler_checks_the_command(tmp_path):
    text = """name: c
command: ${python} train.py --lr=${lr} --wd=${weight_decay}
metric: {name: loss, mode: min}
budget: {samples: 2, max_steps: 3}
space:
  lr: {float: [0.001, 0.1]}
"""
    with pytest.raises(SpecError) as caught:
        compile_plan(load_experiment(write(tmp_path, text)))
    assert "exp.yaml:2: command.run: unknown placeholder ${weight_decay}" in str(caught.value)
    with pytest.raises(SpecError, match=r"command\.run: cannot split the command into words"):
        compile_plan(experiment(command="p 'unclosed"))
    with pytest.raises(SpecError, match=r"\$\{args\} becomes several arguments"):
        compile_plan(experiment(command=["p", "--all=${args}"]))
    for scheduler in ({"pbt": {"mutate": ["lr"]}}, "hyperband"):
        with pytest.raises(SpecError, match="scheduler: the .* a command cannot hand over a checkpoint.*asha"):
            compile_plan(experiment(scheduler=scheduler, budget={"samples": 4, "max_steps": 8}))
    conditional = {"opt": {"choice": {"adam": {"beta1": {"float": [0.8, 0.99]}}, "sgd": None}}}
    plan = compile_plan(experiment(command="p --b=${opt.beta1} ${args}", space=conditional))
    assert plan.trials == 4


def test_validate_checks_the_program(tmp_path):
    ok = write(
        tmp_path,
        f"name: c\ncommand: {QUADRATIC}\nmetric: {{name: val_loss, mode: min}}\n"
        "budget: {samples: 2, max_steps: 3}\nspace: {lr: {float: [0.001, 0.1]}}\n",
        "ok.yaml",
    )
    missing = write(tmp_path, ok.read_text().replace("quadratic.py", "nope.py"), "missing.yaml")
    not_on_path = write(tmp_path, ok.read_text().replace("${python}", "no-such-program-xyz"), "path.yaml")
    result = CliRunner().invoke(main, ["validate", str(ok), str(missing), str(not_on_path)])
    assert result.exit_code == 2
    assert f"ok: {ok}" in result.output
    assert "missing.yaml:2: command.run: no such script: tests/programs/nope.py" in result.output
    assert "path.yaml:2: command.run: program 'no-such-program-xyz' is not on PATH" in result.output


# ---------------------------------------------------------------------------
# running programs (no Ray)


def local(exp, max_steps=None):
    return LocalTrial(max_steps=max_steps or exp.budget.max_steps, metric=exp.metric.name, trial_id="t1")


def test_quadratic_program_reports_each_epoch():
    exp = experiment()
    train, kind = experiment_trainable(exp)
    trial = local(exp)
    train({"lr": 0.01, "dropout": 0.5, "epochs": 3}, trial)
    assert kind == "scalehp"
    assert [r["step"] for r in trial.reports] == [1, 2, 3]
    assert [r["val_loss"] for r in trial.reports] == pytest.approx([1.0, 0.5, 1 / 3], abs=1e-6)
    assert trial.reports[0]["val/acc"] == pytest.approx(0.5, abs=1e-6)


def test_params_in_the_environment_and_in_a_json_file(tmp_path):
    script = (
        "import json, os, sys; p = json.loads(os.environ['SCALEHP_PARAMS']); f = json.load(open(sys.argv[1]));"
        "print(json.dumps({'step': 0, 'loss': p['x'] + f['x'], 'id': len(os.environ['SCALEHP_TRIAL_ID']),"
        " 'budget': int(os.environ['SCALEHP_MAX_STEPS']), 'extra': float(os.environ['EXTRA'])}))"
    )
    exp = experiment(
        command={"run": ["${python}", "-c", script, "${args_json_file}"], "env": {"EXTRA": 2.5}, "cwd": str(tmp_path)},
        metric={"name": "loss", "mode": "min"},
        space={"x": 1.5},
    )
    trial = local(exp)
    experiment_trainable(exp)[0]({"x": 1.5}, trial)
    # a program that counts from 0 has its steps shifted by one
    assert trial.reports == [{"step": 1, "loss": 3.0, "id": 2.0, "budget": 3.0, "extra": 2.5}]


def test_failing_program_names_status_and_output():
    exp = experiment(space={"fail": True})
    with pytest.raises(CommandError) as caught:
        experiment_trainable(exp)[0]({"fail": True}, local(exp))
    text = str(caught.value)
    assert text.startswith("the command exited with status 3: ")
    assert "--fail=True" in text and "  | failing on purpose" in text


def test_program_without_the_metric_is_an_error():
    exp = experiment(metric={"name": "val_accuracy", "mode": "max"})
    with pytest.raises(MetricMissingError, match="without printing the metric 'val_accuracy'") as caught:
        experiment_trainable(exp)[0]({"lr": 0.01}, local(exp))
    assert "| epoch=3 val_loss=" in str(caught.value)
    with pytest.raises(CommandError, match="cannot start the command"):
        run_command(Command(run="./no/such/program"), {}, local(exp))


def test_repeated_steps_are_ignored_and_the_budget_ends_the_program(tmp_path):
    script = (
        "import time\nfor s in (1, 1, 2, 3, 4):\n    print(f'step={s} loss={s}', flush=True)\n"
        "print('done', flush=True)\ntime.sleep(60)\n"
    )
    program = tmp_path / "prog.py"
    program.write_text(script)
    lines: list[str] = []
    trial = LocalTrial(max_steps=3, metric="loss")
    started = time.monotonic()
    run_command(Command(run=["${python}", str(program)]), {}, trial, echo=lines.append)
    assert [r["step"] for r in trial.reports] == [1, 2, 3] and trial.reports[0]["loss"] == 1.0
    assert time.monotonic() - started < 10, "at budget.max_steps the program must be ended, not awaited"
    assert lines[:2] == ["step=1 loss=1", "step=1 loss=1"]


def test_ended_program_leaves_no_process_behind(tmp_path):
    """A program whose child holds its output open: the trial's end ends both."""
    trial = LocalTrial(max_steps=2, metric="loss")
    command = Command(run="${python} tests/programs/epochs.py --epochs=50 --sleep=0.01", env={"PID_DIR": str(tmp_path)})
    run_command(command, {}, trial)
    assert len(trial.reports) == 2
    pids = [int(p.read_text()) for p in tmp_path.iterdir()]
    assert len(pids) == 2
    assert _all_gone(pids), "the program or its child outlived the trial"


def _all_gone(pids: list[int], wait_s: float = 5.0) -> bool:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_try_and_plan_show_the_command(tmp_path):
    path = write(
        tmp_path,
        f"name: c\ncommand: {QUADRATIC}\nmetric: {{name: val_loss, mode: min}}\nbudget: {{samples: 2, max_steps: 5}}\n"
        "seed: 1\nspace: {lr: {float: [0.001, 0.1], log: true}, epochs: 5}\n",
    )
    result = CliRunner().invoke(main, ["try", str(path), "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "tests/programs/quadratic.py --lr=" in result.output and "--epochs=5" in result.output
    assert "  | epoch=1 val_loss=" in result.output
    assert "2 reports; last val_loss = " in result.output
    result = CliRunner().invoke(main, ["plan", str(path)])
    assert result.exit_code == 0, result.output
    assert f"command     {QUADRATIC}" in result.output
    assert "tests/programs/quadratic.py --lr=" in result.output


def test_try_shows_a_failing_command_in_one_line(tmp_path):
    path = write(
        tmp_path,
        f"name: c\ncommand: {QUADRATIC}\nmetric: {{name: val_loss, mode: min}}\nbudget: {{samples: 2, max_steps: 5}}\n"
        "space: {fail: true}\n",
    )
    result = CliRunner().invoke(main, ["try", str(path)])
    assert result.exit_code == 1
    assert "  | failing on purpose" in result.output
    assert "error: the command exited with status 3: " in result.output


def test_example_compiles_with_its_command():
    path = Path(__file__).resolve().parent.parent / "experiments" / "command_digits.yaml"
    exp = load_experiment(path)
    assert exp.command is not None and compile_plan(exp).scheduler == "asha"


def test_program_dies_with_the_process_that_runs_its_trial(tmp_path):
    """A Ray actor can be killed outright (no clean-up runs): its program and their children go too."""
    import signal
    import subprocess

    host = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from scalehp.command import run_command; from scalehp.spec import Command; "
            "from scalehp.trial import LocalTrial; "
            "run_command(Command(run='${python} tests/programs/epochs.py --epochs=600 --sleep=0.1', "
            f"env={{'PID_DIR': {str(tmp_path)!r}}}), {{}}, LocalTrial(max_steps=1000, metric='loss'))",
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.monotonic() + 20
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(p.read_text()) for p in tmp_path.iterdir()]
    assert len(pids) == 2
    host.send_signal(signal.SIGKILL)
    host.wait()
    assert _all_gone(pids), "the program outlived the process that ran its trial"


# ---------------------------------------------------------------------------
# command.step: what in a line is the step


def _program(tmp_path, body: str) -> list[str]:
    program = tmp_path / "prog.py"
    program.write_text("import sys\n" + body)
    return ["${python}", str(program)]


def test_a_step_field_counts_epochs_not_lines(tmp_path):
    """Katib's example style: a loss every few batches with the epoch on each line, a test
    line without it. Only a new epoch counts; each epoch's report holds the last values printed
    in it; at budget.max_steps the next epoch's first line ends the program."""
    run = _program(tmp_path, (
        "for epoch in (1, 2, 3):\n"
        "    for batch in range(4):\n"
        "        print(f'epoch={epoch} batch={batch} loss={10 * epoch + batch}', flush=True)\n"
        "    print(f'val_loss={1 / epoch}', flush=True)\n"
    ))
    trial = LocalTrial(max_steps=2, metric="val_loss")
    lines: list[str] = []
    run_command(Command(run=run, step="epoch"), {}, trial, echo=lines.append)
    assert trial.reports == [
        {"step": 1, "batch": 3.0, "loss": 13.0, "val_loss": 1.0},
        {"step": 2, "batch": 3.0, "loss": 23.0, "val_loss": 0.5},
    ]
    assert lines[-1] == "epoch=3 batch=0 loss=30", "the program is ended as epoch 3 begins"


def test_a_step_printed_at_its_end_with_its_metrics_is_reported_with_them(tmp_path):
    run = _program(tmp_path, (
        "for epoch in range(3):\n"
        "    print(f'loss={epoch + 0.5}')\n"
        "    print(f'{{\"epoch\": {epoch}, \"val_loss\": {1 / (epoch + 1)}}}')\n"
    ))
    trial = LocalTrial(max_steps=9, metric="val_loss")
    run_command(Command(run=run, step="epoch"), {}, trial)
    # epoch 0 is step 1; the last step is reported as the program ends
    assert [(r["step"], r["val_loss"]) for r in trial.reports] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]


def test_a_step_pattern_and_katibs_metrics_format(tmp_path):
    run = _program(tmp_path, (
        "for epoch in (1, 2):\n"
        "    for seen in (0, 640):\n"
        "        print(f'Train Epoch: {epoch} [{seen}/60000 (1%)]\\tloss={2.0 / epoch}')\n"
        "    print('{metricName: accuracy, metricValue: %.2f};{metricName: loss, metricValue: 0.1}' % (0.8 + epoch / 10))\n"
    ))
    command = Command(
        run=run, step=r"Train Epoch: (\d+)",
        metric_format=r"{metricName: ([\w|-]+), metricValue: ((-?\d+)(\.\d+)?)}",
    )
    trial = LocalTrial(max_steps=5, metric="accuracy")
    run_command(command, {}, trial)
    assert [(r["step"], r["accuracy"], r["loss"]) for r in trial.reports] == [(1, 0.9, 0.1), (2, 1.0, 0.1)]


def test_a_program_that_never_names_its_step_reports_once_at_its_end(tmp_path):
    run = _program(tmp_path, "for i in range(5):\n    print(f'loss={5 - i}')\n")
    trial = LocalTrial(max_steps=2, metric="loss")
    run_command(Command(run=run, step="epoch"), {}, trial)
    assert trial.reports == [{"step": 1, "loss": 1.0}]


def test_a_failing_program_does_not_report_the_step_it_was_in(tmp_path):
    run = _program(tmp_path, "print('epoch=1 loss=3')\nprint('epoch=2 loss=2')\nsys.exit(4)\n")
    trial = LocalTrial(max_steps=5, metric="loss")
    with pytest.raises(CommandError, match="status 4"):
        run_command(Command(run=run, step="epoch"), {}, trial)
    assert trial.reports == [{"step": 1, "loss": 3.0}]


@pytest.mark.parametrize(
    "step, says",
    [
        ("", "give a field name"),
        ("two words", "no field name"),
        (r"Epoch (\d+) of (\d+)", "exactly one group"),
        (r"Epoch (\d+", "not a regular expression"),
    ],
)
def test_a_bad_step_is_refused_at_its_key(step, says):
    with pytest.raises(SpecError, match=rf"command\.step.*{says}"):
        experiment(command={"run": QUADRATIC, "step": step})


# ---------------------------------------------------------------------------
# command.client: W&B and NNI programs unchanged


def test_a_wandb_sweep_program_runs_unchanged(tmp_path):
    """wandb.config holds the sweep's params over the program's defaults (nested ones merged); a
    log call with the metric is one step and carries what was logged since; nothing else is a step."""
    command = Command(run="${python} tests/programs/wandb_sweep.py", client="wandb")
    trial = LocalTrial(max_steps=9, metric="val_loss")
    run_command(command, {"lr": 0.01, "optimizer.momentum": 0.5}, trial)
    assert [r["step"] for r in trial.reports] == [1, 2, 3, 4, 5]
    expected = [(math.log10(0.01) + 3) ** 2 + 0.2 / epoch + 0.5 for epoch in range(1, 6)]
    assert [r["val_loss"] for r in trial.reports] == pytest.approx(expected)
    assert trial.reports[0]["train/loss"] == 12.0 and trial.reports[0]["epoch"] == 1.0


def test_a_wandb_program_is_ended_at_the_budget(tmp_path):
    command = Command(run="${python} tests/programs/wandb_sweep.py", client="wandb")
    trial = LocalTrial(max_steps=2, metric="val_loss")
    run_command(command, {"lr": 0.01}, trial)
    assert [r["step"] for r in trial.reports] == [1, 2]


def test_an_nni_trial_runs_unchanged_and_its_final_result_is_the_last_steps(tmp_path):
    command = Command(run="${python} tests/programs/nni_trial.py", client="nni")
    trial = LocalTrial(max_steps=9, metric="default")
    run_command(command, {"lr": 0.3, "layer": "Conv", "layer.kernel_size": 3}, trial, branches=["layer"])
    values = [1 - 0.3 / epoch + 0.03 for epoch in (1, 2, 3)]
    assert [r["step"] for r in trial.reports] == [1, 2, 3]
    assert [r["default"] for r in trial.reports] == pytest.approx([*values[:2], values[2] + 0.005])
    assert trial.reports[-1]["test_loss"] == 0.25


def test_a_client_stand_in_is_first_on_the_path_even_where_the_real_one_is_installed(tmp_path):
    fake = tmp_path / "site" / "wandb"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise SystemExit('the real wandb was imported')\n")
    command = Command(run="${python} tests/programs/wandb_sweep.py", client="wandb", env={"PYTHONPATH": str(tmp_path / "site")})
    trial = LocalTrial(max_steps=1, metric="val_loss")
    run_command(command, {}, trial)
    assert trial.reports[0]["step"] == 1


def test_the_nni_stand_in_hands_hyperbands_trial_budget(tmp_path):
    run = _program(tmp_path, "import nni\nnni.report_final_result(nni.get_next_parameter()['TRIAL_BUDGET'])\n")
    trial = LocalTrial(max_steps=3, metric="default")
    run_command(Command(run=run, client="nni", env={"SCALEHP_NNI_TRIAL_BUDGET": "60"}), {}, trial)
    assert trial.reports == [{"step": 1, "default": 60.0}]
