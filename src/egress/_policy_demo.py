"""The first ``egress demo``: the core policies against an in-process flaky operation.

Virtual time (a FakeClock), so it runs in well under a second whatever the backoffs; the fake
provider demo replaces it once the payment path exists.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

from rich.console import Console
from rich.table import Table

from egress import (
    DeadlineExceededError,
    Pipeline,
    Retry,
    RetryBudget,
    StatusError,
    Timeout,
    TransportError,
    attempts,
)
from egress.events import Event
from egress.testing import FakeClock

__all__ = ["run_policy_demo"]


def run_policy_demo(*, calls: int, failure_rate: float, seed: int) -> int:
    rng = random.Random(seed)
    clock = FakeClock(start=0.0)
    events: Counter[str] = Counter()

    class CountingSink:
        def emit(self, event: Event) -> None:
            events[event.kind] += 1

    wire_attempts = 0

    async def flaky_upstream(n: int) -> int:
        nonlocal wire_attempts
        wire_attempts += 1
        await clock.sleep(rng.uniform(0.01, 0.2))
        roll = rng.random()
        if roll < failure_rate * 0.6:
            raise TransportError("connection refused", sent=False)
        if roll < failure_rate:
            raise StatusError(503, retry_after=rng.choice([None, 0.5, 1.0]))
        return n

    pipeline = Pipeline(
        Timeout(5.0),
        Retry(on=(TransportError, StatusError), stop=attempts(4),
              budget=RetryBudget(name="demo"), random=rng.random),
        Timeout(1.0),
        clock=clock,
        sink=CountingSink(),
    )
    outcomes: Counter[str] = Counter()

    async def one(n: int) -> None:
        try:
            await pipeline.run(flaky_upstream, n)
            outcomes["succeeded"] += 1
        except DeadlineExceededError:
            outcomes["deadline exceeded"] += 1
        except (TransportError, StatusError):
            outcomes["failed after retries"] += 1

    async def run() -> None:
        await asyncio.gather(*(one(n) for n in range(calls)))

    asyncio.run(run())
    console = Console()
    table = Table(title=f"egress demo: {calls} calls, {failure_rate:.0%} of attempts failing")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name in ("succeeded", "failed after retries", "deadline exceeded"):
        table.add_row(name, str(outcomes[name]))
    table.add_row("wire attempts", str(wire_attempts))
    for kind, count in sorted(events.items()):
        table.add_row(f"event {kind}", str(count))
    table.add_row("virtual seconds", f"{clock.now():.2f}")
    console.print(table)
    return 0 if sum(outcomes.values()) == calls else 1
