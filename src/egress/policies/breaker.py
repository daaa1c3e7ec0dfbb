"""CircuitBreaker: stop calling an upstream that is failing, and probe it before trusting it again.

The model is resilience4j's, the most complete there is:

* a **sliding window** of the last N calls (:class:`CountWindow`) or the last N seconds
  (:class:`TimeWindow`, bucketed), O(1) per call;
* it **opens** when the failure rate or the slow-call rate reaches its threshold, judged only
  once ``minimum_calls`` are in the window;
* **OPEN** rejects every call with :class:`~egress.errors.CircuitOpenError` (nothing is sent;
  ``retry_after`` says when the next probe may pass) for ``wait_in_open`` seconds, growing by
  ``wait_multiplier`` (capped at ``max_wait_in_open``) each time it re-opens without closing;
* **HALF_OPEN** lets exactly ``half_open_calls`` trial calls through, however many callers race;
  their failure and slow-call rates decide CLOSED or OPEN, as soon as the verdict is certain; an
  optional ``max_wait_in_half_open`` re-opens a breaker whose probes never finish;
* **manual states**: :meth:`~CircuitBreaker.force_open`, :meth:`~CircuitBreaker.disable`,
  :meth:`~CircuitBreaker.metrics_only` (records and emits, never rejects), and
  :meth:`~CircuitBreaker.reset` back to CLOSED.

What counts as a **failure** is in :func:`default_failure` (or what ``failure=`` says); anything
else the operation raises counts as a success (the upstream answered), except what is *ignored*:
cancellation and other ``BaseException``\\ s, every :class:`~egress.errors.RejectedError`
(nothing was sent), and the types or predicates given as ``ignore=``. Ignored calls free their
half-open slot. A cancellation at or after the call's deadline (an outer Timeout cutting a hung
call) is judged as a ``DeadlineExceededError``.

The state lives in a store under the breaker's name (:mod:`egress.stores`), so every breaker of
that name, in every pipeline, shares one window. Inside a :class:`~egress.Pipeline` the clock and
the sink come from the call context; used directly (``@breaker``) or by hand (``reset()``),
from the breaker's own ``clock`` and ``sink``.

Three rooms: this module is the policy (settings, classification, manual transitions);
:mod:`egress.policies._breaker_state` the pure state machine (decisions as data);
:mod:`egress.policies._breaker_pump` the async and sync drivers (events and raising);
:mod:`egress.policies.breaker_registry` breakers by name.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from egress._clock import SYSTEM_CLOCK, Clock
from egress._pipeline import AsyncStep, CallContext, SyncStep
from egress.errors import (
    ConfigurationError,
    DeadlineExceededError,
    RejectedError,
    ResponseError,
    StatusError,
    UpstreamError,
)
from egress.events import NULL_SINK, EventSink
from egress.events import guard as guarded
from egress.policies._breaker_pump import (
    FAILURE,
    IGNORE,
    SUCCESS,
    Gate,
    guard_async,
    guard_sync,
    report,
    step_async,
    step_sync,
)
from egress.policies._breaker_state import (
    BreakerSettings,
    BreakerSnapshot,
    BreakerState,
    CircuitState,
    CountBreakerState,
    TimeBreakerState,
)
from egress.policies._classify import Classifier, matcher
from egress.stores import MEMORY_STORE, StateStore
from egress.stores._protocol import shared_state

__all__ = [
    "BreakerSnapshot",
    "CircuitBreaker",
    "CircuitState",
    "CountWindow",
    "TimeWindow",
    "default_failure",
]

P = ParamSpec("P")
T = TypeVar("T")

# Defaults: resilience4j's, so that its documentation and intuitions carry over, except one.
DEFAULT_FAILURE_RATE_THRESHOLD = 0.5
#: Slow-call detection is opt-in: resilience4j's 60 s at a 100 % rate almost never fires (a call
#: that long usually fails by its own timeout, which counts), yet timing every call costs two
#: clock reads. Set a duration (and a rate) to open the circuit on slowness.
DEFAULT_SLOW_CALL_DURATION: float | None = None
DEFAULT_SLOW_CALL_RATE_THRESHOLD = 1.0
DEFAULT_WINDOW_SIZE = 100
DEFAULT_MINIMUM_CALLS = 100
DEFAULT_WAIT_IN_OPEN = 60.0
DEFAULT_WAIT_MULTIPLIER = 1.0
DEFAULT_MAX_WAIT_IN_OPEN = 300.0
DEFAULT_HALF_OPEN_CALLS = 10
DEFAULT_TIME_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class CountWindow:
    """Judge the last ``size`` calls."""

    size: int = DEFAULT_WINDOW_SIZE

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ConfigurationError(f"CountWindow: size must be an integer >= 1, "
                                     f"got {self.size!r}")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Judge the calls of the last ``seconds``, counted in ``buckets`` slices.

    The window slides one bucket (``seconds / buckets``) at a time.
    """

    seconds: float = 60.0
    buckets: int = DEFAULT_TIME_BUCKETS

    def __post_init__(self) -> None:
        if (isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float)
                or not math.isfinite(self.seconds) or self.seconds <= 0):
            raise ConfigurationError(f"TimeWindow: seconds must be positive and finite, "
                                     f"got {self.seconds!r}")
        if isinstance(self.buckets, bool) or not isinstance(self.buckets, int) or not (
                1 <= self.buckets <= 3600):
            raise ConfigurationError(f"TimeWindow: buckets must be an integer in 1..3600, "
                                     f"got {self.buckets!r}")


