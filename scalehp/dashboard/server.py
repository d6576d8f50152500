"""The dashboard's web server: aiohttp, read-only JSON over a :class:`~scalehp.dashboard.data.Board`.

Secure by default:

* only ``GET`` and ``HEAD``; nothing on disk changes;
* bound to loopback, requests must name a loopback host (``Host:``), so a web page elsewhere
  cannot reach it through DNS rebinding; on any other address a token is required (the
  ``token`` query parameter once, then a cookie for the page's own requests, or
  ``Authorization: Bearer``);
* static files come from the package's own folder by name (a fixed list), run ids are looked
  up among the runs found under the root: no request names a path;
* a Content-Security-Policy that allows the page's own scripts and styles only (no inline
  script), so a name or error text with markup stays text even if a view forgot to escape it
  (none does: the page builds every element with ``textContent``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import threading
import time
from importlib import resources
from typing import Any, Callable

from scalehp.dashboard.data import NoSuchRun
from scalehp.defaults import DASHBOARD_PORT
from scalehp.errors import ResultsError, escape

log = logging.getLogger(__name__)

COOKIE = "scalehp_dashboard"
STATIC = resources.files("scalehp.dashboard") / "static"
TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".txt": "text/plain",
    ".svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
VIEWS = ("summary", "best", "curves", "trials", "trial", "rungs", "pbt", "parallel", "importance", "pareto", "failed", "plan")
SLOW = {"importance": 15.0, "pareto": 5.0, "pbt": 5.0, "parallel": 2.0}  # seconds a live run's answer may be reused


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _static_files() -> dict[str, tuple[bytes, str]]:
    """Every file the page may load, by its name under ``static/`` (read once)."""
    files: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
            elif "." in entry.name and "." + entry.name.rsplit(".", 1)[1] in TYPES:
                files[name] = (entry.read_bytes(), TYPES["." + entry.name.rsplit(".", 1)[1]])

    walk(STATIC, "")
    return files


def _json(data: Any) -> bytes:
    from scalehp.dashboard.data import _plain

    return json.dumps(_plain(data), allow_nan=False, separators=(",", ":")).encode()


def make_app(board: Any, *, host: str = "127.0.0.1", token: str | None = None) -> Any:
    """The aiohttp application serving ``board``; ``token`` required on every request when given."""
    from aiohttp import web

    files = _static_files()
    loopback = is_loopback(host)
    memo: dict[tuple, tuple[int, float, Any]] = {}  # a view's last answer, per run, view and query
    memo_lock = threading.Lock()

    @web.middleware
    async def guard(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _headers(
                web.json_response({"error": "read-only: only GET"}, status=405, headers={"Allow": "GET, HEAD"})
            )
        if loopback and not _loopback_host(request.host):
            return _headers(web.Response(status=403, text="the dashboard answers to loopback host names only"))
        if token is not None:
            given = request.query.get("token") or request.cookies.get(COOKIE) or _bearer(request)
            if not given or not hmac.compare_digest(given.encode(), token.encode()):
                return _headers(
                    web.Response(status=401, text="a token is required: open the address scalehp dashboard printed")
                )
            if "token" in request.query:  # once: into a cookie, out of the address bar and history
                where = request.rel_url.with_query({k: v for k, v in request.query.items() if k != "token"})
                response = web.Response(status=302, headers={"Location": str(where)})
                response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
                return _headers(response)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = web.Response(
                status=exc.status, text=exc.text, headers={k: v for k, v in exc.headers.items() if k == "Allow"}
            )
        return _headers(response)

    async def index(request: web.Request) -> web.Response:
        body, kind = files["index.html"]
        return web.Response(body=body, content_type=kind)

    async def static(request: web.Request) -> web.Response:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound(text="no such file")
        return web.Response(body=found[0], content_type=found[1], headers={"Cache-Control": "max-age=3600"})

    async def blocking(fn: Callable[[], Any]) -> web.Response:
        try:
            data = await asyncio.get_running_loop().run_in_executor(None, fn)
        except NoSuchRun as exc:
            return web.json_response({"error": escape(str(exc))}, status=404)
        except ResultsError as exc:  # a damaged part landed, a SQL error: one line
            return web.json_response({"error": escape(str(exc))}, status=422)
        except Exception as exc:  # noqa: BLE001 - the page gets one line, the log the rest
            log.exception("dashboard: %s", exc)
            return web.json_response({"error": f"internal error ({type(exc).__name__}); see the dashboard's log"}, status=500)
        return web.Response(body=_json(data), content_type="application/json", headers={"Cache-Control": "no-store"})

    async def version(request: web.Request) -> web.Response:
        return await blocking(lambda: {"version": board.version(), "time": time.time()})

    async def runs(request: web.Request) -> web.Response:
        return await blocking(board.runs)

    async def view(request: web.Request) -> web.Response:
        run_id, name = request.match_info["run_id"], request.match_info["view"]
        if name not in VIEWS:
            raise web.HTTPNotFound(text="no such view")
        q = request.query

        def answer() -> Any:
            state = board.state(run_id)
            key = (run_id, name, tuple(sorted(q.items())))
            with state.lock:  # (one view of a run at a time: a refresh never changes the tables under it)
                cached = memo.get(key)
                if cached and (cached[0] == state.version or time.monotonic() - cached[1] < SLOW.get(name, 0)):
                    return cached[2]
                data = _answer(state, name, q)
            with memo_lock:
                memo[key] = (state.version, time.monotonic(), data)
                while len(memo) > 512:
                    memo.pop(next(iter(memo)))
            return data

        return await blocking(answer)

    async def sql(request: web.Request) -> web.Response:
        text = request.query.get("q", "")
        if not text.strip():
            return web.json_response({"error": "write a query"}, status=400)
        if len(text) > 10_000:
            return web.json_response({"error": "the query is longer than 10,000 characters"}, status=400)
        return await blocking(lambda: board.sql(text))

    app = web.Application(middlewares=[guard], client_max_size=64 * 1024)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name:.+}", static)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{run_id}/{view}", view)
    app.router.add_get("/api/sql", sql)
    return app


def _answer(state: Any, name: str, q: Any) -> Any:
    if name == "summary":
        return state.summary()
    if name == "best":
        return state.best_so_far()
    if name == "curves":
        best = state.best()
        return state.curves(q.get("metric") or None, best=best["trial_id"] if best else None)
    if name == "trials":
        return state.trial_table(
            sort=q.get("sort", "best_value"),
            desc=q.get("desc") == "1",
            query=q.get("q", "")[:200],
            status=q.get("status", ""),
            offset=_int(q.get("offset"), 0),
            limit=_int(q.get("limit"), 100),
        )
    if name == "trial":
        return state.trial(q.get("id", ""))
    if name == "pbt":
        return state.pbt(q.get("trial") or None)
    if name == "plan":
        return state.plan
    return getattr(state, name)()


def _int(text: str | None, default: int) -> int:
    try:
        return max(0, int(text)) if text is not None else default
    except ValueError:
        return default


def _loopback_host(host: str | None) -> bool:
    """``Host:`` names a loopback address (``127.0.0.1:8265``, ``localhost``, ``[::1]:8265``)."""
    if not host:
        return False
    if host.startswith("["):
        end = host.find("]")
        return end > 0 and is_loopback(host[1:end])
    return is_loopback(host.rsplit(":", 1)[0] if ":" in host else host)


def _bearer(request: Any) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


def _headers(response: Any) -> Any:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


class Server:
    """A running dashboard: ``url`` to open, :meth:`close` to stop (it also runs in a thread for ``scalehp run``)."""

    def __init__(self, board: Any, host: str = "127.0.0.1", port: int = DASHBOARD_PORT, token: str | None = None) -> None:
        self.board, self.host, self.port, self.token = board, host, port, token
        self._runner: Any = None

    async def start(self) -> str:
        """Bind and serve; returns the address. Raises OSError when the port is taken."""
        from aiohttp import web

        app = make_app(self.board, host=self.host, token=self.token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=False)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.port = self._runner.addresses[0][1]  # the port bound (``port`` 0: any free one)
        return self.url

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def cannot_listen(exc: OSError, host: str, port: int, option: str) -> str:
    """The one line for a port the dashboard cannot bind, naming the option to change."""
    import errno

    reason = "the port is in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return f"{option} {port}: cannot listen on {host}:{port} ({reason}); choose another {option}"


def serve(board: Any, host: str, port: int, token: str | None, ready: Callable[[str], None]) -> None:
    """Serve until interrupted; ``ready(url)`` once listening. Raises OSError when the port is taken."""
    server = Server(board, host, port, token)

    async def main() -> None:
        ready(await server.start())
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    asyncio.run(main())


def in_thread(board: Any, host: str = "127.0.0.1", port: int = DASHBOARD_PORT) -> tuple[str, Callable[[], None]]:
    """Serve ``board`` from a daemon thread (``scalehp run --dashboard``); returns the address and a stop function.

    Raises:
        OSError: the port is taken.
    """
    import threading

    loop = asyncio.new_event_loop()
    server = Server(board, host, port, None)
    started: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["url"] = loop.run_until_complete(server.start())
        except OSError as exc:
            started["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=run, name="scalehp-dashboard", daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in started:
        raise started["error"]

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return started["url"], stop
