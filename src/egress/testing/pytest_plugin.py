"""The egress pytest plugin, registered through the ``pytest11`` entry point.

Installing egress makes these fixtures available in every test, with no import and no
``pytest_plugins`` line:

- ``fake_stripe``: a running :class:`~egress.testing.FakeStripe` (background thread, free
  127.0.0.1 port, ``seed=0``, no chaos);
- ``fake_clock``: a :class:`~egress.testing.FakeClock` (auto-advance on);
- ``recording_sink``: a :class:`~egress.testing.RecordingSink`;
- ``in_memory_payments``: an :class:`~egress.testing.InMemoryPayments`;
- ``sync_in_memory_payments``: an :class:`~egress.testing.SyncInMemoryPayments` (sync code);

and, around every test (autouse), :func:`~egress.testing.isolated_state`: named breakers,
budgets, bulkheads and limiters start fresh in each test. Disable the plugin with
``-p no:egress``.

This module is imported by every pytest run of a project that has egress installed, so it
imports nothing heavy up front: the fake server (aiohttp) loads only when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from egress.testing._state import isolated_state

if TYPE_CHECKING:
    from egress.testing import FakeClock, InMemoryPayments, RecordingSink, SyncInMemoryPayments
    from egress.testing.fake_stripe import FakeStripe

__all__ = [
    "egress_isolated_state",
    "fake_clock",
    "fake_stripe_fixture",
    "in_memory_payments",
    "recording_sink",
    "sync_in_memory_payments",
]


@pytest.fixture(autouse=True, name="_egress_isolated_state")
def egress_isolated_state() -> Iterator[None]:
    """Every test runs on its own named state (see :func:`egress.testing.isolated_state`)."""
    with isolated_state():
        yield


@pytest.fixture(name="fake_stripe")
def fake_stripe_fixture() -> Iterator[FakeStripe]:
    """A running :class:`FakeStripe` (background thread, free 127.0.0.1 port, ``seed=0``)."""
    from egress.testing.fake_stripe import FakeStripe

    with FakeStripe(seed=0) as fake:
        yield fake


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh :class:`FakeClock` with auto-advance."""
    from egress.testing import FakeClock

    return FakeClock()


@pytest.fixture
def recording_sink() -> RecordingSink:
    """A fresh :class:`RecordingSink`."""
    from egress.testing import RecordingSink

    return RecordingSink()


@pytest.fixture
def in_memory_payments() -> InMemoryPayments:
    """A fresh :class:`InMemoryPayments` (the payment port, kept in memory)."""
    from egress.testing import InMemoryPayments

    return InMemoryPayments()


@pytest.fixture
def sync_in_memory_payments() -> SyncInMemoryPayments:
    """A fresh :class:`SyncInMemoryPayments` (the sync payment port, kept in memory)."""
    from egress.testing import SyncInMemoryPayments

    return SyncInMemoryPayments()
