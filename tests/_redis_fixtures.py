"""Real Redis for the tests that need it (imported by tests/conftest.py), never a mock.

``scripts/test`` starts a private ``redis-server`` and passes its URL in
``EGRESS_TEST_REDIS_URL``. Run outside it, the session starts one itself when the binary is
installed. Without Redis the tests are skipped with a reason, except in CI (``CI`` set), where
a missing Redis fails loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from egress.stores.redis import RedisIdempotencyStore, RedisStore
from egress.stores.redis._server import LocalRedisServer, redis_server_binary

_ENV = "EGRESS_TEST_REDIS_URL"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Redis is required in CI: {why}", pytrace=False)
    pytest.skip(f"no Redis: {why} (run scripts/test, or install redis-server)")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get(_ENV)
    if url:
        yield url
        return
    if redis_server_binary() is None:
        _unavailable(f"{_ENV} is not set and redis-server is not installed")
    with LocalRedisServer() as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own: tests never see each other's keys."""
    return f"egress-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_store(redis_url: str, prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, prefix=prefix)
    yield store
    await store.aclose()
    store.close()


@pytest.fixture
async def idempotency_store(redis_url: str, prefix: str) -> AsyncIterator[RedisIdempotencyStore]:
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    yield store
    await store.aclose()
    store.close()


@pytest.fixture
def private_redis() -> Iterator[LocalRedisServer]:
    """A redis-server of this test's own, which the test may kill, freeze and restart."""
    if redis_server_binary() is None:
        _unavailable("redis-server is not installed")
    server = LocalRedisServer().start()
    yield server
    server.stop()
