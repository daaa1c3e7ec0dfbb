"""A live status page: states, rates, latency percentiles and recent events, over SSE.

>>> sink = DashboardSink()
>>> client = ApiClient(url, sink=sink)                            # doctest: +SKIP
>>> app.add_subapp("/egress/", dashboard_app(sink))               # doctest: +SKIP (aiohttp)
>>> server = serve_dashboard(sink, port=8765)  # its own thread    # doctest: +SKIP

One HTML page with its CSS and script inline (no build step, no CDN: it works offline), fed by
``events`` (Server-Sent Events: a JSON snapshot every ``interval`` seconds) and ``status.json``.
The snapshot merges :func:`egress.status` (named breakers, limiters, budgets, bulkheads) with what
the sink saw (every breaker's transitions, calls per second by outcome, latency percentiles of
the last calls, the last events). Everything shown is redacted like a log record.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from importlib import resources
from typing import Any, Final

from aiohttp import web

from egress._serving import stop_accepting
from egress.events import CallFinished, CircuitStateChanged, Event
from egress.observability._redact import redact_text, redact_value
from egress.observability.status import status
from egress.stores.memory import MEMORY_STORE, MemoryStore

__all__ = ["DashboardServer", "DashboardSink", "asgi_app", "dashboard_app", "serve_dashboard"]

DEFAULT_INTERVAL: Final = 0.5
RATE_WINDOW: Final = 10.0
_MAX_CALLS: Final = 100_000


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000.0, 2)


def _describe(event: Event, wall: float) -> dict[str, Any]:
    fields = {f.name: _short(redact_value(getattr(event, f.name)))
              for f in dataclasses.fields(event) if f.name not in ("operation", "at")}
    return {"time": wall, "kind": event.kind, "operation": redact_text(event.operation),
            "detail": " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)}


def _short(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


class DashboardSink:
    """Keeps what the page shows, bounded in memory; thread-safe. Opts in to per-call events."""

    per_call = True

    def __init__(self, *, recent: int = 30, latencies: int = 2000,
                 stores: Iterable[MemoryStore] = (MEMORY_STORE,),
                 idempotency: Iterable[object] = ()) -> None:
        self.stores = tuple(stores)
        self.idempotency = tuple(idempotency)  # idempotency stores: their records in doubt
        self._lock = threading.Lock()
        self._reading = threading.Lock()  # held while the stores are read
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self._transitions: deque[dict[str, Any]] = deque(maxlen=100)
        self._breakers: dict[str, dict[str, Any]] = {}
        self._calls: deque[tuple[float, str]] = deque(maxlen=_MAX_CALLS)
        self._latencies: deque[float] = deque(maxlen=latencies)
        self._totals: Counter[str] = Counter()

    def emit(self, event: Event) -> None:
        wall = time.time()
        with self._lock:
            if isinstance(event, CallFinished):
                self._calls.append((wall, event.outcome))
                self._latencies.append(event.duration)
                self._totals[f"calls.{event.outcome}"] += 1
                return
            if event.per_call:
                if event.kind == "attempt.started":
                    self._totals["attempts"] += 1
                return
            self._totals[event.kind] += 1
            self._recent.append(_describe(event, wall))
            if isinstance(event, CircuitStateChanged):
                name = redact_text(event.breaker)
                self._breakers[name] = {"name": name, "state": event.new, "since": wall}
                self._transitions.append({"time": wall, "breaker": name, "old": event.old,
                                          "new": event.new})

    @contextlib.contextmanager
    def watching(self, store: object) -> Iterator[None]:
        """Also list ``store``'s records in doubt while inside (for a store opened and closed
        after the sink was built, as the demo's is: a closed store is no longer read)."""
        with self._reading:
            self.idempotency = (*self.idempotency, store)
        try:
            yield
        finally:  # waits for a snapshot reading it: once out, the store may be closed
            with self._reading:
                self.idempotency = tuple(s for s in self.idempotency if s is not store)

    def snapshot(self) -> dict[str, Any]:
        """What the page shows, JSON-ready."""
        now = time.time()
        with self._reading:
            live = status(self.stores, idempotency=self.idempotency).as_dict()
        with self._lock:
            seen = {name: dict(entry) for name, entry in self._breakers.items()}
            recent_calls = [outcome for at, outcome in self._calls if at >= now - RATE_WINDOW]
            ordered = sorted(self._latencies)
            result: dict[str, Any] = {
                "time": now,
                "transitions": list(self._transitions),
                "recent": list(self._recent)[::-1],
                "totals": dict(self._totals),
            }
        for entry in live["breakers"]:
            name = redact_text(entry["name"])
            merged = {**seen.get(name, {}), **entry, "name": name}
            seen[name] = merged
        result["breakers"] = sorted(seen.values(), key=lambda b: b["name"])
        result["limiters"] = live["limiters"]
        result["budgets"] = live["budgets"]
        result["bulkheads"] = live["bulkheads"]
        result["sink_failures"] = live["sink_failures"]
        result["in_doubt"] = live["in_doubt"]
        by_outcome = Counter(recent_calls)
        result["rates"] = {k: round(v / RATE_WINDOW, 2) for k, v in sorted(by_outcome.items())}
        result["latency_ms"] = {"p50": _percentile(ordered, 0.5),
                                "p95": _percentile(ordered, 0.95),
                                "p99": _percentile(ordered, 0.99), "calls": len(ordered)}
        return result

    def __repr__(self) -> str:
        return "DashboardSink()"


