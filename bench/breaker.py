"""Circuit breakers, bulkhead and limiter: per-call overhead, the five-policy pipeline, memory.

    uv run python bench/breaker.py [--calls 20000] [--repeats 7] [--breakers 10000]

One process, one run, every case interleaved across ``repeats`` rounds (so machine noise hits
all cases alike); each figure is the median over the rounds of ``calls`` back-to-back calls of a
no-op on the success path. "overhead" subtracts the bare call of the same world (async/sync).
Memory is what :mod:`tracemalloc` sees allocated by creating ``--breakers`` named breakers with
count windows of 100 (and, for scale, as many of each peer's).

Targets (issue 3): the egress breaker at most 1/3 of the cheapest peer's overhead; the five-policy
pipeline at most 1/5 of tenacity + aiobreaker; 10,000 breakers under 30 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
import tracemalloc
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker
import tenacity

from egress import (
    BreakerRegistry,
    Bulkhead,
    CircuitBreaker,
    CountWindow,
    Pipeline,
    RateLimiter,
    Retry,
    Timeout,
    TransportError,
    attempts,
)

warnings.filterwarnings("ignore", category=DeprecationWarning)

AsyncCase = Callable[[], Awaitable[Any]]
SyncCase = Callable[[], Any]


async def noop() -> None:
    return None


def noop_sync() -> None:
    return None


def egress_breaker(name: str) -> CircuitBreaker:
    return CircuitBreaker(name, store=None)  # defaults: a count window of 100, no slow-call timing


def five_policies(name: str) -> Pipeline:
    return Pipeline(
        Timeout(10.0),
        Retry(on=TransportError, stop=attempts(3)),
        CircuitBreaker(name, store=None),
        Bulkhead(100),
        RateLimiter(1e9, burst=1000),  # never waits here: this measures the bookkeeping
    )


def tenacity_retry() -> Any:
    return tenacity.retry(stop=tenacity.stop_after_attempt(3),
                          wait=tenacity.wait_exponential_jitter(initial=0.1, max=10),
                          retry=tenacity.retry_if_exception_type(TransportError))


# ---------------------------------------------------------------------------------------------
# Cases


async def breaker_cases_async() -> dict[str, AsyncCase]:
    guarded = egress_breaker("a-deco")(noop)
    timed = CircuitBreaker("a-timed", slow_call_duration=60.0, store=None)(noop)
    through = Pipeline(egress_breaker("a-pipe"))
    empty = Pipeline()

    ab = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=60))
    ab_noop = ab(noop)

    factory = purgatory.AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    pg_noop = factory("purgatory")(noop)

    cb_noop = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60,
                                     name="cb-async")(noop)

    return {
        "bare await": noop,
        "egress CircuitBreaker (@breaker)": guarded,
        "  same, slow-call detection on (60 s)": timed,
        "egress CircuitBreaker (Pipeline)": lambda: through.run(noop),
        "egress Pipeline() without policies": lambda: empty.run(noop),
        "aiobreaker": ab_noop,
        "purgatory": pg_noop,
        "circuitbreaker": cb_noop,
    }


def breaker_cases_sync() -> dict[str, SyncCase]:
    guarded = egress_breaker("s-deco")(noop_sync)
    timed = CircuitBreaker("s-timed", slow_call_duration=60.0, store=None)(noop_sync)
    through = Pipeline(egress_breaker("s-pipe"))
    empty = Pipeline()
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=60)
    return {
        "bare call": noop_sync,
        "egress CircuitBreaker (@breaker)": guarded,
        "  same, slow-call detection on (60 s)": timed,
        "egress CircuitBreaker (Pipeline)": lambda: through.run_sync(noop_sync),
        "egress Pipeline() without policies": lambda: empty.run_sync(noop_sync),
        "pybreaker": pb(noop_sync),
        "purgatory": factory("purgatory-sync")(noop_sync),
        "circuitbreaker": circuitbreaker.circuit(failure_threshold=5, recovery_timeout=60,
                                                 name="cb-sync")(noop_sync),
    }


def pipeline_cases_async() -> dict[str, AsyncCase]:
    ab = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=60))
    peer = tenacity_retry()(ab(noop))
    steps = {
        "egress Timeout": Pipeline(Timeout(10.0)),
        "  + Retry": Pipeline(Timeout(10.0), Retry(on=TransportError, stop=attempts(3))),
        "  + CircuitBreaker": Pipeline(Timeout(10.0), Retry(on=TransportError, stop=attempts(3)),
                                       CircuitBreaker("steps-a", store=None)),
        "  + Bulkhead": Pipeline(Timeout(10.0), Retry(on=TransportError, stop=attempts(3)),
                                 CircuitBreaker("steps-b", store=None), Bulkhead(100)),
    }
    five = five_policies("five-async")
    cases: dict[str, AsyncCase] = {"bare await": noop}
    for label, pipeline in steps.items():
        cases[label] = lambda p=pipeline: p.run(noop)
    cases["  + RateLimiter (all five)"] = lambda: five.run(noop)
    cases["tenacity + aiobreaker"] = peer
    return cases


def pipeline_cases_sync() -> dict[str, SyncCase]:
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    five = five_policies("five-sync")
    return {
        "bare call": noop_sync,
        "egress five policies": lambda: five.run_sync(noop_sync),
        "tenacity + pybreaker": tenacity_retry()(pb(noop_sync)),
    }


# ---------------------------------------------------------------------------------------------
# Timing


async def time_async(fn: AsyncCase, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


def time_sync(fn: SyncCase, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


async def measure_async(cases: dict[str, AsyncCase], calls: int, repeats: int
                        ) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm up (fills the breakers' windows)
        await time_async(fn, min(calls, 1000))
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(await time_async(fn, calls))
    return {name: statistics.median(s) for name, s in samples.items()}


def measure_sync(cases: dict[str, SyncCase], calls: int, repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        time_sync(fn, min(calls, 1000))
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(time_sync(fn, calls))
    return {name: statistics.median(s) for name, s in samples.items()}


def table(title: str, results: dict[str, float], bare: str, reference: str | None) -> None:
    base = results[bare]
    ref = results[reference] - base if reference else None
    print(f"\n{title}")
    head = f"{'case':40} {'us/call':>9} {'overhead us':>12}"
    print(head + (f" {'vs ' + (reference or ''):>26}" if ref else ""))
    for name, micros in results.items():
        line = f"{name:40} {micros:>9.3f} {micros - base:>12.3f}"
        if ref and name != bare:
            line += f" {(micros - base) / ref:>25.3f}x"
        print(line)


# ---------------------------------------------------------------------------------------------
# Memory


def allocated(build: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / 1e6, kept


def memory_rows(count: int) -> dict[str, float]:
    def registry() -> Any:
        reg = BreakerRegistry(max_size=count, window=CountWindow(100))
        for i in range(count):
            reg.get(f"host-{i}.example")
        return reg

    def direct() -> Any:
        return [CircuitBreaker(f"op-{i}", window=CountWindow(100), store=None)
                for i in range(count)]

    def pybreakers() -> Any:
        return [pybreaker.CircuitBreaker(fail_max=5, name=f"pb-{i}") for i in range(count)]

    def aiobreakers() -> Any:
        return [aiobreaker.CircuitBreaker(fail_max=5, name=f"ab-{i}") for i in range(count)]

    rows = {}
    for label, build in (("egress BreakerRegistry.get x N", registry),
                         ("egress CircuitBreaker(...) x N", direct),
                         ("pybreaker x N (consecutive count only)", pybreakers),
                         ("aiobreaker x N (consecutive count only)", aiobreakers)):
        megabytes, kept = allocated(build)
        rows[label] = megabytes
        del kept
    return rows


# ---------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--breakers", type=int, default=10_000)
    args = parser.parse_args()

    async def run_async() -> tuple[dict[str, float], dict[str, float]]:
        breakers = await measure_async(await breaker_cases_async(), args.calls, args.repeats)
        pipelines = await measure_async(pipeline_cases_async(), max(args.calls // 4, 100),
                                        args.repeats)
        return breakers, pipelines

    breakers_async, pipelines_async = asyncio.run(run_async())
    breakers_sync = measure_sync(breaker_cases_sync(), args.calls, args.repeats)
    pipelines_sync = measure_sync(pipeline_cases_sync(), max(args.calls // 4, 100), args.repeats)
    memory = memory_rows(args.breakers)

    print(f"calls per run: {args.calls} (pipelines: {max(args.calls // 4, 100)}), "
          f"runs: {args.repeats}, median of runs")
    table("Breaker overhead, async, no-op, success path", breakers_async, "bare await",
          "aiobreaker")
    table("Breaker overhead, sync, no-op, success path", breakers_sync, "bare call", "pybreaker")
    table("Five policies, async (cumulative, outermost first)", pipelines_async, "bare await",
          "tenacity + aiobreaker")
    table("Five policies, sync", pipelines_sync, "bare call", "tenacity + pybreaker")

    print(f"\nMemory for {args.breakers} named breakers (tracemalloc)")
    for label, megabytes in memory.items():
        print(f"{label:40} {megabytes:>9.2f} MB  ({megabytes * 1e6 / args.breakers:,.0f} B each)")

    def over(results: dict[str, float], name: str, bare: str) -> float:
        return results[name] - results[bare]

    peers_async = min(over(breakers_async, n, "bare await")
                      for n in ("aiobreaker", "purgatory", "circuitbreaker"))
    peers_sync = min(over(breakers_sync, n, "bare call")
                     for n in ("pybreaker", "purgatory", "circuitbreaker"))
    deco_a = over(breakers_async, "egress CircuitBreaker (@breaker)", "bare await")
    timed_a = over(breakers_async, "  same, slow-call detection on (60 s)", "bare await")
    timed_s = over(breakers_sync, "  same, slow-call detection on (60 s)", "bare call")
    pipe_a = over(breakers_async, "egress CircuitBreaker (Pipeline)", "bare await")
    deco_s = over(breakers_sync, "egress CircuitBreaker (@breaker)", "bare call")
    pipe_s = over(breakers_sync, "egress CircuitBreaker (Pipeline)", "bare call")
    core_a = over(breakers_async, "egress Pipeline() without policies", "bare await")
    five_a = over(pipelines_async, "  + RateLimiter (all five)", "bare await")
    peer_five = over(pipelines_async, "tenacity + aiobreaker", "bare await")
    mem = memory["egress BreakerRegistry.get x N"]

    print("\nTargets")
    print(f"  breaker <= 1/3 cheapest peer, async @breaker : {deco_a / peers_async:.3f} "
          f"of {peers_async:.3f} us  {verdict(deco_a * 3 <= peers_async)}")
    print(f"    same, slow-call detection on (60 s)        : {timed_a / peers_async:.3f}  "
          f"{verdict(timed_a * 3 <= peers_async)}")
    print(f"  breaker <= 1/3 cheapest peer, async Pipeline : {pipe_a / peers_async:.3f}  "
          f"{verdict(pipe_a * 3 <= peers_async)}  (Pipeline core alone: {core_a:.3f} us, "
          f"breaker step: {pipe_a - core_a:.3f} us)")
    print(f"  breaker <= 1/3 cheapest peer, sync @breaker  : {deco_s / peers_sync:.3f} "
          f"of {peers_sync:.3f} us  {verdict(deco_s * 3 <= peers_sync)}")
    print(f"    same, slow-call detection on (60 s)        : {timed_s / peers_sync:.3f}  "
          f"{verdict(timed_s * 3 <= peers_sync)}")
    print(f"  breaker <= 1/3 cheapest peer, sync Pipeline  : {pipe_s / peers_sync:.3f}  "
          f"{verdict(pipe_s * 3 <= peers_sync)}")
    print(f"  five policies <= 1/5 tenacity + aiobreaker   : {five_a / peer_five:.3f}  "
          f"{verdict(five_a * 5 <= peer_five)}")
    print(f"  {args.breakers} breakers < 30 MB                  : {mem:.2f} MB  "
          f"{verdict(mem < 30 * args.breakers / 10_000)}")


if __name__ == "__main__":
    main()
