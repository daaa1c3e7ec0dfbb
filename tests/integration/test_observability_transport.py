"""ResilientTransport is observed like ApiClient: the HTTP request metric per attempt and the
W3C ``traceparent`` of each attempt's span on the wire (async and sync httpx clients); and an
ApiClient's response carries its call's report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _loopback import LoopbackServer, Reply
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from egress import Backoff, Pipeline, Retry, attempts
from egress.events import FanOutSink
from egress.http import ApiClient, ResilientTransport, SyncApiClient, retry_on
from egress.observability.otel import OpenTelemetrySink
from egress.observability.prometheus import PrometheusSink

FAST = Backoff(initial=0.001, cap=0.005)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def observed() -> Iterator[tuple[Any, CollectorRegistry, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    sink = FanOutSink([PrometheusSink(registry=registry),
                       OpenTelemetrySink(tracer_provider=provider)])
    yield sink, registry, exporter
    provider.shutdown()


def check(server: LoopbackServer, registry: CollectorRegistry,
          exporter: InMemorySpanExporter) -> None:
    def count(status_class: str) -> float:
        return registry.get_sample_value("http_client_request_duration_seconds_count", {
            "http_request_method": "GET", "server_address": "127.0.0.1",
            "status_class": status_class}) or 0.0

    assert (count("5xx"), count("2xx")) == (1.0, 1.0)
    tries = sorted((s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT),
                   key=lambda s: (s.attributes or {}).get("egress.attempt", 0))
    assert [(t.attributes or {}).get("http.response.status_code") for t in tries] == [503, 200]
    sent = [r.headers.get("traceparent") for r in server.hits("/flaky")]
    assert sent == [f"00-{t.context.trace_id:032x}-{t.context.span_id:016x}-"
                    f"{int(t.context.trace_flags):02x}" for t in tries]


async def test_async_transport_counts_requests_and_sends_traceparent(
        server: LoopbackServer, observed: Any) -> None:
    sink, registry, exporter = observed
    server.clear()
    server.script("/flaky", Reply(503), Reply(200))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(3)), sink=sink)
    async with httpx.AsyncClient(transport=ResilientTransport(pipeline=pipeline)) as client:
        assert (await client.get(server.url + "/flaky")).status_code == 200
    check(server, registry, exporter)


def test_sync_transport_counts_requests_and_sends_traceparent(
        server: LoopbackServer, observed: Any) -> None:
    sink, registry, exporter = observed
    server.clear()
    server.script("/flaky", Reply(503), Reply(200))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(3)), sink=sink)
    with httpx.Client(transport=ResilientTransport(pipeline=pipeline)) as client:
        assert client.get(server.url + "/flaky").status_code == 200
    check(server, registry, exporter)


async def test_an_api_client_response_carries_its_report(server: LoopbackServer) -> None:
    server.clear()
    server.script("/v1/flaky", Reply(503), Reply(200))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(3)))
    async with ApiClient(server.url + "/v1", pipeline=pipeline) as client:
        response = await client.get("/flaky")
    line = str(response.report)
    assert line.startswith("egress report GET /flaky: #1 StatusError 503 sent=True; wait ")
    assert line.endswith(" (backoff); #2 ok")
    server.script("/v1/ok", Reply(200))
    with SyncApiClient(server.url + "/v1") as sync_client:
        assert str(sync_client.get("/ok").report) == "egress report GET /ok: #1 ok"
