"""Cluster submission through the Ray Jobs API: submit, list, status, logs, stop, fetch.

``submit`` checks the experiment file here (a mistake is a :class:`SpecError` before anything
reaches the cluster), then submits ``python -m scalehp.cli run FILE --address auto --results ROOT``
(its progress lines and summary are the job's log)
with a runtime environment whose ``working_dir`` is the project (without results, virtual
environments, caches and ``.git``), so the trainable imports on every node. Every piece of the
entrypoint built from the file or the command line is shell-quoted: Ray runs it through a shell.

Token authentication: every request carries ``Authorization: Bearer <token>``, the token read
from ``RAY_AUTH_TOKEN``, else the file named by ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token`` (the order Ray itself uses). Ray's own client sends it only when
``RAY_AUTH_MODE=token`` is set, so scalehp passes the header itself. The token is never put in
the job's runtime environment, metadata or entrypoint, and never logged; a missing or refused
token is one :class:`RunError` line.

The run on the cluster writes its tables to ``ROOT``, which must be storage the cluster
shares with whoever reads the results: a local path on a one-machine cluster, an NFS mount, or
a URI pyarrow understands (``s3://``, ``gs://``). ``fetch`` copies a finished job's run
(``plan.json`` and the tables, not Ray's checkpoints) from there to a local results root.

Ray is imported only inside functions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import shlex
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from scalehp.errors import RunError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"

# what never travels to the cluster in the working_dir (gitignore syntax, as Ray reads it)
EXCLUDES = [
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "*.egg-info",
    "build",
    "dist",
    "node_modules",
    ".ipynb_checkpoints",
]

# job metadata keys (Ray keeps them with the job; strings only)
META_EXPERIMENT = "scalehp_experiment"
META_FILE = "scalehp_file"
META_RESULTS = "scalehp_results"

_RUN_LINE = re.compile(r"^run (\S+): \d+ trials", re.MULTILINE)
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


# ---------------------------------------------------------------------------
# Token and client


def auth_token() -> str | None:
    """The Ray auth token, from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    named = os.environ.get(TOKEN_PATH_ENV)
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        if named:
            raise RunError(f"{TOKEN_PATH_ENV}={named}: no such file; point it at the cluster's token file") from None
        return None
    except OSError as exc:
        raise RunError(f"cannot read the Ray auth token file {path}: {exc.strerror}") from None
    return token or None


def _where_token() -> str:
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    if os.environ.get(TOKEN_PATH_ENV):
        return f"the file in {TOKEN_PATH_ENV}"
    return "~/.ray/auth_token"


