"""Redis Cluster through redis-py's own cluster clients: every script's keys in one slot.

A one-node cluster holding all 16384 slots is enough to prove it: in cluster mode Redis refuses
(CROSSSLOT) any script whose keys hash to different slots, even on a single node.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from egress import RateLimiter, RetryBudget
from egress.payments import IdempotencyRecord, RecordState
from egress.stores.redis import RedisIdempotencyStore, RedisLimiterState, RedisStore
from egress.stores.redis._server import LocalRedisServer, free_port, redis_server_binary


@pytest.fixture
def cluster() -> Iterator[LocalRedisServer]:
    if redis_server_binary() is None:
        pytest.fail("redis-server is required (scripts/test installs it)")
    port = free_port()
    while port > 55535:  # a cluster node also listens on port + 10000
        port = free_port()
    server = LocalRedisServer(port, args=("--cluster-enabled", "yes",
                                          "--cluster-config-file", "nodes.conf")).start()
    admin = redis.Redis(port=server.port)
    admin.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
    end = time.monotonic() + 20
    while b"cluster_state:ok" not in admin.execute_command("CLUSTER", "INFO"):
        assert time.monotonic() < end, "the one-node cluster never became ready"
        time.sleep(0.05)
    admin.close()
    yield server
    server.stop()


@pytest.fixture
async def stores(cluster: LocalRedisServer) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    made = [RedisStore(client=redis.RedisCluster(host="127.0.0.1", port=cluster.port),
                       async_client=redis.asyncio.RedisCluster(host="127.0.0.1",
                                                               port=cluster.port),
                       breaker_quorum=2)
            for _ in range(2)]
    yield made[0], made[1]
    for store in made:
        await store.aclose()
        store.close()


async def test_limiter_and_pause_on_a_cluster(stores: tuple[RedisStore, RedisStore]) -> None:
    # One slot a second: b's wait cannot run out between two calls on a loaded machine.
    a, b = (RateLimiter(1, name="stripe", store=s)._state for s in stores)
    assert isinstance(a, RedisLimiterState) and isinstance(b, RedisLimiterState)
    assert a.reserve(time.monotonic(), 1.0) == 0.0
    assert await b.reserve_async(time.monotonic(), 1.0) > 0  # the same bucket: b waits
    paused = time.monotonic()
    assert a.pause_until(paused + 3.0)  # from a loop: written in the background
    await stores[0].link.settle()
    # Paused by a: b waits until the pause ends (the bucket alone: under 2 s), however long the
    # write and the settle took on a loaded machine (a flat "> 2.5" fails after a 0.5 s stall).
    now = time.monotonic()
    assert b.reserve(now, 5.0) > paused + 3.0 - now - 0.05
    assert not stores[0].down and not stores[1].down


def test_budget_on_a_cluster(stores: tuple[RedisStore, RedisStore]) -> None:
    budget = RetryBudget(percent=0.0, min_per_second=0.1, window=10.0, name="stripe",
                         store=stores[0]).state()
    budget.record_call(time.monotonic())
    assert budget.try_retry(time.monotonic(), False) == 1.0
    assert not stores[0].down


async def test_idempotency_on_a_cluster(cluster: LocalRedisServer) -> None:
    store = RedisIdempotencyStore(
        client=redis.RedisCluster(host="127.0.0.1", port=cluster.port),
        async_client=redis.asyncio.RedisCluster(host="127.0.0.1", port=cluster.port))
    record = IdempotencyRecord.new("scope", "create", "o-1", "fp", 100.0)
    assert (await store.reserve(record))[1]
    done = record.with_state(RecordState.SUCCEEDED, 101.0, "pi_1")
    assert await store.replace(done, expected_key=record.key)
    assert await store.get(*record.ident) == done
    assert await store.purge(1000.0) == 1
    # The blocking face and the doubt index: the scope set and each scope's keys in their slots.
    second = IdempotencyRecord.new("scope", "create", "o-2", "fp", 200.0)
    assert store.reserve_sync(second)[1]
    doubt = second.with_state(RecordState.UNKNOWN, 201.0)
    assert store.replace_sync(doubt, expected_key=second.key)
    assert store.in_doubt_sync(5) == (1, [doubt]) == await store.in_doubt(5)
    assert store.purge_sync(1000.0) == 1 and store.in_doubt_sync(5) == (0, [])
    await store.aclose()
    store.close()
