"""ApiClient (async) and SyncApiClient (sync): one upstream, one pool, every call safe.

Both take the same settings (one frozen :class:`~egress.http._options.ClientOptions`) and make the
same decisions (``_core.ClientCore``); they differ only in how they wait: each is a thin pump of
the same prepared call and the same attempt. Each call is prepared once (URL, headers, body bytes,
idempotency key), before any I/O, then run through the pipeline; each attempt sends through the
wire backend and reads the whole body inside its time limits.
"""

from __future__ import annotations

import functools
import math
import ssl
from collections.abc import Awaitable, Collection, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import _CURRENT, Pipeline, current_context
from egress.errors import ConfigurationError, EgressError, UnsafeRequestError
from egress.events import NULL_SINK, EventSink, TokenRefreshed
from egress.http._auth import Auth
from egress.http._body import _UNSET
from egress.http._core import ClientCore, NeedAuth, PreparedCall
from egress.http._headers import check_header
from egress.http._options import (
    DEFAULT_DEADLINE,
    DEFAULT_IDEMPOTENCY_HEADER,
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REDIRECTS,
    DEFAULT_MAX_RESPONSE_BYTES,
    USER_AGENT,
    ClientOptions,
)
from egress.http._response import REQUEST_ID_HEADERS, Response, response_of
from egress.http._safety import RetryHook
from egress.http._timeouts import DEFAULT_TIMEOUTS, Timeouts
from egress.http._url import Params
from egress.http._wire import AsyncWire, SyncWire, WireRequest

__all__ = ["ASYNC_BACKENDS", "ApiClient", "DEFAULT_ASYNC_BACKEND", "DEFAULT_SYNC_BACKEND",
           "SYNC_BACKENDS", "SyncApiClient", "USER_AGENT"]

#: Chosen by measurement (bench/http_client.py): aiohttp keeps its speed at 64 concurrent calls.
DEFAULT_ASYNC_BACKEND = "aiohttp"
#: Chosen by measurement: http.client with our own pool beats httpx.Client and urllib3.
DEFAULT_SYNC_BACKEND = "stdlib"
ASYNC_BACKENDS = ("aiohttp", "httpx", "pyreqwest")  # pyreqwest: an optional extra
SYNC_BACKENDS = ("stdlib", "httpx")

R = TypeVar("R")


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




