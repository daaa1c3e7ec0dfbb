"""RedisStore and RedisIdempotencyStore: bad settings are typed errors; secrets never show."""

from __future__ import annotations

import time

import pytest

from egress import RateLimiter
from egress.errors import ConfigurationError, SharedStateUnavailableError
from egress.payments import IdempotencyRecord
from egress.stores.redis import RedisIdempotencyStore, RedisStore, SharedStateUnavailable
from egress.testing import RecordingSink

NOWHERE = "redis://:hunter2-secret@127.0.0.1:1/0"  # nothing listens on port 1


@pytest.mark.parametrize("kwargs", [
    {"timeout": 0}, {"timeout": float("nan")}, {"retry_min": -1}, {"retry_max": 0.1},
    {"fleet_size": 0}, {"fleet_size": True}, {"breaker_window": 0},
])
def test_bad_settings_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="RedisStore"):
        RedisStore("redis://127.0.0.1:6379/0", **kwargs)  # type: ignore[arg-type]


def test_a_url_is_checked_and_never_echoed() -> None:
    with pytest.raises(ConfigurationError, match="not a Redis URL") as caught:
        RedisStore("http://user:hunter2-secret@example.invalid/")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="url or a client"):
        RedisStore()
    with pytest.raises(ConfigurationError, match="retention"):
        RedisIdempotencyStore(NOWHERE, retention=3600)


async def test_failures_name_the_error_type_never_the_url() -> None:
    sink = RecordingSink()
    store = RedisStore(NOWHERE, sink=sink)
    assert "hunter2" not in repr(store)
    state = RateLimiter(10, name="x", store=store)._state
    assert state.reserve(time.monotonic(), 1.0) == 0.0  # local fallback: the call goes on
    [event] = sink.of(SharedStateUnavailable)
    assert "hunter2" not in repr(event)
    keys = RedisIdempotencyStore(NOWHERE)
    with pytest.raises(SharedStateUnavailableError) as caught:
        await keys.reserve(IdempotencyRecord.new("s", "create", "o-1", "fp", 1.0))
    assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None
    assert "hunter2" not in repr(keys)
    await keys.aclose()
    await store.aclose()
