"""A scriptable HTTP/1.1 server on 127.0.0.1 for integration tests, running in its own thread.

Raw asyncio streams, so a test can make it misbehave at the byte level: drip a body, reset the
connection before or after reading the request, truncate a body, send a gzip bomb, answer with
any status and headers or with exact bytes (``Raw``), close idle keep-alive connections. Works
for async and sync clients.

    server = LoopbackServer().start()
    server.script("/flaky", Reply(503, headers={"Retry-After": "0"}), Reply(200, body=b"{}"))
    ...
    server.requests  # every request received: method, path, headers (lower-case), body
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import socket
import ssl
import struct
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from egress._serving import stop_accepting


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


class Action:
    """What the server does with one request. ``run`` returns False to close the connection."""

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        raise NotImplementedError


def _head(status: int, headers: dict[str, str], length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    fields = dict(headers)
    if length is not None and not any(k.lower() == "content-length" for k in fields):
        fields["Content-Length"] = str(length)
    lines += [f"{k}: {v}" for k, v in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Reply(Action):
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        body = self.body
        headers = dict(self.headers)
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if self.close:
            headers["Connection"] = "close"
        if request.method == "HEAD":
            writer.write(_head(self.status, headers, len(body)))
        else:
            writer.write(_head(self.status, headers, len(body)) + body)
        await writer.drain()
        return not self.close


@dataclass
class Reset(Action):
    """Read the request, then reset the connection (RST) without answering."""

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        _rst(writer)
        return False


@dataclass
class Drip(Action):
    """Declare ``len(body)`` and send it one byte every ``interval`` seconds."""

    body: bytes = b"x" * 100
    interval: float = 0.05

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        writer.write(_head(200, {}, len(self.body)))
        for index in range(len(self.body)):
            try:
                writer.write(self.body[index:index + 1])
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return False
            await asyncio.sleep(self.interval)
        return True


@dataclass
class DripHeaders(Action):
    """Send the status line, then one header byte every ``interval`` seconds (slowloris).

    ``prefix=b"HTTP/1.1 200 "`` drips the status line itself (a reason phrase that never ends);
    ``prefix=b"", piece=b"HTTP/1.1 100 Continue\r\n\r\n"`` sends interim answers forever.
    """

    count: int = 200
    interval: float = 0.02
    prefix: bytes = b"HTTP/1.1 200 OK\r\nX-Slow: "
    piece: bytes = b"a"

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        writer.write(self.prefix)
        for _ in range(self.count):
            try:
                writer.write(self.piece)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return False
            await asyncio.sleep(self.interval)
        return False


@dataclass
class Truncate(Action):
    """Declare ``declared`` bytes, send ``len(sent)``, then close."""

    declared: int = 1000
    sent: bytes = b"{" + b" " * 499

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        writer.write(_head(200, {"Content-Type": "application/json"}, self.declared) + self.sent)
        await writer.drain()
        writer.close()
        return False


@dataclass
class Chunked(Action):
    """A chunked body: ``chunks`` of ``size`` bytes (an endless body if ``chunks`` is large)."""

    chunks: int = 10
    size: int = 65536

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        writer.write(_head(200, {"Transfer-Encoding": "chunked"}, None))
        piece = f"{self.size:x}\r\n".encode() + b"a" * self.size + b"\r\n"
        for _ in range(self.chunks):
            try:
                writer.write(piece)
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


@dataclass
class Raw(Action):
    """Write ``data`` exactly as given (status line and all), then close the connection, or
    with ``reset`` reset it (RST) at once, or with ``keep`` keep it for the next request.
    ``early``: answer as soon as the request's head is read, before (and without) its body."""

    data: bytes
    reset: bool = False
    keep: bool = False
    early: bool = False

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        try:
            writer.write(self.data)
            await writer.drain()
        except (ConnectionError, RuntimeError):
            return False
        if self.reset:
            _rst(writer)
            return False
        if not self.keep:
            writer.close()
        return self.keep


@dataclass
class Hang(Action):
    """Never answer (until ``seconds`` pass, then close)."""

    seconds: float = 5.0

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(self.seconds)
        return False


def gzip_bomb(decoded: int = 50 * 1024 * 1024) -> bytes:
    """A gzip stream that inflates to ``decoded`` zero bytes (about 1000:1)."""
    return gzip.compress(b"\0" * decoded, compresslevel=9)


def _rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class LoopbackServer:
    """The server. ``start()`` runs it in a daemon thread; ``stop()`` ends it."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context  # serve HTTPS with this context
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque[Action]] = defaultdict(deque)
        self._routes: dict[str, Callable[[Recorded], Action]] = {}
        self._connections = itertools.count(1)
        self.reset_on_accept = 0  # reset this many new connections before reading anything
        self.close_idle = False  # close every keep-alive connection right after its answer
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(5)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0,
                                                  ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                # A connection accepted in the turn before close() would fail its setup and
                # leak its socket to the GC (a ResourceWarning in a later test): let it attach.
                await stop_accepting(self._server.sockets)
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def clear(self) -> None:
        self.requests.clear()
        self._scripts.clear()
        self._routes.clear()
        self.reset_on_accept = 0
        self.close_idle = False

    def script(self, path: str, *actions: Action) -> None:
        """Answer the next requests to ``path`` with ``actions``, in order (then 200 ``{}``)."""
        self._scripts[path].extend(actions)

    def route(self, path: str, handler: Callable[[Recorded], Action]) -> None:
        """Answer every request to ``path`` with ``handler(request)`` (after any script)."""
        self._routes[path] = handler

    def hits(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

    def _action(self, request: Recorded) -> Action:
        path = request.path.split("?", 1)[0]
        queue = self._scripts.get(path)
        if queue:
            return queue.popleft()
        handler = self._routes.get(path)
        if handler is not None:
            return handler(request)
        return Reply(200, {"path": request.path, "method": request.method})

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = next(self._connections)
        if self.reset_on_accept > 0:
            self.reset_on_accept -= 1
            _rst(writer)
            return
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = Recorded(method, target, headers, b"", connection)
                action = self._action(request)
                if getattr(action, "early", False):  # answer before reading the body
                    self.requests.append(request)
                    await action.run(self, request, writer)
                    break
                length = int(headers.get("content-length", "0") or 0)
                request.body = await reader.readexactly(length) if length else b""
                self.requests.append(request)
                keep = await action.run(self, request, writer)
                if not keep or self.close_idle:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()
