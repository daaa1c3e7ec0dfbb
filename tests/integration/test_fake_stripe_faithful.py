"""FakeStripe behaves as Stripe documents where integrators lean on it, probed with the SDK.

Each test names the departure it pins down (issue 15 §6): backward paging, expansion rules,
parameter validation, and the stats counters.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
import stripe

from egress.testing.fake_stripe import FakeStripe


@pytest.fixture
def client(fake_stripe: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(fake_stripe.api_key, base_addresses={"api": fake_stripe.url},
                               max_network_retries=0)


def _charged(client: stripe.StripeClient, count: int) -> list[str]:
    ids = []
    for i in range(count):
        pi = client.v1.payment_intents.create(params={
            "amount": 1000 + i, "currency": "usd", "confirm": True,
            "payment_method": "pm_card_visa"})
        ids.append(pi.id)
    return ids  # oldest first


# -- paging ---------------------------------------------------------------------------------


def test_refunds_page_backwards_and_the_sdk_iterator_ends(client: stripe.StripeClient) -> None:
    # Before: ending_before was ignored and has_more stayed true: the SDK never stopped.
    [pi] = _charged(client, 1)
    refunds = [client.v1.refunds.create(params={"payment_intent": pi, "amount": 10}).id
               for _ in range(5)]  # oldest first; lists answer newest first
    page = client.v1.refunds.list(params={"ending_before": refunds[0], "limit": 2})
    assert [r.id for r in page.data] == [refunds[2], refunds[1]]
    assert page.has_more is True
    seen = [r.id for r in client.v1.refunds.list(
        params={"ending_before": refunds[0], "limit": 2}).auto_paging_iter()]
    assert seen == refunds[1:]  # the SDK walks backwards, oldest first, and stops


def test_payment_intents_page_backwards_completely(client: stripe.StripeClient) -> None:
    # Before: has_more was computed after cutting the page: backward paging returned 2 of 4.
    ids = _charged(client, 5)
    seen = [p.id for p in client.v1.payment_intents.list(
        params={"ending_before": ids[0], "limit": 2}).auto_paging_iter()]
    assert seen == ids[1:]
    forward = [p.id for p in client.v1.payment_intents.list(
        params={"limit": 2}).auto_paging_iter()]
    assert forward == ids[::-1]


def test_limit_zero_is_refused(client: stripe.StripeClient) -> None:
    # Before: limit=0 silently became 10.
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.list(params={"limit": 0})
    assert caught.value.param == "limit"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.list(params={"limit": 0})


# -- expansion --------------------------------------------------------------------------------


def test_lists_and_searches_expand_data_prefixed_paths_only(client: stripe.StripeClient) -> None:
    _charged(client, 2)
    page = client.v1.payment_intents.list(params={"expand": ["data.latest_charge"]})
    assert all(p.latest_charge.object == "charge" for p in page.data)
    with pytest.raises(stripe.InvalidRequestError, match=r"data\.latest_charge"):
        client.v1.payment_intents.list(params={"expand": ["latest_charge"]})
    with pytest.raises(stripe.InvalidRequestError, match=r"data\.latest_charge"):
        client.v1.payment_intents.search(params={"query": "status:'succeeded'",
                                                 "expand": ["latest_charge"]})


def test_unknown_expand_paths_are_refused(client: stripe.StripeClient) -> None:
    [pi] = _charged(client, 1)
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.payment_intents.retrieve(pi, params={"expand": ["nope"]})
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.payment_intents.retrieve(pi, params={"expand": ["data.latest_charge"]})


def test_refund_expand_is_honoured(client: stripe.StripeClient) -> None:
    # Before: refund expand was accepted and ignored.
    [pi] = _charged(client, 1)
    refund = client.v1.refunds.create(params={"payment_intent": pi, "amount": 10,
                                              "expand": ["payment_intent", "charge"]})
    assert refund.payment_intent.id == pi and refund.charge.object == "charge"
    again = client.v1.refunds.retrieve(refund.id, params={"expand": ["charge"]})
    assert again.charge.object == "charge" and isinstance(again.payment_intent, str)
    page = client.v1.refunds.list(params={"expand": ["data.payment_intent"]})
    assert page.data[0].payment_intent.id == pi
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        client.v1.refunds.retrieve(refund.id, params={"expand": ["nope"]})


# -- parameters -------------------------------------------------------------------------------


def test_a_non_boolean_is_refused_not_read_as_false(client: stripe.StripeClient) -> None:
    # Before: automatic_payment_methods[enabled]=yes silently became false.
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd",
            "automatic_payment_methods": {"enabled": "yes"}})  # type: ignore[typeddict-item]
    assert caught.value.param == "automatic_payment_methods[enabled]"
    pi = client.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "automatic_payment_methods": {"enabled": True}})
    assert pi.automatic_payment_methods.enabled is True


def test_shipping_is_kept(client: stripe.StripeClient) -> None:
    # Before: shipping was accepted and answered as null.
    shipping: Any = {"name": "Ada", "address": {"line1": "1 Loop Rd", "city": "Lovelace",
                                                "country": "GB", "postal_code": "N1"}}
    pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd",
                                                  "shipping": shipping})
    assert pi.shipping.name == "Ada" and pi.shipping.address.city == "Lovelace"
    assert client.v1.payment_intents.retrieve(pi.id).shipping.address.line1 == "1 Loop Rd"


# -- stats ------------------------------------------------------------------------------------


def _status_of(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request) as answer:  # the fake, on 127.0.0.1
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_stats_count_a_refused_request_once(fake_stripe: FakeStripe) -> None:
    # Before: 401s and unrouted 404s were counted twice.
    assert _status_of(fake_stripe.url + "/v1/payment_intents", {}) == 401
    good = {"Authorization": f"Bearer {fake_stripe.api_key}"}
    assert _status_of(fake_stripe.url + "/v1/nowhere", good) == 404
    with urllib.request.urlopen(fake_stripe.url + "/_fake/stats") as answer:
        counters: dict[str, Any] = json.loads(answer.read())["counters"]
    assert counters["status.401"] == 1 and counters["status.404"] == 1


def test_payment_method_data_with_confirm_creates_the_method_and_charges(
        client: stripe.StripeClient, fake_stripe: FakeStripe) -> None:
    # Before: answered 400 although Stripe creates the payment method and charges.
    pi = client.v1.payment_intents.create(params={
        "amount": 1500, "currency": "usd", "confirm": True,
        "payment_method_data": {"type": "card", "card": {"token": "tok_visa"}},  # type: ignore[typeddict-item]
        "expand": ["payment_method"]})
    assert pi.status == "succeeded"
    assert pi.payment_method.id.startswith("pm_") and pi.payment_method.card.last4 == "4242"
    assert len(fake_stripe.ledger.charges) == 1
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(params={
            "amount": 1500, "currency": "usd", "confirm": True,
            "payment_method_data": {"type": "card",  # type: ignore[typeddict-item]
                                    "card": {"token": "tok_chargeDeclined"}}})
    assert declined.value.code == "card_declined"
    with pytest.raises(stripe.InvalidRequestError, match="only specify one"):
        client.v1.payment_intents.create(params={
            "amount": 1500, "currency": "usd", "payment_method": "pm_card_visa",
            "payment_method_data": {"type": "card",  # type: ignore[typeddict-item]
                                    "card": {"token": "tok_visa"}}})


def test_payment_method_options_are_kept_and_checked(client: stripe.StripeClient) -> None:
    pi = client.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd",
        "payment_method_options": {"card": {"request_three_d_secure": "challenge"}}})
    assert pi.payment_method_options.card.request_three_d_secure == "challenge"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd",
            "payment_method_options": {"card": {"request_three_d_secure": "sometimes"}}})


def test_connect_parameters_are_refused_not_dropped(client: stripe.StripeClient) -> None:
    # Before: on_behalf_of and application_fee_amount were accepted and not echoed.
    with pytest.raises(stripe.InvalidRequestError) as fee:
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd",
                                                 "application_fee_amount": 100})
    assert fee.value.param == "application_fee_amount"
    with pytest.raises(stripe.InvalidRequestError) as account:
        client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd",
                                                 "on_behalf_of": "acct_123"})
    assert account.value.param == "on_behalf_of"
