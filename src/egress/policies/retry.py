"""Retry: try again, but only when it cannot hurt.

* **What** is retried is always the caller's explicit choice (``on=``): exception types and/or
  predicates. There is no silent default of "everything". ``CancelledError``,
  ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` are never retried (they are not
  ``Exception``\\ s, and are never even offered to ``on``).
* **How** has safe defaults: exponential backoff with full jitter and a cap; a server's
  ``retry_after`` hint (carried by the error) replaces the computed delay, and a hint longer than
  ``max_retry_after`` ends the call at once, the error still carrying the hint.
* **When to stop** combines: ``stop=attempts(4) | elapsed(20.0)``. The call's deadline is always
  respected: no attempt starts after it, and a delay that would end after it fails at once with
  :class:`~egress.errors.DeadlineExceededError` instead of sleeping.
* A **budget** (:mod:`egress.policies.budget`) may refuse a retry; the original error is raised.
* **Nested retries** do not multiply: a Retry running inside another Retry's attempt makes a
  single attempt, unless built with ``allow_nested=True``.

When it gives up, the last error itself is re-raised, with a note listing attempts and delays.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from egress._pipeline import AsyncOp, AsyncStep, CallContext, SyncOp, SyncStep
from egress.errors import ConfigurationError, DeadlineExceededError
from egress.events import (
    BudgetExhausted,
    DeadlineExceeded,
    NestedRetrySuppressed,
    RetryExhausted,
    RetryGivenUp,
    RetryScheduled,
)
from egress.policies._classify import Classifier, matcher
from egress.policies.budget import BudgetState, RatioBudgetState, RetryBudget, TokenRetryBudget

__all__ = ["Backoff", "Jitter", "Retry", "Stop", "attempts", "elapsed"]

DEFAULT_ATTEMPTS = 3
DEFAULT_INITIAL = 0.1
DEFAULT_MULTIPLIER = 2.0
DEFAULT_CAP = 10.0
DEFAULT_MAX_RETRY_AFTER = 60.0


# ---------------------------------------------------------------------------------------------
# Stop conditions


class Stop:
    """A stop condition. Combine with ``|``: stop when any part says stop."""

    __slots__ = ()

    def should_stop(self, attempts_made: int, elapsed: float, next_delay: float) -> bool:
        raise NotImplementedError

    def __or__(self, other: Stop) -> Stop:
        if not isinstance(other, Stop):
            return NotImplemented
        return _AnyStop((*_parts(self), *_parts(other)))


def _parts(stop: Stop) -> tuple[Stop, ...]:
    return stop.parts if isinstance(stop, _AnyStop) else (stop,)


class attempts(Stop):
    """Stop once ``n`` attempts have been made (``n`` counts the first one)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"attempts: n must be an integer >= 1, got {n!r}")
        self.n = n

    def should_stop(self, attempts_made: int, elapsed: float, next_delay: float) -> bool:
        return attempts_made >= self.n

    def __repr__(self) -> str:
        return f"attempts({self.n})"


