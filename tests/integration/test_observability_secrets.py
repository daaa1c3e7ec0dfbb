"""A secret scan over everything observability writes: planted secrets in failing and succeeding
calls, every sink at its most verbose, zero hits in log records (egress's and the backends'),
metric labels and span attributes."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from _loopback import LoopbackServer, Reply
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from egress import Backoff, Pipeline, Retry, Secret, StatusError, attempts
from egress.events import FanOutSink
from egress.http import ApiClient, BearerAuth, retry_on
from egress.observability.logging import JsonFormatter, LoggingSink, RedactingFilter
from egress.observability.otel import OpenTelemetrySink
from egress.observability.prometheus import PrometheusSink

PLANTED = ("sk_live_51HplantedKey", "tok-planted-bearer", "4242424242424242",
           "4000 0566 5566 5556", "cvc=314", "whsec_plantedsecret")
#: Not a secret (logs may name it), but never a label or a span name: it grows with traffic.
REFERENCE = "o-planted-ref-77aa99"


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_planted_secrets_never_reach_a_record_a_label_or_a_span(
        server: LoopbackServer, backend: str) -> None:
    server.clear()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # egress's records and the backends' (httpx, httpcore)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = CollectorRegistry()
    sink = FanOutSink([LoggingSink(per_call=True), PrometheusSink(registry=registry),
                       OpenTelemetrySink(tracer_provider=provider)])
    server.script("/v1/charges/o-planted-ref-77aa99", Reply(503, body={
        "error": {"message": "card 4242424242424242 cvc=314 declined"}}), Reply(200))
    server.script("/v1/down", Reply(500), Reply(500))
    pipeline = Pipeline(Retry(on=retry_on(None), backoff=Backoff(initial=0.001, cap=0.002),
                              stop=attempts(2)), sink=sink)
    try:
        async with ApiClient(server.url + "/v1", backend=backend, pipeline=pipeline, sink=sink,
                             auth=BearerAuth(Secret("tok-planted-bearer"))) as client:
            await client.get("/charges/o-planted-ref-77aa99",
                             params={"api_key": "sk_live_51HplantedKey",
                                     "card": "4000 0566 5566 5556"})
            with pytest.raises(StatusError):
                await client.get("/down", params={"secret": "whsec_plantedsecret"},
                                 operation="refund 4242424242424242 cvc=314")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        provider.shutdown()

    logs = stream.getvalue()
    labels = generate_latest(registry).decode()
    spans = repr([(s.name, dict(s.attributes or {})) for s in exporter.get_finished_spans()])
    assert "retry.scheduled" in logs and "http_client_request_duration_seconds" in labels
    assert "GET /charges/{id}" in labels
    assert [s.name for s in exporter.get_finished_spans()].count("GET") == 4
    for secret in PLANTED:
        assert secret not in logs, secret
        assert secret not in labels, secret
        assert secret not in spans, secret
    assert REFERENCE not in labels and REFERENCE not in spans
