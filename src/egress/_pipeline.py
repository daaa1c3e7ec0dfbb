"""Pipeline, the Policy protocol, and the per-call context.

A **policy** turns an inner *step* into an outer step, once, when the pipeline is built (the
tower "Layer" shape): ``wrap_async(inner) -> step`` and ``wrap_sync(inner) -> step``. A step is
called with the call's :class:`CallContext` and the operation (a zero-argument callable). Policies
keep their decisions in pure code shared by both wrappers, so the two worlds behave the same and
the wrappers only call, sleep and cancel.

The context travels in a :mod:`contextvars` variable, so code deep inside an operation (the HTTP
seam computing socket timeouts) can ask :func:`time_remaining`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from egress._clock import SYSTEM_CLOCK, Clock
from egress._report import CallReport, Reported
from egress.errors import ConfigurationError, DeadlineExceededError, OutcomeUnknown, RejectedError
from egress.events import (
    NULL_SINK,
    AttemptFailed,
    Event,
    EventSink,
    attempt_started,
    attempt_succeeded,
    call_finished,
    call_started,
    guard,
    sink_raised,
    unguarded,
    wants_per_call,
    wants_starts,
)

__all__ = [
    "AsyncStep",
    "CallContext",
    "Pipeline",
    "Policy",
    "SyncStep",
    "current_context",
    "time_remaining",
]

T = TypeVar("T")
P = ParamSpec("P")

AsyncOp = Callable[[], Awaitable[Any]]
SyncOp = Callable[[], Any]
AsyncStep = Callable[["CallContext", AsyncOp], Awaitable[Any]]
SyncStep = Callable[["CallContext", SyncOp], Any]


class CallContext:
    """What one logical call carries through the layers.

    ``deadline`` is absolute clock time (``clock.now()`` units) or ``None``; ``attempt`` is
    1-based and set by Retry; ``in_retry`` marks that a Retry is driving this call, so a Timeout
    knows it limits one attempt and an inner Retry knows not to multiply attempts.
    ``target`` is ``(method, server address)`` for an HTTP call, for metrics and spans;
    ``made`` counts the attempts that reached the operation; ``observed`` is scratch space for
    per-call sinks (a trace sink keeps its spans there).
    """

    __slots__ = ("attempt", "clock", "deadline", "in_retry", "log", "made", "observed",
                 "operation", "sink", "target")

    def __init__(  # noqa: PLR0917  (positional: built on every call)
        self,
        operation: str,
        clock: Clock,
        sink: EventSink,
        deadline: float | None = None,
        in_retry: bool = False,
        target: tuple[str, str] | None = None,
    ) -> None:
        self.operation = operation
        self.clock = clock
        self.sink = sink
        self.deadline = deadline
        self.attempt = 1
        self.in_retry = in_retry
        self.target = target
        self.made = 0
        self.observed: dict[str, Any] | None = None
        #: The call's events, for the report its error carries (kept only once one happens).
        self.log: list[Event] | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or ``None`` without one."""
        if self.deadline is None:
            return None
        return self.deadline - self.clock.now()

    def __repr__(self) -> str:
        return (
            f"CallContext(operation={self.operation!r}, attempt={self.attempt}, "
            f"remaining={self.remaining()!r})"
        )


_CURRENT: ContextVar[CallContext | None] = ContextVar("egress_call", default=None)


def current_context() -> CallContext | None:
    """The context of the egress call running in this task or thread, if any."""
    return _CURRENT.get()


def time_remaining() -> float | None:
    """Seconds left of the current call's deadline, or ``None`` outside a call or without one."""
    ctx = _CURRENT.get()
    return None if ctx is None else ctx.remaining()


class Policy(Protocol):
    """A resilience concern. Immutable configuration; shared state lives in stores."""

    def wrap_async(self, inner: AsyncStep) -> AsyncStep: ...

    def wrap_sync(self, inner: SyncStep) -> SyncStep: ...


# The innermost step runs once per attempt. The observed variants time and report every
# attempt, for sinks that opted in to the per-call events; the plain ones cost nothing.


