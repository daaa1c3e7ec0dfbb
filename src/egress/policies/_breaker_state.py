"""The circuit breaker's pure state machine: windows, thresholds, transitions.

No I/O, no events, no exceptions: time comes in as arguments (``now``, ``start``, ``end``) and
what happened comes out as data, as in h11. A method that changed something worth telling
returns a tuple of *notices* (:class:`StateChanged`, :class:`ThresholdExceeded`,
:class:`Refused`); the drivers in :mod:`egress.policies._breaker_pump` turn them into events
and, for a refusal, into :class:`~egress.errors.CircuitOpenError`. Nothing to tell is the empty
tuple (a constant: the success path allocates nothing). Every mutation happens under one lock,
so the same state can serve async tasks and threads at once.

How a call travels::

    gen = state.fast_gen                        # >= 0: calls pass without asking (CLOSED, ...)
    if gen < 0: gen, notices = state.acquire(now)   # OPEN/HALF_OPEN/FORCED_OPEN
    #            gen == REFUSED: the notices end with a Refused
    ... call ...
    if gen != state.quiet_gen or end - start >= slow_call_duration:   # else: nothing to record
        notices = state.on_success(gen, start, end)
    # or state.on_failure(...) / state.release(gen)

``gen`` is the *generation*: it changes on every transition, and an outcome reported with a stale
generation is ignored. So a slow call that started while CLOSED cannot count as a half-open
probe, and probes that finish after the half-open verdict change nothing.

This method surface (``fast_gen``, ``quiet_gen``, ``settings``, ``state``, ``acquire``,
``release``, ``on_success``, ``on_failure``, ``transition``, ``snapshot``) is what a store must
hand out for the kind ``"circuit_breaker"``.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "NO_NOTICES",
    "REFUSED",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitState",
    "CountBreakerState",
    "Notice",
    "Notices",
    "Refused",
    "StateChanged",
    "ThresholdExceeded",
    "TimeBreakerState",
]

_NEVER = -2  # a generation no outcome ever carries
REFUSED = -3  # the generation acquire() returns when the call may not pass
_SLOW = 2  # outcome bits in a count window: 1 = failed, 2 = slow


class CircuitState(StrEnum):
    """The states of a breaker. The three automatic ones, then the three set by hand."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


#: The states in which calls pass without asking; those whose outcomes are recorded.
_PASSING = frozenset({CircuitState.CLOSED, CircuitState.DISABLED, CircuitState.METRICS_ONLY})
_RECORDING = frozenset({CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.METRICS_ONLY})


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


# -- notices: what the state tells its drivers ------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The breaker moved from ``old`` to ``new`` at ``at`` (rates as they were judged)."""

    at: float
    old: CircuitState
    new: CircuitState
    failure_rate: float | None
    slow_call_rate: float | None


@dataclass(frozen=True, slots=True)
class ThresholdExceeded:
    """A METRICS_ONLY breaker's rates crossed a threshold (a live one would have opened)."""

    at: float
    failure_rate: float
    slow_call_rate: float


@dataclass(frozen=True, slots=True)
class Refused:
    """The call may not pass; ``retry_after``: when the next probe may (None: no promise)."""

    at: float
    retry_after: float | None


Notice = StateChanged | ThresholdExceeded | Refused
Notices = tuple[Notice, ...]
NO_NOTICES: Notices = ()