async def _snapshot(sink: DashboardSink) -> dict[str, Any]:
    """``sink.snapshot()`` on a worker thread: it reads the stores with their blocking clients
    (a Redis round trip, a SQLite query, each up to its own timeout), and the page is often
    mounted in the application's own server, whose event loop must not wait on them."""
    return await asyncio.to_thread(sink.snapshot)


def _page() -> bytes:
    return resources.files("egress.observability").joinpath("dashboard.html").read_bytes()


def dashboard_app(sink: DashboardSink, *, interval: float = DEFAULT_INTERVAL) -> web.Application:
    """The page as an aiohttp application: mount it with ``app.add_subapp(prefix, ...)``.

    Routes (relative, so any prefix works): ``/`` the page, ``/status.json``, ``/events`` (SSE).
    """
    app = web.Application()
    streams: set[asyncio.Event] = set()  # one per open page, so shutdown can end them
    page = _page()

    async def index(request: web.Request) -> web.StreamResponse:
        if not request.path.endswith("/"):  # relative URLs in the page need the slash
            raise web.HTTPFound(request.path + "/")
        return web.Response(body=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def snapshot(request: web.Request) -> web.Response:
        return web.json_response(await _snapshot(sink))

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        stop = asyncio.Event()
        streams.add(stop)
        try:
            while not stop.is_set():
                data = json.dumps(await _snapshot(sink), default=str)
                await response.write(f"data: {data}\n\n".encode())
                with contextlib.suppress(TimeoutError):  # the next tick
                    await asyncio.wait_for(stop.wait(), interval)
        except ConnectionError:
            pass  # the browser went away
        finally:
            streams.discard(stop)
        return response

    async def close_streams(app: web.Application) -> None:
        for stop in list(streams):
            stop.set()

    app.router.add_get("/", index)
    app.router.add_get("/status.json", snapshot)
    app.router.add_get("/events", events)
    app.on_shutdown.append(close_streams)
    return app


ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def asgi_app(sink: DashboardSink, *, interval: float = DEFAULT_INTERVAL) -> ASGIApp:
    """The same page as a plain ASGI application (mount it in Starlette, FastAPI, Django...)."""
    page = _page()

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        root, path = scope.get("root_path", ""), scope.get("path", "/")
        if root and path.startswith(root):
            path = path[len(root):]

        async def answer(status: int, ctype: str, body: bytes,
                         extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", ctype.encode()), (b"cache-control", b"no-store"), *extra]})
            await send({"type": "http.response.body", "body": body})

        if path == "":
            await answer(302, "text/plain", b"", ((b"location", (root + "/").encode()),))
        elif path == "/":
            await answer(200, "text/html; charset=utf-8", page)
        elif path == "/status.json":
            await answer(200, "application/json", json.dumps(await _snapshot(sink),
                                                             default=str).encode())
        elif path == "/events":
            await _stream(sink, interval, receive, send)
        else:
            await answer(404, "text/plain", b"not found")

    return app


async def _stream(sink: DashboardSink, interval: float,
                  receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")]})
    gone = asyncio.ensure_future(receive())  # the next message can only be a disconnect
    try:
        while True:
            data = json.dumps(await _snapshot(sink), default=str)
            await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode(),
                        "more_body": True})
            done, _ = await asyncio.wait({gone}, timeout=interval)
            if done:
                return
    finally:
        gone.cancel()


class DashboardServer:
    """The dashboard served from its own thread and event loop (for scripts and the demo)."""

    def __init__(self, sink: DashboardSink, *, host: str = "127.0.0.1", port: int = 0,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.sink = sink
        self.host = host
        self.port = port
        self._interval = interval
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="egress-dashboard")
        self._runner: web.AppRunner | None = None
        self._sockets: list[Any] = []  # the listening sockets (asyncio's TransportSocket)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> DashboardServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        runner = web.AppRunner(dashboard_app(self.sink, interval=self._interval),
                               access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self._sockets = list(sockets)
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def _stop(self, runner: web.AppRunner) -> None:
        # A poll accepted just as the page stops would else leak its socket (egress._serving).
        await stop_accepting(self._sockets)
        await runner.cleanup()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._stop(self._runner), self._loop).result(10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> DashboardServer:
        return self if self._runner is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_dashboard(sink: DashboardSink, *, host: str = "127.0.0.1", port: int = 0,
                    interval: float = DEFAULT_INTERVAL) -> DashboardServer:
    """Start serving ``sink``'s page on ``host:port`` (0: a free port) in a thread."""
    return DashboardServer(sink, host=host, port=port, interval=interval).start()
