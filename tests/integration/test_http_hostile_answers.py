"""Hostile *answers*, on every backend: what the server sends back is a fact about the answer.

* ``sent`` is a fact: once the server has answered, nothing says "refused" or "not sent"
  (``UnsafeRequestError``, ``TransportError(sent=False)``); an unreadable answer is a
  ``ResponseError`` (``malformed``, ``truncated``, ``encoding``, ``redirect``) or a
  ``TransportError(sent=True)``;
* no bare built-in exception escapes, no call outlives its deadline, and no error quotes the
  request's credentials or the line of the answer a parser refused;
* the backends agree, except where a library cannot be told otherwise (each such difference is
  pinned here and listed in docs/http-client.md).

Each answer is written byte for byte (``_loopback.Raw``). The ``make`` fixture (every test runs on
aiohttp, its public path, httpx async, pyreqwest, stdlib and httpx sync) comes from
``test_http_client``.
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import test_http_client as _clients
from _loopback import Action, LoopbackServer, Raw, Reply
from test_http_client import Api, _chain

from egress import Pipeline
from egress.errors import (
    EgressError,
    ResponseError,
    StatusError,
    TransportError,
    UnsafeRequestError,
)
from egress.http import Timeouts
from egress.http._hints import MAX_HINT

make, server, other = _clients.make, _clients.server, _clients.other  # the shared fixtures

SECRET = "sk_live_HOSTILE_7f3"  # the request's credential: never in an error
COOKIE = "sess_COOKIE_91c"  # in a header line a parser refuses: never in an error either
DEADLINE = 3.0
OK = b"HTTP/1.1 200 OK\r\n"


def _backend(api: Api) -> str:
    return api.client.backend


async def _answer(api: Api, server: LoopbackServer, action: Action, method: str = "POST",
                  **kwargs: Any) -> Any:
    """The call's Response or EgressError; anything else (a bare built-in) fails the test."""
    path = f"/h-{uuid.uuid4().hex}"  # a path of its own: no earlier connection takes its answer
    server.script("/v1" + path, action)
    if method == "POST" and "content" not in kwargs:
        kwargs["json"] = {"n": 1}
    started = time.monotonic()
    try:
        result: Any = await api.request(method, path, deadline=DEADLINE,
                                        headers={"Authorization": f"Bearer {SECRET}"}, **kwargs)
    except EgressError as exc:
        result = exc
        for link in _chain(exc):
            for text in (str(link), repr(link), repr(getattr(link, "args", ()))):
                assert SECRET not in text and COOKIE not in text, (type(link), text)
    assert time.monotonic() - started < DEADLINE + 1.5
    assert len(server.hits("/v1" + path)) == 1, result  # one attempt, one request on the wire
    return result


def _answered(result: Any) -> None:
    """The server answered: whatever went wrong, nothing may say it was not sent."""
    assert not isinstance(result, UnsafeRequestError), result
    if isinstance(result, TransportError):
        assert result.sent is True, result


def _malformed(result: Any) -> None:
    assert isinstance(result, ResponseError), result
    assert result.reason == "malformed" and result.sent is True, result


def _ok(result: Any, status: int = 200, content: bytes = b"{}") -> None:
    assert not isinstance(result, BaseException), result
    assert (result.status_code, result.content) == (status, content)


def _api(make: Callable[..., Api], **settings: Any) -> Api:
    return make(pipeline=Pipeline(), timeouts=Timeouts(connect=2.0, read=2.0, total=DEADLINE),
                **settings)


# -- a head no parser can read: a malformed answer, never "connection closed" or "truncated" -----

