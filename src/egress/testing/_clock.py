"""A deterministic clock for tests: virtual time that moves only when told to."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_IDLE_THRESHOLD", "FakeClock"]

# How many event-loop turns ``settle`` gives: enough for tasks that were just woken (or just
# started) to run up to their next await.
_SETTLE_TURNS = 4

#: Real seconds the loop must stay idle before auto-advance jumps while some task waits on
#: something other than this clock (a socket, a lock, an event). Well above a loopback round
#: trip on a loaded machine, so real I/O under a virtual ``Timeout`` is never cut short.
DEFAULT_IDLE_THRESHOLD = 0.25

# What a task waits on when its implementation does not say (no ``_fut_waiter``).
_UNSEEN = object()

# How often (real seconds) auto-advance looks again while it waits out the idle threshold.
_IDLE_POLL = 0.005


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

    ``now()`` starts at ``start`` and changes only through :meth:`advance` or auto-advance.
    Async sleeps and ``call_later`` timers complete when virtual time reaches them;
    ``sleep_sync`` simply moves time forward (there is no other thread to wait for). ``sleeps``
    records every requested sleep, so tests can assert delays exactly.

    With ``auto_advance`` (the default) the clock jumps straight to the earliest pending timer
    only when nothing else can happen, so tests run in microseconds of real time whatever the
    virtual delays, and real work is never cut short:

    - at once, when every task of the event loop is blocked on this clock (a :meth:`sleep`, or
      awaiting tasks or a ``gather`` that are), with no ready callback: pure virtual waits;
    - otherwise (some task waits on a socket, a lock, an event, a real timer), only after the
      loop has been idle, with no task woken, for ``idle_threshold`` real seconds, like trio's
      autojump clock. So a virtual ``Timeout(30)`` around 50 ms of real loopback I/O does not
      fire, and a task that is busy never sees virtual time pass under it.

    Set ``auto_advance=False`` to step time by hand with :meth:`advance`, e.g. to hold a breaker
    OPEN while asserting.
    """

    def __init__(self, start: float = 1000.0, *, wall: float = 1_700_000_000.0,
                 auto_advance: bool = True,
                 idle_threshold: float = DEFAULT_IDLE_THRESHOLD) -> None:
        if idle_threshold < 0:
            raise ValueError("FakeClock: idle_threshold cannot be negative")
        self._now = start
        self._wall_offset = wall - start
        self.auto_advance = auto_advance
        self.idle_threshold = idle_threshold
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._seq = itertools.count()
        self._jumper: asyncio.Task[None] | None = None
        # The futures of pending async sleeps: a task awaiting one is "blocked on this clock".
        self._sleepers: set[asyncio.Future[None]] = set()
        self._gathered: weakref.WeakKeyDictionary[Any, tuple[Any, ...]] = (
            weakref.WeakKeyDictionary())

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
        self._sleepers.add(future)
        try:
            await future
        finally:
            self._sleepers.discard(future)
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
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        quiet: frozenset[tuple[int, int]] | None = None  # the blocked picture seen last
        quiet_since = 0.0
        while True:
            await self.settle()
            live = [entry for entry in self._timers if not entry[2].cancelled]
            if not live:
                self._timers.clear()
                return
            picture = self._blocked(loop, me)
            if picture is None:  # something can run: let it
                quiet = None
                continue
            waits, all_on_clock = picture
            if not all_on_clock:
                # Some task waits on the outside world: jump only once the loop has been idle
                # (the same tasks blocked on the same things) for idle_threshold real seconds.
                real = time.monotonic()
                if waits != quiet:
                    quiet, quiet_since = waits, real
                if real - quiet_since < self.idle_threshold:
                    await asyncio.sleep(min(_IDLE_POLL, self.idle_threshold))
                    continue
            quiet = None
            self._fire_until(min(entry[0] for entry in live))

    def _blocked(self, loop: asyncio.AbstractEventLoop,
                 me: asyncio.Task[Any] | None) -> tuple[frozenset[tuple[int, int]], bool] | None:
        """None if a task or callback is ready to run; else what every task waits on, and
        whether all of it is this clock. Runs before every jump, so it stays O(tasks)."""
        if getattr(loop, "_ready", None):  # CPython's queue of ready callbacks
            return None
        sleepers = self._sleepers
        waiting: list[tuple[asyncio.Task[Any], Any]] = []
        all_on_clock = True
        for task in asyncio.all_tasks(loop):
            if task is me:
                continue
            waiter = getattr(task, "_fut_waiter", _UNSEEN)
            if waiter is None:  # ready to run
                return None
            waiting.append((task, waiter))
            if waiter is _UNSEEN:  # a task implementation we cannot see into: assume the worst
                all_on_clock = False
            elif all_on_clock and waiter not in sleepers:
                all_on_clock = self._on_clock(waiter)
        if all_on_clock:
            return frozenset(), True
        return frozenset((id(task), id(waiter)) for task, waiter in waiting), False

    def _on_clock(self, waiter: Any) -> bool:
        """Whether a task blocked on ``waiter`` can only be woken through this clock, given
        that every other task is (the caller checks them all): a sleep of this clock, a task
        (itself checked as one of all tasks), or a ``gather`` of such things."""
        if waiter.done() or waiter in self._sleepers or isinstance(waiter, asyncio.Task):
            return True
        others = self._gathered.get(waiter)
        if others is None:
            children = getattr(waiter, "_children", None)  # asyncio.gather's future
            if children is None:
                return False
            # Tasks among the children are checked as tasks; remember the rest (usually none),
            # as a gather of many tasks is seen again at every jump.
            others = self._gathered[waiter] = tuple(
                child for child in children if not isinstance(child, asyncio.Task))
        return all(child.done() or child in self._sleepers for child in others)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, pending={len(self._timers)})"