# ---------------------------------------------------------------------------------------------
# Classification

_COUNTED_RESPONSE_REASONS = frozenset({"truncated", "malformed"})


def default_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the upstream is unhealthy (the default of ``failure=``).

    Failures: transport errors (refused, reset, TLS, attempt timeouts), ``StatusError`` with a
    status >= 500, truncated or malformed answers, ``DeadlineExceededError`` (the upstream did
    not answer in the time the caller had), and foreign ``OSError``/``TimeoutError``. Not
    failures: 4xx answers (429 included: that is the rate limiter's business), oversized answers,
    refused redirects, and any other exception (a bug of the caller says nothing of the upstream).

    This layer knows no domain above it: an adapter whose own errors say "the provider is
    unhealthy" passes its classification in, for example
    ``failure=egress.payments.breaker.payment_failure`` around a ``PaymentService``.
    """
    if isinstance(exc, StatusError):
        return exc.status_code >= 500
    if getattr(exc, "permanent", False):  # a refused certificate is configuration, not outage
        return False
    if isinstance(exc, ResponseError):
        return getattr(exc, "reason", "malformed") in _COUNTED_RESPONSE_REASONS
    if isinstance(exc, UpstreamError | DeadlineExceededError):
        return True
    if isinstance(exc, RejectedError) or not isinstance(exc, Exception):
        return False
    return isinstance(exc, OSError | TimeoutError)


# ---------------------------------------------------------------------------------------------
# The policy


def _number(owner: str, name: str, value: object, *, low: float, high: float = math.inf,
            open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigurationError(f"{owner}: {name} must be a number, got {value!r}")
    if value < low or (open_low and value == low) or value > high:
        low_txt = f"> {low}" if open_low else f">= {low}"
        high_txt = f" and <= {high}" if high != math.inf else ""
        raise ConfigurationError(f"{owner}: {name} must be {low_txt}{high_txt}, got {value}")
    return float(value)


def count_setting(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{owner}: {name} must be an integer >= 1, got {value!r}")
    return value


class CircuitBreaker:
    """Fail fast while an upstream is failing; probe it before trusting it again.

    ===========================  ===================  ==========================================
    setting                      default              meaning
    ===========================  ===================  ==========================================
    ``name``                     (required)           names the breaker in events; shares state
    ``failure_rate_threshold``   0.5                  open when failed/calls reaches this
    ``slow_call_duration``       None (off)           a call this long (s) is slow; None: off
    ``slow_call_rate_threshold`` 1.0                  open when slow/calls reaches this
    ``window``                   ``CountWindow(100)`` or ``TimeWindow(seconds=60.0)``
    ``minimum_calls``            100                  no verdict with fewer calls in the window
    ``wait_in_open``             60.0                 seconds OPEN before the first probe
    ``wait_multiplier``          1.0                  growth of the wait at each re-opening
    ``max_wait_in_open``         300.0                cap of the growing wait
    ``half_open_calls``          10                   trial calls in HALF_OPEN
    ``max_wait_in_half_open``    None                 re-open if the verdict takes longer
    ``failure``                  ``default_failure``  types/predicates counted as failures
    ``ignore``                   ()                   types/predicates never counted at all
    ``store``                    ``MEMORY_STORE``     where the state lives; None: private
    ``clock``, ``sink``          system, none         for ``@breaker`` and manual transitions
    ===========================  ===================  ==========================================

    For a count window, ``minimum_calls`` above the window size is lowered to it. Breakers of
    the same name in the same store share one state, and must then share its settings.
    """

    __slots__ = ("_classify_exc", "_gate", "_own", "_state", "clock", "failure", "ignore", "name",
                 "settings", "sink", "store", "window")

    kind = "circuit_breaker"

    def __init__(
        self,
        name: str,
        *,
        failure_rate_threshold: float = DEFAULT_FAILURE_RATE_THRESHOLD,
        slow_call_duration: float | None = DEFAULT_SLOW_CALL_DURATION,
        slow_call_rate_threshold: float = DEFAULT_SLOW_CALL_RATE_THRESHOLD,
        window: CountWindow | TimeWindow | None = None,
        minimum_calls: int = DEFAULT_MINIMUM_CALLS,
        wait_in_open: float = DEFAULT_WAIT_IN_OPEN,
        wait_multiplier: float = DEFAULT_WAIT_MULTIPLIER,
        max_wait_in_open: float | None = None,
        half_open_calls: int = DEFAULT_HALF_OPEN_CALLS,
        max_wait_in_half_open: float | None = None,
        failure: Classifier | Iterable[Classifier] | None = None,
        ignore: Classifier | Iterable[Classifier] = (),
        store: StateStore | None = MEMORY_STORE,
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
    ) -> None:
        owner = "CircuitBreaker"
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{owner}: name must be a non-empty string, got {name!r}")
        window = CountWindow() if window is None else window
        if not isinstance(window, CountWindow | TimeWindow):
            raise ConfigurationError(f"{owner}: window must be a CountWindow or a TimeWindow, "
                                     f"got {window!r}")
        minimum = count_setting(owner, "minimum_calls", minimum_calls)
        if isinstance(window, CountWindow):
            minimum = min(minimum, window.size)
        wait = _number(owner, "wait_in_open", wait_in_open, low=0.0)
        if not math.isfinite(wait):
            raise ConfigurationError(f"{owner}: wait_in_open must be finite, got {wait}")
        cap = (max(DEFAULT_MAX_WAIT_IN_OPEN, wait) if max_wait_in_open is None
               else _number(owner, "max_wait_in_open", max_wait_in_open, low=wait))
        self.name = name
        self.window = window
        self.settings = BreakerSettings(
            name=name,
            failure_rate_threshold=_number(owner, "failure_rate_threshold",
                                           failure_rate_threshold, low=0.0, high=1.0,
                                           open_low=True),
            slow_call_duration=(
                math.inf if slow_call_duration is None else
                _number(owner, "slow_call_duration", slow_call_duration, low=0.0,
                        open_low=True)),
            slow_call_rate_threshold=_number(owner, "slow_call_rate_threshold",
                                             slow_call_rate_threshold, low=0.0, high=1.0,
                                             open_low=True),
            window_size=window.size if isinstance(window, CountWindow) else window.buckets,
            window_seconds=window.seconds if isinstance(window, TimeWindow) else None,
            minimum_calls=minimum,
            wait_in_open=wait,
            wait_multiplier=_number(owner, "wait_multiplier", wait_multiplier, low=1.0,
                                    high=1000.0),
            max_wait_in_open=cap,
            half_open_calls=count_setting(owner, "half_open_calls", half_open_calls),
            max_wait_in_half_open=(
                None if max_wait_in_half_open is None else
                _number(owner, "max_wait_in_half_open", max_wait_in_half_open, low=0.0,
                        open_low=True)),
        )
        self.failure = failure
        self.ignore = ignore
        is_failure = default_failure if failure is None else matcher(owner, "failure", failure)
        is_ignored = matcher(owner, "ignore", ignore)

        def classify(exc: BaseException) -> int:
            if not isinstance(exc, Exception) or isinstance(exc, RejectedError) or is_ignored(exc):
                return IGNORE
            return FAILURE if is_failure(exc) else SUCCESS

        self._classify_exc = classify
        self.store = store
        self.clock = clock
        self.sink = sink
        self._own = CallContext(name, clock, guarded(sink))
        if store is None:
            self._state = self._new_state()
        else:
            self._state = shared_state(owner, store, self.kind, name, self._new_state)
            if getattr(self._state, "settings", self.settings) != self.settings:
                raise ConfigurationError(
                    f"{owner}: a breaker named {name!r} already lives in this store with other "
                    f"settings; give this one another name or the same settings")
        self._gate = Gate(name, self._state, classify, self.settings.slow_call_duration)

    def _new_state(self) -> BreakerState:
        if self.settings.window_seconds is None:
            return CountBreakerState(self.settings)
        return TimeBreakerState(self.settings)

    def __repr__(self) -> str:
        return (f"CircuitBreaker({self.name!r}, state={self.state.value}, "
                f"failure_rate_threshold={self.settings.failure_rate_threshold}, "
                f"window={self.window!r})")

    # -- what callers and status pages read ----------------------------------------------------

    @property
    def state(self) -> CircuitState:
        return self._state.state

    def snapshot(self) -> BreakerSnapshot:
        """State, rates and counts now (by the breaker's own clock)."""
        return self._state.snapshot(self.clock.now())

    def classify(self, exc: BaseException) -> str:
        """``"failure"``, ``"success"`` or ``"ignored"``: how this breaker counts ``exc``."""
        return {IGNORE: "ignored", SUCCESS: "success", FAILURE: "failure"}[
            self._classify_exc(exc)]

    # -- manual transitions (events go to the breaker's own sink) ------------------------------

    def _transition(self, new: CircuitState) -> None:
        report(self.name, self._state.transition(new, self.clock.now()), self._own)

    def force_open(self) -> None:
        """Reject every call until :meth:`reset` (``retry_after`` is ``None``)."""
        self._transition(CircuitState.FORCED_OPEN)

    def disable(self) -> None:
        """Let every call through, recording nothing, until :meth:`reset`."""
        self._transition(CircuitState.DISABLED)

    def metrics_only(self) -> None:
        """Record and judge, emit ``CircuitThresholdExceeded``, but never reject (shadow mode)."""
        self._transition(CircuitState.METRICS_ONLY)

    def trip(self) -> None:
        """Open now, as if the failure rate had been reached (the wait then applies)."""
        self._transition(CircuitState.OPEN)

    def reset(self) -> None:
        """Back to CLOSED with an empty window and the open-wait growth forgotten."""
        self._transition(CircuitState.CLOSED)

    # -- drivers (:mod:`egress.policies._breaker_pump`) ----------------------------------------

    def wrap_async(self, inner: AsyncStep) -> AsyncStep:
        return step_async(self._gate, inner)

    def wrap_sync(self, inner: SyncStep) -> SyncStep:
        return step_sync(self._gate, inner)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Guard an async or a sync function directly, without a Pipeline (the cheapest way).

        Clock and sink are the breaker's own; there is no call context (no deadline).
        """
        guard = guard_async if inspect.iscoroutinefunction(fn) else guard_sync
        return functools.update_wrapper(guard(self._gate, fn, self._own), fn)


def __getattr__(name: str) -> Any:
    # ``egress.policies.breaker.BreakerRegistry`` still works: the registry has its own module
    # now, which imports this one (hence the lazy import).
    if name == "BreakerRegistry":
        from egress.policies.breaker_registry import BreakerRegistry

        return BreakerRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
