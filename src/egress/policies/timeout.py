"""Timeout: the overall deadline, or the limit of one attempt.

Placed *outside* a Retry, a Timeout is the call's overall deadline: the Retry sees it, starts no
attempt after it and fails at once rather than sleep past it. Placed *inside* a Retry, it limits
each attempt, and is never longer than what remains of the deadline.

Async attempts are cancelled when their time is up (cleanly: the task's cancellation count is
restored, so an outer ``asyncio.timeout`` or a caller's cancel still works). Sync code cannot be
pre-empted in Python: there the Timeout narrows the deadline that I/O layers (the HTTP seam) turn
into socket timeouts, and refuses to start work after it.

The cost is kept low by sharing one event-loop timer between all the Timeouts of a loop (see
``_Watchdog``; ``bench/overhead.py`` measures it against ``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import math
import weakref
from typing import Any

from egress._clock import Clock
from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import AttemptTimeoutError, ConfigurationError, DeadlineExceededError
from egress.events import AttemptTimedOut, DeadlineExceeded

__all__ = ["Timeout"]


class _Watch:
    __slots__ = ("active", "fired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.active = True
        self.fired = False


class _Watchdog:
    """One event-loop timer for every Timeout running on a loop, armed at the earliest deadline.

    A timer per call (``loop.call_later`` + ``cancel``, what ``asyncio.timeout`` does) costs about
    3 us, most of it in the loop's timer heap filling with cancelled handles. Here a call only
    pushes a small record on our own heap and flags it done on exit; finished records are
    dropped from the top as calls complete, so the heap stays as small as the calls in flight.
    """

    __slots__ = ("_armed_at", "_clock", "_heap", "_seq")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, _Watch]] = []
        self._armed_at: float | None = None
        self._seq = 0

    def watch(self, when: float, task: asyncio.Task[Any]) -> _Watch:
        heap = self._heap
        while heap and not heap[0][2].active:
            heapq.heappop(heap)
        watch = _Watch(task)
        self._seq += 1
        heapq.heappush(heap, (when, self._seq, watch))
        if self._armed_at is None or when < self._armed_at:
            self._arm(when)
        return watch

    def _arm(self, when: float) -> None:
        self._armed_at = when
        self._clock.call_later(when - self._clock.now(), functools.partial(self._fire, when))

    def _fire(self, when: float) -> None:
        if self._armed_at != when:
            return  # superseded by an earlier timer, which re-armed for what remains
        self._armed_at = None
        now = self._clock.now()
        heap = self._heap
        while heap and (heap[0][0] <= now or not heap[0][2].active):
            _, _, watch = heapq.heappop(heap)
            if watch.active:
                watch.fired = True
                watch.task.cancel()
        if heap:
            self._arm(heap[0][0])


_LAST: tuple[object, object, _Watchdog] | None = None
_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Watchdog]] = (
    weakref.WeakKeyDictionary()
)


def _watchdog(clock: Clock) -> _Watchdog:
    global _LAST
    loop = asyncio.get_running_loop()
    last = _LAST
    if last is not None and last[0] is loop and last[1] is clock:
        return last[2]
    per_loop = _WATCHDOGS.setdefault(loop, {})
    dog = per_loop.get(id(clock))
    if dog is None or dog._clock is not clock:
        dog = per_loop[id(clock)] = _Watchdog(clock)
    _LAST = (loop, clock, dog)
    return dog


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
            watch = _watchdog(ctx.clock).watch(limit, task)
            outer = ctx.deadline
            ctx.deadline = limit
            try:
                return await inner(ctx, op)
            except asyncio.CancelledError:
                # Ours only if our watch fired and no one else also asked to cancel this task.
                if not watch.fired or task.uncancel() > 0:
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
                watch.active = False
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
