"""A circuit breaker's life, on virtual time: it opens, refuses, probes, re-opens, and closes.

    uv run python examples/breaker_demo.py

An upstream fails for its first 6 calls, then recovers. Each second, three calls go out; the
breaker's state changes are printed as they happen (the refusals show in the call outcomes).
"""

from __future__ import annotations

import asyncio
from dataclasses import fields

from egress import (
    Bulkhead,
    CircuitBreaker,
    CircuitOpenError,
    CountWindow,
    Pipeline,
    RateLimiter,
    TransportError,
)
from egress.events import CallbackSink, Event
from egress.testing import FakeClock

clock = FakeClock(start=0.0)


def show(event: Event) -> None:
    if event.kind != "circuit.state_changed":
        return
    detail = {f.name: getattr(event, f.name) for f in fields(event)
              if f.name in ("old", "new", "failure_rate")}
    print(f"  t={event.at:5.1f}s  {event.kind:22} {detail}")


breaker = CircuitBreaker(
    "inventory-api", window=CountWindow(10), minimum_calls=5, failure_rate_threshold=0.5,
    wait_in_open=2.0, wait_multiplier=2.0, half_open_calls=2, store=None)
pipeline = Pipeline(breaker, Bulkhead(10), RateLimiter(50, burst=10), clock=clock,
                    sink=CallbackSink(show))

calls_made = 0


async def check_stock(sku: str) -> int:
    global calls_made
    calls_made += 1
    if calls_made <= 6:
        raise TransportError("connection reset", sent=True)
    return 7


async def main() -> None:
    for second in range(12):
        outcome = []
        for _ in range(3):
            try:
                outcome.append(f"ok {await pipeline.run(check_stock, 'sku-1')}")
            except CircuitOpenError:
                outcome.append("refused")
            except TransportError:
                outcome.append("failed")
        snap = breaker.snapshot()
        print(f"t={clock.now():5.1f}s  {breaker.state.value:9}  {', '.join(outcome)}  "
              f"(failure rate {snap.failure_rate})")
        clock.advance(max(0.0, second + 1 - clock.now()))
    print(f"upstream saw {calls_made} calls out of 36")


if __name__ == "__main__":
    asyncio.run(main())
