"""Redis trouble never breaks a call: a real redis-server killed, frozen and restarted.

Each test runs its own redis-server (``private_redis``) so killing it touches nobody else.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from egress import RateLimiter, RetryBudget
from egress.errors import SharedStateUnavailableError
from egress.payments import IdempotencyRecord
from egress.stores.redis import (
    RedisIdempotencyStore,
    RedisLimiterState,
    RedisStore,
    SharedStateRestored,
    SharedStateUnavailable,
)
from egress.stores.redis._server import LocalRedisServer
from egress.testing import RecordingSink


def until(condition: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll ``condition`` (bounded in time) for what happens after a backoff."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
async def store(private_redis: LocalRedisServer, sink: RecordingSink,
                prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(private_redis.url, prefix=prefix, retry_min=0.1, retry_max=0.2, sink=sink)
    yield store
    await store.aclose()
    store.close()


def limiter_state(store: RedisStore, rate: float = 100.0) -> RedisLimiterState:
    st = RateLimiter(rate, burst=4, name="stripe", store=store)._state
    assert isinstance(st, RedisLimiterState)
    return st


def test_a_dead_redis_means_local_limits_one_event_and_a_return(
        private_redis: LocalRedisServer, store: RedisStore, sink: RecordingSink) -> None:
    st = limiter_state(store)
    assert st.reserve(time.monotonic(), 1.0) == 0.0 and not store.down
    private_redis.kill()
    began = time.monotonic()
    granted = sum(st.reserve(time.monotonic(), 0.0) >= 0 for _ in range(200))
    assert time.monotonic() - began < 5.0  # refused connections: no waiting on a dead Redis
    assert store.down
    assert 1 <= granted <= 30  # the local fallback: its burst and rate, not 200
    assert [type(e) for e in sink.events] == [SharedStateUnavailable]
    assert sink.events[0].error == "ConnectionError"
    private_redis.start()
    assert until(lambda: st.reserve(time.monotonic(), 1.0) >= 0 and not store.down)
    assert [type(e) for e in sink.events] == [SharedStateUnavailable, SharedStateRestored]


def test_a_frozen_redis_costs_one_timeout_then_nothing(
        private_redis: LocalRedisServer, store: RedisStore, sink: RecordingSink) -> None:
    st = limiter_state(store)
    assert st.reserve(time.monotonic(), 1.0) == 0.0
    private_redis.pause()
    try:
        began = time.monotonic()
        st.reserve(time.monotonic(), 1.0)
        assert store.down
        assert time.monotonic() - began < 2.0  # the 0.25 s timeout, with room for a loaded box
        began = time.monotonic()
        for _ in range(50):  # down: no call waits for Redis until the next probe
            st.reserve(time.monotonic(), 1.0)
        assert time.monotonic() - began < 2.0
        assert sink.of(SharedStateUnavailable)[0].error == "TimeoutError"
    finally:
        private_redis.resume()
    assert until(lambda: st.reserve(time.monotonic(), 1.0) >= 0 and not store.down)


async def test_the_async_driver_falls_back_too(private_redis: LocalRedisServer,
                                               store: RedisStore) -> None:
    st = limiter_state(store)
    assert await st.reserve_async(time.monotonic(), 1.0) == 0.0
    private_redis.kill()
    assert await st.reserve_async(time.monotonic(), 1.0) >= 0.0  # local, not an exception
    assert store.down
    private_redis.start()
    for _ in range(500):
        await st.reserve_async(time.monotonic(), 1.0)
        if not store.down:
            break
        time.sleep(0.02)
    assert not store.down


async def test_the_fallback_takes_this_instance_s_share(private_redis: LocalRedisServer,
                                                        store: RedisStore, prefix: str) -> None:
    peers = [RedisStore(private_redis.url, prefix=prefix) for _ in range(3)]
    for other in peers:
        limiter_state(other).reserve(time.monotonic(), 1.0)  # each instance says it is there
    st = limiter_state(store)
    st.reserve(time.monotonic(), 1.0)
    assert st.fallback.settings == (25.0, 1)  # 100/s and a burst of 4 over 4 instances
    fixed = RedisStore(private_redis.url, prefix=prefix, fleet_size=10)
    assert limiter_state(fixed).fallback.settings == (10.0, 1)
    for other in [*peers, fixed]:
        other.close()


def test_the_budget_is_shared_then_local_when_redis_dies(
        private_redis: LocalRedisServer, store: RedisStore, prefix: str) -> None:
    peer = RedisStore(private_redis.url, prefix=prefix)
    closed = RedisStore(private_redis.url, prefix=prefix, fail_open=False)
    # No ratio, a floor of 2 retries per window: the fleet together gets 2.
    budgets = [RetryBudget(percent=0.0, min_per_second=0.2, window=10.0, name="stripe",
                           store=s).state() for s in (store, peer, closed)]
    now = time.monotonic()
    for b in budgets:
        b.record_call(now)
    assert budgets[0].try_retry(now, False) == 1.0
    assert budgets[1].try_retry(now, False) == 1.0
    assert budgets[0].try_retry(now, False) is None  # the fleet's two are taken
    assert budgets[2].try_retry(now, False) is None
    private_redis.kill()
    assert budgets[1].try_retry(now, False) == 1.0  # fail-open: its own local budget decides
    assert budgets[2].try_retry(now, False) is None  # fail-closed: no retries without Redis
    peer.close()
    closed.close()


async def test_idempotency_claims_fail_closed(private_redis: LocalRedisServer,
                                              prefix: str) -> None:
    store = RedisIdempotencyStore(private_redis.url, prefix=prefix)
    record = IdempotencyRecord.new("scope", "create", "o-1", "fp", 1000.0)
    assert (await store.reserve(record))[1]
    private_redis.kill()
    with pytest.raises(SharedStateUnavailableError, match="nothing was sent"):
        await store.reserve(IdempotencyRecord.new("scope", "create", "o-2", "fp", 1000.0))
    with pytest.raises(SharedStateUnavailableError):
        await store.get("scope", "create", "o-1")
    private_redis.start()  # an empty Redis: this one ran without persistence
    for _ in range(500):
        try:
            assert (await store.reserve(record))[0] == record
            break
        except SharedStateUnavailableError:
            time.sleep(0.02)
    else:
        pytest.fail("the idempotency store never came back")
    await store.aclose()
    store.close()


async def test_a_frozen_redis_does_not_freeze_the_loop_of_an_async_budget(
        private_redis: LocalRedisServer, store: RedisStore, sink: RecordingSink) -> None:
    import asyncio

    state = RetryBudget(name="stripe", store=store).state()
    assert await state.try_retry_async(time.monotonic(), False) == 1.0  # type: ignore[attr-defined]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    private_redis.pause()
    try:
        # The round trip times out (0.25 s) while the other task keeps running; then the
        # local budget decides (fail-open), with one event.
        assert await state.try_retry_async(time.monotonic(), False) == 1.0  # type: ignore[attr-defined]
        assert store.down
        assert ticks >= 5
        assert sink.of(SharedStateUnavailable)[0].error == "TimeoutError"
        await state.record_call_async(time.monotonic())  # type: ignore[attr-defined]  # down: local
    finally:
        private_redis.resume()
        task.cancel()
    for _ in range(500):
        await state.try_retry_async(time.monotonic(), False)  # type: ignore[attr-defined]
        if not store.down:
            break
        await asyncio.sleep(0.01)
    assert not store.down
    assert [type(e) for e in sink.events] == [SharedStateUnavailable, SharedStateRestored]


@pytest.mark.parametrize("garbage", [
    b"not json", b"[]", b"{}", b'{"scope": "s"}', b"\xff\xfe", b"1e999999",
    b'{"scope":"s","operation":"create","reference":"r","key":"k","generation":"x",'
    b'"fingerprint":"f","state":"nope","created_at":1,"updated_at":1,"result_id":null}',
])
async def test_a_record_that_is_not_ours_fails_closed_with_a_typed_error(
        idempotency_store: RedisIdempotencyStore, garbage: bytes) -> None:
    """Another writer (or an older format) left something else under a record's key: the claim
    must neither guess nor crash with a bare KeyError/ValueError; nothing is sent."""
    record = IdempotencyRecord.new("scope", "create", "order-9", "fp", 100.0)
    key = idempotency_store._keys(*record.ident)[0]
    await idempotency_store._link.async_client().set(key, garbage)
    with pytest.raises(SharedStateUnavailableError, match="not an egress record") as caught:
        await idempotency_store.reserve(record)
    assert "order-9" not in str(caught.value)
    with pytest.raises(SharedStateUnavailableError, match="not an egress record"):
        await idempotency_store.get(*record.ident)
