"""A deterministic clock for tests: virtual time that moves only when told to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["FakeClock"]

# How many event-loop turns auto-advance waits before jumping: enough for tasks that were just
# woken (or just started) to run up to their next sleep, so the jump goes to the earliest waiter.
_SETTLE_TURNS = 4


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Virtual time for :class:`egress.Pipeline` and every policy.

    ``now()`` starts at ``start`` and changes only through :meth:`advance` (or, with
    ``auto_advance=True``, when every task is waiting on this clock). Async sleeps and
    ``call_later`` timers complete when virtual time reaches them; ``sleep_sync`` simply moves
    time forward (there is no other thread to wait for). ``sleeps`` records every requested sleep,
    so tests can assert delays exactly.

    With ``auto_advance`` (the default), a sleeping task lets the event loop settle and then the
    clock jumps straight to the earliest pending wake-up, like trio's autojump clock: tests run in
    microseconds of real time whatever the virtual delays. Set it to ``False`` to step time by
    hand with :meth:`advance`, e.g. to hold a breaker OPEN while asserting.
    """

    def __init__(self, start: float = 1000.0, *, wall: float = 1_700_000_000.0,
                 auto_advance: bool = True) -> None:
        self._now = start
        self._wall_offset = wall - start
        self.auto_advance = auto_advance
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()
        self._jumper: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing timers and waking sleepers that are due.

        Woken async sleepers run at the event loop's next turns: ``await asyncio.sleep(0)`` (or
        :meth:`settle`) to let them.
        """
        if seconds < 0:
            raise ValueError("FakeClock.advance: time cannot go backwards")
        self._fire_until(self._now + seconds)

    async def settle(self, turns: int = _SETTLE_TURNS) -> None:
        """Give the event loop a few turns so woken tasks can run."""
        for _ in range(turns):
            await asyncio.sleep(0)

    def _fire_until(self, target: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= target:
            when, _, timer = heapq.heappop(timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = max(self._now, target)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> _FakeTimer:
        timer = _FakeTimer(self._now + max(0.0, seconds), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        if self.auto_advance:
            self._ensure_jumper()
        return timer

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    def sleep_sync(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self._fire_until(self._now + seconds)

    def _ensure_jumper(self) -> None:
        if self._jumper is not None and not self._jumper.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._jumper = loop.create_task(self._autojump())

    async def _autojump(self) -> None:
        while True:
            await self.settle()
            live = [entry for entry in self._timers if not entry[2].cancelled]
            if not live:
                self._timers.clear()
                return
            self._fire_until(min(entry[0] for entry in live))

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, pending={len(self._timers)})"
