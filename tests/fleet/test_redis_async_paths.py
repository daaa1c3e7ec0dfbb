"""The async paths of the shared states await redis.asyncio: never the sync client's socket.

A sync Redis round trip from a coroutine blocks the event loop (every other task) for as long as
Redis takes to answer, up to the link's timeout. So the retry budget (its flush and its retry
decision) and the breaker signal, driven by an async pipeline, must use the asyncio client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from egress import CircuitBreaker, Pipeline, RateLimiter, Retry, RetryBudget
from egress.errors import RateLimitedError, StatusError, TransportError
from egress.payments import IdempotencyRecord, RecordState
from egress.policies.retry import Backoff
from egress.stores.redis import RedisIdempotencyStore, RedisStore


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, prefix=prefix, breaker_quorum=2)
    yield store
    await store.aclose()
    store.close()


@pytest.fixture
def sync_calls_in_a_loop(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every sync-client command run while an event loop runs in this thread."""
    seen: list[str] = []
    original = redis.Redis.execute_command

    def spy(self: Any, *args: Any, **options: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            seen.append(str(args[0]))
        return original(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", spy)
    return seen


async def test_an_async_retry_budget_never_uses_the_sync_client(
        store: RedisStore, sync_calls_in_a_loop: list[str]) -> None:
    budget = RetryBudget(percent=0.0, min_per_second=0.1, window=10.0, name="b", store=store)
    retry = Retry(on=TransportError, budget=budget, backoff=Backoff(initial=0.001, cap=0.001))
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransportError("reset", sent=False)
        return "ok"

    assert await Pipeline(retry).execute("op", flaky) == "ok"  # a flush and a granted retry
    assert calls == 2
    assert sync_calls_in_a_loop == []
    assert not store.down


async def test_an_async_breaker_reports_through_the_async_client(
        store: RedisStore, sync_calls_in_a_loop: list[str]) -> None:
    cb = CircuitBreaker("stripe", minimum_calls=100, store=store)

    async def broken() -> None:
        raise TransportError("reset", sent=False)

    with pytest.raises(TransportError):
        await Pipeline(cb).execute("charge", broken)
    assert cb._state.failing_instances == 1  # reported to Redis
    assert sync_calls_in_a_loop == []


def test_sync_callers_keep_the_sync_client(store: RedisStore) -> None:
    budget = RetryBudget(percent=0.0, min_per_second=0.1, window=10.0, name="s", store=store)
    state = budget.state()
    state.record_call(1.0)
    assert state.try_retry(1.0, False) == 1.0  # the shared floor: one retry in the window
    assert state.try_retry(1.0, False) is None


async def test_an_async_server_hint_pauses_the_fleet_through_the_async_client(
        store: RedisStore, redis_url: str, prefix: str,
        sync_calls_in_a_loop: list[str]) -> None:
    """A 429 with Retry-After seen by an async caller: the shared pause is written by
    redis.asyncio (in the background), and a second instance sees it."""
    limiter = RateLimiter(1000.0, name="hint", store=store)

    async def throttled() -> None:
        raise RateLimitedError("429", retry_after=30.0)

    with pytest.raises(RateLimitedError):
        await Pipeline(limiter).execute("charge", throttled)
    assert sync_calls_in_a_loop == []
    await store.link.settle()
    other = RedisStore(redis_url, prefix=prefix)
    try:
        other_state = RateLimiter(1000.0, name="hint", store=other)._state
        now = other_state._link.clock.now()
        assert other_state.reserve(now, 0.0) < 0  # refused: the fleet is paused
        assert 25.0 < other_state.paused_for(now) <= 30.0
    finally:
        other.close()


async def test_an_async_throttle_without_a_hint_uses_the_async_client(
        store: RedisStore, sync_calls_in_a_loop: list[str]) -> None:
    limiter = RateLimiter(1000.0, name="slow", store=store)

    async def throttled() -> None:
        raise StatusError(429)  # no Retry-After: Stripe's usual "slow down"

    with pytest.raises(StatusError):
        await Pipeline(limiter).execute("charge", throttled)
    assert limiter._state.paused_for(limiter._state._link.clock.now()) > 0  # applied at once
    assert sync_calls_in_a_loop == []


async def test_a_cancelled_async_waiter_refunds_through_the_async_client(
        store: RedisStore, sync_calls_in_a_loop: list[str]) -> None:
    limiter = RateLimiter(2.0, burst=1, max_wait=5.0, name="refund", store=store)
    state = limiter._state

    async def ok() -> str:
        return "ok"

    assert await Pipeline(limiter).execute("a", ok) == "ok"  # takes the only slot
    waiter = asyncio.create_task(Pipeline(limiter).execute("b", ok))  # waits ~0.5 s
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await store.link.settle()
    assert sync_calls_in_a_loop == []
    # The slot came back: the next reservation waits for the first slot's interval, not two.
    wait = await state.reserve_async(state._link.clock.now(), 5.0)
    assert 0.0 < wait <= 0.5



async def test_a_pause_during_an_async_wait_reserves_again_through_the_async_client(
        store: RedisStore, sync_calls_in_a_loop: list[str]) -> None:
    limiter = RateLimiter(4.0, burst=1, max_wait=5.0, name="repause", store=store)

    async def ok() -> str:
        return "ok"

    loop = asyncio.get_running_loop()
    assert await Pipeline(limiter).execute("a", ok) == "ok"  # takes the only slot
    began = loop.time()
    waiter = asyncio.create_task(Pipeline(limiter).execute("b", ok))  # waits ~0.25 s
    await asyncio.sleep(0.05)
    limiter.cooldown(0.6)  # a server hint: the waiter wakes inside the pause, reserves again
    assert await waiter == "ok"
    assert loop.time() - began >= 0.6
    assert sync_calls_in_a_loop == []


async def test_the_async_idempotency_store_never_uses_the_sync_client(
        idempotency_store: RedisIdempotencyStore, sync_calls_in_a_loop: list[str]) -> None:
    record = IdempotencyRecord.new("scope", "create", "o-1", "fp", 100.0)
    await idempotency_store.reserve(record)
    doubt = record.with_state(RecordState.UNKNOWN, 101.0)
    assert await idempotency_store.replace(doubt, expected_key=record.key)
    assert await idempotency_store.in_doubt(3) == (1, [doubt])
    assert await idempotency_store.get(*record.ident) == doubt
    assert await idempotency_store.purge(1000.0) == 1
    assert sync_calls_in_a_loop == []
