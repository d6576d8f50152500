"""Property-based fuzzing of every importer: whatever the file holds, a valid import or one line.

Documents are the example sweep files of each format with parts replaced by generated data
(random structure, deep nesting, numbers past a float, NaN, inf, odd strings, Hydra override
strings), and wholly random documents and texts. Each goes through ``convert`` of its module
and through :func:`scalehp.importers.import_file` on a file; the only exception allowed is a
:class:`SpecError` whose message is one line, and each example has a deadline.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalehp.errors import SpecError
from scalehp.importers import FORMATS, Imported, Source, check, import_file, read_source
from scalehp.importers.hydra_optuna import GrammarError, parse_override

EXAMPLES = Path(__file__).parent / "import_examples"
FOLDERS = {"wandb": "wandb", "katib": "katib", "nni": "nni", "determined": "determined", "hydra-optuna": "hydra_optuna"}


def examples(fmt: str) -> list[Any]:
    folder = EXAMPLES / FOLDERS[fmt]
    files = sorted(
        p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml", ".json") and "unmappable" not in p.parts
    )
    return [read_source(p).data for p in files]


SEEDS = {fmt: examples(fmt) for fmt in FORMATS}
SPACES = [read_source(p).data for p in sorted((EXAMPLES / "nni").rglob("search_space.json"))]
EXAMPLES_EACH = int(os.environ.get("SCALEHP_FUZZ_EXAMPLES", "40"))
"""Examples per test; a longer search: SCALEHP_FUZZ_EXAMPLES=2000 (then with a fresh random seed each run)."""
FUZZ = settings(
    max_examples=EXAMPLES_EACH,
    deadline=timedelta(seconds=4),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    derandomize="SCALEHP_FUZZ_EXAMPLES" not in os.environ,
    database=None,
)

# -- generated values ---------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "grid",
        "random",
        "bayes",
        "choice",
        "uniform",
        "quniform",
        "loguniform",
        "randint",
        "int",
        "double",
        "log",
        "categorical",
        "const",
        "min",
        "max",
        "step",
        "q",
        "values",
        "value",
        "distribution",
        "_type",
        "_value",
        "_name",
        "type",
        "minval",
        "maxval",
        "count",
        "base",
        "vals",
        "name",
        "GridSearch",
        "TPE",
        "Hyperband",
        "eta",
        "R",
        "hyperband",
        "tpe",
        "adaptive_asha",
        "max_rungs",
        "divisor",
        "parameters",
        "feasibleSpace",
        "parameterType",
        "list",
        "metricsFormat",
        "max_iter",
        "min_iter",
        "s",
        "run_cap",
        "searchSpace",
        "searchSpaceFile",
        "space.json",
        "../x",
        "/etc/passwd",
        "~/x",
        "python train.py",
        "${args}",
        "${program}",
        "",
        " ",
        "\n",
        "a\nb",
        "\u2028",
        "\x00",
        "\x1b[31m",
        "é",
        "${x}",
    ]
)
OVERRIDES = st.one_of(
    st.text(alphabet="()[]{},:'\" \\=$.-+_eE0123456789abcinfnaltgrsvhpou", max_size=40),
    st.builds(
        "{}({}{})".format,
        st.sampled_from(
            ["choice", "range", "interval", "tag", "int", "float", "str", "bool", "shuffle", "sort", "glob"]
        ),
        st.sampled_from(["", "log, ", "0, ", "1e-3, ", "nan, ", "inf, ", "-inf, ", "9" * 400 + ", ", "[1], ", "a=1, "]),
        st.sampled_from(["1", "10", "0.5", "nan", "inf", "1e999", "interval(0, 1)", "range(0, 5)", "x", "", "1, 2"]),
    ),
    st.builds(lambda n, inner: "choice(" * n + inner + ")" * n, st.integers(0, 300), st.sampled_from(["1", "a"])),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(0, 300)),
)
NUMBERS = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e-12, 1e-300, 5e-324, 1e308, -1e308, 10**20, 10**400, -(10**400), 2**63, 0.5]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, WORDS, st.text(max_size=12), OVERRIDES)
KEYS = st.one_of(WORDS, st.text(max_size=8))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=20,
)


def nested(value: Any, levels: int, kind: str) -> Any:
    for _ in range(levels):
        value = [value] if kind == "list" else {"a": value}
    return value


DEEP = st.builds(nested, VALUES, st.integers(0, 100), st.sampled_from(["list", "dict"]))


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in ``data`` (the root included)."""
    out = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths(value, prefix + (i,))
    return out


