"""``egress demo --workers N``: a fleet of worker processes sharing one Stripe account.

The workers share, through Redis, what a fleet must share: the provider's rate limit (one
``RateLimiter`` on a ``RedisStore``), the retry budget, and the idempotency records
(``RedisIdempotencyStore``), so a payment submitted by two workers at once is charged once.
Breakers stay local to each worker (see ``docs/fleet.md``). The parent process runs the fake
Stripe, samples how many requests reach it per second, and checks the same ledger invariant as
the single-process demo.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from egress import Pipeline
from egress.adapters.stripe import StripePayments, stripe_retry_hook
from egress.errors import ConfigurationError
from egress.events import Event
from egress.http import retry_on
from egress.payments import PaymentRequest
from egress.policies.breaker import CircuitBreaker
from egress.policies.budget import RetryBudget
from egress.policies.ratelimit import RateLimiter
from egress.policies.retry import Retry
from egress.stores.redis import (
    LocalRedisServer,
    RedisIdempotencyStore,
    RedisStore,
    SharedStateUnavailable,
    redis_server_binary,
)
from egress.testing.fake_stripe import FakeStripe

__all__ = ["FLEET_RATE_LIMIT", "FleetOptions", "run_fleet"]

#: The limit the whole fleet shares (Stripe's live-mode limit): however many workers run, the
#: provider sees at most this many requests per second.
FLEET_RATE_LIMIT: Final = 100.0
FLEET_BURST: Final = 10
#: Every tenth payment is also submitted by a second worker, as a double-clicked checkout
#: reaching two web servers would be: the shared idempotency store must charge it once.
DUPLICATE_EVERY: Final = 10
_START_TIMEOUT: Final = 120.0
_SAMPLE_EVERY: Final = 0.1
_PEAK_WINDOW: Final = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetOptions:
    """How many worker processes, and which Redis (None: start a private redis-server)."""

    workers: int
    redis_url: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 64:
            raise ValueError("--workers must be between 1 and 64")
        if self.redis_url is None and redis_server_binary() is None:
            raise ValueError("--workers needs Redis: give --redis redis://HOST:PORT, or install "
                             "redis-server (Debian/Ubuntu: apt-get install redis-server) so the "
                             "demo can start a private one on a free loopback port")


def _share(plan: list[PaymentRequest], index: int, workers: int) -> list[PaymentRequest]:
    mine = []
    for i, request in enumerate(plan):
        if i % workers == index:
            mine.append(request)
        elif workers > 1 and i % DUPLICATE_EVERY == 0 and (i + 1) % workers == index:
            mine.append(request)  # the same payment, submitted by a second worker
    return mine


class _WorkerSink:
    def __init__(self) -> None:
        self.retries = 0
        self.redis_failures = 0

    def emit(self, event: Event) -> None:
        if event.kind == "retry.scheduled":
            self.retries += 1
        elif isinstance(event, SharedStateUnavailable):
            self.redis_failures += 1


@dataclass(frozen=True, slots=True)
class _Job:
    """What one worker process is given (pickled to it)."""

    index: int
    workers: int
    options: Any  # DemoOptions
    stripe_url: str
    api_key: str
    redis_url: str
    prefix: str


def _worker(job: _Job, barrier: Any, results: Any) -> None:
    """One worker process: its share of the plan, through the shared Redis state."""
    index, options, redis_url, prefix = job.index, job.options, job.redis_url, job.prefix
    from egress.demo._scenario import (
        DEMO_SETTLE_AFTER,
        DEMO_TIMEOUTS,
        Progress,
        _reconcile,
        _submit,
        plan_payments,
    )

    mine = _share(plan_payments(options), index, job.workers)
    sink = _WorkerSink()
    progress = Progress(total=len(mine))

    async def main() -> dict[str, Any]:
        shared = RedisStore(redis_url, prefix=prefix, sink=sink)
        keys = RedisIdempotencyStore(redis_url, prefix=prefix)
        pipeline = Pipeline(
            Retry(on=retry_on(stripe_retry_hook),
                  budget=RetryBudget(name="stripe", store=shared)),
            CircuitBreaker(f"stripe-{index}", store=None, sink=sink),  # local by design
            RateLimiter(FLEET_RATE_LIMIT, burst=FLEET_BURST, name="stripe", store=shared,
                        sink=sink),
            sink=sink)
        payments = StripePayments(job.api_key, base_url=job.stripe_url, store=keys,
                                  rate_limit=None,
                                  pipeline=pipeline, timeouts=DEMO_TIMEOUTS,
                                  settle_after=DEMO_SETTLE_AFTER, sink=sink)
        paid: set[str] = set()
        unknown: list[PaymentRequest] = []
        gate = asyncio.Semaphore(options.concurrency)

        reconciled: Counter[str] = Counter()
        barrier.wait(timeout=_START_TIMEOUT)
        released_at = time.perf_counter()
        async with payments:
            await asyncio.gather(*(_submit(payments, request, gate=gate, progress=progress,
                                           paid=paid, unknown=unknown) for request in mine))
            pending = await _reconcile(payments, unknown, paid, reconciled)
        await shared.aclose()
        await keys.aclose()
        shared.close()
        keys.close()
        return {"paid": sorted(paid), "unknown": pending, "outcomes": dict(progress.outcomes),
                "reconciled": dict(reconciled), "retries": sink.retries,
                "latencies": progress.latencies, "submitted": len(mine),
                "redis_failures": sink.redis_failures, "released_at": released_at}

    try:
        results.put(asyncio.run(main()))
    except BaseException as exc:
        results.put({"error": f"worker {index}: {type(exc).__name__}: {exc}"})
        raise


def _context() -> Any:
    # A fork server imports egress once and forks each worker from it; spawn where it is missing.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["egress.demo._fleet", "egress.demo._scenario"])
        return ctx
    return multiprocessing.get_context("spawn")


def _rates(samples: list[tuple[float, int]]) -> tuple[float, float, float]:
    """(mean, peak, span): requests per second, mean over the run (``span`` seconds), peak over
    any 2 s window (shorter windows mostly measure how requests bunch on their way through a
    busy host). ``samples[0]`` is the moment the workers were released with the count before
    it. A limit of ``rate`` with ``burst`` lets ``rate + burst / span`` through on average, so
    a short run's mean may exceed ``rate`` without breaking the limit."""
    busy = [(t, n) for (t, n), (_, before) in zip(samples[1:], samples, strict=False)
            if n != before]
    if len(samples) < 2 or not busy:
        return 0.0, 0.0, 0.0
    # The span runs from the release (no slot can be reserved before it) to the first sample
    # after the last request. It started at the first request's arrival once, and a loaded host
    # delayed that arrival by half a second after slots were already being reserved: the span
    # lost that half second and the mean rose above what the limit allows (seen once).
    last_t, last_n = busy[-1]
    span = max(last_t - samples[0][0], 1e-9)
    mean = (last_n - samples[0][1]) / span
    peak = 0.0
    j = 0
    for t, n in samples:
        while samples[j][0] < t - _PEAK_WINDOW:
            j += 1
        if t - samples[j][0] >= _PEAK_WINDOW - 0.1:
            peak = max(peak, (n - samples[j][1]) / (t - samples[j][0]))
    return mean, peak, span


