"""The stdlib backend (sync): ``http.client`` connections in a small thread-safe pool.

The fastest sync wire measured (``bench/http_client.py``): it skips the layers urllib3 and httpx
add,
which the client already does its own way (URL safety, decoding, caps, errors). Every socket read
gets ``min(read timeout, time left in the attempt)``, so the attempt's total limit holds even
against a server that drips its headers or body one byte at a time. An idle pooled connection that
the server has closed is detected before reuse (a zero-timeout readability check), which avoids
most stale keep-alive failures. No proxy support: ``trust_env=True`` needs the httpx backend.
"""

from __future__ import annotations

import http.client
import io
import select
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import egress.http._wire_errors as failed
from egress._redacted import RedactedURL, drop_frames
from egress.errors import ConfigurationError, EgressError
from egress.http._body import BodyReader
from egress.http._headers import Headers
from egress.http._wire import WireOptions, WireRequest, WireResponse

__all__ = ["StdlibWire"]

_CHUNK = 65536
_SLACK = 0.005  # seconds a socket timeout may exceed what the attempt allows
_NO_BODY_STATUSES = frozenset({204, 304})
_URL_CACHE_LIMIT = 1024

Target = tuple[str, str, int, str]  # scheme, host, port, request target


class _Budget:
    """The running attempt's time limits, read by every socket read on a connection.

    Setting a socket timeout costs two system calls, so it is only changed when it is off by more
    than :data:`_SLACK` from what the attempt allows now.
    """

    __slots__ = ("current", "end", "now", "read")

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.end = 0.0
        self.read = 0.0
        self.current = -1.0

    def apply(self, sock: socket.socket, limit: float) -> None:
        """Give ``sock`` the timeout ``min(limit, time left)``."""
        left = self.end - self.now()
        if left <= 0:
            raise TimeoutError("the attempt's total time limit passed")
        want = limit if limit < left else left
        if abs(self.current - want) > _SLACK:
            sock.settimeout(want)
            self.current = want


class _DeadlineRaw(io.RawIOBase):
    """Raw socket reads, each with the timeout the attempt still allows."""

    def __init__(self, sock: socket.socket, budget: _Budget) -> None:
        super().__init__()
        self._sock = sock
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        budget = self._budget
        budget.apply(self._sock, budget.read)
        return self._sock.recv_into(buffer)


class _Response(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None,
                 url: str | None = None, *, budget: _Budget) -> None:
        super().__init__(sock, debuglevel, method, url)
        # Reads go through the deadline-aware reader, but http.client's own makefile() stays
        # open (never read) until the response closes: it holds a reference on the socket.
        # After an answer that ends with the connection (HTTP/1.0 or no length: read until
        # close) HTTPConnection closes its socket at once, relying on that reference to keep
        # the descriptor for the body; without it the body read failed (EBADF) and a valid
        # answer was reported as truncated.
        self._hold = self.fp
        self.fp = io.BufferedReader(_DeadlineRaw(sock, budget), _CHUNK)

    def _close_conn(self) -> None:
        super()._close_conn()  # type: ignore[misc]
        self._hold.close()

    def _read_status(self) -> tuple[str, int, str]:
        # http.client skips only 100 Continue; any other interim answer (102 Processing, 103
        # Early Hints) was taken for the final one. Skip them all, as the other backends do
        # (101 is final: no upgrade is ever asked for). Every read is under the attempt's
        # limits, so endless interim answers still end by the deadline.
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 101 < status < 200:
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]


def _framing(response: http.client.HTTPResponse) -> bool:
    """Whether the answer's head is well formed and its length unambiguous, fixing up the
    length http.client could not read. http.client takes the first Content-Length as it is
    (``+2``; two different values) and reads an unreadable one (``abc``, ``-1``) as "until
    close", and keeps header lines the email parser refused (no colon, a space or a byte
    beyond ASCII in the name) as defects: RFC 9112 6.3 makes a bad length an unrecoverable
    error, and the other backends refuse all of these."""
    message = response.msg
    if message.defects:
        return False
    values = message.get_all("content-length")
    if not values or response.chunked:
        return True
    parts = {part.strip() for value in values for part in value.split(",")}
    if len(parts) != 1:
        return False
    (length,) = parts
    if not (length.isascii() and length.isdigit()):
        return False
    if response.length is None:  # a list of one repeated value: "2, 2"
        response.length = int(length)
    return True


