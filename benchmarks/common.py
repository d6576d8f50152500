"""What every side-by-side benchmark prints: versions, the machine and its load, ratios."""

from __future__ import annotations

import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` puts benchmarks/ first, not the root
    sys.path.insert(0, str(ROOT))


def versions(extra: tuple[str, ...] = ()) -> str:
    """The versions of python and the packages a benchmark compares (``extra``: its own others), those installed."""
    from importlib import metadata

    found = [f"python {platform.python_version()}"]
    for package in ("scalehp", "ray", "optuna", "pyarrow", "torch", *extra):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def header(title: str, extra: tuple[str, ...] = ()) -> None:
    print(f"# {title}")
    print(f"# {versions(extra)}")
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs, {load()}")
    sys.stdout.flush()


@contextmanager
def timed(into: dict[str, list[float]], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        into.setdefault(name, []).append(time.perf_counter() - start)


def ray_local(num_cpus: int | None = None) -> None:
    """One fresh local Ray for every Ray contender of a benchmark (never an existing cluster)."""
    import logging

    import ray

    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )


@contextmanager
def quiet() -> Iterator[None]:
    """Ray Tune's console output off for the hand-written contenders (it goes to stdout)."""
    import io
    from contextlib import redirect_stdout

    with redirect_stdout(io.StringIO()):
        yield
