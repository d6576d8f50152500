"""The Hydra importer reads sweep values as Hydra itself does: its override grammar, checked
against hydra-core's own parser (``OverridesParser``) on a corpus of values and on random ones.

scalehp keeps its own reader (no hydra-core at run time, and limits on hostile input), so this
test is what says the two agree. Where they differ on purpose, ``DELIBERATE`` says why.
"""

from __future__ import annotations

import math
import random

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, QuotedString, RangeSweep

from scalehp.importers.hydra_optuna import Choice, GrammarError, Interval, Range, parse_override

PARSER = OverridesParser.create()

CORPUS = [
    'adam,sgd',
    'tag(log, int(interval(8, 128)))',
    'tag(log, interval(1e-4, 1e-1))',
    'interval(0.8, 0.99)',
    'int(interval(1, 4))',
    'choice(true, false)',
    'choice(32, 64, 128)',
    'range(1, 9, step=2)',
    'shuffle(range(0, 3))',
    'choice(-1, 1)',
    'range(-1.0, 1.0, step=1)',
    'choice("foo", "bar")',
    'interval(0.0001, 0.1)',
    'range(0, 5, step=0.5)',
    'range(-5.5,5.5,step=0.5)',
    'choice(-5,0,5)',
    'interval(0, 1)',
    'range(5)',
    'range(1,5)',
    'range(start=1, stop=5)',
    'range(1, 10, 3)',
    'range(10, 1, -2)',
    'range(0, 1, 0.25)',
    "'a b',c",
    '"x,y",z',
    '1,2.5,true',
    'choice(1,2.5,true,null)',
    'null',
    '1e-3',
    '1_000',
    '+5',
    '-0.5',
    '.5',
    '5.',
    'inf',
    '-inf',
    'nan',
    'NaN',
    'True',
    'TRUE',
    'abc',
    'a b',
    'a\\,b',
    '[1,2]',
    '[a, [b, c]]',
    '{a:1, b:[2,3]}',
    'choice([1,2],[3,4])',
    'choice({a:1},{a:2})',
    'sort(3,1,2)',
    'sort(3,1,2,reverse=true)',
    'sort([3,1,2])',
    'shuffle(1,2,3)',
    'str(1)',
    'str(true)',
    'bool(1)',
    'bool(0)',
    'bool(yes)',
    'int(1.5)',
    'int("2")',
    'float(3)',
    'float(range(1,3))',
    'int(interval(1.5, 4.5))',
    'str(choice(1,2))',
    'tag(a, b, choice(1,2))',
    'tag(log, range(1,10))',
    'tag(choice(1,2))',
    'interval(1, 2, 3)',
    'interval(start=0.1, end=1)',
    'interval(1e-4,1)',
    'choice()',
    'range()',
    'range(1.5)',
    'choice(range(1,3))',
    'choice(a)',
    'choice(a,)',
    ',a',
    'a,,b',
    'x=1',
    'a:b',
    'a/b',
    'a.b-c',
    "'unterminated",
    '"q\\"x"',
    "'it''s'",
    '\\t',
    '  padded  ',
    '1.0e5',
    '1E5',
    '0x10',
    '0o7',
    '0b1',
    '1__0',
    '_1',
    '1_',
    '1,null',
    'null,1',
    'choice(null)',
    '[null]',
    'range(1,2,3,4)',
    'range(1,2,step=1,x=2)',
    'interval(1,2,x=3)',
    'café',
    'a=b',
    'a!b',
    'a#b',
    'a&b',
    'a~b',
    'a;b',
    'a<b',
    'a^b',
    '01',
    '00',
    '-0',
    '1.e5',
    '+.5',
    '-nan',
    '+inf',
    '1_0.5',
    '1e1_0',
    'a b c',
    "'a' 'b'",
    "a'b",
    '\\\\',
    'a\\\\b',
    'a\\(b',
    '\\ a',
    'a\\b',
    '$x',
    '{a:b:c}',
    '{a b: 1}',
    '{1: x}',
    '{true: x}',
    '{null: x}',
    '{: x}',
    '[,]',
    '[1,]',
    'choice(a=1)',
    'int(value=2)',
    'str()',
    'tag(log)',
    'tag(log, interval(1,2), x)',
    'sort(range(3,1,-1))',
    'sort(interval(1,2))',
    'shuffle(interval(1,2))',
    'shuffle(choice(1,2), x=1)',
    "'a\\'b'",
    '"a\\\\"',
    "'\\\\'",
    '"a\\"b"',
    "'a\\b'",
    '"it\'s"',
    '\'x\',"y"',
    '[\'a\', "b"]',
    "{'a': 1}",
    '{"k": v}',
    "choice('a','b')",
    "int('3')",
    'float("1.5")',
    "bool('true')",
    "str('x')",
    "tag('log', interval(1,2))",
    'tag(log, sweep=interval(1,2))',
    'range(start=1, stop=3, step=1)',
    'range(1, step=2, stop=9)',
    'sort(list=[3,1])',
    'shuffle(sweep=choice(1,2))',
    'sort(sweep=range(5,1,-2), reverse=true)',
    'sort(range(1,5), reverse=true)',
    'sort(1)',
    'sort()',
    'int(tag(log, range(1,10)))',
    'int(shuffle(range(1,10)))',
    'tag(log, shuffle(range(1,10)))',
    'float(tag(log, interval(1,10)))',
    '-1e-3',
    '1.5e+3',
    '1_000.000_1',
    '.e1',
    'e5',
    '1e',
    '--1',
    '+-1',
    '1.2.3',
    'true1',
    'nulls',
    'Null',
    'FALSE',
    ' - ',
    'a - b',
    '@x',
    '?x',
    'x|y',
    '%d',
    '/abs/path',
    'a\\:b',
    'a\\=b',
    'a\\ b\\ c',
    'a\\[0\\]',
    '\\{\\}',
    "'a\\\\\\'b'",
    "'a\\\\'",
    '"x\\\\\\\\"',
    "'\\\\\\\\\\'x'",
    "'a\\b\\'c'",
]

