"""The Stripe wire format, pure: form encoding, amounts, every request against Stripe's OpenAPI
description of its operation, and Stripe's own fixture objects through the parsers."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.adapters.stripe._amounts import from_stripe_amount, to_stripe_amount
from egress.adapters.stripe._parse import (
    parse_json,
    parse_list,
    parse_payment_intent,
    parse_refund,
)
from egress.adapters.stripe._requests import (
    StripeRequest,
    cancel_intent,
    capture_intent,
    confirm_intent,
    create_intent,
    create_refund,
    list_intents,
    list_refunds,
    retrieve_intent,
    retrieve_refund,
    search_intents,
)
from egress.adapters.stripe.form import decode_form, encode_form, form_fields
from egress.errors import InvalidPaymentRequest
from egress.payments import (
    CURRENCY_EXPONENTS,
    CancellationReason,
    Money,
    PaymentRequest,
    PaymentStatus,
    RefundReason,
    RefundStatus,
)

STRIPE = Path(__file__).resolve().parents[1] / "data" / "stripe"


@cache
def spec() -> dict[str, Any]:
    return json.loads((STRIPE / "payment_intents.openapi.json").read_text())


@cache
def fixtures() -> dict[str, Any]:
    return json.loads((STRIPE / "fixtures3.json").read_text())["resources"]


# -- OpenAPI validation helpers ----------------------------------------------------------------


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec()["components"]["schemas"][name]
    return schema


def coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Form values are strings: give them the types the schema asks for, where they fit."""
    schema = resolve(schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            for option in schema[key]:
                candidate = coerce(value, option)
                if not list(validator(option).iter_errors(candidate)):
                    return candidate
            return value
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {k: coerce(v, props.get(k) or (extra if isinstance(extra, dict) else {}))
                for k, v in value.items()}
    if kind == "array" and isinstance(value, list):
        return [coerce(v, schema.get("items", {})) for v in value]
    if value == "" and schema.get("enum") == [""]:
        return ""
    return value


def validator(schema: dict[str, Any]) -> jsonschema.Draft4Validator:
    root = dict(schema, components=spec()["components"])
    return jsonschema.Draft4Validator(root)


def operation(request: StripeRequest) -> dict[str, Any]:
    for path_item in spec()["paths"].values():
        for method, op in path_item.items():
            if op.get("operationId") == request.operation_id:
                assert method.upper() == request.method
                return dict(op)
    raise AssertionError(f"{request.operation_id} is not in the OpenAPI subset")


def validate(request: StripeRequest) -> dict[str, Any]:
    """Assert ``request`` is what its operation accepts; return the typed parameters."""
    op = operation(request)
    params = decode_form(list(request.params))
    declared = {p["name"]: p for p in op.get("parameters", [])}
    path_params = {n for n, p in declared.items() if p["in"] == "path"}
    assert set(request.path_params) == path_params
    for name in path_params:
        assert request.path_params[name]
    if request.method == "POST":
        body = op["requestBody"]["content"]["application/x-www-form-urlencoded"]
        schema = body["schema"]
        typed = coerce(params, schema)
        errors = sorted(validator(schema).iter_errors(typed), key=str)
        assert not errors, [e.message for e in errors]
        # Nested values are sent as Stripe's deepObject brackets, as the spec declares.
        for name, value in params.items():
            if isinstance(value, dict | list):
                assert body["encoding"][name]["style"] == "deepObject"
        return dict(typed)
    typed = {}
    for name, value in params.items():
        assert name in declared and declared[name]["in"] == "query", name
        schema = declared[name]["schema"]
        typed[name] = coerce(value, schema)
        errors = list(validator(schema).iter_errors(typed[name]))
        assert not errors, (name, [e.message for e in errors])
    for name, param in declared.items():
        if param.get("required") and param["in"] == "query":
            assert name in typed
    return typed


# -- form encoding -----------------------------------------------------------------------------


def test_form_encoding_of_nested_parameters() -> None:
    pairs = form_fields({
        "amount": 2000, "currency": "usd", "confirm": True, "skip": None,
        "metadata": {"order": "42", "note": "a&b=c"},
        "payment_method_types": ["card", "sepa_debit"],
        "deep": {"a": [{"b": False}]},
    })
    assert pairs == [
        ("amount", "2000"), ("currency", "usd"), ("confirm", "true"),
        ("metadata[order]", "42"), ("metadata[note]", "a&b=c"),
        ("payment_method_types[0]", "card"), ("payment_method_types[1]", "sepa_debit"),
        ("deep[a][0][b]", "false"),
    ]
    assert decode_form(pairs)["payment_method_types"] == ["card", "sepa_debit"]
    assert decode_form(pairs)["deep"] == {"a": [{"b": "false"}]}


_form_keys = st.text(min_size=1, max_size=6).filter(lambda k: "[" not in k and "]" not in k)
_form_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_form_keys, inner, max_size=3)),
    max_leaves=8)