class _Connection:
    __slots__ = ("budget", "conn", "key")

    def __init__(self, key: tuple[str, str, int], conn: http.client.HTTPConnection,
                 budget: _Budget) -> None:
        self.key = key
        self.conn = conn
        self.budget = budget


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection was closed by the server (readable = EOF or junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _map_error(exc: Exception, request: WireRequest, phase: str) -> EgressError:
    """Every stdlib failure, translated once. ``phase``: connect, send or read."""
    if isinstance(exc, EgressError):
        return exc
    where = request.where()
    if phase == "connect":
        if isinstance(exc, ssl.SSLCertVerificationError):
            return failed.certificate_refused(where)
        if isinstance(exc, TimeoutError):
            return failed.connect_timed_out(where, exc)
        return failed.not_connected(where, exc)
    if isinstance(exc, TimeoutError):
        return failed.timed_out(where, exc)
    if isinstance(exc, http.client.InvalidURL | ValueError) and phase == "send":
        return failed.refused_by_library(where, exc)
    if phase == "read" and isinstance(exc, http.client.HTTPException | OSError):
        return failed.truncated(where, exc)
    if isinstance(exc, http.client.HTTPException) and not isinstance(
            exc, http.client.RemoteDisconnected):
        return failed.malformed(where, exc)
    return failed.failed_after_connecting(where, exc)


class StdlibWire:
    """The ``http.client`` backend, thread-safe, at most ``max_connections`` sockets."""

    name = "stdlib"

    def __init__(self, options: WireOptions) -> None:
        if options.trust_env:
            raise ConfigurationError(
                "trust_env=True (environment proxies) needs backend='httpx'; the stdlib backend "
                "connects directly"
            )
        self._options = options
        self._now = options.clock.now
        self._cap = options.max_response_bytes
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(options.max_connections)
        self._targets: dict[str, Target] = {}
        self._closed = False

    def _target(self, url: str) -> Target:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            scheme = parts.scheme
            port = parts.port or (443 if scheme == "https" else 80)
            path = parts.path or "/"
            # Its repr hides the query (api_key=...): it is a local of send() in any traceback.
            target = RedactedURL(f"{path}?{parts.query}") if parts.query else path
            found = (scheme, parts.hostname or "", port, target)
            if len(self._targets) < _URL_CACHE_LIMIT:
                self._targets[url] = found
        return found

    def _checkout(self, key: tuple[str, str, int], connect: float) -> tuple[_Connection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                entry = idle.pop()
                if not _dropped(entry.conn):
                    return entry, True
                entry.conn.close()
        scheme, host, port = key
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=connect,
                                               context=self._options.ssl_context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect)
        budget = _Budget(self._now)
        conn.response_class = _bind_response(budget)  # type: ignore[assignment]
        return _Connection(key, conn, budget), False

    def _checkin(self, entry: _Connection) -> None:
        with self._lock:
            if self._closed:
                entry.conn.close()
                return
            self._idle.setdefault(entry.key, []).append(entry)

    def send(self, request: WireRequest) -> WireResponse:
        scheme, host, port, target = self._target(request.url)
        connect, read, write, pool, _total = request.limits.at(self._now())
        if not self._slots.acquire(timeout=pool):
            raise failed.pool_wait_timed_out(request.where())
        entry: _Connection | None = None
        answer: http.client.HTTPResponse | None = None
        keep = False
        phase = "connect"
        error: EgressError | None = None
        cause: BaseException | None = None
        try:
            entry, reused = self._checkout((scheme, host, port), connect)
            conn = entry.conn
            budget = entry.budget
            budget.end = request.limits.end
            budget.read = read
            if not reused:
                conn.connect()
                budget.current = connect
            phase = "send"
            assert conn.sock is not None
            budget.apply(conn.sock, write)
            conn.request(request.method, target, body=request.body, headers=request.headers)
            response = answer = conn.getresponse()
            phase = "read"
            if not _framing(response):
                raise failed.malformed(request.where(), http.client.HTTPException())
            status = response.status
            message = response.msg
            length = response.length if response.chunked is False else None
            headers = Headers(getattr(message, "_headers", None) or message.items())
            if request.method == "HEAD" or status in _NO_BODY_STATUSES:
                # No body follows, whatever Content-Length and Content-Encoding announce.
                content = b""
                response.read()
            else:
                reader = BodyReader(self._cap, headers.get("content-encoding"), length)
                if reader.plain and length is not None:
                    content = response.read()
                    reader.feed(content)
                else:
                    while True:
                        chunk = response.read1(_CHUNK)
                        if not chunk:
                            break
                        reader.feed(chunk)
                    content = reader.finish()
            keep = not response.will_close
        except Exception as exc:
            error = _map_error(exc, request, phase)
            if error is exc:
                raise
            # http.client's ValueErrors quote the header value (a credential): never chained.
            cause = exc if isinstance(exc, OSError | http.client.HTTPException) else None
        finally:
            if answer is not None and not keep:
                # A failed or will-close answer lets go of the socket reference it holds
                # (_Response._hold) now, not whenever the collector gets to it.
                answer.close()
            if entry is not None:
                if keep:
                    self._checkin(entry)
                else:
                    entry.conn.close()
            self._slots.release()
        if error is not None:
            drop_frames(cause)  # http.client's frames hold the raw request in locals
            raise error from cause  # outside the handler: no hidden __context__ either
        return WireResponse(status, headers, content)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for entries in idle.values():
            for entry in entries:
                entry.conn.close()

    def __repr__(self) -> str:
        return "StdlibWire()"


def _bind_response(budget: _Budget) -> Callable[..., http.client.HTTPResponse]:
    def make(sock: socket.socket, debuglevel: int = 0, method: str | None = None,
             url: str | None = None) -> http.client.HTTPResponse:
        return _Response(sock, debuglevel, method, url, budget=budget)

    return make


