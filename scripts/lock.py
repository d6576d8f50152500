#!/usr/bin/env python3
"""Write requirements.lock: the exact versions (and hashes) that scripts/dev.py and CI install.

    python3 scripts/lock.py            # resolve pyproject.toml's ranges (with the test extra) anew
    python3 scripts/lock.py --check    # exit 1 if requirements.lock is not what pyproject.toml resolves to now

Resolved by uv (installed on first use into .tools/, not into the project's venv) for CPython
3.11 on Linux x86_64, with torch held at the CPU build that scripts/dev.py installs first
(``torch==2.13.0``); torch itself is left out of the lock, its dependencies are in it. Run it
after changing a range in pyproject.toml, then `python3 scripts/newest.py` to see what the
newest allowed versions break before they reach users.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TOOLS = ROOT / ".tools"
UV = TOOLS / "bin" / "uv"
UV_VERSION = "uv==0.13.9"
TORCH = "torch==2.13.0+cpu"  # the build scripts/dev.py installs (torch==2.13.0 from this machine's wheel)
WHEELS = "/opt/wheels"  # where that wheel lies on this kind of machine; PyPI's CPU index elsewhere


def uv() -> Path:
    if not UV.exists():
        venv.EnvBuilder(with_pip=True).create(TOOLS)
        subprocess.run([TOOLS / "bin" / "python", "-m", "pip", "install", "-q", UV_VERSION], check=True)
    return UV


def resolve(output: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        constraint = Path(tmp) / "torch.txt"
        constraint.write_text(TORCH + "\n")
        links = ["--find-links", WHEELS] if Path(WHEELS).is_dir() else ["--extra-index-url", "https://download.pytorch.org/whl/cpu"]
        subprocess.run(
            [uv(), "pip", "compile", "pyproject.toml", "--extra", "test", "--quiet",
             "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28",
             *links, "--constraint", constraint, "--no-emit-package", "torch",
             "--generate-hashes", "--no-header", "--no-emit-find-links", "--output-file", output],
            check=True, cwd=ROOT,
        )  # fmt: skip
        text = output.read_text().replace(str(constraint), "torch==2.13.0 (scripts/lock.py)")
        output.write_text("# Written by scripts/lock.py from pyproject.toml; do not edit by hand.\n" + text)


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = Path(tmp) / "requirements.lock"
            resolve(fresh)
            same = fresh.read_text() == LOCK.read_text()
        print("requirements.lock is current" if same else "requirements.lock differs from what pyproject.toml resolves to")
        return 0 if same else 1
    resolve(LOCK)
    print(f"wrote {LOCK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
