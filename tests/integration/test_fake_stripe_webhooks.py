"""FakeStripe's webhooks: signed as Stripe signs (checked with the official SDK), retried."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import aiohttp
import httpx
import pytest
import stripe
from aiohttp import web

from egress.testing.fake_stripe import FakeStripe, sign_payload, signature_header

VISA = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa",
        "confirm": "true", "metadata[reference]": "order-1"}


@dataclass
class Receiver:
    """A webhook endpoint that fails the first ``fail_first`` attempts of every event."""

    fail_first: int = 0
    url: str = ""
    received: list[tuple[str, bytes, float]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((request.headers["Stripe-Signature"], body,
                              asyncio.get_running_loop().time()))
        event_id = json.loads(body)["id"]
        self.attempts[event_id] = self.attempts.get(event_id, 0) + 1
        if self.attempts[event_id] <= self.fail_first:
            return web.Response(status=500)
        return web.Response(text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", rec.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hooks"
    yield rec
    await runner.cleanup()


async def _post(fake: FakeStripe, path: str, data: dict[str, str]) -> dict[str, object]:
    async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {fake.api_key}"}) as session, session.post(
            fake.url + path, data=data) as response:
        result: dict[str, object] = await response.json()
        return result


async def test_events_are_signed_exactly_as_stripe_signs(receiver: Receiver) -> None:
    async with FakeStripe(webhook_url=receiver.url, webhook_secret="whsec_test_secret") as fake:
        pi = await _post(fake, "/v1/payment_intents", VISA)
        await _post(fake, "/v1/refunds", {"payment_intent": str(pi["id"]), "amount": "500"})
        assert await fake.wait_for_webhooks(5.0)
    types = set()
    for header, body, _at in receiver.received:
        event = stripe.Webhook.construct_event(body.decode(), header, "whsec_test_secret")
        types.add(event.type)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body.decode(), header, "whsec_other")
        tampered = body.decode().replace('"livemode": false', '"livemode": true', 1)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(tampered, header, "whsec_test_secret")
    assert types == {"payment_intent.created", "payment_intent.succeeded", "refund.created",
                     "charge.refunded"}


async def test_event_payloads(receiver: Receiver) -> None:
    async with FakeStripe(webhook_url=receiver.url) as fake:
        manual = await _post(fake, "/v1/payment_intents", {**VISA, "capture_method": "manual"})
        await _post(fake, f"/v1/payment_intents/{manual['id']}/cancel", {})
        await _post(fake, "/v1/payment_intents",
                    {**VISA, "payment_method": "pm_card_chargeDeclined"})
        assert await fake.wait_for_webhooks(5.0)
        events = {e["type"]: e for e in fake.events}
    assert set(events) == {"payment_intent.created", "payment_intent.amount_capturable_updated",
                           "payment_intent.canceled", "payment_intent.payment_failed"}
    held = events["payment_intent.amount_capturable_updated"]
    assert held["object"] == "event"
    assert held["data"]["object"]["status"] == "requires_capture"
    assert held["data"]["object"]["id"] == manual["id"]
    assert held["request"]["id"].startswith("req_")
    failed = events["payment_intent.payment_failed"]["data"]["object"]
    assert failed["last_payment_error"]["decline_code"] == "generic_decline"
    assert len(receiver.received) == len(fake.events) == 5


async def test_failed_deliveries_are_retried_with_backoff(receiver: Receiver) -> None:
    receiver.fail_first = 2
    async with FakeStripe(webhook_url=receiver.url, webhook_backoff=0.05) as fake:
        pi = await _post(fake, "/v1/payment_intents", {"amount": "2000", "currency": "usd"})
        assert await fake.wait_for_webhooks(5.0)
        deliveries = fake.webhook_deliveries
    assert [(d.attempt, d.status) for d in deliveries] == [(1, 500), (2, 500), (3, 200)]
    assert deliveries[-1].ok
    times = [at for _h, _b, at in receiver.received]
    assert times[1] - times[0] >= 0.05
    assert times[2] - times[1] >= 0.1  # doubled
    assert json.loads(receiver.received[-1][1])["data"]["object"]["id"] == pi["id"]


async def test_retries_are_bounded(receiver: Receiver) -> None:
    receiver.fail_first = 99
    async with FakeStripe(webhook_url=receiver.url, webhook_attempts=3,
                          webhook_backoff=0.01) as fake:
        await _post(fake, "/v1/payment_intents", {"amount": "2000", "currency": "usd"})
        assert await fake.wait_for_webhooks(5.0)
        assert [d.status for d in fake.webhook_deliveries] == [500, 500, 500]
    assert len(receiver.received) == 3


async def test_an_unreachable_endpoint_is_retried_then_given_up() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with FakeStripe(webhook_url=f"http://127.0.0.1:{port}/x", webhook_attempts=2,
                          webhook_backoff=0.01) as fake:
        await _post(fake, "/v1/payment_intents", {"amount": "2000", "currency": "usd"})
        assert await fake.wait_for_webhooks(5.0)
        deliveries = fake.webhook_deliveries
    assert [(d.status, d.error) for d in deliveries] == [(None, "ClientConnectorError")] * 2


async def test_duplicates_on_purpose(receiver: Receiver) -> None:
    async with FakeStripe(webhook_url=receiver.url, webhook_duplicates=1.0) as fake:
        await _post(fake, "/v1/payment_intents", {"amount": "2000", "currency": "usd"})
        assert await fake.wait_for_webhooks(5.0)
    ids = [json.loads(body)["id"] for _h, body, _at in receiver.received]
    assert len(ids) == 2
    assert len(set(ids)) == 1


class _Hook(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhooks_from_the_threaded_server() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        with FakeStripe(webhook_url=url) as fake:
            httpx.post(f"{fake.url}/v1/payment_intents", data=VISA,
                       headers={"Authorization": f"Bearer {fake.api_key}"})
            assert fake.wait_for_webhooks_sync(5.0)
            assert {d.event_type for d in fake.webhook_deliveries} == {
                "payment_intent.created", "payment_intent.succeeded"}
            assert all(d.ok for d in fake.webhook_deliveries)
            assert fake.webhook_secret.startswith("whsec_")
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Hook.bodies) == 2


def test_signature_helpers_match_the_sdk() -> None:
    payload = '{"id": "evt_1", "object": "event"}'
    header = signature_header(payload, "whsec_abc", 1_700_000_000)
    assert header == f"t=1700000000,v1={sign_payload(payload, 'whsec_abc', 1_700_000_000)}"
    stripe.WebhookSignature.verify_header(payload, header, "whsec_abc", tolerance=None)
    assert sign_payload(payload.encode(), "whsec_abc", 1) == sign_payload(payload, "whsec_abc", 1)
