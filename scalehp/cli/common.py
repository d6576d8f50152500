"""What every command group shares: the ``main`` group, printing errors and tables, writing ``-o`` files.

Text from files (names, keys, values, file names) is untrusted: every error is printed by
:func:`print_error`, on one line, with control characters escaped (``\x1b`` as ``\\x1b``).
Files named with ``-o`` are written by :func:`write_output`: whole or not at all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from scalehp.errors import IntegrityError, ScalehpError, SpecError, escape

# ---------------------------------------------------------------------------
# Output helpers


MAX_ERROR = 2000
"""Characters of an error line shown; a file may hold a key or value megabytes long."""


def print_error(message: object) -> None:
    """The one way the CLI prints an error: ``error: <message>``, one line, escaped, at most :data:`MAX_ERROR` long
    (a :class:`SpecError` that found more problems in the file: a line for each of them too)."""
    text = escape(str(message))
    if len(text) > MAX_ERROR:
        text = f"{text[:MAX_ERROR]}… ({len(text) - MAX_ERROR} more characters)"
    click.secho(f"error: {text}", err=True, fg="red")
    for more in getattr(message, "also", ()):  # a file's other problems found in the same pass: a line each
        print_error(more)


def print_warning(message: object) -> None:
    click.secho(f"warning: {escape(str(message))}", err=True, fg="yellow")


def check_output(path: str, *, force: bool = False, inputs: tuple[str, ...] = ()) -> None:
    """Refuse a file named with ``-o`` that :func:`write_output` would not write (a :class:`SpecError`
    naming the file, exit 2): a symbolic link (never written through, even with ``force``), one
    of ``inputs`` (even with ``force``), an existing file unless ``force``, anything that is not
    a regular file (a folder, ``/dev/full``), a missing folder.
    """
    target = Path(path)
    if os.path.islink(target):
        raise SpecError("is a symbolic link; scalehp does not write through links (name another file)", source=path)
    for name in inputs:
        try:
            if os.path.samefile(target, name):
                raise SpecError(f"is the input file {name}; write the output to another file", source=path)
        except OSError:
            continue
    try:
        info = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror or exc.__class__.__name__}", source=path) from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            raise SpecError("cannot write: not a regular file", source=path)
        if not force:
            raise SpecError("already exists; add --force to replace it", source=path)
    if not target.parent.is_dir():
        raise SpecError(f"cannot write: no such folder {target.parent}", source=path)


def write_output(path: str, data: str | bytes, *, force: bool = False, inputs: tuple[str, ...] = ()) -> None:
    """Write a file the user named with ``-o``, whole or not at all, after :func:`check_output`.

    The data goes to a temporary file in the same folder, renamed over ``path`` once
    complete, so a full disk or any other error leaves no partial file.
    """
    check_output(path, force=force, inputs=inputs)
    target = Path(path)
    folder = target.parent
    payload = data.encode("utf-8") if isinstance(data, str) else data
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)  # replaces a link planted meanwhile, never writes through it
    except OSError as exc:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
        raise SpecError(f"cannot write: {exc.strerror or exc.__class__.__name__}", source=path) from None


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if (abs(value) >= 1e-3 or value == 0) else f"{value:.3e}"
    return escape(str(value))


def print_table(rows: list[dict[str, Any]], fmt: str = "table") -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        if fmt == "table":
            click.echo("(no rows)")
        return
    columns = list(rows[0])
    if fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return
    cells = [[fmt_value(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def frame_rows(frame: Any) -> list[dict[str, Any]]:
    rows = frame.to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)


def load_plan(path: str):  # noqa: ANN202
    from scalehp.compiler import compile_plan
    from scalehp.spec import load_experiment

    return compile_plan(load_experiment(path))


# ---------------------------------------------------------------------------
# Commands


_NO_ARGS = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _Group(click.Group):
    """Turns scalehp errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = os.environ.get("SCALEHP_DEBUG") == "1" or "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except (SpecError, IntegrityError) as exc:
            if debug:
                raise
            print_error(exc)
            ctx.exit(2)
        except ScalehpError as exc:
            if debug:
                raise
            print_error(exc)
            ctx.exit(2 if getattr(exc, "damaged", False) else 1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except _NO_ARGS:
            raise  # a command given no arguments shows its help
        except click.UsageError as exc:  # a bad option or argument: one line too, with where to look
            if debug:
                raise
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            print_error(f"{exc.format_message()} (see '{where} --help')")
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks.")
@click.version_option(package_name="scalehp")
def main(debug: bool) -> None:
    """Declarative hyperparameter tuning on Ray Tune, with every result in Parquet.

    \b
    scalehp validate experiments/digits_asha.yaml
    scalehp plan experiments/digits_asha.yaml
    scalehp run experiments/digits_asha.yaml
    scalehp results show results/digits-mlp-asha
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
