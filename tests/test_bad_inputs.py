"""The bad-input suite: malformed and hostile experiment files.

Each file in tests/bad_inputs/ starts with ``# expect: <key path>``. Every one must give
exit code 2 and one line naming the file and that key path, for ``validate`` and ``run``
alike; Ray is never imported and nothing is written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "tests" / "bad_inputs").glob("*.yaml"))

_SCRIPT = r"""
import json, sys
from click.testing import CliRunner
from scalehp.cli import main
out = {}
for path in sys.argv[2:]:
    for command in ("validate", "run"):
        args = [command, path] + (["--results", sys.argv[1]] if command == "run" else [])
        result = CliRunner().invoke(main, args)
        out[f"{command} {path}"] = [result.exit_code, result.output]
out["ray imported"] = "ray" in sys.modules
print(json.dumps(out))
"""


def test_there_are_at_least_40():
    assert len(FILES) >= 40


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    results = tmp_path_factory.mktemp("results") / "root"
    process = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(results), *map(str, FILES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    data = json.loads(process.stdout.strip().splitlines()[-1])
    data["results exist"] = results.exists()
    return data


def test_ray_never_starts_and_nothing_is_written(outcomes):
    assert outcomes["ray imported"] is False
    assert outcomes["results exist"] is False


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_bad_input(outcomes, path):
    expected = path.read_text().splitlines()[0].removeprefix("# expect:").strip()
    for command in ("validate", "run"):
        code, output = outcomes[f"{command} {path}"]
        lines = output.strip().splitlines()
        assert code == 2, (command, output)
        assert len(lines) == 1, (command, output)
        line = lines[0]
        assert line.startswith(f"error: {path}:"), line
        if expected:
            named = line.split(": ")[2]  # error: <file>:<line>: <key path>: <message>
            assert named == expected or named.startswith(expected + "."), line
