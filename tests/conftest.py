"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from egress.testing import FakeClock, RecordingSink

# pytester runs pytest inside pytest: how the egress plugin itself is tested. _redis_fixtures:
# real Redis for the tests that need it (redis_url, redis_store, idempotency_store, private_redis).
pytest_plugins = ["pytester", "_redis_fixtures"]


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

# Named shared state is isolated per test by the egress pytest plugin itself (entry point
# ``pytest11``), as in any user's suite: see tests/unit/test_pytest_plugin.py.