UNREADABLE_HEADS = {
    "status 0": b"HTTP/1.1 0 Zero\r\nContent-Length: 2\r\n\r\n{}",
    "status 099": b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\n{}",
    "status 1000": b"HTTP/1.1 1000 High\r\nContent-Length: 2\r\n\r\n{}",
    "lower-case protocol": b"http/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "an HTTP/2 frame": b"\x00\x00\x12\x04\x00\x00\x00\x00\x00" + b"\x00" * 18,
    "a header line without colon": OK + f"Set-Cookie {COOKIE}\r\n".encode()
                                   + b"Content-Length: 2\r\n\r\n{}",
    "a space in a header name": OK + b"X Bad: v\r\nContent-Length: 2\r\n\r\n{}",
    "a space before the colon": OK + b"X-Bad : v\r\nContent-Length: 2\r\n\r\n{}",
    "a byte beyond ASCII in a name": OK + b"X-\xff\xfe: v\r\nContent-Length: 2\r\n\r\n{}",
    "Content-Length: abc": OK + b"Content-Length: abc\r\n\r\n{}",
    "Content-Length: -1": OK + b"Content-Length: -1\r\n\r\n{}",
    "Content-Length: +2": OK + b"Content-Length: +2\r\n\r\n{}",
    "two different lengths": OK + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x",
}


@pytest.mark.parametrize("head", sorted(UNREADABLE_HEADS))
async def test_a_head_no_parser_can_read_is_a_malformed_answer(
        make: Callable[..., Api], server: LoopbackServer, head: str) -> None:
    # Before: httpx said "connection closed without a response" (TransportError); pyreqwest
    # "truncated"; stdlib "truncated" (EBADF) or took the first of two lengths or a "+2";
    # aiohttp gave "099" as StatusError(99). h11 quoted the refused line (a cookie) in the chain.
    result = await _answer(_api(make), server, Raw(UNREADABLE_HEADS[head]))
    _malformed(result)


# -- valid answers every backend reads --------------------------------------------------------

VALID = {
    "HTTP/1.0, no length, read until close": b"HTTP/1.0 200 OK\r\n\r\n{}",
    "HTTP/1.1, no length, read until close": OK + b"Connection: close\r\n\r\n{}",
    "103 Early Hints, then the answer": b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                        + OK + b"Content-Length: 2\r\n\r\n{}",
    "102 Processing twice, then the answer": b"HTTP/1.1 102 Processing\r\n\r\n" * 2
                                             + OK + b"Content-Length: 2\r\n\r\n{}",
    "chunk extensions and trailers": OK + b"Transfer-Encoding: chunked\r\n\r\n"
                                     + b"2;name=value\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "Transfer-Encoding chunked wins over Content-Length (not on aiohttp)":
        OK + b"Content-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "a reason phrase in UTF-8": b"HTTP/1.1 200 d\xc3\xa9j\xc3\xa0\r\nContent-Length: 2\r\n\r\n{}",
    "no reason phrase": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}",
    "bare LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
    "answer, then a reset at once": OK + b"Content-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("answer", sorted(VALID))
async def test_a_valid_answer_is_read_whole(make: Callable[..., Api], server: LoopbackServer,
                                            answer: str) -> None:
    # Before: stdlib failed both read-until-close answers as "truncated" (EBADF: the socket was
    # closed under its body reader) and took 102/103 for the final answer (StatusError).
    api = _api(make)
    result = await _answer(api, server, Raw(VALID[answer], reset="reset" in answer))
    if "not on aiohttp" in answer and _backend(api) == "aiohttp":
        _malformed(result)  # llhttp refuses both framings at once (RFC 9112 6.1 allows it)
        return
    if "reset" in answer and isinstance(result, TransportError):
        _answered(result)  # the reset may overtake the answer in the client's socket
        return
    _ok(result)


