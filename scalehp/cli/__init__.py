"""The ``scalehp`` command line: the only place that prints.

One module per group of commands: ``experiment.py`` (validate, schema, plan, run, try),
``results.py`` (results ls/show), ``jobs.py`` (submit, jobs ls/status/logs/stop/fetch).

Exit codes: 0 success, 1 a run or results error, 2 an invalid experiment or usage error.
``--debug`` (or ``SCALEHP_DEBUG=1``) shows full tracebacks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from typing import Any

import click

from scalehp.errors import IntegrityError, ScalehpError, SpecError

# ---------------------------------------------------------------------------
# Output helpers


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if (abs(value) >= 1e-3 or value == 0) else f"{value:.3e}"
    return str(value)


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


class _Group(click.Group):
    """Turns scalehp errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = os.environ.get("SCALEHP_DEBUG") == "1" or "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except (SpecError, IntegrityError) as exc:
            if debug:
                raise
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(2)
        except ScalehpError as exc:
            if debug:
                raise
            click.secho(f"error: {exc}", err=True, fg="red")
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


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


# the commands register themselves on ``main``
from scalehp.cli import experiment, imports, jobs, report, results  # noqa: E402, F401
