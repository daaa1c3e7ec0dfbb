"""Coverage-guided fuzz targets: one per parser that meets outside bytes.

Each target takes the raw bytes libFuzzer (through atheris) mutates and feeds them to one
parser. The contract checked is the library's: the parser returns, or raises a documented egress
error (plus, for the Stripe parsers, the plain ``ValueError`` their callers turn into
``ResponseError``); anything else escaping is a finding and crashes the run with the input
saved. Targets are plain functions so the seed corpus can be replayed without atheris
(``scripts/fuzz --replay``) and by the tests.

Inputs carrying several fields split them on the first ``\\n`` (header / payload, charset /
body ...), so a mutation of either part stays cheap for the fuzzer to find.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from egress import Secret
from egress.adapters.stripe import verify_signature, verify_webhook
from egress.adapters.stripe._amounts import from_stripe_amount
from egress.adapters.stripe._errors import parse_stripe_error, stripe_retry_hook, to_domain_error
from egress.adapters.stripe._parse import parse_json as stripe_json
from egress.adapters.stripe._parse import parse_list, parse_payment_intent, parse_refund
from egress.adapters.stripe._requests import DEFAULT_REFERENCE_KEY, create_intent, search_intents
from egress.adapters.stripe.webhooks import sign_payload
from egress.errors import EgressError, StatusError
from egress.http import OAuth2ClientCredentials
from egress.http._body import BodyReader
from egress.http._body import parse_json as http_json
from egress.http._error_facts import error_excerpt
from egress.http._headers import Headers
from egress.http._hints import parse_rate_limit, parse_retry_after, server_hint
from egress.http._redirect import next_hop
from egress.http._response import Response
from egress.http._url import encode_query
from egress.payments import Money, PaymentRequest
from egress.testing import FakeClock
from egress.testing.fake_stripe._faults import parse_rules
from egress.testing.fake_stripe._forms import FormError, parse_pairs
from egress.testing.fake_stripe._search import QueryError, parse_query

WALL = 1_700_000_000.0
NOW = 1_700_000_000
WEBHOOK_SECRET = "whsec_fuzz"  # noqa: S105 - a made-up test secret

Target = Callable[[bytes], object]
TARGETS: dict[str, Target] = {}
#: Errors a target may raise besides egress's own: the documented contract of each parser.
EXTRA_ALLOWED: dict[str, tuple[type[BaseException], ...]] = {}


def target(name: str, *allowed: type[BaseException]) -> Callable[[Target], Target]:
    """Register a target under ``name``; ``allowed`` are its parser's documented non-egress
    errors."""
    def register(fn: Target) -> Target:
        TARGETS[name] = fn
        EXTRA_ALLOWED[name] = allowed
        return fn
    return register


def _text(data: bytes) -> str:
    # What a server can put in a header: any byte, read as Latin-1 (as http.client does).
    return data.decode("latin-1")


def _two(data: bytes) -> tuple[bytes, bytes]:
    head, _, rest = data.partition(b"\n")
    return head, rest


def _header_lines(data: bytes) -> Headers:
    pairs = []
    for line in data.split(b"\n")[:32]:
        name, _, value = line.partition(b":")
        pairs.append((name.strip(), value.strip()))
    return Headers.from_raw(pairs)


def _json_doc(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # the stdlib's own limits: not the code under test
        return None


# -- HTTP side --------------------------------------------------------------------------------


@target("retry_after")
def retry_after(data: bytes) -> object:
    return parse_retry_after(_text(data), WALL)


@target("ratelimit_headers")
def ratelimit_headers(data: bytes) -> object:
    headers = _header_lines(data)
    parse_rate_limit(headers, WALL)
    return server_hint(429, headers, WALL)


@target("redirect_location")
def redirect_location(data: bytes) -> object:
    return next_hop("POST", "https://127.0.0.1:8443/v1/x?q=1",
                    headers={"Authorization": "Bearer t"}, body=b"{}", status=307,
                    location=_text(data), base_origin=("https", "127.0.0.1", 8443),
                    sensitive=frozenset({"authorization"}), key_header="idempotency-key")


@target("charset")
def charset(data: bytes) -> object:
    ctype, body = _two(data)
    return Response(200, Headers.from_raw([(b"content-type", ctype)]), body).text


@target("json_body")
def json_body(data: bytes) -> object:
    Response(200, Headers(), data).json()
    return http_json(data)


@target("body_reader")
def body_reader(data: bytes) -> object:
    coding, body = _two(data)
    reader = BodyReader(4096, _text(coding), None)
    for start in range(0, len(body), 64):
        reader.feed(body[start:start + 64])
    return reader.finish()


@target("response_headers")
def response_headers(data: bytes) -> object:
    headers = _header_lines(data)
    response = Response(200, headers, b"x")
    return headers.items_all(), response.request_id, response.text


@target("error_excerpt")
def excerpt(data: bytes) -> object:
    ctype, body = _two(data)
    return error_excerpt(body, _text(ctype), ["sk_fuzz_secret"])


@target("oauth2_token")
def oauth2_token(data: bytes) -> object:
    auth = OAuth2ClientCredentials("https://127.0.0.1/token", client_id="c",
                                   client_secret=Secret("s3cret"))
    return auth._accept(200, data, FakeClock())


# -- Payments side ----------------------------------------------------------------------------


@target("money_text")
def money_text(data: bytes) -> object:
    currency, amount = _two(data)
    return Money(_text(amount), _text(currency))


@target("stripe_objects", ValueError)
def stripe_objects(data: bytes) -> object:
    doc = stripe_json(data)  # ValueError for non-JSON: the adapter's documented contract
    kind = doc.get("object")
    if kind == "refund":
        return parse_refund(doc, reference_key=DEFAULT_REFERENCE_KEY)
    if kind == "list":
        return parse_list(doc)
    if "amount" in doc and "currency" in doc:
        from_stripe_amount(doc["amount"], doc["currency"])
    return parse_payment_intent(doc, reference_key=DEFAULT_REFERENCE_KEY)


@target("stripe_error_body")
def stripe_error_body(data: bytes) -> object:
    retry, body = _two(data)
    headers = [("Request-Id", "req_1"), ("Stripe-Should-Retry", _text(retry))]
    exc = StatusError(402, request_id="req_1", headers=tuple(headers),
                      response=Response(402, Headers(headers), body))
    parse_stripe_error(exc)
    stripe_retry_hook(exc, None)
    return to_domain_error(exc, operation="create", changes_state=True, reference="r",
                           idempotency_key="k")


@target("stripe_signature")
def stripe_signature(data: bytes) -> object:
    header, payload = _two(data)
    return verify_signature(payload, _text(header), WEBHOOK_SECRET, now=NOW)


@target("webhook_payload")
def webhook_payload(data: bytes) -> object:
    # Correctly signed: the payload parser itself is what is under test.
    return verify_webhook(data, sign_payload(data, WEBHOOK_SECRET, NOW), WEBHOOK_SECRET,
                          now=NOW)


@target("stripe_request_form")
def stripe_request_form(data: bytes) -> object:
    """Caller input -> form pairs -> FakeStripe's decoder: the metadata comes back unchanged."""
    fields = data.decode("utf-8", "replace").split("\n")
    reference, description, rest = fields[0], fields[1:2], fields[2:]
    metadata = dict(zip(rest[0::2], rest[1::2], strict=False))
    request = PaymentRequest(amount=Money.from_minor(100, "usd"), reference=reference,
                             payment_method="pm_card_visa",
                             description=description[0] if description else None,
                             metadata=metadata)
    pairs = create_intent(request, generation=1).params
    decoded = parse_pairs(parse_qsl(encode_query(list(pairs)), keep_blank_values=True))
    sent = decoded["metadata"]
    assert isinstance(sent, dict)
    assert sent[DEFAULT_REFERENCE_KEY] == reference, "the reference changed on the wire"
    assert {k: sent[k] for k in metadata} == metadata, "metadata changed on the wire"
    return decoded