async def test_a_repeated_equal_length_frames_the_body(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    # RFC 9110 8.6 lets a recipient take "2, 2" (or the field twice) as one length. Before:
    # stdlib read "2, 2" as no length and failed reading until close. llhttp refuses both.
    api = _api(make)
    for head in (b"Content-Length: 2, 2\r\n", b"Content-Length: 2\r\nContent-Length: 2\r\n"):
        result = await _answer(api, server, Raw(OK + head + b"\r\n{}", keep=True))
        if _backend(api) == "aiohttp":
            _malformed(result)
        else:
            _ok(result)


# -- answers that end before their head does: sent, never refused -----------------------------

CUT_HEADS = {
    "nothing at all": b"",
    "a 102 that never ends": b"HTTP/1.1 102 Processing\r\nX-A: 1\r\n",
    "blank lines only": b"\r\n\r\n",
    "the status line only": OK,
}


@pytest.mark.parametrize("head", sorted(CUT_HEADS))
async def test_an_answer_cut_inside_its_head_is_sent(
        make: Callable[..., Api], server: LoopbackServer, head: str) -> None:
    # Before: stdlib returned the 102 as the final answer (StatusError 102).
    api = _api(make)
    result = await _answer(api, server, Raw(CUT_HEADS[head]))
    _answered(result)
    if _backend(api) == "stdlib" and head == "the status line only":
        # http.client cannot tell a head cut by the close from one ended by a blank line: it
        # reads an empty body until close (docs/http-client.md, stdlib).
        _ok(result, content=b"")
    elif _backend(api) in ("stdlib", "httpx") and head == "blank lines only":
        _malformed(result)  # http.client and h11 read a blank line as a bad status line
    else:
        assert isinstance(result, TransportError) and result.sent is True, result


# -- redirects: the request that drew one was sent ---------------------------------------------


@pytest.mark.parametrize("location", ["javascript:alert(1)", "http://[::1", "http://a b/"])
async def test_a_redirect_not_followed_is_the_answer_whatever_its_location(
        make: Callable[..., Api], server: LoopbackServer, location: str) -> None:
    # Before: httpx built the next request inside send even with redirects off, and raised
    # UnsafeRequestError ("request refused by the HTTP library") or TransportError for a POST
    # the server had answered.
    api = _api(make)
    result = await _answer(api, server, Reply(307, b"", headers={"Location": location}))
    assert isinstance(result, StatusError) and result.status_code == 307, result
    assert result.header("location") == location


@pytest.mark.parametrize("location", ["javascript:alert(1)", "http://[::1", "http://a b/",
                                      "http://127.0.0.1:99999/", "http://", "OTHER"])
async def test_a_refused_redirect_is_an_answered_call(
        make: Callable[..., Api], server: LoopbackServer, other: LoopbackServer,
        location: str) -> None:
    # Before: UnsafeRequestError ("refused before any I/O") for a POST the server had
    # received and answered: a caller could send it again.
    api = _api(make, follow_redirects=True)
    if location == "OTHER":  # a 307 would resend the POST body to another origin
        location = other.url + "/landing"
    result = await _answer(api, server, Reply(307, b"", headers={"Location": location}))
    assert isinstance(result, ResponseError) and result.reason == "redirect", result
    assert result.sent is True
    assert other.requests == []


async def test_a_location_beyond_ascii_is_followed_percent_encoded(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    # "/v1/café" in UTF-8, read as Latin-1 like every header value. Before: stdlib raised
    # UnsafeRequestError ("refused by the HTTP library") after the 302; aiohttp sent bytes the
    # server could not read; httpx re-encoded the Latin-1 reading (/caf%C3%83%C2%A9).
    api = _api(make, follow_redirects=True)
    utf8 = "/v1/caf\u00c3\u00a9"
    result = await _answer(api, server, Reply(302, b"", headers={"Location": utf8}), method="GET")
    if _backend(api) == "pyreqwest":
        # reqwest gives no header value beyond visible ASCII: there is no Location to follow
        assert isinstance(result, StatusError) and result.status_code == 302, result
        return
    assert not isinstance(result, BaseException) and result.status_code == 200, result
    assert server.requests[-1].path == "/v1/caf%C3%A9"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("location", [None, ""])
async def test_a_redirect_without_a_location_is_its_status(
        make: Callable[..., Api], server: LoopbackServer, status: int,
        location: str | None) -> None:
    # (Right before this work on every backend: pinned.)
    api = _api(make, follow_redirects=True)
    headers = {} if location is None else {"Location": location}
    result = await _answer(api, server, Reply(status, b"", headers=headers))
    assert isinstance(result, StatusError) and result.status_code == status, result


# -- where a library is stricter than the others: pinned, and listed in docs/http-client.md ------

STRICT = {
    # what: (answer, the backends that refuse it as malformed; the others read it)
    "a control byte in a header value": (OK + b"X-A: a\x01b\r\nContent-Length: 2\r\n\r\n{}",
                                         {"pyreqwest"}),
    "an obs-fold continuation line": (OK + b"X-A: a\r\n  folded\r\nContent-Length: 2\r\n\r\n{}",
                                      {"pyreqwest"}),
    "bytes beyond ASCII in the reason phrase": (
        b"HTTP/1.1 200 \xff\xfe\x01ok\r\nContent-Length: 2\r\n\r\n{}", {"pyreqwest"}),
    "500 header lines": (OK + b"".join(b"X-%d: v\r\n" % i for i in range(500))
                         + b"Content-Length: 2\r\n\r\n{}", {"aiohttp", "pyreqwest", "stdlib"}),
    "one 10 KB header line": (OK + b"X-Big: " + b"a" * 10_000 + b"\r\nContent-Length: 2\r\n\r\n{}",
                              {"aiohttp"}),
    "a body after a HEAD answer": (OK + b"Content-Length: 5\r\n\r\nhello", {"aiohttp"}),
    "more body than Content-Length": (OK + b"Content-Length: 2\r\n\r\n{}junk", {"aiohttp"}),
    "a 204 with a body": (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
                          {"aiohttp"}),
}


@pytest.mark.parametrize("what", sorted(STRICT))
async def test_a_stricter_library_reports_a_malformed_answer(
        make: Callable[..., Api], server: LoopbackServer, what: str) -> None:
    # Before: pyreqwest reported its three as "truncated". The rest was as pinned.
    answer, strict = STRICT[what]
    api = _api(make)
    method = "HEAD" if "HEAD" in what else "GET"
    result = await _answer(api, server, Raw(answer), method=method)
    if _backend(api) in strict:
        _malformed(result)
    elif method == "HEAD" or "204" in what:
        _ok(result, status=204 if "204" in what else 200, content=b"")
    else:
        _ok(result)


# -- bodies and hints: already alike on every backend (pinned) ---------------------------------

ENCODINGS = {
    "not gzip": (b"hello", "encoding"),
    "truncated gzip": (gzip.compress(b'{"a": 1}')[:10], "truncated"),
    "unknown coding": (b"hello", "encoding"),
}


@pytest.mark.parametrize("what", sorted(ENCODINGS))
async def test_a_body_that_does_not_decode_is_an_encoding_error(
        make: Callable[..., Api], server: LoopbackServer, what: str) -> None:
    body, reason = ENCODINGS[what]
    coding = "x-unknown" if what == "unknown coding" else "gzip"
    api = _api(make)
    result = await _answer(api, server, Reply(200, body, headers={"Content-Encoding": coding}))
    assert isinstance(result, ResponseError) and result.reason == reason, result
    # An empty body labelled gzip is an empty body.
    _ok(await _answer(api, server, Reply(200, b"", headers={"Content-Encoding": "gzip"})),
        content=b"")


@pytest.mark.parametrize(("value", "hint"), [
    ("-1", None), ("1.5", None), ("0x10", None), ("\u00ff\u00fe", None), ("1e9", None),
    ("Wed, 99 Foo 2026 99:99:99 GMT", None), ("99999999999999999999", MAX_HINT),
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_HINT), ("Mon, 01 Jan 0001 00:00:00 GMT", 0.0),
])
async def test_an_odd_retry_after_is_no_hint_or_a_capped_one(
        make: Callable[..., Api], server: LoopbackServer, value: str,
        hint: float | None) -> None:
    api = _api(make)
    for status in (429, 503):
        result = await _answer(api, server, Reply(status, b"{}", headers={"Retry-After": value}),
                               method="GET")
        assert isinstance(result, StatusError) and result.status_code == status, result
        assert result.retry_after == hint


async def test_an_early_answer_to_a_large_upload_is_the_answer(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    # The server answers 413 without reading the 8 MB body, then closes or resets.
    api = _api(make)
    for reset in (False, True):
        result = await _answer(api, server, Raw(
            b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            reset=reset, early=True), content=b"u" * (8 * 1024 * 1024))
        _answered(result)
        # The 413 if the client reads it before its write fails (the async backends, usually);
        # else the broken write (http.client writes the whole body before reading): either way
        # the server had the request.
        if not isinstance(result, TransportError):
            assert isinstance(result, StatusError) and result.status_code == 413, result
