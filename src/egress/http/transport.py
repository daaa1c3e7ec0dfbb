"""ResilientTransport: the egress pipeline inside your own ``httpx`` client.

For code that keeps its ``httpx.AsyncClient`` / ``httpx.Client``::

    client = httpx.AsyncClient(transport=ResilientTransport(httpx.AsyncHTTPTransport()))

It is invisible except for the resilience it adds (httpx's own ``tests/client`` suite passes
through it, on asyncio and trio):

* **Retried up to the headers.** Each attempt ends when the response headers arrive; the body
  then streams to the caller untouched (``client.stream()`` yields as the server sends). A
  retryable status (408, 429, 500, 502, 503, 504) is retried: its body, an error page, is read
  first (up to 1 MiB) so that the last one can be returned when no retry follows. An error while
  the caller reads a body is raised, not retried, unless ``buffer_body=True`` reads every body
  inside the attempt.
* **Safety classes apply**: a POST/PATCH is retried only with an ``Idempotency-Key`` header, or
  when nothing was sent. A streamed request body is recorded while it is sent (replay-safe
  requests only, up to ``replay_limit`` bytes) instead of being read first; a body that cannot be
  sent again ends the retries.
* **Time**: without ``deadline=``, httpx's own timeout bounds the logical request (the largest
  of connect/read/write/pool): no retry starts after it, and each retry's timeouts are capped by
  what remains. With ``deadline=``, that deadline bounds everything, the body included.
* **Errors keep both contracts**: a failure is raised as a class that is both the httpx exception
  (``except httpx.ConnectError`` still catches) and the egress error (``.sent``,
  ``.replay_safe``, ``.request_info``, the retry note); see ``_transport_errors``. Anything that
  is not an httpx transport error (a bug in an inner transport) passes through, never retried.
* **Per origin**: each scheme://host:port gets its own retry budget, and its own breaker when
  ``breakers=`` is given. For other policies per host, mount one transport per host (docs).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from types import TracebackType
from typing import Any, NoReturn

import anyio
import httpx

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import Pipeline, current_context
from egress.errors import (
    ConfigurationError,
    DeadlineExceededError,
    EgressError,
    ResponseError,
    StatusError,
    TransportError,
    UpstreamError,
)
from egress.events import NULL_SINK, DeadlineExceeded, EventSink
from egress.http._headers import Headers
from egress.http._hints import server_hint
from egress.http._safety import TRANSIENT_STATUSES, RequestInfo, RetryHook, retry_on, safety_of
from egress.http._transport_errors import build, from_egress, from_httpx
from egress.http._transport_streams import AsyncBody, SyncBody, Tape, Watch, read_async, read_sync
from egress.policies.breaker import BreakerRegistry
from egress.policies.budget import RetryBudget
from egress.policies.retry import Retry

__all__ = ["ResilientTransport"]

DEFAULT_REPLAY_LIMIT = 1024 * 1024
#: A retryable status's body is read (to be returned if no retry follows) up to this size; a
#: larger one is returned at once, streaming, without a retry.
ERROR_BODY_LIMIT = 1024 * 1024
#: Per-origin state (budget, pipeline) kept for at most this many origins, least recently used
#: forgotten first.
MAX_ORIGINS = 1024
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


def _positive(owner: str, name: str, value: Any, *, integer: bool = False,
              allow_zero: bool = False) -> None:
    kind = int if integer else int | float
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value)
            or value < 0 or (value == 0 and not allow_zero)):
        raise ConfigurationError(f"{owner}: {name} must be a positive "
                                 f"{'integer' if integer else 'number of seconds'}, "
                                 f"got {value!r}")


def _origin(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _request_info(request: httpx.Request) -> RequestInfo:
    url = request.url
    method = request.method
    # What errors, events and hooks show: no query string, no user:password@.
    shown = f"{_origin(url)}{url.path}"
    key = request.headers.get("idempotency-key")
    return RequestInfo(method, shown, f"{method} {url.host}", safety_of(method, key), key)


def _httpx_deadline(timeouts: Any) -> float | None:
    """The longest of httpx's timeouts for this request: the default bound of the whole call."""
    values = [value for value in (timeouts or {}).values()
              if isinstance(value, int | float) and value > 0]
    return max(values) if values else None


