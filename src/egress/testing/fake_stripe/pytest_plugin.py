"""The ``fake_stripe`` pytest fixture, kept here for ``pytest_plugins`` lines written before the
egress plugin was registered through the ``pytest11`` entry point.

With egress installed, the fixture is already available in every test (see
:mod:`egress.testing.pytest_plugin`); nothing needs importing. The older spellings still work::

    pytest_plugins = ["egress.testing.fake_stripe.pytest_plugin"]

    # or
    from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)

The server runs on a background thread (sync and async tests alike), with no chaos and
``seed=0``; configure faults per test through ``fake_stripe.faults``. For other settings
(webhooks, a rate limit, a short idempotency TTL), write your own fixture around
``with FakeStripe(...) as fake: yield fake``.
"""

from egress.testing.pytest_plugin import fake_stripe_fixture

__all__ = ["fake_stripe_fixture"]
