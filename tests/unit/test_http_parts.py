"""The pure parts of the HTTP seam: bodies, headers, safety classes, redirects, timeouts."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egress.errors import (
    AttemptTimeoutError,
    ConfigurationError,
    DeadlineExceededError,
    ResponseError,
    StatusError,
    TransportError,
    UnsafeRequestError,
)
from egress.http import Headers, RequestInfo, Response, Safety, Timeouts, retry_on, safety_of
from egress.http import _headers as headers_module
from egress.http._body import BodyReader, encode_body, parse_json
from egress.http._headers import check_header
from egress.http._redact import excerpt, redact
from egress.http._redirect import next_hop

BASE = ("https", "api.example.com", 443)
SENSITIVE = frozenset({"authorization", "cookie", "proxy-authorization", "idempotency-key",
                       "x-api-key"})


# -- bodies -----------------------------------------------------------------------------------


def test_encode_body_is_deterministic() -> None:
    assert encode_body(json={"b": 1, "a": "é"}) == ('{"b":1,"a":"é"}'.encode(),
                                                    "application/json")
    assert encode_body(form={"a": "x y", "m[k]": 1}) == (b"a=x+y&m%5Bk%5D=1",
                                                         "application/x-www-form-urlencoded")
    assert encode_body(content=b"raw") == (b"raw", None)
    with pytest.raises(UnsafeRequestError):
        encode_body(json={"x": float("nan")})
    with pytest.raises(UnsafeRequestError):
        encode_body(json={}, form={})


def _read(body: bytes, cap: int, encoding: str | None, chunk: int = 1000) -> bytes:
    reader = BodyReader(cap, encoding, None)
    for index in range(0, len(body), chunk):
        reader.feed(body[index:index + chunk])
    return reader.finish()


def test_body_reader_decodes_gzip_and_deflate() -> None:
    data = b"hello " * 1000
    assert _read(gzip.compress(data), 10_000, "gzip") == data
    assert _read(zlib.compress(data), 10_000, "deflate") == data
    assert _read(gzip.compress(zlib.compress(data)), 10_000, "deflate, gzip") == data
    assert _read(data, 10_000, "identity") == data


def test_body_reader_caps_every_length() -> None:
    with pytest.raises(ResponseError, match="declared"):
        BodyReader(100, None, 101)
    with pytest.raises(ResponseError) as caught:
        _read(b"x" * 101, 100, None)
    assert caught.value.reason == "oversized"
    bomb = gzip.compress(b"\0" * 10_000_000)
    assert len(bomb) < 20_000
    with pytest.raises(ResponseError) as caught:
        _read(bomb, 1_000_000, "gzip", chunk=len(bomb))
    assert caught.value.reason == "oversized"


def test_body_reader_refuses_chains_and_unknown_codings() -> None:
    for header in ("gzip, gzip, gzip", "sdch", "compress"):  # br: test_http_codecs.py
        with pytest.raises(ResponseError) as caught:
            BodyReader(100, header, None)
        assert caught.value.reason == "encoding"
    with pytest.raises(ResponseError) as caught:
        _read(gzip.compress(b"x" * 100)[:-10], 1000, "gzip")
    assert caught.value.reason == "truncated"
    with pytest.raises(ResponseError):
        _read(b"not gzip at all", 1000, "gzip")


def test_body_reader_empty_coded_body_is_empty() -> None:
    # Servers label empty answers "Content-Encoding: gzip" too; no byte is not a cut stream
    # (a short read is the HTTP library's Content-Length or chunking error), and calling it
    # "truncated" would retry a request that succeeded.
    assert _read(b"", 1000, "gzip") == b""
    assert _read(b"", 1000, "deflate, gzip") == b""


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": 1, "a": 2}', "[" * 100_000,
                                  "1" * 5000, "{", b"\xff\xfe"])
def test_strict_json(text: str | bytes) -> None:
    raw = text if isinstance(text, bytes) else text.encode()
    with pytest.raises(ResponseError):
        parse_json(raw)


def test_response_helpers() -> None:
    resp = Response(200, Headers([("Content-Type", "text/plain; charset=latin-1"),
                                  ("X-Request-Id", "r1")]), "é".encode("latin-1"))
    assert resp.text == "é"
    assert resp.request_id == "r1"
    assert resp.is_success
    with pytest.raises(ResponseError):
        Response(200, Headers(), b"[1]").json_object()


# -- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a\rb", "a\nb", "a\x00b", "ok\r\nSet-Cookie: x=1"])
def test_header_values_with_control_characters_are_refused(value: str) -> None:
    with pytest.raises(UnsafeRequestError) as caught:
        check_header("X-Thing", value)
    assert value not in str(caught.value)
    assert "X-Thing" in str(caught.value)


def test_header_names_must_be_tokens() -> None:
    for name in ("", "a b", "a:b", "é"):
        with pytest.raises(UnsafeRequestError):
            check_header(name, "v")


def _verdict(name: str, value: str) -> str | None:
    try:
        check_header(name, value)
    except UnsafeRequestError as exc:
        return str(exc)
    return None


@given(st.sampled_from(["X-Thing", "Idempotency-Key", "a b", "é", ""]),
       st.one_of(st.text(max_size=8), st.text(st.characters(max_codepoint=0x7f), max_size=8),
                 st.sampled_from([" a", "a ", "a\tb", "\ta", "a\t", "", " ", "\x7f"])))
def test_header_checks_decide_the_same_with_the_name_known_or_not(name: str, value: str) -> None:
    # check_header skips its patterns for a name it already accepted and a plain value: the
    # verdict must be what the patterns give (the name forgotten, then known).
    headers_module._VALID_NAMES.clear()
    first = _verdict(name, value)
    _verdict(name, "known")
    assert _verdict(name, value) == first


def test_headers_mapping() -> None:
    headers = Headers.from_raw([(b"Set-Cookie", b"a=1"), (b"set-cookie", b"b=2"),
                                (b"Content-Type", b"x")])
    assert headers["SET-COOKIE"] == "a=1"
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert "content-type" in headers and len(headers) == 2
    assert headers.get("missing", "d") == "d"


class _Source:
    """A backend's map as the pyreqwest backend's is: names lowercased, lookups by name."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs
        self.copied = 0

    def values(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k.lower() == name.lower()]

    def pairs(self) -> list[tuple[str, str]]:
        self.copied += 1
        return list(self._pairs)


