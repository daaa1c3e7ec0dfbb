"""The Redis rate limiter keeps the local limiter's semantics, shared by every instance.

Two ``RedisStore`` objects on one Redis stand for two processes (the process tests are in
test_fleet_processes.py). Time is Redis's own (``TIME`` in the script), so these tests use the
system clock with wide margins, never tight wall-clock bounds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis
from redis.crc import key_slot

from egress import Pipeline, RateLimiter
from egress.errors import ConfigurationError, RateLimitedError, StatusError
from egress.stores.redis import RedisLimiterState, RedisStore

# 500 ms between slots: reservations are only computed (never slept), so a slow rate costs no
# time and leaves room for a loaded box to stall between two calls without changing the answer.
RATE = 2.0


@pytest.fixture
async def peer(redis_url: str, prefix: str) -> AsyncIterator[RedisStore]:
    """A second store on the same Redis and prefix: another instance of the fleet."""
    store = RedisStore(redis_url, prefix=prefix)
    yield store
    await store.aclose()
    store.close()


def limiter(store: RedisStore, *, burst: int = 1, max_wait: float = 5.0,
            rate: float = RATE) -> RateLimiter:
    return RateLimiter(rate, burst=burst, max_wait=max_wait, name="stripe", store=store)


def state(lim: RateLimiter) -> RedisLimiterState:
    st = lim._state
    assert isinstance(st, RedisLimiterState)
    return st


def test_a_named_limiter_lives_in_redis_and_keeps_its_settings(redis_store: RedisStore) -> None:
    lim = limiter(redis_store, burst=3)
    assert state(lim).settings == (RATE, 3)
    assert state(limiter(redis_store, burst=3)) is state(lim)  # one state per name per store
    with pytest.raises(ConfigurationError, match="other settings"):
        limiter(redis_store, burst=2)


def test_the_burst_is_shared_and_reservations_queue_across_instances(
        redis_store: RedisStore, peer: RedisStore) -> None:
    a, b = state(limiter(redis_store, burst=3)), state(limiter(peer, burst=3))
    now = time.monotonic()
    assert [a.reserve(now, 1.0), b.reserve(now, 1.0), a.reserve(now, 1.0)] == [0.0, 0.0, 0.0]
    # The bucket is empty for both: the next slots are reserved in arrival order, 1/RATE apart.
    w1, w2 = b.reserve(time.monotonic(), 5.0), a.reserve(time.monotonic(), 5.0)
    assert 0.0 < w1 <= 0.5 + 0.05
    assert w1 + 0.25 < w2 <= 1.0 + 0.05
    # max_wait too short: nothing reserved, minus the seconds until a slot frees.
    refused = b.reserve(time.monotonic(), 0.25)
    assert -1.55 < refused < -0.75
    assert 0.75 < a.reserve(time.monotonic(), 5.0) <= 1.5 + 0.05  # the refusal took no slot


def test_a_deadline_before_the_slot_refuses(redis_store: RedisStore) -> None:
    st = state(limiter(redis_store))
    now = time.monotonic()
    assert st.reserve(now, 5.0) == 0.0
    assert st.reserve(now, 5.0, deadline=now + 0.05) < 0
    assert st.reserve(now, 5.0, deadline=now + 5.0) > 0


def test_a_refusal_is_a_rate_limited_error_with_retry_after(
        redis_store: RedisStore, peer: RedisStore) -> None:
    Pipeline(limiter(redis_store, max_wait=0.0)).execute_sync("charge", lambda: "ok")
    with pytest.raises(RateLimitedError) as caught:
        Pipeline(limiter(peer, max_wait=0.0)).execute_sync("charge", lambda: "ok")
    assert caught.value.retry_after is not None
    assert 0.0 < caught.value.retry_after <= 0.5 + 0.05
    assert caught.value.limiter == "stripe"


async def test_the_async_driver_awaits_redis_and_spaces_calls(redis_store: RedisStore,
                                                              peer: RedisStore) -> None:
    pipelines = [Pipeline(limiter(redis_store, rate=10)), Pipeline(limiter(peer, rate=10))]
    started: list[float] = []

    async def call() -> None:
        started.append(time.monotonic())

    begin = time.monotonic()
    await asyncio.gather(*(pipelines[i % 2].execute("charge", call) for i in range(6)))
    assert len(started) == 6
    assert redis_store.link._async is not None  # reserved through redis.asyncio, not blocking
    assert max(started) - begin >= 0.5 - 0.02  # 6 calls at 10/s: the last 0.5 s after the first


def test_a_server_hint_pauses_every_instance(redis_store: RedisStore, peer: RedisStore) -> None:
    mine, theirs = limiter(redis_store), limiter(peer)
    hint = StatusError(429, retry_after=2.0)

    def throttled() -> None:
        raise hint

    with pytest.raises(StatusError):
        Pipeline(mine).execute_sync("charge", throttled)
    wait = state(theirs).reserve(time.monotonic(), 5.0)
    assert 1.0 < wait <= 2.0 + 0.1  # the peer never saw the 429, yet it waits for the pause
    assert state(mine).paused_for(time.monotonic()) > 1.0
    # A hint ending before the current pause is not a new pause (and emits nothing).
    assert not state(theirs).pause_until(time.monotonic() + 0.05)


def test_keys_of_one_limiter_hash_to_one_cluster_slot(redis_url: str, prefix: str,
                                                      redis_store: RedisStore) -> None:
    lim = RateLimiter(RATE, name="pay{ments}", store=redis_store)
    state(lim).reserve(time.monotonic(), 1.0)
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    client.close()
    assert len(keys) == 2  # the tat and the instances (no pause yet)
    assert len({key_slot(k) for k in keys}) == 1


def test_the_script_is_reloaded_after_a_script_flush(redis_url: str,
                                                     redis_store: RedisStore) -> None:
    st = state(limiter(redis_store, burst=2))
    assert st.reserve(time.monotonic(), 1.0) == 0.0
    client = redis.Redis.from_url(redis_url)
    client.script_flush()
    client.close()
    assert st.reserve(time.monotonic(), 1.0) == 0.0  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA
    assert not redis_store.down


def test_a_cancelled_wait_gives_its_slot_back(redis_store: RedisStore, peer: RedisStore) -> None:
    a, b = state(limiter(redis_store)), state(limiter(peer))
    now = time.monotonic()
    assert a.reserve(now, 1.0) == 0.0
    wait = a.reserve(now, 1.0)
    assert wait > 0
    a.refund(now, wait)
    assert 0 < b.reserve(time.monotonic(), 5.0) <= 0.5 + 0.02  # the refunded slot, not the next
