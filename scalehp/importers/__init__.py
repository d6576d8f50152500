"""Other tools' sweep definitions -> scalehp experiment files (``scalehp import``).

One module per source format, each with ``convert(source: Source) -> Imported``::

    wandb          W&B Sweeps configuration (sweep.yaml)
    katib          Kubeflow Katib Experiment manifest
    nni            NNI experiment config (with its search space, inline or in a file)
    determined     Determined experiment config (searcher + hyperparameters)
    hydra-optuna   Hydra's Optuna sweeper config (hydra.sweeper)

A converter never drops a setting silently: every setting it cannot carry over exactly
becomes a :class:`Note` (what was chosen instead, and why), and a setting with no sensible
equivalent (or a key the source tool does not have) is a :class:`~scalehp.errors.SpecError`
naming the source file, line and key.
The result is validated and compiled like any experiment file before it is written.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalehp.errors import ScalehpError, SpecError, escape
from scalehp.spec import MAX_DEPTH, dump_yaml, line_in, read_text_file, read_yaml

FORMATS = {
    "wandb": "scalehp.importers.wandb",
    "katib": "scalehp.importers.katib",
    "nni": "scalehp.importers.nni",
    "determined": "scalehp.importers.determined",
    "hydra-optuna": "scalehp.importers.hydra_optuna",
}

ORDER = (
    "version",
    "name",
    "description",
    "trainable",
    "command",
    "metric",
    "budget",
    "resources",
    "concurrency",
    "seed",
    "space",
    "search",
    "scheduler",
    "failure",
    "checkpoints",
    "results",
)
"""The usual order of an experiment file's keys."""


@dataclass(frozen=True)
class Note:
    """A setting of the source that was not carried over exactly."""

    path: str  # key path in the source file, e.g. ``parameters.lr.distribution``
    message: str  # what it became (the closest equivalent) and why
    line: int | None = None


@dataclass
class Source:
    """A source file as plain data, with the line of every key path (for errors and notes)."""

    data: Any
    path: str  # the file, as given
    lines: dict[tuple, int] = field(default_factory=dict)
    program: str | None = None  # ``scalehp import --program``: the script the trials run (formats that take it)

    def line_of(self, path: str) -> int | None:
        return line_in(self.lines, path)

    def error(self, path: str, message: str) -> SpecError:
        """A :class:`SpecError` about ``path`` in the source file (on one line, whatever the keys hold)."""
        return SpecError(
            brief(message, 300), source=one_line(self.path), path=brief(path, 200), line=self.line_of(path)
        )

    def note(self, path: str, message: str) -> Note:
        return Note(brief(path, 200), brief(message, 1000), self.line_of(path))

    def sibling(self, name: Any, at: str) -> Source:
        """Another file named in this one at key ``at`` (e.g. NNI's ``searchSpaceFile``).

        ``name`` is relative to this file's folder and must stay inside it: an absolute path,
        ``~``, or a path whose real path (symlinks followed) leaves the folder is an error. The
        other file's content never appears in an error: it could be any file the user can read.
        """
        if not isinstance(name, str) or not name.strip():
            raise self.error(at, f"expected a file name, got {name!r}")
        if "\0" in name:
            raise self.error(at, "a file name cannot hold a NUL byte")
        if name.startswith("~") or os.path.isabs(name):
            raise self.error(at, f"{name!r} is not a path relative to this file's folder; give one inside it")
        folder = os.path.realpath(Path(self.path).parent)
        target = os.path.realpath(os.path.join(folder, name))
        if os.path.commonpath([folder, target]) != folder:
            raise self.error(
                at, f"{name!r} leads outside this file's folder (symlinks followed); give a file inside it"
            )
        return read_source(target, at=(self, at))


@dataclass
class Imported:
    """A converted experiment: plain data in the usual key order, and the notes on what changed."""

    data: dict[str, Any]
    notes: list[Note] = field(default_factory=list)

    def yaml(self) -> str:
        """The experiment file's text."""
        return dump_yaml(ordered(self.data))


