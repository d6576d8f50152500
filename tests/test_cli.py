from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from scalehp.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "experiments/digits_asha.yaml"


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_validate_ok_and_plan():
    result = cli("validate", EXAMPLE)
    assert result.exit_code == 0 and "ok:" in result.output
    result = cli("plan", EXAMPLE)
    assert result.exit_code == 0
    for words in ("digits-mlp-asha", "hyperopt TPE", "asha: grace 2 steps", "rungs", "640 at most"):
        assert words in result.output
    data = json.loads(cli("plan", EXAMPLE, "--format", "json").output)
    assert data["trials"] == 32 and [r["step"] for r in data["rungs"]] == [2, 6, 18, 20]


def test_malformed_file_exit_2_one_line_no_ray_no_results(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(EXAMPLE).read_text().replace("grace_steps: 2", "grace_steps: 50"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a subprocess, to see exactly what a user sees, and that Ray was never imported
    code = (
        "import sys; from scalehp.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print('ray imported' if 'ray' in sys.modules else 'no ray', file=sys.stderr); raise\n"
    )
    for command in ("validate", "plan", "run"):
        process = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                command,
                str(bad),
                *(["--results", str(tmp_path / "res")] if command == "run" else []),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert process.returncode == 2, process.stderr
        lines = process.stderr.strip().splitlines()
        assert lines[0].startswith(f"error: {bad}:") and "scheduler.asha.grace_steps" in lines[0]
        assert lines[-1] == "no ray"
        assert len(lines) == 2
    assert not (tmp_path / "res").exists()


def test_unknown_key_suggests(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(EXAMPLE).read_text().replace("concurrency:", "concurency:"))
    result = CliRunner().invoke(main, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "concurency: unknown key 'concurency' (did you mean 'concurrency'?)" in result.output


def test_schema_is_json():
    schema = json.loads(cli("schema").output)
    assert "space" in schema["properties"]


def test_try_runs_one_config_without_ray():
    result = cli("try", EXAMPLE, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "config  lr=" in result.output and "step    2" in result.output


def test_results_commands_on_missing_root(tmp_path):
    result = CliRunner().invoke(main, ["results", "ls", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no such folder" in result.output