class BreakerState:
    """Shared state of one named breaker. Subclasses own the sliding window."""

    __slots__ = (
        "_calls", "_circuit", "_failed_calls", "_failure_rate_threshold", "_fast_recording_gen",
        "_generation", "_lock", "_minimum_calls", "_open_until", "_opens", "_over_threshold",
        "_probe_slots_left", "_probes_done", "_probes_failed", "_probes_slow", "_probing_until",
        "_recording_gen", "_refused", "_slow_call_duration", "_slow_calls",
        "_slow_rate_threshold", "fast_gen", "quiet_gen", "settings",
    )

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self._failure_rate_threshold = settings.failure_rate_threshold
        self._slow_rate_threshold = settings.slow_call_rate_threshold
        self._slow_call_duration = settings.slow_call_duration
        self._minimum_calls = settings.minimum_calls
        self._lock = threading.Lock()  # never held while anything outside this class runs
        self._circuit = CircuitState.CLOSED
        self._generation = 0
        #: generation callers may use without asking, or -1 (then they call acquire()).
        self.fast_gen = 0
        #: generation whose fast successes change nothing (a count window full of them), so
        #: drivers need not report them; _NEVER otherwise.
        self.quiet_gen = _NEVER
        self._recording_gen = 0  # generation whose outcomes are recorded
        self._fast_recording_gen = 0  # generation whose outcomes take the CLOSED fast path
        # The window's totals (CLOSED, METRICS_ONLY), kept up to date by the subclass.
        self._calls = self._failed_calls = self._slow_calls = 0
        self._opens = 0  # consecutive openings without closing: grows the wait
        self._open_until = 0.0
        # HALF_OPEN: trial slots not yet handed out, and the verdict so far.
        self._probe_slots_left = self._probes_done = self._probes_failed = self._probes_slow = 0
        self._probing_until = math.inf  # max_wait_in_half_open's limit
        self._refused = 0
        self._over_threshold = False  # METRICS_ONLY: whether the rates are over a threshold

    # -- the window (subclasses) -------------------------------------------------------------

    def _window_add(self, now: float, failed: bool, slow: bool) -> None:
        raise NotImplementedError

    def _window_reset(self) -> None:
        raise NotImplementedError

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        raise NotImplementedError

    # -- calls -------------------------------------------------------------------------------

    def acquire(self, now: float) -> tuple[int, Notices]:
        """Permission for one call when ``fast_gen`` said to ask: its generation, or
        :data:`REFUSED` (the notices then end with a :class:`Refused`)."""
        with self._lock:
            circuit = self._circuit
            if circuit is CircuitState.OPEN and now >= self._open_until:
                notices = self._enter(CircuitState.HALF_OPEN, now)  # the caller is the 1st probe
                return self._generation, notices
            notices = NO_NOTICES
            if circuit is CircuitState.HALF_OPEN and now >= self._probing_until:
                notices = self._enter(CircuitState.OPEN, now)
                circuit = CircuitState.OPEN
            if circuit is CircuitState.HALF_OPEN and self._probe_slots_left > 0:
                self._probe_slots_left -= 1
                return self._generation, notices
            if self.fast_gen >= 0:  # closed again since the caller looked
                return self.fast_gen, notices
            retry_after = self._open_until - now if circuit is CircuitState.OPEN else None
            self._refused += 1
            return REFUSED, (*notices, Refused(now, retry_after))

    def release(self, gen: int) -> None:
        """The call ended without a verdict (cancelled, rejected downstream, ignored error)."""
        with self._lock:
            if gen == self._recording_gen and self._circuit is CircuitState.HALF_OPEN:
                self._probe_slots_left += 1

    def on_failure(self, gen: int, start: float, end: float) -> Notices:
        with self._lock:
            return self._outcome(gen, start, end, True)

    def on_success(self, gen: int, start: float, end: float) -> Notices:
        with self._lock:
            return self._outcome(gen, start, end, False)

    def _outcome(self, gen: int, start: float, end: float, failed: bool) -> Notices:
        """Record an outcome of generation ``gen`` unless it is stale. Lock held."""
        if gen != self._recording_gen:
            return NO_NOTICES
        return self._record(end, failed, end - start >= self._slow_call_duration)

    def _record(self, now: float, failed: bool, slow: bool) -> Notices:
        if self._circuit is CircuitState.HALF_OPEN:
            return self._probe_done(now, failed, slow)
        self._window_add(now, failed, slow)
        return self._judge(now)

    def _over(self, calls: int, failed: int, slow: int) -> bool:
        return (failed / calls >= self._failure_rate_threshold
                or slow / calls >= self._slow_rate_threshold)

    def _judge(self, now: float) -> Notices:
        """CLOSED: open when a rate reaches its threshold. METRICS_ONLY: say so, once."""
        calls = self._calls
        over = calls >= self._minimum_calls and calls > 0 and self._over(
            calls, self._failed_calls, self._slow_calls)
        if self._circuit is CircuitState.CLOSED:
            return self._enter(CircuitState.OPEN, now) if over else NO_NOTICES
        if over == self._over_threshold:
            return NO_NOTICES
        self._over_threshold = over
        if not over:
            return NO_NOTICES
        return (ThresholdExceeded(now, self._failed_calls / calls, self._slow_calls / calls),)

    def _probe_done(self, now: float, failed: bool, slow: bool) -> Notices:
        if now >= self._probing_until:
            return self._enter(CircuitState.OPEN, now)
        self._probes_done += 1
        self._probes_failed += failed
        self._probes_slow += slow
        trials = self.settings.half_open_calls
        left = trials - self._probes_done
        # Decide as soon as the verdict over all the trial calls can no longer change.
        if self._over(trials, self._probes_failed, self._probes_slow):
            return self._enter(CircuitState.OPEN, now)
        if not self._over(trials, self._probes_failed + left, self._probes_slow + left):
            return self._enter(CircuitState.CLOSED, now)
        return NO_NOTICES

    # -- transitions -------------------------------------------------------------------------

    def _rates(self) -> tuple[float | None, float | None]:
        if self._circuit is CircuitState.HALF_OPEN:
            calls, failed, slow = self._probes_done, self._probes_failed, self._probes_slow
        else:
            calls, failed, slow = self._calls, self._failed_calls, self._slow_calls
        if calls == 0:
            return None, None
        return failed / calls, slow / calls

    def _enter(self, new: CircuitState, now: float) -> Notices:
        """Move to ``new``: one StateChanged notice unless it was there. Lock held."""
        old = self._circuit
        failure_rate, slow_rate = self._rates()
        self._circuit = new
        self._generation += 1
        gen = self._generation
        self.fast_gen = gen if new in _PASSING else -1
        self._recording_gen = gen if new in _RECORDING else _NEVER
        self._fast_recording_gen = gen if new is CircuitState.CLOSED else _NEVER
        if new is CircuitState.OPEN:
            self._opens += 1
            self._open_until = now + self.settings.wait(self._opens)
        elif new is CircuitState.HALF_OPEN:
            self._probe_slots_left = self.settings.half_open_calls - 1  # the caller takes one
            self._probes_done = self._probes_failed = self._probes_slow = 0
            limit = self.settings.max_wait_in_half_open
            self._probing_until = math.inf if limit is None else now + limit
        elif new is not CircuitState.FORCED_OPEN:
            self._window_reset()
            self._over_threshold = False
            if new is not CircuitState.METRICS_ONLY:
                self._opens = 0
        if old is new:
            return NO_NOTICES
        return (StateChanged(now, old, new, failure_rate, slow_rate),)

    def transition(self, new: CircuitState, now: float) -> Notices:
        """A manual transition. Entering HALF_OPEN by hand reserves no trial slot."""
        with self._lock:
            notices = self._enter(new, now)
            if new is CircuitState.HALF_OPEN:
                self._probe_slots_left += 1
            return notices

    # -- reading -----------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self._circuit

    def snapshot(self, now: float) -> BreakerSnapshot:
        with self._lock:
            circuit = self._circuit
            if circuit is CircuitState.HALF_OPEN:
                calls, failed, slow = self._probes_done, self._probes_failed, self._probes_slow
                judged = calls > 0
            else:
                calls, failed, slow = self._window_totals(now)
                judged = calls >= self._minimum_calls and calls > 0
            retry_after = (max(0.0, self._open_until - now) if circuit is CircuitState.OPEN
                           else None)
            return BreakerSnapshot(
                name=self.settings.name, state=circuit,
                failure_rate=failed / calls if judged else None,
                slow_call_rate=slow / calls if judged else None,
                calls=calls, failed_calls=failed, slow_calls=slow,
                not_permitted_calls=self._refused, retry_after=retry_after,
                consecutive_opens=self._opens)