@target("stripe_search_query")
def stripe_search_query(data: bytes) -> object:
    """Any printable reference is quoted so that FakeStripe's search finds exactly it."""
    reference = data.decode("utf-8", "replace")
    if not reference or not reference.isprintable():
        return None
    match = parse_query(dict(search_intents(reference).params)["query"])
    assert match({"metadata": {DEFAULT_REFERENCE_KEY: reference}}), "search misses its own"
    assert not match({"metadata": {DEFAULT_REFERENCE_KEY: reference + "'"}}), "search too wide"
    return match


@target("fake_form_decoding", FormError)
def fake_form_decoding(data: bytes) -> object:
    return parse_pairs(parse_qsl(_text(data), keep_blank_values=True))


@target("fake_search_query", QueryError)
def fake_search_query(data: bytes) -> object:
    return parse_query(data.decode("utf-8", "replace"))({"metadata": {"reference": "r"},
                                                         "amount": 5, "status": "succeeded"})


@target("fake_fault_rules")
def fake_fault_rules(data: bytes) -> object:
    return parse_rules(data.decode("utf-8", "replace"))


if os.environ.get("EGRESS_FUZZ_SELFTEST"):
    @target("selftest")
    def selftest(data: bytes) -> object:
        """A planted bug, to prove a finding fails the run (tests/fuzz/test_atheris.py)."""
        if data.startswith(b"boom"):
            raise KeyError("planted")
        return data


def pick(data: bytes) -> tuple[str, bytes]:
    """The ``all`` target: the first byte chooses the parser, the rest is its input. One
    process fuzzes every parser (CI's short run pays atheris's start-up once)."""
    names = sorted(TARGETS)
    return names[data[0] % len(names)] if data else names[0], data[1:]


def selector(name: str) -> bytes:
    return bytes([sorted(TARGETS).index(name)])


def run_one(name: str, data: bytes) -> BaseException | None:
    """Feed ``data`` to target ``name``: the allowed error it raised, or ``None``. Anything else
    propagates: the finding."""
    try:
        TARGETS[name](data)
    except EgressError as exc:
        return exc
    except EXTRA_ALLOWED[name] as exc:
        return exc
    return None
