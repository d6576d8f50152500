from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainables are imported as 'tests.trainables:…' from the repo root, as users run scalehp."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="session")
def ray_local():
    """One fresh local Ray for the session's integration tests (stopped by its own shutdown)."""
    import ray

    os.chdir(ROOT)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