async def _terminal_async(ctx: CallContext, op: AsyncOp) -> Any:
    try:
        result = await op()
    except Exception as exc:  # (a try costs nothing until something is raised)
        _keep(ctx, _failure(ctx, exc, math.nan))
        raise
    if isinstance(result, Reported):  # its .report, built only if read
        result._egress_call = ctx
    return result


def _terminal_sync(ctx: CallContext, op: SyncOp) -> Any:
    try:
        result = op()
    except Exception as exc:
        _keep(ctx, _failure(ctx, exc, math.nan))
        raise
    if isinstance(result, Reported):
        result._egress_call = ctx
    return result


_MAX_LOG = 200


def _keep(ctx: CallContext, event: Event) -> None:
    log = ctx.log
    if log is None:
        ctx.log = [event]
    elif len(log) < _MAX_LOG:
        log.append(event)


class _Recorder:
    """A pipeline's sink: keeps each event in the current call's log, then passes it on.

    It contains what the sink raises itself (one call less per event than a GuardedSink);
    ``starts`` says whether the sink wants the start events (else they are not built).
    """

    __slots__ = ("_emit", "inner", "per_call", "starts")

    def __init__(self, inner: EventSink) -> None:
        self.inner = unguarded(inner)
        self._emit = self.inner.emit
        self.per_call = wants_per_call(inner)
        self.starts = wants_starts(inner)

    def emit(self, event: Event) -> None:
        ctx = _CURRENT.get()
        if ctx is not None:
            log = ctx.log
            if log is None:
                ctx.log = [event]
            elif len(log) < _MAX_LOG:
                log.append(event)
        if event.per_call and not self.per_call:
            return  # kept for the call's report; the sink did not ask for per-call events
        try:
            self._emit(event)
        except Exception as exc:
            sink_raised(self.inner, event, exc)

    def __repr__(self) -> str:
        return repr(self.inner)


def _report(ctx: CallContext, exc: BaseException) -> None:
    """Attach what the call went through to the error leaving it (first note, ``.report``)."""
    log = ctx.log
    if not log or not isinstance(exc, Exception):
        return
    report = CallReport.of(ctx)
    with contextlib.suppress(AttributeError, TypeError):  # an exception type with __slots__
        exc.report = report  # type: ignore[attr-defined]
    notes = getattr(exc, "__notes__", None)
    if notes is None:
        exc.add_note(str(report))
    elif isinstance(notes, list):
        notes.insert(0, str(report))  # a Retry's own note stays last


async def _observed_terminal_async(ctx: CallContext, op: AsyncOp) -> Any:
    start = _attempt_started(ctx)
    try:
        result = await op()
    except BaseException as exc:  # a cancelled attempt (Timeout) ends its span too
        _attempt_failed(ctx, exc, ctx.clock.now() - start)
        raise
    _attempt_succeeded(ctx, result, start)
    if isinstance(result, Reported):
        result._egress_call = ctx
    return result


def _observed_terminal_sync(ctx: CallContext, op: SyncOp) -> Any:
    start = _attempt_started(ctx)
    try:
        result = op()
    except BaseException as exc:
        _attempt_failed(ctx, exc, ctx.clock.now() - start)
        raise
    _attempt_succeeded(ctx, result, start)
    if isinstance(result, Reported):
        result._egress_call = ctx
    return result


def _attempt_started(ctx: CallContext) -> float:
    ctx.made += 1
    start = ctx.clock.now()
    sink = ctx.sink
    if getattr(sink, "starts", True):
        method, server = ctx.target or (None, None)
        sink.emit(attempt_started(operation=ctx.operation, at=start, attempt=ctx.attempt,
                                  method=method, server=server))
    return start


def _attempt_succeeded(ctx: CallContext, result: Any, start: float) -> None:
    now = ctx.clock.now()
    target = ctx.target
    status = getattr(result, "status_code", None) if target is not None else None
    method, server = target or (None, None)
    ctx.sink.emit(attempt_succeeded(
        operation=ctx.operation, at=now, attempt=ctx.attempt, duration=now - start,
        method=method, server=server, status=status if type(status) is int else None))


