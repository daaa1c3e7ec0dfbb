"""What each event means as a metric, once, for every metrics backend (Prometheus, OTel).

A backend subclasses :class:`MetricsSink` and implements the recording methods; the mapping
from events to them, and the bounding of every label, live here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from egress.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    BudgetExhausted,
    BulkheadRejected,
    CallFinished,
    CallStarted,
    CircuitRejected,
    CircuitStateChanged,
    DeadlineExceeded,
    Event,
    RateLimitRejected,
    RateLimitWaited,
    Reconciled,
    RetryScheduled,
)
from egress.observability._labels import (
    OTHER,
    BoundedLabel,
    method_label,
    operation_template,
)
from egress.observability._redact import redact_text

__all__ = ["DEFAULT_MAX_LABEL_VALUES", "STATES", "MetricsSink", "Recorder"]

DEFAULT_MAX_LABEL_VALUES: Final = 100
STATES: Final = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")
#: Raw values remembered per sink (operation names, bound recorders); past it, work is redone.
_MAX_CACHE: Final = 10_000

#: Records one duration (seconds) under labels fixed when it was bound.
Recorder = Callable[[float], None]


class MetricsSink:
    """Maps events to recording calls with bounded label values. Opts in to per-call events.

    The two events of every call (an attempt ended, the call ended) are the hot path: the
    labels they map to are worked out once per distinct set of raw values and *bound* into a
    recorder (:meth:`bind_attempt`, :meth:`bind_call`), so that a repeated call costs one dict
    lookup and the backend's own recording. Everything else is off the happy path.
    """

    per_call = True
    #: No metric starts with a call or an attempt: the pipeline need not build those events.
    per_call_starts = False

    def __init__(self, *, max_label_values: int = DEFAULT_MAX_LABEL_VALUES) -> None:
        self._operation = BoundedLabel(max_label_values)
        self._server = BoundedLabel(max_label_values)
        self._breaker = BoundedLabel(max_label_values)
        self._error = BoundedLabel(max_label_values)
        self._limiter = BoundedLabel(max_label_values)
        self._ops: dict[str, str] = {}
        self._limiters: dict[str, str] = {}
        self._bound: dict[tuple[Any, ...], Recorder] = {}

    def _op(self, operation: str) -> str:
        label = self._ops.get(operation)
        if label is None:
            label = self._operation(operation_template(operation))
            if len(self._ops) < _MAX_CACHE:
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
        error = event.error if type(event) is AttemptFailed else None
        key = (event.operation, event.method, event.server, event.status, error)
        record = self._bound.get(key)
        if record is None:
            record = self._keep(key, self._bind_attempt(event, error))
        record(event.duration)

    def _bind_attempt(self, event: AttemptSucceeded | AttemptFailed,
                      error: str | None) -> Recorder:
        label = None if error is None else self._error(error)
        http = None
        if event.method is not None and event.server is not None:
            http = (method_label(event.method), self._server(event.server), event.status)
        return self.bind_attempt(self._op(event.operation), label, http,
                                 throttled=label is not None and event.status == 429)

    def _call_finished(self, event: CallFinished) -> None:
        key = (event.operation, event.outcome)
        record = self._bound.get(key)
        if record is None:
            record = self._keep(key, self.bind_call(self._op(event.operation), event.outcome))
        record(event.duration)

    def _keep(self, key: tuple[Any, ...], record: Recorder) -> Recorder:
        if len(self._bound) < _MAX_CACHE:  # past the bound: correct, only slower
            self._bound[key] = record
        return record

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        self.retry(self._op(event.operation), "server_hint" if event.hinted else "backoff")

    def _budget_exhausted(self, event: BudgetExhausted) -> None:
        self.budget_exhausted(self._op(event.operation))

    def _breaker_changed(self, event: CircuitStateChanged) -> None:
        self.breaker_changed(self._breaker(event.breaker), _state(event.old), _state(event.new))

    def _rate_limit_rejected(self, event: RateLimitRejected) -> None:
        self.rejected("rate_limited")
        self.rate_limited("ours")

    def _rate_limit_waited(self, event: RateLimitWaited) -> None:
        cause = event.cause if event.cause in ("ours", "server") else OTHER
        label = self._limiters.get(event.limiter)
        if label is None:  # a limiter's name is the caller's text: masked like an operation
            label = self._limiter(redact_text(event.limiter)[:120])
            if len(self._limiters) < _MAX_CACHE:
                self._limiters[event.limiter] = label
        self.limiter_wait(label, cause, event.delay)

    def _deadline_exceeded(self, event: DeadlineExceeded) -> None:
        self.deadline_exceeded(self._op(event.operation))

    # -- binding: the hot path's recorders; a backend may override them to resolve its
    # -- instruments and attributes once

    def bind_attempt(self, operation: str, error: str | None,
                     http: tuple[str, str, int | None] | None, *, throttled: bool) -> Recorder:
        """A recorder of an attempt's duration, for these labels: ``error`` is the error type
        (``None``: it succeeded), ``http`` is ``(method, server, status)`` of an HTTP attempt,
        ``throttled`` a 429 answer (rate limited by the server)."""
        outcome = error or "ok"

        def record(duration: float) -> None:
            self.attempt(operation, outcome)
            if http is not None:
                self.http_request(*http, error, duration)
            if throttled:
                self.rate_limited("server")

        return record

    def bind_call(self, operation: str, outcome: str) -> Recorder:
        """A recorder of a logical call's duration, for these labels."""
        return functools.partial(self.call, operation, outcome)

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

    def limiter_wait(self, limiter: str, cause: str, seconds: float) -> None:
        """A call waited ``seconds`` for a limiter's slot before going on: ``cause`` is
        ``ours`` (the limiter's own rate) or ``server`` (a pause a server's hint put on it)."""

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
    RateLimitWaited: MetricsSink._rate_limit_waited,
    DeadlineExceeded: MetricsSink._deadline_exceeded,
    # No metric starts with a call or an attempt: dropped at the first lookup.
    CallStarted: lambda sink, event: None,
    AttemptStarted: lambda sink, event: None,
}
