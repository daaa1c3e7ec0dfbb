"""RateLimiter: keep to an upstream's rate, wait a little for a slot, and obey its 429s.

The algorithm is GCRA (the "virtual scheduling" form of a token bucket): the state is one
number, the *theoretical arrival time* of the next call, so each call costs O(1) and no timer
runs in the background. A call that finds no capacity *reserves* the next free slot and sleeps
until it, if that is at most ``max_wait`` away and before the call's deadline; otherwise it fails
at once with :class:`~egress.errors.RateLimitedError` whose ``retry_after`` says when a slot
frees, and nothing is sent. Reservations are taken in arrival order, so no caller is starved and
none is dropped silently.

``rate`` is calls per second; ``burst`` is how many may go back to back after a quiet spell (the
bucket's size). With ``burst=1`` calls are spaced exactly ``1/rate`` apart.

**Server hints.** :meth:`RateLimiter.pause_until` and :meth:`RateLimiter.cooldown` stop *every*
caller sharing the limiter (all limiters of the same name in the same store) until a moment;
callers already waiting re-check after their sleep and take a fresh slot. By default the limiter
does this by itself when the operation fails with a ``StatusError`` 429 or 503 carrying
``retry_after`` (see ``pause_on``). After a pause the bucket starts empty: calls resume at the
rate, not in a burst.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import ConfigurationError, RateLimitedError, StatusError
from egress.events import NULL_SINK, EventSink, RateLimitPaused, RateLimitRejected
from egress.stores import MEMORY_STORE, StateStore

__all__ = ["LimiterState", "RateLimiter", "server_pause_hint"]

DEFAULT_BURST = 1
DEFAULT_MAX_WAIT = 5.0
_PAUSE_STATUSES = frozenset({429, 503})
_PAUSE_SLACK = 1e-3  # seconds: a pause extended by less is the same pause


def server_pause_hint(exc: BaseException) -> float | None:
    """The default ``pause_on``: the ``retry_after`` of a server's "slow down".

    That is a ``StatusError`` 429 or 503, or a ``RateLimitedError`` raised for a server's hint
    (not one raised by a local limiter), when it carries a positive ``retry_after``.
    """
    if isinstance(exc, StatusError):
        if exc.status_code not in _PAUSE_STATUSES:
            return None
    elif not isinstance(exc, RateLimitedError) or getattr(exc, "limiter", None) is not None:
        return None
    hint = exc.retry_after
    if isinstance(hint, int | float) and math.isfinite(hint) and hint > 0:
        return float(hint)
    return None


class LimiterState:
    """GCRA with reservations, plus a pause. Pure: time comes in as ``now``."""

    __slots__ = ("_interval", "_lock", "_paused_until", "_tat", "_tolerance", "settings")

    def __init__(self, rate: float, burst: int) -> None:
        self.settings = (rate, burst)
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._tat = -math.inf  # theoretical arrival time of the next call at the rate
        self._paused_until = -math.inf
        self._lock = threading.Lock()

    def reserve(self, now: float, max_wait: float, deadline: float | None = None) -> float:
        """Reserve the next slot if it starts within ``max_wait`` and by ``deadline`` (clock
        time): the seconds to wait (>= 0).

        Otherwise reserve nothing and return ``-retry_after`` (< 0): minus the seconds until a
        slot would be free.
        """
        lock = self._lock
        lock.acquire()
        try:
            tat = self._tat
            allow = tat - self._tolerance
            allow = now if allow < now else allow  # (not max(): this is the hot path)
            paused = self._paused_until
            allow = paused if allow < paused else allow
            wait = allow - now
            if wait > max_wait or (deadline is not None and allow > deadline):
                return -wait if wait > 0 else -math.ulp(0.0)
            self._tat = (tat if tat > allow else allow) + self._interval
            return wait
        finally:
            lock.release()

    def refund(self, now: float, wait: float) -> None:
        """A caller that reserved ``wait`` at ``now`` gave up: return its slot if it was the last
        one reserved (otherwise it stays used, which only errs on the slow side)."""
        with self._lock:
            mine = now + wait + self._tolerance + self._interval
            if abs(self._tat - mine) <= 1e-9 * max(1.0, abs(mine)):
                self._tat -= self._interval

    def paused_for(self, now: float) -> float:
        """Seconds the limiter stays paused after ``now`` (0 when not paused)."""
        left = self._paused_until - now
        return left if left > 0 else 0.0

    def pause_until(self, until: float) -> bool:
        """Pause until ``until`` (clock time). ``False`` if already paused about that long.

        "About": the same server hint seen twice a moment apart (by the HTTP layer and by the
        limiter's own ``pause_on``) extends the pause by microseconds; that is not a new pause.
        """
        with self._lock:
            if until <= self._paused_until + _PAUSE_SLACK:
                return False
            self._paused_until = until
            empty_at = until + self._tolerance  # the bucket starts empty when the pause ends
            self._tat = max(self._tat, empty_at)
            return True


def _positive(owner: str, name: str, value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value <= 0):
        raise ConfigurationError(f"{owner}: {name} must be a positive, finite number, "
                                 f"got {value!r}")
    return float(value)


class RateLimiter:
    """Spread calls to ``rate`` per second; callers wait (a little) instead of failing.

    ==============  =======================  ==============================================
    setting         default                  meaning
    ==============  =======================  ==============================================
    ``rate``        (required)               calls per second, sustained
    ``burst``       1                        calls allowed back to back after a quiet spell
    ``max_wait``    5.0                      longest wait for a slot (s), deadline permitting
    ``name``        None                     names it in events; shares the state by name
    ``store``       memory                   where named state lives
    ``pause_on``    ``server_pause_hint``    error -> seconds to pause everyone; None: off
    ``clock``       system                   for ``cooldown()`` outside a call
    ``sink``        none                     for the events of ``pause_until``/``cooldown``
    ==============  =======================  ==============================================
    """

    __slots__ = ("_label", "_own", "_state", "burst", "clock", "max_wait", "name", "pause_on",
                 "rate", "sink", "store")

    kind = "rate_limiter"

    def __init__(self, rate: float, *, burst: int = DEFAULT_BURST,
                 max_wait: float = DEFAULT_MAX_WAIT, name: str | None = None,
                 store: StateStore = MEMORY_STORE,
                 pause_on: Callable[[BaseException], float | None] | None = server_pause_hint,
                 clock: Clock = SYSTEM_CLOCK, sink: EventSink = NULL_SINK) -> None:
        owner = "RateLimiter"
        self.rate = _positive(owner, "rate", rate)
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError(f"{owner}: burst must be an integer >= 1, got {burst!r}")
        self.burst = burst
        if (isinstance(max_wait, bool) or not isinstance(max_wait, int | float)
                or not math.isfinite(max_wait) or max_wait < 0):
            raise ConfigurationError(f"{owner}: max_wait must be a finite number >= 0, "
                                     f"got {max_wait!r}")
        self.max_wait = float(max_wait)
        if pause_on is not None and not callable(pause_on):
            raise ConfigurationError(f"{owner}: pause_on must be callable or None")
        self.pause_on = pause_on
        self.name = name
        self.store = store
        self.clock = clock
        self.sink = sink
        self._label = name or "rate_limiter"
        self._own = CallContext(self._label, clock, sink)
        if name is None:
            self._state = LimiterState(self.rate, burst)
        else:
            self._state = store.shared(self.kind, name, lambda: LimiterState(self.rate, burst))
            if self._state.settings != (self.rate, burst):
                raise ConfigurationError(f"{owner}: a limiter named {name!r} already lives in "
                                         f"this store with other settings")

    def __repr__(self) -> str:
        return (f"RateLimiter({self.rate}, burst={self.burst}, max_wait={self.max_wait}, "
                f"name={self.name!r})")

    # -- server hints ------------------------------------------------------------------------------

    def pause_until(self, until: float, ctx: CallContext | None = None) -> None:
        """Let no call of this limiter start before ``until`` (clock time, ``clock.now()``)."""
        ctx = ctx or self._own
        if self._state.pause_until(until):
            ctx.sink.emit(RateLimitPaused(operation=ctx.operation, at=ctx.clock.now(),
                                          limiter=self._label, until=until))

    def cooldown(self, seconds: float, ctx: CallContext | None = None) -> None:
        """Pause every caller for ``seconds`` from now (a server's ``Retry-After``)."""
        ctx = ctx or self._own
        self.pause_until(ctx.clock.now() + max(0.0, seconds), ctx)

    # -- shared decisions ------------------------------------------------------------------------

    def _reject(self, ctx: CallContext, now: float, retry_after: float) -> RateLimitedError:
        ctx.sink.emit(RateLimitRejected(operation=ctx.operation, at=now, limiter=self._label,
                                        retry_after=retry_after))
        error = RateLimitedError(
            f"rate limiter {self._label!r}: no slot within the allowed wait; one frees in "
            f"{retry_after:.3f}s", retry_after=retry_after)
        error.limiter = self._label  # marks a local refusal
        return error

    def _after_sleep(self, ctx: CallContext, until: float) -> float:
        """After a sleep: 0.0 to go now, or the wait of a fresh slot if a pause came meanwhile
        (one starting by ``until``, the latest this call was willing to start)."""
        now = ctx.clock.now()
        if self._state.paused_for(now) <= 0:
            return 0.0
        wait = self._state.reserve(now, until - now, ctx.deadline)
        if wait < 0:
            raise self._reject(ctx, now, -wait)
        return wait

    def _observe(self, ctx: CallContext, exc: BaseException) -> None:
        pause_on = self.pause_on
        if pause_on is not None:
            seconds = pause_on(exc)
            if seconds is not None and seconds > 0:
                self.cooldown(seconds, ctx)

    # -- drivers: sleep and call; decisions above ------------------------------------------------

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        reserve = self._state.reserve
        # State on a server (egress.stores.redis) reserves through its asyncio client instead.
        reserve_async = getattr(self._state, "reserve_async", None)
        max_wait = self.max_wait
        observe = self._observe

        async def rate_limiter_step(ctx: CallContext, op: AsyncOp) -> Any:
            now = ctx.clock.now()
            if reserve_async is None:
                wait = reserve(now, max_wait, ctx.deadline)
            else:
                wait = await reserve_async(now, max_wait, ctx.deadline)
            if wait != 0.0:
                await self._wait_async(ctx, now, wait)
            try:
                return await inner(ctx, op)
            except Exception as exc:
                observe(ctx, exc)
                raise

        return rate_limiter_step

    async def _wait_async(self, ctx: CallContext, now: float, wait: float) -> None:
        if wait < 0:
            raise self._reject(ctx, now, -wait)
        until = now + self.max_wait  # the latest this call is willing to start
        while wait > 0:
            try:
                await ctx.clock.sleep(wait)
            except BaseException:
                self._state.refund(now, wait)
                raise
            wait = self._after_sleep(ctx, until)
            now = ctx.clock.now()

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        reserve = self._state.reserve
        max_wait = self.max_wait
        observe = self._observe

        def rate_limiter_step(ctx: CallContext, op: SyncOp) -> Any:
            now = ctx.clock.now()
            wait = reserve(now, max_wait, ctx.deadline)
            if wait != 0.0:
                self._wait_sync(ctx, now, wait)
            try:
                return inner(ctx, op)
            except Exception as exc:
                observe(ctx, exc)
                raise

        return rate_limiter_step

    def _wait_sync(self, ctx: CallContext, now: float, wait: float) -> None:
        if wait < 0:
            raise self._reject(ctx, now, -wait)
        until = now + self.max_wait
        while wait > 0:
            try:
                ctx.clock.sleep_sync(wait)
            except BaseException:
                self._state.refund(now, wait)
                raise
            wait = self._after_sleep(ctx, until)
            now = ctx.clock.now()
