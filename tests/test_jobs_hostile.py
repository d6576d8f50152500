"""The cluster is untrusted: a Jobs API on 127.0.0.1 that answers as a hostile (or broken)
cluster would, against ``scalehp jobs …`` and ``fetch``; and secrets that must never be printed.

The fake server speaks the few Jobs API routes scalehp uses (``/api/version``, ``/api/jobs/…``)
with whatever status, headers and body a test gives it; the run folders it points at are real
(written by the sink), on a local "shared" root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from scalehp import jobs
from scalehp.cli import main
from scalehp.errors import SpecError
from scalehp.results.sink import ParquetSink
from scalehp.results.store import read_results

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "a1" * 32
RUN = "20260101-120000-0a1b"
JOB = "scalehp-e-0123abcd"


class FakeJobsApi:
    """Answers ``routes[(method, path)] = (status, headers, body)``; records what it was sent."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.answer("GET", "/api/version", {"ray_version": "2.60.0", "version": "4"})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self) -> None:
                fake.seen.append((self.command, self.path, dict(self.headers)))
                length = int(self.headers.get("Content-Length") or 0)
                sent = self.rfile.read(length) if length else b""
                if self.command == "PUT" and self.path.startswith("/api/packages/"):  # an upload
                    fake.routes[(self.command, self.path)] = (200, {}, b"")
                found = fake.routes.get((self.command, self.path), (404, {}, b"Job does not exist"))
                status, headers, body = found(sent) if callable(found) else found
                self.send_response(status)
                for key, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, body, status: int = 200, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[(method, path)] = (status, headers or {"Content-Type": "application/json"}, data)

    def job(self, job_id: str = JOB, logs: str = "", **fields) -> None:
        info = {
            "type": "SUBMISSION",
            "job_id": None,
            "submission_id": job_id,
            "status": "SUCCEEDED",
            "entrypoint": "python -m scalehp.cli run e.yaml",
            "start_time": 1767268800000,
            "end_time": 1767268900000,
            "metadata": {},
            **fields,
        }
        self.answer("GET", f"/api/jobs/{job_id}", info)
        self.answer("GET", "/api/jobs/", [info])
        self.answer("GET", f"/api/jobs/{job_id}/logs", {"logs": logs})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(monkeypatch, tmp_path):
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "http://127.0.0.1:9")  # Ray's client would prefer it: scalehp must not
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:9")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    fake = FakeJobsApi()
    yield fake
    fake.close()


def _run_folder(root: Path, experiment: str = "e", run_id: str = RUN) -> Path:
    run = root / experiment / run_id
    sink = ParquetSink(run, [pa.field("param_x", pa.float64())])
    for step in (1, 2):
        sink.add("reports", {"run_id": run_id, "experiment": experiment, "trial_id": "t0", "step": step,
                             "param_x": 0.5, "metric_loss": 1.0 / step})  # fmt: skip
    sink.add("trials", {"run_id": run_id, "experiment": experiment, "trial_id": "t0", "status": "completed",
                        "steps": 2})  # fmt: skip
    sink.close()
    plan = {"run_id": run_id, "experiment": {"name": experiment, "metric": {"name": "loss", "mode": "min"}}}
    (run / "plan.json").write_text(json.dumps(plan))
    return run


def _metadata(root: Path, experiment: str = "e", run_id: str | None = RUN) -> dict[str, str]:
    found = {"scalehp_experiment": experiment, "scalehp_file": "e.yaml", "scalehp_results": str(root)}
    if run_id is not None:
        found["scalehp_run_id"] = run_id
    return found


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def _one_line_error(out, code: int = 1) -> str:
    assert out.exception is None or isinstance(out.exception, SystemExit), out.exception
    assert out.exit_code == code, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


# ---------------------------------------------------------------------------
# fetch: the run id comes from the job's metadata, every write stays under --to


def test_fetch_finds_a_one_trial_run_by_its_run_id_not_by_the_log(api, tmp_path):
    shared = tmp_path / "shared"
    _run_folder(shared)
    api.job(metadata=_metadata(shared), logs=f"run {RUN}: 1 trial in 3.0 s (1 completed)\n")
    out = _cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(tmp_path / "local"))
    assert out.exit_code == 0, out.output
    run = tmp_path / "local" / "e" / RUN
    assert out.stdout.strip() == str(run)
    assert read_results(run).reports.equals(read_results(shared).reports)
    assert _files(tmp_path / "local") == {"e", f"e/{RUN}", *(f"e/{RUN}/{f}" for f in _files(shared / "e" / RUN))}
    # the token went to --address only, never to RAY_ADDRESS; and it went as a header
    assert all(headers.get("Authorization") == f"Bearer {TOKEN}" for _, _, headers in api.seen)


