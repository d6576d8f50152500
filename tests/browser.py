"""A real headless Chromium driven over the DevTools protocol (aiohttp's websocket client).

What a page test needs and nothing more: open a page, evaluate JavaScript in it, wait for a
condition, take a screenshot, and every console message, uncaught exception and browser log
error the page produced (a CSP violation, a failed load) as ``problems``.

    with Browser() as browser:
        page = browser.open("http://127.0.0.1:8275/")
        page.wait("document.querySelectorAll('nav .run').length > 0")
        page.screenshot(path)
        assert not page.problems
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--mute-audio",
)


def find_browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


class Page:
    def __init__(self, browser: Browser, ws: Any) -> None:
        self.browser, self.ws = browser, ws
        self.ids = itertools.count(1)
        self.problems: list[str] = []
        self.console: list[str] = []

    def _run(self, coro: Any) -> Any:
        return self.browser.loop.run_until_complete(coro)

    async def _call(self, method: str, timeout: float = 60, **params: Any) -> dict:
        my_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": my_id, "method": method, "params": params}))
        end = time.monotonic() + timeout
        while True:
            message = await asyncio.wait_for(self.ws.receive(), max(0.01, end - time.monotonic()))
            data = json.loads(message.data)
            if data.get("id") == my_id:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
            self._event(data)

    def _event(self, data: dict) -> None:
        method, params = data.get("method"), data.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") in ("error", "warning", "assert"):
                self.problems.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append(f"uncaught: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Page.javascriptDialogOpening":  # alert(), confirm(): a script the page did not mean to run
            self.problems.append(f"dialog: {params.get('message')}")
            self.browser.loop.create_task(self._call_quietly("Page.handleJavaScriptDialog", accept=True))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") in ("error", "warning"):
                self.problems.append(f"log {entry.get('level')}: {entry.get('text')} {entry.get('url', '')}")

    async def _call_quietly(self, method: str, **params: Any) -> None:
        await self.ws.send_str(json.dumps({"id": next(self.ids), "method": method, "params": params}))

    async def _drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(self.ws.receive(), left)
            except asyncio.TimeoutError:
                return
            self._event(json.loads(message.data))

    def goto(self, url: str) -> None:
        self._run(self._call("Page.navigate", url=url))

    def eval(self, expression: str, timeout: float = 60) -> Any:
        """The value of ``expression`` (a promise is awaited, at most ``timeout`` seconds)."""
        call = self._call("Runtime.evaluate", timeout, expression=expression, returnByValue=True, awaitPromise=True)
        result = self._run(call)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait(self, expression: str, timeout: float = 30.0) -> Any:
        end = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > end:
                raise TimeoutError(f"waited {timeout:g} s for {expression}")
            self._run(self._drain(0.2))

    def settle(self, seconds: float) -> None:
        self._run(self._drain(seconds))

    def screenshot(self, path: Path) -> None:
        data = self._run(self._call("Page.captureScreenshot", format="png", captureBeyondViewport=True))
        Path(path).write_bytes(base64.b64decode(data["data"]))


class Browser:
    def __init__(self, width: int = 1280, height: int = 1000) -> None:
        found = find_browser()
        if found is None:
            raise RuntimeError("no chromium on PATH")
        self.path, self.size = found, (width, height)
        self.loop = asyncio.new_event_loop()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Browser:
        import aiohttp

        self.profile = tempfile.TemporaryDirectory(prefix="scalehp-chromium-", ignore_cleanup_errors=True)
        self.process = subprocess.Popen(
            [
                self.path,
                *FLAGS,
                f"--user-data-dir={self.profile.name}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--window-size={self.size[0]},{self.size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = None
        for _ in range(400):
            line = self.process.stderr.readline()
            match = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
                break
            if not line and self.process.poll() is not None:
                break
        if port is None:
            self.__exit__(None, None, None)
            raise RuntimeError("chromium did not start its DevTools endpoint")
        self.port = port

        async def session() -> Any:
            return aiohttp.ClientSession()

        self.session = self.loop.run_until_complete(session())
        return self

    def open(self, url: str) -> Page:
        async def new() -> Page:
            async with self.session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as response:
                target = await response.json()
            ws = await self.session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(self, ws)
            for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                await page._call(domain)
            await page._call(
                "Emulation.setDeviceMetricsOverride",
                width=self.size[0],
                height=self.size[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            await page._call("Page.navigate", url=url)
            return page

        return self.loop.run_until_complete(new())

    def __exit__(self, *exc: Any) -> None:
        if getattr(self, "session", None) is not None:
            self.loop.run_until_complete(self.session.close())
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.loop.close()
        if hasattr(self, "profile"):
            self.profile.cleanup()
