"""The most common pipeline, ``Bulkhead → Retry → CircuitBreaker`` (an HTTP client's default),
run as one coroutine frame.

Layered, each policy is a coroutine of its own around the next: with the call itself (its
context, the report on an error) and the innermost step, a call crosses five frames, and every
resumption of the call (each read and write of an HTTP exchange) passes through all of them.
Here the same lines are written out one inside the other, in the same order, with the same
``try`` structure, calling the same decisions (``_begin``, ``admit``, ``failed_async``, …) that
the layered steps call: only the frames are gone. ``tests/test_fused.py`` runs the same
scenarios through both forms and compares what they return, raise and emit.

It is used only for those exact types (a subclass may change a step) and when the pipeline's
sink does not take the per-call events (the observed path keeps its layered steps).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from egress._pipeline import (
    _CURRENT,
    AsyncOp,
    CallContext,
    Pipeline,
    _failure,
    _keep,
    _report,
)
from egress._report import Reported
from egress.policies.breaker import CircuitBreaker
from egress.policies.bulkhead import Bulkhead
from egress.policies.retry import Retry

__all__ = ["fuse_async"]

#: ``(operation, op, deadline seconds, target) -> awaitable``: :meth:`Pipeline.execute`'s shape.
FusedCall = Callable[[str, AsyncOp, "float | None", "tuple[str, str] | None"], Awaitable[Any]]


def fuse_async(pipeline: Pipeline) -> FusedCall | None:
    """``pipeline``'s calls in one frame when its policies are ``(Bulkhead, Retry,
    CircuitBreaker)``, else ``None``."""
    policies = pipeline.policies
    if len(policies) != 3:
        return None
    bulkhead, retry, breaker = policies
    if not (type(bulkhead) is Bulkhead and type(retry) is Retry
            and type(breaker) is CircuitBreaker):
        return None
    try_enter, release, queue = (bulkhead._state.try_enter, bulkhead._state.release,
                                 bulkhead._queue_async)
    begin, retry_failed, retry_succeeded = retry._begin, retry._failed, retry._succeeded
    rewarded = retry._rewarded
    record_async = getattr(retry._budget_state, "record_call_async", None)
    gate = breaker._gate
    state, admit, breaker_succeeded, timed, slow = gate.parts()
    breaker_failed = gate.failed_async
    get, set_, reset = _CURRENT.get, _CURRENT.set, _CURRENT.reset
    nan = math.nan
    clock, recorder, context = pipeline.clock, pipeline._recorder, pipeline._context

    async def fused_call(operation: str, op: AsyncOp, deadline: float | None,
                         target: tuple[str, str] | None) -> Any:
        # Pipeline.execute
        if deadline is not None and get() is None:  # an HTTP call's usual case, inline
            ctx = CallContext(operation, clock, recorder, clock.now() + deadline, False, target)
        else:
            ctx = context(operation, deadline, target)
        token = set_(ctx)
        try:
            # Bulkhead
            if not try_enter():
                await queue(ctx)
            try:
                # Retry
                started, was_in_retry = begin(ctx, record_async is None)
                attempts = None
                try:
                    if record_async is not None and started is not None:
                        await record_async(started)
                    while True:
                        try:
                            # CircuitBreaker
                            gen = state.fast_gen
                            if gen < 0:
                                gen = admit(ctx)
                            start = ctx.clock.now() if timed else 0.0
                            try:
                                # the innermost step
                                try:
                                    result = await op()
                                except Exception as exc:
                                    _keep(ctx, _failure(ctx, exc, nan))
                                    raise
                                if isinstance(result, Reported):
                                    result._egress_call = ctx
                            except BaseException as exc:
                                await breaker_failed(gen, start, exc, ctx)
                                raise
                            if gen != state.quiet_gen or (
                                    timed and ctx.clock.now() - start >= slow):
                                breaker_succeeded(gen, start, ctx)
                        except Exception as exc:
                            attempts = retry_failed(ctx, started, attempts, exc)
                            delay = None if attempts is None else (
                                await attempts.after_failure_async(exc))
                            if delay is None:
                                raise
                        else:
                            if attempts is not None or rewarded is not None:
                                # (else Retry._succeeded has nothing to do: one frame less)
                                retry_succeeded(ctx, started, attempts)
                            return result
                        await ctx.clock.sleep(delay)
                        ctx.attempt += 1
                finally:
                    ctx.in_retry = was_in_retry
            finally:
                waiter = release()
                if waiter is not None:
                    waiter.wake()
        except BaseException as exc:
            _report(ctx, exc)
            raise
        finally:
            reset(token)

    return fused_call
