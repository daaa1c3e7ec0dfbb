"""Timeout + Retry + RetryBudget around a flaky async function, on real time (about 1 s).

    uv run python examples/policies.py
"""

from __future__ import annotations

import asyncio
import random

from egress import (
    Backoff,
    Pipeline,
    Retry,
    RetryBudget,
    Timeout,
    TransportError,
    attempts,
    elapsed,
)
from egress.events import CallbackSink

rng = random.Random(1)


async def fetch_quote(parcel: str) -> str:
    await asyncio.sleep(rng.uniform(0.0, 0.05))
    if rng.random() < 0.4:
        raise TransportError("connection refused", sent=False)
    return f"quote for {parcel}: 4.20 EUR"


pipeline = Pipeline(
    Timeout(2.0),
    Retry(
        on=TransportError,
        stop=attempts(4) | elapsed(1.5),
        backoff=Backoff(initial=0.05, cap=0.5),
        budget=RetryBudget(name="shipping"),
    ),
    Timeout(0.5),
    sink=CallbackSink(lambda event: print(f"  event {event.kind}: {event}")),
)


async def main() -> None:
    for parcel in ("p-1", "p-2", "p-3", "p-4", "p-5"):
        try:
            print(await pipeline.run(fetch_quote, parcel))
        except TransportError as exc:
            print(f"{parcel}: gave up: {exc} ({exc.__notes__[-1]})")


if __name__ == "__main__":
    asyncio.run(main())
