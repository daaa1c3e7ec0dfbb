"""Bulkhead: at most N calls in flight, a short fair queue, and a clear refusal beyond it.

One bulkhead per upstream keeps a slow upstream from taking every connection, task or thread of
the process. A call that finds every slot taken waits in a FIFO queue (at most ``max_queue``
callers, each at most ``max_wait`` seconds and never past its deadline); beyond that it fails at
once with :class:`~egress.errors.BulkheadFullError`, and nothing is sent.

Fairness is strict first come, first served: a freed slot is handed to the oldest waiter, never
taken by a newcomer. The slot is released on every exit path, including cancellation, and a
waiter cancelled just as it was handed a slot passes it on.

Decisions live in :class:`BulkheadState` (one lock, no I/O); the async driver waits on a future
woken by the releasing caller (thread-safe, and timed by the call's clock), the sync driver on a
``threading.Event`` (timed in real time: threads cannot share a fake clock's virtual time).
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from typing import Any

from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import BulkheadFullError, ConfigurationError
from egress.events import BulkheadRejected
from egress.stores import MEMORY_STORE, StateStore
from egress.stores._protocol import shared_state

__all__ = ["Bulkhead", "BulkheadState"]

DEFAULT_MAX_QUEUE = 0
DEFAULT_MAX_WAIT = 1.0

_WAITING, _GRANTED, _GONE = 0, 1, 2
_FULL, _QUEUED, _ENTERED = 0, 1, 2


class _Waiter:
    """One queued caller. ``wake`` is called (outside the lock) once it has been granted."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = _WAITING

    def wake(self) -> None:
        raise NotImplementedError


class _TaskWaiter(_Waiter):
    __slots__ = ("future", "loop", "thread")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[bool] = self.loop.create_future()
        self.thread = threading.get_ident()

    def settle(self, granted: bool) -> None:
        if not self.future.done():
            self.future.set_result(granted)

    def wake(self) -> None:
        if threading.get_ident() == self.thread:
            self.settle(True)
        else:
            self.loop.call_soon_threadsafe(self.settle, True)


class _ThreadWaiter(_Waiter):
    __slots__ = ("event",)

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def wake(self) -> None:
        self.event.set()


class BulkheadState:
    """Slots in use and the queue of waiters. Every method is O(1) but :meth:`abandon`,
    which is O(``max_queue``)."""

    __slots__ = ("_active", "_lock", "_queue", "max_concurrent", "max_queue", "settings")

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.settings = (max_concurrent, max_queue)
        self._active = 0
        self._queue: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    def snapshot(self, now: float) -> dict[str, int]:
        """What ``egress.status`` shows: slots in use and callers queued."""
        with self._lock:
            return {"active": self._active, "queued": len(self._queue)}

    def try_enter(self) -> bool:
        """Take a free slot if there is one and nobody is queued before us."""
        lock = self._lock
        lock.acquire()  # (not ``with``: this is the hot path, and acquire/release is cheaper)
        try:
            if self._active < self.max_concurrent and not self._queue:
                self._active += 1
                return True
            return False
        finally:
            lock.release()

    def enter_or_queue(self, waiter: _Waiter, may_queue: bool) -> int:
        """``_ENTERED`` (slot taken), ``_QUEUED`` (wait for ``waiter.wake``) or ``_FULL``."""
        with self._lock:
            if self._active < self.max_concurrent and not self._queue:
                self._active += 1
                return _ENTERED
            if not may_queue or len(self._queue) >= self.max_queue:
                return _FULL
            self._queue.append(waiter)
            return _QUEUED

    def release(self) -> _Waiter | None:
        """Free a slot: hand it to the oldest waiter (returned, to be woken) or put it back."""
        lock = self._lock
        lock.acquire()
        try:
            queue = self._queue
            while queue:
                waiter = queue.popleft()
                if waiter.status == _WAITING:
                    waiter.status = _GRANTED
                    return waiter
            self._active -= 1
            return None
        finally:
            lock.release()

    def abandon(self, waiter: _Waiter) -> bool:
        """A waiter gives up (timeout, cancellation). ``True``: it was granted a slot meanwhile,
        which it now owns and must :meth:`release`."""
        with self._lock:
            if waiter.status == _GRANTED:
                return True
            if waiter.status == _WAITING:
                waiter.status = _GONE
                self._queue.remove(waiter)
            return False

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._queue)


