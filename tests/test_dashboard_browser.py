"""The dashboard in a real headless Chromium: live updates from a real embedded-Ray run, and markup shown as text.

Screenshots are kept in ``test-artifacts/`` (``dashboard-*.png``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pytest

from scalehp.dashboard import Board, in_thread
from scalehp.results.sink import ParquetSink
from tests.browser import Browser, find_browser
from tests.results_factory import T0, make_root, write_plan
from tests.test_results_hostile import HOSTILE

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = pytest.mark.skipif(
    find_browser() is None, reason="no chromium on PATH (apt-get install chromium); .ci/run installs it"
)

RENDERED = "document.querySelector('#view') && document.querySelector('#view').children.length > 0 && !document.querySelector('#error:not([hidden])')"


def _hostile_run(root: Path) -> str:
    """Names, values and error texts with markup in them, and a failed trial."""
    run_id = f"r{HOSTILE}"
    run_dir = root / "exp" / "r1"
    write_plan(run_dir, run_id, f"exp{HOSTILE}", f"loss{HOSTILE}", "min", {f"p{HOSTILE}": {"choice": ["a", HOSTILE]}},
               searcher=f"s{HOSTILE}", scheduler="asha", trials=5)  # fmt: skip
    names = {"metric_loss": f"loss{HOSTILE}"}
    sink = ParquetSink(
        run_dir,
        [pa.field("param_p", pa.string(), metadata={b"scalehp.name": f"p{HOSTILE}".encode()})],
        metric_names=names,
    )
    keys = {"run_id": run_id, "experiment": f"exp{HOSTILE}"}
    for i in range(5):
        trial = f"t{i}{HOSTILE}"
        value = {"param_p": HOSTILE if i % 2 else "a"}
        for step in (1, 2, 3):
            loss = 1.0 / (i + step)
            sink.add("reports", {**keys, "trial_id": trial, "step": step, "time": T0 + 10 * i + step,
                                 "elapsed_s": float(step), **value, "metric_loss": loss})  # fmt: skip
        sink.add("events", {**keys, "trial_id": trial, "time": T0 + 10 * i + 1, "step": 1, "scheduler": "asha",
                            "action": "continue" if i else "stop", "rung": 1, "value": 1.0 / (i + 1), "cutoff": 0.5})  # fmt: skip
        status = "error" if i == 4 else "completed"
        sink.add("trials", {**keys, "trial_id": trial, "status": status, "error": f"boom{HOSTILE}" if status == "error" else None,
                            "steps": 3, "best_value": loss, "best_step": 3, "started_at": T0, "ended_at": T0 + 10 * i + 9,
                            "node": HOSTILE, **value, "metric_loss": loss})  # fmt: skip
    sink.close()
    return run_id


def test_markup_in_names_values_and_errors_stays_text(tmp_path):
    run_id = _hostile_run(tmp_path)
    url, stop = in_thread(Board(tmp_path), "127.0.0.1", 0)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with Browser() as browser:
            for tab in ("overview", "curves", "scheduler", "params", "trials", "failed", "plan"):
                page = browser.open(f"{url}#run={quote(run_id, safe='')}&tab={tab}")
                page.wait(RENDERED, 30)
                page.settle(1.0 if tab != "params" else 4.0)
                page.screenshot(ARTIFACTS / f"dashboard-markup-{tab}.png")
                # only the page's own two scripts, no element the data brought
                assert page.eval("document.scripts.length") == 2, tab
                assert page.eval("document.querySelectorAll('img, iframe, object, embed').length") == 0, tab
                text = page.eval("document.body.innerText")
                assert "<script>alert(1)</script>" in text or tab in ("curves", "scheduler", "params"), (
                    tab,
                    text[:500],
                )
                assert not page.problems, (tab, page.problems)
            failed = browser.open(f"{url}#run={quote(run_id, safe='')}&tab=failed")
            failed.wait(RENDERED, 30)
            assert f"boom{HOSTILE}" in failed.eval("document.querySelector('#view pre').textContent")
    finally:
        stop()


def test_every_view_renders_without_console_errors(tmp_path):
    root = make_root(tmp_path)
    url, stop = in_thread(Board(root), "127.0.0.1", 0)
    try:
        with Browser() as browser:
            for run_id, tabs in {
                "quad-1": ("overview", "curves", "scheduler", "params", "trials"),
                "pbt-1": ("scheduler",),
            }.items():
                for tab in tabs:
                    page = browser.open(f"{url}#run={run_id}&tab={tab}")
                    page.wait(RENDERED, 30)
                    page.settle(1.0 if tab != "params" else 4.0)
                    page.screenshot(ARTIFACTS / f"dashboard-{run_id}-{tab}.png")
                    assert not page.problems, (run_id, tab, page.problems)
                    if tab in ("overview", "curves", "scheduler"):
                        assert page.eval("document.querySelectorAll('.uplot, svg.lineage').length") > 0, (run_id, tab)
            page = browser.open(f"{url}#run=quad-1&tab=trials")
            page.wait(RENDERED, 30)
            assert page.eval("document.querySelectorAll('#view tbody tr').length") == 24
            page.eval("document.querySelectorAll('#view th')[3].click()")  # sort by best value
            page.wait("document.querySelector('.controls .muted').textContent.includes('sorted by best_value')", 10)
            page.eval("document.querySelectorAll('#view tbody tr')[0].click()")  # the best trial, opened
            page.wait("[...document.querySelectorAll('#view h2')].some(h => /^trial t\\d+ — /.test(h.textContent))", 10)
            page.wait("document.querySelectorAll('#view .uplot').length >= 1", 10)
            page.screenshot(ARTIFACTS / "dashboard-quad-1-trial.png")
            for box in (0, 1):  # two runs ticked, side by side
                page.eval(f"document.querySelectorAll('nav .run input')[{box}].click()")
            page.eval("[...document.querySelectorAll('#tabs button')].find(b => b.textContent === 'compare').click()")
            page.wait("document.querySelector('#view table').querySelectorAll('tbody tr').length === 2 && document.querySelectorAll('#view .uplot').length === 1", 20)
            page.screenshot(ARTIFACTS / "dashboard-compare.png")
            assert not page.problems, page.problems
    finally:
        stop()


@pytest.mark.ray
@pytest.mark.slow
def test_the_page_follows_a_real_run_without_reloading(tmp_path):
    experiment = tmp_path / "live.yaml"
    experiment.write_text(
        "name: live\ntrainable: tests.kill_trainables:train\nmetric: {name: loss, mode: min}\n"
        "budget: {samples: 12, max_steps: 6}\nconcurrency: 2\nseed: 1\n"
        "space: {x: {float: [0, 1]}, lr: {float: [0.05, 0.95]}, sleep: 0.4}\n"
        "scheduler: {asha: {grace_steps: 1, reduction_factor: 2}}\n"
        f"results: {tmp_path / 'results'}\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalehp.cli",
            "run",
            str(experiment),
            "--dashboard",
            "--dashboard-port",
            "0",
            "--quiet",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        url = None
        for _ in range(200):
            line = process.stderr.readline()
            found = re.search(r"dashboard\s+(http://127\.0\.0\.1:\d+/)", line)
            if found:
                url = found.group(1)
                break
            if not line and process.poll() is not None:
                break
        assert url, "scalehp run --dashboard printed no address"
        with Browser() as browser:
            page = browser.open(url)
            page.eval("window.__sameDocument = true")
            page.wait("document.querySelectorAll('nav .run').length === 1", 120)
            page.wait(RENDERED, 60)
            page.screenshot(ARTIFACTS / "dashboard-live-start.png")
            done = "parseInt(document.querySelector('nav .run .meta').textContent)"
            first = page.eval(done)
            page.wait(f"{done} > {first}", 120)  # new trials ended and showed up, the page never reloaded
            assert page.eval(
                "window.__sameDocument === true && performance.getEntriesByType('navigation').length === 1"
            )
            page.eval("[...document.querySelectorAll('#tabs button')].find(b => b.textContent === 'trials').click()")
            page.wait(
                "[...document.querySelectorAll('#view td')].some(td => /^stopped at step \\d+ \\(rung \\d+\\)$|^promoted at rung/.test(td.textContent))",
                120,
            )
            page.screenshot(ARTIFACTS / "dashboard-live-trials.png")
            page.wait("document.querySelector('nav .run .meta').textContent.startsWith('12 / 12')", 180)
            assert page.eval("window.__sameDocument === true")
            page.eval("[...document.querySelectorAll('#tabs button')].find(b => b.textContent === 'scheduler').click()")
            page.wait("document.querySelectorAll('.uplot').length > 0", 30)
            page.screenshot(ARTIFACTS / "dashboard-live-end.png")
            assert not page.problems, page.problems
        assert process.wait(timeout=120) == 0, process.stderr.read()[-2000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