@pytest.mark.parametrize(
    "metadata",
    [
        {"scalehp_run_id": "../../../planted"},
        {"scalehp_run_id": RUN + "\n"},
        {"scalehp_run_id": RUN + "/.."},
        {"scalehp_run_id": "/tmp/evil"},
        {"scalehp_run_id": RUN.replace("0a1b", "0a1\x00")},
        {"scalehp_experiment": "../../../outside"},
        {"scalehp_experiment": "/tmp/outside"},
        {"scalehp_experiment": "e\n"},
        {"scalehp_results": "relative/path"},
        {"scalehp_results": "ftp://host/x"},
        {"scalehp_results": "/shared\x00/x"},
    ],
    ids=lambda m: repr(m)[:40],
)
def test_fetch_refuses_a_hostile_jobs_metadata_and_writes_nothing(api, tmp_path, metadata):
    shared = tmp_path / "cluster" / "data" / "shared"
    good = _metadata(shared)
    hostile = {**good, **metadata}
    run_id, experiment = hostile["scalehp_run_id"], hostile["scalehp_experiment"]
    _run_folder(shared)
    # the attacker plants a run where the hostile names lead on the shared root
    source = Path(os.path.normpath(shared / experiment / run_id)) if "\x00" not in run_id + experiment else None
    if source and tmp_path in source.parents and not source.exists():
        _run_folder(source.parent.parent, source.parent.name, source.name)
        (source / "plan.json").write_text(json.dumps({"run_id": run_id, "experiment": {"name": experiment}}))
    api.job(metadata=hostile, logs=f"run {run_id}: 3 trials in 1 s\n")  # where an old scalehp took the run id
    before = _files(tmp_path)
    out = _cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(tmp_path / "local" / "to"))
    line = _one_line_error(out)
    assert "refused" in line
    assert "\x00" not in out.output and "\n" not in line
    assert _files(tmp_path) - before <= {"local", "local/to"}  # nothing but the (empty) --to


def test_fetch_copies_only_part_files_and_plan_never_through_links(api, tmp_path):
    shared = tmp_path / "shared"
    run = _run_folder(shared)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the results folder")
    (run / "trials" / "notes.txt").write_text("ignored: not a part file")
    (run / "ray").mkdir()
    (run / "ray" / "part-0.parquet").write_text("Ray's folder is never copied")
    api.job(metadata=_metadata(shared))
    to = tmp_path / "local"

    # a part file that is a symbolic link (to a file the reader may read, the writer may not)
    link = run / "events" / "part-00000000000000000001-deadbeef.parquet"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(secret)
    line = _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(to)))
    assert "symbolic link" in line and not (to / "e" / RUN).exists()
    assert not (to / "e").exists() or list((to / "e").iterdir()) == []  # no staging folder left behind
    link.unlink()

    # a part name that is not one the sink makes
    odd = run / "events" / "part-$(reboot).parquet"
    odd.write_bytes(b"x")
    line = _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(to)))
    assert "not a part file" in line and not (to / "e" / RUN).exists()
    odd.unlink()

    # the local experiment folder is a link to elsewhere: refused, nothing written there
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    to.mkdir(exist_ok=True)
    if (to / "e").exists():
        (to / "e").rmdir()
    (to / "e").symlink_to(elsewhere)
    line = _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(to)))
    assert "symbolic link" in line and list(elsewhere.iterdir()) == []
    (to / "e").unlink()

    # a plan.json of another run
    plan = json.loads((run / "plan.json").read_text())
    (run / "plan.json").write_text(json.dumps({**plan, "run_id": "20990101-000000-ffff"}))
    line = _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(to)))
    assert "not this run's plan" in line and not (to / "e" / RUN).exists()
    (run / "plan.json").write_text(json.dumps(plan))

    out = _cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(to))
    assert out.exit_code == 0, out.output
    copied = _files(to / "e" / RUN)
    assert "plan.json" in copied and "trials/notes.txt" not in copied and not any("ray" in f for f in copied)
    # fetched twice: the run folder is never overwritten
    line = _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(to)))
    assert "exists already" in line


def test_fetch_waits_for_the_job_to_end_and_names_old_jobs_without_a_run_id(api, tmp_path):
    shared = tmp_path / "shared"
    api.job(metadata=_metadata(shared), status="RUNNING")
    assert "is RUNNING" in _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(tmp_path)))
    api.job(metadata=_metadata(shared, run_id=None), logs=f"run {RUN}: 4 trials in 1 s\n")
    line = _one_line_error(_cli("jobs", "fetch", JOB, "--address", api.address, "--to", str(tmp_path)))
    assert "no run id in its metadata" in line


