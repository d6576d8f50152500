#!/usr/bin/env python3
"""Try the newest versions that pyproject.toml's ranges allow, and report what breaks.

    python3 scripts/newest.py                  # whole test suite against the newest allowed packages
    python3 scripts/newest.py -m "not slow"    # extra arguments go to pytest

Not run by CI (CI installs requirements.lock). It builds a throwaway virtual environment in
.venv-newest (torch==2.13.0 first, as scripts/dev.py does, then ``pip install --upgrade`` of the
project with its test extra), lists every package whose newest allowed version differs from
requirements.lock, and runs the tests there. A failure here is a release that would break a
user's fresh ``pip install scalehp``: fix the code, or bound the range in pyproject.toml, then
refresh the lock with scripts/lock.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-newest"
PYTHON = VENV / "bin" / "python"
TORCH = "torch==2.13.0"


def locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def installed() -> dict[str, str]:
    out = subprocess.run([PYTHON, "-m", "pip", "list", "--format", "json"], check=True, capture_output=True, text=True)
    return {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out.stdout)}


def main() -> int:
    if VENV.exists():
        shutil.rmtree(VENV)
    venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, TORCH], check=True, cwd=ROOT)
    subprocess.run([*pip, "--upgrade", "--upgrade-strategy", "eager", "-e", ".[test]"], check=True, cwd=ROOT)
    lock, now = locked(), installed()
    changed = sorted(name for name in lock if name in now and now[name] != lock[name])
    print(f"{len(changed)} packages newer than requirements.lock:")
    for name in changed:
        print(f"  {name:28} {lock[name]:>14} -> {now[name]}")
    tests = subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *sys.argv[1:]], cwd=ROOT)
    verdict = "pass" if tests.returncode == 0 else "FAIL"
    print(f"newest allowed versions: tests {verdict}")
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