def ordered(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its keys in the usual order (unknown keys last, as given)."""
    rank = {key: i for i, key in enumerate(ORDER)}
    return dict(sorted(data.items(), key=lambda item: rank.get(item[0], len(ORDER))))


def read_source(path: str | Path, at: tuple[Source, str] | None = None) -> Source:
    """Read a YAML or JSON file strictly (``1e-5`` is a number, a key given twice is an error).

    ``at`` is the file and key that named this one: an error reading it then shows no text of it.

    Raises:
        SpecError: the file cannot be read, is not valid YAML or JSON, or nests more than
            :data:`MAX_DEPTH` levels.
    """
    path = Path(path)
    name = str(path)
    try:
        if "\0" in name:
            raise SpecError("a file name cannot hold a NUL byte", source=one_line(name))
        text = read_text_file(path)
    except SpecError as exc:  # its message holds no text of the file
        if at is not None:
            raise at[0].error(at[1], f"cannot read {name}: {exc.message}") from None
        raise
    if _is_code(path, text):
        problem = f"{name}: Python code, not a sweep file; give the file that defines the sweep (YAML or JSON)"
        if at is not None:
            raise at[0].error(at[1], problem)
        raise SpecError(problem.split(": ", 1)[1], source=one_line(name))
    try:
        if path.suffix == ".json":
            return Source(_read_json(text, name), name)
        data, lines = read_yaml(text, name)  # depth, huge numbers and aliases are checked there
        return Source(data, name, lines)
    except SpecError as exc:
        if at is None:
            raise
        where = f"{name}:{exc.line}" if exc.line else name
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise at[0].error(
            at[1],
            f"{where}: not valid {kind}, or a key given twice, or nested too deeply (the file's text is not shown)",
        ) from None


def _is_code(path: Path, text: str) -> bool:
    """A Python file (by its suffix, or its first line of code) given where a sweep file belongs."""
    if path.suffix in (".py", ".pyw", ".ipynb"):
        return True
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return stripped.startswith(("import ", "from ", "def ", "class ", "if __name__", "@"))
    return False


class _BadJson(ScalehpError, ValueError):
    """A JSON text that parses but is not what a sweep file holds (the message names no text of it)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadJson(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > 4300:
        raise _BadJson("a number of more than 4,300 digits")
    return int(text)


def _json_constant(text: str) -> Any:
    raise _BadJson(f"{text} is not a JSON number")


def _read_json(text: str, name: str) -> Any:
    """JSON strictly: no duplicate keys, NaN or Infinity; at most :data:`MAX_DEPTH` levels."""
    depth, line = _json_depth(text)
    if depth > MAX_DEPTH:
        raise SpecError(f"nested more than {MAX_DEPTH} levels deep", source=name, line=line)
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:  # its message names a position, never text
        raise SpecError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=name, line=exc.lineno) from None
    except _BadJson as exc:
        raise SpecError(f"not valid JSON: {exc}", source=name) from None


def _json_depth(text: str) -> tuple[int, int | None]:
    """The deepest nesting of brackets outside strings, and the line where it first passes :data:`MAX_DEPTH`."""
    depth = deepest = 0
    for match in re.finditer(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]', text):
        char = match.group(0)
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return depth, text.count("\n", 0, match.start()) + 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest, None


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (as ``\\n``): safe for one line."""
    return escape(text)


def brief(text: str, limit: int) -> str:
    """:func:`one_line` of ``text``, cut to ``limit`` characters (a value quoted in a message may be huge)."""
    return escape(text, limit=limit)


def depth(data: Any) -> int:
    """How deeply ``data`` nests lists and mappings (counted without recursion), up to :data:`MAX_DEPTH` + 1."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            level += 1
            if level > MAX_DEPTH:
                return level
            deepest = max(deepest, level)
            stack.extend((child, level) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def import_file(fmt: str, path: str | Path, program: str | None = None) -> Imported:
    """Convert the sweep definition at ``path`` written for ``fmt`` and check the result compiles.

    ``program`` is the script each trial runs, for formats whose file does not name it (Hydra's
    sweeper config) or to replace the one it names (W&B's ``program``).

    Raises:
        SpecError: the source cannot be read, holds a setting with no scalehp equivalent,
            or converts to an invalid experiment.
    """
    try:
        return _import(fmt, path, program)
    except SpecError as exc:
        if len(str(exc).splitlines()) == 1:
            raise
        raise SpecError(
            one_line(exc.message), source=one_line(exc.source), path=one_line(exc.path), line=exc.line, also=exc.also
        ) from None


def _import(fmt: str, path: str | Path, program: str | None) -> Imported:
    if fmt not in FORMATS:
        raise SpecError(f"unknown source format {fmt!r}; choose one of {', '.join(FORMATS)}", source=str(path))
    source = read_source(path)
    if not isinstance(source.data, dict):
        raise SpecError(f"a {fmt} config must be a mapping of keys", source=source.path)
    module = importlib.import_module(FORMATS[fmt])
    if program is not None:
        if not getattr(module, "TAKES_PROGRAM", False):
            raise SpecError(f"--program is not used by {fmt} imports (the file names its command)", source=str(path))
        source.program = program
    imported = module.convert(source)
    check(imported, f"{path} (imported from {fmt})")
    return imported


def check(imported: Imported, label: str) -> None:
    """Validate and compile the converted experiment; a failure is a bug of the converter or an unsupported input."""
    from scalehp.compiler import compile_plan
    from scalehp.spec import experiment_from_data

    data, lines = read_yaml(imported.yaml(), label)
    compile_plan(experiment_from_data(data, source=label, lines=lines))


__all__ = [
    "FORMATS",
    "MAX_DEPTH",
    "Imported",
    "Note",
    "Source",
    "brief",
    "depth",
    "import_file",
    "one_line",
    "ordered",
    "read_source",
]