def test_submit_chooses_the_run_id_and_gives_it_to_the_job(api, tmp_path):
    from scalehp.runner import RUN_ID

    sent = []

    def accept(body: bytes):
        sent.append(json.loads(body))
        answer = {"job_id": "raysubmit_1", "submission_id": sent[-1]["submission_id"]}
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()

    api.routes[("POST", "/api/jobs/")] = accept
    working = tmp_path / "project"
    working.mkdir()
    (working / "e.yaml").write_text((ROOT / "tests" / "experiments" / "cluster_paced.yaml").read_text())
    submission = jobs.submit(working / "e.yaml", api.address, working_dir=working, results=str(tmp_path / "r"))
    (request,) = sent
    assert RUN_ID.fullmatch(submission.run_id)
    assert request["metadata"]["scalehp_run_id"] == submission.run_id
    assert request["entrypoint"].endswith(f"--run-id {submission.run_id}")
    assert TOKEN not in json.dumps(request)


def test_run_id_option_is_checked_strictly():
    for bad in ["../x", "20260101-120000-0a1b\n", "20260101-120000-0A1B", "x", "20260101-120000-0a1b/..", ""]:
        out = _cli("run", "tests/experiments/cluster_paced.yaml", "--run-id", bad)
        line = _one_line_error(out, code=2)
        assert "--run-id" in line and "is not a run id" in line


# ---------------------------------------------------------------------------
# Secrets: a malformed token, or a token file that is any file, is never printed


def _scalehp(env_extra: dict[str, str], home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_API"))}
    env.update({"HOME": str(home), "PYTHONPATH": str(ROOT), **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "scalehp.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "env, secret",
    [
        ({"RAY_AUTH_TOKEN": "first-half-of-it\nSECRET-second-half"}, "SECRET-second-half"),
        ({"RAY_AUTH_TOKEN": "SECRET tok en with spaces"}, "SECRET"),
        ({"RAY_AUTH_TOKEN": "SECRET\x1b]0;title\x07"}, "SECRET"),
        ({"RAY_AUTH_TOKEN": "S" * 5000}, "S" * 100),
        ({"RAY_AUTH_TOKEN_PATH": "/etc/passwd"}, "root:"),
        ({"RAY_AUTH_TOKEN_PATH": "/dev/zero"}, "\x00"),
        ({"RAY_AUTH_TOKEN_PATH": "/etc"}, "passwd"),
    ],
    ids=["newline", "spaces", "escape", "huge", "passwd", "dev-zero", "folder"],
)
def test_a_bad_token_is_one_line_that_never_shows_it(api, tmp_path, env, secret):
    commands = [["jobs", "ls"], ["jobs", "status", JOB], ["jobs", "fetch", JOB]]
    commands.append(["submit", "tests/experiments/cluster_paced.yaml"])
    for args in commands if "passwd" in str(env) else commands[:1]:
        out = _scalehp(env, tmp_path, *args, "--address", api.address)
        assert out.returncode == 2, out.stderr
        assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert secret not in out.stderr and "Traceback" not in out.stderr
        assert "RAY_AUTH_TOKEN" in out.stderr
    assert api.seen == []  # nothing was sent


def test_a_token_file_is_read_with_a_size_cap_and_must_be_a_regular_file(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    big = tmp_path / "big"
    big.write_text("x" * 10_000)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(big))
    with pytest.raises(SpecError, match="too large") as caught:
        jobs.auth_token()
    assert "xxxx" not in str(caught.value)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(fifo))
    with pytest.raises(SpecError, match="not a regular file"):
        jobs.auth_token()  # never blocks on a FIFO
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(good))
    assert jobs.auth_token() == TOKEN


def test_the_clusters_words_are_one_escaped_line_with_the_token_blanked(api):
    api.answer("GET", f"/api/jobs/{JOB}", f"boom: you sent {TOKEN}\n\x1b[2Jsecond line".encode(), status=500)
    line = _one_line_error(_cli("jobs", "status", JOB, "--address", api.address))
    assert TOKEN not in line and "***" in line and "\x1b" not in line and "second line" not in line
    assert "500" in line and api.address in line


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(api):
    other = FakeJobsApi()
    try:
        other.job(metadata={})
        api.answer("GET", f"/api/jobs/{JOB}", b"", status=302, headers={"Location": f"{other.address}/api/jobs/{JOB}"})
        line = _one_line_error(_cli("jobs", "status", JOB, "--address", api.address))
        assert "redirect" in line
        assert other.seen == []
    finally:
        other.close()


# ---------------------------------------------------------------------------
# What the cluster says is shown as text, never as terminal control


HOSTILE = "ok\x1b]0;owned\x07\x1b[2J\r\x9b31m\u202eevil\x00"


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if not c.isprintable() and c not in "\n\t"]


