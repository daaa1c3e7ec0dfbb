"""The circuit breaker's pure state machine: windows, thresholds, transitions. No I/O.

Time comes in as arguments (``now``, ``start``, ``end``), events go to the sink of the context
handed in, and every mutation happens under one lock, so the same state can serve async tasks
and threads at once. The drivers in :mod:`egress.policies.breaker` only read the clock, call the
operation and report its outcome here.

How a call travels::

    gen = state.fast_gen                    # >= 0: calls pass without asking (CLOSED, ...)
    if gen < 0: gen = state.acquire(now)    # OPEN/HALF_OPEN/FORCED_OPEN: may raise
    ... call ...
    if gen != state.quiet_gen or end - start >= slow_call_duration:   # else: nothing to record
        state.on_success(gen, start, end)
    # or state.on_failure(...) / state.release(gen)

``gen`` is the *generation*: it changes on every transition, and an outcome reported with a stale
generation is ignored. So a slow call that started while CLOSED cannot count as a half-open
probe, and probes that finish after the half-open verdict change nothing.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from enum import StrEnum

from egress._pipeline import CallContext
from egress.errors import CircuitOpenError
from egress.events import CircuitRejected, CircuitStateChanged, CircuitThresholdExceeded

__all__ = ["BreakerSettings", "BreakerSnapshot", "BreakerState", "CircuitState"]

_NEVER = -2  # a generation no outcome ever carries
_SLOW = 2  # outcome bits in a count window: 1 = failed, 2 = slow


class CircuitState(StrEnum):
    """The states of a breaker. The three automatic ones, then the three set by hand."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """The validated numbers a state machine runs on (built by :class:`CircuitBreaker`)."""

    name: str
    failure_rate_threshold: float
    slow_call_duration: float
    slow_call_rate_threshold: float
    window_size: int  # calls (count window) or buckets (time window)
    window_seconds: float | None  # None: count window
    minimum_calls: int
    wait_in_open: float
    wait_multiplier: float
    max_wait_in_open: float
    half_open_calls: int
    max_wait_in_half_open: float | None

    def wait(self, opens: int) -> float:
        """How long OPEN lasts the ``opens``-th time in a row (1-based)."""
        growth = self.wait_multiplier ** min(opens - 1, 1000) if self.wait_multiplier > 1 else 1.0
        return min(self.max_wait_in_open, self.wait_in_open * growth)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerSnapshot:
    """A read-only view of a breaker, for status pages and tests.

    Rates are ``None`` while fewer than ``minimum_calls`` are in the window (not yet judged).
    In HALF_OPEN the counts are those of the trial calls.
    """

    name: str
    state: CircuitState
    failure_rate: float | None
    slow_call_rate: float | None
    calls: int
    failed_calls: int
    slow_calls: int
    not_permitted_calls: int
    retry_after: float | None
    consecutive_opens: int


class BreakerState:
    """Shared state of one named breaker. Subclasses own the sliding window."""

    __slots__ = (
        "_failed", "_fast_rec", "_fthr", "_gen", "_ho_done", "_ho_failed", "_ho_slots",
        "_ho_slow", "_ho_until", "_lock", "_min_calls", "_mode", "_n", "_name", "_open_until",
        "_opens", "_over", "_rec", "_rejected", "_slow", "_slow_dur", "_sthr", "fast_gen",
        "quiet_gen", "settings",
    )

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self._name = settings.name
        self._fthr = settings.failure_rate_threshold
        self._sthr = settings.slow_call_rate_threshold
        self._slow_dur = settings.slow_call_duration
        self._min_calls = settings.minimum_calls
        self._lock = threading.RLock()  # re-entrant: a sink may read snapshot() while we emit
        self._mode = CircuitState.CLOSED
        self._gen = 0
        #: generation callers may use without asking, or -1 (then they call acquire()).
        self.fast_gen = 0
        #: generation whose fast successes change nothing (a count window full of them), so
        #: drivers need not report them; _NEVER otherwise.
        self.quiet_gen = _NEVER
        self._rec = 0  # generation whose outcomes are recorded
        self._fast_rec = 0  # generation whose outcomes take the CLOSED fast path
        self._n = self._failed = self._slow = 0
        self._opens = 0
        self._open_until = 0.0
        self._ho_slots = self._ho_done = self._ho_failed = self._ho_slow = 0
        self._ho_until = math.inf
        self._rejected = 0
        self._over = False

    # -- the window (subclasses) -------------------------------------------------------------

    def _window_add(self, now: float, failed: bool, slow: bool) -> None:
        raise NotImplementedError

    def _window_reset(self) -> None:
        raise NotImplementedError

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        raise NotImplementedError

    # -- calls -------------------------------------------------------------------------------

    def acquire(self, now: float, ctx: CallContext) -> int:
        """Permission for one call when ``fast_gen`` said to ask: its generation, or raise."""
        with self._lock:
            mode = self._mode
            if mode is CircuitState.OPEN and now >= self._open_until:
                self._enter(CircuitState.HALF_OPEN, now, ctx)  # this caller is the first probe
                return self._gen
            if mode is CircuitState.HALF_OPEN and now >= self._ho_until:
                self._open(now, ctx)
                mode = CircuitState.OPEN
            if mode is CircuitState.HALF_OPEN and self._ho_slots > 0:
                self._ho_slots -= 1
                return self._gen
            if self.fast_gen >= 0:  # closed again since the caller looked
                return self.fast_gen
            retry_after = self._open_until - now if mode is CircuitState.OPEN else None
            self._rejected += 1
            ctx.sink.emit(CircuitRejected(operation=ctx.operation, at=now, breaker=self._name,
                                          retry_after=retry_after))
        raise CircuitOpenError(self._name, retry_after=retry_after)

    def release(self, gen: int) -> None:
        """The call ended without a verdict (cancelled, rejected downstream, ignored error)."""
        with self._lock:
            if gen == self._rec and self._mode is CircuitState.HALF_OPEN:
                self._ho_slots += 1

    def on_failure(self, gen: int, start: float, end: float, ctx: CallContext) -> None:
        with self._lock:
            if gen == self._rec:
                self._record(end, True, end - start >= self._slow_dur, ctx)

    def on_success(self, gen: int, start: float, end: float, ctx: CallContext) -> None:
        with self._lock:
            if gen == self._rec:
                self._record(end, False, end - start >= self._slow_dur, ctx)

    def _record(self, now: float, failed: bool, slow: bool, ctx: CallContext) -> None:
        if self._mode is CircuitState.HALF_OPEN:
            self._probe_done(now, failed, slow, ctx)
            return
        self._window_add(now, failed, slow)
        self._judge(now, ctx)

    def _judge(self, now: float, ctx: CallContext) -> None:
        """CLOSED: open when a rate reaches its threshold. METRICS_ONLY: say so, once."""
        n = self._n
        over = n >= self._min_calls and n > 0 and (
            self._failed / n >= self._fthr or self._slow / n >= self._sthr)
        if self._mode is CircuitState.CLOSED:
            if over:
                self._open(now, ctx)
        elif over != self._over:
            self._over = over
            if over:
                ctx.sink.emit(CircuitThresholdExceeded(
                    operation=ctx.operation, at=now, breaker=self._name,
                    failure_rate=self._failed / n, slow_call_rate=self._slow / n))

    def _probe_done(self, now: float, failed: bool, slow: bool, ctx: CallContext) -> None:
        if now >= self._ho_until:
            self._open(now, ctx)
            return
        self._ho_done += 1
        self._ho_failed += failed
        self._ho_slow += slow
        n = self.settings.half_open_calls
        left = n - self._ho_done
        # Decide as soon as the verdict over all n trial calls can no longer change.
        if self._ho_failed / n >= self._fthr or self._ho_slow / n >= self._sthr:
            self._open(now, ctx)
        elif (self._ho_failed + left) / n < self._fthr and (self._ho_slow + left) / n < self._sthr:
            self._enter(CircuitState.CLOSED, now, ctx)

    # -- transitions -------------------------------------------------------------------------

    def _rates(self) -> tuple[float | None, float | None]:
        if self._mode is CircuitState.HALF_OPEN:
            n, failed, slow = self._ho_done, self._ho_failed, self._ho_slow
        else:
            n, failed, slow = self._n, self._failed, self._slow
        if n == 0:
            return None, None
        return failed / n, slow / n

    def _open(self, now: float, ctx: CallContext) -> None:
        self._enter(CircuitState.OPEN, now, ctx)

    def _enter(self, new: CircuitState, now: float, ctx: CallContext) -> None:
        """Move to ``new`` and emit the one event for it. Called with the lock held."""
        old = self._mode
        failure_rate, slow_rate = self._rates()
        self._mode = new
        self._gen += 1
        gen = self._gen
        self.fast_gen = gen if new in (CircuitState.CLOSED, CircuitState.DISABLED,
                                       CircuitState.METRICS_ONLY) else -1
        self._rec = gen if new in (CircuitState.CLOSED, CircuitState.HALF_OPEN,
                                   CircuitState.METRICS_ONLY) else _NEVER
        self._fast_rec = gen if new is CircuitState.CLOSED else _NEVER
        if new is CircuitState.OPEN:
            self._opens += 1
            self._open_until = now + self.settings.wait(self._opens)
        elif new is CircuitState.HALF_OPEN:
            self._ho_slots = self.settings.half_open_calls - 1  # the caller takes the first
            self._ho_done = self._ho_failed = self._ho_slow = 0
            limit = self.settings.max_wait_in_half_open
            self._ho_until = math.inf if limit is None else now + limit
        elif new is not CircuitState.FORCED_OPEN:
            self._window_reset()
            self._over = False
            if new is not CircuitState.METRICS_ONLY:
                self._opens = 0
        if old is not new:
            ctx.sink.emit(CircuitStateChanged(
                operation=ctx.operation, at=now, breaker=self._name, old=old.value, new=new.value,
                failure_rate=failure_rate, slow_call_rate=slow_rate))

    def transition(self, new: CircuitState, now: float, ctx: CallContext) -> None:
        """A manual transition. Entering HALF_OPEN by hand reserves no trial slot."""
        with self._lock:
            self._enter(new, now, ctx)
            if new is CircuitState.HALF_OPEN:
                self._ho_slots += 1

    # -- reading -----------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self._mode

    def snapshot(self, now: float) -> BreakerSnapshot:
        with self._lock:
            mode = self._mode
            if mode is CircuitState.HALF_OPEN:
                calls, failed, slow = self._ho_done, self._ho_failed, self._ho_slow
                judged = calls > 0
            else:
                calls, failed, slow = self._window_totals(now)
                judged = calls >= self._min_calls and calls > 0
            retry_after = max(0.0, self._open_until - now) if mode is CircuitState.OPEN else None
            return BreakerSnapshot(
                name=self._name, state=mode,
                failure_rate=failed / calls if judged else None,
                slow_call_rate=slow / calls if judged else None,
                calls=calls, failed_calls=failed, slow_calls=slow,
                not_permitted_calls=self._rejected, retry_after=retry_after,
                consecutive_opens=self._opens)


class CountBreakerState(BreakerState):
    """The last ``window_size`` calls, one byte each in a ring (``_SLOW`` | failed)."""

    __slots__ = ("_buf", "_i", "_size")

    def __init__(self, settings: BreakerSettings) -> None:
        super().__init__(settings)
        self._size = settings.window_size
        self._buf = bytearray(self._size)
        self._i = 0

    def on_success(self, gen: int, start: float, end: float, ctx: CallContext) -> None:
        # The hot path. A full window of fast successes is unchanged by one more (it evicts an
        # identical entry, and where the ring starts does not matter when all entries are
        # equal), so the common case returns without the lock. Reading ``quiet_gen`` unlocked is
        # safe: a racing failure is then simply ordered after this success.
        if gen == self.quiet_gen and end - start < self._slow_dur:
            return
        lock = self._lock
        lock.acquire()
        try:
            if gen == self._fast_rec and end - start < self._slow_dur:
                i = self._i
                old = self._buf[i]
                if old:
                    self._buf[i] = 0
                    self._failed -= old & 1
                    self._slow -= old >> 1
                i += 1
                self._i = 0 if i == self._size else i
                n = self._n
                if n < self._size:
                    self._n = n = n + 1
                    if n == self._min_calls:
                        self._judge(end, ctx)
                if n == self._size and not self._failed and not self._slow:
                    self.quiet_gen = gen
            elif gen == self._rec:
                self._record(end, False, end - start >= self._slow_dur, ctx)
        finally:
            lock.release()

    def _window_add(self, now: float, failed: bool, slow: bool) -> None:
        outcome = failed | (_SLOW if slow else 0)
        i = self._i
        old = self._buf[i]
        self._buf[i] = outcome
        self._failed += (outcome & 1) - (old & 1)
        self._slow += (outcome >> 1) - (old >> 1)
        i += 1
        self._i = 0 if i == self._size else i
        if self._n < self._size:
            self._n += 1
        self.quiet_gen = _NEVER  # a failure or a slow call, or METRICS_ONLY: not clean

    def _window_reset(self) -> None:
        self._buf[:] = bytes(self._size)
        self._i = self._n = self._failed = self._slow = 0
        self.quiet_gen = _NEVER

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        return self._n, self._failed, self._slow


class TimeBreakerState(BreakerState):
    """The calls of the last ``window_seconds``, counted in ``window_size`` buckets.

    The window slides one bucket at a time; rolling forward clears at most every bucket once,
    so each call costs O(1) (bounded by the bucket count after a long silence).
    """

    __slots__ = ("_b", "_buckets", "_calls", "_epoch", "_fails", "_next_roll", "_slows", "_width")

    def __init__(self, settings: BreakerSettings) -> None:
        super().__init__(settings)
        assert settings.window_seconds is not None
        self._buckets = settings.window_size
        self._width = settings.window_seconds / self._buckets
        self._calls = [0] * self._buckets
        self._fails = [0] * self._buckets
        self._slows = [0] * self._buckets
        self._epoch = 0
        self._b = 0
        self._next_roll = -math.inf  # the first call positions the window

    def _roll(self, now: float) -> None:
        epoch = int(now // self._width)
        steps = min(epoch - self._epoch, self._buckets) if self._next_roll > -math.inf else (
            self._buckets)
        for step in range(1, steps + 1):
            b = (self._epoch + step) % self._buckets
            self._n -= self._calls[b]
            self._failed -= self._fails[b]
            self._slow -= self._slows[b]
            self._calls[b] = self._fails[b] = self._slows[b] = 0
        self._epoch = epoch
        self._b = epoch % self._buckets
        self._next_roll = (epoch + 1) * self._width

    def on_success(self, gen: int, start: float, end: float, ctx: CallContext) -> None:
        lock = self._lock
        lock.acquire()
        try:
            if gen == self._fast_rec and end - start < self._slow_dur:
                if end >= self._next_roll:
                    self._roll(end)
                self._calls[self._b] += 1
                self._n = n = self._n + 1
                if n == self._min_calls:
                    self._judge(end, ctx)
            elif gen == self._rec:
                self._record(end, False, end - start >= self._slow_dur, ctx)
        finally:
            lock.release()

    def _window_add(self, now: float, failed: bool, slow: bool) -> None:
        if now >= self._next_roll:
            self._roll(now)
        b = self._b
        self._calls[b] += 1
        self._n += 1
        if failed:
            self._fails[b] += 1
            self._failed += 1
        if slow:
            self._slows[b] += 1
            self._slow += 1

    def _window_reset(self) -> None:
        for series in (self._calls, self._fails, self._slows):
            series[:] = [0] * self._buckets
        self._n = self._failed = self._slow = 0

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        # Read-only: leave out the buckets that have slid out of the window by ``now``.
        if self._next_roll == -math.inf:
            return 0, 0, 0
        age = int(now // self._width) - self._epoch
        if age <= 0:
            return self._n, self._failed, self._slow
        calls, failed, slow = self._n, self._failed, self._slow
        for step in range(1, min(age, self._buckets) + 1):
            b = (self._epoch + step) % self._buckets
            calls -= self._calls[b]
            failed -= self._fails[b]
            slow -= self._slows[b]
        return calls, failed, slow