@given(st.dictionaries(_form_keys, _form_values, max_size=5))
def test_the_body_is_encoded_once_and_as_urlencode_would(params: dict[str, Any]) -> None:
    # One pass to bytes, identical to what the HTTP client made of the fields before: a body
    # built by this version is the body an earlier version sent under the same key.
    assert encode_form(params) == urlencode(form_fields(params)).encode("ascii")


def request(**kw: Any) -> PaymentRequest:
    base: dict[str, Any] = {"amount": Money("20.00", "USD"), "reference": "order-1",
                            "payment_method": "pm_card_visa"}
    base.update(kw)
    return PaymentRequest(**base)


def test_create_is_deterministic_to_the_byte() -> None:
    a = create_intent(request(metadata={"b": "2", "a": "1"}))
    b = create_intent(request(metadata={"a": "1", "b": "2"}))
    assert a.body == b.body and a.params == b.params
    assert ("metadata[a]", "1") in a.params and ("metadata[reference]", "order-1") in a.params
    names = [name for name, _ in a.params]
    assert names.index("metadata[a]") < names.index("metadata[b]")


# -- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("money", "wire"), [
    (Money("20.00", "USD"), 2000), (Money("0.50", "EUR"), 50), (Money(500, "JPY"), 500),
    (Money(1000, "KRW"), 1000), (Money("5.120", "KWD"), 5120), (Money("1.000", "BHD"), 1000),
    (Money(5, "ISK"), 500), (Money(2000, "UGX"), 2000),
])
def test_amounts_on_the_wire(money: Money, wire: int) -> None:
    assert to_stripe_amount(money) == wire
    assert from_stripe_amount(wire, money.currency.lower()) == money


@pytest.mark.parametrize("code", ["BHD", "JOD", "KWD", "OMR", "TND"])
def test_three_decimal_amounts_must_end_in_zero(code: str) -> None:
    with pytest.raises(InvalidPaymentRequest, match="last digit must be 0"):
        to_stripe_amount(Money("5.124", code))
    with pytest.raises(InvalidPaymentRequest):
        create_intent(request(amount=Money("5.124", code)))
    assert to_stripe_amount(Money("5.130", code)) == 5130


def test_wire_amounts_are_strict() -> None:
    for bad in (20.5, "2000", True, -1, None):
        with pytest.raises(ValueError, match="integer"):
            from_stripe_amount(bad, "usd")
    with pytest.raises(ValueError, match="not whole"):
        from_stripe_amount(550, "isk")