def test_logs_status_and_ls_escape_control_characters(api, tmp_path):
    api.job(
        status="FAILED",
        message=HOSTILE,
        metadata={"scalehp_experiment": HOSTILE, "scalehp_file": HOSTILE, "scalehp_results": HOSTILE},
        logs=f"line one\n{HOSTILE}\n\tindented\n",
    )
    for args in (["jobs", "logs", JOB], ["jobs", "status", JOB], ["jobs", "ls"], ["jobs", "ls", "--format", "csv"]):
        out = _cli(*args, "--address", api.address)
        assert out.exit_code == 0, out.output
        assert _raw_controls(out.output) == [], (args, out.output)
        assert "\\x1b" in out.output, args
    logs = _cli("jobs", "logs", JOB, "--address", api.address).stdout
    assert logs.startswith("line one\nok\\x1b]0;owned\\x07\\x1b[2J\\r\\x9b31m\\u202eevil\\x00\n\tindented")
    as_json = _cli("jobs", "ls", "--address", api.address, "--format", "json")
    assert json.loads(as_json.stdout)[0]["experiment"] == HOSTILE  # JSON keeps the text, escaped by JSON


@pytest.mark.parametrize(
    "fields",
    [
        {"metadata": {"scalehp_experiment": 5}},
        {"metadata": ["a", "list"]},
        {"metadata": "text"},
        {"status": "NOT-A-STATUS"},
        {"status": 3},
        {"start_time": 10**30, "end_time": -5},
        {"start_time": "yesterday"},
        {"submission_id": {"a": 1}},
        {"entrypoint": None},
    ],
    ids=lambda f: repr(f)[:40],
)
def test_odd_types_in_a_jobs_description_are_one_line_or_shown_plainly(api, fields):
    api.job(**fields)
    for args in (["jobs", "status", JOB], ["jobs", "ls"], ["jobs", "fetch", JOB]):
        out = _cli(*args, "--address", api.address)
        assert out.exception is None or isinstance(out.exception, SystemExit), (args, out.exception)
        if out.exit_code:
            _one_line_error(out)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b"[1, 2, 3]",
        b'{"type": "SUBMISSION"',
        b"[" * 100_000,
        b'{"a": ' + b"9" * 5000 + b"}",
        b"\xff\xfe\x00garbage",
        b"null",
    ],
    ids=["html", "list", "truncated", "deep", "long-int", "binary", "null"],
)
def test_an_answer_of_the_wrong_shape_is_one_line(api, body):
    api.answer("GET", f"/api/jobs/{JOB}", body)
    api.answer("GET", "/api/jobs/", body)
    api.answer("GET", f"/api/jobs/{JOB}/logs", body)
    for args in (["jobs", "status", JOB], ["jobs", "ls"], ["jobs", "logs", JOB], ["jobs", "fetch", JOB]):
        line = _one_line_error(_cli(*args, "--address", api.address))
        assert api.address in line


def test_a_huge_answer_is_refused_without_reading_it_all(api, monkeypatch):
    monkeypatch.setattr(jobs, "MAX_ANSWER_BYTES", 100_000)
    api.job(logs="x" * 1_000_000)
    line = _one_line_error(_cli("jobs", "logs", JOB, "--address", api.address))
    assert "more than" in line and "refused" in line


def test_addresses_and_job_ids_are_checked_before_any_request(api):
    bad = ["ray://127.0.0.1:10001", "auto", "127.0.0.1:8265", "http://h:p/", "http://\x1b[2J:1", "file:///etc"]
    for address in bad:
        line = _one_line_error(_cli("jobs", "ls", "--address", address), code=2)
        assert "not the address of a Ray Jobs API" in line and "\x1b" not in line
    for job_id in ["../version", "a/b", "x\ny", "..", "a b", "a" * 300]:
        line = _one_line_error(_cli("jobs", "status", job_id, "--address", api.address), code=2)
        assert "not a job id" in line and "\n" not in line
    assert api.seen == []


def test_an_unreachable_or_silent_cluster_is_one_line(monkeypatch):
    import socket

    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    line = _one_line_error(_cli("jobs", "ls", "--address", "http://127.0.0.1:9"))
    assert "cannot reach the Ray Jobs API at http://127.0.0.1:9" in line
    line = _one_line_error(_cli("jobs", "ls", "--address", "http://user:pw@127.0.0.1:9"))
    assert "pw" not in line
    monkeypatch.setattr(jobs, "ANSWER_TIMEOUT_S", 1.0)
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        line = _one_line_error(_cli("jobs", "ls", "--address", f"http://127.0.0.1:{silent.getsockname()[1]}"))
    assert "cannot reach" in line


def test_the_runner_refuses_a_run_id_that_is_not_one_before_starting_ray():
    import scalehp.runner
    from scalehp.spec import load_experiment

    experiment = load_experiment("tests/experiments/cluster_paced.yaml")
    for bad in ["../escape", "/abs", "20260101-120000-0a1b\n", 7]:
        with pytest.raises(SpecError, match="is not a run id"):
            scalehp.runner.run(experiment, run_id=bad)
