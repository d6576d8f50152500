"""Run a command line per trial: the trainable behind ``command:`` in an experiment file.

For programs that are not Python functions (or were written for another tuner), the
experiment gives a command instead of a trainable::

    command: ${python} train.py ${args} --out=runs/${trial_id}

Each trial runs the command once, with the placeholders filled in from the trial's config:

==========================  =================================================================
``${name}``                 the value of param ``name`` (dotted names too: ``${optimizer.lr}``);
                            an argument holding an inactive param of a conditional space is
                            left out
``${args}``                 ``--name=value`` for every param of the trial (several arguments)
``${args_no_hyphens}``      ``name=value`` for every param (Hydra's overrides)
``${args_no_boolean_flags}`` like ``${args}``, but a true boolean is ``--name`` and a false one
                            is left out
``${args_json}``            the params as one JSON object (one argument)
``${args_json_file}``       the path of a JSON file holding the params, removed afterwards
``${trial_id}``             the trial's id
``${python}``               the Python that runs scalehp (``sys.executable``)
``$${``                     a literal ``${``
==========================  =================================================================

Values are written as Python writes them (``0.001``, ``1e-05``, ``True``, ``adam``), ``null``
for None, and JSON for lists and mappings. No shell is involved: a string command is split
into words the way a shell would (quotes work), but pipes, ``&&`` and ``$VAR`` do not.
The program also finds its params in the environment: ``SCALEHP_PARAMS`` (JSON),
``SCALEHP_TRIAL_ID`` and ``SCALEHP_MAX_STEPS``.

The program reports by printing (stdout or stderr). A line that holds the experiment's
metric is one report:

* ``name=value`` pairs, Katib's format: ``epoch=3 val_loss=0.231 val/acc=0.91``; names may
  hold ``/``, ``.`` and ``-`` (``metrics/mAP_0.5=0.61``);
* or a JSON object: ``{"epoch": 3, "val_loss": 0.231}`` (nested objects flattened with ``/``);
* or what ``metric_format`` finds: a regular expression with groups ``name`` and ``value``
  (or two plain groups, name first, as Katib's ``metricsFormat``).

``step=N`` (or else ``epoch=N``) on the line gives the step; without one, reports count
1, 2, 3… A program that counts from 0 (its first report says ``epoch=0``) has its steps
shifted by one. A line whose step is not above the last report's is ignored (a warning is
logged once per trial); at ``budget.max_steps`` the trial is complete and the program is
ended.

``command.step`` names what the step is when a program prints metrics more often than once
a step (a loss every 10 batches, say): a field (``epoch``: ``epoch=3``, a JSON key or a
``metric_format`` pair) or a regular expression with one group (``Train Epoch: (\\d+)``).
Then a line only counts by naming a later step: a step is reported when the next one begins
(or the program ends), with the last value of each metric printed meanwhile, whether or not
the line that named the step held it; lines naming no step update those values. A program
that never names a step reports once, at step 1, when it ends.

``command.client`` (``wandb`` or ``nni``) runs a W&B sweep program or an NNI trial unchanged:
see :mod:`scalehp.clients`.

A program that exits with a non-zero status fails the trial with an error that shows the
status and the last lines of its output; one that exits without ever printing the metric
stops the run (every trial would fail the same way). A line ``infeasible: <why>`` ends the
program and the trial as infeasible (:class:`~scalehp.errors.Infeasible`).

Every trial's program runs in its own process group: when the scheduler stops the trial,
or the trial ends in any other way, the whole group (the program and its children) is
terminated. POSIX only.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from scalehp import schedulers
from scalehp.errors import Infeasible, TrialError
from scalehp.trial import MetricMissingError, TrainableKind, Trial, load_trainable

if TYPE_CHECKING:
    from scalehp.spec import Command, Experiment

log = logging.getLogger(__name__)

MULTI = ("args", "args_no_hyphens", "args_no_boolean_flags")
"""Placeholders that become one argument per param: they must be a whole argument."""
SINGLE = ("args_json", "args_json_file", "trial_id", "python")
"""Placeholders that become one piece of text."""
MACROS = MULTI + SINGLE
STEP_KEYS = ("step", "epoch")
TAIL_LINES = 50
GRACE_S = 1.0  # SIGTERM -> SIGKILL; Ray gives a reused actor 2 s to end the previous trial

_PLACEHOLDER = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_NAME = r"(?P<name>[A-Za-z_][\w./-]*)"
_VALUE = r"(?P<value>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?i:nan|inf(?:inity)?))"
INFEASIBLE_LINE = re.compile(r"\s*infeasible:(.*)$", re.IGNORECASE)
"""A line ``infeasible: <why>``: the program's config cannot be trained (:class:`~scalehp.errors.Infeasible`)."""
DEFAULT_FORMAT = re.compile(rf"(?<![\w./-]){_NAME}\s*=\s*{_VALUE}(?!\w|\.\d)")
"""The default metric format: ``name=value`` pairs (Katib's StdOut format, names may hold / and .)."""


