"""The aiohttp backend's fast path (below ``ClientSession._request``, issue 16 §1) against its
public ``session.request`` path: when each is taken, and the same bytes on the wire.

The rest of the suite runs the fast path (aiohttp is the default backend); the modules that use
the ``make`` fixture (test_http_client, test_http_wire, the reliability faults, deadlines and
security) also run the public path, as ``async-aiohttp-public``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import test_http_wire as _wire_tests

import egress.http._aiohttp as _aiohttp
from egress import Pipeline, Secret
from egress._serving import stop_accepting
from egress.errors import AttemptTimeoutError
from egress.http import ApiClient, BearerAuth, Timeouts

black_hole = _wire_tests.black_hole  # the fixture: a loopback port whose accept queue is full


class RawServer:
    """A loopback HTTP/1.1 server that keeps the exact bytes of every request it is sent."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = re.search(rb"(?im)^content-length:\s*(\d+)\r$", head)
                body = await reader.readexactly(int(found.group(1))) if found else b""
                self.requests.append(head + body)
                reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
                writer.write(reply if head.startswith(b"HEAD ") else reply + b"ok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            await stop_accepting(self._server.sockets)  # (egress._serving: no socket leaked)
            self._server.close()
            await self._server.wait_closed()
        for writer in self._writers:  # Python 3.11's Server.close leaves accepted ones open
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = await RawServer().start()
    yield server
    await server.stop()


def _uses_fast_path(api: ApiClient) -> bool:
    return api._wire._connector is not None  # type: ignore[attr-defined]


# Each call is made on both paths; egress's own Idempotency-Key is random per call, so it is
# given here, to compare the rest byte for byte.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("GET", {}),
    ("GET", {"params": {"q": "a b", "n": 2}, "headers": {"X-Trace": "t1", "Accept": "text/x"}}),
    ("HEAD", {}),
    ("DELETE", {}),
    ("POST", {"json": {"amount": 10}, "headers": {"Idempotency-Key": "k1"}}),
    ("POST", {"content": b"\x00raw bytes", "headers": {"Idempotency-Key": "k2"}}),
    ("PUT", {"form": {"a": "1", "b": "x y"}}),
    ("PATCH", {"content": b"{}", "headers": {"Content-Type": "application/merge-patch+json"}}),
    ("POST", {"headers": {"Idempotency-Key": "k3", "User-Agent": "mine/1"}}),
]


async def _send_all(url: str) -> None:
    async with ApiClient(url, pipeline=Pipeline(), auth=BearerAuth(Secret("tok"))) as api:
        for method, kwargs in CALLS:
            response = await api.request(method, "/v1/items", **kwargs)
            assert response.status_code == 200
            assert response.content == (b"" if method == "HEAD" else b"ok")
        assert _uses_fast_path(api) is _aiohttp._fast_path_allowed


async def test_both_paths_put_the_same_bytes_on_the_wire(
        raw: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    await _send_all(raw.url)
    fast = list(raw.requests)
    raw.requests.clear()
    monkeypatch.setattr(_aiohttp, "_fast_path_allowed", False)
    await _send_all(raw.url)
    assert raw.requests == fast
    assert len(fast) == len(CALLS)
    for sent in fast:  # aiohttp's auto headers are there, as on the public path
        head = sent.split(b"\r\n\r\n", 1)[0].lower()
        for name in (b"host", b"accept", b"accept-encoding", b"user-agent", b"authorization"):
            assert b"\r\n" + name + b": " in head, (name, sent)
    assert fast[0].startswith(b"GET /v1/items HTTP/1.1\r\n")
    assert b"\r\ncontent-length: 0\r\n" in fast[3].lower()  # a DELETE without a body
    # no invented Content-Type on a raw body: no other backend sends one (egress skips it)
    assert b"\r\ncontent-type:" not in fast[5].lower()
    assert fast[5].endswith(b"\r\n\r\n\x00raw bytes")


async def test_the_fast_path_is_taken_only_where_it_was_verified(
        raw: RawServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def path_taken(**settings: Any) -> bool:
        async with ApiClient(raw.url, pipeline=Pipeline(), **settings) as api:
            assert (await api.get("/v1/x")).status_code == 200
            return _uses_fast_path(api)

    assert _aiohttp._check_fast_path()  # the locked aiohttp is one it was verified on
    assert await path_taken()
    # The environment's proxies and netrc need ClientSession's own logic.
    assert not await path_taken(trust_env=True)
    monkeypatch.setattr(_aiohttp, "_fast_path_allowed", False)
    assert not await path_taken()


@pytest.mark.parametrize("version",
                         ["3.12.15", "3.13.3", "3.15.0", "4.0.0a1", "3.14.0rc1", "nightly"])
def test_an_aiohttp_it_was_not_verified_on_takes_the_public_path(
        version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiohttp, "__version__", version)
    assert not _aiohttp._check_fast_path()


def test_a_changed_signature_takes_the_public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def send(self: Any, connection: Any) -> None: ...  # a renamed parameter

    signatures = dict(_aiohttp._FAST_SIGNATURES)
    signatures["ClientRequest.send"] = (send, {"conn"})
    monkeypatch.setattr(_aiohttp, "_FAST_SIGNATURES", signatures)
    assert not _aiohttp._check_fast_path()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "public"])
async def test_a_connect_timeout_is_not_sent_and_names_aiohttp_s_error(
        fast: bool, black_hole: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_aiohttp, "_fast_path_allowed", fast)
    async with ApiClient(black_hole, pipeline=Pipeline(),
                         timeouts=Timeouts(connect=0.2, total=5.0)) as api:
        with pytest.raises(AttemptTimeoutError) as caught:
            await api.get("/x")
        assert _uses_fast_path(api) is fast
    assert caught.value.sent is False
    assert "connect timed out (ConnectionTimeoutError)" in str(caught.value)



async def test_a_total_that_fires_while_connecting_is_not_sent_on_the_fast_path(
        black_hole: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a loop running late, the attempt's total can fire just after the connect timer (it
    waits only 50 ms more): the fast path knows no connection was made, so nothing was sent.
    (The public path cannot tell: it says ``sent=True``, the safe side.)"""
    monkeypatch.setattr(_aiohttp, "_BACKSTOP", -0.2)  # the total fires first, deterministically
    async with ApiClient(black_hole, pipeline=Pipeline(),
                         timeouts=Timeouts(connect=0.3, total=0.3)) as api:
        with pytest.raises(AttemptTimeoutError) as caught:
            await api.get("/x")
        assert _uses_fast_path(api)
    assert caught.value.sent is False
    assert "connect timed out (TimeoutError)" in str(caught.value)
