"""ApiClient (async) and SyncApiClient (sync): one upstream, one pool, every call safe.

Both take the same settings and make the same decisions (``_core.ClientCore``); they differ only
in how they wait. Each call is prepared once (URL, headers, body bytes, idempotency key), before
any I/O, then run through the pipeline; each attempt sends through the wire backend and reads the
whole body inside its time limits.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Collection, Iterable, Mapping
from types import TracebackType
from typing import Any

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import Pipeline, current_context
from egress.errors import ConfigurationError, EgressError, UnsafeRequestError
from egress.events import NULL_SINK, EventSink, TokenRefreshed
from egress.http._auth import Auth
from egress.http._body import _UNSET
from egress.http._core import (
    DEFAULT_DEADLINE,
    DEFAULT_IDEMPOTENCY_HEADER,
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESPONSE_BYTES,
    ClientCore,
    NeedAuth,
    PreparedCall,
)
from egress.http._headers import check_header
from egress.http._response import REQUEST_ID_HEADERS, Response
from egress.http._safety import RetryHook
from egress.http._timeouts import DEFAULT_TIMEOUTS, Timeouts
from egress.http._url import Params
from egress.http._wire import AsyncWire, SyncWire, WireRequest

__all__ = ["ASYNC_BACKENDS", "ApiClient", "DEFAULT_ASYNC_BACKEND", "DEFAULT_SYNC_BACKEND",
           "SYNC_BACKENDS", "SyncApiClient"]

#: Chosen by measurement (bench/http_client.py): aiohttp keeps its speed at 64 concurrent calls.
DEFAULT_ASYNC_BACKEND = "aiohttp"
#: Chosen by measurement: http.client with our own pool beats httpx.Client and urllib3.
DEFAULT_SYNC_BACKEND = "stdlib"
ASYNC_BACKENDS = ("aiohttp", "httpx", "pyreqwest")  # pyreqwest: an optional extra
SYNC_BACKENDS = ("stdlib", "httpx")


class _DefaultUserAgent(str):
    """The default User-Agent: completed to ``egress/<version>`` when a client is built, so that
    importing this module does not load importlib.metadata (a tenth of its import time)."""

    __slots__ = ()


USER_AGENT: str = _DefaultUserAgent("egress")


def _async_wire(name: str, core: ClientCore) -> AsyncWire:
    if name == "aiohttp":
        from egress.http._aiohttp import AiohttpWire

        return AiohttpWire(core.wire_options)
    if name == "httpx":
        from egress.http._httpx import HttpxAsyncWire

        return HttpxAsyncWire(core.wire_options)
    if name == "pyreqwest":
        from egress.http._pyreqwest import PyreqwestWire

        return PyreqwestWire(core.wire_options)
    raise ConfigurationError(f"backend must be one of {ASYNC_BACKENDS}, got {name!r}")


def _sync_wire(name: str, core: ClientCore) -> SyncWire:
    if name == "stdlib":
        from egress.http._stdlib import StdlibWire

        return StdlibWire(core.wire_options)
    if name == "httpx":
        from egress.http._httpx import HttpxSyncWire

        return HttpxSyncWire(core.wire_options)
    raise ConfigurationError(f"backend must be one of {SYNC_BACKENDS} for SyncApiClient "
                             f"(aiohttp has no sync API), got {name!r}")


_NOT_SETTINGS = frozenset({"self", "base_url", "pipeline", "backend", "__class__"})


def _settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments that configure the shared core."""
    settings = {k: v for k, v in arguments.items() if k not in _NOT_SETTINGS}
    if isinstance(settings.get("user_agent"), _DefaultUserAgent):
        import egress

        settings["user_agent"] = f"egress/{egress.__version__}"
    return settings


