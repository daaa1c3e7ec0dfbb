"""Hostile servers, for every backend (issue 17 §1): each call ends by its deadline with a typed
egress error, and memory stays bounded, whatever the server sends.

Every scenario runs on the five client faces of the integration suite's ``make`` fixture: async
on aiohttp, httpx and pyreqwest, sync on stdlib and httpx (run in a worker thread). The server is
a raw asyncio socket server on 127.0.0.1 (``_hostile.HostileServer``). Memory is the peak of the
call: the resident set's growth (Python objects and native buffers alike), against a bound far
below what the hostile input would cost a client that buffered it.

The slow variants (headers and ``100 Continue`` dripped a byte at a time, a dripped status line and
body) are in ``tests/integration/test_http_wire.py`` (``HOSTILE``), on the same five faces; here
the server floods as fast as the client reads.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _hostile import (
    Api,
    Chunked,
    Flood,
    HostileServer,
    Raw,
    Reply,
    gzip_bomb,
    make,
    many_headers,
    other,
    peak_rss_growth,
)

from egress import Pipeline
from egress.errors import EgressError
from egress.http import Timeouts

__all__ = ["make", "other"]  # the five client faces (fixtures); ``server`` is ours, below

DEADLINE = 0.5  # seconds the caller gives each call
MARGIN = 2.0  # a generous allowance for a loaded 2-core machine
# The body cap is 10 MiB; a client that buffered a flood (64 MiB) or the bomb would pass this.
RSS_BOUND = 48 * 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    srv = HostileServer().start()
    yield srv
    srv.stop()


Setup = Callable[[HostileServer, str], None]  # scripts the server for one call's path


@dataclass(frozen=True)
class Scenario:
    fault: str
    expected: str
    setup: Setup
    method: str = "GET"
    settings: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    allowance: int = 0  # memory the caller's own request body accounts for (its copies)


def _script(*actions: Any) -> Setup:
    return lambda server, path: server.script("/v1" + path, *actions)


def _early(answer: bytes) -> Setup:
    def setup(server: HostileServer, path: str) -> None:
        server.early = answer
    return setup


def _redirect_loop(server: HostileServer, path: str) -> None:
    server.route("/v1" + path, lambda request: Reply(302, headers={"Location": "/v1" + path}))


# Each call has a path of its own: a connection a client left behind in an earlier test can
# never take this test's scripted answer.
_PATHS = itertools.count()


def _path() -> str:
    return f"/h{next(_PATHS)}"


TYPED = "a typed egress error, by the deadline, memory bounded"
BIG_UPLOAD = b"u" * (16 * 1024 * 1024)  # more than the loopback socket buffers hold
BOMB = gzip_bomb(64 * 1024 * 1024)  # 64 MiB of zeros in ~64 KB: over the 10 MiB decoded cap

SCENARIOS: dict[str, Scenario] = {
    "headers-never-end": Scenario(
        "header lines streamed as fast as the client reads, never ending (64 MiB cap)", TYPED,
        _script(Flood(b"HTTP/1.1 200 OK\r\n", b"X-Flood: " + b"a" * 90 + b"\r\n"))),
    "100k-headers": Scenario(
        "a complete answer with 100,000 header lines", TYPED,
        _script(Raw(many_headers(100_000, b"X-H-%d: v")))),
    "set-cookie-flood": Scenario(
        "2,000 Set-Cookie headers of 4 KB each (8 MB of headers)", TYPED,
        _script(Raw(many_headers(2_000, b"Set-Cookie: c%d=" + b"v" * 4000 + b"; Path=/")))),
    "1gb-content-length": Scenario(
        "Content-Length: 1 GB, a 2-byte body, then the connection held open", TYPED,
        _script(Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1073741824\r\n\r\n{}", hold=True))),
    "huge-chunk-size": Scenario(
        "a chunked body whose first chunk declares 1 GB, sends 2 bytes, then holds", TYPED,
        _script(Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n40000000\r\n{}", hold=True))),
    "overflowing-chunk-size": Scenario(
        "a chunk size of 40 hex digits (overflows any integer)", TYPED,
        _script(Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + b"f" * 40 + b"\r\n{}\r\n0\r\n\r\n"))),
    "endless-chunks": Scenario(
        "64 KB chunks without end (128 MB)", TYPED,
        _script(Chunked(chunks=2000, size=65536))),
    "gzip-bomb": Scenario(
        "Content-Encoding: gzip, 64 KB inflating to 64 MiB", TYPED,
        _script(Reply(200, BOMB, headers={"Content-Encoding": "gzip",
                                          "Content-Type": "application/json"}))),
    "invalid-status-line": Scenario(
        "the status line 'HTTP/1.1 OK 200'", TYPED,
        _script(Raw(b"HTTP/1.1 OK 200\r\nContent-Length: 2\r\n\r\n{}"))),
    "binary-status-line": Scenario(
        "binary garbage where the status line should be, then the connection held", TYPED,
        _script(Raw(bytes(range(256)) * 4, hold=True))),
    "http-0.9": Scenario(
        "an HTTP/0.9 answer: a bare body, no status line, then close", TYPED,
        _script(Raw(b'{"ok": true}\n'))),
    "answer-before-request": Scenario(
        "a 400 written on accept; the 16 MB upload is never read", TYPED,
        _early(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}"),
        method="PUT", kwargs={"content": BIG_UPLOAD}, allowance=6 * len(BIG_UPLOAD)),
    "continue-forever": Scenario(
        "'100 Continue' interim answers as fast as the client reads, never a final one", TYPED,
        _script(Flood(b"", b"HTTP/1.1 100 Continue\r\n\r\n"))),
    "redirect-loop": Scenario(
        "302 to itself forever, with redirects followed", TYPED, _redirect_loop,
        settings={"follow_redirects": True}),
}

# Redirect targets that are not usable URLs (issue 9 §4 found ValueError escaping for two).
MALFORMED_LOCATIONS = [
    "http://127.0.0.1:99999/", "http://[::1/", "http://", "//", "http:///x", "http://:80/",
    "http://a b/", "http://127.0.0.1:-1/", "file:///etc/passwd", "javascript:alert(1)",
    "http://" + "a" * 300 + ".example/", "http://%zz/", "https://[fe80::1%eth0]/",
]


def _case(name: str) -> Any:
    scenario = SCENARIOS[name]
    return pytest.param(name, id=name, marks=pytest.mark.reliability(
        area="Hostile servers", fault=scenario.fault, expected=scenario.expected))


async def _ends_typed_by_the_deadline(api: Api, method: str, path: str,
                                      **kwargs: Any) -> EgressError:
    started = time.monotonic()
    try:
        response = await api.request(method, path, deadline=DEADLINE, **kwargs)
    except EgressError as exc:
        error = exc
    else:
        pytest.fail(f"no error: {response.status_code} {response.content[:100]!r}")
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + MARGIN, elapsed
    return error


@pytest.mark.parametrize("name", [_case(name) for name in SCENARIOS])
async def test_a_hostile_server_cannot_hang_or_bloat_a_call(
        name: str, make: Callable[..., Api], server: HostileServer) -> None:
    scenario = SCENARIOS[name]
    path = _path()
    scenario.setup(server, path)
    # Every per-attempt limit is longer than the deadline: the deadline alone must end it.
    api = make(pipeline=Pipeline(), timeouts=Timeouts(connect=5.0, read=5.0, write=5.0,
                                                      total=5.0), **scenario.settings)
    with peak_rss_growth() as growth:
        await _ends_typed_by_the_deadline(api, scenario.method, path, **scenario.kwargs)
    assert growth[0] < RSS_BOUND + scenario.allowance, growth


@pytest.mark.reliability(area="Hostile servers",
                         fault=f"a redirect to each of {len(MALFORMED_LOCATIONS)} malformed URLs "
                               f"(bad port, broken IPv6, no host, spaces, file:, javascript:, "
                               f"a 300-byte label, ...)",
                         expected="a typed egress error for each, by the deadline; none "
                                  "followed")
async def test_redirects_to_malformed_urls_are_typed_errors(
        make: Callable[..., Api], server: HostileServer) -> None:
    api = make(pipeline=Pipeline(), follow_redirects=True)
    for location in MALFORMED_LOCATIONS:
        path = _path()
        server.script("/v1" + path, Reply(302, headers={"Location": location}))
        await _ends_typed_by_the_deadline(api, "GET", path)
        assert len(server.hits("/v1" + path)) == 1  # the redirect was not followed
