"""Commands for Ray clusters: submit, and jobs ls/status/logs/stop/fetch (through the Ray Jobs API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from scalehp.cli.common import FORMAT, main, print_table
from scalehp.defaults import RESULTS_ROOT

ADDRESS = click.option(
    "--address",
    envvar="RAY_API_SERVER_ADDRESS",
    default="http://127.0.0.1:8265",
    show_default=True,
    help="The cluster's Jobs API (dashboard) address; also from RAY_API_SERVER_ADDRESS.",
)


def _time(ms: int | None) -> str | None:
    if not ms:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _shown(text: Any, limit: int = 300) -> str:
    """What the cluster sent, safe for a terminal (escape sequences shown as text)."""
    from scalehp.jobs import shown

    return shown(text, limit)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@ADDRESS
@click.option(
    "--results",
    default=None,
    help="Results root on storage the cluster shares (path, s3://, gs://); default: the file's, made absolute.",
)
@click.option(
    "--working-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, exists=True),
    help="Project folder shipped to the cluster (without results, venvs, caches, .git).",
)
@click.option("--python", default="python", show_default=True, help="The Python interpreter on the cluster.")
@click.option("--follow", is_flag=True, help="Stream the job's log until it ends.")
def submit(file: str, address: str, results: str | None, working_dir: str, python: str, follow: bool) -> None:
    """Submit the experiment in FILE to a Ray cluster; prints the job id."""
    import logging

    from scalehp import jobs

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # Ray's packaging chatter, unless --debug
        logging.getLogger("ray").setLevel(logging.WARNING)
    submission = jobs.submit(file, address, results=results, working_dir=working_dir, python=python)
    click.echo(submission.job_id)
    click.echo(f"run       {submission.run_id}", err=True)
    click.echo(f"results   {_shown(submission.results)}", err=True)
    click.echo(f"next      scalehp jobs logs --follow {submission.job_id} --address {_shown(address)}", err=True)
    if follow:
        _follow(address, submission.job_id)


def _follow(address: str, job_id: str) -> None:
    from scalehp import jobs

    for chunk in jobs.follow_logs(address, job_id):
        click.echo(jobs.shown(chunk, len(chunk), keep="\n\t"), nl=False)
    info = jobs.job_info(address, job_id)
    click.echo(f"job {job_id}: {_shown(info.status, 40)}", err=True)
    if info.status != "SUCCEEDED":
        raise SystemExit(1)


@main.group()
def jobs() -> None:
    """Jobs on a Ray cluster: ls, status, logs, stop, fetch."""


@jobs.command(name="ls")
@ADDRESS
@FORMAT
def ls(address: str, fmt: str) -> None:
    """List the cluster's jobs."""
    from scalehp import jobs as api

    rows = [
        {
            "job_id": j.job_id,
            "status": j.status,
            "experiment": j.metadata.get(api.META_EXPERIMENT),
            "started": _time(j.start_time),
            "ended": _time(j.end_time),
        }
        for j in api.list_jobs(address)
    ]
    if fmt != "json":  # JSON escapes control characters itself
        rows = [{k: None if v is None else _shown(v, 200) for k, v in row.items()} for row in rows]
    print_table(rows, fmt)


@jobs.command()
@click.argument("job_id")
@ADDRESS
def status(job_id: str, address: str) -> None:
    """Status of one job."""
    from scalehp import jobs as api

    info = api.job_info(address, job_id)
    metadata = {k: _shown(v) for k, v in info.metadata.items()}
    click.echo(f"job         {job_id}")
    click.echo(f"status      {_shown(info.status, 40)}" + (f": {_shown(info.message, 1000)}" if info.message else ""))
    click.echo(f"experiment  {metadata.get(api.META_EXPERIMENT, '-')} ({metadata.get(api.META_FILE, '-')})")
    click.echo(f"run         {metadata.get(api.META_RUN_ID, '-')}")
    click.echo(f"results     {metadata.get(api.META_RESULTS, '-')}")
    click.echo(f"started     {_time(info.start_time) or '-'}")
    click.echo(f"ended       {_time(info.end_time) or '-'}")


@jobs.command()
@click.argument("job_id")
@ADDRESS
@click.option("--follow", "-f", is_flag=True, help="Keep streaming until the job ends.")
def logs(job_id: str, address: str, follow: bool) -> None:
    """The job's log (the run's output)."""
    from scalehp import jobs as api

    if follow:
        _follow(address, job_id)
    else:
        text = api.job_logs(address, job_id)
        click.echo(api.shown(text, len(text), keep="\n\t"), nl=False)


@jobs.command()
@click.argument("job_id")
@ADDRESS
def stop(job_id: str, address: str) -> None:
    """Stop a running job (its trials end; the tables written so far stay readable)."""
    from scalehp import jobs as api

    stopped = api.stop_job(address, job_id)
    click.echo(f"job {job_id}: " + ("stop requested" if stopped else "already ended"))


@jobs.command()
@click.argument("job_id")
@ADDRESS
@click.option("--to", "destination", default=RESULTS_ROOT, show_default=True, help="Local results root.")
def fetch(job_id: str, address: str, destination: str) -> None:
    """Copy a finished job's run (plan and tables) to a local results root."""
    from scalehp import jobs as api

    path = api.fetch(address, job_id, destination)
    click.echo(_shown(path, 1000))
    click.echo(f"next      scalehp results show {_shown(path, 1000)}", err=True)
