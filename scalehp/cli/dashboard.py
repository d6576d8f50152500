"""``scalehp dashboard``: the live web view of a results root."""

from __future__ import annotations

import os
import secrets

import click

from scalehp.cli.common import main, print_error
from scalehp.defaults import DASHBOARD_PORT, RESULTS_ROOT
from scalehp.errors import ResultsError, SpecError

TOKEN_ENV = "SCALEHP_DASHBOARD_TOKEN"


@main.command()
@click.argument("root", default=RESULTS_ROOT, type=click.Path(file_okay=False))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on; any but loopback needs a token."
)
@click.option(
    "--port", default=DASHBOARD_PORT, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one)."
)
def dashboard(root: str, host: str, port: int) -> None:
    """Watch the runs under ROOT live in the browser (read-only; it reads the tables, never Ray).

    On loopback (the default) no token is asked. With --host set to any other address, every
    request needs a token: the one in SCALEHP_DASHBOARD_TOKEN, else a new one, printed in the
    address to open.

    \b
    scalehp dashboard results
    scalehp dashboard results/digits-mlp-asha --port 8300
    SCALEHP_DASHBOARD_TOKEN=... scalehp dashboard /shared/results --host 0.0.0.0
    """
    from scalehp.dashboard import Board, serve
    from scalehp.dashboard.server import cannot_listen, is_loopback

    token, shown = None, ""
    if not is_loopback(host):
        given = os.environ.get(TOKEN_ENV, "")
        if given and len(given) < 16:
            raise SpecError(f"{TOKEN_ENV} is shorter than 16 characters; use a longer secret", source=TOKEN_ENV)
        token = given or secrets.token_urlsafe(24)
        shown = "" if given else f"?token={token}"
    try:
        board = Board(root)
    except ResultsError as exc:  # no runs, a damaged plan or part file: nothing to serve
        print_error(exc)
        raise SystemExit(2) from None

    def ready(url: str) -> None:
        click.echo(f"scalehp dashboard: {url}{shown}", err=True)
        if token is not None and not shown:
            click.echo(f"  token: the one in {TOKEN_ENV}", err=True)
        click.echo("  Ctrl-C stops it", err=True)

    try:
        serve(board, host, port, token, ready)
    except OSError as exc:
        print_error(cannot_listen(exc, host, port, "--port"))
        raise SystemExit(2) from None
