"""Fuzz the Stripe request side: what a caller types (reference, metadata, description, amount)
becomes form pairs and a search query. Either a typed ``InvalidPaymentRequest`` refuses it, or
the bytes on the wire decode back to exactly what was asked (no key injected through brackets,
``&`` or ``=``; no search clause broken out of by a quote or a backslash)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from _fuzz import EXAMPLES, attempt
from hypothesis import example, given, settings
from hypothesis import strategies as st

from egress.adapters.stripe._requests import (
    DEFAULT_REFERENCE_KEY,
    GENERATION_KEY,
    create_intent,
    search_intents,
)
from egress.adapters.stripe.form import decode_form
from egress.errors import InvalidPaymentRequest
from egress.payments import Money, PaymentRequest
from egress.testing.fake_stripe._forms import parse_pairs
from egress.testing.fake_stripe._search import parse_query

FUZZ = settings(max_examples=EXAMPLES)
# What can break a form or a query: brackets, separators, quotes, escapes, percent signs,
# non-ASCII, and (to be refused) control characters.
hostile = st.text(st.one_of(st.sampled_from(list("[]&=%+'\"\\ #?;\x00\n\t")),
                            st.characters(max_codepoint=0x2FFF)), max_size=30)


@FUZZ
@given(reference=hostile, description=st.one_of(st.none(), hostile),
       metadata=st.dictionaries(hostile, hostile, max_size=4),
       minor=st.integers(-5, 10**20), generation=st.one_of(st.none(), st.integers(0, 10**6)))
@example(reference="o[1]", description="a&b=c", metadata={"a]": "x", "k": "v[0]=1"},
         minor=100, generation=2)
@example(reference="x", description=None, metadata={DEFAULT_REFERENCE_KEY: "y"}, minor=1,
         generation=None)
def test_payment_request_form_round_trips(reference: str, description: str | None,
                                          metadata: dict[str, str], minor: int,
                                          generation: int | None) -> None:
    built: dict[str, Any] = {}

    def build() -> None:
        request = PaymentRequest(amount=Money.from_minor(minor, "usd"), reference=reference,
                                 payment_method="pm_card_visa", description=description,
                                 metadata=metadata)
        built["wire"] = create_intent(request, generation=generation)

    if attempt("Stripe create form (request side)", build, InvalidPaymentRequest) is not None:
        return
    body = built["wire"].body.decode("ascii")  # the bytes sent
    pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))
    decoded = decode_form(pairs)
    as_fake_reads = parse_pairs(pairs)  # FakeStripe's stricter decoder agrees
    expected = {**metadata, DEFAULT_REFERENCE_KEY: reference}
    if generation is not None:
        expected[GENERATION_KEY] = str(generation)
    assert decoded["metadata"] == expected
    assert as_fake_reads["metadata"] == expected
    assert decoded.get("description") == description
    assert decoded["amount"] == str(minor)


@FUZZ
@given(reference=hostile)
@example(reference="a' OR metadata['reference']:'b")
@example(reference="\\")
@example(reference="x\\'")
def test_search_query_quotes_any_reference(reference: str) -> None:
    def build() -> Any:
        query = dict(search_intents(reference).params)["query"]
        return parse_query(query)

    def ok() -> None:
        match = build()
        assert match({"metadata": {DEFAULT_REFERENCE_KEY: reference}})
        assert not match({"metadata": {DEFAULT_REFERENCE_KEY: reference + "x"}})
        assert not match({"metadata": {}})

    # search_intents takes a reference that create accepted; an unprintable one has no
    # payment to find, so only the printable ones must round-trip.
    if reference.isprintable() and reference:
        attempt("Stripe search query (quoting)", ok)
    else:
        attempt("Stripe search query (quoting)", build, Exception)
