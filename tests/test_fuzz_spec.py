"""Property-based fuzzing of the experiment reader, ``load_experiment``, ``compile_plan`` and ``validate``.

Whatever the document (random YAML text, random nested data, deep nesting, huge numbers,
odd unicode and control characters, big grids), the answer is a valid experiment or a
:class:`SpecError` whose message is one line; never another exception, and never slow.
Plus a corpus test over every hostile case of issue 13 that concerns experiment files.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalehp.cli import main
from scalehp.compiler import compile_plan
from scalehp.errors import SpecError
from scalehp.space import KINDS, sample_config, space_size
from scalehp.spec import experiment_from_data, load_experiment, read_yaml

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(
    database=None,  # nothing written into the working tree
    max_examples=120,
    deadline=3000,  # ms per example: a shared CI machine, yet far below any hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)

BASE: dict[str, Any] = {
    "name": "fuzz",
    "trainable": "tests.trainables:quadratic",
    "metric": {"name": "loss", "mode": "min"},
    "budget": {"samples": 2, "max_steps": 3},
    "space": {"x": {"float": [0.0, 1.0]}},
}


def check(text_or_data: Any, source: str = "fuzz.yaml") -> None:
    """The property: an experiment whose plan and sample work, or a one-line SpecError."""
    start = time.monotonic()
    try:
        if isinstance(text_or_data, str):
            data, lines = read_yaml(text_or_data, source)
            experiment = experiment_from_data(data, source=source, lines=lines)
        else:
            experiment = load_experiment(text_or_data)
        plan = compile_plan(experiment)
    except SpecError as exc:
        assert exc.message and exc.message.isprintable(), repr(exc.message)
        assert "\n" not in exc.source + str(exc.line)
    else:
        assert plan.trials >= 1 and len(plan.digest) == 16
        sample_config(experiment.space, seed=0)
        space_size(experiment.space)
    assert time.monotonic() - start < 3


# ---------------------------------------------------------------------------
# strategies

odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from("\n\x00\x1b\x07\u202e\t:{}[]-#&*!|>'\"%@`"),
    max_size=40,
)
numbers = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 5e-324, 1e308, -1e308, 2**63, 2**63 - 1, 10**400, 1e400])
)
scalars = st.none() | st.booleans() | numbers | odd_text | st.sampled_from(list(KINDS) + ["log", "step", "each"])
nested = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(odd_text | st.sampled_from(KINDS), inner, max_size=5),
    max_leaves=30,
)


def ranged(kind: str, low: Any, high: Any, log: bool, step: Any) -> dict[str, Any]:
    return {kind: [low, high], "log": log, **({"step": step} if step is not None else {})}


params = st.one_of(
    st.builds(lambda kind, v: {kind: v}, st.sampled_from(KINDS), nested),
    st.builds(
        ranged,
        st.sampled_from(["float", "int", "normal", "lognormal", "count"]),
        numbers,
        numbers,
        st.booleans(),
        st.none() | numbers,
    ),
    st.builds(lambda values: {"grid": values}, st.lists(numbers | odd_text, max_size=60, unique_by=repr)),
    st.builds(
        lambda options: {"choice": options},
        st.dictionaries(odd_text, st.none() | st.dictionaries(odd_text, nested, max_size=3), max_size=4),
    ),
    nested,
)
param_names = st.sampled_from(["x", "lr", "LR", "a/b", "a_b", "x\n", "o.p"]) | odd_text
spaces = st.dictionaries(param_names, params, min_size=0, max_size=6)
KEYS = ["name", "trainable", "metric", "budget", "resources", "search", "scheduler", "results", "seed"]
KEYS += ["concurrency", "command", "failure", "checkpoints"]
PIECES = ["name: x\n", "space:\n", "  a: {float: [0, 1]}\n", "  - ", "[", "]", "{", "}", ": ", "&a ", "*a"]
PIECES += ["!!python/object ", "<<: *a\n", "? ", "\t", "\x00", "\x1b", "9" * 5000, "1e400", "\n", "  "]


def deep(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


# ---------------------------------------------------------------------------
# properties


@FUZZ
@given(st.text(max_size=400))
def test_any_text(text):
    check(text)


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=60))
def test_yaml_made_of_yaml_pieces(pieces):
    check("".join(pieces))


@FUZZ
@given(spaces, st.dictionaries(st.sampled_from(KEYS), nested, max_size=3))
def test_random_spaces_and_keys(space, overrides):
    data = {**BASE, "space": space, **overrides}
    check(data)
    try:
        text = yaml.safe_dump(data, allow_unicode=True)
    except (yaml.YAMLError, ValueError, OverflowError):
        return
    check(text)


@settings(FUZZ, max_examples=30)
@given(
    st.integers(min_value=0, max_value=1500),
    st.sampled_from(["list", "dict"]),
    st.sampled_from(["space.x", "name", "budget", "search"]),
)
def test_deep_nesting_anywhere(depth, kind, where):
    value = deep(depth, kind)
    data = {**BASE}
    if where == "space.x":
        data["space"] = {"x": {"constant": value}}
    else:
        data[where] = value
    check(data)
    text = ("[" * depth + "1" + "]" * depth) if kind == "list" else ("{k: " * depth + "1" + "}" * depth)
    check(yaml.safe_dump({**BASE, "space": {"x": {"constant": 0}}}).replace("constant: 0", "constant: " + text))


@FUZZ
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=6), st.integers(1, 10**6))
def test_big_grids_are_counted_not_built(sizes, samples):
    space = {f"g{i}": {"grid": list(range(n))} for i, n in enumerate(sizes)}
    data = {**BASE, "space": space, "budget": {"samples": samples, "max_steps": 3}}
    try:
        plan = compile_plan(load_experiment(data))
    except SpecError as exc:
        assert "more than 1,000,000" in exc.message or "must be <=" in exc.message
        assert samples * math.prod(sizes) > 1_000_000
    else:
        assert plan.trials == samples * math.prod(sizes) <= 1_000_000


FEW = [{"float": [0, 1]}, {"int": [1, 2**70]}, {"choice": ["\x1b[2J", 1]}, 1]


@settings(FUZZ, max_examples=25, deadline=5000)
@given(
    st.text(max_size=200)
    | st.builds(
        lambda space: yaml.safe_dump({**BASE, "space": space}, allow_unicode=True),
        st.dictionaries(param_names, st.sampled_from(FEW), max_size=3),
    )
)
def test_validate_prints_one_line_or_ok(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert result.stdout.startswith("ok: ")
    else:
        assert result.exit_code == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and lines[0].isprintable(), result.stderr


# ---------------------------------------------------------------------------
# the corpus: every case of issue 13 about experiment files, and what it must say

HEAD = (
    "name: c\ntrainable: tests.trainables:quadratic\nmetric: {name: loss, mode: min}\n"
    "budget: {samples: 2, max_steps: 3}\n"
)
GRID = "space: {" + ", ".join(f"g{i}: {{grid: [{', '.join(map(str, range(100)))}]}}" for i in range(6)) + "}\n"
COUNTS = "space: {a: {count: [0, 100], each: {b: {count: [0, 100], each: {c: {count: [0, 100], each: {d: 1}}}}}}}\n"
CHAIN = "a0: &a0 1\n" + "".join(f"a{i}: &a{i} {'[' * 60}*a{i - 1}{']' * 60}\n" for i in range(1, 30))
CHAIN += "space: {x: {constant: *a29}}\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
BOMB += "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh"))
CORPUS = {
    "nesting 250 (digest)": (HEAD + "space: {x: {constant: " + "[" * 250 + "]" * 250 + "}}\n", "nested more than"),
    "nesting 490 (reader)": (HEAD + "space: {x: {constant: " + "[" * 490 + "]" * 490 + "}}\n", "nested more than"),
    "nesting 100000": (HEAD + "space: {x: {constant: " + "[" * 100_000 + "]" * 100_000 + "}}\n", "nested more than"),
    "mapping nesting": (HEAD + "space: {x: {constant: " + "{a: " * 600 + "1" + "}" * 600 + "}}\n", "nested more than"),
    "integer 4301 digits": (HEAD + "space: {x: " + "1" * 4301 + "}\n", "integer too large"),
    "integer key 5000 digits": (
        HEAD + "space:\n  x:\n    choice:\n      ? " + "1" * 5000 + "\n      : {}\n",
        "integer too large",
    ),
    "integer key 30 digits": (HEAD + "space: {x: {choice: {" + "1" * 30 + ": {}}}}\n", "integer too large"),
    "int log overflow": (HEAD + "space: {x: {int: [1, " + "9" * 400 + "], log: true}}\n", "integer too large"),
    "int bound 1e400": (HEAD + "space: {x: {int: [1, 1e400], log: true}}\n", "expected an integer"),
    "int bound 1e300": (HEAD + "space: {x: {int: [1, 1.0e+300]}}\n", "integer too large"),
    "float step 5e-324": (HEAD + "space: {x: {float: [0.0, 1.0], step: 5e-324}}\n", "too small"),
    "normal step 5e-324": (HEAD + "space: {x: {normal: [0.0, 1.0], step: 5e-324}}\n", "too small"),
    "lognormal overflow": (HEAD + "space: {x: {lognormal: [710.0, 1.0]}}\n", "overflow"),
    "float range overflow": (HEAD + "space: {x: {float: [-1.0e+308, 1.0e+308]}}\n", "wider than a float"),
    "grid 10**12 points": (HEAD + GRID, "more than 1,000,000"),
    "count in count": (HEAD + COUNTS, "spreads out"),
    "name newline": (HEAD.replace("name: c", 'name: "c\\n"') + "space: {x: 1}\n", "not a valid name"),
    "param newline": (HEAD + 'space: {"x\\n": 1}\n', "param name"),
    "metric escape": (HEAD.replace("name: loss", 'name: "\\e[31mloss"') + "space: {x: 1}\n", "control character"),
    "lr and LR": (HEAD + "space: {lr: 1, LR: 2}\n", "SQL does not tell apart"),
    "results file": (HEAD + "space: {x: 1}\nresults: pyproject.toml\n", "is a file"),
    "results NUL": (HEAD + 'space: {x: 1}\nresults: "r\\0"\n', "NUL"),
    "results scheme": (HEAD + "space: {x: 1}\nresults: ftp://h/r\n", "unknown URI scheme"),
    "results 300 chars": (HEAD + "space: {x: 1}\nresults: " + "r" * 300 + "\n", "at most 255"),
    "alias bomb": (BOMB, "more than 100000 values"),
    "aliases nested in aliases": (HEAD + CHAIN, "nested more than"),
    "python tag": (HEAD + "space: {x: !!python/object/apply:os.system [echo]}\n", "not allowed"),
    "NUL in text": (HEAD + "space: {x: \x00}\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", list(CORPUS))
def test_corpus(case, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # `results: pyproject.toml` names a file of the repository
    text, words = CORPUS[case]
    path = tmp_path / "case.yaml"
    path.write_text(text, encoding="utf-8")
    start = time.monotonic()
    with pytest.raises(SpecError) as error:
        compile_plan(load_experiment(path))
    assert words in error.value.message, error.value
    assert error.value.message.isprintable() and str(path) == error.value.source
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and words in result.stderr
    assert "Traceback" not in result.output
    assert time.monotonic() - start < 10
