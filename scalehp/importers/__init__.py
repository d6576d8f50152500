"""Other tools' sweep definitions -> scalehp experiment files (``scalehp import``).

One module per source format, each with ``convert(source: Source) -> Imported``::

    wandb          W&B Sweeps configuration (sweep.yaml)
    katib          Kubeflow Katib Experiment manifest
    nni            NNI experiment config (with its search space, inline or in a file)
    determined     Determined experiment config (searcher + hyperparameters)
    hydra-optuna   Hydra's Optuna sweeper config (hydra.sweeper)

A converter never drops a setting silently: every setting it cannot carry over exactly
becomes a :class:`Note` (what was chosen instead, and why), and a setting with no sensible
equivalent is a :class:`~scalehp.errors.SpecError` naming the source file, line and key.
The result is validated and compiled like any experiment file before it is written.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalehp.errors import SpecError
from scalehp.spec import dump_yaml, line_in, read_text_file, read_yaml

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
        """A :class:`SpecError` about ``path`` in the source file."""
        return SpecError(message, source=self.path, path=path, line=self.line_of(path))

    def note(self, path: str, message: str) -> Note:
        return Note(path, message, self.line_of(path))

    def sibling(self, relative: str, at: str) -> Source:
        """Another file named in this one (e.g. NNI's ``searchSpaceFile``), relative to this file's folder."""
        return read_source(Path(self.path).parent / relative, at=(self, at))


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
    """Read a YAML or JSON file strictly (``1e-5`` is a number)."""
    path = Path(path)
    try:
        text = read_text_file(path)
    except SpecError as exc:
        if at is not None:
            raise at[0].error(at[1], f"cannot read {path}: {exc.message}") from None
        raise
    if path.suffix == ".json":
        try:
            return Source(json.loads(text), str(path))
        except ValueError as exc:
            raise SpecError(f"not valid JSON: {exc}", source=str(path)) from None
    data, lines = read_yaml(text, str(path))
    return Source(data, str(path), lines)


def import_file(fmt: str, path: str | Path, program: str | None = None) -> Imported:
    """Convert the sweep definition at ``path`` written for ``fmt`` and check the result compiles.

    ``program`` is the script each trial runs, for formats whose file does not name it (Hydra's
    sweeper config) or to replace the one it names (W&B's ``program``).

    Raises:
        SpecError: the source cannot be read, holds a setting with no scalehp equivalent,
            or converts to an invalid experiment.
    """
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


__all__ = ["FORMATS", "Imported", "Note", "Source", "import_file", "ordered", "read_source"]