_NAMES = st.sampled_from(["content-type", "set-cookie", "retry-after", "x-a", "X-A", "missing"])


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(_NAMES.filter(lambda n: n != "missing").map(str.lower),
                                st.text(max_size=3)), max_size=6),
       asks=st.lists(st.tuples(st.sampled_from(["get", "item", "all", "in", "len", "iter"]),
                               _NAMES), max_size=8))
def test_headers_over_a_source_read_as_headers_over_pairs(
        pairs: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
    source = _Source(pairs)
    lazy, eager = Headers.from_source(source), Headers(pairs)

    def ask(headers: Headers, how: str, name: str) -> object:
        if how == "get":
            return headers.get(name, "d")
        if how == "item":
            try:
                return headers[name]
            except KeyError:
                return KeyError
        if how == "all":
            return headers.get_all(name)
        if how == "in":
            return name in headers
        if how == "len":
            return len(headers)
        return list(headers)

    for how, name in asks:
        assert ask(lazy, how, name) == ask(eager, how, name)
    if all(how in ("get", "item", "all", "in") for how, _ in asks):
        assert source.copied == 0  # lookups alone never copied the map out
    assert lazy.items_all() == eager.items_all()
    assert source.copied <= 1


def test_redaction() -> None:
    text = redact('{"password":"p4ss","key":"sk_live_abcdefgh123","card":"4242424242424242",'
                  '"auth":"Bearer abcdefghijkl"} my-own-secret', ["my-own-secret"])
    for leaked in ("p4ss", "abcdefgh123", "4242424242424242", "abcdefghijkl", "my-own-secret"):
        assert leaked not in text
    assert "****4242" in text
    assert len(excerpt(b"x" * 10_000)) == 200


# -- safety and classification --------------------------------------------------------------


def test_safety_classes() -> None:
    assert safety_of("GET", None) is Safety.SAFE
    assert safety_of("DELETE", None) is Safety.IDEMPOTENT
    assert safety_of("POST", "k") is Safety.KEYED
    assert safety_of("PATCH", None) is Safety.UNSAFE
    assert not Safety.UNSAFE.replay_safe and Safety.KEYED.replay_safe


def _labelled(exc: Exception, method: str, key: str | None) -> Exception:
    info = RequestInfo(method, "https://x/y", f"{method} /y", safety_of(method, key), key)
    exc.request_info = info  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(("exc", "method", "key", "expected"), [
    (TransportError("refused", sent=False), "POST", None, True),
    (TransportError("reset", sent=True), "POST", None, False),
    (TransportError("reset", sent=True), "POST", "k", True),
    (TransportError("reset", sent=True), "GET", None, True),
    (AttemptTimeoutError("slow"), "PUT", None, True),
    (StatusError(503), "GET", None, True),
    (StatusError(429), "POST", "k", True),
    (StatusError(503), "POST", None, False),
    (StatusError(400), "GET", None, False),
    (StatusError(409), "POST", "k", False),
    (ResponseError("cut", reason="truncated"), "GET", None, True),
    (ResponseError("big", reason="oversized"), "GET", None, False),
    (ValueError("bug"), "GET", None, False),
    (DeadlineExceededError("late"), "GET", None, False),
])
def test_default_retry_rules(exc: Exception, method: str, key: str | None,
                             expected: bool) -> None:
    assert retry_on()(_labelled(exc, method, key)) is expected


def test_retry_hook_overrides_then_defers() -> None:
    calls: list[str] = []

    def hook(exc: object, info: RequestInfo) -> bool | None:
        calls.append(info.operation)
        if isinstance(exc, StatusError) and exc.status_code == 409:
            return True
        if isinstance(exc, StatusError) and exc.status_code == 503:
            return False
        return None

    predicate = retry_on(hook)
    assert predicate(_labelled(StatusError(409), "POST", "k"))
    assert not predicate(_labelled(StatusError(503), "GET", None))
    assert predicate(_labelled(StatusError(502), "GET", None))
    assert calls == ["POST /y", "GET /y", "GET /y"]


# -- redirects --------------------------------------------------------------------------------


def _hop(status: int, location: str, method: str = "GET", body: bytes | None = None,
         url: str = "https://api.example.com/v1/a") -> tuple[str, str, dict[str, str],
                                                             bytes | None, bool]:
    headers = {"Authorization": "Bearer t", "Cookie": "c", "Idempotency-Key": "k",
               "X-Api-Key": "a", "Content-Type": "application/json", "X-Other": "o"}
    return next_hop(method, url, headers=headers, body=body, status=status, location=location,
                    base_origin=BASE, sensitive=SENSITIVE, key_header="idempotency-key")


def test_same_origin_redirect_keeps_headers() -> None:
    method, url, headers, _, same = _hop(302, "/v1/b")
    assert (method, url, same) == ("GET", "https://api.example.com/v1/b", True)
    assert headers["Authorization"] == "Bearer t"


def test_cross_origin_redirect_strips_credentials() -> None:
    _, url, headers, _, same = _hop(302, "https://other.example/x#frag")
    assert url == "https://other.example/x" and not same
    assert set(headers) == {"Content-Type"}  # an allow-list: custom headers stay behind


def test_redirect_refusals() -> None:
    # The request that drew the redirect was sent: never "refused before any I/O".
    for args, kwargs in [((302, "http://api.example.com/v1/b"), {}),  # https -> http
                         ((302, "file:///etc/passwd"), {}),
                         ((307, "https://other.example/x"), {"method": "POST", "body": b"{}"}),
                         ((302, "/x\r\nInjected: 1"), {})]:
        with pytest.raises(ResponseError) as caught:
            _hop(*args, **kwargs)  # type: ignore[arg-type]
        assert caught.value.reason == "redirect" and caught.value.sent is True


def test_a_location_beyond_ascii_is_percent_encoded_byte_for_byte() -> None:
    # Header values are read as Latin-1: a UTF-8 "é" arrives as two characters.
    assert _hop(302, "/caf\u00c3\u00a9?q=\u00e9")[1] == "https://api.example.com/caf%C3%A9?q=%E9"


def test_see_other_drops_the_body() -> None:
    method, _, headers, body, _ = _hop(303, "/v1/done", method="POST", body=b"{}")
    assert (method, body) == ("GET", None)
    assert "Content-Type" not in headers and "Idempotency-Key" not in headers
    method, _, _, body, _ = _hop(308, "/v1/again", method="PUT", body=b"{}")
    assert (method, body) == ("PUT", b"{}")


# -- timeouts ---------------------------------------------------------------------------------


def test_timeouts_are_capped_by_the_deadline() -> None:
    timeouts = Timeouts(connect=1.0, read=5.0, write=5.0, pool=1.0, total=10.0)
    limits = timeouts.limits(100.0, 103.0)
    assert limits.by_deadline and limits.end == 103.0
    assert limits.at(101.0) == (1.0, 2.0, 2.0, 1.0, 2.0)
    free = timeouts.limits(100.0, None)
    assert not free.by_deadline and free.at(100.0) == (1.0, 5.0, 5.0, 1.0, 10.0)
    with pytest.raises(DeadlineExceededError):
        timeouts.limits(100.0, 99.0)


@given(st.floats(0.001, 100), st.floats(0.001, 100), st.floats(-10, 100))
def test_no_limit_outlives_the_deadline(read: float, total: float, left: float) -> None:
    timeouts = Timeouts(read=read, total=total)
    if left <= 0:
        with pytest.raises(DeadlineExceededError):
            timeouts.limits(0.0, left)
        return
    limits = timeouts.limits(0.0, left)
    assert all(0 < value <= min(total, left) + 1e-9 for value in limits.at(0.0)[1:2] +
               limits.at(0.0)[4:])


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "1"])
def test_timeouts_validate(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="read"):
        Timeouts(read=bad)  # type: ignore[arg-type]


def test_the_clients_response_equals_the_public_constructor() -> None:
    # response_of (every successful call) must set every field Response.__init__ sets.
    from egress.http._response import response_of

    headers = Headers.from_raw([(b"X-Request-Id", b"r1")])
    made = Response(201, headers, b"{}", method="POST", url="http://h/x",
                    request_id_headers=("x-request-id",))
    fast = response_of(201, headers, b"{}", "POST", "http://h/x", ("x-request-id",))
    for name in Response.__slots__:
        assert getattr(fast, name) == getattr(made, name), name
    assert fast.request_id == "r1" and repr(fast) == repr(made)
