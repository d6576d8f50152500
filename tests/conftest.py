from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainables are imported as 'tests.trainables:…' from the repo root, as users run scalehp."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(autouse=True, scope="session")
def _scalehp_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Runs sign their folders with a key of this test session (made on first use), never the
    user's own ~/.config/scalehp/key. Set before any other fixture, so subprocesses and the
    Ray clusters that tests start (and the jobs those run) inherit it."""
    previous = os.environ.get("SCALEHP_KEY_FILE")
    os.environ["SCALEHP_KEY_FILE"] = str(tmp_path_factory.getbasetemp() / "scalehp-key")
    yield
    if previous is None:
        os.environ.pop("SCALEHP_KEY_FILE", None)
    else:
        os.environ["SCALEHP_KEY_FILE"] = previous


@pytest.fixture(scope="module")
def ray_local():
    """A fresh local Ray for one test module (stopped by its own shutdown): no module
    inherits actors, workers or state that another module left in a shared instance."""
    import ray

    os.chdir(ROOT)
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _fresh_ray_token_cache():
    """Ray caches its auth token per process; tests that point HOME or RAY_AUTH_* elsewhere
    must not leave that token behind for the next test's Ray."""
    yield
    raylet = sys.modules.get("ray._raylet")
    loader = getattr(raylet, "AuthenticationTokenLoader", None)
    if loader is not None:
        loader.instance().reset_cache()


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
