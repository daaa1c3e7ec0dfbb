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
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from egress.events import sink_failures
from egress.observability._labels import status_class
from egress.observability._metrics import (
    DEFAULT_MAX_LABEL_VALUES,
    STATES,
    MetricsSink,
    Recorder,
)

__all__ = ["DURATION_BUCKETS", "PrometheusSink", "WAIT_BUCKETS"]

#: The bucket boundaries OpenTelemetry advises for request durations (seconds).
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                           7.5, 10.0)
#: Limiter waits: from a slot's share of a fast rate (ms) to a server's pause (seconds).
WAIT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                       10.0, 30.0, 60.0)


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
        self.limiter_wait = Histogram(
            "egress_rate_limit_wait_seconds",
            "Time calls waited for a rate limiter's slot, by limiter and cause: ours (its own "
            "rate) or server (a pause a server's hint put on it)", ["limiter", "cause"],
            buckets=WAIT_BUCKETS, registry=r)
        self.deadline = Counter("egress_deadline_exceeded", "Calls that ran out of deadline",
                                ["operation"], registry=r)
        self.outcome_unknown = Counter("egress_outcome_unknown",
                                       "Payment operations whose outcome is in doubt",
                                       ["operation"], registry=r)
        self.reconciled = Counter("egress_reconciled",
                                  "Payment operations settled by asking the provider",
                                  ["operation", "how"], registry=r)
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


class PrometheusSink(MetricsSink):
    """An :class:`~egress.events.EventSink` that keeps Prometheus metrics (opts in per call).

    ``max_label_values`` bounds each label's distinct values (operations, servers, breakers).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 max_label_values: int = DEFAULT_MAX_LABEL_VALUES) -> None:
        super().__init__(max_label_values=max_label_values)
        self.registry = REGISTRY if registry is None else registry
        self._m = _metrics_for(self.registry)

    # The hot path: the labelled children are resolved once per label set and bound into the
    # recorder (labels() takes a lock and builds a key each time it is called).

    def bind_attempt(self, operation: str, error: str | None,
                     http: tuple[str, str, int | None] | None, *, throttled: bool) -> Recorder:
        m = self._m
        attempts = m.attempts.labels(operation, error or "ok")
        if http is None and not throttled:
            return lambda duration: attempts.inc()
        duration_of = (None if http is None
                       else m.http_duration.labels(http[0], http[1], status_class(http[2])))
        limited = m.rate_limited.labels("server") if throttled else None

        def record(duration: float) -> None:
            attempts.inc()
            if duration_of is not None:
                duration_of.observe(duration)
            if limited is not None:
                limited.inc()

        return record

    def bind_call(self, operation: str, outcome: str) -> Recorder:
        return self._m.call_duration.labels(operation, outcome).observe

    def http_request(self, method: str, server: str, status: int | None, error: str | None,
                     duration: float) -> None:
        self._m.http_duration.labels(method, server, status_class(status)).observe(duration)

    def attempt(self, operation: str, outcome: str) -> None:
        self._m.attempts.labels(operation, outcome).inc()

    def call(self, operation: str, outcome: str, duration: float) -> None:
        self._m.call_duration.labels(operation, outcome).observe(duration)

    def retry(self, operation: str, reason: str) -> None:
        self._m.retries.labels(operation, reason).inc()

    def budget_exhausted(self, operation: str) -> None:
        self._m.budget.labels(operation).inc()

    def breaker_changed(self, breaker: str, old: str, new: str) -> None:
        m = self._m
        m.transitions.labels(breaker, old, new).inc()
        for state in STATES:
            m.breaker_state.labels(breaker, state).set(1.0 if state == new else 0.0)

    def rejected(self, reason: str) -> None:
        self._m.rejections.labels(reason).inc()

    def rate_limited(self, source: str) -> None:
        self._m.rate_limited.labels(source).inc()

    def limiter_wait(self, limiter: str, cause: str, seconds: float) -> None:
        self._m.limiter_wait.labels(limiter, cause).observe(seconds)

    def deadline_exceeded(self, operation: str) -> None:
        self._m.deadline.labels(operation).inc()

    def outcome_unknown(self, operation: str) -> None:
        self._m.outcome_unknown.labels(operation).inc()

    def replayed(self, operation: str) -> None:
        self._m.replays.labels(operation).inc()

    def reconciled(self, operation: str, how: str) -> None:
        self._m.reconciled.labels(operation, how).inc()

    def __repr__(self) -> str:
        return "PrometheusSink()"
