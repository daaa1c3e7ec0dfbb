"""Time, in one place: the only module of the core that reads clocks or sleeps.

Every policy takes its clock from the call context, so tests swap in
:class:`egress.testing.FakeClock` and never sleep for real.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "TimerHandle", "SYSTEM_CLOCK"]


@runtime_checkable
class TimerHandle(Protocol):
    """What :meth:`Clock.call_later` returns: something that can be cancelled."""

    def cancel(self) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock with sleeps and timers.

    ``now()`` is monotonic seconds (arbitrary origin); ``wall()`` is Unix time, used only where a
    protocol speaks in dates (``Retry-After`` HTTP-dates, webhook timestamps).
    """

    def now(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def sleep_sync(self, seconds: float) -> None: ...

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        """Run ``callback`` after ``seconds`` on the running event loop (async code only)."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`asyncio.sleep`, the loop's timers."""

    __slots__ = ()

    # Bound at class level so ``clock.now()`` is one C call, not a Python frame.
    now = staticmethod(time.monotonic)
    wall = staticmethod(time.time)
    sleep_sync = staticmethod(time.sleep)

    async def sleep(self, seconds: float) -> None:
        await (_sleep or _first_sleep())(max(0.0, seconds))

    def call_later(self, seconds: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()

_sleep: Callable[[float], Awaitable[None]] | None = None


def _first_sleep() -> Callable[[float], Awaitable[None]]:
    # anyio's sleep when it is installed (it comes with the httpx extra): a Retry inside an httpx
    # client (ResilientTransport) may run on trio. Without it, only asyncio can run egress.
    # Looked up on the first sleep, not at import: anyio costs a few ms to import, and egress
    # does not depend on it.
    global _sleep
    try:
        from anyio import sleep
    except ImportError:
        sleep = asyncio.sleep
    _sleep = sleep
    return sleep
