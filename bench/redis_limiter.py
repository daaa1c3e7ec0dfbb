"""Shared rate limiting on Redis: egress's one-script GCRA against ``limits`` and a bare PING.

    uv run python bench/redis_limiter.py [--url redis://...] [--ops 5000] [--repeats 5]

One process, one run, one Redis (a private ``redis-server`` on a free loopback port unless
``--url`` is given), one client per library with the same socket settings; every case is
interleaved across ``repeats`` rounds so machine noise hits all alike. Each round does ``ops``
back-to-back acquires on a limit high enough never to refuse (the cost of the decision, not of
waiting). Latency percentiles are per call over all rounds; throughput is the median round.

Target (issue 13): egress's acquire at least 0.8x the PING rate of the same client (both are one
round trip), and faster than every ``limits`` strategy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage as AsyncLimitsStorage
from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixed
from limits.storage import RedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)

from egress import RateLimiter
from egress.stores.redis import RedisLimiterState, RedisStore
from egress.stores.redis._server import LocalRedisServer

HUGE = 1_000_000_000  # per second: never refuses


def measure(fn: Callable[[], Any], ops: int, lat: list[float]) -> float:
    clock = time.perf_counter
    began = clock()
    for _ in range(ops):
        t = clock()
        fn()
        lat.append(clock() - t)
    return ops / (clock() - began)


async def measure_async(fn: Callable[[], Awaitable[Any]], ops: int, lat: list[float]) -> float:
    clock = time.perf_counter
    began = clock()
    for _ in range(ops):
        t = clock()
        await fn()
        lat.append(clock() - t)
    return ops / (clock() - began)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def table(title: str, rows: dict[str, tuple[list[float], list[float]]], base: str) -> None:
    print(f"\n{title}")
    print(f"{'case':<40} {'ops/s':>9} {'x PING':>7} {'p50 us':>8} {'p99 us':>8}")
    base_rate = statistics.median(rows[base][0])
    for name, (rates, lat) in rows.items():
        rate = statistics.median(rates)
        print(f"{name:<40} {rate:>9.0f} {rate / base_rate:>7.2f} {pct(lat, 0.5):>8.0f} "
              f"{pct(lat, 0.99):>8.0f}")


def server_cost(url: str, cases: dict[str, Callable[[], Any]], ops: int) -> None:
    """Microseconds Redis itself spends per call (INFO commandstats): unlike the client's
    timings, this does not move with the load on the client's machine."""
    admin = redis.Redis.from_url(url)
    print(f"\nserver side (INFO commandstats, {ops} calls each)")
    print(f"{'case':<40} {'us/call in Redis':>17}")
    for name, fn in cases.items():
        admin.config_resetstat()
        for _ in range(ops):
            fn()
        stats = admin.info("commandstats")
        spent = sum(v["usec"] for k, v in stats.items() if "config" not in k)
        print(f"{name:<40} {spent / ops:>17.1f}")
    admin.close()


def sync_cases(url: str) -> dict[str, Callable[[], Any]]:
    client = redis.Redis.from_url(url, socket_timeout=1.0)
    store = RedisStore(url, prefix="bench-sync", timeout=1.0)
    state = RateLimiter(HUGE, name="egress", store=store)._state
    assert isinstance(state, RedisLimiterState)
    now = time.monotonic
    limits_storage = RedisStorage(url)
    item = RateLimitItemPerSecond(HUGE)
    fixed = FixedWindowRateLimiter(limits_storage)
    moving = MovingWindowRateLimiter(limits_storage)
    sliding = SlidingWindowCounterRateLimiter(limits_storage)
    return {
        "PING (redis-py, same settings)": client.ping,
        "egress RedisStore limiter (GCRA)": lambda: state.reserve(now(), 5.0, None),
        "limits fixed window": lambda: fixed.hit(item, "fixed"),
        "limits moving window": lambda: moving.hit(item, "moving"),
        "limits sliding window counter": lambda: sliding.hit(item, "sliding"),
    }


async def async_rounds(url: str, ops: int, repeats: int) -> dict[str, tuple[list[float],
                                                                           list[float]]]:
    client = redis.asyncio.Redis.from_url(url, socket_timeout=1.0)
    store = RedisStore(url, prefix="bench-async", timeout=1.0)
    state = RateLimiter(HUGE, name="egress", store=store)._state
    assert isinstance(state, RedisLimiterState)
    now = time.monotonic
    item = RateLimitItemPerSecond(HUGE)
    fixed = AsyncFixed(AsyncLimitsStorage(url.replace("redis://", "async+redis://", 1),
                                          implementation="redispy"))
    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "PING (redis.asyncio, same settings)": client.ping,
        "egress RedisStore limiter (GCRA)": lambda: state.reserve_async(now(), 5.0, None),
        "limits fixed window (async)": lambda: fixed.hit(item, "fixed"),
    }
    rows: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
    for fn in cases.values():  # warm up: connect, load scripts
        await measure_async(fn, 200, [])
    for _ in range(repeats):
        for name, fn in cases.items():
            rates, lat = rows[name]
            rates.append(await measure_async(fn, ops, lat))
    await store.aclose()
    await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a Redis to use (default: start a private redis-server)")
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    server = None if args.url else LocalRedisServer().start()
    url = args.url or server.url  # type: ignore[union-attr]
    try:
        cases = sync_cases(url)
        rows: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in cases}
        for fn in cases.values():
            measure(fn, 200, [])
        for _ in range(args.repeats):
            for name, fn in cases.items():
                rates, lat = rows[name]
                rates.append(measure(fn, args.ops, lat))
        print(f"redis-py {redis.__version__}, {args.ops} ops x {args.repeats} rounds, "
              f"{'given Redis' if args.url else 'private redis-server on loopback'}")
        table("sync: one acquire = one round trip", rows, "PING (redis-py, same settings)")
        server_cost(url, cases, args.ops)
        table("async", asyncio.run(async_rounds(url, args.ops, args.repeats)),
              "PING (redis.asyncio, same settings)")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
