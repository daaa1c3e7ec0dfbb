"""What each event means as a metric, once, for every metrics backend (Prometheus, OTel).

A backend subclasses :class:`MetricsSink` and implements the recording methods; the mapping
from events to them, and the bounding of every label, live here.
"""

from __future__ import annotations

from typing import Final

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
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            failed = isinstance(event, AttemptFailed)
            error = self._error(event.error) if isinstance(event, AttemptFailed) else None
            self.attempt(self._op(event.operation), error or "ok")
            if event.method is not None and event.server is not None:
                self.http_request(method_label(event.method), self._server(event.server),
                                  event.status, error, event.duration)
            if failed and event.status == 429:
                self.rate_limited("server")
        elif isinstance(event, CallFinished):
            self.call(self._op(event.operation), event.outcome, event.duration)
        elif isinstance(event, RetryScheduled):
            self.retry(self._op(event.operation), "server_hint" if event.hinted else "backoff")
        elif isinstance(event, BudgetExhausted):
            self.budget_exhausted(self._op(event.operation))
        elif isinstance(event, CircuitStateChanged):
            self.breaker_changed(self._breaker(event.breaker), _state(event.old),
                                 _state(event.new))
        elif isinstance(event, CircuitRejected):
            self.rejected("circuit_open")
        elif isinstance(event, BulkheadRejected):
            self.rejected("bulkhead_full")
        elif isinstance(event, RateLimitRejected):
            self.rejected("rate_limited")
            self.rate_limited("ours")
        elif isinstance(event, DeadlineExceeded):
            self.deadline_exceeded(self._op(event.operation))
        elif event.kind == "payments.outcome_unknown":
            self.outcome_unknown(self._op(event.operation))
        elif event.kind == "idempotency.replayed":
            self.replayed(self._op(event.operation))

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


def _state(value: object) -> str:
    text = str(value)
    return text if text in STATES else OTHER
