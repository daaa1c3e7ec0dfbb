"""Response bodies (issue 10 §6): strict JSON numbers, the JSON Content-Type check, and memory
held while decoding (tracemalloc: within the body plus a small constant, never twice the cap)."""

from __future__ import annotations

import gzip
import tracemalloc

import pytest

from egress.errors import ResponseError
from egress.http import Response
from egress.http._body import BodyReader, parse_json
from egress.http._headers import Headers

MiB = 1024 * 1024


@pytest.mark.parametrize("text", [b"1e400", b"-1e400", b'{"amount": 1E999}', b"[0, 2e308]"])
def test_numbers_that_overflow_to_infinity_are_refused(text: bytes) -> None:
    with pytest.raises(ResponseError) as caught:
        parse_json(text)
    assert caught.value.reason == "malformed"


def test_ordinary_numbers_still_parse() -> None:
    assert parse_json(b'[1.5, -0.0, 1e308, 12, 2.5e-300]') == [1.5, -0.0, 1e308, 12, 2.5e-300]


def _response(content_type: str | None, body: bytes = b'{"a": 1}') -> Response:
    pairs = [] if content_type is None else [("Content-Type", content_type)]
    return Response(200, Headers(pairs), body)


@pytest.mark.parametrize("ctype", [None, "application/json", "application/json; charset=utf-8",
                                   "application/problem+json", "text/json",
                                   "Application/JSON", "application/vnd.api+json"])
def test_json_content_types_are_accepted(ctype: str | None) -> None:
    assert _response(ctype).json() == {"a": 1}


@pytest.mark.parametrize("ctype", ["text/html", "text/plain", "application/octet-stream",
                                   "application/jsonp", ""])
def test_other_content_types_are_refused(ctype: str) -> None:
    with pytest.raises(ResponseError, match="Content-Type"):
        _response(ctype).json()


CAP = 8 * MiB
BOMB = gzip.compress(b"\0" * (64 * MiB), 9)
# The body may grow by up to 1/8 (BytesIO's growth step, untouched pages); decoding adds one
# piece per layer and the raw chunk being fed.
ALLOWED = CAP + CAP // 8 + 1 * MiB


def _peak(data: bytes, encoding: str | None) -> tuple[int | str, int]:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        reader = BodyReader(CAP, encoding, None)
        try:
            for start in range(0, len(data), 65536):
                reader.feed(data[start:start + 65536])
            result: int | str = len(reader.finish())
        except ResponseError as exc:
            result = exc.reason
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("data", "encoding"), [
    (BOMB, "gzip"), (gzip.compress(BOMB, 9), "gzip, gzip"),
], ids=["gzip-bomb", "double-gzip-bomb"])
def test_a_bomb_is_cut_at_the_cap_within_the_cap_in_memory(data: bytes, encoding: str) -> None:
    result, peak = _peak(data, encoding)
    assert result == "oversized"
    assert peak < ALLOWED, f"peak {peak / MiB:.1f} MiB for a {CAP / MiB:.0f} MiB cap"


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_large_body_is_held_once(encoding: str | None) -> None:
    body = b"a" * (6 * MiB)
    data = gzip.compress(body, 9) if encoding else body
    result, peak = _peak(data, encoding)
    assert result == len(body)
    assert peak < len(body) + len(body) // 8 + 1 * MiB  # a join at the end held it twice
