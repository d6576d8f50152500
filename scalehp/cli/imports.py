"""``scalehp import``: another tool's sweep definition -> a scalehp experiment file."""

from __future__ import annotations

import click

from scalehp.cli.common import check_output, escape, main, write_output
from scalehp.importers import FORMATS


@main.command(name="import")
@click.option("--from", "fmt", type=click.Choice(list(FORMATS)), required=True, help="The source's format.")
@click.argument("file", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write the experiment here (default: stdout).")
@click.option("--force", is_flag=True, help="Replace the -o file if it exists (never the input, never through a link).")
@click.option("--program", help="The script each trial runs (hydra-optuna: the Hydra app; wandb: replaces program).")
def import_(fmt: str, file: str, output: str | None, force: bool, program: str | None) -> None:
    """Convert FILE (a W&B, Katib, NNI, Determined or Hydra-Optuna sweep) to a scalehp experiment file.

    Every setting that could not be carried over exactly is listed on stderr with what it became.
    """
    from scalehp.importers import import_file

    if output:
        check_output(output, force=force, inputs=(file,))  # before the work
    imported = import_file(fmt, file, program=program)
    text = imported.yaml()
    if output:
        write_output(output, text, force=force, inputs=(file,))
        click.echo(escape(f"wrote {output}"), err=True)
    else:
        click.echo(text, nl=False)
    if imported.notes:
        click.secho(f"{len(imported.notes)} setting(s) not carried over exactly:", err=True, fg="yellow")
        for note in imported.notes:
            where = f"{file}:{note.line}" if note.line else file
            about = f"{note.path}: " if note.path else ""
            click.echo(escape(f"  {where}: {about}{note.message}"), err=True)
