"""The httpx backends (async and sync), sharing one error mapping and one body reader.

Requests go through ``client.send(stream=True)`` and the raw (still encoded) body is read chunk by
chunk into the bounded :class:`~egress.http._body.BodyReader`. httpx has per-operation timeouts
only (encode/httpx#1450): the async backend adds the attempt's total limit with
``asyncio.timeout``; the sync backend gives its connection pools sockets that cap every read and
write by the time left in the attempt, so no server (dripped status line or headers, ``100
Continue`` forever, a dripped body) holds a call past its end.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import egress.http._wire_errors as failed
from egress._redacted import drop_frames
from egress.errors import AttemptTimeoutError, ConfigurationError, EgressError
from egress.http._body import BodyReader
from egress.http._headers import Headers
from egress.http._httpx_logs import install as install_log_filter
from egress.http._trust import refused_certificate
from egress.http._wire import WireOptions, WireRequest, WireResponse

try:
    import h11
    import httpcore
    import httpx
except ModuleNotFoundError as exc:  # httpx is an extra since 0.2
    raise ConfigurationError("backend='httpx' and ResilientTransport need the httpx package: "
                             "pip install 'egress[httpx]'") from exc

__all__ = ["HttpxAsyncWire", "HttpxSyncWire", "map_httpx_error"]

_NO_BODY_STATUSES = frozenset({204, 304})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RAW_HEADERS = "egress.raw_headers"  # where _hide_location keeps a redirect's own headers
_BACKSTOP = 0.05  # seconds the async total waits for httpx's own timeouts to fire first


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """An API client keeps no cookies between calls."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def map_httpx_error(exc: BaseException, where: str, reading: bool) -> EgressError:
    """Every httpx failure, translated once: the backends' and ``ResilientTransport``'s errors
    (``_transport_errors.from_httpx``) both come from here. ``where``: method and URL without
    query; ``reading``: the headers had arrived."""
    if isinstance(exc, EgressError):
        return exc
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return failed.connect_timed_out(where, exc)
    if isinstance(exc, httpx.ConnectError):  # a refused certificate is permanent: never retried
        return (failed.certificate_refused(where) if refused_certificate(exc)
                else failed.not_connected(where, exc))
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return failed.timed_out(where, exc)
    if isinstance(exc, httpx.LocalProtocolError | httpx.InvalidURL | httpx.UnsupportedProtocol
                  | ValueError):
        return failed.refused_by_library(where, exc)
    if reading and isinstance(exc, httpx.TransportError | OSError):
        return failed.truncated(where, exc)
    if isinstance(exc, httpx.RemoteProtocolError) and _unparsable(exc):
        # h11 refused the answer's head (a status line, a header, a length it cannot read):
        # the server answered, badly; not a connection closed without an answer.
        return failed.malformed(where, exc)
    if isinstance(exc, httpx.RemoteProtocolError):
        return failed.failed_after_connecting(where, exc, "connection closed without a response")
    return failed.failed_after_connecting(where, exc)


def _unparsable(exc: BaseException) -> bool:
    """Whether h11 itself refused what the server sent (httpx and httpcore each raise theirs
    while handling its ``RemoteProtocolError``); httpcore's own "Server disconnected without
    sending a response" comes from no such error."""
    link = exc.__cause__ or exc.__context__
    for _ in range(4):
        if link is None:
            return False
        if isinstance(link, h11.RemoteProtocolError):
            return True
        link = link.__cause__ or link.__context__
    return False


def _hide_location(response: httpx.Response) -> None:
    """httpx builds the next request of every redirect answer inside ``send``, even when told
    not to follow it, and raises if the Location is not a URL it can build (``javascript:``,
    ``http://[::1``): as ``InvalidURL``, which read as "request refused by the HTTP library"
    for a request the server had answered. egress follows redirects itself: the Location is
    taken out of httpx's sight here (a response hook, run before that step) and the answer's
    own headers are kept for egress."""
    if response.status_code in _REDIRECTS and "location" in response.headers:
        response.extensions[_RAW_HEADERS] = tuple(response.headers.raw)
        del response.headers["location"]


