"""Per-call overhead of retry wrappers on a no-op, success path. Prints a table.

    uv run python bench/overhead.py [--calls 20000] [--repeats 7]

All peers run in one process and one run. Each row is the median over ``repeats`` runs of
``calls`` back-to-back calls; "overhead" subtracts the bare call of the same world (async/sync).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import stamina
import tenacity

from egress import Pipeline, Retry, RetryBudget, Timeout, TransportError, attempts


async def noop() -> None:
    return None


def noop_sync() -> None:
    return None


def async_cases() -> dict[str, Callable[[], Awaitable[Any]]]:
    retry_only = Pipeline(Retry(on=TransportError, stop=attempts(3)))
    full = Pipeline(Timeout(10.0), Retry(on=TransportError, stop=attempts(3), budget=RetryBudget()))

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential_jitter(initial=0.1, max=10),
        retry=tenacity.retry_if_exception_type(TransportError),
    )
    async def tenacity_noop() -> None:
        return None

    @stamina.retry(on=TransportError, attempts=3)
    async def stamina_noop() -> None:
        return None

    async def hand_loop() -> None:
        for attempt in range(3):
            try:
                return await noop()
            except TransportError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        return None

    async def asyncio_timeout() -> None:
        async with asyncio.timeout(10.0):
            return await noop()

    return {
        "bare await": noop,
        "hand-written 3-attempt loop": hand_loop,
        "asyncio.timeout alone": asyncio_timeout,
        "egress Retry": lambda: retry_only.run(noop),
        "egress Timeout+Retry+RetryBudget": lambda: full.run(noop),
        "tenacity retry": tenacity_noop,
        "stamina retry": stamina_noop,
    }


def sync_cases() -> dict[str, Callable[[], Any]]:
    retry_only = Pipeline(Retry(on=TransportError, stop=attempts(3)))
    full = Pipeline(Timeout(10.0), Retry(on=TransportError, stop=attempts(3), budget=RetryBudget()))

    @tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential_jitter(initial=0.1, max=10),
        retry=tenacity.retry_if_exception_type(TransportError),
    )
    def tenacity_noop() -> None:
        return None

    @stamina.retry(on=TransportError, attempts=3)
    def stamina_noop() -> None:
        return None

    return {
        "bare call": noop_sync,
        "egress Retry": lambda: retry_only.run_sync(noop_sync),
        "egress Timeout+Retry+RetryBudget": lambda: full.run_sync(noop_sync),
        "tenacity retry": tenacity_noop,
        "stamina retry": stamina_noop,
    }


async def time_async(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


def time_sync(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def table(title: str, results: dict[str, float], bare: str) -> None:
    base = results[bare]
    reference = results["tenacity retry"] - base
    print(f"\n{title}")
    print(f"{'case':36} {'us/call':>9} {'overhead us':>12} {'vs tenacity':>12}")
    for name, micros in results.items():
        overhead = micros - base
        ratio = f"{overhead / reference:>11.3f}x" if name != bare else f"{'':>12}"
        print(f"{name:36} {micros:>9.3f} {overhead:>12.3f} {ratio}")


async def main_async(calls: int, repeats: int) -> dict[str, float]:
    cases = async_cases()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so drift affects every case alike
        for name, fn in cases.items():
            samples[name].append(await time_async(fn, calls))
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    async_results = asyncio.run(main_async(args.calls, args.repeats))
    cases = sync_cases()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            samples[name].append(time_sync(fn, args.calls))
    sync_results = {name: statistics.median(s) for name, s in samples.items()}

    print(f"calls per run: {args.calls}, runs: {args.repeats} (median)")
    table("async, no-op, success path", async_results, "bare await")
    table("sync, no-op, success path", sync_results, "bare call")


if __name__ == "__main__":
    main()
