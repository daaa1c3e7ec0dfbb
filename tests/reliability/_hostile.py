"""Hostile HTTP servers for tests/reliability/test_hostile_*.py.

Byte-level misbehaviours built on the integration suite's scriptable loopback server
(``tests/integration/_loopback.py``, reused, not copied), plus what it lacks: an answer written
the moment a connection is accepted, before the client has sent its request, and floods that go
on until the client hangs up (each bounded in bytes and seconds, so a client that never stops
reading cannot hold a test forever).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_INTEGRATION = str(Path(__file__).resolve().parent.parent / "integration")
if _INTEGRATION not in sys.path:  # the loopback server and the five-backend ``make`` fixture
    sys.path.insert(0, _INTEGRATION)

# Re-exported for the tests: the integration suite's server actions and its ``make`` fixture
# (five client faces: async aiohttp/httpx/pyreqwest, sync stdlib/httpx), reused, not copied.
import test_http_client  # noqa: E402
from _loopback import Action, Chunked, LoopbackServer, Recorded, Reply, gzip_bomb  # noqa: E402
from test_http_client import Api  # noqa: E402

make, other = test_http_client.make, test_http_client.other
__all__ = ["Api", "Chunked", "Reply", "gzip_bomb", "make", "other"]

# Nothing may hold a connection open longer than this, whatever the client does.
HOLD = 10.0
# Floods stop after this many bytes even if the client keeps reading (it should not).
FLOOD_CAP = 64 * 1024 * 1024


async def _write(writer: asyncio.StreamWriter, data: bytes) -> bool:
    """Write and drain; False once the client has gone."""
    try:
        writer.write(data)
        await writer.drain()
    except (ConnectionError, RuntimeError):
        return False
    return not writer.transport.is_closing()


async def _hold(writer: asyncio.StreamWriter, seconds: float = HOLD) -> None:
    """Keep the connection open, answering nothing, until the client closes it (or ``seconds``)."""
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end and not writer.transport.is_closing():
            await asyncio.sleep(0.02)
    except asyncio.CancelledError:
        pass  # the server is stopping: end quietly instead of logging a cancelled handler


@dataclass
class Raw(Action):
    """Write ``data`` as it is (no status line added), then hold the connection or close it."""

    data: bytes
    hold: bool = False

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        if await _write(writer, self.data) and self.hold:
            await _hold(writer)
        return False


@dataclass
class Flood(Action):
    """Write ``head``, then ``piece`` as fast as the client reads, until it hangs up (or the
    byte cap / :data:`HOLD` is reached): headers that never end, ``100 Continue`` forever."""

    head: bytes
    piece: bytes

    async def run(self, server: LoopbackServer, request: Recorded,
                  writer: asyncio.StreamWriter) -> bool:
        block = self.piece * max(1, 65536 // len(self.piece))
        sent, end = 0, time.monotonic() + HOLD
        if not await _write(writer, self.head):
            return False
        while sent < FLOOD_CAP and time.monotonic() < end:
            if not await _write(writer, block):
                return False
            sent += len(block)
        return False


def many_headers(count: int, line: bytes, *, body: bytes = b"{}") -> bytes:
    """A complete 200 answer carrying ``count`` copies of the header ``line`` (``%d`` = index)."""
    lines = b"".join(line % i + b"\r\n" for i in range(count))
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + lines
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


class HostileServer(LoopbackServer):
    """The loopback server, able to answer a connection before reading anything from it."""

    def __init__(self) -> None:
        super().__init__()
        self.early: bytes | None = None  # written on accept; then the request is never read

    def clear(self) -> None:
        super().clear()
        self.early = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.early is None:
            await super()._handle(reader, writer)
            return
        # Answer at once, then neither read nor close: the client's upload meets full buffers.
        if await _write(writer, self.early):
            await _hold(writer)
        writer.close()


# -- memory --------------------------------------------------------------------------------------


def _peak_rss() -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else 0


def _rss() -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) * 1024 if match else 0


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """The block's peak resident-set growth in bytes (``[growth]``, filled in on exit).

    The resident set sees everything a client buffers: Python objects and native buffers alike
    (pyreqwest's Rust side, zlib). Not tracemalloc: tracing every allocation slows a flood's
    parsing several times over, which would measure the tracer, not the deadline.
    """
    growth = [0]
    try:  # Linux: "5" resets the high-water mark (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
        base = _rss()
    except OSError:
        base = _peak_rss()
    try:
        yield growth
    finally:
        growth[0] = max(0, _peak_rss() - base)