def _check_reachable(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        client.ping()
        client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise ConfigurationError(f"egress demo: cannot reach the Redis given with --redis "
                                 f"({type(exc).__name__})") from None


def run_fleet(options: Any, fleet: FleetOptions, fake: FakeStripe, progress: Any,
              ) -> tuple[set[str], set[str], dict[str, int], dict[str, Any]]:
    """Run the workers against ``fake``; fill ``progress``; return paid, unknown, reconciled and
    the fleet's figures."""
    server = None if fleet.redis_url else LocalRedisServer().start()
    url = fleet.redis_url or (server.url if server else "")
    _check_reachable(url)
    prefix = f"egress-demo-{uuid.uuid4().hex[:8]}"
    ctx = _context()
    barrier = ctx.Barrier(fleet.workers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, daemon=True,
                         args=(_Job(i, fleet.workers, options, fake.url, fake.api_key, url,
                                    prefix), barrier, results))
             for i in range(fleet.workers)]
    try:
        for proc in procs:
            proc.start()
        before = fake.stats().get("requests", 0)
        barrier.wait(timeout=_START_TIMEOUT)
        samples = [(time.perf_counter(), before)]
        done: list[dict[str, Any]] = []
        while len(done) < fleet.workers:
            try:
                done.append(results.get(timeout=_SAMPLE_EVERY))
            except queue_module.Empty:
                if all(not p.is_alive() for p in procs) and results.empty():
                    raise ConfigurationError("egress demo: the workers stopped without a "
                                             "report") from None
            samples.append((time.perf_counter(), fake.stats().get("requests", 0)))
            progress.done = sum(r.get("submitted", 0) for r in done)
        for proc in procs:
            proc.join(timeout=30)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
        if server is not None:
            server.stop()
    errors = [r["error"] for r in done if "error" in r]
    if errors:
        raise ConfigurationError("egress demo: " + "; ".join(errors))
    paid: set[str] = set()
    unknown: set[str] = set()
    reconciled: Counter[str] = Counter()
    for r in done:
        paid.update(r["paid"])
        unknown.update(r["unknown"])
        progress.outcomes.update(r["outcomes"])
        reconciled.update(r["reconciled"])
        progress.retries += r["retries"]
        progress.latencies.extend(r["latencies"])
    unknown -= paid  # a duplicate submission may have settled what the other worker did not
    # perf_counter is one system-wide monotonic clock here, so a worker's release time compares
    # with the sampler's; the earliest release starts the run even if this process woke late.
    released = min([samples[0][0]] + [r["released_at"] for r in done])
    samples[0] = (min(released, samples[0][0]), samples[0][1])
    mean, peak, span = _rates(samples)
    info = {
        "workers": fleet.workers,
        "redis": "given URL" if fleet.redis_url else "private redis-server on loopback",
        "shared_rate_limit": FLEET_RATE_LIMIT,
        "aggregate_rate_mean": round(mean, 1),
        "aggregate_rate_peak_2s": round(peak, 1),
        "busy_seconds": round(span, 2),
        "submissions": sum(r["submitted"] for r in done),
        "submitted_twice": sum(r["submitted"] for r in done) - progress.total,
        "redis_failures": sum(r["redis_failures"] for r in done),
    }
    return paid, unknown, dict(reconciled), info
