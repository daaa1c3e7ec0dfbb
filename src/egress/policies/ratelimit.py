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
``retry_after`` (see ``pause_on``); a 429 *without* a hint (Stripe's usual answer) pauses everyone
for a short, growing time (see :class:`ThrottlePause`). After a pause the bucket starts empty:
calls resume at the rate, not in a burst.

Decisions live in :class:`LimiterState` (one lock, time as an argument); the async and sync pumps
only sleep, give a slot back when interrupted, and call.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import ConfigurationError, RateLimitedError, StatusError
from egress.events import (
    NULL_SINK,
    EventSink,
    RateLimitPaused,
    RateLimitRejected,
    RateLimitWaited,
    guard,
)
from egress.stores import MEMORY_STORE, StateStore
from egress.stores._protocol import shared_state

__all__ = ["LimiterState", "RateLimiter", "ThrottlePause", "server_pause_hint",
           "server_throttled"]

DEFAULT_BURST = 1
DEFAULT_MAX_WAIT = 5.0
#: A 429 without Retry-After: 0.5 s, then 1, 2, 4, 8, 10, 10 ... (reset by a success). Short
#: enough to cost little when the limit was a blip, long enough that a fleet of callers backs off
#: within a few answers, and capped well under a typical deadline.
DEFAULT_THROTTLE_INITIAL = 0.5
DEFAULT_THROTTLE_MULTIPLIER = 2.0
DEFAULT_THROTTLE_CAP = 10.0
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


def server_throttled(exc: BaseException) -> bool:
    """The default ``ThrottlePause.on``: a 429 that does not say how long to wait.

    Stripe answers most rate-limited requests so (no ``Retry-After``). A 429 with a hint is
    ``pause_on``'s business; a 503 means "unavailable", the breaker's business.
    """
    return (isinstance(exc, StatusError) and exc.status_code == 429
            and exc.retry_after is None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottlePause:
    """How long a server's "slow down" without ``Retry-After`` pauses every caller.

    The ``n``-th such answer in a row pauses for ``min(cap, initial × multiplier^(n-1))``; a
    success of a call sent after the pause starts the series again. Answers to calls already
    in flight when the pause began are the same "slow down", and neither extend nor grow it.

    ==============  ====================  ==========================================
    setting         default               meaning
    ==============  ====================  ==========================================
    ``initial``     0.5                   seconds of the first pause
    ``multiplier``  2.0                   growth at each further "slow down"
    ``cap``         10.0                  no pause is longer
    ``on``          ``server_throttled``  which errors say "slow down" without a hint
    ==============  ====================  ==========================================
    """

    initial: float = DEFAULT_THROTTLE_INITIAL
    multiplier: float = DEFAULT_THROTTLE_MULTIPLIER
    cap: float = DEFAULT_THROTTLE_CAP
    on: Callable[[BaseException], bool] = server_throttled

    def __post_init__(self) -> None:
        _positive("ThrottlePause", "initial", self.initial)
        _positive("ThrottlePause", "cap", self.cap)
        if (isinstance(self.multiplier, bool) or not isinstance(self.multiplier, int | float)
                or not 1 <= self.multiplier <= 1000):
            raise ConfigurationError(f"ThrottlePause: multiplier must be in 1..1000, "
                                     f"got {self.multiplier!r}")
        if self.cap < self.initial:
            raise ConfigurationError(f"ThrottlePause: cap ({self.cap}) is below initial "
                                     f"({self.initial})")
        if not callable(self.on):
            raise ConfigurationError("ThrottlePause: on must be callable")

    def seconds(self, level: int) -> float:
        """The pause of the ``level``-th "slow down" in a row (1-based)."""
        return min(self.cap, self.initial * self.multiplier ** min(level - 1, 1000))


class LimiterState:
    """GCRA with reservations, plus a pause. Pure: time comes in as ``now``.

    The methods the limiter calls (and a store must provide for the kind ``"rate_limiter"``):
    ``settings``, ``reserve``, ``refund``, ``paused_for``, ``pause_until``, ``throttle_level``,
    ``throttle`` and ``calm``; optionally ``reserve_async`` (awaited by the async pump instead of
    ``reserve`` for a call's first reservation, when the state lives on a server).
    """

    __slots__ = ("_interval", "_lock", "_paused_until", "_returned", "_tat", "_tolerance",
                 "settings", "throttle_level")

    def __init__(self, rate: float, burst: int) -> None:
        self.settings = (rate, burst)
        self._interval = 1.0 / rate
        self._tolerance = (burst - 1) * self._interval
        self._tat = -math.inf  # theoretical arrival time of the next call at the rate
        self._paused_until = -math.inf
        #: start times of reserved slots given back before the tail (sorted): the next callers
        #: take them, while they are still ahead.
        self._returned: list[float] = []
        #: "slow down" answers without a hint in a row (0: none since the last success).
        self.throttle_level = 0
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
            if self._returned and allow > now:
                slot = self._returned_slot(now, allow)
                if slot is not None and slot - now <= max_wait and (
                        deadline is None or slot <= deadline):
                    self._returned.remove(slot)
                    return slot - now
            wait = allow - now
            if wait > max_wait or (deadline is not None and allow > deadline):
                return -wait if wait > 0 else -math.ulp(0.0)
            self._tat = (tat if tat > allow else allow) + self._interval
            return wait
        finally:
            lock.release()

    def _returned_slot(self, now: float, allow: float) -> float | None:
        """The earliest returned slot still ahead (and not paused), before ``allow``."""
        returned = self._returned
        floor = now if now > self._paused_until else self._paused_until
        while returned and returned[0] < floor:
            returned.pop(0)  # passed: reusing it would crowd the next slot
        return returned[0] if returned and returned[0] < allow else None

    def refund(self, now: float, wait: float) -> None:
        """A caller that reserved ``wait`` at ``now`` gave up: its slot goes back.

        The last slot reserved moves the bucket back (and so do slots given back before it that
        are now at the tail); an earlier one is kept for the next caller while it is ahead.
        """
        with self._lock:
            slot = now + wait
            if not self._is_tail(slot):
                bisect.insort(self._returned, slot)
                return
            self._tat -= self._interval
            while self._returned and self._is_tail(self._returned[-1]):
                self._returned.pop()
                self._tat -= self._interval

    def _is_tail(self, slot: float) -> bool:
        mine = slot + self._tolerance + self._interval
        return abs(self._tat - mine) <= 1e-9 * max(1.0, abs(mine))

    def paused_for(self, now: float) -> float:
        """Seconds the limiter stays paused after ``now`` (0 when not paused)."""
        left = self._paused_until - now
        return left if left > 0 else 0.0

    def snapshot(self, now: float) -> dict[str, float]:
        """What ``egress.status`` shows: the seconds the limiter stays paused after ``now``, and
        the seconds of slots already reserved ahead of ``now`` (its backlog; 0 when idle)."""
        with self._lock:
            backlog = self._tat - now
            return {"paused_for": self.paused_for(now), "backlog": backlog if backlog > 0 else 0.0}

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

    def throttle(self, now: float, pause: ThrottlePause) -> float | None:
        """A "slow down" without a hint at ``now``: the end of the pause to apply, or ``None``
        when a pause is already in force (an answer to a call sent before it)."""
        with self._lock:
            if now < self._paused_until:
                return None
            self.throttle_level += 1
            return now + pause.seconds(self.throttle_level)

    def calm(self, sent: float) -> None:
        """A call sent at ``sent`` succeeded: after the pause, the next "slow down" starts the
        series again."""
        with self._lock:
            if sent >= self._paused_until:
                self.throttle_level = 0


def _positive(owner: str, name: str, value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value <= 0):
        raise ConfigurationError(f"{owner}: {name} must be a positive, finite number, "
                                 f"got {value!r}")
    return float(value)


_DEFAULT_THROTTLE = ThrottlePause()


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
    ``throttle``    ``ThrottlePause()``      a 429 without Retry-After: 0.5 s doubling to
                                             10 s, for everyone; None: off
    ``clock``       system                   for ``cooldown()`` outside a call
    ``sink``        none                     for the events of ``pause_until``/``cooldown``
    ==============  =======================  ==============================================
    """

    __slots__ = ("_label", "_own", "_state", "burst", "clock", "max_wait", "name", "pause_on",
                 "rate", "sink", "store", "throttle")

    kind = "rate_limiter"

    def __init__(self, rate: float, *, burst: int = DEFAULT_BURST,
                 max_wait: float = DEFAULT_MAX_WAIT, name: str | None = None,
                 store: StateStore = MEMORY_STORE,
                 pause_on: Callable[[BaseException], float | None] | None = server_pause_hint,
                 throttle: ThrottlePause | None = _DEFAULT_THROTTLE,
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
        if throttle is not None and not isinstance(throttle, ThrottlePause):
            raise ConfigurationError(f"{owner}: throttle must be a ThrottlePause or None, "
                                     f"got {throttle!r}")
        self.throttle = throttle
        self.name = name
        self.store = store
        self.clock = clock
        self.sink = sink
        self._label = name or "rate_limiter"
        self._own = CallContext(self._label, clock, guard(sink))
        if name is None:
            self._state = LimiterState(self.rate, burst)
        else:
            self._state = shared_state(owner, store, self.kind, name,
                                       lambda: LimiterState(self.rate, burst))
            if getattr(self._state, "settings", (self.rate, burst)) != (self.rate, burst):
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

    def slow_down(self, ctx: CallContext | None = None) -> None:
        """A server said "slow down" without saying how long: pause every caller for the next
        step of ``throttle`` (nothing when a pause is already in force, or throttle is off)."""
        ctx = ctx or self._own
        if self.throttle is None:
            return
        now = ctx.clock.now()
        until = self._state.throttle(now, self.throttle)
        if until is not None and self._state.pause_until(until):
            ctx.sink.emit(RateLimitPaused(operation=ctx.operation, at=now, limiter=self._label,
                                          until=until))

    # -- decisions shared by both pumps ----------------------------------------------------------

    def _reject(self, ctx: CallContext, now: float, retry_after: float) -> RateLimitedError:
        ctx.sink.emit(RateLimitRejected(operation=ctx.operation, at=now, limiter=self._label,
                                        retry_after=retry_after))
        error = RateLimitedError(
            f"rate limiter {self._label!r}: no slot within the allowed wait; one frees in "
            f"{retry_after:.3f}s", retry_after=retry_after)
        error.limiter = self._label  # marks a local refusal
        return error

    def _waiting(self, ctx: CallContext, now: float, wait: float) -> None:
        """A call is about to sleep ``wait`` seconds for its slot: said in its report."""
        cause = "server" if self._state.paused_for(now) > 0 else "ours"
        ctx.sink.emit(RateLimitWaited(operation=ctx.operation, at=now, limiter=self._label,
                                      delay=wait, cause=cause))

    def _resumed(self, ctx: CallContext, reserved_at: float, wait: float
                 ) -> tuple[float, bool]:
        """After the wait reserved at ``reserved_at`` (``wait < 0``: refused; raise): now, and
        whether a pause came meanwhile, so that the call must reserve a fresh slot, one starting
        within ``max_wait`` of when it arrived (the latest it was willing to start)."""
        if wait < 0:
            raise self._reject(ctx, reserved_at, -wait)
        now = ctx.clock.now()
        return now, self._state.paused_for(now) > 0

    def _observe(self, ctx: CallContext, exc: BaseException) -> None:
        pause_on = self.pause_on
        if pause_on is not None:
            seconds = pause_on(exc)
            if seconds is not None and seconds > 0:
                self.cooldown(seconds, ctx)
                return
        if self.throttle is not None and self.throttle.on(exc):
            self.slow_down(ctx)

    # -- the pumps: sleep and call -----------------------------------------------------------------
    #
    # On the hot path (a free slot, nothing to recall) a call costs one clock read, one locked
    # reservation and one attribute read. A waiter gives its slot back on any interruption.

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        state, max_wait, observe, resumed = self._state, self.max_wait, self._observe, self._resumed
        # A state on a server (egress.stores.redis) may offer an awaitable reservation.
        reserve_async = getattr(state, "reserve_async", None)

        async def rate_limiter_step(ctx: CallContext, op: AsyncOp) -> Any:
            sent = arrived = ctx.clock.now()
            wait = (state.reserve(sent, max_wait, ctx.deadline) if reserve_async is None
                    else await reserve_async(sent, max_wait, ctx.deadline))
            while wait != 0.0:
                if wait > 0:
                    self._waiting(ctx, sent, wait)
                    try:
                        await ctx.clock.sleep(wait)
                    except BaseException:
                        state.refund(sent, wait)
                        raise
                sent, paused = resumed(ctx, sent, wait)
                if not paused:
                    break
                allowed = arrived + max_wait - sent
                wait = (state.reserve(sent, allowed, ctx.deadline) if reserve_async is None
                        else await reserve_async(sent, allowed, ctx.deadline))
            try:
                result = await inner(ctx, op)
            except Exception as exc:
                observe(ctx, exc)
                raise
            if state.throttle_level:
                state.calm(sent)
            return result

        return rate_limiter_step

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        state, max_wait, observe, resumed = self._state, self.max_wait, self._observe, self._resumed

        def rate_limiter_step(ctx: CallContext, op: SyncOp) -> Any:
            sent = arrived = ctx.clock.now()
            wait = state.reserve(sent, max_wait, ctx.deadline)
            while wait != 0.0:
                if wait > 0:
                    self._waiting(ctx, sent, wait)
                    try:
                        ctx.clock.sleep_sync(wait)
                    except BaseException:
                        state.refund(sent, wait)
                        raise
                sent, paused = resumed(ctx, sent, wait)
                if not paused:
                    break
                wait = state.reserve(sent, arrived + max_wait - sent, ctx.deadline)
            try:
                result = inner(ctx, op)
            except Exception as exc:
                observe(ctx, exc)
                raise
            if state.throttle_level:
                state.calm(sent)
            return result

        return rate_limiter_step
