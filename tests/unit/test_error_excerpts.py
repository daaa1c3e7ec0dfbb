"""Issue 10 §6: what an error answer may put on an exception is allow-listed, never echoed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from egress import Secret
from egress.adapters.stripe._errors import parse_stripe_error, to_domain_error
from egress.errors import StatusError
from egress.http._body import encode_body
from egress.http._error_facts import error_excerpt, scrub_headers, secrets_in
from egress.http._headers import Headers
from egress.http._response import Response

EMAIL, PHONE, CARD, KEY = "jane.doe@example.org", "+15551234567", "4000056655665556", "PLANTkey99"


def test_json_errors_keep_known_identifier_fields_only() -> None:
    body = json.dumps({"error": {"type": "invalid_request_error", "code": "email_invalid",
                                 "message": f"Invalid email address: {EMAIL}",
                                 "param": "receipt_email", "detail": PHONE}}).encode()
    text = error_excerpt(body, "application/json")
    assert text == "type=invalid_request_error code=email_invalid param=receipt_email"


@pytest.mark.parametrize("doc", [
    {"error": "invalid_client", "error_description": f"client {KEY} unknown"},  # OAuth2
    {"errors": [{"code": "E1", "title": EMAIL}]},
    {"status": 400, "type": EMAIL, "code": f"x {PHONE}"},
    {"message": f"{EMAIL} {PHONE} {CARD}"},
    [EMAIL],
])
def test_free_text_and_odd_shapes_never_reach_the_excerpt(doc: Any) -> None:
    text = error_excerpt(json.dumps(doc).encode(), "application/json", [KEY])
    for planted in (EMAIL, PHONE, CARD, KEY):
        assert planted not in text


@pytest.mark.parametrize("body", [f"<html>{EMAIL}</html>".encode(), f"email={EMAIL}".encode(),
                                  b"\xff\x00" * 100, b"{not json " + EMAIL.encode()])
def test_other_bodies_show_size_and_media_type_only(body: bytes) -> None:
    text = error_excerpt(body, "text/html; charset=utf-8")
    assert text == f"<{len(body)} bytes, text/html>"


def test_an_identifier_that_is_a_known_secret_is_dropped() -> None:
    body = json.dumps({"error": {"type": "x", "code": KEY}}).encode()
    assert error_excerpt(body, None, [KEY]) == "type=x"


def test_echoed_header_values_holding_a_secret_are_scrubbed() -> None:
    headers = [("X-Echo", f"Bearer {KEY}"), ("X-Echo-Query", "api_key=PLANT%2Bkey"),
               ("Retry-After", "3")]
    scrubbed = dict(scrub_headers(headers, [KEY, "PLANT+key"]))
    assert scrubbed == {"X-Echo": "[redacted]", "X-Echo-Query": "[redacted]", "Retry-After": "3"}


def test_secrets_are_found_in_params_form_and_headers_shaped_arguments() -> None:
    found = secrets_in({"a": [Secret("s1"), "x"], "b": Secret("s2")}, [("k", Secret("s3"))],
                       None)
    assert sorted(found) == ["s1", "s2", "s3"]


def test_secrets_in_a_json_body_are_reported_while_encoding() -> None:
    found: list[str] = []
    body, _ = encode_body({"card": {"number": Secret("4242"), "x": [Secret("cvc")]}},
                          secrets=found)
    assert body == b'{"card":{"number":"4242","x":["cvc"]}}' and sorted(found) == ["4242", "cvc"]


def stripe_status(error: dict[str, Any]) -> StatusError:
    headers = [("Request-Id", "req_1")]
    response = Response(400, Headers(headers), json.dumps({"error": error}).encode())
    return StatusError(400, request_id="req_1", headers=tuple(headers), response=response)


@pytest.mark.parametrize("param", [f"card[number]={CARD}", f"card[{CARD}]", f"{EMAIL}",
                                   "metadata[a b]", "x" * 200])
def test_stripe_params_are_parameter_paths_or_dropped(param: str) -> None:
    error = parse_stripe_error(stripe_status({"type": "invalid_request_error", "param": param}))
    assert error.param is None


@pytest.mark.parametrize("param", ["payment_method", "metadata[order_id]", "items[0][price]"])
def test_stripe_parameter_paths_are_kept(param: str) -> None:
    error = parse_stripe_error(stripe_status({"type": "invalid_request_error", "param": param}))
    assert error.param == param


def test_stripe_messages_that_echo_request_values_never_reach_the_caller() -> None:
    echo = stripe_status({"type": "invalid_request_error", "code": "email_invalid",
                          "message": f"Invalid email address: {EMAIL} ({PHONE})",
                          "param": "receipt_email"})
    error = to_domain_error(echo, operation="create", changes_state=True, reference="r",
                            idempotency_key="k")
    for text in (str(error), repr(error)):
        assert EMAIL not in text and PHONE not in text
    assert "email_invalid" in str(error) and "receipt_email" in str(error)
    declined = stripe_status({"type": "card_error", "code": "card_declined",
                              "message": "Your card was declined."})
    assert "Your card was declined." in str(to_domain_error(
        declined, operation="create", changes_state=True, reference="r", idempotency_key="k"))
