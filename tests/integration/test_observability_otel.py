"""OpenTelemetrySink: spans from the SDK's in-memory exporter, metrics from an in-memory reader,
``traceparent`` as the loopback server received it; ResilientTransport observed like ApiClient
(the HTTP request metric, ``traceparent`` per attempt); an ApiClient response's report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _loopback import LoopbackServer, Reply
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from egress import Backoff, Pipeline, Retry, StatusError, attempts
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
def otel() -> Iterator[tuple[OpenTelemetrySink, InMemorySpanExporter, InMemoryMetricReader]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield (OpenTelemetrySink(tracer_provider=tracer_provider, meter_provider=meter_provider),
           exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


async def test_a_span_per_call_and_a_child_per_attempt_with_traceparent_on_the_wire(
        server: LoopbackServer, otel: Any) -> None:
    sink, exporter, reader = otel
    server.clear()
    server.script("/v1/flaky", Reply(503), Reply(200))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(3)), sink=sink)
    async with ApiClient(server.url + "/v1", pipeline=pipeline, sink=sink) as client:
        await client.get("/flaky")

    spans = exporter.get_finished_spans()
    [call] = [s for s in spans if s.kind is SpanKind.INTERNAL]
    tries = sorted((s for s in spans if s.kind is SpanKind.CLIENT),
                   key=lambda s: s.attributes["egress.attempt"])
    assert call.name == "GET /flaky"
    assert call.attributes["egress.attempts"] == 2
    assert call.attributes["egress.outcome"] == "ok"
    assert [t.name for t in tries] == ["GET", "GET"]
    for t in tries:
        assert t.parent is not None and t.parent.span_id == call.context.span_id
        assert t.context.trace_id == call.context.trace_id
        assert t.attributes["server.address"] == "127.0.0.1"
    first, second = tries
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert first.status.status_code is StatusCode.ERROR
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["http.response.status_code"] == 200

    sent = [r.headers.get("traceparent") for r in server.hits("/v1/flaky")]
    assert sent == [f"00-{t.context.trace_id:032x}-{t.context.span_id:016x}-"
                    f"{int(t.context.trace_flags):02x}" for t in tries]

    found = points(reader)
    durations = found["http.client.request.duration"]
    assert sorted(p.attributes.get("http.response.status_code") for p in durations) == [200, 503]
    assert sum(p.count for p in durations) == 2
    retries = found["egress.retries"]
    assert [(p.attributes["reason"], p.value) for p in retries] == [("backoff", 1)]


async def test_a_sampled_out_call_starts_no_attempt_span_and_still_propagates(
        server: LoopbackServer) -> None:
    """A call its sampler drops records no span; its attempts start none either (the lighter
    path), yet each still sends the call's traceparent, not-sampled, and metrics are kept."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    sink = OpenTelemetrySink(tracer_provider=tracer_provider, meter_provider=meter_provider)
    started: list[str] = []
    real_start = sink._tracer.start_span

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        started.append(name)
        return real_start(name, *args, **kwargs)

    sink._tracer.start_span = counting  # type: ignore[method-assign]
    server.clear()
    server.script("/v1/flaky", Reply(503), Reply(200))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(3)), sink=sink)
    async with ApiClient(server.url + "/v1", pipeline=pipeline, sink=sink) as client:
        await client.get("/flaky")
        await client.get("/flaky")  # a second call: a fresh trace, nothing left over
    assert exporter.get_finished_spans() == ()
    assert started == ["GET /flaky", "GET /flaky"]  # the calls' spans only
    sent = [r.headers.get("traceparent") for r in server.hits("/v1/flaky")]
    assert len(sent) == 3 and all(t is not None and int(t[-2:], 16) & 1 == 0 for t in sent)
    assert sent[0] == sent[1] != sent[2]  # one call, one context; the next call its own
    assert sum(p.count for p in points(reader)["http.client.request.duration"]) == 3
    tracer_provider.shutdown()
    meter_provider.shutdown()


async def test_a_failed_call_marks_its_span_and_the_caller_keeps_the_error(
        server: LoopbackServer, otel: Any) -> None:
    sink, exporter, _ = otel
    server.clear()
    server.script("/v1/down", Reply(503), Reply(503))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(2)), sink=sink)
    async with ApiClient(server.url + "/v1", pipeline=pipeline, sink=sink) as client:
        with pytest.raises(StatusError):
            await client.get("/down")
    [call] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "StatusError"
    assert call.attributes["egress.outcome"] == "error"


def test_without_a_pipeline_context_events_still_become_metrics(otel: Any) -> None:
    sink, exporter, reader = otel
    pipeline = Pipeline(sink=sink)
    assert pipeline.run_sync(lambda: 7) == 7
    assert len(exporter.get_finished_spans()) == 2  # the call and its one attempt
    assert "egress.call.duration" in points(reader)


@pytest.mark.parametrize("world", ["async", "sync"])
async def test_resilient_transport_counts_requests_and_sends_traceparent(
        server: LoopbackServer, otel: Any, world: str) -> None:
    otel_sink, exporter, _ = otel
    registry = CollectorRegistry()
    sink = FanOutSink([PrometheusSink(registry=registry), otel_sink])
    server.clear()
    server.script("/flaky", Reply(503), Reply(200))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=FAST, stop=attempts(3)), sink=sink)
    if world == "async":
        async with httpx.AsyncClient(transport=ResilientTransport(pipeline=pipeline)) as client:
            assert (await client.get(server.url + "/flaky")).status_code == 200
    else:
        with httpx.Client(transport=ResilientTransport(pipeline=pipeline)) as sync_client:
            assert sync_client.get(server.url + "/flaky").status_code == 200

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
