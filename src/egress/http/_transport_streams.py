"""The byte streams of :class:`~egress.http.ResilientTransport`.

* :class:`Tape` keeps a streamed request body replayable without reading it first: the body is
  recorded *while* it is sent (replay-safe requests only, up to a limit), so a later attempt can
  send the same bytes; a body that was never started needs no record at all.
* :class:`AsyncBody` / :class:`SyncBody` hand a response body to the caller as it arrives,
  checking the deadline and the size cap on the way and translating httpx's errors. The async
  one bounds each read by what remains of the deadline (an anyio cancel scope, so trio works);
  the sync one checks between chunks, each read being bounded by its own (capped) timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import NoReturn, Protocol

import anyio
import httpx

from egress._clock import Clock

__all__ = ["AsyncBody", "SyncBody", "Tape", "Watch"]


class Failures(Protocol):
    """Builds the errors a body stream raises (one per logical request, in transport.py)."""

    def transport_error(self, exc: httpx.TransportError, reading: bool) -> Exception: ...

    def deadline_error(self, where: str) -> Exception: ...

    def oversized(self, cap: int) -> Exception: ...


class Watch:
    """What is checked while a response body is read: the deadline, the size cap."""

    __slots__ = ("cap", "clock", "deadline", "failures", "seen")

    def __init__(self, *, clock: Clock, deadline: float | None, cap: int | None,
                 failures: Failures) -> None:
        self.clock = clock
        self.deadline = deadline  # absolute, clock.now() units; None: not bounded here
        self.cap = cap
        self.failures = failures
        self.seen = 0

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - self.clock.now())

    def count(self, chunk: bytes) -> None:
        self.seen += len(chunk)
        if self.cap is not None and self.seen > self.cap:
            raise self.failures.oversized(self.cap)

    def check_deadline(self) -> None:
        if self.deadline is not None and self.clock.now() >= self.deadline:
            raise self.failures.deadline_error("while the response body was read")


def _raise(watch: Watch, exc: httpx.TransportError) -> NoReturn:
    error = watch.failures.transport_error(exc, True)
    if error is exc:
        raise exc
    raise error from exc


async def read_async(iterator: AsyncIterator[bytes], watch: Watch) -> bytes | None:
    """The next chunk (``None`` at the end), within the deadline, errors translated."""
    remaining = watch.remaining()
    try:
        if remaining is None:
            return await iterator.__anext__()
        with anyio.move_on_after(remaining):
            return await iterator.__anext__()
    except StopAsyncIteration:
        return None
    except httpx.TransportError as exc:
        _raise(watch, exc)
    # Only a cancellation by the scope itself ends up here.
    raise watch.failures.deadline_error("while the response body was read")


def read_sync(iterator: Iterator[bytes], watch: Watch) -> bytes | None:
    try:
        chunk = next(iterator)
    except StopIteration:
        return None
    except httpx.TransportError as exc:
        _raise(watch, exc)
    watch.check_deadline()
    return chunk


class AsyncBody(httpx.AsyncByteStream):
    """A response body passed through as it arrives: ``prefix`` first (chunks already read and
    counted), then the rest of ``iterator`` over ``source``."""

    def __init__(self, source: httpx.AsyncByteStream, watch: Watch,
                 iterator: AsyncIterator[bytes] | None = None,
                 prefix: tuple[bytes, ...] = ()) -> None:
        self._source = source
        self._iterator = iterator
        self._prefix = prefix
        self._watch = watch

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for kept in self._prefix:
            yield kept
        iterator = self._iterator or self._source.__aiter__()
        while (chunk := await read_async(iterator, self._watch)) is not None:
            self._watch.count(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._source.aclose()


class SyncBody(httpx.SyncByteStream):
    """The sync twin of :class:`AsyncBody`."""

    def __init__(self, source: httpx.SyncByteStream, watch: Watch,
                 iterator: Iterator[bytes] | None = None, prefix: tuple[bytes, ...] = ()) -> None:
        self._source = source
        self._iterator = iterator
        self._prefix = prefix
        self._watch = watch

    def __iter__(self) -> Iterator[bytes]:
        yield from self._prefix
        iterator = self._iterator or iter(self._source)
        while (chunk := read_sync(iterator, self._watch)) is not None:
            self._watch.count(chunk)
            yield chunk

    def close(self) -> None:
        self._source.close()


class Tape:
    """A streamed request body, recorded as it is sent, up to ``limit`` bytes (0: not at all).

    The first attempt streams ``source`` through; a later one gets the recorded bytes, or the
    untouched source if no attempt had started reading it. :attr:`replayable` says whether a
    later attempt can send the body at all.
    """

    __slots__ = ("_chunks", "complete", "limit", "overflow", "size", "source", "started")

    def __init__(self, source: httpx.SyncByteStream | httpx.AsyncByteStream, limit: int) -> None:
        self.source = source
        self.limit = limit
        self._chunks: list[bytes] = []
        self.size = 0
        self.started = False
        self.complete = False
        self.overflow = limit <= 0

    @property
    def replayable(self) -> bool:
        return not self.started or (self.complete and not self.overflow)

    def record(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if not self.overflow:
            if self.size > self.limit:
                self.overflow = True
                self._chunks.clear()  # no use keeping a part of it
            else:
                self._chunks.append(chunk)

    def stream(self) -> httpx.SyncByteStream | httpx.AsyncByteStream:
        """The stream the next attempt sends (only when :attr:`replayable`)."""
        if self.started:
            return httpx.ByteStream(b"".join(self._chunks))
        if isinstance(self.source, httpx.AsyncByteStream) and isinstance(self.source,
                                                                         httpx.SyncByteStream):
            return _BothTaped(self)
        if isinstance(self.source, httpx.AsyncByteStream):
            return _AsyncTaped(self)
        return _SyncTaped(self)


class _AsyncTaped(httpx.AsyncByteStream):
    def __init__(self, tape: Tape) -> None:
        self._tape = tape

    async def __aiter__(self) -> AsyncIterator[bytes]:
        tape = self._tape
        tape.started = True
        source = tape.source
        assert isinstance(source, httpx.AsyncByteStream)
        async for chunk in source:
            tape.record(chunk)
            yield chunk
        tape.complete = True

    async def aclose(self) -> None:
        source = self._tape.source
        assert isinstance(source, httpx.AsyncByteStream)
        await source.aclose()


class _SyncTaped(httpx.SyncByteStream):
    def __init__(self, tape: Tape) -> None:
        self._tape = tape

    def __iter__(self) -> Iterator[bytes]:
        tape = self._tape
        tape.started = True
        source = tape.source
        assert isinstance(source, httpx.SyncByteStream)
        for chunk in source:
            tape.record(chunk)
            yield chunk
        tape.complete = True

    def close(self) -> None:
        source = self._tape.source
        assert isinstance(source, httpx.SyncByteStream)
        source.close()


class _BothTaped(_AsyncTaped, _SyncTaped):
    """For a source that is both (httpx's multipart streams): whichever side the inner uses."""
