#!/usr/bin/env python3
"""Set up and run scalehp from nothing but Python (stdlib only).

    python3 scripts/dev.py demo     # venv + install + tune the digits MLP on embedded Ray
    python3 scripts/dev.py test     # venv + install + the whole test suite
    python3 scripts/dev.py test -m "not slow"   # extra arguments go to pytest

The virtual environment lives in .venv and is reinstalled only when pyproject.toml or
requirements.lock changes. Installs are reproducible: torch is installed first as torch==2.13.0
(so no range pulls another build), then every other package at the exact version and hash in
requirements.lock (written by scripts/lock.py; scripts/newest.py tries the newest versions the
ranges in pyproject.toml allow), then scalehp itself without dependencies.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".scalehp-installed"
LOCK = ROOT / "requirements.lock"
TORCH = "torch==2.13.0"


def sh(*args: str | Path, **kwargs) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT, **kwargs)


def setup() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes() + TORCH.encode()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"+ creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    sh(*pip, TORCH)
    sh(*pip, "--require-hashes", "--no-deps", "-r", LOCK.name)
    sh(*pip, "--no-deps", "-e", ".")
    STAMP.write_text(wanted)


def demo() -> None:
    setup()
    scalehp = BIN / "scalehp"
    sh(scalehp, "plan", "experiments/digits_asha.yaml")
    sh(scalehp, "run", "experiments/digits_asha.yaml")
    sh(scalehp, "results", "ls", "results/digits-mlp-asha")


def browser() -> None:
    """Chromium renders the HTML report in tests/test_report.py (which skips without it).

    Installed only where that is possible without asking: as root with Debian's apt-get.
    """
    if shutil.which("chromium") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    done = subprocess.run(
        "apt-get update -qq && apt-get install -y -qq chromium", shell=True, cwd=ROOT, capture_output=True
    )
    if done.returncode:
        print("+ chromium not installed; the browser test will skip", flush=True)


def test(args: list[str]) -> int:
    setup()
    browser()
    return subprocess.run([str(PYTHON), "-m", "pytest", *args], cwd=ROOT).returncode


def main() -> int:
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("help", [])
    if command == "setup":
        setup()
    elif command == "demo":
        demo()
    elif command == "test":
        return test(args)
    else:
        print(__doc__)
        return 0 if command in ("help", "-h", "--help") else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
