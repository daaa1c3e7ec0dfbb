"""Fuzz every payment-side parser that reads outside bytes: Money, Stripe objects and error
bodies, webhook signatures and payloads, and the fake's form decoding."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from _fuzz import EXAMPLES, attempt, exactly
from hypothesis import example, given, settings
from hypothesis import strategies as st

from egress.adapters.stripe import parse_event, verify_signature, verify_webhook
from egress.adapters.stripe._amounts import from_stripe_amount
from egress.adapters.stripe._errors import parse_stripe_error, stripe_retry_hook, to_domain_error
from egress.adapters.stripe._parse import (
    parse_json,
    parse_list,
    parse_payment_intent,
    parse_refund,
)
from egress.adapters.stripe.webhooks import sign_payload
from egress.errors import (
    ConfigurationError,
    InvalidPaymentRequest,
    ResponseError,
    StatusError,
    WebhookError,
    WebhookPayloadInvalid,
)
from egress.http._headers import Headers
from egress.http._response import Response
from egress.payments import Money
from egress.payments.money import CURRENCY_EXPONENTS
from egress.testing.fake_stripe._faults import parse_rules
from egress.testing.fake_stripe._forms import FormError, parse_pairs

FUZZ = settings(max_examples=EXAMPLES)
NOW = 1_700_000_000
SECRET = "whsec_fuzz"
value_error = exactly(ValueError)
huge_ints = st.one_of(st.integers(min_value=-(10**400), max_value=10**400),
                      st.sampled_from([2**63, 2**64, 10**20, -(10**20), 253402300800, -1]))
json_values = st.recursive(
    st.none() | st.booleans() | huge_ints | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10)
codes = st.one_of(st.sampled_from(sorted(CURRENCY_EXPONENTS)), st.text(max_size=5))


@FUZZ
@given(text=st.one_of(
    st.text(max_size=40),
    st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,8})?", fullmatch=True),
    st.sampled_from(["1E+1000000", "1e3", "1_000", " 1", "١٢", "sNaN", "-Infinity", "0E-99999"])),
    currency=codes)
@example(text="1E+1000000", currency="USD")
def test_money_from_text(text: str, currency: str) -> None:
    attempt("Money(text)", lambda: Money(text, currency), InvalidPaymentRequest)


@FUZZ
@given(amount=st.one_of(st.decimals(allow_nan=True, allow_infinity=True), huge_ints,
                        st.builds(lambda s, e: Decimal(f"{s}E{e}"), st.integers(-99, 99),
                                  st.integers(-(10**6), 10**6))),
       currency=codes)
@example(amount=Decimal("1E+1000000"), currency="USD")
def test_money_from_numbers(amount: Any, currency: str) -> None:
    attempt("Money(Decimal | int)", lambda: Money(amount, currency), InvalidPaymentRequest)
    if isinstance(amount, int):
        attempt("Money.from_minor", lambda: Money.from_minor(amount, currency),
                InvalidPaymentRequest)


@FUZZ
@given(amount=json_values, currency=json_values | codes)
def test_stripe_amounts(amount: Any, currency: Any) -> None:
    value_error(attempt("Stripe amount + currency",
                        lambda: from_stripe_amount(amount, currency), ValueError))


INTENT: dict[str, Any] = {
    "id": "pi_1", "object": "payment_intent", "amount": 1000, "currency": "usd",
    "status": "succeeded", "created": NOW, "metadata": {"reference": "order-1"},
    "amount_received": 1000, "amount_capturable": 0, "customer": None,
    "payment_method": "pm_1", "description": None, "cancellation_reason": None,
    "last_payment_error": None,
}
REFUND: dict[str, Any] = {
    "id": "re_1", "object": "refund", "amount": 500, "currency": "usd", "status": "succeeded",
    "created": NOW, "payment_intent": "pi_1", "charge": "ch_1", "metadata": {}, "reason": None,
    "failure_reason": None,
}


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from([*sorted(base), "extra"]), json_values,
                           max_size=4).map(lambda changes: {**base, **changes})


@FUZZ
@given(intent=mutated(INTENT), refund=mutated(REFUND))
@example(intent={**INTENT, "created": 10**20}, refund={**REFUND, "created": -(10**20)})
def test_stripe_objects_with_mutated_fields(intent: dict[str, Any],
                                            refund: dict[str, Any]) -> None:
    value_error(attempt("Stripe PaymentIntent object",
                        lambda: parse_payment_intent(intent, reference_key="reference"),
                        ValueError))
    value_error(attempt("Stripe Refund object",
                        lambda: parse_refund(refund, reference_key="reference"), ValueError))
    listing = {"object": "list", "data": [intent, refund], "has_more": intent.get("extra")}
    value_error(attempt("Stripe list object", lambda: parse_list(listing), ValueError))


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 3000).map(lambda n: b'{"a":' * n)))
def test_stripe_json_bodies(body: bytes) -> None:
    value_error(attempt("Stripe JSON body", lambda: parse_json(body), ValueError))


@FUZZ
@given(status=st.integers(400, 599), error=st.one_of(
    st.dictionaries(st.sampled_from(["type", "code", "decline_code", "param", "message",
                                     "doc_url"]), json_values, max_size=6),
    json_values), raw=st.one_of(st.none(), st.binary(max_size=100)),
       should_retry=st.one_of(st.none(), st.text(max_size=8)))
def test_stripe_error_bodies(status: int, error: Any, raw: bytes | None,
                             should_retry: str | None) -> None:
    headers = [("Request-Id", "req_1")]
    if should_retry is not None:
        headers.append(("Stripe-Should-Retry", should_retry))
    content = raw if raw is not None else json.dumps({"error": error}).encode()
    exc = StatusError(status, request_id="req_1", headers=tuple(headers),
                      response=Response(status, Headers(headers), content))

    def classify() -> object:
        parse_stripe_error(exc)
        stripe_retry_hook(exc, None)
        return to_domain_error(exc, operation="create", changes_state=True, reference="r",
                               idempotency_key="k")

    attempt("Stripe error body", classify)


@FUZZ
@given(header=st.one_of(
    st.text(max_size=120),
    st.builds(lambda t, v: f"t={t},v1={v}", st.one_of(huge_ints.map(str), st.text(max_size=12)),
              st.text(max_size=70)),
    st.just("t=1," * 3000)), payload=st.binary(max_size=200))
def test_stripe_signature_headers(header: str, payload: bytes) -> None:
    attempt("Stripe-Signature header",
            lambda: verify_signature(payload, header, SECRET, now=NOW), WebhookError)


EVENT: dict[str, Any] = {"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                         "created": NOW, "livemode": False, "data": {"object": INTENT}}


@FUZZ
@given(event=mutated(EVENT), intent=mutated(INTENT),
       kind=st.sampled_from(["payment_intent.succeeded", "payment_intent.payment_failed",
                             "refund.updated", "charge.succeeded"]),
       raw=st.one_of(st.none(), st.binary(max_size=100)))
@example(event={**EVENT, "created": 10**20}, intent=INTENT, kind="payment_intent.succeeded",
         raw=None)
def test_signed_webhook_payloads(event: dict[str, Any], intent: dict[str, Any], kind: str,
                                 raw: bytes | None) -> None:
    doc = {**event, "type": kind, "data": {"object": intent}} if "data" not in event or \
        event["data"] == EVENT["data"] else {**event, "type": kind}
    payload = raw if raw is not None else json.dumps(doc).encode()
    header = sign_payload(payload, SECRET, NOW)
    escaped = attempt("signed webhook payload",
                      lambda: verify_webhook(payload, header, SECRET, now=NOW), WebhookError)
    assert escaped is None or isinstance(escaped, WebhookPayloadInvalid)
    attempt("webhook event (parse_event)", lambda: parse_event(payload), ResponseError)


@FUZZ
@given(raw=st.one_of(
    st.text(max_size=120),
    st.lists(st.tuples(st.builds(lambda base, parts: base + "".join(f"[{p}]" for p in parts),
                                 st.sampled_from(["a", "b", "card", "metadata", "", "0"]),
                                 st.lists(st.sampled_from(["", "0", "1", "2", "00", "x", "²",
                                                           "a b", "["]), max_size=6)),
                       st.text(max_size=8)), max_size=8).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))))
@example(raw="a[0]=1&a[2]=2")
@example(raw="a=1&a[b]=2")
def test_form_decoding(raw: str) -> None:
    attempt("form decoding (FakeStripe)",
            lambda: parse_pairs(parse_qsl(raw, keep_blank_values=True)), FormError)


@FUZZ
@given(spec=st.one_of(
    st.text(max_size=80),
    st.lists(st.builds(lambda route, window, items: f"{route}{window}: {', '.join(items)}",
                       st.sampled_from(["*", "POST", "payment_intents.create", "x", ""]),
                       st.sampled_from(["", "@0.5-3", "@1e400-", "@-1-2", "@nan", "@3-1"]),
                       st.lists(st.builds(lambda share, fault, opt: f"{share}{fault}{opt}",
                                          st.sampled_from(["", "5% ", "150% ", "-1% ", "nan% ",
                                                           "1e999% "]),
                                          st.sampled_from(["503", "429", "latency", "reset",
                                                           "black-hole", "999", "slow-drip",
                                                           "ok", "bogus"]),
                                          st.sampled_from(["", " seconds=0.1", " seconds=inf",
                                                           " chunks=1e400", " status=99999",
                                                           " retry-after=nan", " commit=maybe",
                                                           " x"])),
                                min_size=1, max_size=3)),
             max_size=3).map(";".join)))
@example(spec="*: 5% latency chunks=1e400")
def test_fake_fault_rules(spec: str) -> None:
    attempt("fault rules (FakeStripe)", lambda: parse_rules(spec), ConfigurationError)