class _ClientBase:
    """Construction shared by both clients (settings only; no I/O)."""

    _core: ClientCore
    _closed: bool
    _pipeline: Pipeline
    _deadline: float | None
    backend: str

    def _setup(self, base_url: str, settings: dict[str, Any], pipeline: Pipeline | None,
               backend: str) -> None:
        self._core = ClientCore(base_url, **settings)
        self._closed = False
        self._pipeline = self._core.pipeline(pipeline)
        self._deadline = self._core.deadline
        self.backend = backend

    @property
    def base_url(self) -> str:
        return self._core.base.origin + self._core.base.path

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    def _token_request(self, url: str, headers: dict[str, str], body: bytes) -> WireRequest:
        for name, value in headers.items():
            check_header(name, value)
        return WireRequest("POST", url, headers, body, self._core.limits(current_context()))

    def _note_refresh(self, stale: str | None) -> None:
        ctx = current_context()
        if ctx is not None and stale is not None:
            ctx.sink.emit(TokenRefreshed(operation=ctx.operation, at=ctx.clock.now(),
                                         after_401=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, backend={self.backend!r})"


class ApiClient(_ClientBase):
    """An async client for one upstream API. Use ``async with`` (or call :meth:`aclose`).

    See ``docs/http-client.md`` for every setting and its default. Each call returns a
    :class:`Response` for a 2xx answer and raises otherwise (after the pipeline's retries):
    :class:`~egress.errors.StatusError`, :class:`~egress.errors.TransportError` (``.sent``),
    :class:`~egress.errors.AttemptTimeoutError`, :class:`~egress.errors.DeadlineExceededError`,
    :class:`~egress.errors.ResponseError`, or :class:`~egress.errors.UnsafeRequestError` (before
    any I/O), or a policy's rejection (circuit open, bulkhead full, rate limited).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        pipeline: Pipeline | None = None,
        retry_hook: RetryHook | None = None,
        rate_limiter: Any = None,
        backend: str = DEFAULT_ASYNC_BACKEND,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        deadline: float | None = DEFAULT_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        follow_redirects: bool = False,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        verify: bool | str | ssl.SSLContext = True,
        allow_insecure: bool = False,
        trust_env: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        auto_idempotency_key: bool | Iterable[str] = False,
        idempotency_header: str = DEFAULT_IDEMPOTENCY_HEADER,
        request_id_headers: tuple[str, ...] = REQUEST_ID_HEADERS,
        user_agent: str | None = USER_AGENT,
        expect: Collection[int] = (),
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
    ) -> None:
        self._setup(base_url, _settings(locals()), pipeline, backend)
        self._wire = _async_wire(backend, self._core)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool. Calls made afterwards are refused."""
        self._closed = True
        await self._wire.aclose()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = _UNSET,
        form: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        path_params: Mapping[str, object] | None = None,
        idempotency_key: str | None = None,
        deadline: float | None = None,
        pipeline: Pipeline | None = None,
        operation: str | None = None,
        expect: Collection[int] | None = None,
    ) -> Awaitable[Response]:
        """Send ``method path`` through the pipeline: await it for the 2xx :class:`Response`.

        The call is prepared (and refused if unsafe, raising :class:`UnsafeRequestError`) when
        this is called, before anything is awaited; the returned coroutine does the I/O.
        """
        if self._closed:
            raise UnsafeRequestError(f"{type(self).__name__} is closed; make a new client")
        call = self._core.prepare(method, path, params=params, json=json, form=form,
                                  content=content, headers=headers, path_params=path_params,
                                  idempotency_key=idempotency_key, operation=operation,
                                  expect=expect)
        op = call.op
        if op is None:
            op = call.op = functools.partial(self._attempt, call)
        return (pipeline or self._pipeline).execute(
            call.operation, op, deadline=self._deadline if deadline is None else deadline)

    async def _attempt(self, call: PreparedCall) -> Response:
        core = self._core
        ctx = current_context()
        limits = core.limits(ctx)
        wire = self._wire
        value: Any = None
        try:
            first = core.first_request(call, limits)
            if first is not None:  # the common case: one request, a 2xx, no generator
                value = await wire.send(first)
                response = core.success(call.method, call.plain_url, value)
                if response is not None:
                    return response
            exchange = core.exchange(call, limits, value)
            value = None
            while True:
                action = exchange.send(value)
                if type(action) is WireRequest:
                    value = await wire.send(action)
                else:
                    assert isinstance(action, NeedAuth) and core.auth is not None
                    self._note_refresh(action.stale)
                    value = await core.auth.headers_async(self._fetch_token, core.clock,
                                                          action.stale)
        except StopIteration as stop:
            done: Response = stop.value
            return done
        except EgressError as exc:
            error = core.failed(exc, call, limits, ctx)
            if error is exc:
                raise
            raise error from exc

    async def _fetch_token(self, url: str, headers: dict[str, str],
                           body: bytes) -> tuple[int, bytes]:
        answer = await self._wire.send(self._token_request(url, headers, body))
        return answer.status, answer.content

    def get(self, path: str, *, params: Params | None = None,
                  headers: Mapping[str, str] | None = None,
                  path_params: Mapping[str, object] | None = None,
                  deadline: float | None = None, pipeline: Pipeline | None = None,
                  operation: str | None = None,
                  expect: Collection[int] | None = None) -> Awaitable[Response]:
        return self.request("GET", path, params=params, headers=headers,
                                  path_params=path_params, deadline=deadline, pipeline=pipeline,
                                  operation=operation, expect=expect)

    def delete(self, path: str, *, params: Params | None = None,
                     headers: Mapping[str, str] | None = None,
                     path_params: Mapping[str, object] | None = None,
                     idempotency_key: str | None = None, deadline: float | None = None,
                     pipeline: Pipeline | None = None,
                     operation: str | None = None,
                  expect: Collection[int] | None = None) -> Awaitable[Response]:
        return self.request("DELETE", path, params=params, headers=headers,
                                  path_params=path_params, idempotency_key=idempotency_key,
                                  deadline=deadline, pipeline=pipeline, operation=operation,
                                  expect=expect)

    def post(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
                   form: Params | None = None, content: bytes | None = None,
                   headers: Mapping[str, str] | None = None,
                   path_params: Mapping[str, object] | None = None,
                   idempotency_key: str | None = None, deadline: float | None = None,
                   pipeline: Pipeline | None = None,
                   operation: str | None = None,
                  expect: Collection[int] | None = None) -> Awaitable[Response]:
        return self.request("POST", path, params=params, json=json, form=form,
                                  content=content, headers=headers, path_params=path_params,
                                  idempotency_key=idempotency_key, deadline=deadline,
                                  pipeline=pipeline, operation=operation, expect=expect)

    def put(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
                  form: Params | None = None, content: bytes | None = None,
                  headers: Mapping[str, str] | None = None,
                  path_params: Mapping[str, object] | None = None,
                  idempotency_key: str | None = None, deadline: float | None = None,
                  pipeline: Pipeline | None = None,
                  operation: str | None = None,
                  expect: Collection[int] | None = None) -> Awaitable[Response]:
        return self.request("PUT", path, params=params, json=json, form=form,
                                  content=content, headers=headers, path_params=path_params,
                                  idempotency_key=idempotency_key, deadline=deadline,
                                  pipeline=pipeline, operation=operation, expect=expect)

    def patch(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
                    form: Params | None = None, content: bytes | None = None,
                    headers: Mapping[str, str] | None = None,
                    path_params: Mapping[str, object] | None = None,
                    idempotency_key: str | None = None, deadline: float | None = None,
                    pipeline: Pipeline | None = None,
                    operation: str | None = None,
                  expect: Collection[int] | None = None) -> Awaitable[Response]:
        return self.request("PATCH", path, params=params, json=json, form=form,
                                  content=content, headers=headers, path_params=path_params,
                                  idempotency_key=idempotency_key, deadline=deadline,
                                  pipeline=pipeline, operation=operation, expect=expect)