async def _hide_location_async(response: httpx.Response) -> None:
    _hide_location(response)


def _chainable(exc: BaseException) -> BaseException | None:
    """``exc`` if it may be kept as ``__cause__``: never one that can quote the request (h11's
    LocalProtocolError prints the refused header value, a credential)."""
    if isinstance(exc, httpx.LocalProtocolError | ValueError) or not isinstance(
            exc, OSError | TimeoutError | httpx.TransportError):
        return None
    if isinstance(exc, httpx.RemoteProtocolError) and _unparsable(exc):
        return None  # h11 quotes the line it refused: a response header (a cookie) or body
    return exc


def _limits(options: WireOptions) -> httpx.Limits:
    return httpx.Limits(max_connections=options.max_connections,
                        max_keepalive_connections=options.max_connections,
                        keepalive_expiry=options.keepalive_expiry)


def _client_kwargs(options: WireOptions) -> dict[str, Any]:
    return {
        "verify": options.ssl_context,
        "trust_env": options.trust_env,
        "limits": _limits(options),
        "follow_redirects": False,
        "timeout": None,
    }


def _build(client: httpx.AsyncClient | httpx.Client, request: WireRequest,
           timeouts: tuple[float, float, float, float, float]) -> httpx.Request:
    connect, read, write, pool, _total = timeouts
    return client.build_request(
        request.method, request.url, headers=request.headers, content=request.body,
        timeout=httpx.Timeout(connect=connect, read=read, write=write, pool=pool),
    )


def _reader(response: httpx.Response, request: WireRequest, cap: int) -> BodyReader | None:
    if request.method == "HEAD" or response.status_code in _NO_BODY_STATUSES:
        return None  # no body follows, whatever Content-Length and Content-Encoding announce
    headers = response.headers
    length = headers.get("content-length")
    declared = int(length) if length is not None and length.isdigit() else None
    return BodyReader(cap, headers.get("content-encoding"), declared)


def _raise_failure(error: EgressError | None, cause: BaseException | None) -> None:
    """Raise either wire's error, if any, here: outside the handler that caught it, so that it
    carries no hidden ``__context__``."""
    if error is not None:
        drop_frames(cause)  # the library's frames hold the raw request in locals
        raise error from cause


def _answer(response: httpx.Response, content: bytes) -> WireResponse:
    raw = response.extensions.get(_RAW_HEADERS) or response.headers.raw
    return WireResponse(response.status_code, Headers.from_raw(raw), content)


_Client = TypeVar("_Client", httpx.Client, httpx.AsyncClient)


def _new_client(factory: type[_Client], options: WireOptions) -> _Client:
    """An httpx client of either world, with egress's settings and no cookie storage."""
    install_log_filter()  # httpx logs full URLs, httpcore response headers
    hook = _hide_location_async if factory is httpx.AsyncClient else _hide_location
    client = factory(**_client_kwargs(options), event_hooks={"response": [hook]})
    client.cookies.jar.set_policy(_NoCookies())
    # httpx alone sends "Connection: keep-alive" (HTTP/1.1's default, said by no other backend):
    # dropped, so every backend sends the same headers for the same call.
    del client.headers["Connection"]
    return client


class HttpxAsyncWire:
    """The httpx async backend: one ``httpx.AsyncClient`` for the client's life."""

    name = "httpx"

    def __init__(self, options: WireOptions) -> None:
        self._client = _new_client(httpx.AsyncClient, options)
        self._cap = options.max_response_bytes
        self._now = options.clock.now

    async def send(self, request: WireRequest) -> WireResponse:
        timeouts = request.limits.at(self._now())
        reading = False
        error: EgressError | None = None
        cause: BaseException | None = None
        try:
            # A backstop just after the end: httpx's own pool, connect and read timeouts (all
            # capped at the end) fire first and say whether anything was sent; this one stops
            # only what they cannot (a drip), and reports it as sent.
            async with asyncio.timeout(timeouts[4] + _BACKSTOP):
                response = await self._client.send(_build(self._client, request, timeouts),
                                                   stream=True)
                reading = True
                try:
                    reader = _reader(response, request, self._cap)
                    content = b""
                    if reader is not None:
                        async for chunk in response.aiter_raw():
                            reader.feed(chunk)
                        content = reader.finish()
                finally:
                    await response.aclose()
        except Exception as exc:
            error = map_httpx_error(exc, request.where(), reading)
            if error is exc:
                raise
            cause = _chainable(exc)
        _raise_failure(error, cause)
        return _answer(response, content)

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return "HttpxAsyncWire()"


