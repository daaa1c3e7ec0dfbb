"""The ``fake_stripe`` pytest fixture: a fresh fake Stripe server for each test.

Use it from a ``conftest.py`` in either of two ways::

    pytest_plugins = ["egress.testing.fake_stripe.pytest_plugin"]

    # or
    from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)

then ask for it by name::

    def test_checkout(fake_stripe):
        fake_stripe.faults.script("payment_intents.create", "commit-then-reset")
        ...  # point your client at fake_stripe.url with key fake_stripe.api_key
        assert not fake_stripe.ledger.double_charges()

The server runs on a background thread (sync and async tests alike), with no chaos and
``seed=0``; configure faults per test through ``fake_stripe.faults``. For other settings
(webhooks, a rate limit, a short idempotency TTL), write your own fixture around
``with FakeStripe(...) as fake: yield fake``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from egress.testing.fake_stripe._server import FakeStripe

__all__ = ["fake_stripe_fixture"]


@pytest.fixture(name="fake_stripe")
def fake_stripe_fixture() -> Iterator[FakeStripe]:
    """A running :class:`FakeStripe` (background thread, free 127.0.0.1 port, ``seed=0``)."""
    with FakeStripe(seed=0) as fake:
        yield fake