class SyncApiClient(_ClientBase):
    """The sync twin of :class:`ApiClient`: same settings, same decisions, thread-safe.

    Backends: ``"stdlib"`` (default; ``http.client`` with egress's own pool) or ``"httpx"``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        pipeline: Pipeline | None = None,
        retry_hook: RetryHook | None = None,
        rate_limiter: Any = None,
        backend: str = DEFAULT_SYNC_BACKEND,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        deadline: float | None = DEFAULT_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        follow_redirects: bool = False,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        verify: bool | str | ssl.SSLContext = True,
        allow_insecure: bool = False,
        trust_env: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        auto_idempotency_key: bool | Iterable[str] = False,
        idempotency_header: str = DEFAULT_IDEMPOTENCY_HEADER,
        request_id_headers: tuple[str, ...] = REQUEST_ID_HEADERS,
        user_agent: str | None = USER_AGENT,
        expect: Collection[int] = (),
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
    ) -> None:
        self._setup(base_url, _settings(locals()), pipeline, backend)
        self._wire = _sync_wire(backend, self._core)

    def __enter__(self) -> SyncApiClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool. Calls made afterwards are refused."""
        self._closed = True
        self._wire.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = _UNSET,
        form: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        path_params: Mapping[str, object] | None = None,
        idempotency_key: str | None = None,
        deadline: float | None = None,
        pipeline: Pipeline | None = None,
        operation: str | None = None,
        expect: Collection[int] | None = None,
    ) -> Response:
        """Send ``method path`` through the pipeline; the 2xx :class:`Response` or an error."""
        if self._closed:
            raise UnsafeRequestError(f"{type(self).__name__} is closed; make a new client")
        call = self._core.prepare(method, path, params=params, json=json, form=form,
                                  content=content, headers=headers, path_params=path_params,
                                  idempotency_key=idempotency_key, operation=operation,
                                  expect=expect)
        op = call.op
        if op is None:
            op = call.op = functools.partial(self._attempt, call)
        response: Response = (pipeline or self._pipeline).execute_sync(
            call.operation, op, deadline=self._deadline if deadline is None else deadline)
        return response

    def _attempt(self, call: PreparedCall) -> Response:
        core = self._core
        ctx = current_context()
        limits = core.limits(ctx)
        wire = self._wire
        value: Any = None
        try:
            first = core.first_request(call, limits)
            if first is not None:  # the common case: one request, a 2xx, no generator
                value = wire.send(first)
                response = core.success(call.method, call.plain_url, value)
                if response is not None:
                    return response
            exchange = core.exchange(call, limits, value)
            value = None
            while True:
                action = exchange.send(value)
                if type(action) is WireRequest:
                    value = wire.send(action)
                else:
                    assert isinstance(action, NeedAuth) and core.auth is not None
                    self._note_refresh(action.stale)
                    value = core.auth.headers_sync(self._fetch_token, core.clock, action.stale)
        except StopIteration as stop:
            done: Response = stop.value
            return done
        except EgressError as exc:
            error = core.failed(exc, call, limits, ctx)
            if error is exc:
                raise
            raise error from exc

    def _fetch_token(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        answer = self._wire.send(self._token_request(url, headers, body))
        return answer.status, answer.content

    def get(self, path: str, *, params: Params | None = None,
            headers: Mapping[str, str] | None = None,
            path_params: Mapping[str, object] | None = None, deadline: float | None = None,
            pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> Response:
        return self.request("GET", path, params=params, headers=headers,
                            path_params=path_params, deadline=deadline, pipeline=pipeline,
                            operation=operation, expect=expect)

    def delete(self, path: str, *, params: Params | None = None,
               headers: Mapping[str, str] | None = None,
               path_params: Mapping[str, object] | None = None,
               idempotency_key: str | None = None, deadline: float | None = None,
               pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> Response:
        return self.request("DELETE", path, params=params, headers=headers,
                            path_params=path_params, idempotency_key=idempotency_key,
                            deadline=deadline, pipeline=pipeline, operation=operation,
                            expect=expect)

    def post(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
             form: Params | None = None, content: bytes | None = None,
             headers: Mapping[str, str] | None = None,
             path_params: Mapping[str, object] | None = None,
             idempotency_key: str | None = None, deadline: float | None = None,
             pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> Response:
        return self.request("POST", path, params=params, json=json, form=form, content=content,
                            headers=headers, path_params=path_params,
                            idempotency_key=idempotency_key, deadline=deadline,
                            pipeline=pipeline, operation=operation, expect=expect)

    def put(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
            form: Params | None = None, content: bytes | None = None,
            headers: Mapping[str, str] | None = None,
            path_params: Mapping[str, object] | None = None,
            idempotency_key: str | None = None, deadline: float | None = None,
            pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> Response:
        return self.request("PUT", path, params=params, json=json, form=form, content=content,
                            headers=headers, path_params=path_params,
                            idempotency_key=idempotency_key, deadline=deadline,
                            pipeline=pipeline, operation=operation, expect=expect)

    def patch(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
              form: Params | None = None, content: bytes | None = None,
              headers: Mapping[str, str] | None = None,
              path_params: Mapping[str, object] | None = None,
              idempotency_key: str | None = None, deadline: float | None = None,
              pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> Response:
        return self.request("PATCH", path, params=params, json=json, form=form, content=content,
                            headers=headers, path_params=path_params,
                            idempotency_key=idempotency_key, deadline=deadline,
                            pipeline=pipeline, operation=operation, expect=expect)
