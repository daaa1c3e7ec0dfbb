"""Run as a child process by test_redis_idempotency_faces: one sync payment on a Redis store,
which the test kills (SIGKILL) while Stripe holds the request.
Usage: python _sync_redis_worker.py STRIPE_URL API_KEY REDIS_URL PREFIX."""

from __future__ import annotations

import sys

from egress.adapters.stripe import SyncStripePayments
from egress.payments import Money, PaymentRequest
from egress.stores.redis import RedisIdempotencyStore


def main(url: str, api_key: str, redis_url: str, prefix: str) -> None:
    store = RedisIdempotencyStore(redis_url, prefix=prefix)
    with SyncStripePayments(api_key, base_url=url, store=store) as payments:
        payments.create(PaymentRequest(amount=Money("12.00", "EUR"), reference="order-42",
                                       payment_method="pm_card_visa"))


if __name__ == "__main__":
    main(*sys.argv[1:5])