class _ClientBase(Generic[R]):
    """What both clients share: the settings, the preparation of a call, the verbs.

    ``R`` is what a call gives: ``Awaitable[Response]`` (async) or ``Response`` (sync). A
    subclass names its default backend, opens its wire and runs a prepared call (:meth:`_run`).
    """

    default_backend: ClassVar[str]
    #: ``_run`` hands a call to the pipeline's fused frame when it has one (async only).
    _fuses: ClassVar[bool] = False

    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth | None = None,
        headers: Mapping[str, str] | None = None,
        pipeline: Pipeline | None = None,
        retry_hook: RetryHook | None = None,
        rate_limiter: Any = None,
        backend: str | None = None,
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
        """``backend``: ``None`` for the class's default (:data:`DEFAULT_ASYNC_BACKEND` or
        :data:`DEFAULT_SYNC_BACKEND`). Every other setting: ``docs/http-client.md``."""
        options = ClientOptions(
            auth=auth, headers=headers, retry_hook=retry_hook, rate_limiter=rate_limiter,
            timeouts=timeouts, deadline=deadline, max_response_bytes=max_response_bytes,
            follow_redirects=follow_redirects, max_redirects=max_redirects, verify=verify,
            allow_insecure=allow_insecure, trust_env=trust_env, max_connections=max_connections,
            keepalive_expiry=keepalive_expiry, auto_idempotency_key=auto_idempotency_key,
            idempotency_header=idempotency_header, request_id_headers=request_id_headers,
            user_agent=user_agent, expect=expect, clock=clock, sink=sink)
        self._core = ClientCore(base_url, options)
        self._closed = False
        self._pipeline = self._core.pipeline(pipeline)
        self._deadline = options.deadline
        self.backend = self.default_backend if backend is None else backend
        self._open(self.backend)

    def _open(self, backend: str) -> None:
        raise NotImplementedError

    def _run(self, pipeline: Pipeline, call: PreparedCall, deadline: float | None) -> R:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return self._core.base.origin + self._core.base.path

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r}, backend={self.backend!r})"

    # -- a call: prepared once, before any I/O, then run by the subclass's pump -------------------

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
    ) -> R:
        """Send ``method path`` through the pipeline: the 2xx :class:`Response` (awaited, for
        :class:`ApiClient`), or an error.

        The call is prepared (and refused if unsafe, raising :class:`UnsafeRequestError`) when
        this is called, before anything is awaited; then the pipeline runs the attempts.
        """
        return self._call(method, path, params, json, form, content, headers, path_params,
                          idempotency_key, deadline, pipeline, operation, expect)

    def _call(self, method: str, path: str, params: Params | None, json: Any,  # noqa: PLR0917
              form: Params | None, content: bytes | None, headers: Mapping[str, str] | None,
              path_params: Mapping[str, object] | None, idempotency_key: str | None,
              deadline: float | None, pipeline: Pipeline | None, operation: str | None,
              expect: Collection[int] | None) -> R:
        # Positional, and a plain call (the usual GET) found in the core's cache without the
        # keyword call of prepare(): this runs on every call.
        if self._closed:
            raise UnsafeRequestError(f"{type(self).__name__} is closed; make a new client")
        core = self._core
        call = core.prepared.get((method, path)) if (
            params is None and json is _UNSET and form is None and content is None
            and headers is None and path_params is None and idempotency_key is None
            and operation is None and expect is None) else None
        if call is None:
            call = core.prepare(method, path, params=params, json=json, form=form,
                                content=content, headers=headers, path_params=path_params,
                                idempotency_key=idempotency_key, operation=operation,
                                expect=expect)
        if call.op is None:
            call.op = functools.partial(self._attempt, call)
        return self._run(pipeline or self._pipeline, call,
                         self._deadline if deadline is None else _checked_deadline(deadline))

    def _attempt(self, call: PreparedCall) -> Any:
        raise NotImplementedError

    def get(self, path: str, *, params: Params | None = None,
            headers: Mapping[str, str] | None = None,
            path_params: Mapping[str, object] | None = None, deadline: float | None = None,
            pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> R:
        if (params is None and headers is None and path_params is None and operation is None
                and expect is None and not self._closed):
            # The usual GET, already prepared by an earlier call: straight to the pipeline.
            call = self._core.prepared.get(("GET", path))
            if call is not None and call.op is not None:
                if self._fuses and pipeline is None:  # ApiClient: _run's lines, one frame less
                    fused = self._pipeline._fused
                    if fused is not None:
                        return fused(call.operation, call.op,  # type: ignore[return-value]
                                     self._deadline if deadline is None
                                     else _checked_deadline(deadline), call.target)
                return self._run(pipeline or self._pipeline, call, self._deadline
                                 if deadline is None else _checked_deadline(deadline))
        return self._call("GET", path, params, _UNSET, None, None, headers, path_params, None,
                          deadline, pipeline, operation, expect)

    def delete(self, path: str, *, params: Params | None = None,
               headers: Mapping[str, str] | None = None,
               path_params: Mapping[str, object] | None = None,
               idempotency_key: str | None = None, deadline: float | None = None,
               pipeline: Pipeline | None = None, operation: str | None = None,
               expect: Collection[int] | None = None) -> R:
        return self._call("DELETE", path, params, _UNSET, None, None, headers, path_params,
                          idempotency_key, deadline, pipeline, operation, expect)

    def post(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
             form: Params | None = None, content: bytes | None = None,
             headers: Mapping[str, str] | None = None,
             path_params: Mapping[str, object] | None = None,
             idempotency_key: str | None = None, deadline: float | None = None,
             pipeline: Pipeline | None = None, operation: str | None = None,
             expect: Collection[int] | None = None) -> R:
        return self._call("POST", path, params, json, form, content, headers, path_params,
                          idempotency_key, deadline, pipeline, operation, expect)

    def put(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
            form: Params | None = None, content: bytes | None = None,
            headers: Mapping[str, str] | None = None,
            path_params: Mapping[str, object] | None = None,
            idempotency_key: str | None = None, deadline: float | None = None,
            pipeline: Pipeline | None = None, operation: str | None = None,
            expect: Collection[int] | None = None) -> R:
        return self._call("PUT", path, params, json, form, content, headers, path_params,
                          idempotency_key, deadline, pipeline, operation, expect)

    def patch(self, path: str, *, params: Params | None = None, json: Any = _UNSET,
              form: Params | None = None, content: bytes | None = None,
              headers: Mapping[str, str] | None = None,
              path_params: Mapping[str, object] | None = None,
              idempotency_key: str | None = None, deadline: float | None = None,
              pipeline: Pipeline | None = None, operation: str | None = None,
              expect: Collection[int] | None = None) -> R:
        return self._call("PATCH", path, params, json, form, content, headers, path_params,
                          idempotency_key, deadline, pipeline, operation, expect)

    # -- what both pumps share ---------------------------------------------------------------

    def _token_request(self, url: str, headers: dict[str, str], body: bytes) -> WireRequest:
        for name, value in headers.items():
            check_header(name, value)
        return WireRequest("POST", url, headers, body, self._core.limits(current_context()))

    def _note_refresh(self, stale: str | None) -> None:
        ctx = current_context()
        if ctx is not None and stale is not None:
            ctx.sink.emit(TokenRefreshed(operation=ctx.operation, at=ctx.clock.now(),
                                         after_401=True))


class ApiClient(_ClientBase[Awaitable[Response]]):
    """An async client for one upstream API. Use ``async with`` (or call :meth:`aclose`).

    See ``docs/http-client.md`` for every setting and its default. Each call returns a
    :class:`Response` for a 2xx answer and raises otherwise (after the pipeline's retries):
    :class:`~egress.errors.StatusError`, :class:`~egress.errors.TransportError` (``.sent``),
    :class:`~egress.errors.AttemptTimeoutError`, :class:`~egress.errors.DeadlineExceededError`,
    :class:`~egress.errors.ResponseError`, or :class:`~egress.errors.UnsafeRequestError` (before
    any I/O), or a policy's rejection (circuit open, bulkhead full, rate limited).
    """

    default_backend = DEFAULT_ASYNC_BACKEND
    _fuses = True

    def _open(self, backend: str) -> None:
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

    def _run(self, pipeline: Pipeline, call: PreparedCall,
             deadline: float | None) -> Awaitable[Response]:
        fused = pipeline._fused  # the default pipeline in one frame (no execute() frame above)
        if fused is not None:
            return fused(call.operation, call.op, deadline, call.target)
        return pipeline.execute(call.operation, call.op, deadline=deadline, target=call.target)

    async def _attempt(self, call: PreparedCall) -> Response:
        # Runs on every attempt: core.first_request and core.success written out (two frames
        # and a keyword call less), the same objects built in the same order.
        core = self._core
        ctx = _CURRENT.get()
        deadline = None
        if ctx is not None:
            if ctx.observed is not None:  # a trace sink's traceparent
                call = core.traced(call, ctx.observed)
            deadline = ctx.deadline
        limits = core.timeouts.limits(core.clock.now(), deadline)
        wire = self._wire
        value: Any = None
        try:
            if core.direct:  # the common case: one request, a 2xx, no generator
                value = await wire.send(WireRequest(call.method, call.url, call.headers,
                                                    call.body, limits))
                status = value.status
                if 200 <= status < 300:
                    return response_of(status, value.headers, value.content, call.method,
                                       call.plain_url, core.request_id_headers)
            exchange = core.exchange(call, limits, value)
            value = None
            while True:
                action = exchange.send(value)
                if type(action) is WireRequest:
                    value = await wire.send(action)
                else:
                    value = await self._auth_headers(action)
        except StopIteration as stop:
            done: Response = stop.value
            return done
        except EgressError as exc:
            error = core.failed(exc, call, limits, ctx)
            if error is exc:
                raise
            raise error from exc

    async def _auth_headers(self, need: WireRequest | NeedAuth) -> Any:
        auth = self._core.auth
        assert isinstance(need, NeedAuth) and auth is not None
        self._note_refresh(need.stale)
        return await auth.headers_async(self._fetch_token, self._core.clock, need.stale)

    async def _fetch_token(self, url: str, headers: dict[str, str],
                           body: bytes) -> tuple[int, bytes]:
        answer = await self._wire.send(self._token_request(url, headers, body))
        return answer.status, answer.content


class SyncApiClient(_ClientBase[Response]):
    """The sync twin of :class:`ApiClient`: same settings, same decisions, thread-safe.

    Backends: ``"stdlib"`` (default; ``http.client`` with egress's own pool) or ``"httpx"``.
    """

    default_backend = DEFAULT_SYNC_BACKEND

    def _open(self, backend: str) -> None:
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

    def _run(self, pipeline: Pipeline, call: PreparedCall, deadline: float | None) -> Response:
        response: Response = pipeline.execute_sync(call.operation, call.op, deadline=deadline,
                                                    target=call.target)
        return response

    def _attempt(self, call: PreparedCall) -> Response:
        core = self._core
        ctx = current_context()
        if ctx is not None and ctx.observed is not None:
            call = core.traced(call, ctx.observed)
        first = core.first_request(call, ctx)
        limits = first.limits
        wire = self._wire
        value: Any = None
        try:
            if core.direct:
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
                    value = self._auth_headers(action)
        except StopIteration as stop:
            done: Response = stop.value
            return done
        except EgressError as exc:
            error = core.failed(exc, call, limits, ctx)
            if error is exc:
                raise
            raise error from exc

    def _auth_headers(self, need: WireRequest | NeedAuth) -> Any:
        auth = self._core.auth
        assert isinstance(need, NeedAuth) and auth is not None
        self._note_refresh(need.stale)
        return auth.headers_sync(self._fetch_token, self._core.clock, need.stale)

    def _fetch_token(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        answer = self._wire.send(self._token_request(url, headers, body))
        return answer.status, answer.content


def _checked_deadline(deadline: object) -> float:
    """A call's own ``deadline=``: a number of seconds. A bool, a string or NaN reached the
    pipeline's clock arithmetic as is (a TypeError, or a NaN deadline that never ends)."""
    if type(deadline) is float or type(deadline) is int:  # (per payment: the plain case first)
        if deadline == deadline:  # noqa: PLR0124 (not NaN: the one value unequal to itself)
            return deadline
    elif not isinstance(deadline, bool) and isinstance(deadline, int | float) and (
            not math.isnan(deadline)):
        return deadline  # a subclass of int or float
    raise UnsafeRequestError("deadline must be a number of seconds")
