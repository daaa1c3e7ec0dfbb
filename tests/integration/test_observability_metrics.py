"""PrometheusSink against a real ApiClient and a loopback server, read back from a registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _loopback import LoopbackServer, Reply
from prometheus_client import CollectorRegistry

from egress import (
    Backoff,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    Pipeline,
    RateLimitedError,
    RateLimiter,
    Retry,
    StatusError,
    attempts,
)
from egress.events import Event, FanOutSink
from egress.http import ApiClient, retry_on
from egress.observability.prometheus import PrometheusSink

FAST = Backoff(initial=0.001, cap=0.005)
PLANTED = ("sk_live_51Hplanted", "tok-planted-xyz", "4242424242424242", "o-secret-9f8e7d6c")


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def test_requests_retries_and_the_breaker_are_counted(server: LoopbackServer) -> None:
    server.clear()
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry)
    breaker = CircuitBreaker("upstream", window=CountWindow(4), minimum_calls=4,
                             wait_in_open=60.0, store=None, sink=sink)
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(2)), breaker,
                        sink=sink)
    server.script("/v1/flaky", Reply(503), Reply(200))
    server.script("/v1/down", *[Reply(503)] * 4)
    async with ApiClient(server.url + "/v1", pipeline=pipeline, sink=sink) as client:
        await client.get("/flaky")
        with pytest.raises(StatusError):  # two more failures: 3 of 4 calls failed, it opens
            await client.get("/down")
        with pytest.raises(CircuitOpenError):
            await client.get("/down")

    ok = {"http_request_method": "GET", "server_address": "127.0.0.1"}
    assert value(registry, "http_client_request_duration_seconds_count",
                 **ok, status_class="2xx") == 1
    assert value(registry, "http_client_request_duration_seconds_count",
                 **ok, status_class="5xx") == 3
    assert value(registry, "egress_attempts_total", operation="GET /flaky",
                 outcome="StatusError") == 1
    assert value(registry, "egress_attempts_total", operation="GET /flaky", outcome="ok") == 1
    assert value(registry, "egress_retries_total", operation="GET /flaky",
                 reason="backoff") == 1
    assert value(registry, "egress_call_duration_seconds_count", operation="GET /down",
                 outcome="error") == 1
    assert value(registry, "egress_call_duration_seconds_count", operation="GET /down",
                 outcome="rejected") == 1
    assert value(registry, "egress_circuit_state", breaker="upstream", state="open") == 1
    assert value(registry, "egress_circuit_state", breaker="upstream", state="closed") == 0
    assert value(registry, "egress_circuit_transitions_total", breaker="upstream",
                 from_state="closed", to_state="open") == 1
    assert value(registry, "egress_rejections_total", reason="circuit_open") == 1


async def test_server_and_local_rate_limiting_are_told_apart(server: LoopbackServer) -> None:
    server.clear()
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry)
    limiter = RateLimiter(1000, max_wait=0.05, sink=sink)
    pipeline = Pipeline(limiter, sink=sink)
    server.script("/v1/busy", Reply(429, headers={"Retry-After": "30"}))
    async with ApiClient(server.url + "/v1", pipeline=pipeline, rate_limiter=limiter,
                         sink=sink) as client:
        with pytest.raises(StatusError):
            await client.get("/busy")
        with pytest.raises(RateLimitedError):  # the server's hint paused our limiter
            await client.get("/busy")
    assert value(registry, "egress_rate_limited_total", source="server") == 1
    assert value(registry, "egress_rate_limited_total", source="ours") == 1


async def test_labels_are_bounded_and_hold_no_secret(server: LoopbackServer) -> None:
    server.clear()
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, max_label_values=5)
    async with ApiClient(server.url + "/v1", sink=sink,
                         pipeline=Pipeline(sink=sink)) as client:
        for i in range(20):  # ids in paths, secrets in queries: never a label
            await client.get(f"/orders/o-secret-9f8e7d6c{i}",
                             params={"api_key": "sk_live_51Hplanted",
                                     "card": "4242424242424242"})
            await client.get("/x", operation=f"custom-{i}")
    labels = [v for metric in registry.collect() for s in metric.samples
              for v in s.labels.values()]
    for secret in PLANTED:
        assert not [v for v in labels if secret in v], secret
    operations = {v for metric in registry.collect() if metric.name == "egress_attempts"
                  for s in metric.samples for k, v in s.labels.items() if k == "operation"}
    assert "GET /orders/{id}" in operations
    assert len(operations) <= 5 + 1  # the bound, plus "_other"


def test_a_broken_registry_never_reaches_the_caller() -> None:
    class Broken(PrometheusSink):
        def emit(self, event: Event) -> None:
            raise ValueError("registry exploded")

    registry = CollectorRegistry()
    pipeline = Pipeline(Retry(on=StatusError, backoff=FAST, stop=attempts(2)),
                        sink=FanOutSink([Broken(registry=registry)]))

    def fail() -> None:
        raise StatusError(503)

    with pytest.raises(StatusError):
        pipeline.run_sync(fail)
    assert (value(registry, "egress_sink_failures_total",
                  sink="test_a_broken_registry_never_reaches_the_caller.<locals>.Broken") >= 2)
