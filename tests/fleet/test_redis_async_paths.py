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

from egress import CircuitBreaker, Pipeline, Retry, RetryBudget
from egress.errors import TransportError
from egress.policies.retry import Backoff
from egress.stores.redis import RedisStore


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