class _Deadline(threading.local):
    """The running attempt's end (clock time) in this thread; ``None`` when no attempt runs."""

    end: float | None = None


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write gets ``min(its timeout, time left in the attempt)``.

    httpx's sync API has per-operation timeouts only (encode/httpx#1450): a server that drips
    its status line or headers, or sends ``100 Continue`` forever, resets the read timeout with
    each byte. Capping every single socket operation makes the attempt's end hold at any stage.
    """

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline,
                 now: Callable[[], float]) -> None:
        self._inner = inner
        self._deadline = deadline
        self._now = now

    def _left(self, timeout: float | None, error: type[Exception]) -> float | None:
        end = self._deadline.end
        if end is None:
            return timeout
        left = end - self._now()
        if left <= 0:
            raise error("the attempt's total time limit passed")
        return left if timeout is None or left < timeout else timeout

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname,
                                      self._left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline, self._now)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, with :class:`_DeadlineStream` sockets."""

    def __init__(self, inner: httpcore.NetworkBackend, deadline: _Deadline,
                 now: Callable[[], float]) -> None:
        self._inner = inner
        self._deadline = deadline
        self._now = now

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline, self._now)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None,
                            ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(path, timeout, socket_options)
        return _DeadlineStream(stream, self._deadline, self._now)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _watch_deadlines(client: httpx.Client, deadline: _Deadline,
                     now: Callable[[], float]) -> None:
    """Give every connection pool of ``client`` (direct and proxied) deadline-aware sockets.

    httpx takes no network backend; its pools keep theirs in ``_network_backend``, read when a
    connection opens. The hang tests on the sync httpx backend fail if that ever changes.
    """
    for transport in [client._transport, *client._mounts.values()]:
        pool = getattr(transport, "_pool", None)
        inner = getattr(pool, "_network_backend", None)
        if not isinstance(inner, httpcore.NetworkBackend):
            raise RuntimeError("httpx changed: egress cannot bound its sync reads any more")
        pool._network_backend = _DeadlineBackend(inner, deadline, now)  # type: ignore[union-attr]


class HttpxSyncWire:
    """The httpx sync backend: one ``httpx.Client`` for the client's life (thread-safe)."""

    name = "httpx"

    def __init__(self, options: WireOptions) -> None:
        self._client = _new_client(httpx.Client, options)
        self._cap = options.max_response_bytes
        self._now = options.clock.now
        self._deadline = _Deadline()
        _watch_deadlines(self._client, self._deadline, self._now)

    def send(self, request: WireRequest) -> WireResponse:
        timeouts = request.limits.at(self._now())
        end = self._deadline.end = request.limits.end
        reading = False
        error: EgressError | None = None
        cause: BaseException | None = None
        try:
            response = self._client.send(_build(self._client, request, timeouts), stream=True)
            reading = True
            try:
                reader = _reader(response, request, self._cap)
                content = b""
                if reader is not None:
                    for chunk in response.iter_raw():
                        reader.feed(chunk)
                        if self._now() >= end:
                            raise AttemptTimeoutError(
                                f"{request.where()}: the attempt's total time limit passed "
                                f"while reading the body", sent=True)
                    content = reader.finish()
            finally:
                response.close()
        except Exception as exc:
            error = map_httpx_error(exc, request.where(), reading)
            if error is exc:
                raise
            cause = _chainable(exc)
        finally:
            self._deadline.end = None
        _raise_failure(error, cause)
        return _answer(response, content)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return "HttpxSyncWire()"