class CountBreakerState(BreakerState):
    """The last ``window_size`` calls, one byte each in a ring (``_SLOW`` | failed)."""

    __slots__ = ("_capacity", "_next", "_outcomes")

    def __init__(self, settings: BreakerSettings) -> None:
        super().__init__(settings)
        self._capacity = settings.window_size
        self._outcomes = bytearray(self._capacity)
        self._next = 0  # the ring slot the next outcome overwrites

    def on_success(self, gen: int, start: float, end: float) -> Notices:
        # The hot path. A full window of fast successes is unchanged by one more (it evicts an
        # identical entry, and where the ring starts does not matter when all entries are
        # equal), so the common case returns without the lock. Reading ``quiet_gen`` unlocked is
        # safe: a racing failure is then simply ordered after this success.
        if gen == self.quiet_gen and end - start < self._slow_call_duration:
            return NO_NOTICES
        lock = self._lock
        lock.acquire()
        try:
            if gen != self._fast_recording_gen or end - start >= self._slow_call_duration:
                return self._outcome(gen, start, end, False)
            # CLOSED and fast: overwrite the oldest entry with a clean success.
            i = self._next
            old = self._outcomes[i]
            if old:
                self._outcomes[i] = 0
                self._failed_calls -= old & 1
                self._slow_calls -= old >> 1
            i += 1
            self._next = 0 if i == self._capacity else i
            calls = self._calls
            if calls < self._capacity:
                self._calls = calls = calls + 1
                if calls == self._minimum_calls:
                    return self._judge(end)
            if calls == self._capacity and not self._failed_calls and not self._slow_calls:
                self.quiet_gen = gen
            return NO_NOTICES
        finally:
            lock.release()

    def _window_add(self, now: float, failed: bool, slow: bool) -> None:
        outcome = failed | (_SLOW if slow else 0)
        i = self._next
        old = self._outcomes[i]
        self._outcomes[i] = outcome
        self._failed_calls += (outcome & 1) - (old & 1)
        self._slow_calls += (outcome >> 1) - (old >> 1)
        i += 1
        self._next = 0 if i == self._capacity else i
        if self._calls < self._capacity:
            self._calls += 1
        self.quiet_gen = _NEVER  # a failure or a slow call, or METRICS_ONLY: not clean

    def _window_reset(self) -> None:
        self._outcomes[:] = bytes(self._capacity)
        self._next = self._calls = self._failed_calls = self._slow_calls = 0
        self.quiet_gen = _NEVER

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        return self._calls, self._failed_calls, self._slow_calls