@given(minor=st.integers(min_value=1, max_value=10**12),
       currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_amounts_round_trip_through_the_wire(minor: int, currency: str) -> None:
    money = Money.from_minor(minor, currency)
    try:
        wire = to_stripe_amount(money)
    except InvalidPaymentRequest:
        assert currency in {"BHD", "JOD", "KWD", "OMR", "TND"} and minor % 10
        return
    assert isinstance(wire, int)
    assert from_stripe_amount(wire, currency.lower()) == money


# -- every request against its OpenAPI operation ------------------------------------------------


def test_create_validates() -> None:
    typed = validate(create_intent(request(
        customer="cus_1", description="2 books", metadata={"cart": "c-9"}, capture=False)))
    assert typed["amount"] == 2000 and typed["currency"] == "usd"
    assert typed["confirm"] is True and typed["capture_method"] == "manual"
    assert typed["metadata"] == {"cart": "c-9", "reference": "order-1"}
    assert typed["payment_method_types"] == ["card"]
    validate(create_intent(request(confirm=False, payment_method=None)))


metadata_keys = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="[]",
                                               exclude_categories=("Cs", "Cc")),
                        min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    minor=st.integers(min_value=1, max_value=99_999_999),
    currency=st.sampled_from(["USD", "EUR", "JPY", "KWD", "GBP", "ISK"]),
    reference=st.text(min_size=1, max_size=200).filter(str.isprintable),
    description=st.none() | st.text(max_size=1000),
    metadata=st.dictionaries(metadata_keys, st.text(max_size=500), max_size=10),
    capture=st.booleans(),
)
def test_any_valid_payment_request_builds_a_valid_create(
        minor: int, currency: str, reference: str, description: str | None,
        metadata: dict[str, str], capture: bool) -> None:
    money = Money.from_minor(minor * (10 if currency == "KWD" else 1), currency)
    metadata.pop("reference", None)
    req = request(amount=money, reference=reference, description=description,
                  metadata=metadata, capture=capture)
    typed = validate(create_intent(req))
    assert typed["metadata"]["reference"] == reference


@settings(max_examples=40, deadline=None)
@given(
    reference=st.text(min_size=1, max_size=40).filter(str.isprintable),
    customer=st.none() | st.sampled_from(["cus_1", "cus_A-b.c"]),
    description=st.none() | st.text(max_size=30),
    metadata=st.dictionaries(metadata_keys, st.text(max_size=20), max_size=4),
    confirm=st.booleans(), capture=st.booleans(),
    types=st.sampled_from([("card",), ("card", "link"), ("us_bank_account",)]),
    generation=st.none() | st.integers(0, 10**6),
)
def test_create_sends_the_bytes_of_its_params_form(
        reference: str, customer: str | None, description: str | None,
        metadata: dict[str, str], confirm: bool, capture: bool, types: tuple[str, ...],
        generation: int | None) -> None:
    # create_intent builds its fields directly (the hot path); the body must stay byte for byte
    # what encoding the params mapping gives, which earlier versions sent under the same key.
    metadata.pop("reference", None)
    req = request(reference=reference, customer=customer, description=description,
                  metadata=metadata, confirm=confirm, capture=capture)
    tagged = {**metadata, "reference": reference}
    if generation is not None:
        tagged["egress_key_generation"] = str(generation)
    params: dict[str, Any] = {
        "amount": 2000, "currency": "usd",
        "capture_method": "automatic" if capture else "manual", "confirm": confirm,
        "customer": customer, "description": description,
        "metadata": {key: tagged[key] for key in sorted(tagged)},
        "payment_method": "pm_card_visa", "payment_method_types": list(types)}
    built = create_intent(req, payment_method_types=types, generation=generation)
    assert built.body == encode_form(params)


def test_parsed_money_is_cached_within_a_bound() -> None:
    # Answers repeat the same amounts: the Money is reused, and the cache cannot grow unbounded.
    from egress.adapters.stripe import _amounts
    assert from_stripe_amount(500, "isk") == Money(5, "ISK")
    assert from_stripe_amount(500, "isk") is from_stripe_amount(500, "isk")
    with pytest.raises(ValueError, match="not whole"):
        from_stripe_amount(550, "isk")
    with pytest.raises(ValueError, match="not whole"):  # a refusal is never cached
        from_stripe_amount(550, "isk")
    for minor in range(3 * _amounts._MAX_PARSED):
        assert from_stripe_amount(minor, "usd").to_minor() == minor
    assert len(_amounts._PARSED) <= _amounts._MAX_PARSED


