"""The limiter-wait metric: how long calls waited for a rate limiter's slot, by limiter and cause
(ours: its own rate; server: a pause a server's hint put on it), read back from a real
``CollectorRegistry`` and from the OTel SDK's in-memory reader. A fake clock: nothing sleeps."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from egress import Pipeline, RateLimiter
from egress.events import FanOutSink
from egress.observability.otel import OpenTelemetrySink
from egress.observability.prometheus import PrometheusSink
from egress.stores.memory import MemoryStore
from egress.testing import FakeClock


def drive(sink: Any, clock: FakeClock, name: str = "stripe") -> None:
    """Three calls at 10/s with a burst of 1 (two wait 0.1 s each: ours), then a server pause
    of 2 s (the next call waits it out: server)."""
    limiter = RateLimiter(10, burst=1, max_wait=5.0, name=name, store=MemoryStore(), clock=clock,
                          sink=sink)
    pipeline = Pipeline(limiter, clock=clock, sink=sink)
    for _ in range(3):
        pipeline.run_sync(lambda: None)
    limiter.cooldown(2.0)
    pipeline.run_sync(lambda: None)


def test_prometheus_histogram_by_limiter_and_cause() -> None:
    registry = CollectorRegistry()
    drive(PrometheusSink(registry=registry), FakeClock())

    def sample(suffix: str, cause: str) -> float | None:
        return registry.get_sample_value(f"egress_rate_limit_wait_seconds_{suffix}",
                                         {"limiter": "stripe", "cause": cause})

    assert sample("count", "ours") == 2
    assert sample("sum", "ours") == pytest.approx(0.2, abs=0.01)
    assert sample("count", "server") == 1
    assert sample("sum", "server") == pytest.approx(2.0, abs=0.11)


def test_otel_histogram_by_limiter_and_cause() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    drive(OpenTelemetrySink(meter_provider=provider), FakeClock())
    data = reader.get_metrics_data()
    assert data is not None
    found = {(dict(p.attributes)["cause"], p.count, round(p.sum, 1))
             for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
             if m.name == "egress.rate_limit.wait" for p in m.data.data_points
             if dict(p.attributes)["limiter"] == "stripe"}
    assert found == {("ours", 2, 0.2), ("server", 1, 2.0)}
    provider.shutdown()


def test_limiter_labels_are_bounded_and_masked() -> None:
    registry = CollectorRegistry()
    sink = FanOutSink([PrometheusSink(registry=registry, max_label_values=3)])
    clock = FakeClock()
    for i in range(6):
        drive(sink, clock, name=f"limiter-{i} card 4242424242424242")
    limiters = {s.labels["limiter"] for metric in registry.collect()
                if metric.name == "egress_rate_limit_wait_seconds" for s in metric.samples}
    assert len(limiters) == 3 + 1  # the bound, and "_other"
    assert "_other" in limiters
    assert not [v for v in limiters if "4242424242424242" in v]
