"""Run as a child process by test_stripe_crash: one sync payment, which the test kills (SIGKILL)
while Stripe holds the request. Usage: python _sync_payment_worker.py URL API_KEY DB_PATH."""

from __future__ import annotations

import sys

from egress.adapters.stripe import SyncStripePayments
from egress.payments import Money, PaymentRequest

ORDER = PaymentRequest(amount=Money("42.00", "EUR"), reference="order-42",
                       payment_method="pm_card_visa", metadata={"cart": "c-1"})


def main(url: str, api_key: str, path: str) -> None:
    with SyncStripePayments(api_key, base_url=url, store=path) as payments:
        payments.create(ORDER)


if __name__ == "__main__":
    main(*sys.argv[1:4])
