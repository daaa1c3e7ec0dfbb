"""The resilience report an error carries: what the call went through, in one readable line.

A pipeline keeps the events of each call (they are emitted off the happy path only, so a call
that succeeds at once keeps nothing) and, when the call raises, attaches a :class:`CallReport`
as ``error.report`` and its one-line rendering as the first of the error's notes::

    egress report GET /v1/charges: #1 StatusError 503 sent=True; wait 0.210s (backoff);
    #2 TransportError sent=False; wait 1.000s (server hint); breaker http:api closed→open

Values come from events, which never carry secrets; the line is redacted all the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from egress.events import (
    AttemptFailed,
    AttemptSucceeded,
    AttemptTimedOut,
    BudgetExhausted,
    BulkheadRejected,
    CircuitRejected,
    CircuitStateChanged,
    DeadlineExceeded,
    Event,
    RateLimitPaused,
    RateLimitRejected,
    RetryExhausted,
    RetryGivenUp,
    RetryScheduled,
)

__all__ = ["CallReport"]

_SILENT = frozenset({"call.started", "call.finished", "attempt.started"})


def _seconds(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f" after {value:.3f}s"


def _part(event: Event) -> str | None:
    if isinstance(event, AttemptFailed):
        status = f" {event.status}" if event.status is not None else ""
        sent = f" sent={event.sent}" if event.sent is not None else ""
        return f"#{event.attempt} {event.error}{status}{sent}{_seconds(event.duration)}"
    if isinstance(event, AttemptSucceeded):
        status = f" {event.status}" if event.status is not None else ""
        return f"#{event.attempt} ok{status}{_seconds(event.duration)}"
    if isinstance(event, RetryScheduled):
        why = "server hint" if event.hinted else "backoff"
        return f"wait {event.delay:.3f}s ({why})"
    if isinstance(event, RetryExhausted):
        return f"retries exhausted after {event.attempts} attempt(s)"
    if isinstance(event, RetryGivenUp):
        return f"not retried ({event.reason})"
    if isinstance(event, BudgetExhausted):
        return "retry refused by the retry budget"
    if isinstance(event, CircuitStateChanged):
        return f"breaker {event.breaker} {event.old}→{event.new}"
    if isinstance(event, CircuitRejected):
        return f"breaker {event.breaker} open: refused"
    if isinstance(event, RateLimitRejected):
        return f"limiter {event.limiter} refused"
    if isinstance(event, RateLimitPaused):
        return f"limiter {event.limiter} paused by the server"
    if isinstance(event, BulkheadRejected):
        return f"bulkhead {event.bulkhead} full ({event.reason})"
    if isinstance(event, DeadlineExceeded):
        return f"deadline exceeded ({event.where})"
    if isinstance(event, AttemptTimedOut):
        return f"attempt timed out ({event.limit:.3f}s limit)"
    return None if event.kind in _SILENT else event.kind


@dataclass(frozen=True, slots=True)
class CallReport:
    """The events of one call that ended in an error, in order (``str()``: one line)."""

    operation: str
    events: Sequence[Event]

    def __str__(self) -> str:
        from egress.observability._redact import redact_text

        parts = [p for p in (_part(e) for e in self.events) if p]
        return redact_text(f"egress report {self.operation}: {'; '.join(parts)}")
