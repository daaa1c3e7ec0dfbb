"""Timeout: the overall deadline, or the limit of one attempt.

Placed *outside* a Retry, a Timeout is the call's overall deadline: the Retry sees it, starts no
attempt after it and fails at once rather than sleep past it. Placed *inside* a Retry, it limits
each attempt, and is never longer than what remains of the deadline.

Async attempts are cancelled when their time is up (cleanly: the task's cancellation count is
restored, so an outer ``asyncio.timeout`` or a caller's cancel still works). Sync code cannot be
pre-empted in Python: there the Timeout narrows the deadline that I/O layers (the HTTP seam) turn
into socket timeouts, and refuses to start work after it.

The cost is one timer on the event loop (``asyncio.timeout`` also builds a context manager object
and reschedules it; see ``bench/overhead.py``).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import AttemptTimeoutError, ConfigurationError, DeadlineExceededError
from egress.events import AttemptTimedOut, DeadlineExceeded

__all__ = ["Timeout"]


def _deadline_error(ctx: CallContext, budget: float, where: str) -> DeadlineExceededError:
    ctx.sink.emit(
        DeadlineExceeded(operation=ctx.operation, at=ctx.clock.now(), budget=budget, where=where)
    )
    return DeadlineExceededError(
        f"{ctx.operation}: deadline exceeded ({where}; limit {budget:.3f}s)"
    )


class Timeout:
    """Limit the time of everything inside it to ``seconds``.

    ======================  =======  ==============================================
    setting                 default  meaning
    ======================  =======  ==============================================
    ``seconds``             (none)   the limit, in seconds; must be positive
    ======================  =======  ==============================================
    """

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ConfigurationError(f"Timeout: seconds must be a number, got {seconds!r}")
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigurationError(f"Timeout: seconds must be positive and finite, got {seconds}")
        self.seconds = float(seconds)

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r})"

    def _limit(self, ctx: CallContext) -> tuple[float, float, bool]:
        """Shared by both drivers: (now, absolute limit, whether it is the overall deadline)."""
        now = ctx.clock.now()
        outer = ctx.deadline
        limit = now + self.seconds
        if outer is not None and outer <= now:
            raise _deadline_error(ctx, self.seconds, "no time left before the attempt")
        if outer is not None and outer <= limit:
            return now, outer, True
        return now, limit, not ctx.in_retry

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        seconds = self.seconds

        async def timeout_step(ctx: CallContext, op: AsyncOp) -> Any:
            now, limit, overall = self._limit(ctx)
            task = asyncio.current_task()
            assert task is not None, "egress.Timeout needs a running task"
            fired = False

            def expire() -> None:
                nonlocal fired
                fired = True
                task.cancel()

            handle = ctx.clock.call_later(limit - now, expire)
            outer = ctx.deadline
            ctx.deadline = limit
            try:
                return await inner(ctx, op)
            except asyncio.CancelledError:
                # Ours only if our timer fired and no one else also asked to cancel this task.
                if not fired or task.uncancel() > 0:
                    raise
                if overall:
                    raise _deadline_error(ctx, limit - now, "cancelled in flight") from None
                ctx.sink.emit(
                    AttemptTimedOut(operation=ctx.operation, at=ctx.clock.now(), limit=seconds)
                )
                raise AttemptTimeoutError(
                    f"{ctx.operation}: attempt {ctx.attempt} timed out after {seconds:.3f}s"
                ) from None
            finally:
                handle.cancel()
                ctx.deadline = outer

        return timeout_step

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        def timeout_step(ctx: CallContext, op: SyncOp) -> Any:
            _, limit, _ = self._limit(ctx)
            outer = ctx.deadline
            ctx.deadline = limit
            try:
                return inner(ctx, op)
            finally:
                ctx.deadline = outer

        return timeout_step
