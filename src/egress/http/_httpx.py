"""The httpx backends (async and sync), sharing one error mapping and one body reader.

Requests go through ``client.send(stream=True)`` and the raw (still encoded) body is read chunk by
chunk into the bounded :class:`~egress.http._body.BodyReader`. httpx has per-operation timeouts
only (encode/httpx#1450): the async backend adds the attempt's total limit with
``asyncio.timeout``; the sync backend checks it between chunks, and caps every per-operation timeout
by it, so a drip can overrun the total by at most one read timeout.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
from typing import Any

from egress.errors import (
    AttemptTimeoutError,
    ConfigurationError,
    EgressError,
    ResponseError,
    TransportError,
    UnsafeRequestError,
)
from egress.http._body import BodyReader
from egress.http._headers import Headers
from egress.http._wire import WireOptions, WireRequest, WireResponse

try:
    import httpx
except ModuleNotFoundError as exc:  # httpx is an extra since 0.2
    raise ConfigurationError("backend='httpx' and ResilientTransport need the httpx package: "
                             "pip install 'egress[httpx]'") from exc

__all__ = ["HttpxAsyncWire", "HttpxSyncWire"]

_NO_BODY_STATUSES = frozenset({204, 304})


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """An API client keeps no cookies between calls."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


def _where(request: WireRequest) -> str:
    return f"{request.method} {request.url.split('?', 1)[0]}"


def _map_error(exc: Exception, where: str, reading: bool) -> EgressError:
    """Every httpx failure, translated once. ``where``: method and URL without query;
    ``reading``: the headers had arrived."""
    if isinstance(exc, EgressError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return AttemptTimeoutError(f"{where}: {name}", sent=False)
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"{where}: could not connect ({name})", sent=False)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return AttemptTimeoutError(f"{where}: timed out ({name})", sent=True)
    if isinstance(exc, httpx.LocalProtocolError | httpx.InvalidURL | httpx.UnsupportedProtocol):
        return UnsafeRequestError(f"{where}: request refused by the HTTP library ({name})")
    if reading and isinstance(exc, httpx.TransportError | OSError):
        return ResponseError(f"{where}: response body incomplete ({name})", reason="truncated")
    if isinstance(exc, httpx.RemoteProtocolError) and not reading:
        return TransportError(f"{where}: connection closed without a response ({name})",
                              sent=True)
    return TransportError(f"{where}: {name}", sent=True)


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


class HttpxAsyncWire:
    """The httpx async backend: one ``httpx.AsyncClient`` for the client's life."""

    name = "httpx"

    def __init__(self, options: WireOptions) -> None:
        self._client = httpx.AsyncClient(**_client_kwargs(options))
        self._client.cookies.jar.set_policy(_NoCookies())
        self._cap = options.max_response_bytes
        self._now = options.clock.now

    async def send(self, request: WireRequest) -> WireResponse:
        timeouts = request.limits.at(self._now())
        reading = False
        try:
            async with asyncio.timeout(timeouts[4]):
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
            error = _map_error(exc, _where(request), reading)
            if error is exc:
                raise
            raise error from exc
        return WireResponse(response.status_code, Headers.from_raw(response.headers.raw),
                            content)

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return "HttpxAsyncWire()"


class HttpxSyncWire:
    """The httpx sync backend: one ``httpx.Client`` for the client's life (thread-safe)."""

    name = "httpx"

    def __init__(self, options: WireOptions) -> None:
        self._client = httpx.Client(**_client_kwargs(options))
        self._client.cookies.jar.set_policy(_NoCookies())
        self._cap = options.max_response_bytes
        self._now = options.clock.now

    def send(self, request: WireRequest) -> WireResponse:
        timeouts = request.limits.at(self._now())
        end = request.limits.end
        reading = False
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
                                f"{_where(request)}: the attempt's total time limit passed "
                                f"while reading the body", sent=True)
                    content = reader.finish()
            finally:
                response.close()
        except Exception as exc:
            error = _map_error(exc, _where(request), reading)
            if error is exc:
                raise
            raise error from exc
        return WireResponse(response.status_code, Headers.from_raw(response.headers.raw),
                            content)

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return "HttpxSyncWire()"
