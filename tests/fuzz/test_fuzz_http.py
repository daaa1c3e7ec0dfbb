"""Fuzz every HTTP-side parser that reads outside bytes: only documented egress errors escape."""

from __future__ import annotations

import json
from typing import Any

from _fuzz import EXAMPLES, attempt
from hypothesis import example, given, settings
from hypothesis import strategies as st

from egress import Secret
from egress.errors import ResponseError, StatusError, UnsafeRequestError
from egress.http import OAuth2ClientCredentials
from egress.http._body import BodyReader, parse_json
from egress.http._error_facts import error_excerpt
from egress.http._headers import Headers
from egress.http._hints import parse_rate_limit, parse_retry_after, server_hint
from egress.http._redirect import next_hop
from egress.http._response import Response
from egress.http._url import encode_pairs, encode_query
from egress.testing import FakeClock

FUZZ = settings(max_examples=EXAMPLES)
WALL = 1_700_000_000.0
# Header values as a server can send them: any byte, read as Latin-1.
latin1 = st.text(st.characters(max_codepoint=255), max_size=80)
numberish = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**400).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e400", "-0", "+5", "٣", "²", "0x10", "1_0", " 7 ", "NaN", "inf"]),
)
header_value = st.one_of(latin1, numberish)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


@FUZZ
@given(value=header_value, status=st.sampled_from([200, 429, 503]),
       extra=st.lists(st.tuples(st.sampled_from(
           ["ratelimit", "ratelimit-policy", "ratelimit-reset", "ratelimit-remaining",
            "x-ratelimit-reset", "x-ratelimit-remaining", "x-ratelimit-limit", "retry-after"]),
           header_value), max_size=6))
@example(value="Wed, 21 Oct 99999 07:28:00 GMT", status=429, extra=[])
@example(value="9" * 5000, status=503, extra=[("ratelimit", "limit=1, remaining=0, reset=1e400")])
def test_retry_after_and_ratelimit_headers(value: str, status: int,
                                           extra: list[tuple[str, str]]) -> None:
    attempt("Retry-After", lambda: parse_retry_after(value, WALL))
    headers = Headers([("retry-after", value), *extra])
    attempt("RateLimit headers", lambda: parse_rate_limit(Headers(extra), WALL))
    attempt("server hint (Retry-After + RateLimit)", lambda: server_hint(status, headers, WALL))


@FUZZ
@given(location=st.one_of(
    latin1,
    st.builds(lambda scheme, host, port, rest: f"{scheme}{host}{port}{rest}",
              st.sampled_from(["http://", "https://", "//", "ftp://", "", "javascript:"]),
              st.sampled_from(["127.0.0.1", "[::1]", "[::1", "::1]", "[v1.x]", "h\u00e9", "",
                               "a@b", "%zz"]),
              st.sampled_from(["", ":0", ":99999", ":-1", ":x", ":80", ":" + "9" * 50]),
              st.text(max_size=20))),
    status=st.sampled_from([301, 302, 303, 307, 308]),
    method=st.sampled_from(["GET", "POST", "PUT"]))
@example(location="http://127.0.0.1:99999/", status=302, method="GET")
@example(location="http://[::1/", status=302, method="GET")
def test_redirect_targets(location: str, status: int, method: str) -> None:
    attempt("redirect Location", lambda: next_hop(
        method, "https://127.0.0.1:8443/v1/x?q=1", headers={"Authorization": "Bearer t"},
        body=b"{}" if method != "GET" else None, status=status, location=location,
        base_origin=("https", "127.0.0.1", 8443), sensitive=frozenset({"authorization"}),
        key_header="idempotency-key"), ResponseError)


@FUZZ
@given(charset=st.one_of(latin1, st.sampled_from(
    ["idna", "undefined", "punycode", "utf\x008", "hex", "base64", "zlib", "rot13", "utf-7",
     "unicode_escape", "raw-unicode-escape", "utf-16", "UTF-32-BE", "x" * 300])),
       content=st.binary(max_size=300), quoted=st.booleans())
def test_charsets(charset: str, content: bytes, quoted: bool) -> None:
    shown = f'"{charset}"' if quoted else charset
    response = Response(200, Headers([("content-type", f"text/plain; charset={shown}")]), content)
    attempt("Response.text charset", lambda: response.text)


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 5000).map(lambda n: b"[" * n),
                      st.sampled_from([b"1e400", b"NaN", b'{"a":1,"a":2}', b"\xef\xbb\xbf{}",
                                       b"9" * 5000])))
def test_json_bodies(body: bytes) -> None:
    attempt("Response.json", lambda: Response(200, Headers(), body).json(), ResponseError)
    attempt("parse_json (http)", lambda: parse_json(body), ResponseError)


@FUZZ
@given(encoding=st.one_of(latin1, st.sampled_from(["gzip", "deflate, gzip", "br", "identity",
                                                   "gzip, gzip, gzip", "x-gzip"])),
       chunks=st.lists(st.binary(max_size=100), max_size=4),
       length=st.one_of(st.none(), st.integers(-5, 10**30)))
def test_body_reader(encoding: str, chunks: list[bytes], length: int | None) -> None:
    def read() -> bytes:
        reader = BodyReader(1024, encoding, length)
        for chunk in chunks:
            reader.feed(chunk)
        return reader.finish()

    attempt("BodyReader (content codings)", read, ResponseError)


@FUZZ
@given(status=st.integers(100, 599), body=st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries({}, optional={"access_token": json_values | st.text(max_size=40),
                                        "expires_in": json_values, "token_type": json_values}
                          ).map(lambda d: json.dumps(d).encode()),
    st.integers(0, 10**400).map(lambda n: b'{"access_token":"t","expires_in":%d}' % n)))
@example(status=200, body=b'{"access_token":"t","expires_in":1' + b"0" * 400 + b"}")
@example(status=200, body=b'{"access_token":"t","expires_in":1e400}')
def test_oauth2_token_answers(status: int, body: bytes) -> None:
    auth = OAuth2ClientCredentials("https://127.0.0.1/token", client_id="c",
                                   client_secret=Secret("s3cret"))
    attempt("OAuth2 token answer", lambda: auth._accept(status, body, FakeClock()),
            (StatusError, ResponseError))


scalars = st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none(),
                    st.just(Secret("sk_x")), st.binary(max_size=5), st.just(object()))


@FUZZ
@given(params=st.one_of(
    st.dictionaries(st.text(max_size=10), scalars | st.lists(scalars, max_size=3), max_size=5),
    st.lists(st.tuples(st.one_of(st.text(max_size=10), st.integers()), scalars), max_size=5)))
def test_form_and_query_encoding(params: Any) -> None:
    attempt("form/query encoding", lambda: encode_query(params), UnsafeRequestError)
    attempt("form/query encoding", lambda: encode_pairs(params), UnsafeRequestError)


@FUZZ
@given(body=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                      st.dictionaries(st.sampled_from(["type", "code", "error", "param",
                                                       "message", "status"]), json_values
                                      ).map(lambda d: json.dumps({"error": d}).encode())),
       ctype=st.one_of(st.none(), latin1))
def test_error_excerpts(body: bytes, ctype: str | None) -> None:
    attempt("error excerpt (allow-list)", lambda: error_excerpt(body, ctype, ["sk_x"]))


@FUZZ
@given(pairs=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=6))
def test_raw_response_headers(pairs: list[tuple[bytes, bytes]]) -> None:
    def read() -> object:
        headers = Headers.from_raw(pairs)
        response = Response(200, headers, b"x")
        return (headers.items_all(), headers.get("content-type"), response.request_id,
                response.text)

    attempt("raw response headers", read)
