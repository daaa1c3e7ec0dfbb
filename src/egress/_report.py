"""The resilience report of a call: what it went through, in one readable line.

A pipeline keeps the events of each call (they are emitted off the happy path only, so a call
that succeeds at once keeps nothing). When the call raises, a :class:`CallReport` is attached
as ``error.report`` and its one-line rendering as the first of the error's notes::

    egress report GET /v1/charges: #1 StatusError 503 sent=True; wait 0.210s (backoff);
    #2 TransportError sent=False; wait 1.000s (server hint); breaker http:api closed→open

A result that is an object of a :class:`Reported` class (``egress.http.Response``) carries
``.report`` too, built only when read: the call keeps a reference to its context, nothing more.

Values come from events, which never carry secrets; the line is redacted all the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

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
    RateLimitWaited,
    RetryExhausted,
    RetryGivenUp,
    RetryScheduled,
)

if TYPE_CHECKING:
    from egress._pipeline import CallContext

__all__ = ["CallReport", "Reported"]

_SILENT: Final = frozenset({"call.started", "call.finished", "attempt.started"})


def _seconds(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f" after {value:.3f}s"


def _attempt(event: AttemptSucceeded | AttemptFailed) -> str:
    status = f" {event.status}" if event.status is not None else ""
    if isinstance(event, AttemptSucceeded):
        return f"#{event.attempt} ok{status}{_seconds(event.duration)}"
    sent = f" sent={event.sent}" if event.sent is not None else ""
    return f"#{event.attempt} {event.error}{status}{sent}{_seconds(event.duration)}"


def _waited(event: RateLimitWaited) -> str:
    why = "server pause" if event.cause == "server" else "limiter"
    return f"wait {event.delay:.3f}s ({why} {event.limiter})"


# How each kind reads in the line; a kind not listed reads as its name.
_PARTS: Final[dict[type[Event], Callable[[Any], str]]] = {
    AttemptFailed: _attempt,
    AttemptSucceeded: _attempt,
    RetryScheduled: lambda e: f"wait {e.delay:.3f}s ({'server hint' if e.hinted else 'backoff'})",
    RateLimitWaited: _waited,
    RetryExhausted: lambda e: f"retries exhausted after {e.attempts} attempt(s)",
    RetryGivenUp: lambda e: f"not retried ({e.reason})",
    BudgetExhausted: lambda e: "retry refused by the retry budget",
    CircuitStateChanged: lambda e: f"breaker {e.breaker} {e.old}→{e.new}",
    CircuitRejected: lambda e: f"breaker {e.breaker} open: refused",
    RateLimitRejected: lambda e: f"limiter {e.limiter} refused",
    RateLimitPaused: lambda e: f"limiter {e.limiter} paused by the server",
    BulkheadRejected: lambda e: f"bulkhead {e.bulkhead} full ({e.reason})",
    DeadlineExceeded: lambda e: f"deadline exceeded ({e.where})",
    AttemptTimedOut: lambda e: f"attempt timed out ({e.limit:.3f}s limit)",
}


def _part(event: Event) -> str | None:
    render = _PARTS.get(type(event))
    if render is not None:
        return render(event)
    return None if event.kind in _SILENT else event.kind


@dataclass(frozen=True, slots=True)
class CallReport:
    """The events of one call, in order (``str()``: one line).

    ``ok`` marks a call that returned; ``attempts`` is the number of its last attempt (``0``
    when unknown). A call that returned without per-call events kept no ``attempt.succeeded``:
    its line ends with ``#N ok`` all the same.
    """

    operation: str
    events: Sequence[Event]
    ok: bool = False
    attempts: int = 0

    @classmethod
    def of(cls, ctx: CallContext, *, ok: bool = False) -> CallReport:
        """The report of the call ``ctx`` describes."""
        return cls(ctx.operation, tuple(ctx.log or ()), ok, ctx.attempt)

    def __str__(self) -> str:
        from egress.observability._redact import redact_text

        parts = [p for p in (_part(e) for e in self.events) if p]
        if self.ok and not any(type(e) is AttemptSucceeded for e in self.events):
            parts.append(f"#{max(self.attempts, 1)} ok")
        return redact_text(f"egress report {self.operation}: {'; '.join(parts)}")


class Reported:
    """A result that can say what its call went through: ``.report``, built when read.

    The pipeline that returns it sets one reference (its call's context); a result never read
    for its report costs that store and nothing else.
    """

    __slots__ = ("_egress_call",)
    _egress_call: CallContext

    @property
    def report(self) -> CallReport | None:
        """What the call that returned this went through (``None``: not from a pipeline)."""
        ctx: CallContext | None = getattr(self, "_egress_call", None)
        return None if ctx is None else CallReport.of(ctx, ok=True)
