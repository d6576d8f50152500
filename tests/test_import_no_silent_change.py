"""No silent change: every setting of every example sweep file either changes what scalehp runs,
or is named in a note, or is refused.

For each example under ``tests/import_examples`` (the files that import), each setting (a leaf
of the file: a number, a string, a boolean) is changed in a copy of the file, one at a time,
and the copy is imported again. The setting passes when the import is refused (the new value
means something scalehp will not run), when the experiment or the notes differ, or when a note
names the setting (or the section it sits in; a note on a top-level key that lists it by name).
A setting that passes none of these was dropped silently. Settings an importer keeps exactly
with nothing to write (``KEPT`` in its module: documentation fields, metrics scalehp records
anyway) pass too.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from scalehp.errors import SpecError
from scalehp.importers import FORMATS as MODULES
from scalehp.importers import import_file
from tests.test_fuzz_import import replaced

EXAMPLES = Path(__file__).parent / "import_examples"
FORMATS = {"wandb": "wandb", "katib": "katib", "nni": "nni", "determined": "determined", "hydra_optuna": "hydra-optuna"}


def _examples() -> list[tuple[str, Path]]:
    out = []
    for folder, fmt in FORMATS.items():
        for path in sorted((EXAMPLES / folder).rglob("*")):
            if path.suffix in (".yaml", ".yml") and "unmappable" not in path.parts:
                out.append((fmt, path))
    return out


def _leaves(data, prefix=()):
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _leaves(value, (*prefix, i))
    else:
        yield prefix, data


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 + 0.125
    if isinstance(value, str):
        return value + "x"
    return "x"


def _outcome(fmt, path):
    try:
        imported = import_file(fmt, path)
    except SpecError:
        return None
    return imported


def _named(dotted: str, notes) -> bool:
    top = dotted.split(".")[0]
    for note in notes:
        if note.path and (dotted == note.path or dotted.startswith(note.path + ".")):
            return True
        # a note on a top-level key that lists the section by name: "... (data, model, trainer) ..."
        listed = re.findall(r"\(([\w.\-, ]+)\)", note.message) if note.path and "." not in note.path else []
        if any(top in [name.strip() for name in group.split(",")] for group in listed):
            return True
    return False


def _kept(fmt: str, dotted: str) -> bool:
    kept = getattr(importlib.import_module(MODULES[fmt]), "KEPT", {})
    return any(fnmatch.fnmatchcase(dotted, pattern) for pattern in kept)


def _seen(imported) -> tuple:
    return imported.data, [(n.path, n.message) for n in imported.notes]


@pytest.mark.parametrize("fmt, example", _examples(), ids=lambda v: str(v).split("import_examples/")[-1])
def test_every_setting_is_mapped_named_or_refused(tmp_path, fmt, example):
    folder = tmp_path / "copy"
    shutil.copytree(example.parent, folder)
    target = folder / example.name
    text = example.read_text()
    data = yaml.safe_load(text)
    base = _outcome(fmt, target)
    if base is None:
        pytest.skip("the example itself is refused")
    silent = []
    for path, value in _leaves(data):
        if not path:
            continue
        changed = replaced(data, path, _changed(value))
        target.write_text(json.dumps(changed) if example.suffix == ".json" else yaml.safe_dump(changed))
        imported = _outcome(fmt, target)
        dotted = ".".join(str(k) for k in path)
        if imported is None or _seen(imported) != _seen(base) or _named(dotted, imported.notes) or _kept(fmt, dotted):
            continue
        silent.append(f"{dotted} = {value!r}")
    target.write_text(text)
    assert not silent, f"{example.name}: settings that change nothing and are named in no note: {silent}"


DOCS = Path(__file__).parent.parent / "docs" / "import"


def _user_names(imported) -> set[str]:
    """Names the source's author chose (params, the app's own config keys): notes on them are
    documented by what they are (a range, a distribution), not by name."""
    names: set[str] = set()
    for name in imported.data.get("space", {}):
        names.update(str(name).split("."))
    for note in imported.notes:
        if note.message.startswith("the app's own config"):
            names.update(re.findall(r"[\w.-]+", note.message.split("(", 1)[1].split(")", 1)[0]))
    for note in imported.notes:  # a param a note names by its source path: the key after a params section
        parts = note.path.split(".")
        for section in ("parameters", "params", "searchSpace", "searchSpaceFile", "search_space", "hyperparameters"):
            if section in parts and parts.index(section) + 1 < len(parts):
                names.add(parts[parts.index(section) + 1])
    return names


@pytest.mark.parametrize("fmt, example", _examples(), ids=lambda v: str(v).split("import_examples/")[-1])
def test_every_setting_a_note_names_is_in_the_import_docs(fmt, example):
    """The import docs (docs/import/<format>.md) list every setting the importer notes: a note
    on a setting the table does not mention would be a change the docs do not own up to."""
    imported = _outcome(fmt, example)
    if imported is None:
        pytest.skip("the example itself is refused")
    doc = (DOCS / f"{fmt}.md").read_text()
    users = _user_names(imported)
    missing = []
    for note in imported.notes:
        keys = [k for k in note.path.split(".") if k and not k.isdigit()]
        if not keys or keys[-1] in users:
            continue
        if not re.search(rf"(?<![\w-]){re.escape(keys[-1])}(?![\w-])", doc):
            missing.append(f"{note.path}: {note.message[:80]}")
    assert not missing, f"notes on settings docs/import/{fmt}.md does not mention: {missing}"


def _setting(source, path: str) -> str:
    """The name a docs row gives the setting at ``path``: the key, or for a generic key (``name``, a
    list entry such as Katib's ``algorithmSettings.2``) the name it holds (``TPE``, ``gamma``)."""
    node = source
    for key in path.split("."):
        try:
            node = node[int(key)] if isinstance(node, list) else node[key]
        except (KeyError, IndexError, ValueError, TypeError):
            return path.split(".")[-1]
    last = path.split(".")[-1]
    if last.isdigit() and isinstance(node, dict) and isinstance(node.get("name"), str):
        return node["name"]
    if last == "name" and isinstance(node, str):
        return node
    return last


def _exact(how: str) -> bool:
    """Whether a docs row's last column calls the setting exact in every case (it names no case
    that differs: a note, the closest, a default, a condition)."""
    return how.startswith("exact") and not re.search(
        r"note|closest|approx|differ|default|absent|when|unless|else|another|other|error|except|only|but", how
    )


def _rows(doc: str, key: str) -> list[tuple[str, str]]:
    """The table rows of ``doc`` whose first column names ``key``: (that column, the row's last column)."""
    out = []
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else []
        if len(cells) >= 3 and re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", cells[0]):
            out.append((cells[0], cells[-1]))
    return out


@pytest.mark.parametrize("fmt, example", _examples(), ids=lambda v: str(v).split("import_examples/")[-1])
def test_no_setting_the_docs_call_exact_is_noted(fmt, example):
    """Where the docs' table has rows for a setting the importer notes, not every one of them may
    say plain "exact": the note says something differs, so the docs must say when (closest,
    note, approximated, or the case the note is about)."""
    imported = _outcome(fmt, example)
    if imported is None:
        pytest.skip("the example itself is refused")
    doc = (DOCS / f"{fmt}.md").read_text()
    users = _user_names(imported)
    source = yaml.safe_load(example.read_text())
    wrong = []
    for note in imported.notes:
        keys = [k for k in note.path.split(".") if k and not k.isdigit()]
        if not keys or keys[-1] in users:
            continue
        rows = _rows(doc, _setting(source, note.path))
        if rows and all(_exact(how) for _, how in rows):
            wrong.append(f"{note.path}: docs say exact ({rows[0][0]}), the note says {note.message[:80]!r}")
    assert not wrong, f"docs/import/{fmt}.md: {wrong}"