def replaced(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@st.composite
def documents(draw: Any, fmt: str) -> Any:
    """An example of ``fmt`` with one to three parts replaced by generated data, or a wholly generated one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(VALUES, DEEP))
    data = draw(st.sampled_from(SEEDS[fmt]))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(data)))
        data = replaced(data, path, draw(st.one_of(VALUES, VALUES, DEEP, OVERRIDES)))
    return data


# -- the property ------------------------------------------------------------------------------


def one_line_or_valid(run: Any) -> None:
    """``run()`` gives an :class:`Imported` whose notes are one line each, or a one-line :class:`SpecError`."""
    try:
        imported = run()
    except SpecError as exc:
        text = str(exc)
        assert len(text.splitlines()) == 1, text[:2000]
        assert len(text) < 5000, text[:2000]
        return
    assert isinstance(imported, Imported)
    for note in imported.notes:
        assert len(f"{note.path}: {note.message}".splitlines()) == 1, note


def converted(fmt: str, data: Any, folder: Path) -> Imported:
    module = __import__(FORMATS[fmt], fromlist=["convert"])
    if not isinstance(data, dict):
        raise SpecError("not a mapping", source="generated")
    path = folder / f"generated.{fmt}.yaml"  # a file it names is looked for beside it
    imported = module.convert(Source(data, str(path)))
    check(imported, f"{path} (imported from {fmt})")
    return imported


def dump(data: Any, suffix: str) -> str:
    if suffix == ".json":
        return json.dumps(data)
    try:
        return yaml.safe_dump(data, allow_unicode=True)
    except yaml.YAMLError:  # a key PyYAML cannot write
        return json.dumps(data)  # JSON is YAML too


@pytest.mark.parametrize("fmt", list(FORMATS))
@FUZZ
@given(data=st.data())
def test_convert_gives_an_experiment_or_one_line(fmt, data, tmp_path):
    document = data.draw(documents(fmt))
    one_line_or_valid(lambda: converted(fmt, document, tmp_path))


@pytest.mark.parametrize("fmt", list(FORMATS))
@FUZZ
@given(data=st.data())
def test_import_file_gives_an_experiment_or_one_line(fmt, data):
    document = data.draw(documents(fmt))
    suffix = data.draw(st.sampled_from([".yaml", ".json"]))
    space = data.draw(st.one_of(st.sampled_from(SPACES), VALUES, DEEP))  # a search space file it may name
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"sweep{suffix}"
        path.write_text(dump(document, suffix), encoding="utf-8")
        (Path(folder) / "search_space.json").write_text(dump(space, ".json"), encoding="utf-8")
        one_line_or_valid(lambda: import_file(fmt, path))


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.builds(
            "".join,
            st.lists(
                st.sampled_from(
                    ["[", "]", "{", "}", "a: ", "- ", "\n", "  ", ",", '"', "&a ", "*a", "1e999", "9" * 50]
                ),
                max_size=600,
            ),
        ),
        st.builds(
            lambda n, open_, close: open_ * n + close * n,
            st.integers(0, 3000),
            st.sampled_from(["[", '{"a":']),
            st.sampled_from(["]", "}"]),
        ),
    ),
    fmt=st.sampled_from(list(FORMATS)),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_import_of_any_text_gives_an_experiment_or_one_line(text, fmt, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"sweep{suffix}"
        path.write_text(text, encoding="utf-8")
        one_line_or_valid(lambda: import_file(fmt, path))


@FUZZ
@given(override=OVERRIDES, sampler=st.sampled_from(["TPESampler", "GridSampler", "RandomSampler"]))
def test_any_hydra_override_gives_an_experiment_or_one_line(override, sampler):
    try:
        parse_override(override)
    except GrammarError as exc:
        assert len(str(exc).splitlines()) == 1
    document = {
        "sampler": {"_target_": f"optuna.samplers.{sampler}"},
        "direction": "minimize",
        "params": {"x": override},
    }
    with tempfile.TemporaryDirectory() as folder:
        one_line_or_valid(lambda: converted("hydra-optuna", document, Path(folder)))


def test_the_fuzz_seeds_import(tmp_path):
    """The unchanged examples import (so the fuzzing starts from files that reach every converter's depths)."""
    (tmp_path / "search_space.json").write_text(json.dumps(SPACES[-1]))
    for fmt, seeds in SEEDS.items():
        assert seeds, fmt
        for data in seeds:
            converted(fmt, data, tmp_path)
