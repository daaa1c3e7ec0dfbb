"""ResilientTransport over real loopback sockets: streaming, deadlines, caps, trio (issue 14)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
from _loopback import Chunked, Drip, LoopbackServer, Reply, Truncate

from egress import Pipeline, Retry
from egress.errors import DeadlineExceededError, ResponseError
from egress.http import ResilientTransport, retry_on
from egress.policies import Backoff

FAST = Backoff(initial=0.001, cap=0.005)


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


def fast(**settings: object) -> ResilientTransport:
    return ResilientTransport(pipeline=Pipeline(Retry(on=retry_on(), backoff=FAST)),
                              **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_a_slow_body_streams_as_it_arrives(server: LoopbackServer, library: str) -> None:
    server.clear()
    server.script("/feed", Reply(503, headers={"Retry-After": "0"}), Drip(b"x" * 20, 0.05))

    async def main() -> list[bytes]:
        async with httpx.AsyncClient(transport=fast()) as client, \
                client.stream("GET", server.url + "/feed") as response:
            assert response.status_code == 200
            return [chunk async for chunk in response.aiter_raw()]

    chunks = anyio.run(main, backend=library)
    # one byte per drip over a second: several chunks, not one body read whole before the first
    # was handed over (a loaded machine may batch a few bytes into one read, never all of them)
    assert b"".join(chunks) == b"x" * 20 and len(chunks) >= 2
    assert len(server.hits("/feed")) == 2  # the 503 retried: headers only


@pytest.mark.parametrize("library", ["asyncio", "trio", "sync"])
def test_a_deadline_cuts_a_dripping_body(server: LoopbackServer, library: str) -> None:
    server.clear()
    server.script("/drip", Drip(b"x" * 200, 0.05))  # 10 s if let run
    url = server.url + "/drip"

    def fetch() -> None:
        if library == "sync":
            with httpx.Client(transport=fast(deadline=0.5)) as client:
                client.get(url)
            return

        async def main() -> None:
            async with httpx.AsyncClient(transport=fast(deadline=0.5)) as client:
                await client.get(url)

        anyio.run(main, backend=library)

    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException) as caught:
        fetch()
    assert isinstance(caught.value, DeadlineExceededError)
    assert time.monotonic() - started < 5.0  # generous: the body alone would take 10 s


async def test_the_size_cap_holds_while_a_body_streams(server: LoopbackServer) -> None:
    server.clear()
    server.script("/big", Chunked(chunks=10, size=65536))
    chunks: list[bytes] = []

    async def read(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)

    async with httpx.AsyncClient(transport=fast(max_response_bytes=100_000)) as client, \
            client.stream("GET", server.url + "/big") as response:
        with pytest.raises(httpx.ReadError) as caught:
            await read(response)
    received = sum(map(len, chunks))
    assert isinstance(caught.value, ResponseError) and caught.value.reason == "oversized"
    assert 0 < received <= 100_000


def test_a_body_error_is_raised_when_streaming_and_retried_when_buffered(
        server: LoopbackServer) -> None:
    server.clear()
    server.script("/t", Truncate(), Truncate(), Reply(200, {"ok": True}))
    with httpx.Client(transport=fast()) as client:
        with pytest.raises(httpx.RemoteProtocolError) as caught:
            client.get(server.url + "/t")
        assert isinstance(caught.value, ResponseError) and caught.value.reason == "truncated"
    assert len(server.hits("/t")) == 1
    with httpx.Client(transport=fast(buffer_body=True)) as client:
        assert client.get(server.url + "/t").json() == {"ok": True}
    assert len(server.hits("/t")) == 3


def test_connection_refused_ends_within_httpx_timeout() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with httpx.Client(transport=ResilientTransport(), timeout=0.5) as client, \
            pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")
    assert time.monotonic() - started < 3.0  # generous; the retries stop at 0.5 s
