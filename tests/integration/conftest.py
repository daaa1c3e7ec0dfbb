"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)
from egress.testing.fake_stripe import FakeStripe


@pytest.fixture
def api(fake_stripe: FakeStripe) -> Iterator[httpx.Client]:
    """A plain httpx client on the ``fake_stripe`` server, with its test key."""
    with httpx.Client(base_url=fake_stripe.url, timeout=5.0,
                      headers={"Authorization": f"Bearer {fake_stripe.api_key}"}) as client:
        yield client