@contextmanager
def _errors(address: str) -> Iterator[None]:
    """Ray's client errors -> one RunError line (never with the token in it)."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as exc:
        text = str(exc)
        if "couldn't find an authentication token" in text:  # Ray's client, before any request
            raise RunError(
                f"no Ray auth token found for {address}: "
                f"set {TOKEN_ENV} or {TOKEN_PATH_ENV} (e.g. to the cluster's auth_token file)"
            ) from None
        if "Authentication required" in text:
            raise RunError(
                f"the Ray cluster at {address} requires a token and none was sent: "
                f"set {TOKEN_ENV} or {TOKEN_PATH_ENV} (e.g. to the cluster's auth_token file)"
            ) from None
        raise RunError(
            f"the Ray cluster at {address} refused the token from {_where_token()}: "
            f"use that cluster's token ({TOKEN_ENV} or {TOKEN_PATH_ENV})"
        ) from None
    except (ConnectionError, requests.exceptions.ConnectionError, requests.exceptions.Timeout):
        raise RunError(
            f"cannot reach the Ray Jobs API at {address}: is the cluster's dashboard running there?"
        ) from None
    except RuntimeError as exc:
        if isinstance(exc, RunError):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        if "404" in message or "does not exist" in message:
            raise RunError(f"no such job on {address}: {message}") from None
        raise RunError(f"the Ray Jobs API at {address} failed: {message}") from None


def client(address: str) -> Any:
    """A :class:`ray.job_submission.JobSubmissionClient` that sends the auth token."""
    from ray.job_submission import JobSubmissionClient

    token = auth_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with _errors(address):
        return JobSubmissionClient(address, headers=headers)


# ---------------------------------------------------------------------------
# Submit


@dataclass(frozen=True)
class Submission:
    """What ``submit`` sent: the job id and the entrypoint (which holds no secret)."""

    job_id: str
    entrypoint: str
    results: str
    working_dir: Path


def _results_root(results: str | None, default: str) -> str:
    root = results or default
    if "://" in root:
        return root
    return str(Path(root).expanduser().resolve())


def entrypoint(file: str, results: str, python: str = "python") -> str:
    """The shell command the job runs; every piece quoted.

    Example:
        >>> entrypoint("exp dir/a;b.yaml", "/data/results")
        "python -m scalehp.cli run 'exp dir/a;b.yaml' --address auto --results /data/results"
    """
    parts = [python, "-m", "scalehp.cli", "run", file, "--address", "auto", "--results", results]
    return " ".join(shlex.quote(p) for p in parts)


def submit(
    file: str | Path,
    address: str,
    *,
    results: str | None = None,
    working_dir: str | Path = ".",
    python: str = "python",
    job_id: str | None = None,
) -> Submission:
    """Check ``file`` and submit it as a Ray job; returns the job id.

    Args:
        file: the experiment file; must lie inside ``working_dir``.
        address: the Jobs API, e.g. ``http://head:8265``.
        results: where the run writes its tables on the cluster (a path every node and the
            reader share, or ``s3://…``/``gs://…``); default: the file's ``results`` made
            absolute here (right for a one-machine cluster or a shared mount at the same path).
        working_dir: the project folder shipped to the cluster.
        python: the interpreter on the cluster.
        job_id: the submission id; default ``scalehp-<experiment>-<random>``.

    Raises:
        SpecError: the experiment file is invalid.
        RunError: the file is outside the working dir, or the cluster refused the job.
    """
    from scalehp.compiler import compile_plan
    from scalehp.spec import load_experiment

    plan = compile_plan(load_experiment(file))
    root = Path(working_dir).resolve()
    path = Path(file).resolve()
    if root not in path.parents:
        raise RunError(f"{file} is not inside the working dir {root}; put it in the project or pass --working-dir")
    relative = path.relative_to(root).as_posix()
    results_root = _results_root(results, plan.experiment.results)
    command = entrypoint(relative, results_root, python)
    excludes = list(EXCLUDES)
    local_results = Path(plan.experiment.results)
    if not local_results.is_absolute() and ".." not in local_results.parts:
        excludes.append("/" + local_results.as_posix().strip("/") + "/")
    job_id = job_id or f"scalehp-{plan.name}-{secrets.token_hex(4)}"
    jobs = client(address)
    with _errors(address):
        submitted = jobs.submit_job(
            entrypoint=command,
            submission_id=job_id,
            runtime_env={"working_dir": str(root), "excludes": excludes},
            metadata={META_EXPERIMENT: plan.name, META_FILE: relative, META_RESULTS: results_root},
            entrypoint_num_cpus=0,  # the driver takes no CPU a trial could use
        )
    log.info("submitted %s to %s: %s", submitted, address, command)
    return Submission(job_id=submitted, entrypoint=command, results=results_root, working_dir=root)


# ---------------------------------------------------------------------------
# Jobs


def list_jobs(address: str) -> list[Any]:
    """Every job the cluster knows, oldest first (Ray's ``JobDetails``)."""
    jobs = client(address)
    with _errors(address):
        found = jobs.list_jobs()
    return sorted(found, key=lambda j: j.start_time or 0)


def job_info(address: str, job_id: str) -> Any:
    jobs = client(address)
    with _errors(address):
        return jobs.get_job_info(job_id)


def job_logs(address: str, job_id: str) -> str:
    jobs = client(address)
    with _errors(address):
        return jobs.get_job_logs(job_id)


def follow_logs(address: str, job_id: str) -> Iterator[str]:
    """The job's log as it is written, until the job ends."""
    jobs = client(address)
    with _errors(address):
        jobs.get_job_info(job_id)  # a clear error for an unknown job before tailing
    loop = asyncio.new_event_loop()
    stream = jobs.tail_job_logs(job_id)
    try:
        while True:
            with _errors(address):
                try:
                    chunk = loop.run_until_complete(stream.__anext__())
                except StopAsyncIteration:
                    return
            yield chunk
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def stop_job(address: str, job_id: str) -> bool:
    """Ask the cluster to stop the job; False if it had already ended."""
    jobs = client(address)
    with _errors(address):
        return bool(jobs.stop_job(job_id))


def is_done(info: Any) -> bool:
    return str(getattr(info.status, "value", info.status)) in _TERMINAL


# ---------------------------------------------------------------------------
# Fetch


def run_location(address: str, job_id: str) -> tuple[str, str, str]:
    """``(results root, experiment, run id)`` of a job's run, from its metadata and log."""
    info = job_info(address, job_id)
    metadata = info.metadata or {}
    if META_RESULTS not in metadata:
        raise RunError(f"job {job_id} was not submitted by scalehp (no {META_RESULTS} in its metadata)")
    found = _RUN_LINE.findall(job_logs(address, job_id))
    if not found:
        status = str(getattr(info.status, "value", info.status))
        raise RunError(f"job {job_id} has not finished a run yet (status {status}); see 'scalehp jobs logs {job_id}'")
    return metadata[META_RESULTS], metadata[META_EXPERIMENT], found[-1]


def fetch(address: str, job_id: str, destination: str | Path = "results") -> Path:
    """Copy a finished job's run (``plan.json`` and tables) to ``destination/<experiment>/<run id>``.

    The source is the job's results root, read through pyarrow's filesystems, so a local
    path, an NFS mount, ``s3://`` and ``gs://`` all work from wherever they are reachable.
    Ray's own folder (checkpoints) is not copied. Returns the local run folder.
    """
    root, experiment, run_id = run_location(address, job_id)
    return copy_run(root, experiment, run_id, destination)


def copy_run(root: str, experiment: str, run_id: str, destination: str | Path) -> Path:
    """Copy one run's ``plan.json`` and tables from ``root`` (path or URI) into ``destination``."""
    import pyarrow.fs as pafs

    from scalehp.results.schema import TABLES
    from scalehp.results.store import PLAN

    try:
        filesystem, base = pafs.FileSystem.from_uri(root if "://" in root else str(Path(root).resolve()))
    except (ValueError, OSError) as exc:
        raise RunError(f"cannot open the results root {root}: {exc}") from None
    source = f"{base.rstrip('/')}/{experiment}/{run_id}"
    target = Path(destination) / experiment / run_id
    if filesystem.get_file_info(f"{source}/{PLAN}").type == pafs.FileType.NotFound:
        raise RunError(f"{root}/{experiment}/{run_id}: no run there (is {root} shared with this machine?)")
    wanted = [f"{source}/{PLAN}"]
    for table in TABLES:
        selector = pafs.FileSelector(f"{source}/{table}", allow_not_found=True)
        wanted += [f.path for f in filesystem.get_file_info(selector) if f.is_file and f.base_name.startswith("part-")]
    target.mkdir(parents=True, exist_ok=True)
    for path in wanted:
        local = target / path[len(source) + 1 :]
        local.parent.mkdir(parents=True, exist_ok=True)
        temporary = local.with_name(f".{local.name}.tmp")
        with filesystem.open_input_stream(path) as src, open(temporary, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(temporary, local)
    log.info("fetched %d files of run %s to %s", len(wanted), run_id, target)
    return target