def _failure(ctx: CallContext, exc: BaseException, duration: float) -> AttemptFailed:
    sent = getattr(exc, "sent", None)
    status = getattr(exc, "status_code", None)
    target = ctx.target
    return AttemptFailed(
        operation=ctx.operation, at=ctx.clock.now(), attempt=ctx.attempt,
        error=type(exc).__name__, sent=sent if type(sent) is bool else None,
        status=status if type(status) is int else None, duration=duration,
        method=None if target is None else target[0], server=None if target is None else target[1])


def _attempt_failed(ctx: CallContext, exc: BaseException, duration: float) -> None:
    ctx.sink.emit(_failure(ctx, exc, duration))


def outcome_of(exc: BaseException | None) -> str:
    """The ``outcome`` label of a call that ended with ``exc`` (``None``: it returned)."""
    if exc is None:
        return "ok"
    if isinstance(exc, RejectedError):
        return "rejected"
    if isinstance(exc, OutcomeUnknown):
        return "unknown"
    if isinstance(exc, TimeoutError):  # DeadlineExceededError and attempt timeouts
        return "timeout"
    return "error"


def _call_finished(ctx: CallContext, start: float, exc: BaseException | None) -> None:
    now = ctx.clock.now()
    ctx.sink.emit(call_finished(operation=ctx.operation, at=now, outcome=outcome_of(exc),
                                duration=now - start, attempts=ctx.made,
                                error=None if exc is None else type(exc).__name__))


