"""The Stripe adapter: the PaymentService port over Stripe's PaymentIntents API, and webhooks.

Vendor knowledge lives here and nowhere else: the wire format (``_form``, ``_requests``,
``_parse``), amounts (``_amounts``), the one place errors and retry rules are decided
(``_errors``), the adapter (``client``) and webhook verification (``webhooks``). See
``docs/stripe.md``.
"""

from egress.adapters.stripe._errors import stripe_retry_hook
from egress.adapters.stripe.client import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    DEFAULT_DEADLINE,
    LIVE_RATE_LIMIT,
    TEST_RATE_LIMIT,
    StripePayments,
    SyncStripePayments,
)
from egress.adapters.stripe.webhooks import (
    DEFAULT_TOLERANCE,
    SIGNATURE_HEADER,
    StripeWebhooks,
    parse_event,
    sign_payload,
    verify_signature,
    verify_webhook,
)

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_DEADLINE",
    "DEFAULT_TOLERANCE",
    "LIVE_RATE_LIMIT",
    "SIGNATURE_HEADER",
    "TEST_RATE_LIMIT",
    "StripePayments",
    "StripeWebhooks",
    "SyncStripePayments",
    "parse_event",
    "sign_payload",
    "stripe_retry_hook",
    "verify_signature",
    "verify_webhook",
]
