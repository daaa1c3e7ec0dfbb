"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from egress.stores import MEMORY_STORE
from egress.testing import FakeClock, RecordingSink


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