class elapsed(Stop):
    """Stop rather than start an attempt more than ``seconds`` after the first one started."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
            raise ConfigurationError(f"elapsed: seconds must be positive, got {seconds!r}")
        self.seconds = float(seconds)

    def should_stop(self, attempts_made: int, elapsed: float, next_delay: float) -> bool:
        return elapsed + next_delay > self.seconds

    def __repr__(self) -> str:
        return f"elapsed({self.seconds!r})"


class _AnyStop(Stop):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Stop, ...]) -> None:
        self.parts = parts

    def should_stop(self, attempts_made: int, elapsed: float, next_delay: float) -> bool:
        return any(p.should_stop(attempts_made, elapsed, next_delay) for p in self.parts)

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.parts)


# ---------------------------------------------------------------------------------------------
# Backoff


class Jitter(Enum):
    """How randomness spreads the retries of many clients (Brooker, AWS, 2015)."""

    NONE = "none"
    FULL = "full"  # uniform in [0, t]: least total work; the default
    EQUAL = "equal"  # t/2 + uniform in [0, t/2]
    DECORRELATED = "decorrelated"  # uniform in [initial, 3 × previous], capped


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff: ``t = min(cap, initial × multiplier^(n-1))`` for retry ``n``, jittered.

    ==============  =======  ===========================================
    setting         default  meaning
    ==============  =======  ===========================================
    ``initial``     0.1      seconds before the first retry (before jitter)
    ``multiplier``  2.0      growth per retry
    ``cap``         10.0     no delay is ever longer
    ``jitter``      FULL     NONE, FULL, EQUAL or DECORRELATED
    ==============  =======  ===========================================
    """

    initial: float = DEFAULT_INITIAL
    multiplier: float = DEFAULT_MULTIPLIER
    cap: float = DEFAULT_CAP
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        for name in ("initial", "multiplier", "cap"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"Backoff: {name} must be a finite number >= 0, "
                                         f"got {value!r}")
        if self.multiplier < 1:
            raise ConfigurationError(f"Backoff: multiplier must be >= 1, got {self.multiplier}")
        if self.cap < self.initial:
            raise ConfigurationError(f"Backoff: cap ({self.cap}) is below initial "
                                     f"({self.initial})")
        if not isinstance(self.jitter, Jitter):
            raise ConfigurationError(f"Backoff: jitter must be a Jitter, got {self.jitter!r}")

    def delay(self, retry: int, previous: float, rand: Callable[[], float]) -> float:
        """The delay before retry number ``retry`` (1-based). Pure given ``rand``."""
        if self.jitter is Jitter.DECORRELATED:
            low = self.initial
            high = max(low, previous * 3.0)
            return min(self.cap, low + rand() * (high - low))
        # Exponent clamped so a huge retry count cannot overflow a float.
        base = min(self.cap, self.initial * self.multiplier ** min(retry - 1, 1000))
        if self.jitter is Jitter.FULL:
            return base * rand()
        if self.jitter is Jitter.EQUAL:
            return base / 2.0 + rand() * base / 2.0
        return base


# ---------------------------------------------------------------------------------------------
# The policy


