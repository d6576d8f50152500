"""The files in cluster/, checked as far as a machine without a cloud can: they parse, they have
the keys Ray's cluster launcher and KubeRay expect, and they keep token auth on and the
dashboard off public addresses. No Ray is started."""

from __future__ import annotations

import importlib.util
import json
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
import yaml

from scalehp.cli import load_plan, main

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"
RAY = metadata.version("ray")


def _yaml_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _scalehp_run(entrypoint: str) -> list[str]:
    """The argv of a `python -m scalehp.cli run …` entrypoint, checked against the real command."""
    argv = shlex.split(entrypoint)
    assert argv[:4] == ["python", "-m", "scalehp.cli", "run"], entrypoint
    context = main.commands["run"].make_context("run", argv[4:])  # unknown options fail here
    assert context.params["address"] == "auto"
    return argv[4:]


def test_aws_launcher_config_matches_rays_schema_and_is_locked_down():
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    schema_path = Path(importlib.util.find_spec("ray").origin).parent / "autoscaler" / "ray-schema.json"
    jsonschema.validate(config, json.loads(schema_path.read_text()))
    assert config["provider"]["type"] == "aws"
    assert config["head_node_type"] in config["available_node_types"]

    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head and "RAY_AUTH_MODE=token" in head
    assert all("RAY_AUTH_MODE=token" in c for c in config["worker_start_ray_commands"] if "ray start" in c)
    assert config["file_mounts"]["~/.ray/auth_token"]  # the same token on every node
    assert any("chmod 600 ~/.ray/auth_token" in c for c in config["setup_commands"])
    assert any("pip install" in c and "~/scalehp" in c for c in config["setup_commands"])
    assert {".git", ".venv", "results"} <= set(config["rsync_exclude"])
    # only SSH comes in, and only from one address
    (rule,) = config["provider"]["security_group"]["IpPermissions"]
    assert (rule["FromPort"], rule["ToPort"]) == (22, 22)
    assert all(r["CidrIp"].endswith("/32") for r in rule["IpRanges"])


def _ray_pod_groups(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"], *spec["workerGroupSpecs"]]


def _check_ray_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == RAY
    assert spec["authOptions"]["mode"] == "token"
    head = spec["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"  # no LoadBalancer/NodePort for the dashboard
    for group in _ray_pod_groups(spec):
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # KubeRay wants strings
        (container,) = group["template"]["spec"]["containers"]
        assert container["image"] and container["name"]
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/results" in mounts  # every pod writes and reads the same results root
    for group in spec["workerGroupSpecs"]:
        assert group["groupName"] and group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]


def test_kuberay_raycluster_has_token_auth_and_no_public_dashboard():
    cluster, claim = _yaml_documents(CLUSTER / "kuberay" / "raycluster.yaml")  # no Ingress, no Service
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    _check_ray_cluster_spec(cluster["spec"])
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for g in _ray_pod_groups(cluster["spec"])
        for v in g["template"]["spec"]["volumes"]
    }
    assert claims == {claim["metadata"]["name"]}


def test_kuberay_rayjob_runs_a_valid_experiment():
    (job,) = _yaml_documents(CLUSTER / "kuberay" / "rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    _check_ray_cluster_spec(job["spec"]["rayClusterSpec"])
    argv = _scalehp_run(job["spec"]["entrypoint"])
    assert load_plan(str(ROOT / argv[0])).name  # the experiment it runs is valid
    assert argv[argv.index("--results") + 1] == "/results"
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_dockerfile_uses_the_pinned_ray():
    text = (CLUSTER / "kuberay" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{RAY}-py311" in text
    assert '"torch==' in text  # torch pinned before the package (never a bare torch)


def test_local_cluster_script_documents_its_commands():
    done = subprocess.run([sys.executable, str(CLUSTER / "local.py"), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "start" in done.stdout and "stop" in done.stdout
    text = (CLUSTER / "local.py").read_text()
    assert '"RAY_AUTH_MODE": "token"' in text and "--dashboard-host={HOST}" in text
    assert "ray stop" not in text.replace("never runs ``ray stop``", "")


@pytest.mark.parametrize("name", ["README.md"])
def test_cluster_readme_names_every_file(name):
    text = (CLUSTER / name).read_text()
    for path in CLUSTER.rglob("*"):
        if path.is_file() and path.name != name and "__pycache__" not in path.parts:
            assert str(path.relative_to(CLUSTER)) in text, path
