"""What observing costs: ApiClient throughput at concurrency 64 with each sink. Prints a table.

    uv run python bench/observability.py [--count 20000] [--rounds 10] [--max-seconds 60]

The HTTP client benchmark's setup (its own nginx on a free 127.0.0.1 port, pinned apart from
this process; see bench/http_client.py), one ApiClient (aiohttp, default pipeline) per case:
no sink; LoggingSink with the ``egress`` logger at INFO into /dev/null; PrometheusSink on its own
registry; OpenTelemetrySink with the SDK (a batch span processor and a no-op exporter, a meter
provider with no reader), also with 10% of traces sampled; and all three in one FanOutSink.
Cases are interleaved in rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry

from egress.events import EventSink, FanOutSink
from egress.http import ApiClient
from egress.observability.logging import LoggingSink
from egress.observability.otel import OpenTelemetrySink
from egress.observability.prometheus import PrometheusSink
from http_client import Result, nginx, pin, run_async

CONCURRENCY = 64


class NoOpExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sinks() -> dict[str, EventSink | None]:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (lives for the run)
    logging.getLogger("egress").addHandler(handler)
    logging.getLogger("egress").setLevel(logging.INFO)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    sampled = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)))
    sampled.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    meter_provider = MeterProvider()

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
    }


async def bench(url: str, count: int, rounds: int, max_seconds: float) -> list[Result]:
    results: list[Result] = []
    async with contextlib.AsyncExitStack() as stack:
        cases = []
        for name, sink in sinks().items():
            client = await stack.enter_async_context(
                ApiClient(url) if sink is None else ApiClient(url, sink=sink))

            async def call(client: ApiClient = client) -> bytes:
                return (await client.get("/x")).content

            await run_async(call, 200, CONCURRENCY, Result(name, CONCURRENCY))  # warm up
            cases.append((name, call))
            results.append(Result(name, CONCURRENCY))
        deadline = time.monotonic() + max_seconds
        for _ in range(rounds):
            for (_, call), result in zip(cases, results, strict=True):
                if time.monotonic() > deadline:
                    result.truncated = True
                    continue
                await run_async(call, count // rounds, CONCURRENCY, result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    affinity, pinning = pin()
    with nginx(affinity) as url:
        print(f"nginx on {url} ({pinning}); {args.count} GETs per case, concurrency "
              f"{CONCURRENCY}, {args.rounds} interleaved rounds")
        results = asyncio.run(bench(url, args.count, args.rounds, args.max_seconds))
    base = results[0].rate
    print()
    print("| ApiClient (aiohttp, default pipeline), concurrency 64 | req/s | p99 ms | vs no sink |")
    print("|---|---:|---:|---:|")
    for r in results:
        note = " (stopped early)" if r.truncated else ""
        print(f"| {r.name}{note} | {r.rate:,.0f} | {r.percentile(0.99):.1f} | "
              f"{r.rate / base:.2f}× |")


if __name__ == "__main__":
    main()
