"""Events as OpenTelemetry spans and metrics (the ``otel`` extra: ``pip install egress[otel]``).

>>> sink = OpenTelemetrySink()            # the global tracer and meter providers
>>> client = ApiClient(url, sink=sink)     # doctest: +SKIP

Spans: one ``INTERNAL`` span per logical call (named after its operation), and a ``CLIENT``
child per attempt, named ``{method}`` for HTTP (semantic conventions: ``http.request.method``,
``server.address``, ``http.response.status_code``, ``error.type``, and
``http.request.resend_count`` on every resend). The attempt's W3C ``traceparent`` (through the
configured propagator) is added to the request the attempt sends. The call span is a child of
whatever span is current when the call starts.

Metrics: the same families as :mod:`egress.observability.prometheus`, through an OTel meter
(``http.client.request.duration`` in seconds, ``egress.*`` for the rest).

Only ``opentelemetry-api`` is needed; bring your own SDK and exporters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Final

from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from egress import __version__
from egress._pipeline import current_context
from egress.events import (
    AttemptFailed,
    AttemptStarted,
    AttemptSucceeded,
    CallFinished,
    CallStarted,
    Event,
)
from egress.observability._metrics import (
    DEFAULT_MAX_LABEL_VALUES,
    STATES,
    MetricsSink,
    Recorder,
)

__all__ = ["OpenTelemetrySink"]

_CALL: Final = "otel.call"
_ATTEMPT: Final = "otel.attempt"
_PARENT: Final = "otel.parent"
_UNSAMPLED: Final = "otel.unsampled"
_ERROR: Final = Status(StatusCode.ERROR)
_SERVER: Final = {"source": "server"}
#: Attribute mappings cached per sink; attempts past this number are not cached.
_MAX_CACHE: Final = 10_000
_MAX_ATTEMPT_KEY: Final = 16
_SPAN_ONLY: Final = frozenset({CallStarted, AttemptStarted})
_WAIT_BUCKETS: Final = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0, 60.0]
_BUCKETS: Final = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                   10.0]


class OpenTelemetrySink(MetricsSink):
    """Spans per call and attempt, and metrics, from egress's events (opts in per call)."""

    per_call_starts = True  # a span starts with each

    def __init__(self, *, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None,
                 max_label_values: int = DEFAULT_MAX_LABEL_VALUES) -> None:
        super().__init__(max_label_values=max_label_values)
        self._tracer = trace.get_tracer("egress", __version__, tracer_provider)
        meter = metrics.get_meter("egress", __version__, meter_provider)
        self._http = meter.create_histogram(
            "http.client.request.duration", unit="s",
            description="Duration of HTTP client requests",
            explicit_bucket_boundaries_advisory=_BUCKETS)
        self._call = meter.create_histogram("egress.call.duration", unit="s",
                                            description="Duration of logical calls",
                                            explicit_bucket_boundaries_advisory=_BUCKETS)
        self._wait = meter.create_histogram(
            "egress.rate_limit.wait", unit="s",
            description="Time calls waited for a rate limiter's slot (cause: ours, server)",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS)
        self._counters = {name: meter.create_counter(f"egress.{name}", description=text)
                          for name, text in (
            ("attempts", "Attempts by outcome"),
            ("retries", "Retries scheduled, by reason"),
            ("retry_budget.exhausted", "Retries refused by a retry budget"),
            ("circuit.transitions", "Breaker state changes"),
            ("rejections", "Calls refused by a policy"),
            ("rate_limited", "Rate limiting by source (ours, server)"),
            ("deadline_exceeded", "Calls that ran out of deadline"),
            ("outcome_unknown", "Payment operations in doubt"),
            ("idempotent_replays", "Provider replays of a reused key"),
            ("reconciled", "Payment operations settled by asking the provider"),
        )}
        self._attributes: dict[object, Attributes] = {}
        self._states: dict[str, str] = {}
        self._states_lock = threading.Lock()
        meter.create_observable_gauge("egress.circuit.state", callbacks=[self._observe_states],
                                      description="1 for the state each breaker is in")

    # -- spans ------------------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        if event.per_call:
            self._trace(event)
            if type(event) in _SPAN_ONLY:
                return  # a start: a span, and no metric
        super().emit(event)

    def _trace(self, event: Event) -> None:
        ctx = current_context()
        if ctx is None or ctx.operation != event.operation:
            return  # not emitted from inside its call: no span to hang it on
        observed = ctx.observed
        if observed is None:
            observed = ctx.observed = {}
        kind = type(event)
        if kind is AttemptStarted:
            self._attempt_started(event, observed)  # type: ignore[arg-type]
        elif kind is AttemptSucceeded or kind is AttemptFailed:
            span = observed.pop(_ATTEMPT, None)
            observed.pop("headers", None)
            if span is not None:
                _end(span, event)  # type: ignore[arg-type]
        elif kind is CallStarted:
            name = self._op(event.operation)  # the bounded, redacted template (cached)
            span = self._tracer.start_span(name, kind=SpanKind.INTERNAL,
                                           attributes=self._call_attributes(name))
            observed[_CALL] = span
            parent = observed[_PARENT] = trace.set_span_in_context(span)  # for every attempt
            if not span.is_recording():
                # Sampled out: the attempts' spans would not be recorded either, so none is
                # started; each attempt sends the call's context (its trace id and the
                # not-sampled flag are all a server needs to follow the decision).
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=parent)
                observed[_UNSAMPLED] = carrier
        elif kind is CallFinished:
            span = observed.pop(_CALL, None)
            observed.pop(_PARENT, None)
            if observed.pop(_UNSAMPLED, None) is not None:
                observed.pop("headers", None)
                if span is not None:
                    span.end()
            elif span is not None:
                _finish(span, event)  # type: ignore[arg-type]

    def _call_attributes(self, name: str) -> Attributes:
        found = self._attributes.get(name)
        if found is None:
            found = self._cached(name, {"egress.operation": name})
        return found

    def _cached(self, key: object, attributes: dict[str, Any]) -> Attributes:
        # The SDK copies the attributes it is given: one mapping serves every span.
        if len(self._attributes) < _MAX_CACHE:
            self._attributes[key] = attributes
        return attributes

    def _attempt_started(self, event: AttemptStarted, observed: dict[str, Any]) -> None:
        unsampled = observed.get(_UNSAMPLED)
        if unsampled is not None:  # the call was sampled out: no span, its context on the wire
            if event.method is not None:
                observed["headers"] = unsampled
            return
        if event.attempt < _MAX_ATTEMPT_KEY:
            key = (event.method, event.server, event.attempt)
            attributes = self._attributes.get(key)
            if attributes is None:
                attributes = self._cached(key, _attempt_attributes(event))
        else:
            attributes = _attempt_attributes(event)
        span = self._tracer.start_span(event.method or self._op(event.operation),
                                       context=observed.get(_PARENT), kind=SpanKind.CLIENT,
                                       attributes=attributes)
        observed[_ATTEMPT] = span
        if event.method is not None:
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            observed["headers"] = carrier

    # -- metrics ----------------------------------------------------------------------------

    def bind_attempt(self, operation: str, error: str | None,
                     http: tuple[str, str, int | None] | None, *, throttled: bool) -> Recorder:
        # Attribute mappings built once per label set (the SDK keys its aggregation on them).
        add = self._counters["attempts"].add
        counted = {"operation": operation, "outcome": error or "ok"}
        if http is None and not throttled:
            return lambda duration: add(1, counted)
        timed = None if http is None else _http_attributes(*http, error)
        record_http = self._http.record
        limited = self._counters["rate_limited"].add if throttled else None

        def record(duration: float) -> None:
            add(1, counted)
            if timed is not None:
                record_http(duration, timed)
            if limited is not None:
                limited(1, _SERVER)

        return record

    def bind_call(self, operation: str, outcome: str) -> Recorder:
        record_call = self._call.record
        attributes = {"operation": operation, "outcome": outcome}
        return lambda duration: record_call(duration, attributes)

    def http_request(self, method: str, server: str, status: int | None, error: str | None,
                     duration: float) -> None:
        self._http.record(duration, _http_attributes(method, server, status, error))

    def attempt(self, operation: str, outcome: str) -> None:
        self._counters["attempts"].add(1, {"operation": operation, "outcome": outcome})

    def call(self, operation: str, outcome: str, duration: float) -> None:
        self._call.record(duration, {"operation": operation, "outcome": outcome})

    def retry(self, operation: str, reason: str) -> None:
        self._counters["retries"].add(1, {"operation": operation, "reason": reason})

    def budget_exhausted(self, operation: str) -> None:
        self._counters["retry_budget.exhausted"].add(1, {"operation": operation})

    def breaker_changed(self, breaker: str, old: str, new: str) -> None:
        self._counters["circuit.transitions"].add(
            1, {"breaker": breaker, "from_state": old, "to_state": new})
        with self._states_lock:
            self._states[breaker] = new

    def rejected(self, reason: str) -> None:
        self._counters["rejections"].add(1, {"reason": reason})

    def rate_limited(self, source: str) -> None:
        self._counters["rate_limited"].add(1, {"source": source})

    def limiter_wait(self, limiter: str, cause: str, seconds: float) -> None:
        self._wait.record(seconds, {"limiter": limiter, "cause": cause})

    def deadline_exceeded(self, operation: str) -> None:
        self._counters["deadline_exceeded"].add(1, {"operation": operation})

    def outcome_unknown(self, operation: str) -> None:
        self._counters["outcome_unknown"].add(1, {"operation": operation})

    def replayed(self, operation: str) -> None:
        self._counters["idempotent_replays"].add(1, {"operation": operation})

    def reconciled(self, operation: str, how: str) -> None:
        self._counters["reconciled"].add(1, {"operation": operation, "how": how})

    def _observe_states(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._states_lock:
            current = dict(self._states)
        return [Observation(1 if state == now else 0, {"breaker": breaker, "state": state})
                for breaker, now in current.items() for state in STATES]

    def __repr__(self) -> str:
        return "OpenTelemetrySink()"


def _attempt_attributes(event: AttemptStarted) -> dict[str, Any]:
    attributes: dict[str, Any] = {"egress.attempt": event.attempt}
    if event.method is not None:
        attributes["http.request.method"] = event.method
    if event.server is not None:
        attributes["server.address"] = event.server
    if event.attempt > 1:
        attributes["http.request.resend_count"] = event.attempt - 1
    return attributes


def _http_attributes(method: str, server: str, status: int | None,
                     error: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"http.request.method": method, "server.address": server}
    if status is not None:
        attributes["http.response.status_code"] = status
    if error is not None:
        attributes["error.type"] = str(status) if status is not None else error
    return attributes


def _end(span: Span, event: AttemptSucceeded | AttemptFailed) -> None:
    # One set_attributes call, not several set_attribute: each takes the span's lock.
    if type(event) is AttemptSucceeded:
        if event.status is not None:
            span.set_attribute("http.response.status_code", event.status)
        span.end()
        return
    assert isinstance(event, AttemptFailed)
    attributes: dict[str, Any] = {
        "error.type": str(event.status) if event.status is not None else event.error}
    if event.status is not None:
        attributes["http.response.status_code"] = event.status
    if event.sent is not None:
        attributes["egress.sent"] = event.sent
    span.set_attributes(attributes)
    span.set_status(_ERROR)
    span.end()


def _finish(span: Span, event: CallFinished) -> None:
    attributes: dict[str, Any] = {"egress.attempts": event.attempts,
                                  "egress.outcome": event.outcome}
    if event.error is not None:
        attributes["error.type"] = event.error
        span.set_attributes(attributes)
        span.set_status(_ERROR)
    else:
        span.set_attributes(attributes)
    span.end()
