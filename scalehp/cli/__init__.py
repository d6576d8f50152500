"""The ``scalehp`` command line: the only place that prints.

One module per group of commands (shared helpers in ``common.py``): ``experiment.py`` (validate, schema, plan, run, try),
``results.py`` (results ls/show), ``jobs.py`` (submit, jobs ls/status/logs/stop/fetch),
``report.py`` (sql, report, plot), ``dashboard.py`` (dashboard).

Exit codes: 0 success, 1 a run or results error, 2 an invalid experiment, a damaged results file
(part file or ``plan.json``) or a usage error.
``--debug`` (or ``SCALEHP_DEBUG=1``) shows full tracebacks.

Text from files (names, keys, values, file names) is untrusted: every error is printed by
:func:`print_error`, on one line, with control characters escaped (``\x1b`` as ``\\x1b``).
Files named with ``-o`` are written by :func:`write_output`: whole or not at all.
"""

from __future__ import annotations

from scalehp.cli.common import (
    FORMAT,
    check_output,
    fmt_value,
    frame_rows,
    load_plan,
    main,
    print_error,
    print_table,
    print_warning,
    write_output,
)

# the commands register themselves on ``main`` (they import scalehp.cli.common, never this package)
from scalehp.cli import dashboard, experiment, imports, jobs, report, results  # noqa: E402, F401  # isort: skip

__all__ = [
    "FORMAT",
    "check_output",
    "fmt_value",
    "frame_rows",
    "load_plan",
    "main",
    "print_error",
    "print_table",
    "print_warning",
    "write_output",
]