class TimeBreakerState(BreakerState):
    """The calls of the last ``window_seconds``, counted in ``window_size`` buckets.

    The window slides one bucket at a time; rolling forward clears at most every bucket once,
    so each call costs O(1) (bounded by the bucket count after a long silence).
    """

    __slots__ = ("_bucket", "_bucket_calls", "_bucket_count", "_bucket_failed", "_bucket_slow",
                 "_bucket_width", "_epoch", "_next_roll")

    def __init__(self, settings: BreakerSettings) -> None:
        super().__init__(settings)
        assert settings.window_seconds is not None
        self._bucket_count = settings.window_size
        self._bucket_width = settings.window_seconds / self._bucket_count
        self._bucket_calls = [0] * self._bucket_count
        self._bucket_failed = [0] * self._bucket_count
        self._bucket_slow = [0] * self._bucket_count
        self._epoch = 0  # the current bucket, in bucket widths since time 0
        self._bucket = 0  # its index in the ring
        self._next_roll = -math.inf  # the first call positions the window

    def _roll(self, now: float) -> None:
        epoch = int(now // self._bucket_width)
        count = self._bucket_count
        steps = min(epoch - self._epoch, count) if self._next_roll > -math.inf else count
        for step in range(1, steps + 1):
            b = (self._epoch + step) % count
            self._calls -= self._bucket_calls[b]
            self._failed_calls -= self._bucket_failed[b]
            self._slow_calls -= self._bucket_slow[b]
            self._bucket_calls[b] = self._bucket_failed[b] = self._bucket_slow[b] = 0
        self._epoch = epoch
        self._bucket = epoch % count
        self._next_roll = (epoch + 1) * self._bucket_width

    def on_success(self, gen: int, start: float, end: float) -> Notices:
        lock = self._lock
        lock.acquire()
        try:
            if gen != self._fast_recording_gen or end - start >= self._slow_call_duration:
                return self._outcome(gen, start, end, False)
            if end >= self._next_roll:  # CLOSED and fast: one more call in the current bucket
                self._roll(end)
            self._bucket_calls[self._bucket] += 1
            self._calls = calls = self._calls + 1
            return self._judge(end) if calls == self._minimum_calls else NO_NOTICES
        finally:
            lock.release()

    def _window_add(self, now: float, failed: bool, slow: bool) -> None:
        if now >= self._next_roll:
            self._roll(now)
        b = self._bucket
        self._bucket_calls[b] += 1
        self._calls += 1
        if failed:
            self._bucket_failed[b] += 1
            self._failed_calls += 1
        if slow:
            self._bucket_slow[b] += 1
            self._slow_calls += 1

    def _window_reset(self) -> None:
        for series in (self._bucket_calls, self._bucket_failed, self._bucket_slow):
            series[:] = [0] * self._bucket_count
        self._calls = self._failed_calls = self._slow_calls = 0

    def _window_totals(self, now: float) -> tuple[int, int, int]:
        # Read-only: leave out the buckets that have slid out of the window by ``now``.
        if self._next_roll == -math.inf:
            return 0, 0, 0
        age = int(now // self._bucket_width) - self._epoch
        if age <= 0:
            return self._calls, self._failed_calls, self._slow_calls
        calls, failed, slow = self._calls, self._failed_calls, self._slow_calls
        for step in range(1, min(age, self._bucket_count) + 1):
            b = (self._epoch + step) % self._bucket_count
            calls -= self._bucket_calls[b]
            failed -= self._bucket_failed[b]
            slow -= self._bucket_slow[b]
        return calls, failed, slow
