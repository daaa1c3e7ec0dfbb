"""Server hints: Retry-After (both forms), RateLimit, X-RateLimit-Reset."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress.http import Headers, parse_rate_limit, parse_retry_after, server_hint
from egress.http._hints import MAX_HINT

WALL = 1_700_000_000.0


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0), (" 3 ", 3.0), ("0", 0.0), ("86400", 86400.0), ("99999999999", MAX_HINT),
    ("9" * 5000, MAX_HINT), ("-1", None), ("1.0", None), ("+5", None), ("²", None), ("", None),
    ("soon", None), (None, None), ("Wed, 21 Oct 2015 07:28:00", None),
])
def test_retry_after_seconds_and_garbage(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, WALL) == expected


def test_retry_after_http_dates() -> None:
    assert parse_retry_after(formatdate(WALL + 30, usegmt=True), WALL) == pytest.approx(30.0)
    assert parse_retry_after(formatdate(WALL - 3600, usegmt=True), WALL) == 0.0
    assert parse_retry_after(formatdate(WALL + 10 * 86400, usegmt=True), WALL) == MAX_HINT
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", WALL) == 0.0  # RFC 850, past
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", WALL) == 0.0  # asctime: GMT, past
    assert parse_retry_after("Tue, 99 Foo 2023 99:99:99 GMT", WALL) is None


@given(st.text(max_size=80))
def test_retry_after_never_raises_and_is_bounded(value: str) -> None:
    result = parse_retry_after(value, WALL)
    assert result is None or (math.isfinite(result) and 0.0 <= result <= MAX_HINT)


@given(st.integers(min_value=0, max_value=10**12))
def test_retry_after_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds), WALL) == min(float(seconds), MAX_HINT)


@given(st.integers(min_value=-10**6, max_value=10**6))
def test_retry_after_dates_round_trip(offset: int) -> None:
    result = parse_retry_after(formatdate(WALL + offset, usegmt=True), WALL)
    assert result == pytest.approx(min(max(offset, 0), MAX_HINT), abs=1.0)


@given(st.dictionaries(st.sampled_from(["ratelimit", "ratelimit-policy", "ratelimit-remaining",
                                        "ratelimit-reset", "x-ratelimit-reset",
                                        "x-ratelimit-remaining", "retry-after"]),
                       st.text(max_size=60)))
def test_rate_limit_parsers_never_raise(fields: dict[str, str]) -> None:
    headers = Headers(fields.items())
    info = parse_rate_limit(headers, WALL)
    if info is not None:
        for value in (info.limit, info.remaining, info.reset, info.window):
            assert value is None or (math.isfinite(value) and value >= 0)
    hint = server_hint(429, headers, WALL)
    assert hint is None or 0 <= hint <= MAX_HINT


@given(st.integers(0, 1000), st.integers(0, 86_400), st.integers(1, 3600))
def test_structured_ratelimit_round_trip(remaining: int, reset: int, window: int) -> None:
    headers = Headers([("RateLimit", f'"default";r={remaining};t={reset}'),
                       ("RateLimit-Policy", f'"default";q=100;w={window}')])
    info = parse_rate_limit(headers, WALL)
    assert info is not None
    assert (info.remaining, info.reset, info.limit, info.window) == (remaining, reset, 100,
                                                                     window)


def test_rate_limit_families() -> None:
    old = Headers([("RateLimit", "limit=100, remaining=0, reset=7")])
    assert server_hint(429, old, WALL) == 7.0
    split = Headers([("RateLimit-Remaining", "0"), ("RateLimit-Reset", "12")])
    assert server_hint(503, split, WALL) == 12.0
    github = Headers([("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", str(int(WALL) + 40))])
    assert server_hint(429, github, WALL) == pytest.approx(40.0)
    delta = Headers([("X-RateLimit-Reset", "5")])
    assert server_hint(429, delta, WALL) == 5.0
    assert server_hint(500, delta, WALL) is None  # only 429/503 read quotas
    both = Headers([("Retry-After", "2"), ("RateLimit", "remaining=0, reset=50")])
    assert server_hint(429, both, WALL) == 2.0  # Retry-After wins
    left = Headers([("RateLimit", "remaining=5, reset=50")])
    assert server_hint(503, left, WALL) is None  # quota not exhausted: not the reason