class _Kept:
    """A response body read within the attempt."""

    __slots__ = ("chunks", "limit", "retryable", "size")

    def __init__(self, retryable: bool, limit: int | None) -> None:
        self.retryable = retryable
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; ``False`` once the body is too large to keep (then it streams on,
        and is not retried)."""
        self.chunks.append(chunk)
        self.size += len(chunk)
        return self.limit is None or self.size <= self.limit

    def finish(self, response: httpx.Response, call: _Call) -> httpx.Response:
        response.stream = httpx.ByteStream(b"".join(self.chunks))
        if self.retryable:
            raise call.status_error(response)
        return response


class _Call:
    """One logical request: what its attempts share, and the errors they raise."""

    __slots__ = ("clock", "deadline", "extensions", "hard", "info", "installed", "last_error",
                 "request", "sink", "stream", "tape", "transport")

    def __init__(self, transport: ResilientTransport, request: httpx.Request,
                 pipeline: Pipeline) -> None:
        self.transport = transport
        self.request = request
        self.info = _request_info(request)
        self.clock = pipeline.clock
        self.sink = pipeline.sink
        self.extensions = request.extensions
        self.stream = request.stream
        self.installed: object = None
        own = transport.deadline
        self.deadline = own if own is not None else _httpx_deadline(
            request.extensions.get("timeout"))
        # The hard bound, enforced even while the body is read: the user's deadline, or an
        # outer egress call's. httpx's timeouts alone never cut a body that keeps coming.
        hard = None if own is None else self.clock.now() + own
        parent = current_context()
        if parent is not None and parent.deadline is not None:
            hard = parent.deadline if hard is None else min(hard, parent.deadline)
        self.hard = hard
        self.last_error: BaseException | None = None
        self.tape: Tape | None = None
        try:
            request.content  # noqa: B018  (read already: every attempt can send it)
        except httpx.RequestNotRead:
            limit = transport.replay_limit if self.info.replay_safe else 0
            self.tape = Tape(request.stream, limit)

    # -- attempts ------------------------------------------------------------------------------

    def begin(self) -> float | None:
        """Set the request up for one attempt; the seconds left of the hard bound, if any."""
        request = self.request
        tape = self.tape
        if tape is not None and not self._read():
            if not tape.replayable:
                raise self.last_error or httpx.StreamConsumed()
            request.stream = self.installed = tape.stream()
        ctx = current_context()
        if ctx is not None and ctx.observed is not None and ctx.observed.get("headers"):
            request.headers.update(ctx.observed["headers"])  # a trace sink's traceparent
        remaining = None if ctx is None else ctx.remaining()
        if remaining is not None:
            remaining = max(remaining, 1e-3)
            current: dict[str, Any] = dict(self.extensions.get("timeout") or {})
            # An unbounded httpx timeout (a long poll's read=None) stays unbounded unless a hard
            # deadline applies: httpx's own timeout only bounds when retries may start.
            unset = remaining if self.hard is not None else None
            # A new dict: the caller's (shared with redirects and auth retries) stays as it was.
            request.extensions = {**self.extensions, "timeout": {
                key: unset if current.get(key) is None else min(current[key], remaining)
                for key in _TIMEOUT_KEYS}}
        if self.hard is None:
            return None
        return max(0.0, self.hard - self.clock.now())

    def _read(self) -> bool:
        try:
            self.request.content  # noqa: B018
        except httpx.RequestNotRead:
            return False
        return True  # an inner transport read it into the request: it can be sent again

    def can_retry(self) -> bool:
        return self.tape is None or self.tape.replayable or self._read()

    def plan(self, response: httpx.Response) -> _Kept | None:
        """``None``: the body goes to the caller as it streams. Otherwise it is read within the
        attempt: a retryable status's error page (so that it can be retried, and the last one
        returned), or every body with ``buffer_body``."""
        retryable = response.status_code in TRANSIENT_STATUSES and self.can_retry()
        if self.transport.buffer_body:
            return _Kept(retryable, None)
        return _Kept(retryable, ERROR_BODY_LIMIT) if retryable else None

    def failed(self, error: BaseException) -> None:
        """Bookkeeping of a failed attempt: a body that cannot be sent again ends the retries."""
        self.last_error = error
        tape = self.tape
        if tape is not None and not self.can_retry() and isinstance(error, UpstreamError):
            error.replay_safe = False
            if isinstance(error, TransportError):
                error.sent = True
            why = ("the request is not replay-safe" if not self.info.replay_safe
                   else "over replay_limit" if tape.overflow else "it was not sent whole")
            note = f"egress: not retried: the streamed request body was not kept ({why})"
            if note not in getattr(error, "__notes__", ()):
                error.add_note(note)

    def end(self) -> None:
        request = self.request
        request.extensions = self.extensions
        if self.installed is not None and request.stream is self.installed:
            # Unless an inner transport read it into the request, the caller's stream goes back
            # (consumed: sending it again raises httpx's StreamConsumed, as without us).
            request.stream = self.stream

    def watch(self) -> Watch:
        return Watch(clock=self.clock, deadline=self.hard, cap=self.transport.max_response_bytes,
                     failures=self)

    def status_error(self, response: httpx.Response) -> StatusError:
        headers = Headers.from_raw(response.headers.raw)
        error = StatusError(response.status_code, method=self.info.method, url=self.info.url,
                            retry_after=server_hint(response.status_code, headers,
                                                    self.clock.wall()),
                            response=response)
        error.request_info = self.info
        error.replay_safe = self.info.replay_safe
        return error

    # -- errors (the Failures protocol of the body streams) ------------------------------------

    def transport_error(self, exc: httpx.TransportError, reading: bool) -> Exception:
        started = self.tape is not None and self.tape.started
        return from_httpx(exc, self.request, self.info, reading=reading, body_started=started)

    def raise_as_egress(self, exc: httpx.TransportError, reading: bool) -> NoReturn:
        error = self.transport_error(exc, reading)
        if error is exc:
            raise exc
        raise error from exc

    def deadline_error(self, where: str) -> Exception:
        now = self.clock.now()
        self.sink.emit(DeadlineExceeded(operation=self.info.operation, at=now,
                                        budget=self.transport.deadline or 0.0,
                                        where="transport"))
        return build(httpx.TimeoutException, DeadlineExceededError,
                     f"{self.info.method} {self.info.url}: the deadline passed {where}",
                     request=self.request, name="DeadlineExceededError", sent=True,
                     replay_safe=self.info.replay_safe, request_info=self.info)

    def oversized(self, cap: int) -> Exception:
        return build(httpx.ReadError, ResponseError,
                     f"{self.info.method} {self.info.url}: the response body is larger than "
                     f"max_response_bytes ({cap})", request=self.request, name="ResponseTooLarge",
                     sent=True, replay_safe=self.info.replay_safe, request_info=self.info,
                     reason="oversized")

    # -- the end of the call -------------------------------------------------------------------

    def settle(self, exc: Exception) -> httpx.Response:
        """What the caller gets when the pipeline raised ``exc``: the last response (a
        retryable status that kept failing), or the error, as an httpx error too."""
        if isinstance(exc, StatusError) and isinstance(exc.response, httpx.Response):
            return exc.response
        if isinstance(exc, httpx.HTTPError) or not isinstance(exc, EgressError):
            raise exc
        if isinstance(exc, DeadlineExceededError):
            # Retry stopped because the next attempt would end after the deadline: the caller
            # gets what the last attempt got, with the reason noted.
            last = exc.__cause__
            if isinstance(last, StatusError) and isinstance(last.response, httpx.Response):
                return last.response
            if isinstance(last, httpx.HTTPError) and isinstance(last, EgressError):
                last.add_note(f"egress: not retried: {exc}")
                raise last from last.__cause__
        raise from_egress(exc, self.request, self.info) from exc


class ResilientTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An httpx transport that applies an egress pipeline around ``inner``.

    ======================  =========================================  ==========================
    setting                 default                                    meaning
    ======================  =========================================  ==========================
    ``inner``               ``httpx.AsyncHTTPTransport()`` (async),    the transport that does
                            ``httpx.HTTPTransport()`` (sync)           the I/O
    ``pipeline``            ``Retry(on=retry_on(retry_hook),``         the policies, outermost
                            ``budget=RetryBudget())`` per origin       first (used as given)
    ``retry_hook``          None                                       provider rules for the
                                                                       default Retry
    ``breakers``            None                                       a ``BreakerRegistry``: one
                                                                       breaker per origin
    ``deadline``            None (httpx's timeout bounds the call)     seconds per logical
                                                                       request, body included
    ``max_response_bytes``  None (no cap, as httpx)                    cap on a body's raw bytes
    ``replay_limit``        1 MiB                                      a streamed request body
                                                                       kept for a retry up to this
    ``buffer_body``         False                                      read each body within the
                                                                       attempt (retries body
                                                                       errors; no streaming)
    ======================  =========================================  ==========================
    """

    def __init__(self, inner: httpx.AsyncBaseTransport | httpx.BaseTransport | None = None, *,
                 pipeline: Pipeline | None = None, retry_hook: RetryHook | None = None,
                 breakers: BreakerRegistry | None = None, deadline: float | None = None,
                 max_response_bytes: int | None = None,
                 replay_limit: int = DEFAULT_REPLAY_LIMIT, buffer_body: bool = False,
                 clock: Clock = SYSTEM_CLOCK, sink: EventSink = NULL_SINK) -> None:
        owner = "ResilientTransport"
        if inner is not None and not isinstance(inner, httpx.AsyncBaseTransport |
                                                httpx.BaseTransport):
            raise ConfigurationError(f"{owner}: inner must be an httpx transport")
        if pipeline is not None and not isinstance(pipeline, Pipeline):
            raise ConfigurationError(f"{owner}: pipeline must be an egress.Pipeline")
        if pipeline is not None and retry_hook is not None:
            raise ConfigurationError(f"{owner}: retry_hook applies to the default pipeline only; "
                                     f"give Retry(on=retry_on(hook)) in your pipeline instead")
        if breakers is not None and not isinstance(breakers, BreakerRegistry):
            raise ConfigurationError(f"{owner}: breakers must be an egress BreakerRegistry")
        _positive(owner, "deadline", deadline)
        _positive(owner, "max_response_bytes", max_response_bytes, integer=True)
        _positive(owner, "replay_limit", replay_limit, integer=True, allow_zero=True)
        self._inner = inner
        self.pipeline = pipeline
        self.retry_hook = retry_hook
        self.breakers = breakers
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.replay_limit = replay_limit
        self.buffer_body = bool(buffer_body)
        self.clock = clock
        self.sink = sink
        self._pipelines: OrderedDict[str, Pipeline] = OrderedDict()
        self._lock = threading.Lock()

    # -- per origin ----------------------------------------------------------------------------

    def _pipeline_for(self, url: httpx.URL) -> Pipeline:
        if self.pipeline is not None and self.breakers is None:
            return self.pipeline
        origin = _origin(url)
        with self._lock:
            found = self._pipelines.get(origin)
            if found is not None:
                self._pipelines.move_to_end(origin)
                return found
            if self.pipeline is not None:
                policies = self.pipeline.policies
                clock, sink = self.pipeline.clock, self.pipeline.sink
            else:
                # A budget of its own per origin: one failing host must not stop the retries
                # to every other.
                policies = (Retry(on=retry_on(self.retry_hook), budget=RetryBudget()),)
                clock, sink = self.clock, self.sink
            if self.breakers is not None:
                policies = (*policies, self.breakers.get(origin))
            built = self._pipelines[origin] = Pipeline(*policies, clock=clock, sink=sink)
            while len(self._pipelines) > MAX_ORIGINS:
                self._pipelines.popitem(last=False)
            return built

    # -- async ---------------------------------------------------------------------------------

    def _async_inner(self) -> httpx.AsyncBaseTransport:
        if self._inner is None:
            self._inner = httpx.AsyncHTTPTransport()
        if not isinstance(self._inner, httpx.AsyncBaseTransport):
            raise ConfigurationError("ResilientTransport: the inner transport is sync-only")
        return self._inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._async_inner()
        pipeline = self._pipeline_for(request.url)
        call = _Call(self, request, pipeline)
        try:
            return await pipeline.execute(
                call.info.operation, functools.partial(self._attempt_async, inner, call),
                deadline=call.deadline, target=(request.method, request.url.host))
        except Exception as exc:
            return call.settle(exc)
        finally:
            call.end()

    async def _attempt_async(self, inner: httpx.AsyncBaseTransport,
                             call: _Call) -> httpx.Response:
        try:
            hard = call.begin()
            response: httpx.Response | None = None
            with anyio.move_on_after(hard):
                try:
                    response = await inner.handle_async_request(call.request)
                except httpx.TransportError as exc:
                    call.raise_as_egress(exc, False)
            if response is None:
                raise call.deadline_error("before the response headers arrived")
            return await self._answer_async(response, call)
        except Exception as exc:
            call.failed(exc)
            raise

    async def _answer_async(self, response: httpx.Response, call: _Call) -> httpx.Response:
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        watch = call.watch()
        kept = call.plan(response)
        if kept is None:
            response.stream = AsyncBody(stream, watch)
            return response
        iterator = stream.__aiter__()
        try:
            while (chunk := await read_async(iterator, watch)) is not None:
                watch.count(chunk)
                if not kept.add(chunk):
                    response.stream = AsyncBody(stream, watch, iterator, tuple(kept.chunks))
                    return response
        except BaseException:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            raise
        await stream.aclose()
        return kept.finish(response, call)

    async def aclose(self) -> None:
        if isinstance(self._inner, httpx.AsyncBaseTransport):
            await self._inner.aclose()

    async def __aenter__(self) -> ResilientTransport:
        await self._async_inner().__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None = None,
                        exc_value: BaseException | None = None,
                        traceback: TracebackType | None = None) -> None:
        # The inner's exit closes it (httpx's base transports call aclose() there).
        if isinstance(self._inner, httpx.AsyncBaseTransport):
            await self._inner.__aexit__(exc_type, exc_value, traceback)

    # -- sync ----------------------------------------------------------------------------------

    def _sync_inner(self) -> httpx.BaseTransport:
        if self._inner is None:
            self._inner = httpx.HTTPTransport()
        if not isinstance(self._inner, httpx.BaseTransport):
            raise ConfigurationError("ResilientTransport: the inner transport is async-only")
        return self._inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._sync_inner()
        pipeline = self._pipeline_for(request.url)
        call = _Call(self, request, pipeline)
        try:
            return pipeline.execute_sync(
                call.info.operation, functools.partial(self._attempt_sync, inner, call),
                deadline=call.deadline, target=(request.method, request.url.host))
        except Exception as exc:
            return call.settle(exc)
        finally:
            call.end()

    def _attempt_sync(self, inner: httpx.BaseTransport, call: _Call) -> httpx.Response:
        try:
            call.begin()
            try:
                response = inner.handle_request(call.request)
            except httpx.TransportError as exc:
                call.raise_as_egress(exc, False)
            return self._answer_sync(response, call)
        except Exception as exc:
            call.failed(exc)
            raise

    def _answer_sync(self, response: httpx.Response, call: _Call) -> httpx.Response:
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        watch = call.watch()
        kept = call.plan(response)
        if kept is None:
            response.stream = SyncBody(stream, watch)
            return response
        iterator: Iterator[bytes] = iter(stream)
        try:
            while (chunk := read_sync(iterator, watch)) is not None:
                watch.count(chunk)
                if not kept.add(chunk):
                    response.stream = SyncBody(stream, watch, iterator, tuple(kept.chunks))
                    return response
        except BaseException:
            stream.close()
            raise
        stream.close()
        return kept.finish(response, call)

    def close(self) -> None:
        if isinstance(self._inner, httpx.BaseTransport):
            self._inner.close()

    def __enter__(self) -> ResilientTransport:
        self._sync_inner().__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None = None,
                 exc_value: BaseException | None = None,
                 traceback: TracebackType | None = None) -> None:
        if isinstance(self._inner, httpx.BaseTransport):
            self._inner.__exit__(exc_type, exc_value, traceback)

    def __repr__(self) -> str:
        return f"ResilientTransport({type(self._inner).__name__})"


