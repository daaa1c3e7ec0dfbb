"""FakeStripe's API surface over real HTTP: objects, state rules, errors, auth, schema shapes."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from egress.testing import fake_stripe_fixture  # noqa: F401  (registers ``fake_stripe``)
from egress.testing.fake_stripe import FakeStripe

SPEC = Path(__file__).resolve().parents[1] / "data" / "stripe" / "payment_intents.openapi.json"


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable`` is not JSON Schema: rewrite it as ``anyOf [..., null]``."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def validate_intent() -> Any:
    if not SPEC.exists():  # pragma: no cover - the shared contract data is part of the setup
        pytest.fail(f"Stripe contract data missing: {SPEC}")
    spec = json.loads(SPEC.read_text())
    root = {"components": _to_json_schema(spec["components"])}
    validator_cls = jsonschema.validators.validator_for({"$schema":
                                                         "https://json-schema.org/draft/2020-12/schema"})

    def check(obj: dict[str, Any], schema: str = "payment_intent") -> None:
        validator = validator_cls({**root, "$ref": f"#/components/schemas/{schema}"})
        validator.validate(obj)

    return check


def create(api: httpx.Client, **params: str) -> httpx.Response:
    data = {"amount": "2000", "currency": "usd", **params}
    return api.post("/v1/payment_intents", data=data)


# -- objects and the schema -------------------------------------------------------------------


def test_every_status_validates_against_the_openapi_schema(api: httpx.Client,
                                                           validate_intent: Any) -> None:
    seen: dict[str, dict[str, Any]] = {}
    bodies = [
        create(api).json(),
        create(api, payment_method="pm_card_visa").json(),
        create(api, payment_method="pm_card_visa", confirm="true").json(),
        create(api, payment_method="pm_card_visa", confirm="true",
               capture_method="manual").json(),
        create(api, payment_method="pm_card_authenticationRequired", confirm="true").json(),
        create(api, payment_method="pm_card_chargeDeclined", confirm="true").json()["error"][
            "payment_intent"],
    ]
    canceled = api.post(f"/v1/payment_intents/{bodies[0]['id']}/cancel").json()
    for body in [*bodies, canceled]:
        validate_intent(body)
        seen[body["status"]] = body
    assert set(seen) == {"requires_payment_method", "requires_confirmation", "succeeded",
                         "requires_capture", "requires_action", "canceled"}


def test_the_schema_check_can_fail(api: httpx.Client, validate_intent: Any) -> None:
    body = create(api).json()
    broken = copy.deepcopy(body)
    broken["amount"] = "2000"
    with pytest.raises(jsonschema.ValidationError):
        validate_intent(broken)
    del body["capture_method"]
    with pytest.raises(jsonschema.ValidationError):
        validate_intent(body)


def test_error_bodies_validate_against_the_error_schema(api: httpx.Client,
                                                        validate_intent: Any) -> None:
    declined = create(api, payment_method="pm_card_chargeDeclined", confirm="true")
    missing = api.post("/v1/payment_intents", data={"currency": "usd"})
    for response in (declined, missing):
        validate_intent(response.json(), "error")


def test_create_reads_nested_form_fields(api: httpx.Client) -> None:
    body = api.post("/v1/payment_intents", content=(
        "amount=1500&currency=EUR&metadata[reference]=order-7&metadata[note]=a%20b"
        "&payment_method_types[0]=card&expand[]=latest_charge&description=x"),
        headers={"Content-Type": "application/x-www-form-urlencoded"}).json()
    assert body["amount"] == 1500
    assert body["currency"] == "eur"
    assert body["metadata"] == {"reference": "order-7", "note": "a b"}
    assert body["payment_method_types"] == ["card"]
    assert body["id"].startswith("pi_")
    assert body["client_secret"].startswith(body["id"] + "_secret_")
    assert body["livemode"] is False


def test_confirm_capture_and_partial_capture(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    pi = create(api, capture_method="manual", payment_method="pm_card_mastercard").json()
    assert pi["status"] == "requires_confirmation"
    pi = api.post(f"/v1/payment_intents/{pi['id']}/confirm").json()
    assert (pi["status"], pi["amount_capturable"], pi["amount_received"]) == (
        "requires_capture", 2000, 0)
    assert fake_stripe.ledger.charges[0].captured is False
    pi = api.post(f"/v1/payment_intents/{pi['id']}/capture",
                  data={"amount_to_capture": "1200"}).json()
    assert (pi["status"], pi["amount_received"], pi["amount_capturable"]) == (
        "succeeded", 1200, 0)
    charge = fake_stripe.ledger.charges[0]
    assert (charge.captured, charge.amount_captured, charge.net) == (True, 1200, 1200)
    again = api.post(f"/v1/payment_intents/{pi['id']}/capture")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"


def test_capture_more_than_capturable_is_refused(api: httpx.Client) -> None:
    pi = create(api, capture_method="manual", payment_method="pm_card_visa",
                confirm="true").json()
    response = api.post(f"/v1/payment_intents/{pi['id']}/capture",
                        data={"amount_to_capture": "2001"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "amount_to_capture"


def test_cancel_rules(api: httpx.Client, fake_stripe: FakeStripe) -> None:
    held = create(api, capture_method="manual", payment_method="pm_card_visa",
                  confirm="true").json()
    canceled = api.post(f"/v1/payment_intents/{held['id']}/cancel",
                        data={"cancellation_reason": "requested_by_customer"}).json()
    assert canceled["status"] == "canceled"
    assert canceled["cancellation_reason"] == "requested_by_customer"
    assert isinstance(canceled["canceled_at"], int)
    assert fake_stripe.ledger.charges[0].released
    assert fake_stripe.ledger.charges_by_reference() == {}
    done = create(api, payment_method="pm_card_visa", confirm="true").json()
    refused = api.post(f"/v1/payment_intents/{done['id']}/cancel")
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "payment_intent_unexpected_state"
    assert error["payment_intent"]["status"] == "succeeded"
    bad_reason = api.post(f"/v1/payment_intents/{held['id']}/cancel",
                          data={"cancellation_reason": "bored"})
    assert bad_reason.json()["error"]["param"] == "cancellation_reason"


def test_update_merges_metadata_and_respects_state(api: httpx.Client) -> None:
    pi = create(api, **{"metadata[a]": "1", "metadata[b]": "2"}).json()
    pi = api.post(f"/v1/payment_intents/{pi['id']}",
                  data={"metadata[a]": "", "metadata[c]": "3", "amount": "999"}).json()
    assert pi["metadata"] == {"b": "2", "c": "3"}
    assert pi["amount"] == 999
    pi = api.post(f"/v1/payment_intents/{pi['id']}", data={"payment_method": "pm_card_visa"})
    assert pi.json()["status"] == "requires_confirmation"
    done = api.post(f"/v1/payment_intents/{pi.json()['id']}/confirm").json()
    assert done["status"] == "succeeded"
    assert api.post(f"/v1/payment_intents/{done['id']}",
                    data={"description": "late note"}).json()["description"] == "late note"
    refused = api.post(f"/v1/payment_intents/{done['id']}", data={"amount": "5000"})
    assert refused.status_code == 400


@pytest.mark.parametrize(("payment_method", "code", "decline_code"), [
    ("pm_card_chargeDeclined", "card_declined", "generic_decline"),
    ("pm_card_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
    ("pm_card_chargeDeclinedFraudulent", "card_declined", "fraudulent"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card"),
    ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc"),
])
def test_declining_test_cards(api: httpx.Client, fake_stripe: FakeStripe, payment_method: str,
                              code: str, decline_code: str) -> None:
    response = create(api, payment_method=payment_method, confirm="true",
                      **{"metadata[reference]": "r1"})
    assert response.status_code == 402
    error = response.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", code, decline_code)
    assert error["charge"].startswith("ch_")
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline_code
    assert intent["payment_method"] is None
    assert fake_stripe.ledger.charges == ()
    assert fake_stripe.ledger.declines == 1
    # A declined intent can be confirmed again with another card.
    ok = api.post(f"/v1/payment_intents/{intent['id']}/confirm",
                  data={"payment_method": "pm_card_visa"})
    assert ok.json()["status"] == "succeeded"
    assert [c.reference for c in fake_stripe.ledger.charges] == ["r1"]


def test_authentication_required_then_completed(api: httpx.Client,
                                                fake_stripe: FakeStripe) -> None:
    pi = create(api, payment_method="pm_card_authenticationRequired", confirm="true").json()
    assert pi["status"] == "requires_action"
    assert pi["next_action"]["type"] == "use_stripe_sdk"
    assert fake_stripe.ledger.charges == ()
    done = fake_stripe.complete_action(pi["id"])
    assert done["status"] == "succeeded"
    assert len(fake_stripe.ledger.charges) == 1
    off = create(api, payment_method="pm_card_authenticationRequired", confirm="true",
                 off_session="true")
    assert off.status_code == 402
    assert off.json()["error"]["code"] == "authentication_required"


def test_complete_action_through_the_control_endpoint(api: httpx.Client) -> None:
    pi = create(api, payment_method="pm_card_threeDSecure2Required", confirm="true").json()
    failed = api.post(f"/_fake/payment_intents/{pi['id']}/complete_action?succeed=false").json()
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"


def test_expand_latest_charge(api: httpx.Client) -> None:
    pi = create(api, payment_method="pm_card_visa", confirm="true").json()
    expanded = api.get(f"/v1/payment_intents/{pi['id']}",
                       params={"expand[]": ["latest_charge", "payment_method"]}).json()
    assert expanded["latest_charge"]["id"] == pi["latest_charge"]
    assert expanded["latest_charge"]["payment_method_details"]["card"]["last4"] == "4242"
    assert expanded["payment_method"]["card"]["brand"] == "visa"


# -- list and search --------------------------------------------------------------------------


def test_list_is_newest_first_and_pages(api: httpx.Client) -> None:
    ids = [create(api).json()["id"] for _ in range(5)]
    page = api.get("/v1/payment_intents", params={"limit": 2}).json()
    assert [p["id"] for p in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True
    nxt = api.get("/v1/payment_intents",
                  params={"limit": 10, "starting_after": page["data"][-1]["id"]}).json()
    assert [p["id"] for p in nxt["data"]] == ids[::-1][2:]
    assert nxt["has_more"] is False
    created = page["data"][0]["created"]
    window = api.get("/v1/payment_intents", params={"created[gte]": created + 10}).json()
    assert window["data"] == []
    assert api.get("/v1/payment_intents", params={"limit": 101}).status_code == 400


def test_search_by_metadata_reference(api: httpx.Client) -> None:
    first = create(api, **{"metadata[reference]": "o'1"}).json()
    create(api, **{"metadata[reference]": "o-2"})
    create(api, payment_method="pm_card_visa", confirm="true", **{"metadata[reference]": "o'1"})
    result = api.get("/v1/payment_intents/search",
                     params={"query": "metadata['reference']:'o\\'1'"}).json()
    assert result["object"] == "search_result"
    assert len(result["data"]) == 2
    assert result["data"][-1]["id"] == first["id"]
    both = api.get("/v1/payment_intents/search", params={
        "query": "metadata[\"reference\"]:\"o'1\" AND status:'succeeded'"}).json()
    assert [p["status"] for p in both["data"]] == ["succeeded"]
    numeric = api.get("/v1/payment_intents/search",
                      params={"query": "amount>=2000 AND -status:'succeeded'"}).json()
    assert len(numeric["data"]) == 2
    paged = api.get("/v1/payment_intents/search",
                    params={"query": "currency:'usd'", "limit": 2}).json()
    assert paged["has_more"] is True
    rest = api.get("/v1/payment_intents/search", params={
        "query": "currency:'usd'", "limit": 2, "page": paged["next_page"]}).json()
    assert len(rest["data"]) == 1
    bad = api.get("/v1/payment_intents/search", params={"query": "colour:'red'"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "query"


def test_search_lag_hides_fresh_objects() -> None:
    with FakeStripe(search_lag=30.0) as fake, httpx.Client(
            base_url=fake.url, headers={"Authorization": f"Bearer {fake.api_key}"}) as api:
        create(api, **{"metadata[reference]": "late"})
        found = api.get("/v1/payment_intents/search",
                        params={"query": "metadata['reference']:'late'"}).json()
        assert found["data"] == []
        assert len(api.get("/v1/payment_intents").json()["data"]) == 1


# -- refunds ----------------------------------------------------------------------------------


def test_refunds_partial_then_full_then_refused(api: httpx.Client,
                                                fake_stripe: FakeStripe) -> None:
    pi = create(api, payment_method="pm_card_visa", confirm="true",
                **{"metadata[reference]": "r9"}).json()
    part = api.post("/v1/refunds", data={"payment_intent": pi["id"], "amount": "500",
                                         "reason": "requested_by_customer"}).json()
    assert (part["object"], part["amount"], part["status"]) == ("refund", 500, "succeeded")
    assert part["charge"] == pi["latest_charge"]
    rest = api.post("/v1/refunds", data={"payment_intent": pi["id"]}).json()
    assert rest["amount"] == 1500
    again = api.post("/v1/refunds", data={"payment_intent": pi["id"]})
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "charge_already_refunded"
    assert api.get(f"/v1/refunds/{part['id']}").json()["amount"] == 500
    listed = api.get("/v1/refunds", params={"payment_intent": pi["id"]}).json()
    assert [r["id"] for r in listed["data"]] == [rest["id"], part["id"]]
    charge = fake_stripe.ledger.charges[0]
    assert (charge.amount_refunded, charge.net) == (2000, 0)
    assert [r.reference for r in fake_stripe.ledger.refunds] == ["r9", "r9"]
    assert fake_stripe.ledger.total("usd") == 0


def test_refund_errors(api: httpx.Client) -> None:
    pending = create(api).json()
    assert api.post("/v1/refunds", data={"payment_intent": pending["id"]}).status_code == 400
    assert api.post("/v1/refunds", data={}).json()["error"]["code"] == "parameter_missing"
    missing = api.post("/v1/refunds", data={"payment_intent": "pi_nope"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "resource_missing")
    assert api.get("/v1/refunds/re_nope").status_code == 404
    pi = create(api, payment_method="pm_card_visa", confirm="true").json()
    too_much = api.post("/v1/refunds", data={"payment_intent": pi["id"], "amount": "2001"})
    assert too_much.json()["error"]["param"] == "amount"


# -- errors and parameter checks --------------------------------------------------------------


@pytest.mark.parametrize(("data", "param", "code"), [
    ({"currency": "usd"}, "amount", "parameter_missing"),
    ({"amount": "2000"}, "currency", "parameter_missing"),
    ({"amount": "abc", "currency": "usd"}, "amount", "parameter_invalid_integer"),
    ({"amount": "10", "currency": "usd"}, "amount", "amount_too_small"),
    ({"amount": "1000000000", "currency": "usd"}, "amount", "amount_too_large"),
    ({"amount": "2000", "currency": "usd", "confirm": "yes"}, "confirm",
     "parameter_invalid_boolean"),
    ({"amount": "2000", "currency": "usd", "colour": "red"}, "colour", "parameter_unknown"),
    ({"amount": "2000", "currency": "usd", "payment_method": "pm_nope"}, "payment_method",
     "resource_missing"),
    ({"amount": "1005", "currency": "kwd"}, "amount", "invalid_charge_amount"),
])
def test_invalid_parameters(api: httpx.Client, data: dict[str, str], param: str,
                            code: str) -> None:
    response = api.post("/v1/payment_intents", data=data)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param,
                                                              code)
    assert error["doc_url"].endswith(code)
    assert response.headers["Request-Id"].startswith("req_")


def test_malformed_form_names_are_refused(api: httpx.Client) -> None:
    response = api.post("/v1/payment_intents", content="amount=1&amount=2&currency=usd",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "amount"


def test_unknown_objects_and_urls(api: httpx.Client) -> None:
    missing = api.get("/v1/payment_intents/pi_nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "type": "invalid_request_error", "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource_missing",
        "message": "No such payment_intent: 'pi_nope'", "param": "intent",
        "request_log_url": missing.json()["error"]["request_log_url"]}
    unknown = api.get("/v1/customers")
    assert unknown.status_code == 404
    assert "Unrecognized request URL" in unknown.json()["error"]["message"]


def test_every_answer_has_request_id_and_version(api: httpx.Client) -> None:
    ids = set()
    for response in (create(api), api.get("/v1/payment_intents/pi_x"),
                     api.get("/v1/payment_intents", headers={"Stripe-Version": "2099-01-01"})):
        ids.add(response.headers["Request-Id"])
        assert response.headers["Content-Type"].startswith("application/json")
    assert len(ids) == 3
    assert response.headers["Stripe-Version"] == "2099-01-01"


# -- authentication ---------------------------------------------------------------------------


def _basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


@pytest.mark.parametrize(("header", "status"), [
    ("Bearer sk_test_abc123", 200),
    ("Bearer rk_test_abc123", 200),
    (_basic("sk_test_abc123"), 200),
    (None, 401),
    ("Bearer sk_live_abc123456789", 401),
    ("Bearer pk_test_abc123", 401),
    ("Bearer sk_test_", 401),
    ("Token sk_test_abc123", 401),
    ("Basic !!notbase64", 401),
    (_basic("sk_live_abc123"), 401),
])
def test_authentication(fake_stripe: FakeStripe, header: str | None, status: int) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = httpx.get(f"{fake_stripe.url}/v1/payment_intents", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "WWW-Authenticate" in response.headers


def test_a_refused_key_is_never_echoed(fake_stripe: FakeStripe) -> None:
    secret = "sk_live_51HrealLookingSecretKey9876"
    response = httpx.get(f"{fake_stripe.url}/v1/payment_intents",
                         headers={"Authorization": f"Bearer {secret}"})
    assert secret not in response.text
    assert secret[:-4] not in response.text
    assert response.json()["error"]["message"].endswith("9876")


def test_an_explicit_key_list_is_enforced() -> None:
    with FakeStripe(api_keys=["sk_test_only_this"]) as fake:
        assert fake.api_key == "sk_test_only_this"
        ok = httpx.get(f"{fake.url}/v1/payment_intents",
                       headers={"Authorization": "Bearer sk_test_only_this"})
        other = httpx.get(f"{fake.url}/v1/payment_intents",
                          headers={"Authorization": "Bearer sk_test_another"})
        assert (ok.status_code, other.status_code) == (200, 401)
