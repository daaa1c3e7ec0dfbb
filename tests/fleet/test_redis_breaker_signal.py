"""The breaker signal is advisory: a failing instance opens early only with a quorum of peers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from egress import CircuitBreaker, CircuitState, Pipeline
from egress.errors import ConfigurationError, TransportError
from egress.stores.redis import RedisBreakerSignal, RedisStore


@pytest.fixture
def fleet(redis_url: str, prefix: str) -> Iterator[list[RedisStore]]:
    stores = [RedisStore(redis_url, prefix=prefix, breaker_quorum=2) for _ in range(3)]
    yield stores
    for store in stores:
        store.close()


def breaker(store: RedisStore) -> CircuitBreaker:
    # Alone, a breaker of this kind would open only after 100 calls.
    return CircuitBreaker("stripe", minimum_calls=100, store=store)


def fail(cb: CircuitBreaker) -> None:
    def broken() -> None:
        raise TransportError("reset", sent=False)

    with pytest.raises(TransportError):
        Pipeline(cb).execute_sync("charge", broken)


def test_one_failing_instance_alone_does_not_open_early(fleet: list[RedisStore]) -> None:
    sick = breaker(fleet[0])
    assert isinstance(sick._state, RedisBreakerSignal)
    for _ in range(5):
        fail(sick)
    assert sick.state is CircuitState.CLOSED  # one instance is no quorum


def test_a_quorum_opens_a_failing_instance_but_never_a_healthy_one(
        fleet: list[RedisStore]) -> None:
    first, second, healthy = (breaker(store) for store in fleet)
    fail(first)
    assert first.state is CircuitState.CLOSED
    fail(second)  # the second instance reporting makes the quorum: it opens at once
    assert second.state is CircuitState.OPEN
    fail(first)  # reports at most once a second: it learns of the quorum on its next report
    assert first.state is CircuitState.CLOSED
    Pipeline(healthy).execute_sync("charge", lambda: "ok")
    assert healthy.state is CircuitState.CLOSED  # never failed itself: the signal is advisory


def test_a_quorum_of_one_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="breaker_quorum"):
        RedisStore(redis_url, breaker_quorum=1)


def test_without_a_quorum_breakers_stay_local(redis_store: RedisStore) -> None:
    assert not isinstance(breaker(redis_store)._state, RedisBreakerSignal)
