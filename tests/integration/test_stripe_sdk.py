"""The official ``stripe`` SDK, pointed at FakeStripe, works as it does against Stripe."""

from __future__ import annotations

import pytest
import stripe

from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)
from egress.testing.fake_stripe import FakeStripe


@pytest.fixture
def client(fake_stripe: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(fake_stripe.api_key, base_addresses={"api": fake_stripe.url},
                               max_network_retries=0)


def test_create_confirm_retrieve_refund(client: stripe.StripeClient,
                                        fake_stripe: FakeStripe) -> None:
    intents = client.v1.payment_intents
    pi = intents.create(params={"amount": 2000, "currency": "usd",
                                "metadata": {"reference": "order-1"},
                                "payment_method_types": ["card"]})
    assert (pi.status, pi.amount, pi.metadata["reference"]) == (
        "requires_payment_method", 2000, "order-1")
    pi = intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert pi.status == "succeeded"
    assert pi.latest_charge is not None
    assert intents.retrieve(pi.id).amount_received == 2000
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 500, pi.id)
    assert client.v1.refunds.retrieve(refund.id).amount == 500
    [charge] = fake_stripe.ledger.charges
    assert (charge.payment_intent, charge.amount_refunded, charge.reference) == (
        pi.id, 500, "order-1")


def test_manual_capture_and_cancel(client: stripe.StripeClient) -> None:
    intents = client.v1.payment_intents
    held = intents.create(params={"amount": 3000, "currency": "eur", "confirm": True,
                                  "capture_method": "manual",
                                  "payment_method": "pm_card_mastercard"})
    assert held.status == "requires_capture"
    assert intents.capture(held.id, params={"amount_to_capture": 2500}).amount_received == 2500
    other = intents.create(params={"amount": 3000, "currency": "eur"})
    canceled = intents.cancel(other.id, params={"cancellation_reason": "abandoned"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "abandoned")


def test_list_update_and_search(client: stripe.StripeClient) -> None:
    intents = client.v1.payment_intents
    for i in range(3):
        intents.create(params={"amount": 1000 + i, "currency": "usd",
                               "metadata": {"reference": f"r{i}"}})
    found = intents.search(params={"query": "metadata['reference']:'r1'"})
    assert [p.amount for p in found.data] == [1001]
    updated = intents.update(found.data[0].id, params={"metadata": {"note": "x"}})
    assert updated.metadata.to_dict() == {"reference": "r1", "note": "x"}
    page = intents.list(params={"limit": 2})
    assert (len(page.data), page.has_more) == (2, True)
    assert [p.amount for p in page.auto_paging_iter()] == [1002, 1001, 1000]


def test_decline_raises_card_error(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.CardError) as caught:
        client.v1.payment_intents.create(params={
            "amount": 2000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_chargeDeclinedInsufficientFunds"})
    error = caught.value
    assert (error.http_status, error.code) == (402, "card_declined")
    assert error.error is not None
    assert error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent is not None
    assert error.error.payment_intent.status == "requires_payment_method"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")


def test_reused_key_with_other_params_raises_idempotency_error(
        client: stripe.StripeClient) -> None:
    intents = client.v1.payment_intents
    first = intents.create(params={"amount": 2000, "currency": "usd"},
                           options={"idempotency_key": "order-1-create"})
    again = intents.create(params={"amount": 2000, "currency": "usd"},
                           options={"idempotency_key": "order-1-create"})
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError) as caught:
        intents.create(params={"amount": 2500, "currency": "usd"},
                       options={"idempotency_key": "order-1-create"})
    assert caught.value.http_status == 400


def test_other_stripe_errors(client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.payment_intents.retrieve("pi_missing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_live_nope", base_addresses={"api": fake_stripe.url},
                            max_network_retries=0).v1.payment_intents.retrieve("pi_x")
    fake_stripe.faults.script("create", "429", "503")
    with pytest.raises(stripe.RateLimitError):
        client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    with pytest.raises(stripe.APIError) as unavailable:
        client.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    assert unavailable.value.http_status == 503


def test_the_sdk_retries_a_commit_then_reset_with_the_same_key(
        fake_stripe: FakeStripe) -> None:
    retrying = stripe.StripeClient(fake_stripe.api_key, base_addresses={"api": fake_stripe.url},
                                   max_network_retries=2)
    fake_stripe.faults.script("create", "commit-then-reset")
    pi = retrying.v1.payment_intents.create(params={
        "amount": 2000, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa",
        "metadata": {"reference": "order-9"}})
    assert pi.status == "succeeded"
    assert len(fake_stripe.ledger.charges) == 1
    assert not fake_stripe.ledger.double_charges()
    assert fake_stripe.stats()["idempotent_replays"] == 1


def test_module_level_configuration_works_too(fake_stripe: FakeStripe,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stripe, "api_key", fake_stripe.api_key)
    monkeypatch.setattr(stripe, "api_base", fake_stripe.url)
    monkeypatch.setattr(stripe, "max_network_retries", 0)
    pi = stripe.PaymentIntent.create(amount=2000, currency="usd", confirm=True,
                                     payment_method="pm_card_visa")
    assert stripe.PaymentIntent.retrieve(pi.id).status == "succeeded"


async def test_the_async_client_works_too(fake_stripe: FakeStripe) -> None:
    http = stripe.AIOHTTPClient()
    client = stripe.StripeClient(fake_stripe.api_key, base_addresses={"api": fake_stripe.url},
                                 max_network_retries=0, http_client=http)
    try:
        pi = await client.v1.payment_intents.create_async(params={
            "amount": 2000, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa"})
        assert pi.status == "succeeded"
        canceled = await client.v1.payment_intents.create_async(params={
            "amount": 2000, "currency": "usd"})
        assert (await client.v1.payment_intents.cancel_async(canceled.id)).status == "canceled"
    finally:
        await http.close_async()
