"""Resume trusts only what this user's key signed; checkpoints load as data, never as code."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import IntegrityError, RunError
from scalehp.runner import resume, run, write_plan
from scalehp.runner.integrity import KEY_ENV, MANIFEST, Manifest, key_file, load_key
from scalehp.spec import load_experiment
from scalehp.trial import LocalTrial, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent


class Payload:
    """A pickle that, when loaded, creates the file it names: what an attacker would plant."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def experiment(tmp_path, **changes):
    data = {
        "name": "signed",
        "trainable": "tests.trainables:quadratic",
        "metric": {"name": "loss", "mode": "min"},
        "budget": {"samples": 2, "max_steps": 4},
        "seed": 0,
        "space": {"x": {"float": [0.0, 1.0]}},
        "results": str(tmp_path / "results"),
    }
    data.update(changes)
    return load_experiment(data)


def files_of(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` and its bytes (None for a folder or link): to see nothing is written."""
    found = {}
    for parent, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = Path(parent, name)
            plain = path.is_file() and not path.is_symlink()
            found[str(path.relative_to(folder))] = path.read_bytes() if plain else None
    return found


# ---------------------------------------------------------------------------
# The key


def test_key_is_made_once_readable_by_its_owner_only(tmp_path, monkeypatch):
    path = tmp_path / "config" / "scalehp" / "key"
    monkeypatch.setenv(KEY_ENV, str(path))
    key = load_key(create=True)
    assert len(key) == 32 and path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_key() == key and load_key(create=True) == key  # made once, then read
    assert [p.name for p in path.parent.iterdir()] == ["key"]  # no temporary file left


def test_key_lives_in_the_users_config_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert key_file() == tmp_path / "xdg" / "scalehp" / "key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    assert key_file() == tmp_path / "home" / ".config" / "scalehp" / "key"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    load_key(create=True)
    assert (tmp_path / "home" / ".config" / "scalehp" / "key").is_file()


def _symlink(path: Path) -> None:
    real = path.with_name("real")
    real.write_bytes(b"k" * 32)
    real.chmod(0o600)
    path.symlink_to(real)


def _folder(path: Path) -> None:
    path.mkdir()


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _readable(path: Path) -> None:
    path.write_bytes(b"k" * 32)
    path.chmod(0o640)


def _short(path: Path) -> None:
    path.write_bytes(b"k" * 31)
    path.chmod(0o600)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_symlink, "is a symbolic link"),
        (_folder, "is not a regular file"),
        (_fifo, "is not a regular file"),
        (_readable, "can be read by other users (mode 640)"),
        (_short, "is 31 bytes, not 32"),
    ],
    ids=["symlink", "folder", "fifo", "group-readable", "wrong-size"],
)
def test_an_unsafe_key_file_is_refused_in_one_line(tmp_path, monkeypatch, make, words):
    path = tmp_path / "key"
    make(path)
    monkeypatch.setenv(KEY_ENV, str(path))
    before = files_of(tmp_path)
    for create in (False, True):
        with pytest.raises(IntegrityError) as info:
            load_key(create=create)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and words in message and "\n" not in message
    assert files_of(tmp_path) == before  # not replaced, not repaired


def test_run_refuses_an_unsafe_key_before_ray_and_writes_nothing(tmp_path, monkeypatch):
    key = tmp_path / "key"
    _readable(key)
    monkeypatch.setenv(KEY_ENV, str(key))
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        "name: signed\ntrainable: tests.trainables:quadratic\nmetric: {name: loss, mode: min}\n"
        f"budget: {{samples: 1, max_steps: 2}}\nspace: {{x: 0.5}}\nresults: {tmp_path / 'results'}\n"
    )
    result = CliRunner().invoke(main, ["run", str(exp), "--quiet"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {key}: the scalehp key can be read by other users (mode 640): "
        "chmod 600 it, or delete it if someone may have read it"
    ]
    assert not (tmp_path / "results").exists() and key.read_bytes() == b"k" * 32


# ---------------------------------------------------------------------------
# A signed run folder, made without Ray (Ray's files here are what an attacker would plant)


STATE = "experiment_state-2026-01-01_00-00-00.json"
CHECKPOINT = "t_00000/checkpoint_000001"


@pytest.fixture
def signed(tmp_path):
    """A run folder as a run leaves it, signed; its tuner.pkl would create ``pwned`` if unpickled."""
    run_dir = tmp_path / "results" / "signed" / "20260101-000000-abcd"
    write_plan(run_dir, compile_plan(experiment(tmp_path)), run_dir.name)
    ray = run_dir / "ray"
    (ray / CHECKPOINT).mkdir(parents=True)
    (ray / "tuner.pkl").write_bytes(pickle.dumps(Payload(tmp_path / "pwned")))
    (ray / STATE).write_text('{"trial_data": []}')
    save_checkpoint({"step": 1}, ray / CHECKPOINT)
    manifest = Manifest.start(run_dir, load_key(create=True), run_dir.name)
    manifest.vouch_file("tuner.pkl")
    manifest.vouch_file(STATE)
    manifest.vouch_checkpoint(ray / CHECKPOINT)
    manifest.save()
    return run_dir


def _edit_plan(run_dir):
    plan = json.loads((run_dir / "plan.json").read_text())
    plan["experiment"]["budget"]["samples"] = 3
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=2))


def _plan_newline(run_dir):
    with open(run_dir / "plan.json", "a") as handle:
        handle.write("\n")


def _tuner(run_dir):
    (run_dir / "ray" / "tuner.pkl").write_bytes(pickle.dumps(Payload(run_dir.parent / "pwned-too")))


def _new_state(run_dir):
    (run_dir / "ray" / "experiment_state-2099-01-01_00-00-00.json").write_text('{"trial_data": []}')


def _callback_state(run_dir):
    (run_dir / "ray" / "callback-states-2026-01-01_00-00-00.pkl").write_bytes(pickle.dumps({}))


def _trial_pickle(run_dir):
    (run_dir / "ray" / "t_00000" / "error.pkl").write_bytes(pickle.dumps(ValueError()))


def _checkpoint(run_dir):
    (run_dir / "ray" / CHECKPOINT / "state.pt").write_bytes(pickle.dumps({"step": 2}))


def _checkpoint_extra(run_dir):
    (run_dir / "ray" / CHECKPOINT / "extra.pkl").write_bytes(pickle.dumps({}))


def _link(run_dir):
    tuner = run_dir / "ray" / "tuner.pkl"
    copy = run_dir.parent / "tuner-copy.pkl"
    shutil.copy(tuner, copy)
    tuner.unlink()
    tuner.symlink_to(copy)


def _ray_link(run_dir):
    (run_dir / "ray").rename(run_dir.parent / "elsewhere")
    (run_dir / "ray").symlink_to(run_dir.parent / "elsewhere")


def _odd_name(run_dir):
    (run_dir / "ray" / "x\nerror: all is well\x1b[2J.pkl").write_bytes(b"")


def _no_manifest(run_dir):
    (run_dir / MANIFEST).unlink()


def _vouch_in_manifest(run_dir):
    data = json.loads((run_dir / MANIFEST).read_text())
    _tuner(run_dir)
    data["files"]["tuner.pkl"].append(hashlib.sha256((run_dir / "ray" / "tuner.pkl").read_bytes()).hexdigest())
    (run_dir / MANIFEST).write_text(json.dumps(data))


def _resign(run_dir, *, claim_our_key=False):
    """Someone who can write the folder signs their own version with their own key."""
    _tuner(run_dir)
    data = json.loads((run_dir / MANIFEST).read_text())
    theirs = Manifest(run_dir, b"x" * 32, {k: v for k, v in data.items() if k != "mac"})
    theirs.data["plan"] = theirs._mac((run_dir / "plan.json").read_bytes())
    if not claim_our_key:
        theirs.data["key"] = "0123456789abcdef"
    theirs.vouch_file("tuner.pkl")
    theirs.save()


def _resign_claiming_our_key(run_dir):
    _resign(run_dir, claim_our_key=True)


def _damaged_manifest(run_dir):
    (run_dir / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)


TAMPERING = [
    (_edit_plan, "plan.json: changed after the run started"),
    (_plan_newline, "plan.json: changed after the run started"),
    (_tuner, "tuner.pkl: changed after scalehp signed it"),
    (_new_state, "experiment_state-2099-01-01_00-00-00.json: not written by this run"),
    (_callback_state, "callback-states-2026-01-01_00-00-00.pkl: not written by this run"),
    (_trial_pickle, "error.pkl: not written by this run"),
    (_checkpoint, "checkpoint_000001: checkpoint changed after scalehp signed it"),
    (_checkpoint_extra, "checkpoint_000001: checkpoint changed after scalehp signed it"),
    (_link, "tuner.pkl: a link or special file in Ray's state"),
    (_ray_link, "/ray: a link, not Ray's own folder"),
    (_odd_name, "ray/x\\nerror: all is well\\x1b[2J.pkl': not written by this run"),
    (_no_manifest, "integrity.json: missing, so Ray's state in this folder is not signed"),
    (_vouch_in_manifest, "integrity.json: changed after scalehp signed it"),
    (_resign, "integrity.json: signed with another key (id '0123456789abcdef'"),
    (_resign_claiming_our_key, "integrity.json: changed after scalehp signed it"),
    (_damaged_manifest, "integrity.json: damaged"),
]


@pytest.mark.parametrize(("tamper", "words"), TAMPERING, ids=[t.__name__.strip("_") for t, _ in TAMPERING])
def test_resume_refuses_a_tampered_folder_in_one_line_before_ray(signed, tamper, words):
    tamper(signed)
    before = files_of(signed.parent.parent.parent)
    result = CliRunner().invoke(main, ["resume", str(signed), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.output
    assert "start the run again" in lines[0] or "resume" in lines[0]  # what to do
    assert not list(signed.parent.parent.parent.rglob("pwned*")), "nothing was unpickled"
    assert files_of(signed.parent.parent.parent) == before, "nothing was written"


def test_a_state_file_stays_signed_in_its_newest_versions_and_the_one_in_ray(tmp_path):
    """Ray copies a snapshot into ray/ after scalehp signs it, and may lag: a driver killed at
    any moment leaves there a version that is still signed."""
    run_dir = tmp_path / "run"
    (run_dir / "ray").mkdir(parents=True)
    (run_dir / "plan.json").write_text("{}")
    manifest = Manifest.start(run_dir, load_key(create=True), "run")
    staging = tmp_path / "staging"
    staging.mkdir()
    state = run_dir / "ray" / STATE

    def snapshot(version, copied):
        (staging / STATE).write_text(f"v{version}")
        manifest.vouch_snapshot(staging)
        if copied:
            shutil.copy(staging / STATE, state)

    snapshot(0, copied=True)
    for version in range(1, 5):
        snapshot(version, copied=False)  # the copy of v0 is all ray/ has: v0 stays signed
    state.write_text("v0")
    Manifest.verify(run_dir)
    state.write_text("v1")  # neither in ray/ at signing nor among the newest 3
    with pytest.raises(IntegrityError, match="changed after scalehp signed it"):
        Manifest.verify(run_dir)
    state.write_text("v4")
    snapshot(5, copied=False)
    for version in (3, 4, 5):
        state.write_text(f"v{version}")
        Manifest.verify(run_dir)
    for version in (0, 2):
        state.write_text(f"v{version}")
        with pytest.raises(IntegrityError):
            Manifest.verify(run_dir)


def test_resume_without_the_key_says_where_to_put_it_and_makes_none(signed, tmp_path, monkeypatch):
    missing = tmp_path / "elsewhere" / "key"
    monkeypatch.setenv(KEY_ENV, str(missing))
    result = CliRunner().invoke(main, ["resume", str(signed), "--quiet"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: {missing}: no scalehp key here, and runs are resumed only with the key that signed them: "
        f"copy the key file of the machine that started the run to {missing} (mode 600), or set {KEY_ENV} to it"
    )
    assert not missing.parent.exists()


def test_a_refused_resume_never_imports_ray(signed):
    _tuner(signed)
    code = (
        "import sys; from scalehp.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print('ray imported' if 'ray' in sys.modules else 'no ray', file=sys.stderr); raise\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code, "resume", str(signed), "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert lines[-1] == "no ray" and len(lines) == 2 and "tuner.pkl: changed after scalehp signed it" in lines[0]


# ---------------------------------------------------------------------------
# Checkpoints: data only


def test_a_checkpoint_that_would_run_code_is_refused_not_run(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    torch = pytest.importorskip("torch")
    for write, named in (
        (lambda path: torch.save({"x": Payload(tmp_path / "pwned")}, path), "'builtins.getattr', 'pathlib.Path'"),
        (lambda path: path.write_bytes(pickle.dumps(Payload(tmp_path / "pwned"), protocol=2)), ""),
    ):
        write(folder / "state.pt")
        with pytest.raises(RunError) as info:
            load_checkpoint(folder)
        message = str(info.value)
        assert message.startswith(f"{folder / 'state.pt'}: not loaded: a checkpoint holds only tensors")
        assert named in message and "\n" not in message
        assert not (tmp_path / "pwned").exists()


def test_saving_a_checkpoint_that_is_not_data_fails_at_the_report(tmp_path):
    np = pytest.importorskip("numpy")
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"trial.report: a checkpoint holds only .*'numpy.ndarray'"):
        save_checkpoint({"step": 1, "w": np.zeros(3)}, tmp_path)
    assert not (tmp_path / "state.pt").exists()
    assert save_checkpoint({"step": 1, "w": np.zeros(3).tolist()}, tmp_path).is_file()
    trial = LocalTrial(max_steps=2, metric="loss")  # what scalehp try runs: refused there too
    with pytest.raises(ValueError, match=r"trial.report: a checkpoint holds only .*'numpy.ndarray'"):
        trial.report(1, {"loss": 1.0}, checkpoint={"w": np.zeros(3)})


def test_pytorch_state_loads_as_data_and_restores_every_generator(tmp_path):
    torch = pytest.importorskip("torch")
    import random

    import numpy as np

    from scalehp import pytorch

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    pytorch.seed_everything(5)
    save_checkpoint(pytorch.state(7, model, optimizer, note="plain extra"), tmp_path)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    pytorch.seed_everything(99)
    state = load_checkpoint(tmp_path)
    assert pytorch.load_state(state, model, optimizer) == 7 and state["note"] == "plain extra"
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_without_torch_checkpoints_are_plain_data_too(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    state = {"step": 2, "w": [1.5, 2.5], "name": "a", "pair": (1, 2)}
    save_checkpoint(state, tmp_path)
    assert load_checkpoint(tmp_path) == state
    with pytest.raises(ValueError, match="trial.report: a checkpoint holds only .*'pathlib.Path.touch'"):
        save_checkpoint({"x": Payload(tmp_path / "pwned")}, tmp_path / "other")
    (tmp_path / "state.pt").write_bytes(pickle.dumps(Payload(tmp_path / "pwned")))
    with pytest.raises(RunError, match="not loaded: a checkpoint holds only .*'pathlib"):
        load_checkpoint(tmp_path)
    assert not (tmp_path / "pwned").exists()


# ---------------------------------------------------------------------------
# On Ray


@pytest.mark.ray
@pytest.mark.slow
def test_a_real_run_is_signed_resumes_and_refuses_changes(ray_local, tmp_path):
    summary = run(experiment(tmp_path))
    run_dir = summary.path
    key = load_key()
    for path in run_dir.rglob("*"):  # the key never lands in the run folder (nor in Ray's pickles)
        assert not path.is_file() or key not in path.read_bytes(), path
    signed = json.loads((run_dir / MANIFEST).read_text())
    assert "tuner.pkl" in signed["files"] and any(name.startswith("experiment_state-") for name in signed["files"])
    assert len(signed["checkpoints"]) >= 2

    # a checkpoint folder no snapshot refers to (as a killed driver leaves one): removed, never loaded
    trial = next(p for p in (run_dir / "ray").iterdir() if p.is_dir())
    planted = trial / "checkpoint_000099"
    planted.mkdir()
    (planted / "state.pt").write_bytes(pickle.dumps(Payload(tmp_path / "pwned")))
    again = resume(run_dir)
    assert again.trials == summary.trials and not planted.exists() and not (tmp_path / "pwned").exists()
    Manifest.verify(run_dir)  # what the resumed run wrote is signed too

    state = next((run_dir / "ray").glob("experiment_state-*.json"))
    state.write_bytes(state.read_bytes() + b" ")
    with pytest.raises(IntegrityError, match=f"{state.name}: changed after scalehp signed it"):
        resume(run_dir)
