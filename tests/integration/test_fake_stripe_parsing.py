"""FakeStripe's pure parsers: Stripe form encoding and the search query language."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress.adapters.stripe.form import encode_form
from egress.testing.fake_stripe._forms import FormError, fingerprint, parse_pairs
from egress.testing.fake_stripe._search import QueryError, parse_query


def test_examples() -> None:
    pairs = parse_qsl("amount=2000&metadata[order]=42&payment_method_types[0]=card"
                      "&payment_method_types[1]=link&expand[]=a&expand[]=b&a[b][0][c]=x&empty=",
                      keep_blank_values=True)
    assert parse_pairs(pairs) == {
        "amount": "2000", "metadata": {"order": "42"},
        "payment_method_types": ["card", "link"], "expand": ["a", "b"],
        "a": {"b": [{"c": "x"}]}, "empty": ""}


@pytest.mark.parametrize("query", [
    "a=1&a=2", "a=1&a[b]=2", "a[b]=1&a=2", "a[0]=x&a[2]=y", "a[]=1&a[x]=2", "[x]=1",
    "a[b=1", "a[][b]=1", "a[b][c][d][e][f][g][h][i]=1",
])
def test_malformed_names_are_refused(query: str) -> None:
    with pytest.raises(FormError):
        parse_pairs(parse_qsl(query, keep_blank_values=True))


_keys = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_values = st.text(min_size=0, max_size=10)
_trees: st.SearchStrategy[Any] = st.recursive(
    _values,
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=3),
                            st.dictionaries(_keys, inner, min_size=1, max_size=3)),
    max_leaves=10)


@given(st.dictionaries(_keys, _trees, max_size=5))
def test_parse_inverts_stripe_encoding_through_the_wire(params: dict[str, Any]) -> None:
    # The adapter's encoder, the fake's decoder: one codec, both directions over the wire.
    wire = encode_form(params).decode("ascii")
    assert parse_pairs(parse_qsl(wire, keep_blank_values=True)) == params


@given(st.dictionaries(_keys, _trees, max_size=5))
def test_fingerprint_ignores_field_order(params: dict[str, Any]) -> None:
    reordered = dict(reversed(list(params.items())))
    assert fingerprint("POST", "/v1/x", params) == fingerprint("POST", "/v1/x", reordered)
    assert fingerprint("POST", "/v1/x", params) != fingerprint("POST", "/v1/y", params)


INTENT = {"status": "succeeded", "currency": "usd", "amount": 2000, "created": 100,
          "customer": None, "description": "Blue Shirt",
          "metadata": {"reference": "o'1", "tier": "gold"}}


@pytest.mark.parametrize(("query", "expected"), [
    ("metadata['reference']:'o\\'1'", True),
    ('metadata["reference"]:"o\'1"', True),
    ("metadata['reference']:'o1'", False),
    ("metadata['missing']:null", True),
    ("-metadata['tier']:'gold'", False),
    ("status:'succeeded' AND currency:'usd'", True),
    ("status:'canceled' OR amount>1999", True),
    ("status:'canceled' OR amount>2000", False),
    ("amount>=2000 AND amount<=2000 AND created<101", True),
    ("description~'shirt'", True),
    ("customer:null", True),
])
def test_search_queries(query: str, expected: bool) -> None:
    assert parse_query(query)(INTENT) is expected


@pytest.mark.parametrize("query", [
    "", "colour:'red'", "status:'a' AND", "status:'a' status:'b'",
    "status:'a' AND currency:'b' OR amount:1", "amount>'lots'", "status>'a'", "AND status:'a'",
    "status:'unterminated",
])
def test_bad_queries(query: str) -> None:
    with pytest.raises(QueryError):
        parse_query(query)
