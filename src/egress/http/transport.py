"""ResilientTransport: the egress pipeline inside your own ``httpx`` client.

For code that keeps its ``httpx.AsyncClient`` / ``httpx.Client``::

    client = httpx.AsyncClient(transport=ResilientTransport(httpx.AsyncHTTPTransport()))

Every request runs through the pipeline (by default ``Retry(on=retry_on(), budget=...)``); each
attempt reads the whole body (so errors while reading are retried like any attempt failure), its
timeouts are capped by what remains of the deadline, and the deadline also stops a dripping body
(async: a timer around the attempt; sync: checked between chunks). Safety classes apply: a
POST/PATCH is retried only with an ``Idempotency-Key`` header (or when nothing was sent). A
retryable status still failing after the last attempt is returned as the response, as httpx
users expect; transport failures raise the egress errors (``TransportError`` with ``.sent``,
``DeadlineExceededError``, ...) with the httpx exception as ``__cause__``. httpx decodes the body
here (no egress size cap): prefer ``ApiClient`` where you can.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import Pipeline, current_context
from egress.errors import (
    AttemptTimeoutError,
    ConfigurationError,
    EgressError,
    StatusError,
    UpstreamError,
)
from egress.events import NULL_SINK, EventSink
from egress.http._headers import Headers
from egress.http._hints import server_hint
from egress.http._httpx import _map_error
from egress.http._safety import TRANSIENT_STATUSES, RequestInfo, RetryHook, retry_on, safety_of
from egress.policies.budget import RetryBudget
from egress.policies.retry import Retry

__all__ = ["ResilientTransport"]

DEFAULT_TRANSPORT_DEADLINE = 60.0
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


class ResilientTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An httpx transport that applies an egress pipeline around ``inner``.

    ==============  ========================================  ================================
    setting         default                                   meaning
    ==============  ========================================  ================================
    ``inner``       ``httpx.AsyncHTTPTransport()`` (async)    the transport that does the I/O
    ``pipeline``    Retry + RetryBudget("http:transport")     the policies, outermost first
    ``retry_hook``  None                                      provider rules for the default
    ``deadline``    60.0                                      seconds per logical request
    ==============  ========================================  ================================
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None, *,
                 pipeline: Pipeline | None = None, retry_hook: RetryHook | None = None,
                 deadline: float | None = DEFAULT_TRANSPORT_DEADLINE,
                 clock: Clock = SYSTEM_CLOCK, sink: EventSink = NULL_SINK) -> None:
        if inner is not None and not isinstance(inner, httpx.AsyncBaseTransport |
                                                httpx.BaseTransport):
            raise ConfigurationError("ResilientTransport: inner must be an httpx transport")
        if deadline is not None and (not isinstance(deadline, int | float)
                                     or not math.isfinite(deadline) or deadline <= 0):
            raise ConfigurationError("ResilientTransport: deadline must be positive seconds")
        self._inner = inner
        self.deadline = deadline
        if pipeline is None:
            pipeline = Pipeline(
                Retry(on=retry_on(retry_hook), budget=RetryBudget(name="http:transport")),
                clock=clock, sink=sink)
        if not isinstance(pipeline, Pipeline):
            raise ConfigurationError("ResilientTransport: pipeline must be an egress.Pipeline")
        self.pipeline = pipeline

    # Shared, pure parts ----------------------------------------------------------------------

    @staticmethod
    def _info(request: httpx.Request) -> RequestInfo:
        method = request.method
        # What errors, events and hooks show: no query string, no user:password@.
        url = str(request.url.copy_with(query=None, fragment=None, userinfo=b""))
        key = request.headers.get("idempotency-key")
        return RequestInfo(method, url, f"{method} {request.url.host}", safety_of(method, key),
                           key)

    @staticmethod
    def _cap_timeouts(request: httpx.Request) -> float | None:
        ctx = current_context()
        remaining = None if ctx is None else ctx.remaining()
        if remaining is None:
            return None
        remaining = max(remaining, 1e-3)
        current: dict[str, Any] = dict(request.extensions.get("timeout") or {})
        request.extensions["timeout"] = {
            key: remaining if current.get(key) is None else min(current[key], remaining)
            for key in _TIMEOUT_KEYS}
        return remaining

    @staticmethod
    def _check(response: httpx.Response, request: httpx.Request, info: RequestInfo) -> None:
        status = response.status_code
        if status in TRANSIENT_STATUSES:
            headers = Headers.from_raw(response.headers.raw)
            ctx = current_context()
            wall = ctx.clock.wall() if ctx is not None else SYSTEM_CLOCK.wall()
            raise StatusError(status, method=info.method, url=info.url,
                              retry_after=server_hint(status, headers, wall), response=response)

    @staticmethod
    def _fail(exc: Exception, info: RequestInfo, reading: bool) -> EgressError:
        error = _map_error(exc, f"{info.method} {info.url}", reading)
        if isinstance(error, UpstreamError):
            error.request_info = info
            error.replay_safe = info.replay_safe
        return error

    @staticmethod
    def _label(error: StatusError, info: RequestInfo) -> StatusError:
        error.request_info = info
        error.replay_safe = info.replay_safe
        return error

    # Async ------------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._inner
        if inner is None:
            inner = self._inner = httpx.AsyncHTTPTransport()
        if not isinstance(inner, httpx.AsyncBaseTransport):
            raise ConfigurationError("ResilientTransport: the inner transport is sync-only")
        await request.aread()  # a replayable body: the same bytes on every attempt
        info = self._info(request)
        transport = inner

        async def attempt() -> httpx.Response:
            remaining = self._cap_timeouts(request)
            reading = False
            try:
                async with asyncio.timeout(remaining):
                    response = await transport.handle_async_request(request)
                    reading = True
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            except Exception as exc:
                raise self._fail(exc, info, reading) from exc
            try:
                self._check(response, request, info)
            except StatusError as exc:
                raise self._label(exc, info) from None
            return response

        try:
            return await self.pipeline.execute(info.operation, attempt, deadline=self.deadline)
        except StatusError as exc:
            if isinstance(exc.response, httpx.Response):
                return exc.response
            raise

    async def aclose(self) -> None:
        if isinstance(self._inner, httpx.AsyncBaseTransport):
            await self._inner.aclose()

    # Sync -------------------------------------------------------------------------------------

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._inner
        if inner is None:
            inner = self._inner = httpx.HTTPTransport()
        if not isinstance(inner, httpx.BaseTransport):
            raise ConfigurationError("ResilientTransport: the inner transport is async-only")
        request.read()
        info = self._info(request)
        transport = inner

        def attempt() -> httpx.Response:
            self._cap_timeouts(request)
            reading = False
            try:
                response = transport.handle_request(request)
                reading = True
                try:
                    response = self._read_sync(response, request, info)
                finally:
                    response.close()
            except Exception as exc:
                raise self._fail(exc, info, reading) from exc
            try:
                self._check(response, request, info)
            except StatusError as exc:
                raise self._label(exc, info) from None
            return response

        try:
            return self.pipeline.execute_sync(info.operation, attempt, deadline=self.deadline)
        except StatusError as exc:
            if isinstance(exc.response, httpx.Response):
                return exc.response
            raise

    @staticmethod
    def _read_sync(answer: httpx.Response, request: httpx.Request,
                   info: RequestInfo) -> httpx.Response:
        """The whole body; httpx sync has per-read timeouts only, so the deadline is checked
        between chunks."""
        try:
            answer.content  # noqa: B018  (already in memory: nothing to wait for)
        except httpx.ResponseNotRead:
            pass
        else:
            return answer
        ctx = current_context()
        chunks: list[bytes] = []
        for chunk in answer.iter_raw():
            chunks.append(chunk)
            if ctx is not None and ctx.deadline is not None and ctx.clock.now() >= ctx.deadline:
                raise AttemptTimeoutError(f"{info.method} {info.url}: the deadline passed while "
                                          f"reading the body")
        return httpx.Response(answer.status_code, headers=answer.headers,
                              content=b"".join(chunks), extensions=answer.extensions,
                              request=request)

    def close(self) -> None:
        if isinstance(self._inner, httpx.BaseTransport):
            self._inner.close()

    def __repr__(self) -> str:
        return f"ResilientTransport({type(self._inner).__name__})"