class Retry:
    """Retry failed attempts of an operation.

    =====================  =================  =============================================
    setting                default            meaning
    =====================  =================  =============================================
    ``on``                 (required)         exception types and/or predicates to retry
    ``stop``               ``attempts(3)``    when to stop; combine with ``|``
    ``backoff``            ``Backoff()``      0.1 s × 2^n, full jitter, capped at 10 s
    ``max_retry_after``    60.0               a longer server hint fails the call at once
    ``budget``             None               a RetryBudget or TokenRetryBudget
    ``allow_nested``       False              inside another Retry: retry too (multiplies!)
    ``random``             ``random.random``  source of jitter, returns [0, 1)
    =====================  =================  =============================================
    """

    __slots__ = ("_budget_state", "_retryable", "_rewarded", "allow_nested", "backoff",
                 "budget", "max_retry_after", "on", "random", "stop")

    def __init__(
        self,
        *,
        on: Classifier | Iterable[Classifier],
        stop: Stop | None = None,
        backoff: Backoff | None = None,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        budget: RetryBudget | TokenRetryBudget | None = None,
        allow_nested: bool = False,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.on = on
        self._retryable = matcher("Retry", "on", on, retryable=True)
        self.stop = stop if stop is not None else attempts(DEFAULT_ATTEMPTS)
        if not isinstance(self.stop, Stop):
            raise ConfigurationError(f"Retry: stop must be a Stop, got {self.stop!r}")
        self.backoff = backoff if backoff is not None else Backoff()
        if not math.isfinite(max_retry_after) or max_retry_after < 0:
            raise ConfigurationError(f"Retry: max_retry_after must be >= 0, "
                                     f"got {max_retry_after!r}")
        self.max_retry_after = float(max_retry_after)
        self.budget = budget
        self._budget_state: BudgetState | None = budget.state() if budget is not None else None
        # The state to tell of a first-attempt success, or None when that is a no-op (the ratio
        # budget only counts calls and retries): a clock read and a call less per success.
        self._rewarded = self._budget_state if (
            self._budget_state is not None
            and type(self._budget_state).record_success is not RatioBudgetState.record_success
        ) else None
        self.allow_nested = allow_nested
        self.random = random

    def __repr__(self) -> str:
        return f"Retry(stop={self.stop!r}, backoff={self.backoff!r}, budget={self.budget!r})"

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is one this Retry may retry (before stop, deadline and budget)."""
        return isinstance(exc, Exception) and self._retryable(exc)

    # -- decisions (shared by both pumps) -------------------------------------------------------
    #
    # The first attempt runs before any per-call state is allocated: the success path stays
    # cheap. ``_begin`` returns when the call started, or None for a nested Retry that makes a
    # single attempt; ``_failed`` builds the per-call state (``_Attempts``) at the first failure.

    def _begin(self, ctx: CallContext, record: bool = True) -> tuple[float | None, bool]:
        was_in_retry = ctx.in_retry
        if was_in_retry and not self.allow_nested:
            return None, True
        now = ctx.clock.now()
        if ctx.deadline is not None and ctx.deadline <= now:
            error = DeadlineExceededError(
                f"{ctx.operation}: deadline exceeded: no time left before the first attempt")
            ctx.sink.emit(DeadlineExceeded(operation=ctx.operation, at=now, budget=0.0,
                                           where="retry"))
            raise error
        if record and self._budget_state is not None:
            self._budget_state.record_call(now)
        ctx.in_retry = True
        ctx.attempt = 1
        return now, was_in_retry

    def _failed(self, ctx: CallContext, started: float | None, attempts: _Attempts | None,
                exc: Exception) -> _Attempts | None:
        """The call's state, to ask for the delay before the next attempt (None: re-raise)."""
        if started is None:  # a nested Retry: one attempt only
            if self._retryable(exc):
                ctx.sink.emit(NestedRetrySuppressed(operation=ctx.operation, at=ctx.clock.now()))
            return None
        return attempts if attempts is not None else _Attempts(self, ctx, started)

    def _succeeded(self, ctx: CallContext, started: float | None,
                   attempts: _Attempts | None) -> None:
        if attempts is not None:
            attempts.after_success()
        elif started is not None and self._rewarded is not None:
            self._rewarded.record_success(ctx.clock.now(), 0.0)

    # -- the pumps: call, sleep, count -----------------------------------------------------------

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        begin, failed, succeeded = self._begin, self._failed, self._succeeded
        # A budget whose state lives on a server may offer awaitable variants (the Redis one
        # does): the same decisions, without blocking the event loop on a round trip.
        record_async = getattr(self._budget_state, "record_call_async", None)

        async def retry_step(ctx: CallContext, op: AsyncOp) -> Any:
            started, was_in_retry = begin(ctx, record_async is None)
            attempts = None
            try:
                if record_async is not None and started is not None:
                    await record_async(started)
                while True:
                    try:
                        result = await inner(ctx, op)
                    except Exception as exc:
                        attempts = failed(ctx, started, attempts, exc)
                        delay = None if attempts is None else await attempts.after_failure_async(
                            exc)
                        if delay is None:
                            raise
                    else:
                        succeeded(ctx, started, attempts)
                        return result
                    await ctx.clock.sleep(delay)
                    ctx.attempt += 1
            finally:
                ctx.in_retry = was_in_retry

        return retry_step

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        begin, failed, succeeded = self._begin, self._failed, self._succeeded

        def retry_step(ctx: CallContext, op: SyncOp) -> Any:
            started, was_in_retry = begin(ctx)
            attempts = None
            try:
                while True:
                    try:
                        result = inner(ctx, op)
                    except Exception as exc:
                        attempts = failed(ctx, started, attempts, exc)
                        delay = None if attempts is None else attempts.after_failure(exc)
                        if delay is None:
                            raise
                    else:
                        succeeded(ctx, started, attempts)
                        return result
                    ctx.clock.sleep_sync(delay)
                    ctx.attempt += 1
            finally:
                ctx.in_retry = was_in_retry

        return retry_step


class _Attempts:
    """The pure decision state of one call under a Retry, created at its first failure."""

    __slots__ = ("budget", "ctx", "delays", "last_cost", "policy", "previous", "started")

    def __init__(self, policy: Retry, ctx: CallContext, started: float) -> None:
        self.policy = policy
        self.ctx = ctx
        self.started = started
        self.delays: list[float] = []
        self.previous = policy.backoff.initial
        self.last_cost = 0.0
        self.budget = policy._budget_state

    def after_success(self) -> None:
        if self.budget is not None:
            self.budget.record_success(self.ctx.clock.now(), self.last_cost)

    def after_failure(self, exc: Exception) -> float | None:
        """The delay before the next attempt, or ``None`` to re-raise ``exc`` now.

        May raise :class:`DeadlineExceededError` (from ``exc``) when the next attempt could not
        start before the deadline.
        """
        plan = self._plan(exc)
        budget = self.budget
        if plan is None or budget is None:
            return self._schedule(exc, plan, 0.0)
        return self._schedule(exc, plan, budget.try_retry(plan[0], isinstance(exc, TimeoutError)))

    async def after_failure_async(self, exc: Exception) -> float | None:
        """:meth:`after_failure`, awaiting the budget's ``try_retry_async`` when it has one."""
        ask = getattr(self.budget, "try_retry_async", None)
        if ask is None:
            return self.after_failure(exc)
        plan = self._plan(exc)
        if plan is None:
            return None
        return self._schedule(exc, plan, await ask(plan[0], isinstance(exc, TimeoutError)))

    def _plan(self, exc: Exception) -> tuple[float, int, float, bool] | None:
        """Everything before the budget: (now, attempts made, delay, hinted), or None to
        re-raise ``exc`` now."""
        policy = self.policy
        if not policy._retryable(exc):
            return None
        ctx = self.ctx
        now = ctx.clock.now()
        made = ctx.attempt
        spent = now - self.started
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and math.isfinite(hint) and hint >= 0:
            if hint > policy.max_retry_after:
                ctx.sink.emit(RetryGivenUp(operation=ctx.operation, at=now, attempts=made,
                                           reason="retry_after_too_long",
                                           error=type(exc).__name__))
                self._note(exc, f"server asked to wait {hint:.3f}s, more than max_retry_after "
                                f"({policy.max_retry_after:.3f}s)")
                return None
            delay = float(hint)
            hinted = True
        else:
            delay = policy.backoff.delay(made, self.previous, policy.random)
            hinted = False
        if policy.stop.should_stop(made, spent, delay):
            ctx.sink.emit(RetryExhausted(operation=ctx.operation, at=now, attempts=made,
                                         elapsed=spent, error=type(exc).__name__))
            self._note(exc, f"stopped by {policy.stop!r}")
            return None
        if ctx.deadline is not None and now + delay >= ctx.deadline:
            error = self._deadline(exc, f"the next attempt would start {delay:.3f}s from now, "
                                        f"after the deadline")
            if hinted:
                error.retry_after = delay
            raise error from exc
        return now, made, delay, hinted

    def _schedule(self, exc: Exception, plan: tuple[float, int, float, bool] | None,
                  cost: float | None) -> float | None:
        """The budget's verdict (``cost``, ignored without a budget) on a planned retry."""
        if plan is None:
            return None
        now, made, delay, hinted = plan
        ctx, policy = self.ctx, self.policy
        if self.budget is not None:
            if cost is None:
                ctx.sink.emit(BudgetExhausted(operation=ctx.operation, at=now,
                                              budget=getattr(policy.budget, "name", None) or "",
                                              attempts=made, error=type(exc).__name__))
                self._note(exc, "retry budget exhausted")
                return None
            self.last_cost = cost
        ctx.sink.emit(RetryScheduled(operation=ctx.operation, at=now, attempt=made, delay=delay,
                                     error=type(exc).__name__, hinted=hinted))
        self.delays.append(delay)
        self.previous = delay if delay > 0 else policy.backoff.initial
        return delay

    def _deadline(self, exc: Exception | None, why: str) -> DeadlineExceededError:
        ctx = self.ctx
        now = ctx.clock.now()
        budget = (ctx.deadline or now) - self.started
        ctx.sink.emit(DeadlineExceeded(operation=ctx.operation, at=now, budget=budget,
                                       where="retry"))
        error = DeadlineExceededError(f"{ctx.operation}: deadline exceeded: {why}")
        if exc is not None:
            self._note(error, f"last error: {type(exc).__name__}")
        return error

    def _note(self, exc: BaseException, why: str) -> None:
        delays = ", ".join(f"{d:.3f}s" for d in self.delays) or "none"
        exc.add_note(f"egress.Retry({self.ctx.operation}): {self.ctx.attempt} attempt(s) over "
                     f"{self.ctx.clock.now() - self.started:.3f}s, delays [{delays}]; {why}")
