"""Observability is data: policies emit frozen events to a sink.

Every event has a stable dotted ``kind`` (``"retry.scheduled"``), the ``operation`` it concerns
and ``at``, the clock time it happened. Log, metric and trace sinks subscribe by implementing
:class:`EventSink`; policies never log directly. Events are emitted off the happy path only
(a retry, a rejection, a state change), so a sink costs nothing on calls that succeed.

Events never carry secrets: errors are described by their type name, not their message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

__all__ = [
    "AttemptTimedOut",
    "BudgetExhausted",
    "BulkheadRejected",
    "CallbackSink",
    "CircuitRejected",
    "CircuitStateChanged",
    "CircuitThresholdExceeded",
    "DeadlineExceeded",
    "Event",
    "EventSink",
    "FanOutSink",
    "InsecureTransport",
    "NULL_SINK",
    "NestedRetrySuppressed",
    "NullSink",
    "RateLimitPaused",
    "RateLimitRejected",
    "RedirectFollowed",
    "RetryExhausted",
    "RetryGivenUp",
    "RetryScheduled",
    "TokenRefreshed",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``kind`` is the stable name sinks and dashboards key on."""

    kind: ClassVar[str] = "event"
    operation: str
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryScheduled(Event):
    """An attempt failed with a retryable error; the next starts after ``delay`` seconds."""

    kind: ClassVar[str] = "retry.scheduled"
    attempt: int
    delay: float
    error: str
    hinted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryExhausted(Event):
    """The stop condition ended the retries; the last error is re-raised."""

    kind: ClassVar[str] = "retry.exhausted"
    attempts: int
    elapsed: float
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryGivenUp(Event):
    """A retryable error was not retried for a reason other than the stop condition.

    ``reason`` is ``"retry_after_too_long"`` (the server's hint exceeded ``max_retry_after``).
    """

    kind: ClassVar[str] = "retry.given_up"
    attempts: int
    reason: str
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NestedRetrySuppressed(Event):
    """A Retry inside another Retry's attempt ran a single attempt instead of multiplying."""

    kind: ClassVar[str] = "retry.nested_suppressed"


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetExhausted(Event):
    """A retry was refused by the retry budget; the original error is re-raised."""

    kind: ClassVar[str] = "retry.budget_exhausted"
    budget: str
    attempts: int
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineExceeded(Event):
    """The overall deadline passed, or the next backoff would end after it."""

    kind: ClassVar[str] = "deadline.exceeded"
    budget: float
    where: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptTimedOut(Event):
    """One attempt ran past its own time limit and was cancelled."""

    kind: ClassVar[str] = "timeout.attempt"
    limit: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitStateChanged(Event):
    """A breaker moved between states (``closed``, ``open``, ``half_open``, ...). Once each."""

    kind: ClassVar[str] = "circuit.state_changed"
    breaker: str
    old: str
    new: str
    failure_rate: float | None = None
    slow_call_rate: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitRejected(Event):
    """A call was refused because the breaker is open or its trial slots are taken."""

    kind: ClassVar[str] = "circuit.rejected"
    breaker: str
    retry_after: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitThresholdExceeded(Event):
    """A METRICS_ONLY breaker's rates reached a threshold: a live breaker would have opened.

    Emitted once each time the rates cross from below to above (shadow-mode rollouts).
    """

    kind: ClassVar[str] = "circuit.threshold_exceeded"
    breaker: str
    failure_rate: float | None
    slow_call_rate: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadRejected(Event):
    """A call was refused: no free slot and no room (or time) in the queue."""

    kind: ClassVar[str] = "bulkhead.rejected"
    bulkhead: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitRejected(Event):
    """A call was refused because no token could be had within the allowed wait."""

    kind: ClassVar[str] = "ratelimit.rejected"
    limiter: str
    retry_after: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitPaused(Event):
    """A limiter was paused by a server hint (429 + Retry-After) until ``until`` (clock time)."""

    kind: ClassVar[str] = "ratelimit.paused"
    limiter: str
    until: float


@dataclass(frozen=True, slots=True, kw_only=True)
class InsecureTransport(Event):
    """An HTTP client was built with certificate verification off (``verify=False``, acknowledged).

    ``operation`` is the client's base URL origin.
    """

    kind: ClassVar[str] = "http.insecure_transport"


@dataclass(frozen=True, slots=True, kw_only=True)
class RedirectFollowed(Event):
    """An HTTP client followed a redirect; ``cross_origin`` means credentials were stripped."""

    kind: ClassVar[str] = "http.redirect_followed"
    status: int
    cross_origin: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRefreshed(Event):
    """An HTTP client fetched a new OAuth2 token; ``after_401`` when the server refused the old."""

    kind: ClassVar[str] = "http.token_refreshed"
    after_401: bool


@runtime_checkable
class EventSink(Protocol):
    """Receives events. Must be cheap and must not raise (a failing sink is a bug of the sink)."""

    def emit(self, event: Event) -> None: ...


class NullSink:
    """Drops every event: the default."""

    __slots__ = ()

    def emit(self, event: Event) -> None:
        return None

    def __repr__(self) -> str:
        return "NullSink()"


NULL_SINK = NullSink()


class CallbackSink:
    """Calls a function with each event."""

    __slots__ = ("_callback",)

    def __init__(self, callback: Callable[[Event], object]) -> None:
        self._callback = callback

    def emit(self, event: Event) -> None:
        self._callback(event)


class FanOutSink:
    """Delivers each event to several sinks, in order."""

    __slots__ = ("_sinks",)

    def __init__(self, sinks: Iterable[EventSink]) -> None:
        self._sinks = tuple(sinks)

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            sink.emit(event)
