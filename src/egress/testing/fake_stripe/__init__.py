"""A fault-injecting fake Stripe: a real HTTP server for PaymentIntents and refunds.

It speaks Stripe's wire format (form-encoded requests, JSON objects and errors, ``sk_test_`` keys,
the idempotency layer, signed webhooks) so the official SDK and our own adapter work against it,
and it misbehaves on command: scripted or probabilistic faults per route, from latency and 5xx to
commit-then-reset and black holes. Its :class:`Ledger` records every charge exactly once, so a
test can prove "no double charge, no lost payment". See ``docs/fake-stripe.md``.

    with FakeStripe(chaos="flaky", seed=1) as fake:
        client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
        ...
        assert not fake.ledger.double_charges()
"""

from egress.testing.fake_stripe._cards import TEST_CARDS, TestCard
from egress.testing.fake_stripe._faults import (
    CHAOS_PROFILES,
    ROUTES,
    ChaosProfile,
    Fault,
    FaultKind,
    FaultPlan,
    FaultRule,
    RateLimit,
    parse_fault,
    parse_rules,
)
from egress.testing.fake_stripe._idempotency import DEFAULT_IDEMPOTENCY_TTL
from egress.testing.fake_stripe._ledger import Charge, Ledger, LedgerCheck, RefundRecord
from egress.testing.fake_stripe._server import DEFAULT_API_KEY, FakeStripe
from egress.testing.fake_stripe._state import API_VERSION
from egress.testing.fake_stripe._webhooks import (
    Delivery,
    WebhookSettings,
    sign_payload,
    signature_header,
)

__all__ = [
    "API_VERSION",
    "CHAOS_PROFILES",
    "Charge",
    "ChaosProfile",
    "DEFAULT_API_KEY",
    "DEFAULT_IDEMPOTENCY_TTL",
    "Delivery",
    "FakeStripe",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "Ledger",
    "LedgerCheck",
    "ROUTES",
    "RateLimit",
    "RefundRecord",
    "TEST_CARDS",
    "TestCard",
    "WebhookSettings",
    "parse_fault",
    "parse_rules",
    "sign_payload",
    "signature_header",
]
