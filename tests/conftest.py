"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from egress.stores import MEMORY_STORE
from egress.testing import FakeClock, RecordingSink

# Real Redis for the tests that need it (redis_url, redis_store, idempotency_store, private_redis).
pytest_plugins = ["_redis_fixtures"]


# Hypothesis must not judge this machine's speed: a cold or loaded 2-core box makes data
# generation slow, and a health check or per-example deadline tripping on that is a flake, not a
# finding. "ci" (chosen when CI is set) also derandomizes, so CI runs are reproducible; "dev" keeps
# random exploration for developers. Per-test @settings still set the example counts.
_SPEED_CHECKS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile("dev", deadline=None, suppress_health_check=_SPEED_CHECKS)
settings.register_profile("ci", parent=settings.get_profile("dev"), derandomize=True,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture(autouse=True)
def _fresh_memory_store() -> Iterator[None]:
    """Named shared state must not leak from one test into the next."""
    MEMORY_STORE.clear()
    yield
    MEMORY_STORE.clear()
