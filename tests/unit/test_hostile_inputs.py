"""Issue 9 §4: each hostile input found by fuzzing gets a typed egress error, never a bare
built-in exception (the property itself is checked over random inputs in tests/fuzz/)."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

import pytest

from egress import Secret
from egress.adapters.stripe import StripePayments, verify_webhook
from egress.adapters.stripe._parse import parse_payment_intent
from egress.adapters.stripe.webhooks import sign_payload
from egress.errors import (
    EgressError,
    InvalidPaymentRequest,
    OutcomeUnknown,
    ProviderUnavailable,
    ResponseError,
    UnsafeRequestError,
    WebhookError,
)
from egress.http import OAuth2ClientCredentials
from egress.http._headers import Headers
from egress.http._redirect import next_hop
from egress.http._response import Response
from egress.http._wire import WireRequest, WireResponse
from egress.payments import Money, PaymentRequest
from egress.payments.idempotency import RecordState
from egress.testing import FakeClock

HUGE = [10**20, -(10**20), 2**63, 253402300800]


def intent(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "pi_1", "object": "payment_intent", "amount": 1000,
                           "currency": "usd", "status": "succeeded", "created": 1700000000,
                           "metadata": {"reference": "order-1"}}
    doc.update(overrides)
    return doc


@pytest.mark.parametrize("created", HUGE)
def test_out_of_range_timestamps_are_value_errors_for_the_adapter(created: int) -> None:
    with pytest.raises(ValueError, match="created"):
        parse_payment_intent(intent(created=created), reference_key="reference")


class CannedWire:
    """Answers every request with one canned Stripe object."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.body = json.dumps(doc).encode()

    async def send(self, request: WireRequest) -> WireResponse:
        return WireResponse(200, Headers([("content-type", "application/json"),
                                          ("request-id", "req_1")]), self.body)

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("created", HUGE)
async def test_get_and_create_with_an_out_of_range_created_raise_typed_errors(
        created: int) -> None:
    async with StripePayments("sk_test_x", base_url="http://127.0.0.1:9") as payments:
        payments.client._wire = CannedWire(intent(created=created))  # type: ignore[assignment]
        with pytest.raises(ProviderUnavailable) as got:
            await payments.get("pi_1")
        assert isinstance(got.value.__cause__, ResponseError)
        request = PaymentRequest(amount=Money("10.00", "USD"), reference="order-1",
                                 payment_method="pm_card_visa")
        for _ in range(2):  # the replay gets the same typed answer, not a crash
            with pytest.raises(OutcomeUnknown):
                await payments.create(request)
        record = await payments.store.get(payments._keeper.scope, "create", "order-1")
        assert record is not None and record.state is not RecordState.PENDING  # to reconcile


@pytest.mark.parametrize("created", HUGE)
def test_a_signed_webhook_with_an_out_of_range_timestamp_is_a_webhook_error(
        created: int) -> None:
    for doc in ({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                 "created": created, "data": {"object": intent()}},
                {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                 "created": 1700000000, "data": {"object": intent(created=created)}}):
        payload = json.dumps(doc).encode()
        header = sign_payload(payload, "whsec_x", 1700000000)
        with pytest.raises(WebhookError) as got:
            verify_webhook(payload, header, "whsec_x", now=1700000000)
        assert isinstance(got.value, ResponseError)  # parse_event's documented error too


@pytest.mark.parametrize("location", ["http://127.0.0.1:99999/", "http://[::1/",
                                      "http://127.0.0.1:-1/", "http://[::1]:0x50/"])
def test_a_hostile_redirect_location_is_refused_with_a_typed_error(location: str) -> None:
    with pytest.raises(ResponseError, match="redirect"):
        next_hop("GET", "http://127.0.0.1:8000/x", headers={}, body=None, status=302,
                 location=location, base_origin=("http", "127.0.0.1", 8000),
                 sensitive=frozenset(), key_header="idempotency-key")


@pytest.mark.parametrize("expires_in", [10**400, 10**20, float("inf"), 1e308, -5, "3600", True])
def test_an_absurd_expires_in_is_bounded_not_an_overflow(expires_in: Any) -> None:
    auth = OAuth2ClientCredentials("https://127.0.0.1/token", client_id="c",
                                   client_secret=Secret("s3cret"))
    clock = FakeClock()
    body = ('{"access_token": "tok", "expires_in": %s}'
            % (json.dumps(expires_in) if not isinstance(expires_in, float) else "1e400"
               if expires_in == float("inf") else repr(expires_in))).encode()
    if expires_in == float("inf"):  # 1e400: refused by the strict JSON parser, a typed error
        with pytest.raises(ResponseError):
            auth._accept(200, body, clock)
        return
    assert auth._accept(200, body, clock) == "tok"
    token = auth._token
    assert token is not None
    assert clock.now() < token.expires <= clock.now() + 86400


@pytest.mark.parametrize("amount", ["1E+1000000", "1e3", "1E3", "1_000", " 1", "1 ", "\t1",
                                    "1.", ".5", "+1", "١٢", "0x10", "1e-2", "", "-", "1.2.3",
                                    "1" * 100, "Infinity", "NaN", "sNaN"])
def test_money_refuses_anything_but_a_plain_decimal_string(amount: str) -> None:
    with pytest.raises(InvalidPaymentRequest) as got:
        Money(amount, "USD")
    assert got.value.param == "amount"


@pytest.mark.parametrize("amount", [Decimal("1E+1000000"), Decimal("1E-1000000"),
                                    Decimal("-0E+1000000"), 10**4000])
def test_money_refuses_hostile_decimals_with_a_typed_error(amount: Any) -> None:
    with contextlib.suppress(InvalidPaymentRequest):  # a value or a typed refusal, nothing else
        Money(amount, "USD")


@pytest.mark.parametrize("minor", [10**4000, 2**63])
def test_from_minor_refuses_huge_values(minor: int) -> None:
    with pytest.raises(InvalidPaymentRequest):
        Money.from_minor(minor, "USD")


def test_money_still_takes_plain_decimals() -> None:
    assert Money("19.99", "USD").to_minor() == 1999
    assert Money("19", "USD").to_minor() == 1900
    assert Money("0.5", "USD").to_minor() == 50
    assert Money("5", "JPY").to_minor() == 5
    assert Money(Decimal("1E+3"), "USD").to_minor() == 100000  # a Decimal is already a number
    with pytest.raises(InvalidPaymentRequest, match="negative"):
        Money("-1.00", "USD")


@pytest.mark.parametrize("charset", ["idna", "undefined", "punycode", "utf\x008", "hex",
                                     "base64", "rot13", "unicode_escape", "x" * 10000])
def test_response_text_never_raises_on_a_hostile_charset(charset: str) -> None:
    response = Response(200, Headers([("content-type", f"text/plain; charset={charset}")]),
                        b"\xff abc \\u12")
    assert "abc" in response.text


def test_every_error_above_is_an_egress_error() -> None:
    assert issubclass(UnsafeRequestError, EgressError)
    assert issubclass(WebhookError, EgressError)
