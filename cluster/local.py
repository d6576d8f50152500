#!/usr/bin/env python3
"""A multi-node Ray cluster on one machine: a head and N workers, each its own raylet.

    python cluster/local.py start --dir /tmp/shp --workers 2      # prints the Jobs address
    python cluster/local.py stop  --dir /tmp/shp                   # kills only what start started

Every node uses explicit ports picked at start; token authentication is on
(``RAY_AUTH_MODE=token``) with the cluster's own token in ``<dir>/auth_token`` (0600), so a
client needs ``RAY_AUTH_TOKEN_PATH=<dir>/auth_token`` to talk to it. The dashboard (and the
Jobs API) is bound to 127.0.0.1. Metrics collection is off: Ray serves its Prometheus metrics
on every interface and without the token, so that port is never opened. What Ray 2.60 cannot
bind to 127.0.0.1 (``ray start`` turns ``--node-ip-address=127.0.0.1`` into the machine's
routable address, and its C++ servers listen on every interface) answers only with the token:
the GCS, raylets, object managers and agents. Each node is one ``ray start --block`` process in
its own process group; ``<dir>/cluster.json`` records their PIDs and ``stop`` signals exactly those
process groups. It never runs ``ray stop`` (which would kill every Ray on the machine).

Workers can carry custom resources (``--worker-resources '{"slot": 1}'``) to test placement.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
STATE = "cluster.json"
TOKEN = "auth_token"
_PORTS_PER_NODE = 8  # fixed ports per node (see _node_args)
_WORKER_PORTS = 24  # worker processes' port range per node


# Every Ray process of the cluster takes this machine for a one-node Ray (the switch Ray keeps
# for Windows and macOS), so that it keeps 127.0.0.1 as the node's address instead of turning it
# into the machine's routable one, and binds its servers there; `ray start` itself is told that
# clusters are allowed (it refuses to start a worker node otherwise) and keeps 127.0.0.1 too.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
_RAY_START = [
    sys.executable,
    "-c",
    "import sys; import ray._private.ray_constants as c; import ray._private.services as s; "
    "c.ENABLE_RAY_CLUSTER = True; s.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())",
    "start",
]


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_block(count: int, start: int) -> int:
    """The first port of ``count`` consecutive free ports at or above ``start``."""
    port = start
    while port + count < 65000:
        if all(_free(p) for p in range(port, port + count)):
            return port
        port += count
    raise SystemExit(f"no {count} free consecutive ports on {HOST} above {start}")


def _node_args(base: int, head: bool) -> list[str]:
    """Explicit ports for one node from ``base`` (needs _PORTS_PER_NODE + _WORKER_PORTS ports)."""
    args = [
        f"--node-manager-port={base}",
        f"--object-manager-port={base + 1}",
        f"--dashboard-agent-listen-port={base + 2}",
        f"--dashboard-agent-grpc-port={base + 3}",
        f"--runtime-env-agent-port={base + 4}",
        f"--metrics-export-port={base + 5}",
        f"--min-worker-port={base + _PORTS_PER_NODE}",
        f"--max-worker-port={base + _PORTS_PER_NODE + _WORKER_PORTS - 1}",
    ]
    if head:
        args += [f"--ray-client-server-port={base + 6}"]
    return args


def _environment(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_AUTH_TOKEN", None)  # the cluster's token is its file
    env.update(
        {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(folder / TOKEN),
            "RAY_USAGE_STATS_ENABLED": "0",
            # no Prometheus endpoint: Ray serves it on every interface and without the token
            "RAY_enable_metrics_collection": "false",
            **LOOPBACK_ONLY,
            # jobs run `python …`: this interpreter (with scalehp's dependencies) comes first
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> int:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_for_nodes(gcs: str, count: int, env: dict[str, str], pids: list[int], timeout: float) -> None:
    """Wait until ``count`` nodes are alive in the GCS (checked by a child that joins as a client)."""
    probe = (
        "import ray, sys\n"
        "from ray.util.state import list_nodes\n"
        f"nodes = list_nodes(address={'http://' + HOST + ':' + str(env['SCALEHP_DASHBOARD_PORT'])!r}, "
        "filters=[('state', '=', 'ALIVE')], raise_on_missing_output=False)\n"
        "sys.exit(0 if len(nodes) >= int(sys.argv[1]) else 1)\n"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [pid for pid in pids if not _alive(pid)]
        if dead:
            raise SystemExit(f"ray start exited early (pids {dead}); see the logs in {Path(env['SCALEHP_DIR'])}")
        done = subprocess.run([sys.executable, "-c", probe, str(count)], env=env, capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(1.0)
    raise SystemExit(f"the cluster did not come up with {count} nodes in {timeout:.0f} s")


def start(
    folder: Path,
    workers: int,
    *,
    head_cpus: float = 1,
    worker_cpus: float = 1,
    worker_gpus: float = 0,
    worker_resources: dict[str, float] | None = None,
    first_port: int = 30000,
    timeout: float = 120.0,
) -> dict:
    """Start a head and ``workers`` worker nodes; returns (and writes) the cluster's state."""
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / STATE).exists():
        raise SystemExit(f"{folder / STATE} exists: stop that cluster first")
    token = folder / TOKEN
    if not token.exists():
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    need = 4 + _PORTS_PER_NODE + _WORKER_PORTS
    port = _port_block(need, first_port)
    gcs_port, dashboard_port = port, port + 1
    temp = folder / "tmp"  # a private temp dir: no stale address file shared with other clusters
    env = _environment(folder)
    env.update({"SCALEHP_DASHBOARD_PORT": str(dashboard_port), "SCALEHP_DIR": str(folder)})
    # the dashboard's and the autoscaler's own metrics servers, in this block too (Ray's
    # defaults, 44227 and 44217, would collide between clusters on one machine)
    env.update({"DASHBOARD_METRIC_PORT": str(port + need - 2), "AUTOSCALER_METRIC_PORT": str(port + need - 1)})
    head = [
        *_RAY_START,
        "--head",
        "--block",
        f"--node-ip-address={HOST}",
        f"--port={gcs_port}",
        "--include-dashboard=true",
        f"--dashboard-host={HOST}",
        f"--dashboard-port={dashboard_port}",
        f"--num-cpus={head_cpus:g}",
        "--num-gpus=0",
        f"--temp-dir={temp}",
        "--object-store-memory=100000000",
        "--disable-usage-stats",
        *_node_args(port + 2, head=True),
    ]
    nodes = [{"role": "head", "pid": _spawn(head, env, folder / "head.log"), "ports": [port, port + need - 1]}]
    state = {
        "address": f"{HOST}:{gcs_port}",
        "dashboard": f"http://{HOST}:{dashboard_port}",
        "token_path": str(token),
        "temp_dir": str(temp),
        "nodes": nodes,
    }
    _write_state(folder, state)  # written at once: stop works even if start fails half-way
    _wait_for_nodes(state["address"], 1, env, [nodes[0]["pid"]], timeout)  # workers join a running head
    next_port = port + need
    for index in range(workers):
        # one node at a time, each block chosen after the previous node is up (it binds more
        # than its explicit ports), with a gap
        base = _port_block(_PORTS_PER_NODE + _WORKER_PORTS, next_port)
        next_port = base + _PORTS_PER_NODE + _WORKER_PORTS + 16
        worker = [
            *_RAY_START,
            "--block",
            f"--address={HOST}:{gcs_port}",
            f"--node-ip-address={HOST}",
            f"--num-cpus={worker_cpus:g}",
            f"--num-gpus={worker_gpus:g}",
            # its own temp dir: nodes sharing one would share (and delete) each other's
            # unpacked runtime environments, the job's working dir included
            f"--temp-dir={folder / f'tmp-w{index + 1}'}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
            *_node_args(base, head=False),
        ]
        if worker_resources:
            worker.append(f"--resources={json.dumps(worker_resources)}")
        pid = _spawn(worker, env, folder / f"worker-{index + 1}.log")
        nodes.append({"role": f"worker-{index + 1}", "pid": pid, "ports": [base, next_port - 17]})
        _write_state(folder, state)
        _wait_for_nodes(state["address"], 2 + index, env, [n["pid"] for n in nodes], timeout)
    return state