class Pipeline:
    """An ordered tuple of policies, outermost first.

    >>> pipeline = Pipeline(Timeout(10.0), Retry(on=TransportError))   # doctest: +SKIP
    >>> await pipeline.run(fetch, "order-42")                          # doctest: +SKIP
    >>> pipeline.run_sync(fetch_sync, "order-42")                      # doctest: +SKIP

    or as a decorator of an async or a sync function (``@pipeline``). The same policies applied
    to the same failures make the same decisions in both worlds.
    """

    __slots__ = ("_async", "_fused", "_per_call", "_recorder", "_sync", "clock", "name",
                 "policies", "sink")

    def __init__(
        self,
        *policies: Policy,
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
        name: str | None = None,
    ) -> None:
        for policy in policies:
            if not (hasattr(policy, "wrap_async") and hasattr(policy, "wrap_sync")):
                raise ConfigurationError(
                    f"Pipeline: {policy!r} is not a policy (it needs wrap_async and wrap_sync)"
                )
        self.policies: tuple[Policy, ...] = policies
        self.clock = clock
        # Held guarded: a sink that raises never changes what a call returns or raises; and
        # each call context gets the recorder, so that an error can carry its call's report.
        self.sink: EventSink = guard(sink)
        self._recorder = _Recorder(self.sink)
        self.name = name
        self._per_call = wants_per_call(self.sink)
        step_async: AsyncStep = (_observed_terminal_async if self._per_call
                                 else _terminal_async)
        step_sync: SyncStep = _observed_terminal_sync if self._per_call else _terminal_sync
        for policy in reversed(policies):
            step_async = policy.wrap_async(step_async)
            step_sync = policy.wrap_sync(step_sync)
        self._async = step_async
        self._sync = step_sync
        #: The whole call in one coroutine frame, for the common Bulkhead → Retry → Breaker
        #: (an HTTP client's default) when no sink takes per-call events; else None.
        self._fused: Callable[[str, AsyncOp, float | None, tuple[str, str] | None],
                              Awaitable[Any]] | None = None
        if len(policies) == 3 and not self._per_call:
            from egress.policies._fused import fuse_async  # (the policies are loaded by now)

            self._fused = fuse_async(self)

    def _context(self, operation: str, deadline: float | None,
                 target: tuple[str, str] | None = None) -> CallContext:
        parent = _CURRENT.get()
        if parent is None:
            if deadline is None:  # the common case, kept short: it is on every call
                return CallContext(operation, self.clock, self._recorder, None, False, target)
            return CallContext(operation, self.clock, self._recorder, self.clock.now() + deadline,
                               False, target)
        clock = self.clock
        absolute = None if deadline is None else clock.now() + deadline
        # A pipeline inside another call inherits its deadline and its retry marker, so an inner
        # Retry does not multiply the outer one and inner timeouts never outlive the outer call.
        if parent.deadline is not None and (absolute is None or parent.deadline < absolute):
            absolute = parent.deadline
        if absolute is not None and absolute <= clock.now():
            raise DeadlineExceededError(
                f"{operation}: deadline exceeded (no time left to start this call)"
            )
        return CallContext(operation, clock, self._recorder, absolute, parent.in_retry, target)

    async def execute(
        self, operation: str, op: Callable[[], Awaitable[T]], *, deadline: float | None = None,
        target: tuple[str, str] | None = None,
    ) -> T:
        """Run ``op`` (a zero-argument async callable) through the policies.

        ``operation`` names the call in events; ``deadline`` is seconds from now for the whole
        call, across every attempt; ``target`` is ``(method, server address)`` of an HTTP call.
        """
        if self._fused is not None:
            return await self._fused(operation, op, deadline, target)  # type: ignore[no-any-return]
        if deadline is not None and _CURRENT.get() is None:  # an HTTP call's usual case, inline
            clock = self.clock
            ctx = CallContext(operation, clock, self._recorder, clock.now() + deadline, False,
                              target)
        else:
            ctx = self._context(operation, deadline, target)
        token = _CURRENT.set(ctx)
        try:
            if self._per_call:
                return await self._observed_async(ctx, op)  # type: ignore[no-any-return]
            return await self._async(ctx, op)  # type: ignore[no-any-return]
        except BaseException as exc:
            _report(ctx, exc)
            raise
        finally:
            _CURRENT.reset(token)

    def execute_sync(
        self, operation: str, op: Callable[[], T], *, deadline: float | None = None,
        target: tuple[str, str] | None = None,
    ) -> T:
        """The sync twin of :meth:`execute`."""
        if deadline is not None and _CURRENT.get() is None:  # as in execute()
            clock = self.clock
            ctx = CallContext(operation, clock, self._recorder, clock.now() + deadline, False,
                              target)
        else:
            ctx = self._context(operation, deadline, target)
        token = _CURRENT.set(ctx)
        try:
            if self._per_call:
                return self._observed_sync(ctx, op)  # type: ignore[no-any-return]
            return self._sync(ctx, op)  # type: ignore[no-any-return]
        except BaseException as exc:
            _report(ctx, exc)
            raise
        finally:
            _CURRENT.reset(token)

    async def _observed_async(self, ctx: CallContext, op: AsyncOp) -> Any:
        start = ctx.clock.now()
        if self._recorder.starts:
            ctx.sink.emit(call_started(operation=ctx.operation, at=start))
        try:
            result = await self._async(ctx, op)
        except BaseException as exc:
            _call_finished(ctx, start, exc)
            raise
        _call_finished(ctx, start, None)
        return result

    def _observed_sync(self, ctx: CallContext, op: SyncOp) -> Any:
        start = ctx.clock.now()
        if self._recorder.starts:
            ctx.sink.emit(call_started(operation=ctx.operation, at=start))
        try:
            result = self._sync(ctx, op)
        except BaseException as exc:
            _call_finished(ctx, start, exc)
            raise
        _call_finished(ctx, start, None)
        return result

    async def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``await fn(*args, **kwargs)`` through the policies."""
        # The body of execute(), inlined: one coroutine frame less on every call.
        ctx = self._context(self.name or _name_of(fn), None)
        token = _CURRENT.set(ctx)
        try:
            op = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
            if self._per_call:
                return await self._observed_async(ctx, op)  # type: ignore[no-any-return]
            return await self._async(ctx, op)  # type: ignore[no-any-return]
        except BaseException as exc:
            _report(ctx, exc)
            raise
        finally:
            _CURRENT.reset(token)

    def run_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` through the policies."""
        op = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        return self.execute_sync(self.name or _name_of(fn), op)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate an async or a sync function so every call goes through the pipeline."""
        name = self.name or _name_of(fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.execute(name, functools.partial(fn, *args, **kwargs))

            return async_wrapper

        @functools.wraps(fn)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.execute_sync(name, functools.partial(fn, *args, **kwargs))

        return sync_wrapper

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.policies)
        return f"Pipeline({inner})"


def _name_of(fn: Callable[..., Any]) -> str:
    try:
        return fn.__qualname__
    except AttributeError:
        return getattr(fn, "__name__", None) or repr(fn)