class Bulkhead:
    """Limit concurrent calls, with a bounded, fair queue.

    ==================  ============  ===================================================
    setting             default       meaning
    ==================  ============  ===================================================
    ``max_concurrent``  (required)    calls allowed in flight at once
    ``max_queue``       0             callers allowed to wait for a slot (0: none wait)
    ``max_wait``        1.0           longest wait in the queue (s); also the deadline's
    ``name``            None          names it in events; shares the state by name
    ``store``           memory        where named state lives
    ==================  ============  ===================================================
    """

    __slots__ = ("_label", "_state", "max_concurrent", "max_queue", "max_wait", "name", "store")

    kind = "bulkhead"

    def __init__(self, max_concurrent: int, *, max_queue: int = DEFAULT_MAX_QUEUE,
                 max_wait: float = DEFAULT_MAX_WAIT, name: str | None = None,
                 store: StateStore = MEMORY_STORE) -> None:
        for setting, value, low in (("max_concurrent", max_concurrent, 1),
                                    ("max_queue", max_queue, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"Bulkhead: {setting} must be an integer >= {low}, "
                                         f"got {value!r}")
        if (isinstance(max_wait, bool) or not isinstance(max_wait, int | float)
                or not math.isfinite(max_wait) or max_wait < 0):
            raise ConfigurationError(f"Bulkhead: max_wait must be a finite number >= 0, "
                                     f"got {max_wait!r}")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_wait = float(max_wait)
        self.name = name
        self.store = store
        self._label = name or "bulkhead"
        if name is None:
            self._state = BulkheadState(max_concurrent, max_queue)
        else:
            self._state = shared_state("Bulkhead", store, self.kind, name,
                                       lambda: BulkheadState(max_concurrent, max_queue))
            if getattr(self._state, "settings", None) not in (None, (max_concurrent, max_queue)):
                raise ConfigurationError(f"Bulkhead: a bulkhead named {name!r} already lives in "
                                         f"this store with other settings")

    def __repr__(self) -> str:
        return (f"Bulkhead({self.max_concurrent}, max_queue={self.max_queue}, "
                f"max_wait={self.max_wait}, name={self.name!r})")

    @property
    def active(self) -> int:
        """Calls in flight now."""
        return self._state.active

    @property
    def waiting(self) -> int:
        """Callers queued now."""
        return self._state.waiting

    # -- decisions shared by both pumps -----------------------------------------------------------

    def _join(self, ctx: CallContext, waiter: _Waiter) -> float | None:
        """Enter (None) or queue ``waiter``: the seconds it may wait. Raises when full."""
        remaining = ctx.remaining()
        limit = self.max_wait if remaining is None else min(self.max_wait, remaining)
        outcome = self._state.enter_or_queue(waiter, limit > 0)
        if outcome == _ENTERED:
            return None
        if outcome == _FULL:
            raise self._reject(ctx, "full", limit)
        return limit

    def _reject(self, ctx: CallContext, reason: str, limit: float) -> BulkheadFullError:
        ctx.sink.emit(BulkheadRejected(operation=ctx.operation, at=ctx.clock.now(),
                                       bulkhead=self._label, reason=reason))
        if reason == "full":
            message = (f"bulkhead {self._label!r} is full ({self.max_concurrent} calls in flight "
                       f"and {self.max_queue} queued)")
        else:
            message = (f"bulkhead {self._label!r}: no slot freed in time (waited "
                       f"{max(limit, 0.0):.3f}s in the queue)")
        return BulkheadFullError(message, reason=reason)

    def _leave(self) -> None:
        """Free a slot, handing it to the oldest waiter (woken outside the lock)."""
        waiter = self._state.release()
        if waiter is not None:
            waiter.wake()

    def _give_up(self, waiter: _Waiter) -> None:
        """A waiter interrupted while queued (or just as a slot arrived) leaves no trace."""
        if self._state.abandon(waiter):
            self._leave()

    # -- the pumps: wait and call -----------------------------------------------------------------

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        try_enter, release = self._state.try_enter, self._state.release

        async def bulkhead_step(ctx: CallContext, op: AsyncOp) -> Any:
            if not try_enter():
                await self._queue_async(ctx)
            try:
                return await inner(ctx, op)
            finally:  # (inline, not _leave(): one call less on the hot path)
                waiter = release()
                if waiter is not None:
                    waiter.wake()

        return bulkhead_step

    async def _queue_async(self, ctx: CallContext) -> None:
        waiter = _TaskWaiter()
        limit = self._join(ctx, waiter)
        if limit is None:
            return

        def expire() -> None:
            if not self._state.abandon(waiter):
                waiter.settle(False)

        timer = ctx.clock.call_later(limit, expire)
        try:
            granted = await waiter.future
        except BaseException:
            self._give_up(waiter)
            raise
        finally:
            timer.cancel()
        if not granted:
            raise self._reject(ctx, "timeout", limit)

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        try_enter, release = self._state.try_enter, self._state.release

        def bulkhead_step(ctx: CallContext, op: SyncOp) -> Any:
            if not try_enter():
                self._queue_sync(ctx)
            try:
                return inner(ctx, op)
            finally:
                waiter = release()
                if waiter is not None:
                    waiter.wake()

        return bulkhead_step

    def _queue_sync(self, ctx: CallContext) -> None:
        waiter = _ThreadWaiter()
        limit = self._join(ctx, waiter)
        if limit is None:
            return
        try:
            waiter.event.wait(limit)
        except BaseException:
            self._give_up(waiter)
            raise
        if not self._state.abandon(waiter):  # woken or timed out: the state says which
            raise self._reject(ctx, "timeout", limit)
