"""The breaker's drivers: read the clock, call, report. Every decision is in the state.

The pumps are written out, not shared through a generator, because this is the hot path: a fast
success in a quiet window costs two attribute reads and two comparisons, no clock read and no
allocation, when slow-call detection is off.

What the state says (notices, :mod:`egress.policies._breaker_state`) becomes events here, and a
refusal becomes :class:`~egress.errors.CircuitOpenError`, after its events.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import CircuitOpenError, DeadlineExceededError
from egress.events import CircuitRejected, CircuitStateChanged, CircuitThresholdExceeded
from egress.policies._breaker_state import (
    REFUSED,
    BreakerState,
    Notices,
    StateChanged,
    ThresholdExceeded,
)

__all__ = ["FAILURE", "IGNORE", "SUCCESS", "Gate", "guard_async", "guard_sync", "step_async",
           "step_sync"]

IGNORE, SUCCESS, FAILURE = -1, 0, 1
_DEADLINE_CANCELLED = DeadlineExceededError("cancelled by the call's deadline")


def report(name: str, notices: Notices, ctx: CallContext) -> None:
    """Emit one event per notice; raise ``CircuitOpenError`` if the call was refused."""
    sink, operation = ctx.sink, ctx.operation
    for notice in notices:
        if isinstance(notice, StateChanged):
            sink.emit(CircuitStateChanged(
                operation=operation, at=notice.at, breaker=name, old=notice.old.value,
                new=notice.new.value, failure_rate=notice.failure_rate,
                slow_call_rate=notice.slow_call_rate))
        elif isinstance(notice, ThresholdExceeded):
            sink.emit(CircuitThresholdExceeded(
                operation=operation, at=notice.at, breaker=name,
                failure_rate=notice.failure_rate, slow_call_rate=notice.slow_call_rate))
        else:
            sink.emit(CircuitRejected(operation=operation, at=notice.at, breaker=name,
                                      retry_after=notice.retry_after))
            raise CircuitOpenError(name, retry_after=notice.retry_after)


class Gate:
    """What a breaker's pumps share: the state, how outcomes are classified, slow-call timing.

    The pumps call :meth:`admit` only when the state asks to be asked (``fast_gen < 0``),
    :meth:`failed` on any exception, and :meth:`succeeded` only when a success may change
    something (outside a quiet window, or slow).
    """

    __slots__ = ("classify", "name", "slow", "state", "timed")

    def __init__(self, name: str, state: BreakerState,
                 classify: Callable[[BaseException], int], slow_call_duration: float) -> None:
        self.name = name
        self.state = state
        self.classify = classify
        self.slow = slow_call_duration
        self.timed = self.slow != math.inf

    def parts(self) -> tuple[BreakerState, Callable[[CallContext], int],
                             Callable[[int, float, CallContext], None], bool, float]:
        """What a pump binds once: state, admit, succeeded, timed, slow."""
        return self.state, self.admit, self.succeeded, self.timed, self.slow

    def report(self, notices: Notices, ctx: CallContext) -> None:
        if notices:
            report(self.name, notices, ctx)

    def admit(self, ctx: CallContext) -> int:
        """The call's generation, or raise ``CircuitOpenError`` (after its events)."""
        gen, notices = self.state.acquire(ctx.clock.now())
        self.report(notices, ctx)
        assert gen != REFUSED  # report() raised
        return gen

    def succeeded(self, gen: int, start: float, ctx: CallContext) -> None:
        """A success that may change something: outside a quiet window, or slow. (The pump's
        clock read that found it slow came first, so this later one finds it slow too.)"""
        self.report(self.state.on_success(gen, start, ctx.clock.now()), ctx)

    def failed(self, gen: int, start: float, exc: BaseException, ctx: CallContext) -> None:
        now = self._judge(gen, start, exc, ctx)
        if now is not None:
            self.report(self.state.on_failure(gen, start, now), ctx)

    async def failed_async(self, gen: int, start: float, exc: BaseException,
                           ctx: CallContext) -> None:
        """:meth:`failed`, awaiting the state's ``on_failure_async`` when it has one (a state
        that reports to a server, so as not to block the event loop)."""
        now = self._judge(gen, start, exc, ctx)
        if now is not None:
            on_failure_async = getattr(self.state, "on_failure_async", None)
            self.report(self.state.on_failure(gen, start, now) if on_failure_async is None
                        else await on_failure_async(gen, start, now), ctx)

    def _judge(self, gen: int, start: float, exc: BaseException, ctx: CallContext
               ) -> float | None:
        """Classify ``exc``; settle an ignored call or a success here. A failure's time, for
        the caller to report to the state; None when settled."""
        now = ctx.clock.now()
        if (isinstance(exc, asyncio.CancelledError) and ctx.deadline is not None
                and now >= ctx.deadline):
            # Cancelled by the deadline (a Timeout outside the breaker): the upstream did not
            # answer in time, which counts as a DeadlineExceededError would. A cancellation
            # before the deadline is the caller's and is ignored.
            exc = _DEADLINE_CANCELLED
        verdict = self.classify(exc)
        state = self.state
        if verdict == IGNORE:
            state.release(gen)
            return None
        if verdict == FAILURE:
            return now
        self.report(state.on_success(gen, start, now), ctx)
        return None


