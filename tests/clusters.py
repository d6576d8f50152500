"""A real multi-node Ray cluster on this machine for a test module: ``cluster/local.py`` starts a
head (no CPU) and worker nodes, each its own raylet, with token authentication; they are stopped
by PID at the end whatever happens."""

from __future__ import annotations

import importlib.util
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


def local_cluster_module() -> Any:
    spec = importlib.util.spec_from_file_location("scalehp_local_cluster", ROOT / "cluster" / "local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def local_cluster(workers: int, **options: Any) -> Iterator[dict]:
    """Start the cluster (``options``: ``cluster/local.py``'s ``start`` keywords), yield its state
    plus ``folder``, ``local`` (the module) and ``token``; stop every node it started."""
    local = local_cluster_module()
    folder = Path(tempfile.mkdtemp(prefix="shp-", dir="/tmp"))  # short: Ray's socket paths have a limit
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    try:
        for attempt in (1, 2):  # a loaded 2-core machine can make a node miss Ray's start-up deadline
            try:
                state = local.start(
                    folder, workers, head_cpus=0, first_port=random.randrange(31000, 38000, 100), **options
                )
                break
            except SystemExit:
                local.stop(folder)  # only the process groups this attempt started
                if attempt == 2:
                    raise
                folder = Path(tempfile.mkdtemp(prefix="shp-", dir="/tmp"))
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ["RAY_AUTH_TOKEN_PATH"] = state["token_path"]
        yield {**state, "folder": folder, "local": local, "token": Path(state["token_path"]).read_text().strip()}
    finally:
        local.stop(folder)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for node in state["nodes"]:  # every process group we started is gone
        with pytest.raises(ProcessLookupError):
            os.killpg(node["pid"], 0)
