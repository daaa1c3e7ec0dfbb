"""br and zstd responses: advertised and decoded when their packages are installed, under the
same size caps as gzip (issue 15 §7)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import brotli
import pytest
from _loopback import LoopbackServer, Reply
from backports import zstd

from egress.errors import ResponseError
from egress.http import ApiClient, SyncApiClient, _codecs
from egress.http._body import BodyReader

BODY = b'{"quote": 4.2, "pad": "' + b"x" * 5000 + b'"}'
ENCODE = {"br": brotli.compress, "zstd": zstd.compress}
# The bomb's own encoder: brotli's default quality (11) spends ~10 s compressing 64 MiB; quality 1
# does it in ~0.05 s and still shrinks it to a few KiB, and what is tested is the decoder's cap.
BOMB_ENCODE = {"br": lambda data: brotli.compress(data, quality=1), "zstd": zstd.compress}


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_decoded_in_any_chunking(coding: str) -> None:
    wire = ENCODE[coding](BODY)
    for size in (1, 7, len(wire)):
        reader = BodyReader(1 << 20, coding, len(wire))
        for start in range(0, len(wire), size):
            reader.feed(wire[start:start + size])
        assert reader.finish() == BODY


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_bomb_is_stopped_at_the_cap(coding: str) -> None:
    bomb = BOMB_ENCODE[coding](b"\0" * (64 << 20))  # 64 MiB of zeros in a few KiB
    assert len(bomb) < 1 << 20
    reader = BodyReader(1 << 20, coding, len(bomb))
    with pytest.raises(ResponseError) as caught:
        reader.feed(bomb)
    assert caught.value.reason == "oversized"


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_garbage_and_truncation_are_typed_errors(coding: str) -> None:
    reader = BodyReader(1 << 20, coding, None)
    with pytest.raises(ResponseError) as garbage:
        reader.feed(b"this is not compressed at all, not even a little" * 3)
    assert garbage.value.reason == "encoding"
    wire = ENCODE[coding](BODY)
    cut = BodyReader(1 << 20, coding, None)
    cut.feed(wire[: len(wire) // 2])
    with pytest.raises(ResponseError) as truncated:
        cut.finish()
    assert truncated.value.reason == "truncated"


def test_without_the_package_the_coding_is_neither_advertised_nor_accepted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_codecs, "HAS_BROTLI", False)
    with pytest.raises(ResponseError) as caught:
        BodyReader(1 << 20, "br", None)
    assert caught.value.reason == "encoding"


def test_installed_codings_are_advertised() -> None:
    assert _codecs.ACCEPT_ENCODING == "gzip, deflate, br, zstd"
    with SyncApiClient("https://api.example.com") as client:
        assert client._core.default_headers["Accept-Encoding"] == "gzip, deflate, br, zstd"


@pytest.mark.parametrize("coding", ["br", "zstd"])
@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
def test_async_backends_decode(server: LoopbackServer, coding: str, backend: str) -> None:
    server.script("/v1/q", Reply(200, body=ENCODE[coding](BODY),
                                 headers={"Content-Encoding": coding}))

    async def fetch() -> bytes:
        async with ApiClient(server.url + "/v1", backend=backend) as api:
            return (await api.get("/q")).content

    assert asyncio.run(fetch()) == BODY
    assert "br, zstd" in server.requests[0].headers["accept-encoding"]


@pytest.mark.parametrize("coding", ["br", "zstd"])
@pytest.mark.parametrize("backend", ["stdlib", "httpx"])
def test_sync_backends_decode(server: LoopbackServer, coding: str, backend: str) -> None:
    server.script("/v1/q", Reply(200, body=ENCODE[coding](BODY),
                                 headers={"Content-Encoding": coding}))
    with SyncApiClient(server.url + "/v1", backend=backend) as api:
        assert api.get("/q").content == BODY
