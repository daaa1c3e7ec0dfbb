"""What each event means as a metric, once, for every metrics backend (Prometheus, OTel).

A backend subclasses :class:`MetricsSink` and implements the recording methods; the mapping
from events to them, and the bounding of every label, live here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from egress.events import (
    AttemptFailed,
    AttemptSucceeded,
    BudgetExhausted,
    BulkheadRejected,
    CallFinished,
    CircuitRejected,
    CircuitStateChanged,
    DeadlineExceeded,
    Event,
    RateLimitRejected,
    Reconciled,
    RetryScheduled,
)
from egress.observability._labels import (
    OTHER,
    BoundedLabel,
    method_label,
    operation_template,
)

__all__ = ["DEFAULT_MAX_LABEL_VALUES", "STATES", "MetricsSink"]

DEFAULT_MAX_LABEL_VALUES: Final = 100
STATES: Final = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")
_MAX_OPERATION_CACHE: Final = 10_000


class MetricsSink:
    """Maps events to recording calls with bounded label values. Opts in to per-call events."""

    per_call = True

    def __init__(self, *, max_label_values: int = DEFAULT_MAX_LABEL_VALUES) -> None:
        self._operation = BoundedLabel(max_label_values)
        self._server = BoundedLabel(max_label_values)
        self._breaker = BoundedLabel(max_label_values)
        self._error = BoundedLabel(max_label_values)
        self._ops: dict[str, str] = {}

    def _op(self, operation: str) -> str:
        label = self._ops.get(operation)
        if label is None:
            label = self._operation(operation_template(operation))
            if len(self._ops) < _MAX_OPERATION_CACHE:
                self._ops[operation] = label
        return label

    def emit(self, event: Event) -> None:
        # One dict lookup by type, not a chain of isinstance: this runs several times per call.
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        elif event.kind == "payments.outcome_unknown":
            self.outcome_unknown(self._op(event.operation))
        elif event.kind == "idempotency.replayed":
            self.replayed(self._op(event.operation))
        elif isinstance(event, Reconciled):
            self.reconciled(self._op(event.operation), _how(event.how))

    def _attempt_ended(self, event: AttemptSucceeded | AttemptFailed) -> None:
        error = self._error(event.error) if isinstance(event, AttemptFailed) else None
        self.attempt(self._op(event.operation), error or "ok")
        if event.method is not None and event.server is not None:
            self.http_request(method_label(event.method), self._server(event.server),
                              event.status, error, event.duration)
        if error is not None and event.status == 429:
            self.rate_limited("server")

    def _call_finished(self, event: CallFinished) -> None:
        self.call(self._op(event.operation), event.outcome, event.duration)

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        self.retry(self._op(event.operation), "server_hint" if event.hinted else "backoff")

    def _budget_exhausted(self, event: BudgetExhausted) -> None:
        self.budget_exhausted(self._op(event.operation))

    def _breaker_changed(self, event: CircuitStateChanged) -> None:
        self.breaker_changed(self._breaker(event.breaker), _state(event.old), _state(event.new))

    def _rate_limit_rejected(self, event: RateLimitRejected) -> None:
        self.rejected("rate_limited")
        self.rate_limited("ours")

    def _deadline_exceeded(self, event: DeadlineExceeded) -> None:
        self.deadline_exceeded(self._op(event.operation))

    # -- recording: one method per metric family, implemented by each backend ---------------

    def http_request(self, method: str, server: str, status: int | None, error: str | None,
                     duration: float) -> None:
        """One physical HTTP request (an attempt) ended; ``status`` is ``None`` without an
        answer, ``error`` the error's type name when it failed."""

    def attempt(self, operation: str, outcome: str) -> None:
        """An attempt ended: ``outcome`` is ``ok`` or the error's type name."""

    def call(self, operation: str, outcome: str, duration: float) -> None:
        """A logical call ended."""

    def retry(self, operation: str, reason: str) -> None:
        """A retry was scheduled: ``reason`` is ``backoff`` or ``server_hint``."""

    def budget_exhausted(self, operation: str) -> None:
        """A retry budget refused a retry."""

    def breaker_changed(self, breaker: str, old: str, new: str) -> None:
        """A breaker changed state."""

    def rejected(self, reason: str) -> None:
        """A policy refused a call: ``circuit_open``, ``bulkhead_full`` or ``rate_limited``."""

    def rate_limited(self, source: str) -> None:
        """Rate limiting seen: ``ours`` (a local limiter refused) or ``server`` (a 429)."""

    def deadline_exceeded(self, operation: str) -> None:
        """A call ran out of deadline."""

    def outcome_unknown(self, operation: str) -> None:
        """A payment operation ended in doubt."""

    def replayed(self, operation: str) -> None:
        """The provider replayed an earlier answer to a reused key."""

    def reconciled(self, operation: str, how: str) -> None:
        """A payment operation was settled by asking the provider: ``found`` or ``absent``."""


def _how(value: str) -> str:
    return value if value in ("found", "absent") else OTHER


def _state(value: object) -> str:
    text = str(value)
    return text if text in STATES else OTHER


_HANDLERS: Final[dict[type[Event], Callable[[MetricsSink, Any], None]]] = {
    AttemptSucceeded: MetricsSink._attempt_ended,
    AttemptFailed: MetricsSink._attempt_ended,
    CallFinished: MetricsSink._call_finished,
    RetryScheduled: MetricsSink._retry_scheduled,
    BudgetExhausted: MetricsSink._budget_exhausted,
    CircuitStateChanged: MetricsSink._breaker_changed,
    CircuitRejected: lambda sink, event: sink.rejected("circuit_open"),
    BulkheadRejected: lambda sink, event: sink.rejected("bulkhead_full"),
    RateLimitRejected: MetricsSink._rate_limit_rejected,
    DeadlineExceeded: MetricsSink._deadline_exceeded,
}
