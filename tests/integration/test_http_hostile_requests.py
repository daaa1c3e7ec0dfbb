"""Hostile requests, on every backend: what reaches the server is the same, or nothing does.

Each test pins one finding of a hostile look at the request side (paths, queries, headers,
bodies, methods, base URLs, deadlines): an input one backend refused, or sent as other bytes than
the rest, or that escaped as a bare built-in exception. The ``make`` fixture (aiohttp on its fast
and public paths, httpx async, pyreqwest, stdlib and httpx sync) comes from ``test_http_client``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import test_http_client as _clients
from _loopback import LoopbackServer
from test_http_client import Api

from egress.errors import ConfigurationError, UnsafeRequestError

MAX_URL_LENGTH = 64_000  # the documented limit (docs/http-client.md), egress.http._url

make, server, other = _clients.make, _clients.server, _clients.other  # the shared fixtures


def _sent(server: LoopbackServer) -> tuple[str, str, dict[str, str], bytes]:
    """The one request the server got: method, target, headers (but Host), body."""
    [request] = server.requests
    headers = {k: v for k, v in request.headers.items() if k != "host"}
    return request.method, request.path, headers, request.body


BASE_HEADERS = {"accept": "*/*", "accept-encoding": "gzip, deflate, br, zstd",
                "user-agent": "egress/0.1.0"}


# -- bare built-in exceptions: every bad input is an UnsafeRequestError, before any I/O ----------

DEEP: Any = []
for _ in range(sys.getrecursionlimit() + 100):
    DEEP = [DEEP]

BAD_CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "lone surrogate in the path": ("GET", "/x/\ud800", {}),
    "lone surrogate in a path parameter": ("GET", "/x/{id}", {"path_params": {"id": "\ud800"}}),
    "lone surrogate in a query value": ("GET", "/x", {"params": {"q": "\ud800"}}),
    "lone surrogate in a form value": ("POST", "/x", {"form": {"q": "\ud800"}}),
    "lone surrogate in json": ("POST", "/x", {"json": {"q": "\ud800"}}),
    "int past 4300 digits in a path parameter": ("GET", "/x/{id}",
                                                 {"path_params": {"id": 10**5000}}),
    "int past 4300 digits in a query": ("GET", "/x", {"params": {"n": 10**5000}}),
    "json nested past the recursion limit": ("POST", "/x", {"json": DEEP}),
    "params that are not pairs": ("GET", "/x", {"params": [("a",)]}),
    "params as a string": ("GET", "/x", {"params": "a=b"}),
    "params as an int": ("GET", "/x", {"params": 5}),
    "form as a string": ("POST", "/x", {"form": "a=b"}),
    "headers as a list": ("GET", "/x", {"headers": [("X-A", "v")]}),
    "deadline as a string": ("GET", "/x", {"deadline": "5"}),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_a_bad_input_is_a_typed_error_before_any_io(
        make: Callable[..., Api], server: LoopbackServer, case: str) -> None:
    method, path, kwargs = BAD_CALLS[case]
    with pytest.raises(UnsafeRequestError):
        await make().request(method, path, **kwargs)
    assert server.requests == []


# -- a query of NaN or infinity, a NaN or bool deadline: refused, not sent --------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_a_non_finite_query_or_form_number_is_refused(
        make: Callable[..., Api], server: LoopbackServer, value: float) -> None:
    api = make()
    with pytest.raises(UnsafeRequestError):
        await api.get("/x", params={"amount": value})
    with pytest.raises(UnsafeRequestError):
        await api.post("/x", form={"amount": value})
    assert server.requests == []


@pytest.mark.parametrize("deadline", [float("nan"), True])
async def test_a_deadline_that_is_not_a_number_is_refused(
        make: Callable[..., Api], server: LoopbackServer, deadline: Any) -> None:
    with pytest.raises(UnsafeRequestError):
        await make().get("/x", deadline=deadline)
    assert server.requests == []


# -- what no backend is handed: library-owned headers, CONNECT, an over-long URL ---------

FRAMING = [{"Host": "evil.example"}, {"Content-Length": "5"}, {"Transfer-Encoding": "chunked"},
           {"Expect": "100-continue"}, {"Connection": "close"}, {"Upgrade": "websocket"},
           {"TE": "trailers"}]


@pytest.mark.parametrize("header", FRAMING, ids=[next(iter(h)) for h in FRAMING])
async def test_framing_and_target_headers_are_refused_before_any_io(
        make: Callable[..., Api], server: LoopbackServer, header: dict[str, str]) -> None:
    # Before: Host was sent as given; Content-Length 5 over 2 bytes hung the call; Transfer-
    # Encoding went out beside a Content-Length (aiohttp, httpx) or with no body (reqwest,
    # http.client); aiohttp alone waited for a "100 Continue".
    with pytest.raises(UnsafeRequestError) as caught:
        await make().post("/x", content=b"ab", headers=header)
    assert next(iter(header.values())) not in str(caught.value)
    with pytest.raises(ConfigurationError):
        make(headers=header)
    assert server.requests == []


async def test_connect_is_refused(make: Callable[..., Api], server: LoopbackServer) -> None:
    # Before: aiohttp and reqwest sent "CONNECT host:port", httpx and http.client the path.
    with pytest.raises(UnsafeRequestError):
        await make().request("CONNECT", "/x")
    assert server.requests == []


async def test_a_url_past_the_limit_is_refused_alike(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    # Before: httpx and reqwest refused a URL near 64 KiB, aiohttp and http.client sent it.
    api = make()
    prefix = len(f"{server.url}/v1/x?q=")
    await api.get("/x", params={"q": "a" * (MAX_URL_LENGTH - prefix)})
    assert len(server.requests) == 1
    with pytest.raises(UnsafeRequestError):
        await api.get("/x", params={"q": "a" * (MAX_URL_LENGTH - prefix + 1)})
    with pytest.raises(UnsafeRequestError):
        await api.get("/" + "a" * MAX_URL_LENGTH)
    assert len(server.requests) == 1


# -- the same bytes on every backend -------------------------------------------------------------

async def test_every_backend_sends_the_same_default_headers(
        make: Callable[..., Api], server: LoopbackServer) -> None:
    # Before: http.client sent no Accept; httpx alone added "Connection: keep-alive".
    await make().get("/x")
    assert _sent(server) == ("GET", "/v1/x", BASE_HEADERS, b"")


@pytest.mark.parametrize("content", [b"abc", bytearray(b"abc"), memoryview(b"xabcx")[1:4]],
                         ids=["bytes", "bytearray", "memoryview"])
async def test_a_content_body_gets_no_invented_content_type(
        make: Callable[..., Api], server: LoopbackServer, content: Any) -> None:
    # Before: aiohttp labelled it application/octet-stream, no other backend did.
    await make().post("/x", content=content)
    assert _sent(server) == ("POST", "/v1/x", {**BASE_HEADERS, "content-length": "3"}, b"abc")


EMPTY: list[tuple[str, dict[str, Any], str | None]] = [
    ("POST", {}, "0"), ("PUT", {}, "0"), ("PATCH", {}, "0"), ("DELETE", {}, "0"),
    ("POST", {"content": b""}, "0"), ("GET", {"content": b""}, "0"),
    ("GET", {}, None), ("OPTIONS", {}, None), ("HEAD", {}, None),
]


@pytest.mark.parametrize(("method", "kwargs", "length"), EMPTY,
                         ids=[f"{m}-{'empty' if k else 'none'}" for m, k, _ in EMPTY])
async def test_an_empty_body_is_framed_alike(
        make: Callable[..., Api], server: LoopbackServer, method: str,
        kwargs: dict[str, Any], length: str | None) -> None:
    # Before: reqwest sent no Content-Length for an empty POST; aiohttp alone sent one for a
    # bodiless DELETE; aiohttp and http.client sent one for GET with b"", httpx and reqwest not.
    await make().request(method, "/x", **kwargs)
    sent = _sent(server)[2]
    assert sent.get("content-length") == length


# -- base URLs: one host for every backend, or a ConfigurationError ---------------------------

@pytest.mark.parametrize("base_url", [
    "http://[fe80::1%25eth0]:1/v1",  # a zone id: reqwest refused it per call, the rest tried
    "http://xn--a.invalid:1/v1",  # a bad IDNA label: httpx and reqwest refused it per call
    "http://" + "a" * 64 + ".invalid:1/v1",  # a label past 63: two backends refused it
    "http://a b.invalid:1/v1",  # a space: reqwest refused it, the rest asked DNS
    "http://0x7f.1:1/v1",  # the url crate reads 127.0.0.1; the rest asked DNS
    "http://0177.0.0.1:1/v1",  # octal, for some
    "http://127.0.0.1:0/v1",  # port 0 became port 80
])
async def test_a_base_url_host_is_checked_when_built(
        make: Callable[..., Api], base_url: str) -> None:
    with pytest.raises(ConfigurationError):
        make(base_url)


async def test_a_non_ascii_host_is_sent_as_its_idna_form(make: Callable[..., Api]) -> None:
    # Each library had its own IDNA (yarl, idna, the url crate, the stdlib codec): converted
    # once, the URL every backend is handed names the same ASCII host.
    api = make("http://Bücher.example:1/v1")
    assert api.client.base_url == "http://xn--bcher-kva.example:1/v1"


class _V6Server(LoopbackServer):
    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "::1", 0)
        self.port = self._server.sockets[0].getsockname()[1]


@pytest.fixture(scope="module")
def v6_server() -> Iterator[LoopbackServer]:
    try:
        srv = _V6Server().start()
    except OSError:  # pragma: no cover - no IPv6 loopback here
        pytest.skip("no ::1")
    yield srv
    srv.stop()


async def test_an_ipv6_literal_is_sent_in_its_shortest_form(
        make: Callable[..., Api], v6_server: LoopbackServer) -> None:
    # Before: reqwest sent "Host: [::1]" for [0:0:0:0:0:0:0:1]; the rest sent it as written.
    v6_server.clear()
    api = make(f"http://[0:0:0:0:0:0:0:1]:{v6_server.port}/v1")
    await api.get("/x/{id}", path_params={"id": "é/x"}, params={"q": "1 2"})
    [request] = v6_server.requests
    assert request.headers["host"] == f"[::1]:{v6_server.port}"
    assert request.path == "/v1/x/%C3%A9%2Fx?q=1%202"
