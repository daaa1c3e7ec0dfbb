"""Events as Prometheus metrics (the ``prometheus`` extra: ``pip install egress[prometheus]``).

>>> from prometheus_client import CollectorRegistry
>>> sink = PrometheusSink(registry=CollectorRegistry())     # default: the global registry
>>> client = ApiClient(url, sink=sink)                       # doctest: +SKIP

Names follow OpenTelemetry's HTTP client conventions where one exists
(``http.client.request.duration`` exposes as ``http_client_request_duration_seconds``, one
observation per physical request, labelled ``http_request_method``, ``server_address`` and
``status_class``); egress's own are prefixed ``egress_``. See ``docs/observability.md`` for the
table. Every label is bounded by construction (:mod:`egress.observability._labels`).

Several sinks (several clients) on one registry share one set of metrics. In a multi-process
server (gunicorn) use prometheus-client's ``PROMETHEUS_MULTIPROC_DIR`` mode: counters and
histograms aggregate across workers; the breaker state gauge is per process (``livesum`` is
not meaningful for it: read it per worker).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

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
    sink_failures,
)
from egress.observability._labels import (
    BoundedLabel,
    method_label,
    operation_template,
    status_class,
)

__all__ = ["DURATION_BUCKETS", "PrometheusSink"]

#: The bucket boundaries OpenTelemetry advises for request durations (seconds).
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                           7.5, 10.0)
DEFAULT_MAX_LABEL_VALUES: Final = 100
_STATES: Final = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")


class _SinkFailures(Collector):
    """``egress_sink_failures_total{sink}``: events a sink failed to take, read at scrape."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("egress_sink_failures", "Events an event sink raised on "
                                     "(dropped; the call went on)", labels=["sink"])
        for name, count in sorted(sink_failures().items()):
            family.add_metric([name], count)
        yield family


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.http_duration = Histogram(
            "http_client_request_duration_seconds",
            "Duration of HTTP client requests (each physical request, retries included)",
            ["http_request_method", "server_address", "status_class"],
            buckets=DURATION_BUCKETS, registry=r)
        self.call_duration = Histogram(
            "egress_call_duration_seconds", "Duration of logical calls, all attempts included",
            ["operation", "outcome"], buckets=DURATION_BUCKETS, registry=r)
        self.attempts = Counter("egress_attempts", "Attempts by outcome (ok or error type)",
                                ["operation", "outcome"], registry=r)
        self.retries = Counter("egress_retries", "Retries scheduled, by what set the delay",
                               ["operation", "reason"], registry=r)
        self.budget = Counter("egress_retry_budget_exhausted",
                              "Retries refused by a retry budget", ["operation"], registry=r)
        self.breaker_state = Gauge("egress_circuit_state",
                                   "1 for the state each breaker is in, else 0",
                                   ["breaker", "state"], registry=r)
        self.transitions = Counter("egress_circuit_transitions", "Breaker state changes",
                                   ["breaker", "from_state", "to_state"], registry=r)
        self.rejections = Counter("egress_rejections",
                                  "Calls refused by a policy before anything was sent",
                                  ["reason"], registry=r)
        self.rate_limited = Counter("egress_rate_limited",
                                    "Rate limiting by source: ours (local limiter) or server "
                                    "(429 answers)", ["source"], registry=r)
        self.deadline = Counter("egress_deadline_exceeded", "Calls that ran out of deadline",
                                ["operation"], registry=r)
        self.outcome_unknown = Counter("egress_outcome_unknown",
                                       "Payment operations whose outcome is in doubt",
                                       ["operation"], registry=r)
        self.replays = Counter("egress_idempotent_replays",
                               "Answers the provider replayed for a reused idempotency key",
                               ["operation"], registry=r)
        r.register(_SinkFailures())


_shared: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _metrics_for(registry: CollectorRegistry) -> _Metrics:
    with _shared_lock:
        metrics = _shared.get(registry)
        if metrics is None:
            metrics = _shared[registry] = _Metrics(registry)
        return metrics


class PrometheusSink:
    """An :class:`~egress.events.EventSink` that keeps Prometheus metrics (opts in per call).

    ``max_label_values`` bounds each label's distinct values (operations, servers, breakers).
    """

    per_call = True

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 max_label_values: int = DEFAULT_MAX_LABEL_VALUES) -> None:
        self.registry = REGISTRY if registry is None else registry
        self._m = _metrics_for(self.registry)
        self._operation = BoundedLabel(max_label_values)
        self._server = BoundedLabel(max_label_values)
        self._breaker = BoundedLabel(max_label_values)
        self._error = BoundedLabel(max_label_values)
        self._ops: dict[str, str] = {}

    def _op(self, operation: str) -> str:
        label = self._ops.get(operation)
        if label is None:
            label = self._operation(operation_template(operation))
            if len(self._ops) < 10_000:
                self._ops[operation] = label
        return label

    def emit(self, event: Event) -> None:
        m = self._m
        kind = event.kind
        if isinstance(event, AttemptSucceeded | AttemptFailed):
            failed = isinstance(event, AttemptFailed)
            outcome = self._error(event.error) if isinstance(event, AttemptFailed) else "ok"
            m.attempts.labels(self._op(event.operation), outcome).inc()
            if event.method is not None and event.server is not None:
                m.http_duration.labels(method_label(event.method), self._server(event.server),
                                       status_class(event.status)).observe(event.duration)
            if failed and event.status == 429:
                m.rate_limited.labels("server").inc()
        elif isinstance(event, CallFinished):
            m.call_duration.labels(self._op(event.operation), event.outcome).observe(
                event.duration)
        elif isinstance(event, RetryScheduled):
            m.retries.labels(self._op(event.operation),
                             "server_hint" if event.hinted else "backoff").inc()
        elif isinstance(event, BudgetExhausted):
            m.budget.labels(self._op(event.operation)).inc()
        elif isinstance(event, CircuitStateChanged):
            breaker = self._breaker(event.breaker)
            m.transitions.labels(breaker, _state(event.old), _state(event.new)).inc()
            for state in _STATES:
                m.breaker_state.labels(breaker, state).set(
                    1.0 if state == _state(event.new) else 0.0)
        elif isinstance(event, CircuitRejected):
            m.rejections.labels("circuit_open").inc()
        elif isinstance(event, BulkheadRejected):
            m.rejections.labels("bulkhead_full").inc()
        elif isinstance(event, RateLimitRejected):
            m.rejections.labels("rate_limited").inc()
            m.rate_limited.labels("ours").inc()
        elif isinstance(event, DeadlineExceeded):
            m.deadline.labels(self._op(event.operation)).inc()
        elif kind == "payments.outcome_unknown":
            m.outcome_unknown.labels(self._op(event.operation)).inc()
        elif kind == "idempotency.replayed":
            m.replays.labels(self._op(event.operation)).inc()

    def __repr__(self) -> str:
        return "PrometheusSink()"


def _state(value: Any) -> str:
    text = str(value)
    return text if text in _STATES else "_other"