DELIBERATE = {
    "${optimizer.lr}": "an interpolation: only Hydra, with the app's whole config, can resolve it",
    "x${a},b": "an interpolation inside a value",
    "range(1, 5, 0)": "a step of 0: Hydra parses it, and its range would never end",
    "shuffle()": "an empty choice: Hydra parses it, Optuna cannot sample it",
}


def _hydra(value):
    """hydra-core's reading, in the shape of scalehp's (a quoted string is its text)."""
    if isinstance(value, QuotedString):
        return value.text
    if isinstance(value, ChoiceSweep):
        return ("choice", [_hydra(v) for v in value.list], value.shuffle, sorted(value.tags))
    if isinstance(value, RangeSweep):
        return ("range", _hydra(value.start), _hydra(value.stop), _hydra(value.step), value.shuffle, sorted(value.tags))
    if isinstance(value, IntervalSweep):
        return ("interval", value.start, value.end, sorted(value.tags))
    if isinstance(value, list):
        return [_hydra(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _hydra(v) for k, v in value.items()}
    return value


def _ours(value):
    if isinstance(value, Choice):
        return ("choice", [_ours(v) for v in value.items], value.shuffle, sorted(value.tags))
    if isinstance(value, Range):
        return ("range", value.start, value.stop, value.step, value.shuffle, sorted(value.tags))
    if isinstance(value, Interval):
        return ("interval", value.start, value.end, sorted(value.tags))
    if isinstance(value, list):
        return [_ours(v) for v in value]
    if isinstance(value, dict):
        return {k: _ours(v) for k, v in value.items()}
    return value


def _typed(value):
    """``value`` with each number tagged by its type (1 and 1.0 and True differ) and NaN comparable."""
    if isinstance(value, (list, tuple)):
        return type(value)(_typed(v) for v in value)
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def readings(text: str):
    """(hydra-core's reading, scalehp's): each the value, or "refused"."""
    try:
        hydra = _typed(_hydra(PARSER.parse_override("key=" + text).value()))
    except Exception:  # hydra-core's HydraException, OverrideParseException, ...
        hydra = "refused"
    try:
        ours = _typed(_ours(parse_override(text)))
    except GrammarError:
        ours = "refused"
    return hydra, ours


@pytest.mark.parametrize("text", CORPUS)
def test_a_sweep_value_reads_as_hydra_reads_it(text):
    hydra, ours = readings(text)
    assert ours == hydra


@pytest.mark.parametrize("text", DELIBERATE)
def test_what_scalehp_refuses_on_purpose_hydra_parses(text):
    hydra, ours = readings(text)
    assert ours == "refused" and hydra != "refused"


def test_random_values_read_as_hydra_reads_them():
    """Values strung together from the grammar's pieces (numbers, names, quotes, escapes, calls)."""
    pieces = ["1", "0", "-2", "1.5", ".5", "1e3", "1_0", "_", "a", "b", "x1", "true", "null", "inf", "nan", ",", " ",
              "(", ")", "[", "]", "{", "}", ":", "=", "'", '"', "\\", "\\,", "choice(", "range(", "interval(", "tag(",
              "log", "int(", "float(", "str(", "bool(", "sort(", "shuffle(", "reverse=true", "step=", "-", "+", ".",
              "/", "*", "@", "e", "$"]  # fmt: skip
    rng = random.Random(20261204)
    differ = []
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 8)))
        if text.strip() in DELIBERATE or "${" in text:
            continue
        hydra, ours = readings(text)
        if hydra != ours and not (hydra == "refused" and ours == "refused"):
            differ.append((text, hydra, ours))
    assert not differ, differ[:5]
