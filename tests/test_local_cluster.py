"""cluster/local.py's network exposure: what its nodes listen on, and who may talk to it.

A head and one worker, started for real and stopped by PID; every listening socket of every
process they started is checked.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

from tests.clusters import local_cluster_module

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


def _listening(pgid: int) -> list[tuple[str, int, str]]:
    """``(address, port, process)`` of every listening TCP socket of the process group."""
    import psutil
    import ray  # noqa: F401 - puts Ray's own psutil on the path

    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if os.getpgid(process.pid) != pgid:
                continue
            for conn in process.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.append((conn.laddr.ip, conn.laddr.port, process.info["name"]))
        except (psutil.Error, ProcessLookupError):
            continue
    return found


def _loopback(address: str) -> bool:
    return address.startswith(("127.", "::ffff:127.")) or address == "::1"


def test_every_port_of_every_node_listens_on_loopback_only_and_metrics_are_off():
    local = local_cluster_module()
    folder = Path(tempfile.mkdtemp(prefix="shp-", dir="/tmp"))
    try:
        state = local.start(folder, 1, head_cpus=0, worker_cpus=1, first_port=random.randrange(31000, 38000, 100))
        assert [node["role"] for node in state["nodes"]] == ["head", "worker-1"]
        for node in state["nodes"]:
            low, high = node["ports"]
            listening = _listening(node["pid"])
            assert len(listening) >= (6 if node["role"] == "head" else 4), listening  # GCS, raylet, agents, …
            # nothing on 0.0.0.0, ::, or the machine's routable address
            assert [s for s in listening if not _loopback(s[0])] == [], node["role"]
            # every port is one local.py chose (none of Ray's fixed defaults, which collide)
            assert all(low <= port <= high for _, port, _ in listening), (node["role"], listening)
            # Ray's Prometheus exporter (no token) is never opened
            metrics_port = (low + 2 if node["role"] == "head" else low) + 5  # --metrics-export-port
            assert metrics_port not in {port for _, port, _ in listening}, node["role"]
    finally:
        local.stop(folder)
