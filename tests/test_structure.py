"""The package's shape: no import cycles, every exception under ScalehpError (no Ray needed)."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import scalehp
from scalehp.errors import ScalehpError

ROOT = Path(scalehp.__file__).parent


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The scalehp modules ``name`` imports anywhere (module level or inside a function)."""
    out: set[str] = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    out.add(full)
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert graph["scalehp.command"] >= {"scalehp.trial"}  # the graph sees imports at all
    assert graph["scalehp.space"].isdisjoint({"scalehp.spec", "scalehp.results.schema"})
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_exception_is_a_scalehp_error():
    """Every exception class scalehp defines derives from ScalehpError (and may keep a builtin base too)."""
    defined = []
    spelled = set()  # classes whose bases name an exception, wherever they are defined (functions too)
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        if not classes:
            continue
        for node in classes:
            bases = [ast.unparse(b) for b in node.bases]
            if any(b.endswith(("Error", "Exception", "Interrupted")) for b in bases):
                spelled.add(node.name)
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name and issubclass(cls, BaseException):
                defined.append(cls)
    names = {c.__qualname__ for c in defined}
    assert spelled <= names  # none hides inside a function, out of the check below
    assert {"SpecError", "CommandError", "MetricMissingError", "GrammarError"} <= names
    # a swarm worker ends a trial from inside trial.report by raising TrialStopped, a BaseException
    # so that a trainable's `except Exception` cannot swallow it (as KeyboardInterrupt); it never
    # leaves the worker
    signals = {"TrialStopped"}
    assert [c.__qualname__ for c in defined if not issubclass(c, ScalehpError) and c.__qualname__ not in signals] == []
