"""Payments that survive lost answers and crashes: StripePayments against a local FakeStripe.

    uv run python examples/payments.py

1. checkout: create-and-confirm an order; the same call again returns the same payment;
2. a lost answer (Stripe charges, then the connection resets, every attempt): the caller gets
   OutcomeUnknown; calling again with the same order sends the same key, Stripe replays: one charge;
3. a crash after sending: a new process (new client, same SQLite file) resumes with the stored key;
4. a decline (never retried), then the same order with another card;
5. a signed webhook, verified, parsed into a typed event, de-duplicated by event id.

Everything runs on 127.0.0.1; the ledger of the fake proves the "exactly one charge" claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path

from egress.adapters.stripe import StripePayments, StripeWebhooks, sign_payload
from egress.errors import OutcomeUnknown, PaymentDeclined
from egress.payments import Money, PaymentEvent, PaymentRequest
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import FakeStripe


def order(reference: str, card: str = "pm_card_visa") -> PaymentRequest:
    return PaymentRequest(amount=Money("42.50", "EUR"), reference=reference,
                          payment_method=card, description="2 books")


def charges(fake: FakeStripe, reference: str) -> int:
    return sum(1 for c in fake.ledger.charges if c.reference == reference and c.live)


async def main() -> None:
    db = Path(tempfile.mkdtemp()) / "payments.db"
    async with FakeStripe(seed=1) as fake:
        async with StripePayments(fake.api_key, base_url=fake.url, store=db) as stripe:
            # 1. checkout, twice
            first = await stripe.create(order("order-1"))
            again = await stripe.create(order("order-1"))
            print(f"1. {first.id} {first.status.value} {first.amount}; same payment on the "
                  f"second call: {again.id == first.id}; charges: {charges(fake, 'order-1')}")

            # 2. every answer lost
            fake.faults.script("payment_intents.create", *["commit-then-reset"] * 3)
            try:
                await stripe.create(order("order-2"))
            except OutcomeUnknown as unknown:
                print(f"2. OutcomeUnknown for {unknown.reference} (key {unknown.idempotency_key})")
            paid = await stripe.create(order("order-2"))
            print(f"2. called again: {paid.status.value}; charges: {charges(fake, 'order-2')}")

        # 3. the process dies after sending: simulate it by losing every answer, then dropping
        # the client without recording anything more; a "new process" resumes from the file.
        fake.faults.script("payment_intents.create", *["commit-then-reset"] * 3)
        async with StripePayments(fake.api_key, base_url=fake.url, store=db) as doomed:
            with contextlib.suppress(OutcomeUnknown):
                await doomed.create(order("order-3"))
        async with StripePayments(fake.api_key, base_url=fake.url, store=db) as stripe:
            resumed = await stripe.create(order("order-3"))
            print(f"3. after a restart: {resumed.status.value}; "
                  f"charges: {charges(fake, 'order-3')}")

            # 4. a decline, then another card
            try:
                await stripe.create(order("order-4", "pm_card_chargeDeclinedInsufficientFunds"))
            except PaymentDeclined as declined:
                print(f"4. declined: {declined.decline_code} (not retried)")
            retried = await stripe.create(order("order-4"))
            print(f"4. another card: {retried.status.value}; charges: {charges(fake, 'order-4')}")

        # 5. a webhook, delivered twice
        secret = "whsec_example"  # noqa: S105  (a made-up test secret)
        hooks = StripeWebhooks(secret=secret, store=SqliteIdempotencyStore(db))
        body = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                           "created": int(time.time()), "livemode": False,
                           "data": {"object": fake.payment_intent(first.id)}}).encode()
        header = sign_payload(body, secret, int(time.time()))
        handled: list[PaymentEvent] = []

        async def on_event(event: PaymentEvent) -> None:
            handled.append(event)

        print(f"5. first delivery handled: {await hooks.handle(body, header, on_event)}; "
              f"duplicate handled: {await hooks.handle(body, header, on_event)}; "
              f"event: {type(handled[0]).__name__} for {handled[0].id}")
        print(f"double charges anywhere: {fake.ledger.double_charges() or 'none'}")


if __name__ == "__main__":
    asyncio.run(main())
