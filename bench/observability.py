"""What observing costs: ApiClient throughput at concurrency 64 with each sink. Prints a table.

    uv run python bench/observability.py [--count 20000] [--rounds 10] [--max-seconds 60]
    uv run python bench/observability.py --no-io [--count 2000] [--rounds 15]

The HTTP client benchmark's setup (its own nginx on a free 127.0.0.1 port, pinned apart from
this process; see bench/http_client.py), one ApiClient (aiohttp, default pipeline) per case:
no sink; LoggingSink with the ``egress`` logger at INFO into /dev/null; PrometheusSink on its own
registry; OpenTelemetrySink with the SDK (a batch span processor and a no-op exporter, a meter
provider with no reader), also with 10% of traces sampled; and all three in one FanOutSink (also
with 10% and 1% of traces sampled: ``ParentBased(TraceIdRatioBased(r))``; and 1% sampled with
the OTel meter off, ``meter_provider=NoOpMeterProvider()``, when Prometheus keeps the metrics).
Cases are interleaved in rounds.

Two more rows measure the OpenTelemetry SDK's own floor with no egress sink, written straight
against the SDK around a sink-less client: a bare span and one histogram record per call, and the
same SDK work the sink asks for (a call span, an attempt span, a ``traceparent`` injected, two
histogram records and a counter). What the sink costs above the second is egress's.

Besides requests per second (wall clock: sensitive to whatever else runs on the machine), each row
gives this process's CPU time per call, and the CPU cost of the case over the no-sink case.

``--no-io`` measures the sinks alone, steadier on a busy machine: a ``Pipeline`` around an
operation that returns at once, each case's CPU time per call (the least of the rounds, and the
median), with the same SDK floors and prometheus-client's own (a counter and two histograms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Histogram

from egress import Pipeline
from egress.events import EventSink, FanOutSink
from egress.http import ApiClient
from egress.observability.logging import LoggingSink
from egress.observability.otel import OpenTelemetrySink
from egress.observability.prometheus import PrometheusSink
from http_client import Result, nginx, pin, run_async

CONCURRENCY = 64
FLOOR = "OTel SDK floor: a bare span + a histogram record per call, no egress sink"
SAME_WORK = "OTel SDK doing the sink's work by hand (2 spans, traceparent, 3 records)"


class NoOpExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sinks(tracer_provider: TracerProvider, meter_provider: MeterProvider
          ) -> dict[str, EventSink | None]:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (lives for the run)
    logging.getLogger("egress").addHandler(handler)
    logging.getLogger("egress").setLevel(logging.INFO)
    sampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)))
    sampled.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    rare = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.01)))
    rare.add_span_processor(BatchSpanProcessor(NoOpExporter()))

    def otel(provider: TracerProvider = tracer_provider) -> OpenTelemetrySink:
        return OpenTelemetrySink(tracer_provider=provider, meter_provider=meter_provider)

    return {
        "no sink": None,
        "logging (INFO)": LoggingSink(),
        "Prometheus": PrometheusSink(registry=CollectorRegistry()),
        "OpenTelemetry (SDK, no-op exporter)": otel(),
        "OpenTelemetry, 10% of traces sampled": otel(sampled),
        "all three": FanOutSink([LoggingSink(), PrometheusSink(registry=CollectorRegistry()),
                                 otel()]),
        "all three, 10% of traces sampled": FanOutSink([
            LoggingSink(), PrometheusSink(registry=CollectorRegistry()), otel(sampled)]),
        "all three, 1% of traces sampled": FanOutSink([
            LoggingSink(), PrometheusSink(registry=CollectorRegistry()), otel(rare)]),
        # Prometheus already keeps the metrics: OTel for traces only, a user's two settings.
        "all three, 1% sampled, OTel meter off (metrics from Prometheus)": FanOutSink([
            LoggingSink(), PrometheusSink(registry=CollectorRegistry()),
            OpenTelemetrySink(tracer_provider=rare, meter_provider=NoOpMeterProvider())]),
    }


def sdk_floors(inner: Callable[[], Awaitable[Any]], tracer_provider: TracerProvider,
               meter_provider: MeterProvider) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Calls of ``inner`` (a sink-less call) wrapped in OTel SDK work written by hand."""
    tracer = tracer_provider.get_tracer("bench")
    meter = meter_provider.get_meter("bench")
    duration = meter.create_histogram("bench.request.duration", unit="s")
    calls = meter.create_histogram("bench.call.duration", unit="s")
    attempts = meter.create_counter("bench.attempts")
    http = {"http.request.method": "GET", "server.address": "127.0.0.1",
            "http.response.status_code": 200}
    labels = {"operation": "GET /x", "outcome": "ok"}
    clock = time.perf_counter

    async def floor() -> Any:
        span = tracer.start_span("GET", kind=SpanKind.CLIENT)
        started = clock()
        content = await inner()
        span.end()
        duration.record(clock() - started, http)
        return content

    async def same_work() -> Any:
        call = tracer.start_span("GET /x", kind=SpanKind.INTERNAL,
                                 attributes={"egress.operation": "GET /x"})
        parent = trace.set_span_in_context(call)
        attempt = tracer.start_span("GET", context=parent, kind=SpanKind.CLIENT, attributes={
            "egress.attempt": 1, "http.request.method": "GET", "server.address": "127.0.0.1"})
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(attempt))
        started = clock()
        content = await inner()
        elapsed = clock() - started
        attempt.set_attribute("http.response.status_code", 200)
        attempt.end()
        attempts.add(1, labels)
        duration.record(elapsed, http)
        call.set_attributes({"egress.attempts": 1, "egress.outcome": "ok"})
        call.end()
        calls.record(elapsed, labels)
        return content

    return {FLOOR: floor, SAME_WORK: same_work}


