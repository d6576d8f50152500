"""The HTML report: self-contained, and rendered by a real headless Chromium without console errors."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from scalehp.cli import main
from tests.browser import FLAGS, find_browser
from tests.results_factory import make_root

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(
        main, ["report", str(root), "-o", str(out), "--title", "scalehp test report"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "4 run(s)" in result.output
    return out


def test_report_is_self_contained(report):
    import matplotlib.image

    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # nothing to fetch: no scripts, no links, every image a data: URI
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"(src|href)=\"(?!data:)", text)
    assert not re.search(r"https?://", text)
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([^"]+)"', text)
    alts = [alt for alt, _ in images]
    for expected in (
        "learning curves",
        "anytime performance over wall",
        "anytime performance over steps",
        "param importance",
        "parallel coordinates",
        "ASHA rungs",
        "PBT lineage",
    ):
        assert expected in alts
    for _, data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0.01
    for words in ("Runs side by side", "Leaderboard", "Run quad-1", "Run pbt-1", "PBT lineage of the best trial"):
        assert words in text


def _chromium(browser: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="scalehp-chromium-") as profile:
        command = [browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _problems(logs: str) -> list[str]:
    return [
        line
        for line in logs.splitlines()
        if re.search(r"CONSOLE|Uncaught|Failed to load|ERR_|Not allowed to load", line)
    ]


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium); .ci/run installs it")
    import matplotlib.image

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    shutil.copy(report, ARTIFACTS / "report.html")
    url = report.resolve().as_uri()

    shot = _chromium(browser, f"--screenshot={screenshot}", "--window-size=1280,2000", "--hide-scrollbars", url)
    dom = _chromium(browser, "--dump-dom", url)
    logs = shot.stderr + dom.stderr
    (ARTIFACTS / "chromium.log").write_text(logs)
    assert shot.returncode == 0 and dom.returncode == 0, logs[-2000:]

    # no console message of the page (Chromium logs them as CONSOLE(...) or "Uncaught"), no failed load
    assert not _problems(logs), "\n".join(_problems(logs))

    # the rendered DOM holds the report: title, tables and every image
    assert "<title>scalehp test report</title>" in dom.stdout
    assert dom.stdout.count("<img") == report.read_text().count("<img") >= 7
    assert "Runs side by side" in dom.stdout and "<table>" in dom.stdout

    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"

    # the check above can fail: a page with a console error is caught by the same scan
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><script>console.error("broken page")</script></body></html>')
    assert any("broken page" in line for line in _problems(_chromium(browser, "--dump-dom", broken.as_uri()).stderr))