class CommandError(TrialError):
    """The trial's command could not start, or exited with a non-zero status."""


# ---------------------------------------------------------------------------
# Templates


def template(command: Command | str | Sequence[str]) -> list[str]:
    """The command's words, placeholders not yet filled in.

    Raises:
        ValueError: a string command with unbalanced quotes.
    """
    run = getattr(command, "run", command)
    if isinstance(run, str):
        return shlex.split(run)
    return [str(word) for word in run]


def _pieces(word: str) -> list[str | tuple[str]]:
    """A word as literal text and ``(placeholder,)`` tuples."""
    out: list[str | tuple[str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(word):
        out.append(word[position : match.start()])
        out.append("${" if match.group(0) == "$${" else (match.group(1).strip(),))
        position = match.end()
    out.append(word[position:])
    return [p for p in out if p != ""]


def placeholders(command: Command | str | Sequence[str]) -> list[str]:
    """Every placeholder name the command uses, in order."""
    return [p[0] for word in template(command) for p in _pieces(word) if isinstance(p, tuple)]


def format_value(value: Any) -> str:
    """A param's value as a command-line word.

    Example:
        >>> [format_value(v) for v in (0.001, 1e-05, 3, True, "adam", None, [1, 2])]
        ['0.001', '1e-05', '3', 'True', 'adam', 'null', '[1, 2]']
    """
    value = _plain(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=_plain)
    return str(value)


def _plain(value: Any) -> Any:
    """numpy scalars (as some searchers suggest them) as Python values."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    if isinstance(value, tuple):
        return list(value)
    return value


def params_json(config: dict[str, Any]) -> str:
    """The trial's params as one JSON object (``${args_json}``, ``SCALEHP_PARAMS``)."""
    return json.dumps({k: _plain(v) for k, v in config.items()}, default=_plain)


def _multi(macro: str, config: dict[str, Any]) -> list[str]:
    words = []
    for name, value in config.items():
        value = _plain(value)
        if macro == "args_no_boolean_flags" and isinstance(value, bool):
            if value:
                words.append(f"--{name}")
            continue
        prefix = "" if macro == "args_no_hyphens" else "--"
        words.append(f"{prefix}{name}={format_value(value)}")
    return words


def expand(
    command: Command | str | Sequence[str],
    config: dict[str, Any],
    trial_id: str,
    *,
    params: Iterable[str] | None = None,
    json_file: str | None = None,
) -> list[str]:
    """The command line of one trial: every placeholder filled in from ``config``.

    Args:
        command: the experiment's command (or its ``run``: a string or a list of words).
        config: the trial's params (the active ones, as a trainable receives them).
        trial_id: fills ``${trial_id}``.
        params: every param the space can hold; a ``${name}`` of one that is missing from
            ``config`` (inactive in a conditional space) leaves its whole argument out.
            Without it, only names in ``config`` are known.
        json_file: fills ``${args_json_file}``.

    Raises:
        ValueError: an unknown placeholder, or a multi-argument placeholder inside a word.

    Example:
        >>> expand("${python} train.py ${args} --tag=t${trial_id}", {"lr": 0.01, "opt": "adam"}, "7")[1:]
        ['train.py', '--lr=0.01', '--opt=adam', '--tag=t7']
    """
    known = set(params or ()) | set(config)
    argv: list[str] = []
    for word in template(command):
        pieces = _pieces(word)
        if len(pieces) == 1 and isinstance(pieces[0], tuple) and pieces[0][0] in MULTI:
            argv += _multi(pieces[0][0], config)
            continue
        text, dropped = [], False
        for piece in pieces:
            if isinstance(piece, str):
                text.append(piece)
                continue
            name = piece[0]
            if name in MULTI:
                raise ValueError(f"${{{name}}} becomes several arguments: write it as a word of its own")
            if name == "args_json":
                text.append(params_json(config))
            elif name == "args_json_file":
                text.append(json_file or "<params.json>")
            elif name == "trial_id":
                text.append(str(trial_id))
            elif name == "python":
                text.append(sys.executable)
            elif name in config:
                text.append(format_value(config[name]))
            elif name in known:
                dropped = True  # an inactive param: the whole argument goes
            else:
                raise ValueError(unknown_placeholder(name, known))
        if not dropped:
            argv.append("".join(text))
    return argv


def unknown_placeholder(name: str, params: Iterable[str]) -> str:
    """The message for a ``${name}`` that is neither a param nor a macro."""
    candidates = list(params) + list(MACROS)
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    hint = f" (did you mean ${{{close[0]}}}?)" if close else ""
    return (
        f"unknown placeholder ${{{name}}}{hint}: use a param of the space, "
        f"or one of {', '.join('${' + m + '}' for m in MACROS)}"
    )


def check(experiment: Experiment) -> None:
    """Compile-time checks of an experiment's command (called by the compiler).

    Raises:
        SpecError: unbalanced quotes, an unknown placeholder, a multi-argument placeholder
            inside a word, or a scheduler that needs checkpoints.
    """
    from scalehp.space import flatten_space

    command = experiment.command
    if command is None:
        return
    try:
        words = template(command)
    except ValueError as exc:
        raise experiment.error("command.run", f"cannot split the command into words: {exc}") from None
    params = [node.name for node in flatten_space(experiment.space)]
    for word in words:
        pieces = _pieces(word)
        for piece in pieces:
            if not isinstance(piece, tuple):
                continue
            name = piece[0]
            if name in MACROS and name in params:
                raise experiment.error(
                    "command.run", f"${{{name}}} is ambiguous: a param is named like the macro; rename the param"
                )
            if name in MULTI and len(pieces) > 1:
                raise experiment.error(
                    "command.run",
                    f"${{{name}}} becomes several arguments: write it as a word of its own, not in {word!r}",
                )
            if name not in MACROS and name not in params:
                raise experiment.error("command.run", unknown_placeholder(name, params))
    scheduler = experiment.scheduler.name
    why = schedulers.needs_checkpoints(scheduler)
    if why:
        raise experiment.error(
            "scheduler",
            f"the {scheduler} scheduler {why}, and a command cannot hand over a checkpoint (it restarts from "
            "scratch); use scheduler asha, median_stopping or fifo, or a Python trainable",
        )


def program_of(command: Command) -> list[str]:
    """The words that name what runs: the program, and the script when the program is a Python."""
    words = template(command)
    if not words:
        return []
    program = sys.executable if words[0] == "${python}" else words[0]
    named = [program]
    if _is_python(program) and len(words) > 1 and words[1].endswith(".py") and "${" not in words[1]:
        named.append(words[1])
    return named


def _is_python(program: str) -> bool:
    return re.fullmatch(r"python[0-9.]*", Path(program).name) is not None


def working_folder(command: Command) -> Path:
    """Where the command runs: ``cwd`` relative to the folder scalehp was started in.

    Inside a Ray trial the process has moved into the trial's folder; Ray keeps the
    original in ``TUNE_ORIG_WORKING_DIR``.
    """
    base = Path(os.environ.get("TUNE_ORIG_WORKING_DIR") or os.getcwd())
    return base / Path(command.cwd).expanduser() if command.cwd else base


def check_program(experiment: Experiment) -> None:
    """That the command's program (and a Python script it runs) can be found, from here.

    Raises:
        SpecError: naming ``command.run`` (or ``command.cwd``) and what is missing.
    """
    command = experiment.command
    if command is None:
        return
    folder = working_folder(command)
    if not folder.is_dir():
        raise experiment.error("command.cwd", f"no such folder: {folder}")
    named = program_of(command)
    if not named or "${" in named[0]:
        return
    program = named[0]
    path = os.environ.get("PATH", "")
    path = command.env.get("PATH", path)
    if os.sep in program:
        target = folder / program
        if not target.is_file():
            raise experiment.error("command.run", f"no such program: {program} (looked in {folder})")
        if not os.access(target, os.X_OK):
            raise experiment.error("command.run", f"{program} is not executable (chmod +x, or run it with ${{python}})")
    elif shutil.which(program, path=path) is None:
        raise experiment.error("command.run", f"program {program!r} is not on PATH")
    if len(named) > 1 and not (folder / named[1]).is_file():
        raise experiment.error("command.run", f"no such script: {named[1]} (looked in {folder})")


# ---------------------------------------------------------------------------
# Output


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}/"))
        elif (number := _number(value)) is not None:
            out[f"{prefix}{key}"] = number
    return out


def _pairs(line: str, pattern: re.Pattern[str]) -> dict[str, float]:
    named = {"name", "value"} <= set(pattern.groupindex)
    out: dict[str, float] = {}
    for match in pattern.finditer(line):
        name, text = (match.group("name"), match.group("value")) if named else (match.group(1), match.group(2))
        if not name or text is None:
            continue
        try:
            out[name.strip()] = float(text)
        except ValueError:
            continue
    return out


def compile_format(metric_format: str | None) -> re.Pattern[str]:
    """The regular expression that finds ``name``/``value`` pairs in a line."""
    return re.compile(metric_format) if metric_format else DEFAULT_FORMAT


def line_metrics(text: str, pattern: re.Pattern[str]) -> dict[str, float]:
    """Every number a line holds, by name: a JSON object's (flattened), else the pattern's pairs."""
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            found = _flat(data)
            if found:
                return found
    return _pairs(text, pattern)


def _whole(value: float | None) -> int | None:
    """A step's value: a whole number >= 0, else None."""
    if value is None or not math.isfinite(value) or value < 0 or not float(value).is_integer():
        return None
    return int(value)


class StepField:
    """``command.step``: what in a line is the step (a field name, or a pattern with one group)."""

    def __init__(self, step: str) -> None:
        self.name = None if "(" in step else step
        self.pattern = re.compile(step) if self.name is None else None

    def find(self, text: str, metrics: dict[str, float]) -> int | None:
        """The step the line names (the field is taken out of ``metrics``), or None."""
        if self.pattern is not None:
            match = self.pattern.search(text)
            if match is None:
                return None
            try:
                return _whole(float(match.group(1)))
            except (TypeError, ValueError):
                return None
        value = metrics.pop(self.name, None)
        if value is None:  # a metric_format that finds other pairs: the field as name=value
            value = _pairs(text, DEFAULT_FORMAT).get(self.name)
        return _whole(value)


def parse_line(
    line: str, metric: str, pattern: str | re.Pattern[str] | None = None
) -> tuple[int | None, dict[str, float]] | None:
    """One output line as a report: ``(step or None, metrics)``, or None when it is not one.

    A line is a report when it holds ``metric``. Its step is its ``step`` (else ``epoch``)
    when that is a whole number >= 0; the key that gave the step is not a metric.

    Example:
        >>> parse_line("epoch=2 val_loss=1.5e-3 metrics/mAP_0.5=0.61", "val_loss")
        (2, {'val_loss': 0.0015, 'metrics/mAP_0.5': 0.61})
        >>> parse_line('{"step": 4, "loss": 0.25, "note": "x"}', "loss")
        (4, {'loss': 0.25})
        >>> parse_line("loading data", "loss") is None
        True
    """
    compiled = pattern if isinstance(pattern, re.Pattern) else compile_format(pattern)
    metrics = line_metrics(line, compiled)
    if metric not in metrics:
        return None
    step = None
    for key in STEP_KEYS:
        value = metrics.get(key)
        if value is not None and math.isfinite(value) and value >= 0 and float(value).is_integer():
            step = int(value)
            del metrics[key]
            break
    metrics.pop("step", None)  # reserved: a step that is not a whole number is no metric either
    return step, metrics


# ---------------------------------------------------------------------------
# Running


def _end_group(process: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """Terminate the process group of ``process`` (SIGTERM, then SIGKILL after ``grace_s``)."""
    group = process.pid  # the program leads its own group (start_new_session)
    if process.poll() is None:
        _signal_group(group, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            process.wait()
    _signal_group(group, signal.SIGKILL)  # children left behind by the program


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


# A watchdog per program, outside its process group: it waits for one line on stdin. "done"
# means the trial ended the program itself; end of input without it means the process that
# runs the trial died (a Ray actor torn down or killed): then it ends the program's group.
_WATCHDOG = """
import os, signal, sys, time
group = int(sys.argv[1])
if sys.stdin.readline().strip() != "done":
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except OSError:
            break
        time.sleep(float(sys.argv[2]))
"""


def _watch(process: subprocess.Popen, grace_s: float) -> subprocess.Popen | None:
    try:
        return subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, str(process.pid), str(grace_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:  # no watchdog: the trial still ends its program itself
        log.warning("cannot start a watchdog for the command: %s", exc)
        return None


def _release(watchdog: subprocess.Popen | None) -> None:
    if watchdog is None:
        return
    try:
        watchdog.communicate(b"done\n", timeout=1.0)
    except (OSError, subprocess.TimeoutExpired):
        watchdog.kill()
        watchdog.wait()


def _reader(stream: Any, lines: queue.Queue, closed: threading.Event) -> None:
    try:
        for line in stream:
            while not closed.is_set():
                try:
                    lines.put(line, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if closed.is_set():
                return
    except (OSError, ValueError):
        pass
    finally:
        while not closed.is_set():
            try:
                lines.put(None, timeout=0.1)
                return
            except queue.Full:
                continue


def _status(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _shorten(argv: list[str], limit: int = 300) -> str:
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(lines: deque) -> str:
    if not lines:
        return "it printed nothing"
    return "last lines of its output:\n" + "\n".join(f"  | {line}" for line in lines)


def run_command(
    command: Command,
    config: dict[str, Any],
    trial: Trial,
    *,
    params: Iterable[str] | None = None,
    echo: Callable[[str], None] | None = None,
    grace_s: float = GRACE_S,
    branches: Iterable[str] = (),
) -> None:
    """Run the command of one trial and report every metrics line it prints to ``trial``.

    Args:
        command: the experiment's command.
        config: the trial's params.
        trial: receives ``trial.report(step, metrics)`` for every report line.
        params: every param name of the space (see :func:`expand`).
        echo: called with every line the program prints (without the newline).
        grace_s: seconds between SIGTERM and SIGKILL when the program must end early.
        branches: the conditional params of the space (an NNI stand-in nests their options).

    Raises:
        CommandError: the program cannot start, or exits with a non-zero status.
        MetricMissingError: the program exits without ever printing the metric.
    """
    folder = working_folder(command)
    pattern = compile_format(command.metric_format)
    with tempfile.TemporaryDirectory(prefix="scalehp-command-") as scratch:
        json_file = None
        if "args_json_file" in placeholders(command):
            json_file = str(Path(scratch) / "params.json")
            Path(json_file).write_text(params_json(config))
        argv = expand(command, config, trial.trial_id, params=params, json_file=json_file)
        env = {
            **os.environ,
            **command.env,
            "SCALEHP_TRIAL_ID": str(trial.trial_id),
            "SCALEHP_PARAMS": params_json(config),
            "SCALEHP_MAX_STEPS": str(trial.max_steps),
            "SCALEHP_METRIC": trial.metric,
            # a Python program's lines as it prints them, unless the experiment says otherwise
            "PYTHONUNBUFFERED": command.env.get("PYTHONUNBUFFERED", os.environ.get("PYTHONUNBUFFERED", "1")),
        }
        if command.client is not None:  # the stand-in of its client library goes first
            from scalehp.clients import FOLDER

            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(FOLDER), env.get("PYTHONPATH")) if p)
            env["SCALEHP_BRANCHES"] = json.dumps(list(branches))
        try:
            process = subprocess.Popen(
                argv,
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(
                f"cannot start the command {_shorten(argv)} in {folder}: {exc.strerror or exc}"
            ) from None
        watchdog = _watch(process, grace_s)
        lines: queue.Queue = queue.Queue(maxsize=1000)  # bounded: a program that floods its output waits
        closed = threading.Event()
        reader = threading.Thread(target=_reader, args=(process.stdout, lines, closed), daemon=True)
        reader.start()
        try:
            output = _Output(process, lines, argv, echo, grace_s)
            if command.step is None:
                _follow(output, trial, pattern)
            else:
                _follow_steps(output, trial, pattern, StepField(command.step))
        finally:
            closed.set()
            _end_group(process, grace_s)
            _release(watchdog)
            reader.join(timeout=0.5)
            if process.stdout is not None:
                process.stdout.close()


def _follow(output: _Output, trial: Trial, pattern: re.Pattern[str]) -> None:
    """Every line that holds the metric is a report (its step from ``step=``/``epoch=``, else the next)."""
    last: int | None = None
    offset = 0
    warned = False
    for text in output:
        parsed = parse_line(text, trial.metric, pattern)
        if parsed is None:
            continue
        step, metrics = parsed
        if step is None:
            step = (last or 0) + 1
        else:
            if last is None and step == 0:
                offset = 1  # the program counts from 0
            step += offset
        if last is not None and step <= last:
            if not warned:
                log.warning(
                    "trial %s: a report for step %d after step %d is ignored (print the metric once per step)",
                    trial.trial_id,
                    step,
                    last,
                )
                warned = True
            continue
        if step > trial.max_steps:
            log.warning(
                "trial %s: the program reports step %d, beyond budget.max_steps (%d); it is ended",
                trial.trial_id,
                step,
                trial.max_steps,
            )
            return
        trial.report(step, metrics)
        last = step
        if step >= trial.max_steps:
            return  # the budget is reached: the caller ends the program
    output.exited()
    if last is None:
        raise output.missing(trial)


def _follow_steps(output: _Output, trial: Trial, pattern: re.Pattern[str], field: StepField) -> None:
    """``command.step``: a step is reported when a line names a later one, or the program ends
    (then the step it was in, or step 1 when it never named one), with the last value of each
    metric printed while it was the current step."""
    current: int | None = None
    values: dict[str, float] = {}
    reported: int | None = None
    offset = 0
    warned = False

    def report() -> bool:
        """Report the current step if the metric was printed in it; True when that ends the trial."""
        nonlocal reported
        if trial.metric not in values:
            return False
        step = current or 1
        trial.report(step, dict(values))
        reported = step
        return step >= trial.max_steps

    for text in output:
        metrics = line_metrics(text, pattern)
        step = field.find(text, metrics)
        metrics.pop("step", None)
        if step is not None:
            if current is None and step == 0:
                offset = 1  # the program counts from 0
            step += offset
            if current is not None and step < current or reported is not None and step <= reported:
                if not warned:
                    log.warning("trial %s: step %d after step %d is ignored (steps only go up)", trial.trial_id, step, current)
                    warned = True
                continue
            if current is not None and step > current:
                if report():
                    return  # the budget is reached: the caller ends the program
                values = {}
            if step > trial.max_steps:
                log.warning(
                    "trial %s: the program begins step %d, beyond budget.max_steps (%d); it is ended",
                    trial.trial_id, step, trial.max_steps,
                )
                return
            current = step
        values.update(metrics)
    output.exited()
    report()  # the step it ended in
    if reported is None:
        raise output.missing(trial)


class _Output:
    """A running program's output as its trial follows it: the lines (kept in ``tail``, passed to
    ``echo``), then its exit."""

    def __init__(
        self, process: subprocess.Popen, lines: queue.Queue, argv: list[str], echo: Callable[[str], None] | None,
        grace_s: float,
    ) -> None:
        self.process, self.lines, self.argv, self.echo, self.grace_s = process, lines, argv, echo, grace_s
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)

    def __iter__(self) -> Iterator[str]:
        """The lines as the program prints them, until its output closes, or until ``grace_s``
        after it exits while a child of it holds the pipe.

        Raises:
            Infeasible: a line ``infeasible: <why>`` (the caller ends the program).
        """
        exited_at: float | None = None
        while True:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:  # the program is gone, but a child of it may hold the pipe
                    exited_at = exited_at or time.monotonic()
                    if time.monotonic() - exited_at > self.grace_s:
                        return
                continue
            if line is None:
                return
            text = line.rstrip("\r\n")
            self.tail.append(text if len(text) <= 1000 else text[:999] + "…")
            if self.echo is not None:
                self.echo(text)
            found = INFEASIBLE_LINE.match(text)
            if found:
                raise Infeasible(found.group(1).strip()[:1000] or "infeasible")
            yield text

    def exited(self) -> None:
        """After the output closed: the program's exit.

        Raises:
            CommandError: it exited with a non-zero status.
        """
        try:
            returncode = self.process.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:  # it closed its output but runs on
            _end_group(self.process, self.grace_s)
            returncode = self.process.wait()
        if returncode != 0:
            raise CommandError(f"the command {_status(returncode)}: {_shorten(self.argv)}\n{_tail(self.tail)}")

    def missing(self, trial: Trial) -> MetricMissingError:
        return MetricMissingError(
            f"the command exited without printing the metric {trial.metric!r} (as name=value, a JSON object "
            f"or metric_format): check metric.name against what it prints\n{_tail(self.tail)}"
        )


def print_line(line: str) -> None:
    """Pass a program's line on to this process's stdout (a Ray worker's log; shown by ``run -v``)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class CommandTrainable:
    """The ``(config, trial)`` trainable of an experiment with a ``command``.

    Example:
        >>> from scalehp.spec import Command
        >>> from scalehp.trial import LocalTrial
        >>> train = CommandTrainable(Command(run=["${python}", "-c", "print('loss=0.5')"]))
        >>> trial = LocalTrial(max_steps=3, metric="loss")
        >>> train({}, trial)
        >>> trial.reports
        [{'step': 1, 'loss': 0.5}]
    """

    def __init__(
        self, command: Command, params: Iterable[str] = (), echo: Callable[[str], None] | None = None,
        branches: Iterable[str] = (),
    ) -> None:
        self.command = command
        self.params = tuple(params)
        self.echo = echo
        self.branches = tuple(branches)

    def __call__(self, config: dict[str, Any], trial: Trial) -> None:
        run_command(self.command, config, trial, params=self.params, echo=self.echo, branches=self.branches)


def command_trainable(experiment: Experiment, echo: Callable[[str], None] | None = None) -> CommandTrainable:
    """The trainable that runs ``experiment.command`` for every trial."""
    from scalehp.space import flatten_space

    if experiment.command is None:
        raise ValueError(f"experiment {experiment.name!r} has no command")
    nodes = flatten_space(experiment.space)
    branches = [node.name for node in nodes if node.param.kind == "conditional"]
    return CommandTrainable(experiment.command, [node.name for node in nodes], echo, branches)


def experiment_trainable(
    experiment: Experiment, *, echo: Callable[[str], None] | None = None
) -> tuple[Callable, TrainableKind]:
    """The function each trial of ``experiment`` runs, and its calling convention.

    The imported ``trainable``, or for an experiment with a ``command`` the trainable that
    runs it (``echo`` gets every line the program prints).

    Raises:
        SpecError: the trainable cannot be imported, or the command's program is not found.
    """
    if experiment.command is not None:
        check_program(experiment)
        return command_trainable(experiment, echo=echo), "scalehp"
    return load_trainable(experiment.trainable, source=experiment.source, line=experiment.line_of("trainable"))
