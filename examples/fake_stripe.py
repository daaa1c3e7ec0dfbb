"""FakeStripe in five minutes: a local Stripe that fails on command, and a ledger that tells.

    uv run python examples/fake_stripe.py

It uses the official ``stripe`` SDK and ``httpx``: both are in egress's dev dependency group
(``uv sync`` installs them); in your own project, ``pip install stripe httpx``.

1. the official ``stripe`` SDK against the fake, with a scripted commit-then-reset: the SDK
   retries with the same Idempotency-Key and the ledger shows one charge;
2. the same lost answer without a key (a naive client retrying by hand): two charges, and the
   ledger names the double-charged reference;
3. a chaos profile plus signed webhooks, verified the way Stripe's SDK verifies them.
"""

from __future__ import annotations

import asyncio

import httpx
import stripe
from aiohttp import web

from egress.testing import FakeStripe


def sdk_retries_safely() -> None:
    with FakeStripe(seed=1) as fake:
        client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url},
                                     max_network_retries=2)
        fake.faults.script("payment_intents.create", "commit-then-reset")
        intent = client.v1.payment_intents.create(params={
            "amount": 2000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa", "metadata": {"reference": "order-1"}})
        print(f"1. SDK: {intent.status}; charges in the ledger: {len(fake.ledger.charges)}; "
              f"double charges: {fake.ledger.double_charges() or 'none'}")


def naive_retry_double_charges() -> None:
    with FakeStripe(seed=1) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        fake.faults.script("payment_intents.create", "commit-then-reset")
        body = {"amount": "2000", "currency": "usd", "confirm": "true",
                "payment_method": "pm_card_visa", "metadata[reference]": "order-2"}
        for attempt in (1, 2):
            try:
                api.post("/v1/payment_intents", data=body)  # no Idempotency-Key
                break
            except httpx.TransportError as exc:
                print(f"2. naive client, attempt {attempt}: {type(exc).__name__}; retrying")
        doubles = fake.ledger.double_charges()
        print(f"2. naive client: double-charged references: {sorted(doubles)} "
              f"({len(doubles['order-2'])} charges for order-2)")


async def chaos_with_webhooks() -> None:
    received: list[str] = []
    secret = "whsec_example"  # noqa: S105  (a made-up test secret)

    async def hook(request: web.Request) -> web.Response:
        payload = (await request.read()).decode()
        event = stripe.Webhook.construct_event(payload, request.headers["Stripe-Signature"],
                                               secret)  # raises if the signature is wrong
        received.append(event.type)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with FakeStripe(chaos="flaky", seed=7, webhook_secret=secret,
                              webhook_url=f"http://127.0.0.1:{port}/webhooks") as fake:
            async with httpx.AsyncClient(base_url=fake.url, headers={
                    "Authorization": f"Bearer {fake.api_key}"}) as api:
                statuses = []
                for n in range(40):
                    try:
                        response = await api.post(
                            "/v1/payment_intents", headers={"Idempotency-Key": f"order-{n}"},
                            data={"amount": "1000", "currency": "eur", "confirm": "true",
                                  "payment_method": "pm_card_visa",
                                  "metadata[reference]": f"order-{n}"})
                        statuses.append(str(response.status_code))
                    except httpx.TransportError as exc:
                        statuses.append(type(exc).__name__)
            await fake.wait_for_webhooks(5.0)
            print(f"3. flaky profile, one attempt each: {sorted(set(statuses))}; "
                  f"faults injected: {dict(fake.faults.injected)}")
            print(f"3. charges: {len(fake.ledger.charges)}; verified webhooks: {len(received)} "
                  f"({', '.join(sorted(set(received)))})")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    sdk_retries_safely()
    naive_retry_double_charges()
    asyncio.run(chaos_with_webhooks())
