"""scalehp.jobs without a cluster: the token's sources, entrypoint quoting, checks before submitting."""

from __future__ import annotations

import shlex

import pytest

from scalehp import jobs
from scalehp.errors import RunError, SpecError


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # set by Ray in a process that started it
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_token_comes_from_env_then_path_then_home(no_token, monkeypatch):
    assert jobs.auth_token() is None
    (no_token / ".ray").mkdir()
    (no_token / ".ray" / "auth_token").write_text("home-token-0123\n")
    assert jobs.auth_token() == "home-token-0123"
    named = no_token / "cluster-token"
    named.write_text("path-token-0123")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    assert jobs.auth_token() == "path-token-0123"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token-0123")
    assert jobs.auth_token() == "env-token-0123"


def test_a_missing_token_file_is_one_clear_error(no_token, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(no_token / "nope"))
    with pytest.raises(SpecError, match="RAY_AUTH_TOKEN_PATH=.*no such file"):
        jobs.auth_token()


@pytest.mark.parametrize(
    "file", ["exp.yaml", "dir with space/e.yaml", "a;rm -rf ~.yaml", "$(touch x).yaml", "it's.yaml"]
)
def test_entrypoint_quotes_every_piece(file):
    command = jobs.entrypoint(file, "/data/my results", "20260101-120000-0a1b")
    assert shlex.split(command) == [
        "python", "-m", "scalehp.cli", "run", file,
        "--address", "auto", "--results", "/data/my results", "--run-id", "20260101-120000-0a1b",
    ]  # fmt: skip


def test_submit_checks_the_file_before_contacting_anyone(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\n")
    with pytest.raises(SpecError):
        jobs.submit(bad, "http://127.0.0.1:9")
    good = "tests/experiments/cluster_paced.yaml"
    with pytest.raises(RunError, match="not inside the working dir"):
        jobs.submit(good, "http://127.0.0.1:9", working_dir=tmp_path)


def test_an_unreachable_cluster_is_one_clear_error(no_token, monkeypatch):
    # a token is at hand (a process that ran Ray in token mode insists on one), the cluster is not
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 64)
    with pytest.raises(RunError, match="cannot reach the Ray Jobs API at http://127.0.0.1:9"):
        jobs.list_jobs("http://127.0.0.1:9")


def test_node_types_an_autoscaler_may_start_count_for_the_resource_check():
    from ray.core.generated import autoscaler_pb2

    from scalehp.runner.session import node_types

    config = autoscaler_pb2.ClusterConfig(
        node_group_configs=[
            autoscaler_pb2.NodeGroupConfig(name="gpu", resources={"CPU": 4, "GPU": 1}, min_count=0, max_count=2),
            autoscaler_pb2.NodeGroupConfig(name="off", resources={"CPU": 64}, min_count=0, max_count=0),
        ]
    )
    assert node_types(config) == [{"CPU": 4.0, "GPU": 1.0}]
    assert node_types(None) == []