@pytest.mark.parametrize("bad", ["pm card", " pm_1", "pm_1 ", "cus 1"])
def test_ids_with_whitespace_are_refused_without_echo(bad: str) -> None:
    for field in ("payment_method", "customer"):
        with pytest.raises(InvalidPaymentRequest, match="not card data") as caught:
            request(**{field: bad})
        assert bad not in str(caught.value)


def test_metadata_limits_are_checked_before_sending() -> None:
    with pytest.raises(InvalidPaymentRequest, match="50 keys"):
        create_intent(request(metadata={f"k{i}": "v" for i in range(50)}))
    with pytest.raises(InvalidPaymentRequest, match="40 characters"):
        create_intent(request(metadata={"k" * 41: "v"}))
    with pytest.raises(InvalidPaymentRequest, match="500"):
        create_intent(request(metadata={"k": "v" * 501}))
    with pytest.raises(InvalidPaymentRequest, match="reserved"):
        create_intent(request(metadata={"reference": "someone else"}))
    validate(create_intent(request(metadata={"reference": "order-1"})))  # the same is fine


def test_other_intent_operations_validate() -> None:
    assert validate(confirm_intent("pi_1", payment_method="pm_card_visa")) == {
        "payment_method": "pm_card_visa"}
    assert validate(confirm_intent("pi_1")) == {}
    assert validate(capture_intent("pi_1", amount=Money("15.00", "USD"))) == {
        "amount_to_capture": 1500}
    assert validate(capture_intent("pi_1")) == {}
    for reason in CancellationReason:
        assert validate(cancel_intent("pi_1", reason=reason)) == {
            "cancellation_reason": reason.value}
    assert validate(retrieve_intent("pi_1")) == {}
    typed = validate(search_intents("o'1\\x"))
    assert typed["query"] == "metadata['reference']:'o\\'1\\\\x'"
    assert typed["limit"] == 100
    assert validate(list_intents(created_gte=1_700_000_000, starting_after="pi_9")) == {
        "created": {"gte": 1_700_000_000}, "limit": 100, "starting_after": "pi_9"}


def test_refund_requests_have_stripes_shape() -> None:
    # /v1/refunds is outside the OpenAPI subset; check the documented parameter names.
    built = create_refund("pi_1", reference="r-1", amount=Money("5.00", "USD"),
                          reason=RefundReason.REQUESTED_BY_CUSTOMER)
    assert (built.method, built.path) == ("POST", "/v1/refunds")
    assert decode_form(list(built.params)) == {
        "payment_intent": "pi_1", "amount": "500", "reason": "requested_by_customer",
        "metadata": {"reference": "r-1"}}
    assert retrieve_refund("re_1").url_path == "/v1/refunds/re_1"
    assert dict(list_refunds("pi_1").params)["payment_intent"] == "pi_1"


@pytest.mark.parametrize("bad", ["", "pi/../x", "a" * 256, "pi\n1"])
def test_ids_are_checked_before_use(bad: str) -> None:
    with pytest.raises(InvalidPaymentRequest):
        retrieve_intent(bad)


# -- parsing: Stripe's fixtures and hostile answers ---------------------------------------------


def test_stripe_fixture_payment_intent_parses() -> None:
    obj = fixtures()["payment_intent"]
    payment = parse_payment_intent(obj, reference_key="reference")
    assert payment.id == obj["id"]
    assert payment.status is PaymentStatus(obj["status"])
    assert payment.amount == Money.from_minor(obj["amount"], obj["currency"].upper())
    assert payment.created.timestamp() == obj["created"]
    assert payment.reference is None