async def bench(url: str, count: int, rounds: int, max_seconds: float
                ) -> tuple[list[Result], list[float]]:
    results: list[Result] = []
    cpu: list[float] = []
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    meter_provider = MeterProvider()
    async with contextlib.AsyncExitStack() as stack:
        cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        for name, sink in sinks(tracer_provider, meter_provider).items():
            client = await stack.enter_async_context(
                ApiClient(url) if sink is None else ApiClient(url, sink=sink))

            async def call(client: ApiClient = client) -> bytes:
                return (await client.get("/x")).content

            cases.append((name, call))
        bare = await stack.enter_async_context(ApiClient(url))

        async def bare_call() -> bytes:
            return (await bare.get("/x")).content

        cases.extend(sdk_floors(bare_call, tracer_provider, meter_provider).items())
        for name, call in cases:
            await run_async(call, 200, CONCURRENCY, Result(name, CONCURRENCY))  # warm up
            results.append(Result(name, CONCURRENCY))
            cpu.append(0.0)
        deadline = time.monotonic() + max_seconds
        for _ in range(rounds):
            for i, ((_, call), result) in enumerate(zip(cases, results, strict=True)):
                if time.monotonic() > deadline:
                    result.truncated = True
                    continue
                started = time.process_time()
                await run_async(call, count // rounds, CONCURRENCY, result)
                cpu[i] += time.process_time() - started
    return results, cpu


class _Answer:
    status_code = 200


async def _answer() -> _Answer:
    return _Answer()


async def no_io(count: int, rounds: int) -> None:
    """The sinks alone: CPU µs per call through a Pipeline around an operation with no I/O."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    meter_provider = MeterProvider()
    cases: dict[str, Callable[[], Awaitable[Any]]] = {}
    for name, sink in sinks(tracer_provider, meter_provider).items():
        pipeline = Pipeline() if sink is None else Pipeline(sink=sink)
        cases[name] = functools.partial(pipeline.execute, "GET /x", _answer,
                                        target=("GET", "127.0.0.1"))
    cases.update(sdk_floors(_answer, tracer_provider, meter_provider))
    registry = CollectorRegistry()
    attempts = Counter("a", "", ["operation", "outcome"], registry=registry).labels("x", "ok")
    http = Histogram("h", "", ["m", "s", "c"], registry=registry).labels("GET", "h", "2xx")
    calls = Histogram("c", "", ["o", "x"], registry=registry).labels("x", "ok")

    async def prometheus_floor() -> Any:
        answer = await _answer()
        attempts.inc()
        http.observe(0.01)
        calls.observe(0.01)
        return answer

    cases["prometheus-client alone: a counter + 2 histograms per call, no egress sink"] = (
        prometheus_floor)
    seen: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):  # the first round warms up
        for name, call in cases.items():
            started = time.process_time()
            for _ in range(count):
                await call()
            if round_:
                seen[name].append((time.process_time() - started) / count * 1e6)
    base = min(seen["no sink"])
    print(f"{count} calls per case and round, {rounds} interleaved rounds, no I/O\n")
    print("| case | CPU µs/call (least) | median | over no sink (least) |")
    print("|---|---:|---:|---:|")
    for name, values in seen.items():
        print(f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | "
              f"{min(values) - base:+.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--no-io", action="store_true", help="the sinks alone, no HTTP")
    args = parser.parse_args()
    if args.no_io:
        asyncio.run(no_io(args.count or 2000, args.rounds or 15))
        return
    args.count = args.count or 20_000
    args.rounds = args.rounds or 10
    affinity, pinning = pin()
    with nginx(affinity) as url:
        print(f"nginx on {url} ({pinning}); {args.count} GETs per case, concurrency "
              f"{CONCURRENCY}, {args.rounds} interleaved rounds")
        results, cpu = asyncio.run(bench(url, args.count, args.rounds, args.max_seconds))
    base = results[0].rate
    per_call = [seconds / r.count * 1e6 if r.count else 0.0 for seconds, r in zip(
        cpu, results, strict=True)]
    print()
    print("| ApiClient (aiohttp, default pipeline), concurrency 64 | req/s | p99 ms | vs no sink "
          "| CPU µs/call | CPU cost |")
    print("|---|---:|---:|---:|---:|---:|")
    for r, us in zip(results, per_call, strict=True):
        note = " (stopped early)" if r.truncated else ""
        print(f"| {r.name}{note} | {r.rate:,.0f} | {r.percentile(0.99):.1f} | "
              f"{r.rate / base:.2f}× | {us:.0f} | {us / per_call[0] - 1:+.0%} |")


if __name__ == "__main__":
    main()
