"""Redis Sentinel: a ``redis+sentinel://`` URL, opened by redis-py's own Sentinel clients.

A real master, a real replica and a real sentinel (``redis-server --sentinel``) on loopback. The
master is killed: calls go on from local state without an unexpected error, the sentinel
promotes the replica, and the store comes back to shared state on the new master by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from egress import RateLimiter
from egress.errors import ConfigurationError, SharedStateUnavailableError
from egress.payments import IdempotencyRecord
from egress.stores.redis import (
    RedisIdempotencyStore,
    RedisLimiterState,
    RedisStore,
    SharedStateRestored,
    SharedStateUnavailable,
)
from egress.stores.redis._sentinel import parse_sentinel_url
from egress.stores.redis._server import LocalRedisServer, free_port, redis_server_binary
from egress.testing import RecordingSink

SERVICE = "egress-main"
# How long the sentinel waits without a PING reply before it judges an instance down. Until the
# test kills the master it is far beyond any stall of a loaded machine: at 400 ms a load of ~10
# made the sentinel judge a live instance down (a spurious failover, or the promoted master
# reported as down). Just before the kill it drops to FAST_DOWN_AFTER, so that the failover
# follows quickly; once the store is back it is raised again.
PATIENT_DOWN_AFTER = 60_000
FAST_DOWN_AFTER = 1_000
# Bounds the failover and every recovery after the kill: a few seconds when quiet; an aborted
# failover attempt (no replica good enough at that instant) is retried by the sentinel after
# twice its failover-timeout (6 s). Still within pytest's 120 s timeout with the setup.
FAILOVER_WITHIN = 60.0

# -- the URL ---------------------------------------------------------------------------------------


def test_a_sentinel_url_names_sentinels_service_db_and_credentials() -> None:
    target = parse_sentinel_url(
        "redis+sentinel://app:s3cr%40t@10.0.0.1:26380,sentinel-b/payments/3")
    assert target.sentinels == (("10.0.0.1", 26380), ("sentinel-b", 26379))
    assert (target.service, target.db, target.username, target.tls) == ("payments", 3, "app",
                                                                         False)
    assert target.password is not None and target.password.reveal() == "s3cr@t"
    assert "s3cr" not in repr(target)
    assert parse_sentinel_url("rediss+sentinel://[::1]:5000/m").sentinels == (("::1", 5000),)
    assert parse_sentinel_url("rediss+sentinel://[::1]:5000/m").tls


@pytest.mark.parametrize("url", [
    "redis+sentinel://h:1",  # no service
    "redis+sentinel://h:1/",  # empty service
    "redis+sentinel://h:1/m/x",  # db not a number
    "redis+sentinel://h:1/m/0/extra",
    "redis+sentinel://h:99999/m",  # port out of range
    "redis+sentinel://h:port/m",
    "redis+sentinel://,h/m",  # empty host
    "redis+sentinel://h/m?password=x",
    "redis://h/m",  # not a sentinel URL
])
def test_a_bad_sentinel_url_is_a_configuration_error_without_the_url(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_sentinel_url(url)
    assert "redis+sentinel://[[user]" in str(caught.value)


@given(st.text(max_size=60))
def test_any_text_after_the_scheme_parses_or_is_a_configuration_error(rest: str) -> None:
    with contextlib.suppress(ConfigurationError):
        parse_sentinel_url("redis+sentinel://" + rest)


def test_a_password_in_a_bad_url_never_reaches_the_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisStore("redis+sentinel://u:hunter2-secret@h:notaport/m")
    assert "hunter2" not in str(caught.value)


# -- a real sentinel -------------------------------------------------------------------------


@pytest.fixture
def sentinel_group() -> Iterator[tuple[LocalRedisServer, LocalRedisServer, LocalRedisServer]]:
    if redis_server_binary() is None:
        pytest.fail("redis-server is required (scripts/test installs it)")
    master = LocalRedisServer().start()
    replica = LocalRedisServer(args=("--replicaof", "127.0.0.1", str(master.port))).start()
    sentinel_port = free_port()
    sentinel = LocalRedisServer(sentinel_port, args=("--sentinel",), config=(
        f"sentinel monitor {SERVICE} 127.0.0.1 {master.port} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} {PATIENT_DOWN_AFTER}\n"
        f"sentinel failover-timeout {SERVICE} 3000\n"))
    try:
        _wait_for(lambda: _replica_in_sync(replica), "the replica never synced")
        sentinel.start()
        _wait_for(lambda: _sentinel_knows_replica(sentinel_port), "the sentinel never saw the "
                  "replica")
        yield master, replica, sentinel
    finally:
        for server in (sentinel, replica, master):
            server.stop()


def _wait_for(ready: object, why: str, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while not ready():  # type: ignore[operator]
        assert time.monotonic() < end, why
        time.sleep(0.05)


def _replica_in_sync(replica: LocalRedisServer) -> bool:
    with redis.Redis(port=replica.port) as client:
        return bool(client.info("replication").get("master_link_status") == "up")


def _sentinel_knows_replica(port: int) -> bool:
    with redis.Redis(port=port) as client:
        return bool(client.execute_command("SENTINEL", "REPLICAS", SERVICE))


def _set_down_after(port: int, milliseconds: int) -> None:
    with redis.Redis(port=port) as client:
        client.execute_command("SENTINEL", "SET", SERVICE, "down-after-milliseconds",
                               str(milliseconds))


async def test_a_store_on_a_sentinel_url_survives_a_failover(
        sentinel_group: tuple[LocalRedisServer, LocalRedisServer, LocalRedisServer]) -> None:
    master, replica, sentinel = sentinel_group
    sink = RecordingSink()
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/{SERVICE}"
    store = RedisStore(url, prefix="sentinel", timeout=0.25, retry_min=0.1, retry_max=0.5,
                       sink=sink)
    ideas = RedisIdempotencyStore(url, prefix="sentinel")
    try:
        state = RateLimiter(1000.0, name="stripe", store=store)._state
        assert isinstance(state, RedisLimiterState)
        assert state.reserve(time.monotonic(), 1.0) == 0.0
        assert await state.reserve_async(time.monotonic(), 1.0) == 0.0
        record = IdempotencyRecord.new("scope", "create", "order-1", "fp", 100.0)
        assert (await ideas.reserve(record))[1]  # claimed on the master
        assert ideas.get_sync(*record.ident) is not None  # the sync face: a pooled connection
        with redis.Redis(port=master.port) as direct:
            assert direct.keys("sentinel:*")  # the data went to the master
            # Replication is asynchronous: on a loaded machine the replica may not hold the claim
            # yet when the master dies. WAIT until it does (this test is of the store).
            assert direct.wait(1, 5000) >= 1

        _set_down_after(sentinel.port, FAST_DOWN_AFTER)
        master.kill()
        # Until the sentinel promotes the replica, each call decides locally: never an error.
        end = time.monotonic() + FAILOVER_WITHIN
        while not (store.down and sink.of(SharedStateUnavailable)):
            assert time.monotonic() < end, "the store never noticed the dead master"
            state.reserve(time.monotonic(), 1.0)
            await state.reserve_async(time.monotonic(), 1.0)
            await asyncio.sleep(0.02)
        while store.down:
            assert time.monotonic() < end, "the store never came back after the failover"
            await state.reserve_async(time.monotonic(), 1.0)
            await asyncio.sleep(0.05)
        assert sink.of(SharedStateRestored)
        with redis.Redis(port=replica.port) as promoted:
            assert promoted.info("replication")["role"] == "master"
        # The dead master is gone for good: from here a missed PING is only the machine's load.
        _set_down_after(sentinel.port, PATIENT_DOWN_AFTER)
        # The claim made before the failover was replicated: the key is still taken. The
        # idempotency store asks the sentinel on its own; until the sentinel vouches for the new
        # master it fails closed (MasterNotFoundError, nothing sent), so it is asked again.
        while True:
            try:
                assert not (await ideas.reserve(record))[1]
                break
            except SharedStateUnavailableError:
                assert time.monotonic() < end, "the async face never reached the new master"
                await asyncio.sleep(0.05)
        # The sync face too, once its connection to the dead master has failed (closed: an error,
        # nothing sent) and been dropped.
        while True:
            try:
                assert not ideas.reserve_sync(record)[1]
                break
            except SharedStateUnavailableError:
                assert time.monotonic() < end, "the sync face never reached the new master"
                time.sleep(0.05)
    finally:
        await store.aclose()
        store.close()
        await ideas.aclose()
        ideas.close()