def test_stripe_fixture_refund_parses() -> None:
    obj = fixtures()["refund"]
    refund = parse_refund(obj, reference_key="reference")
    assert refund.id == obj["id"]
    assert refund.payment_id == obj["charge"]  # no payment_intent in the sample
    assert refund.status is RefundStatus(obj["status"])
    assert refund.amount == Money("1.00", "USD")


def test_every_payment_status_of_the_spec_is_known() -> None:
    schema = spec()["components"]["schemas"]["payment_intent"]
    assert {s.value for s in PaymentStatus} == set(schema["properties"]["status"]["enum"])


def test_a_payment_intent_parses_every_field() -> None:
    obj = dict(fixtures()["payment_intent"], metadata={"reference": "o-1", "x": "y"},
               customer={"id": "cus_9", "object": "customer"}, payment_method="pm_1",
               status="requires_payment_method",
               last_payment_error={"code": "card_declined", "decline_code": "lost_card"},
               amount_capturable=0, amount_received=0, cancellation_reason=None)
    payment = parse_payment_intent(obj, reference_key="reference")
    assert payment.reference == "o-1" and payment.customer == "cus_9"
    assert payment.decline_code == "lost_card" and payment.is_failed_attempt


@pytest.mark.parametrize("change", [
    {"status": "teleported"}, {"amount": 10.5}, {"amount": "1099"}, {"amount": True},
    {"created": "yesterday"}, {"object": "charge"}, {"id": ""}, {"currency": 5},
    {"metadata": {"a": 1}}, {"currency": "zzz"},
])
def test_hostile_payment_intents_are_refused(change: dict[str, Any]) -> None:
    obj = dict(fixtures()["payment_intent"], **change)
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError; message checked below
        parse_payment_intent(obj, reference_key="reference")


def test_parse_json_is_strict() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}
    for bad in (b"[1]", b'{"a": NaN}', b'{"a": 1, "a": 2}', b"\xff", b"[" * 50_000, b""):
        with pytest.raises(ValueError):  # noqa: PT011
            parse_json(bad)


def test_lists_and_search_results() -> None:
    data, more, page = parse_list({"object": "search_result", "data": [{"id": "pi_1"}],
                                   "has_more": True, "next_page": "p2", "url": "/x"})
    assert data == [{"id": "pi_1"}] and more and page == "p2"
    with pytest.raises(ValueError):  # noqa: PT011
        parse_list({"object": "list", "data": "nope", "has_more": False})


def test_money_amounts_parse_exactly() -> None:
    obj = dict(fixtures()["payment_intent"], amount=123456789, currency="kwd")
    assert parse_payment_intent(obj, reference_key="reference").amount.amount == Decimal(
        "123456.789")


@pytest.mark.parametrize("params", [
    (("amount", "2000"), ("currency", "usd"), ("bogus", "1")),  # an undeclared parameter
    (("amount", "20.00"), ("currency", "usd")),  # not an integer
    (("currency", "usd"),),  # a required parameter missing
    (("amount", "2000"), ("currency", "usd"), ("confirm", "yes")),  # not a boolean
    (("amount", "2000"), ("currency", "usd"), ("capture_method", "later")),  # not in the enum
    (("amount", "2000"), ("currency", "usd"), ("metadata", "flat")),  # not an object
])
def test_the_validator_catches_mistakes(params: tuple[tuple[str, str], ...]) -> None:
    wrong = StripeRequest("PostPaymentIntents", "POST", "/v1/payment_intents", {},
                        body=urlencode(params).encode())
    with pytest.raises(AssertionError):
        validate(wrong)


def test_the_validator_catches_undeclared_query_parameters() -> None:
    wrong = StripeRequest("GetPaymentIntents", "GET", "/v1/payment_intents", {},
                        (("metadata[reference]", "o-1"),))
    with pytest.raises(AssertionError):
        validate(wrong)
