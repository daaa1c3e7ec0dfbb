"""URL safety: everything stays under the base URL."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress import Secret
from egress.errors import ConfigurationError, UnsafeRequestError
from egress.http._url import BaseURL, encode_query, origin_of


@pytest.fixture
def base() -> BaseURL:
    return BaseURL("https://api.example.com/v1")


def test_paths_join_under_the_base_path(base: BaseURL) -> None:
    assert base.url("/payment_intents") == "https://api.example.com/v1/payment_intents"
    assert base.url("payment_intents/") == "https://api.example.com/v1/payment_intents/"
    assert base.url("/a/./b/../c") == "https://api.example.com/v1/a/c"
    assert BaseURL("http://h:8080").url("/x") == "http://h:8080/x"
    assert BaseURL("https://H.example:443/").origin == "https://h.example"


@pytest.mark.parametrize("path", [
    "https://evil.example/x", "http://api.example.com/v1/x", "//evil.example/x", "https:evil",
    "mailto:x", "../admin", "/v1/../../admin", "a/%2e%2e/%2E%2E/admin", "\\\\evil\\x",
    "/x?y=1", "/x#f", "/x y", "/x\r\nHost: evil", "/x\x00",
])
def test_escapes_are_refused(base: BaseURL, path: str) -> None:
    with pytest.raises(UnsafeRequestError):
        base.url(path)


@pytest.mark.parametrize(("value", "encoded"), [
    ("pi_123", "pi_123"), ("a/b", "a%2Fb"), ("../admin", "%2E%2E%2Fadmin"), ("?x=1", "%3Fx%3D1"),
    ("%2e%2e", "%252e%252e"), ("@evil", "%40evil"), ("\\evil", "%5Cevil"), ("a b", "a%20b"),
    ("é", "%C3%A9"), (42, "42"), ("x.y", "x%2Ey"),
])
def test_path_params_are_one_segment(base: BaseURL, value: object, encoded: str) -> None:
    assert base.url("/items/{id}", {"id": value}) == f"https://api.example.com/v1/items/{encoded}"


@pytest.mark.parametrize("value", ["", ".", "..", True, None, 1.5, Secret("sk_x")])
def test_bad_path_params_are_refused(base: BaseURL, value: object) -> None:
    with pytest.raises(UnsafeRequestError):
        base.url("/items/{id}", {"id": value})


def test_missing_and_unused_path_params(base: BaseURL) -> None:
    with pytest.raises(UnsafeRequestError):
        base.url("/items/{id}", {})
    with pytest.raises(UnsafeRequestError):
        base.url("/items/{id}", {"id": "1", "other": "2"})
    with pytest.raises(UnsafeRequestError):
        base.url("/items/{id", {"id": "1"})


@given(st.text(min_size=1, max_size=30).filter(lambda s: s not in (".", "..")))
def test_any_path_param_stays_one_segment(value: str) -> None:
    base = BaseURL("https://api.example.com/v1")
    url = base.url("/items/{id}/x", {"id": value})
    assert url.startswith("https://api.example.com/v1/items/")
    assert url.endswith("/x")
    assert url.count("/") == 6
    assert "?" not in url and "#" not in url


@pytest.mark.parametrize("url", ["ftp://x", "https://", "https://u:p@h/", "https://h/?q=1",
                                 "https://h/#f", "https://h/a/../b", "h/x", 42])
def test_bad_base_urls(url: object) -> None:
    with pytest.raises(ConfigurationError):
        BaseURL(url)  # type: ignore[arg-type]


def test_query_encoding() -> None:
    assert encode_query({"a": "x y", "b": [1, 2], "c": None, "d": True}) == \
        "a=x%20y&b=1&b=2&d=true"
    assert encode_query([("expand[]", "x")]) == "expand%5B%5D=x"
    # A secret the API wants in the query is revealed only on the way out (issue 9 §6).
    assert encode_query({"k": Secret("sk_live_x")}) == "k=sk_live_x"  # type: ignore[dict-item]
    url = BaseURL("https://api.example.com").url("/x", params={"k": Secret("sk_live_x")})
    assert url == "https://api.example.com/x?k=sk_live_x"
    assert "sk_live_x" not in repr(url)


def test_origin_of() -> None:
    assert origin_of("HTTPS://Example.com/x") == ("https", "example.com", 443)
    assert origin_of("http://example.com:81") == ("http", "example.com", 81)


_SEGMENTS = st.sampled_from(["a", "b%2F", ".", "..", "{id}", "{x}", "x{id}y", "{id}{x}", "{", "}",
                             "{id", "é", "~u", ""])
_VALUES = st.one_of(st.sampled_from(["pi_1", "a/b", ".", "..", "", "x.y", "a-b~c", "_", "%2e"]),
                    st.text(max_size=6), st.integers(-5, 5), st.booleans(), st.none(),
                    st.just(Secret("sk_x")))


def _outcome(build: Any) -> str:
    try:
        return str(build())
    except UnsafeRequestError as exc:
        return f"error: {exc}"


@given(st.lists(_SEGMENTS, max_size=6), st.booleans(),
       st.dictionaries(st.sampled_from(["id", "x", "other"]), _VALUES, max_size=3))
def test_cached_path_templates_build_what_the_walk_builds(
        segments: list[str], trailing: bool, params: dict[str, object]) -> None:
    # The first call of a path with path_params walks it once into a template; every call then
    # fills it: the same URL or the same error as the walk itself gives.
    path = "/".join(segments) + ("/" if trailing else "")
    base = BaseURL("https://api.example.com/v1/")
    walked = _outcome(lambda: base._build(path, params))
    for _ in range(2):
        assert _outcome(lambda: base.url(path, params)) == walked


def test_a_literal_holding_the_marker_is_walked_each_time(base: BaseURL) -> None:
    path = f"/{base._marker}0000/{{id}}"
    assert base.url(path, {"id": "7"}) == f"https://api.example.com/v1/{base._marker}0000/7"
    assert base._templates[path] is None
