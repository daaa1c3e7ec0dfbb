"""The fake's account with every operation: :class:`StripeState` (pure: no I/O).

One room per concern: the objects and the plumbing they share (:mod:`._account`), how objects
are shown (:mod:`._render`), PaymentIntents (:mod:`._intents`), confirmation and charges
(:mod:`._charges`), refunds (:mod:`._refunds`), lists and search (:mod:`._browse`, the pure
paging in :mod:`._lists`), parameter checks (:mod:`._intent_params`).

The objects follow the shapes of Stripe API version :data:`API_VERSION` (``latest_charge``, no
``charges`` list) and validate against ``#/components/schemas/payment_intent``.
"""

from __future__ import annotations

from egress.testing.fake_stripe._account import API_VERSION, DEFAULT_REFERENCE_KEY, RequestIds
from egress.testing.fake_stripe._browse import Browsing
from egress.testing.fake_stripe._intents import Intents
from egress.testing.fake_stripe._refunds import Refunds

__all__ = ["API_VERSION", "DEFAULT_REFERENCE_KEY", "RequestIds", "StripeState"]


class StripeState(Intents, Refunds, Browsing):
    """One test-mode Stripe account held in memory."""
