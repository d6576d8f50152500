"""Cluster submission through the Ray Jobs API: submit, list, status, logs, stop, fetch.

``submit`` checks the experiment file here (a mistake is a :class:`SpecError` before anything
reaches the cluster), chooses the run id, then submits ``python -m scalehp.cli run FILE
--address auto --results ROOT --run-id RUN_ID`` (its progress lines and summary are the job's
log) with a runtime environment whose ``working_dir`` is the project (without results, virtual
environments, caches and ``.git``), so the trainable imports on every node. Every piece of the
entrypoint built from the file or the command line is shell-quoted: Ray runs it through a shell.
The results root, experiment and run id go into the job's metadata, where ``fetch`` finds them.

Token authentication: every request carries ``Authorization: Bearer <token>``, the token read
from ``RAY_AUTH_TOKEN``, else the file named by ``RAY_AUTH_TOKEN_PATH``, else
``~/.ray/auth_token`` (the order Ray itself uses), and checked before use (a malformed token is
a :class:`SpecError` that never shows it). Ray's own client sends it only when
``RAY_AUTH_MODE=token`` is set, so scalehp passes the header itself, to the address given and
nowhere else. The token is never put in the job's runtime environment, metadata or entrypoint,
and never logged; a missing or refused token is one :class:`RunError` line.

The cluster is untrusted: each answer is read with a timeout and a size cap, every failure is
one :class:`RunError` line, and what it says (job ids, metadata, messages, logs) is to be
printed through :func:`shown`.

The run on the cluster writes its tables to ``ROOT``, which must be storage the cluster
shares with whoever reads the results: a local path on a one-machine cluster, an NFS mount, or
a URI pyarrow understands (``s3://``, ``gs://``). ``fetch`` copies a finished job's run
(``plan.json`` and the tables, not Ray's checkpoints) from there to a local results root,
every name checked and every write below that root.

Ray is imported only inside functions.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from scalehp.defaults import RESULTS_ROOT
from scalehp.errors import RunError, SpecError, escape

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
META_RUN_ID = "scalehp_run_id"

_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}

# what a cluster's answer may be: everything it sends is untrusted
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # one Jobs API answer (a job's whole log is one)
MAX_PLAN_BYTES = 16 * 1024 * 1024  # a fetched plan.json
CONNECT_TIMEOUT_S = 10.0
ANSWER_TIMEOUT_S = 300.0  # for a whole answer, however slowly it trickles in
MAX_TOKEN_BYTES = 4096
_TOKEN = re.compile(r"[\x21-\x7e]{8,%d}" % MAX_TOKEN_BYTES)  # printable ASCII, no space: a header value
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")  # Ray's raysubmit_… and scalehp's ids alike
_PART = re.compile(r"part-[A-Za-z0-9_-]{1,100}\.parquet")  # what the sink names a part file
_URI_SCHEMES = {"s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss"}  # pyarrow's, for a results root


def shown(text: Any, limit: int = 300, keep: str = "") -> str:
    """``text`` made safe for a terminal: control and other non-printable characters escaped.

    Everything a cluster sends (job ids, metadata, messages, logs) goes through this before it is
    printed, so an escape sequence in it reaches the screen as text. ``keep`` names characters
    left as they are (a log keeps ``"\\n\\t"``); at most ``limit`` characters are kept.

    Example:
        >>> shown("ok\\x1b[2J\\nbye")
        'ok\\\\x1b[2J\\\\nbye'
    """
    return escape(text if isinstance(text, str) else str(text), keep=keep, limit=limit)


# ---------------------------------------------------------------------------
# Token and client


def auth_token() -> str | None:
    """The Ray auth token, from ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``.

    The token is checked before it is used: printable ASCII without spaces, 8 to 4096
    characters (Ray's tokens are 64 hex digits). The file is read as untrusted input (a regular
    file, at most 4096 bytes and a newline).

    Raises:
        SpecError: the token is malformed, or the file cannot be read; the message names where
            the token came from and never holds the token or the file's contents.
    """
    from scalehp.spec import read_text_file

    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return _checked_token(token, TOKEN_ENV)
    named = os.environ.get(TOKEN_PATH_ENV)
    path = Path(named).expanduser() if named else Path.home() / ".ray" / "auth_token"
    where = f"{TOKEN_PATH_ENV}={shown(named)}" if named else shown(path)
    if not named and not os.path.lexists(path):
        return None
    try:
        token = read_text_file(path, limit=MAX_TOKEN_BYTES + 2).strip()
    except SpecError as exc:
        hint = "; point it at the cluster's token file" if named else ""
        raise SpecError(f"{exc.message}{hint}", source=where) from None
    return _checked_token(token, where) if token else None


def _checked_token(token: str, where: str) -> str:
    if not _TOKEN.fullmatch(token):
        raise SpecError(
            "not a Ray auth token (printable ASCII without spaces or control characters, "
            f"8 to {MAX_TOKEN_BYTES} characters); its value is not shown",
            source=where,
        )
    return token


def _where_token() -> str:
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    if os.environ.get(TOKEN_PATH_ENV):
        return f"the file in {TOKEN_PATH_ENV}"
    return "~/.ray/auth_token"


def checked_address(address: str) -> str:
    """The Jobs API address, ``http(s)://HOST[:PORT]``, as requests are sent to it.

    Raises:
        SpecError: anything else (a ``ray://`` or ``auto`` address, a path, control characters).
    """
    try:
        parts = urlsplit(address) if isinstance(address, str) and address.isprintable() else None
        ok = bool(parts and parts.scheme in ("http", "https") and parts.hostname and (parts.port or True))
        ok = ok and not parts.query and not parts.fragment and len(address) <= 1000
    except ValueError:  # a port that is not a number
        ok = False
    if not ok:
        raise SpecError(
            "not the address of a Ray Jobs API (http://HOST:PORT, the cluster's dashboard)",
            source=f"address {shown(address, 200)}",
        )
    return address.rstrip("/")


def _named(address: str) -> str:
    """The address as error messages show it: no user or password in it, escaped."""
    try:
        parts = urlsplit(address)
        if parts.username is not None or parts.password is not None:
            address = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    except ValueError:
        pass
    return shown(address, 200)


def _first_line(text: str, token: str | None) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    if token:
        line = line.replace(token, "***")
    return shown(line, 200)


@contextmanager
def _errors(address: str, token: str | None = None) -> Iterator[None]:
    """Whatever goes wrong talking to the cluster -> one RunError line naming the address.

    Never with a header or the token in it: a ``requests``/``urllib3``/``aiohttp`` error is named
    by its kind only (their messages can quote headers), and the cluster's own words are cut to
    one escaped line with the token blanked out.
    """
    import aiohttp
    import requests
    import urllib3
    from ray.exceptions import AuthenticationError

    where = _named(address)
    try:
        yield
    except (SpecError, RunError):
        raise
    except AuthenticationError as exc:
        text = str(exc)
        if "couldn't find an authentication token" in text:  # Ray's client, before any request
            raise RunError(
                f"no Ray auth token found for {where}: "
                f"set {TOKEN_ENV} or {TOKEN_PATH_ENV} (e.g. to the cluster's auth_token file)"
            ) from None
        if "Authentication required" in text:
            raise RunError(
                f"the Ray cluster at {where} requires a token and none was sent: "
                f"set {TOKEN_ENV} or {TOKEN_PATH_ENV} (e.g. to the cluster's auth_token file)"
            ) from None
        raise RunError(
            f"the Ray cluster at {where} refused the token from {_where_token()}: "
            f"use that cluster's token ({TOKEN_ENV} or {TOKEN_PATH_ENV})"
        ) from None
    except (
        ConnectionError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        aiohttp.ClientConnectionError,
        asyncio.TimeoutError,
    ):
        raise RunError(
            f"cannot reach the Ray Jobs API at {where}: is the cluster's dashboard running there?"
        ) from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, aiohttp.ClientError) as exc:
        raise RunError(f"the Ray Jobs API at {where} failed ({exc.__class__.__name__})") from None
    except RuntimeError as exc:  # Ray's client: the cluster's answer, in its words
        message = _first_line(str(exc), token) or exc.__class__.__name__
        if "404" in message or "does not exist" in message:
            raise RunError(f"no such job on {where}: {message}") from None
        raise RunError(f"the Ray Jobs API at {where} failed: {message}") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # an answer of the wrong shape (not JSON, wrong types, a list for an object, …)
        raise RunError(
            f"the Ray Jobs API at {where} gave an answer scalehp cannot use "
            f"({exc.__class__.__name__}: {_first_line(str(exc), token)})"
        ) from None


def client(address: str) -> Any:
    """A :class:`ray.job_submission.JobSubmissionClient` for ``address`` that sends the auth token.

    Every request goes to ``address`` itself (not to ``RAY_ADDRESS``, which Ray's client would
    prefer), follows no redirect, has a timeout, and reads at most :data:`MAX_ANSWER_BYTES`.
    """
    address = checked_address(address)
    token = auth_token()
    with _errors(address, token):
        return _client_class()(address, token)


@functools.cache
def _client_class() -> Any:
    """Ray's Jobs client, with every request sent by :func:`_request` (made on first use)."""
    import ray
    from ray.dashboard.modules.dashboard_sdk import SubmissionClient
    from ray.job_submission import JobSubmissionClient

    class Client(JobSubmissionClient):
        def __init__(self, address: str, token: str | None) -> None:
            # JobSubmissionClient.__init__ less its address lookup, which prefers RAY_ADDRESS and
            # RAY_API_SERVER_ADDRESS over the address given: the token goes where it was asked to
            self._client_ray_version = ray.__version__
            self._token = token
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            SubmissionClient.__init__(self, address=address, headers=headers, verify=True)
            self._check_connection_and_version(
                min_version="2.0", version_error_message="the Ray Jobs API needs Ray 2.0 or newer on the cluster."
            )

        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            return _request(self, method, endpoint, **kwargs)

        def _raise_error(self, r: Any) -> None:
            message = _first_line(r.text, self._token)
            if r.status_code == 404:
                raise RunError(f"no such job on {_named(self._address)}: {message}")
            raise RunError(f"the Ray Jobs API at {_named(self._address)} answered {r.status_code}: {message}")

    return Client


def _request(client: Any, method: str, endpoint: str, *, data: Any = None, json_data: Any = None, **kwargs: Any) -> Any:
    """One request to the Jobs API: no redirects, timeouts, at most MAX_ANSWER_BYTES read."""
    import requests
    from ray._private.authentication.http_token_authentication import format_authentication_http_error
    from ray.exceptions import AuthenticationError

    response = requests.request(
        method,
        client._address + endpoint,
        cookies=client._cookies,
        data=data,
        json=json_data,
        headers=client._headers,
        verify=client._verify,
        timeout=(CONNECT_TIMEOUT_S, ANSWER_TIMEOUT_S),
        allow_redirects=False,
        stream=True,
        **kwargs,
    )
    try:
        if response.is_redirect:
            raise RunError(
                f"the Ray Jobs API at {_named(client._address)} answered with a redirect: "
                "scalehp follows none (give the address that answers itself)"
            )
        chunks, size, deadline = [], 0, time.monotonic() + ANSWER_TIMEOUT_S
        for chunk in response.iter_content(1 << 16):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise RunError(
                    f"the Ray Jobs API at {_named(client._address)} sent more than "
                    f"{MAX_ANSWER_BYTES >> 20} MiB in one answer; refused"
                )
            if time.monotonic() > deadline:
                raise RunError(
                    f"the Ray Jobs API at {_named(client._address)} took over {ANSWER_TIMEOUT_S:.0f} s to answer"
                )
            chunks.append(chunk)
    finally:
        response.close()
    response._content = b"".join(chunks)  # what .text and .json() read from now on
    formatted_error = format_authentication_http_error(response.status_code, "")
    if formatted_error:
        raise AuthenticationError(formatted_error)
    return response


# ---------------------------------------------------------------------------
# Jobs, as scalehp shows them


@dataclass(frozen=True)
class Job:
    """A job as the cluster described it; every field checked for type (values are untrusted).

    Strings are as sent (print them through :func:`shown`); a field of the wrong type is ``None``.
    """

    job_id: str
    status: str
    message: str | None = None
    entrypoint: str | None = None
    start_time: int | None = None  # ms since the epoch
    end_time: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in _TERMINAL


_MAX_MS = 253402300799999  # 9999-12-31: a time Python's datetime can show


def _job(details: Any) -> Job:
    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    def ms(value: Any) -> int | None:
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_MS else None

    status = getattr(details, "status", None)
    status = getattr(status, "value", status)
    metadata = getattr(details, "metadata", None)
    return Job(
        job_id=text(getattr(details, "submission_id", None)) or text(getattr(details, "job_id", None)) or "",
        status=status if isinstance(status, str) else "UNKNOWN",
        message=text(getattr(details, "message", None)),
        entrypoint=text(getattr(details, "entrypoint", None)),
        start_time=ms(getattr(details, "start_time", None)),
        end_time=ms(getattr(details, "end_time", None)),
        metadata={k: v for k, v in metadata.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(metadata, dict)
        else {},
    )


def checked_job_id(job_id: str) -> str:
    """A job id as a user typed it: letters, digits, ``_ . -`` (no ``/``, no ``..``), ≤ 200 characters.

    Raises:
        SpecError: anything else (it becomes part of a URL path).
    """
    if not (isinstance(job_id, str) and _JOB_ID.fullmatch(job_id) and ".." not in job_id):
        raise SpecError(
            "not a job id (letters, digits, '_', '.' and '-'; as 'scalehp jobs ls' shows them)",
            source=f"job id {shown(job_id, 100)!s}",
        )
    return job_id


# ---------------------------------------------------------------------------
# Submit


@dataclass(frozen=True)
class Submission:
    """What ``submit`` sent: the job id, the run id and the entrypoint (which holds no secret)."""

    job_id: str
    run_id: str
    entrypoint: str
    results: str
    working_dir: Path


def _results_root(results: str | None, default: str) -> str:
    root = results or default
    if "://" in root:
        return root
    return str(Path(root).expanduser().resolve())


def entrypoint(file: str, results: str, run_id: str, python: str = "python") -> str:
    """The shell command the job runs; every piece quoted.

    Example:
        >>> entrypoint("exp dir/a;b.yaml", "/data/results", "20260101-120000-0a1b").split(" --address ")
        ["python -m scalehp.cli run 'exp dir/a;b.yaml'", 'auto --results /data/results --run-id 20260101-120000-0a1b']
    """
    parts = [python, "-m", "scalehp.cli", "run", file, "--address", "auto", "--results", results, "--run-id", run_id]
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
    """Check ``file`` and submit it as a Ray job; returns the job and run ids.

    The run id is chosen here and given to the job (``scalehp run --run-id``) and kept in the
    job's metadata, so ``fetch`` knows where the run is without reading the job's log.

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
    from scalehp.runner import new_run_id
    from scalehp.spec import load_experiment

    plan = compile_plan(load_experiment(file))
    root = Path(working_dir).resolve()
    path = Path(file).resolve()
    if root not in path.parents:
        raise RunError(f"{file} is not inside the working dir {root}; put it in the project or pass --working-dir")
    relative = path.relative_to(root).as_posix()
    results_root = _results_root(results, plan.experiment.results)
    run_id = new_run_id()
    command = entrypoint(relative, results_root, run_id, python)
    excludes = list(EXCLUDES)
    local_results = Path(plan.experiment.results)
    if not local_results.is_absolute() and ".." not in local_results.parts:
        excludes.append("/" + local_results.as_posix().strip("/") + "/")
    job_id = checked_job_id(job_id or f"scalehp-{plan.name}-{secrets.token_hex(4)}")
    jobs = client(address)
    with _errors(address, jobs._token):
        submitted = jobs.submit_job(
            entrypoint=command,
            submission_id=job_id,
            runtime_env={"working_dir": str(root), "excludes": excludes},
            metadata={
                META_EXPERIMENT: plan.name,
                META_FILE: relative,
                META_RESULTS: results_root,
                META_RUN_ID: run_id,
            },
            entrypoint_num_cpus=0,  # the driver takes no CPU a trial could use
        )
    if submitted != job_id:
        raise RunError(f"the Ray Jobs API at {_named(address)} named the job {shown(submitted)!s}, not {job_id}")
    log.info("submitted %s to %s: %s", submitted, address, command)
    return Submission(job_id=job_id, run_id=run_id, entrypoint=command, results=results_root, working_dir=root)


# ---------------------------------------------------------------------------
# Jobs


def list_jobs(address: str) -> list[Job]:
    """Every job the cluster knows, oldest first."""
    jobs = client(address)
    with _errors(address, jobs._token):
        found = [_job(j) for j in jobs.list_jobs()]
    return sorted(found, key=lambda j: j.start_time or 0)


def job_info(address: str, job_id: str) -> Job:
    checked_job_id(job_id)
    jobs = client(address)
    with _errors(address, jobs._token):
        return _job(jobs.get_job_info(job_id))


def job_logs(address: str, job_id: str) -> str:
    """The job's whole log, as the cluster sent it (untrusted: print it through :func:`shown`)."""
    checked_job_id(job_id)
    jobs = client(address)
    with _errors(address, jobs._token):
        text = jobs.get_job_logs(job_id)
    if not isinstance(text, str):
        raise RunError(f"the Ray Jobs API at {_named(address)} sent a log that is not text")
    return text


def follow_logs(address: str, job_id: str) -> Iterator[str]:
    """The job's log as it is written, until the job ends (untrusted text, as :func:`job_logs`)."""
    checked_job_id(job_id)
    jobs = client(address)
    with _errors(address, jobs._token):
        jobs.get_job_info(job_id)  # a clear error for an unknown job before tailing
    loop = asyncio.new_event_loop()
    stream = jobs.tail_job_logs(job_id)
    try:
        while True:
            with _errors(address, jobs._token):
                try:
                    chunk = loop.run_until_complete(stream.__anext__())
                except StopAsyncIteration:
                    return
            yield chunk if isinstance(chunk, str) else ""
    finally:
        with _errors(address, jobs._token):
            loop.run_until_complete(stream.aclose())
        loop.close()


def stop_job(address: str, job_id: str) -> bool:
    """Ask the cluster to stop the job; False if it had already ended."""
    checked_job_id(job_id)
    jobs = client(address)
    with _errors(address, jobs._token):
        return jobs.stop_job(job_id) is True


def is_done(info: Job) -> bool:
    return info.done


# ---------------------------------------------------------------------------
# Fetch


def run_location(address: str, job_id: str) -> tuple[str, str, str]:
    """``(results root, experiment, run id)`` of a finished job's run, from its metadata.

    The metadata is the cluster's word: each value is checked (a results root that is an
    absolute path or a storage URI, an experiment name, a run id) before it names any path.
    """
    from scalehp.runner import RUN_ID

    info = job_info(address, job_id)
    metadata = info.metadata
    if META_RESULTS not in metadata:
        raise RunError(f"job {job_id} was not submitted by scalehp (no {META_RESULTS} in its metadata)")
    run_id = metadata.get(META_RUN_ID)
    if run_id is None:
        raise RunError(
            f"job {job_id} has no run id in its metadata (submitted by an older scalehp): "
            f"copy its run folder from {shown(metadata[META_RESULTS])} yourself"
        )
    if not RUN_ID.fullmatch(run_id):
        raise RunError(f"job {job_id}: its metadata's {META_RUN_ID} {shown(run_id, 100)!r} is not a run id; refused")
    experiment = _checked_name(metadata.get(META_EXPERIMENT), f"job {job_id}: its metadata's {META_EXPERIMENT}")
    root = _checked_root(metadata[META_RESULTS], f"job {job_id}: its metadata's {META_RESULTS}")
    if not info.done:
        raise RunError(
            f"job {job_id} is {shown(info.status, 40)}: fetch it once it has ended "
            f"('scalehp jobs logs --follow {job_id}' waits for that)"
        )
    return root, experiment, run_id


def _checked_name(name: Any, what: str) -> str:
    from scalehp.spec import _NAME

    if not (isinstance(name, str) and _NAME.fullmatch(name) and ".." not in name):
        raise RunError(f"{what} {shown(name, 100)!r} is not an experiment name; refused")
    return name


def _checked_root(root: str, what: str) -> str:
    """A results root from a job's metadata: an absolute local path or a storage URI, printable."""
    scheme = root.split("://", 1)[0].lower() if "://" in root else None
    ok = 0 < len(root) <= 1000 and root.isprintable()
    absolute = root.removeprefix("file://").startswith("/")
    ok = ok and (scheme in _URI_SCHEMES or scheme in (None, "file") and absolute)
    if not ok:
        raise RunError(f"{what} {shown(root, 200)!r} is not an absolute path or a storage URI; refused")
    return root


def fetch(address: str, job_id: str, destination: str | Path = RESULTS_ROOT) -> Path:
    """Copy a finished job's run (``plan.json`` and tables) to ``destination/<experiment>/<run id>``.

    The source is the job's results root, read through pyarrow's filesystems, so a local
    path, an NFS mount, ``s3://`` and ``gs://`` all work from wherever they are reachable.
    Ray's own folder (checkpoints) is not copied. Returns the local run folder.
    """
    root, experiment, run_id = run_location(address, job_id)
    return copy_run(root, experiment, run_id, destination)


def copy_run(root: str, experiment: str, run_id: str, destination: str | Path) -> Path:
    """Copy one run's ``plan.json`` and tables from ``root`` (path or URI) into ``destination``.

    What is at ``root`` is untrusted: only ``plan.json`` (whose ``run_id`` must be ``run_id``)
    and files named as the sink names parts are copied, never through a symbolic link on either
    side, and every file is written below ``destination/<experiment>/<run_id>``, which must not
    exist yet. The files go to a hidden folder first, renamed into place when all are there:
    a failed fetch leaves nothing behind.

    Raises:
        RunError: a bad name, no run there, a symbolic link, or the run folder exists already.
    """
    import pyarrow.fs as pafs

    from scalehp.results.schema import TABLES
    from scalehp.results.store import PLAN
    from scalehp.runner import RUN_ID

    if not RUN_ID.fullmatch(run_id):
        raise RunError(f"{shown(run_id, 100)!r} is not a run id; refused")
    _checked_name(experiment, "the experiment name")
    try:
        filesystem, base = pafs.FileSystem.from_uri(root if "://" in root else str(Path(root).resolve()))
    except (ValueError, OSError, TypeError) as exc:
        raise RunError(f"cannot open the results root {shown(root, 200)}: {_first_line(str(exc), None)}") from None
    local = isinstance(filesystem, pafs.LocalFileSystem)
    source = f"{base.rstrip('/')}/{experiment}/{run_id}"
    where = f"{shown(root, 200)}/{experiment}/{run_id}"
    try:
        info = filesystem.get_file_info(f"{source}/{PLAN}")
        if info.type == pafs.FileType.NotFound:
            raise RunError(f"{where}: no run there (is {shown(root, 200)} shared with this machine?)")
        if local:
            experiment_folder = source.rpartition("/")[0]
            _no_links(source, [experiment_folder, f"{source}/{PLAN}", *(f"{source}/{t}" for t in TABLES)], where)
        plan = _read_plan(filesystem, f"{source}/{PLAN}", info, run_id, where)
        wanted = []
        for table in TABLES:
            selector = pafs.FileSelector(f"{source}/{table}", allow_not_found=True)
            for found in filesystem.get_file_info(selector):
                if found.type == pafs.FileType.Directory or not found.base_name.startswith("part-"):
                    continue
                name = found.base_name
                if not (found.is_file and _PART.fullmatch(name) and found.path == f"{source}/{table}/{name}"):
                    raise RunError(f"{where}: {shown(found.path[-200:], 200)!r} is not a part file's name; refused")
                if local:
                    _no_links(source, [found.path], where)
                wanted.append((found.path, f"{table}/{name}"))
    except OSError as exc:
        raise RunError(f"cannot read {where}: {_first_line(str(exc), None)}") from None

    target, staging = _staging(Path(destination), experiment, run_id)
    try:
        _write_new(staging / PLAN, [plan])
        for path, relative in wanted:
            (staging / relative).parent.mkdir(mode=0o755, exist_ok=True)
            with filesystem.open_input_stream(path) as src:
                _write_new(staging / relative, iter(lambda: src.read(1 << 20), b""))
        os.rename(staging, target)  # fails if target appeared meanwhile: nothing is overwritten
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RunError(f"cannot copy {where} to {target}: {exc.strerror or exc.__class__.__name__}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("fetched %d files of run %s to %s", len(wanted) + 1, run_id, target)
    return target


def _no_links(source: str, paths: list[str], where: str) -> None:
    """Refuse a run folder, table folder or file on a local (shared) root that is a symbolic link."""
    for path in [source, *paths]:
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                raise RunError(f"{where}: {shown(path[-200:], 200)} is a symbolic link; refused")
        except FileNotFoundError:
            continue


def _read_plan(filesystem: Any, path: str, info: Any, run_id: str, where: str) -> bytes:
    import pyarrow.fs as pafs

    if info.type != pafs.FileType.File or info.size is None or info.size > MAX_PLAN_BYTES:
        raise RunError(f"{where}: plan.json is not a file of at most {MAX_PLAN_BYTES >> 20} MiB; refused")
    with filesystem.open_input_stream(path) as src:
        data = src.read(MAX_PLAN_BYTES + 1)
    try:
        plan = json.loads(data)
    except (ValueError, RecursionError):
        raise RunError(f"{where}: plan.json is not JSON; refused") from None
    if len(data) > MAX_PLAN_BYTES or not isinstance(plan, dict) or plan.get("run_id") != run_id:
        raise RunError(f"{where}: plan.json is not this run's plan (run id {run_id}); refused")
    return data


def _staging(destination: Path, experiment: str, run_id: str) -> tuple[Path, Path]:
    """``(run folder, hidden staging folder beside it)`` under ``destination``, made safely.

    ``destination`` (the user's choice) is resolved; below it, ``<experiment>`` must be a real
    folder (made if missing), never a symbolic link, and the run folder must not exist.
    """
    try:
        root = destination.expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        folder = root / experiment
        try:
            folder.mkdir(mode=0o755)
        except FileExistsError:
            pass
        mode = os.lstat(folder).st_mode
        if not stat.S_ISDIR(mode):
            raise RunError(f"{folder} is not a folder (a symbolic link or a file); refused")
        target = folder / run_id
        if os.path.lexists(target):
            raise RunError(f"{target} exists already (fetched before?); remove it or fetch --to another folder")
        staging = folder / f".{run_id}.fetch-{secrets.token_hex(4)}"
        staging.mkdir(mode=0o755)
    except OSError as exc:
        raise RunError(f"cannot write under {destination}: {exc.strerror or exc.__class__.__name__}") from None
    return target, staging


def _write_new(path: Path, chunks: Any) -> None:
    """Write a new file (never an existing one, never through a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