# The pumps. A pipeline step is called ``(ctx, op)``; the decorator with the function's own
# arguments, under the breaker's own context. They are four (async and sync, step and decorator)
# because the calling conventions differ and this is the hot path: a step taking ``*args,
# **kwargs`` would allocate a tuple and a dict per call. Each is the same few lines around its
# own call and holds no decision: the one test written in each (outside a quiet window, or slow:
# then a success may change something) is the state's fast path, inlined; what a success or a
# failure then does is the Gate's and the state's. A quiet, untimed success costs two attribute
# reads, no call and no clock read.


def step_async(gate: Gate, inner: AsyncStep) -> AsyncStep:
    state, admit, succeeded, timed, slow = gate.parts()
    failed = gate.failed_async

    async def circuit_breaker_step(ctx: CallContext, op: AsyncOp) -> Any:
        gen = state.fast_gen
        if gen < 0:
            gen = admit(ctx)
        start = ctx.clock.now() if timed else 0.0
        try:
            result = await inner(ctx, op)
        except BaseException as exc:
            await failed(gen, start, exc, ctx)
            raise
        if gen != state.quiet_gen or (timed and ctx.clock.now() - start >= slow):
            succeeded(gen, start, ctx)
        return result

    return circuit_breaker_step


def step_sync(gate: Gate, inner: SyncStep) -> SyncStep:
    state, admit, succeeded, timed, slow = gate.parts()
    failed = gate.failed

    def circuit_breaker_step(ctx: CallContext, op: SyncOp) -> Any:
        gen = state.fast_gen
        if gen < 0:
            gen = admit(ctx)
        start = ctx.clock.now() if timed else 0.0
        try:
            result = inner(ctx, op)
        except BaseException as exc:
            failed(gen, start, exc, ctx)
            raise
        if gen != state.quiet_gen or (timed and ctx.clock.now() - start >= slow):
            succeeded(gen, start, ctx)
        return result

    return circuit_breaker_step


def guard_async(gate: Gate, fn: Callable[..., Awaitable[Any]], own: CallContext
                ) -> Callable[..., Awaitable[Any]]:
    state, admit, succeeded, timed, slow = gate.parts()
    failed, now = gate.failed_async, own.clock.now

    async def guarded(*args: Any, **kwargs: Any) -> Any:
        gen = state.fast_gen
        if gen < 0:
            gen = admit(own)
        start = now() if timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await failed(gen, start, exc, own)
            raise
        if gen != state.quiet_gen or (timed and now() - start >= slow):
            succeeded(gen, start, own)
        return result

    return guarded


def guard_sync(gate: Gate, fn: Callable[..., Any], own: CallContext) -> Callable[..., Any]:
    state, admit, succeeded, timed, slow = gate.parts()
    failed, now = gate.failed, own.clock.now

    def guarded(*args: Any, **kwargs: Any) -> Any:
        gen = state.fast_gen
        if gen < 0:
            gen = admit(own)
        start = now() if timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            failed(gen, start, exc, own)
            raise
        if gen != state.quiet_gen or (timed and now() - start >= slow):
            succeeded(gen, start, own)
        return result

    return guarded
