"""The exceptions scalehp raises.

Every error a user can fix derives from :class:`ScalehpError`::

    ScalehpError            anything scalehp reports to the user
    ├── SpecError           the experiment file (or dict) is invalid; names file and key path
    ├── RunError            a run could not start or finish (Ray, trainable import, resources)
    │   └── RunInterrupted  SIGINT or SIGTERM stopped the run; ``scalehp resume`` finishes it
    ├── TrialError          raised inside one trial (its command failed, a report lacked the metric)
    └── ResultsError        results folders are missing, foreign or unreadable
        └── IntegrityError  a run folder is not what scalehp signed (resume refuses it)

A failing *trial* is not an exception: it becomes a row with ``status="error"``.
"""

from __future__ import annotations


def escape(text: str, *, keep: str = "", limit: int | None = None) -> str:
    r"""``text`` safe for a terminal and for a one-line message: control, format and other
    unprintable characters (escape sequences, newlines, bidi overrides, undecodable bytes of
    file names) as Python escapes. Every message built from other people's text goes through
    this: file names, keys, job logs, names under a run folder.

    ``keep`` names characters left as they are (a log keeps ``"\n\t"``); with ``limit``, at
    most that many characters of ``text`` are kept and a cut is shown as ``…``.

    Example:
        >>> escape("a\x1b[31mb\nc")
        'a\\x1b[31mb\\nc'
    """
    cut = limit is not None and len(text) > limit
    if cut:
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in text)
    return text + ("…" if cut else "")


class ScalehpError(Exception):
    """Base class of every error scalehp raises on purpose."""


class SpecError(ScalehpError, ValueError):
    """An experiment is invalid.

    Attributes:
        source: the file (or ``<dict>``) the experiment came from.
        path: the dotted key path of the offending value, e.g. ``space.lr.float``.
        line: the 1-based line in ``source``, when known.
        also: the file's other problems found in the same pass (each a :class:`SpecError`), so
            that one run names them all; the CLI prints each on a line of its own.
    """

    def __init__(
        self, message: str, *, source: str = "<dict>", path: str = "", line: int | None = None, also: tuple = ()
    ):
        self.source = source
        self.path = path
        self.line = line
        self.message = message
        self.also = tuple(also)
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


class RunError(ScalehpError, RuntimeError):
    """A run could not be started, resumed or finished."""


class RunInterrupted(RunError):
    """A signal (SIGINT, SIGTERM) stopped a run; every row it had recorded is on disk.

    Attributes:
        summary: the run's :class:`~scalehp.results.summary.RunSummary` from its tables; trials that
            were still running count as ``unfinished``.
        signal: the signal's number (2 for SIGINT, 15 for SIGTERM).
    """

    def __init__(self, summary: object, signal: int):
        self.summary = summary
        self.signal = signal
        super().__init__(f"interrupted by signal {signal}: scalehp resume {getattr(summary, 'path', '')}")


class Infeasible(ScalehpError, Exception):
    """Raised by a trainable: this config cannot be trained (too large for the device, an invalid
    combination of params). The trial ends with status ``infeasible`` and the message as its
    ``error``: not a failure (no retry, not counted by ``failure.max_failed_trials``), and the
    searcher is told the config gave no result. Determined's ``InvalidHP``; a command prints a
    line ``infeasible: <why>``.
    """


class TrialError(ScalehpError, RuntimeError):
    """Raised inside a trial: the trial ends with ``status="error"`` (see :mod:`scalehp.command`, :mod:`scalehp.trial`)."""


class ResultsError(ScalehpError, ValueError):
    """Results could not be found or read.

    Attributes:
        damaged: a file in them is damaged or is not what scalehp writes (a part file that
            is not Parquet or has foreign columns, a ``plan.json`` that is not a plan); the
            command line treats it as bad input (exit code 2).
    """

    def __init__(self, message: str, *, damaged: bool = False):
        super().__init__(message)
        self.damaged = damaged


class IntegrityError(ResultsError):
    """A run folder (or the key that signs run folders) cannot be trusted: ``resume`` refuses it."""

    def __init__(self, message: str):
        super().__init__(message, damaged=True)