def _write_state(folder: Path, state: dict) -> None:
    temporary = folder / f".{STATE}.tmp"
    temporary.write_text(json.dumps(state, indent=2))
    os.replace(temporary, folder / STATE)


def stop_node(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the node's process group (``ray start --block`` and everything it started), then SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _gone(pid, grace):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _gone(pid, 10.0)


def _gone(group: int, timeout: float) -> bool:
    """Wait until no process of the group is left (reaping its leader if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.waitpid(group, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def stop(folder: Path) -> int:
    """Stop the cluster recorded in ``<folder>/cluster.json``; returns how many nodes were signalled."""
    path = folder / STATE
    if not path.exists():
        return 0
    state = json.loads(path.read_text())
    nodes = state["nodes"]
    for node in reversed(nodes):  # workers first, the head last
        stop_node(int(node["pid"]))
    path.unlink()
    return len(nodes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("start", help="start a head and N workers on 127.0.0.1")
    up.add_argument("--dir", type=Path, required=True, help="where state, token and logs go")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--head-cpus", type=float, default=1)
    up.add_argument("--worker-cpus", type=float, default=1)
    up.add_argument("--worker-gpus", type=float, default=0, help="GPUs each worker declares")
    up.add_argument("--worker-resources", type=json.loads, default=None, help="JSON, e.g. '{\"slot\": 1}'")
    up.add_argument("--first-port", type=int, default=30000)
    down = commands.add_parser("stop", help="stop the nodes started by 'start' (by PID)")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "start":
        try:
            state = start(
                args.dir,
                args.workers,
                head_cpus=args.head_cpus,
                worker_cpus=args.worker_cpus,
                worker_gpus=args.worker_gpus,
                worker_resources=args.worker_resources,
                first_port=args.first_port,
            )
        except BaseException:
            stop(args.dir.resolve())
            raise
        print(f"cluster up: {1 + args.workers} nodes, GCS {state['address']}")
        print(f"export RAY_AUTH_TOKEN_PATH={state['token_path']}")
        print(f"scalehp submit EXPERIMENT.yaml --address {state['dashboard']}")
        return 0
    count = stop(args.dir.resolve())
    print(f"stopped {count} nodes" if count else f"no cluster recorded in {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
