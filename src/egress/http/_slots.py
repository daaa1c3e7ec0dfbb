"""The in-flight cap of the async backends whose own pool has no pool timeout (aiohttp, pyreqwest).

The wait for a free connection happens here, before the request reaches the library, where it
is known to send nothing: a pool wait that runs out is then ``failed.pool_wait_timed_out``
(safe to retry, whatever the method), never a timeout of unknown outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    """At most ``size`` requests in flight.

    A free slot is taken without awaiting anything (the common case; ``asyncio.Semaphore``
    costs two coroutines per request even then). Callers that find none queue, each for at
    most its own time, and a returned slot goes straight to the longest live waiter, so a
    late arrival cannot take it from under one that has waited.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    def try_take(self) -> bool:
        # A free slot implies no live waiter: give() hands a slot over before it frees one.
        if self._free > 0:
            self._free -= 1
            return True
        return False

    async def take(self, within: float) -> None:
        """Waits for a slot, at most ``within`` seconds (then ``TimeoutError``)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(within):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as the wait ended: pass it on
            else:
                waiter.cancel()
                # removed, not left for give() to skip: waits that time out while nothing
                # is returned must not pile up. (Gone already if give() popped it, cancelled,
                # between the cancellation and this task running again.)
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot changes hands without being freed
                return
        self._free += 1

    def __repr__(self) -> str:
        return f"Slots(free={self._free}, waiting={len(self._waiters)})"
