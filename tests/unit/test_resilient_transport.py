"""ResilientTransport keeps httpx's contract and adds only resilience (issue 14).

In-memory (``httpx.MockTransport``); trio runs through ``trio.run``. Real sockets are in
tests/integration/test_resilient_transport_sockets.py, httpx's own suite in test_httpx_suite.py.
"""

from __future__ import annotations

import datetime
import pickle
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import trio

from egress import Pipeline, Retry
from egress.errors import (
    AttemptTimeoutError,
    CircuitOpenError,
    ConfigurationError,
    EgressError,
    TransportError,
    UnsafeRequestError,
)
from egress.http import ResilientTransport, retry_on
from egress.policies import Backoff, Jitter, attempts
from egress.policies.breaker import BreakerRegistry, CountWindow
from egress.testing import FakeClock

NO_WAIT = Backoff(initial=0.0, cap=0.0)


def fast() -> Pipeline:
    return Pipeline(Retry(on=retry_on(), backoff=NO_WAIT))


def scripted(*outcomes: Any) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """Answers (a status or an exception) in turn, then 200s."""
    seen: list[httpx.Request] = []
    queue = list(outcomes)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        outcome = queue.pop(0) if queue else 200
        if isinstance(outcome, BaseException):
            raise outcome
        return httpx.Response(outcome, json={"n": len(seen)})

    return httpx.MockTransport(handler), seen


def on_trio(fn: Callable[[], Any]) -> Any:
    return trio.run(fn)


# -- trio, and bugs that stay bugs --------------------------------------------------------------


def test_requests_work_on_trio() -> None:
    inner, seen = scripted(503, httpx.ReadError("reset"), 200)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=ResilientTransport(inner,
                                                                  pipeline=fast())) as client:
            return await client.get("https://api.example.com/x")

    assert on_trio(main).status_code == 200 and len(seen) == 3


def test_the_default_pipeline_sleeps_on_trio() -> None:
    inner, seen = scripted(503, 200)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=ResilientTransport(inner)) as client:
            return await client.get("https://api.example.com/x")

    assert on_trio(main).status_code == 200 and len(seen) == 2


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_a_bug_in_the_inner_transport_surfaces_as_itself_once(library: str) -> None:
    inner, seen = scripted(RuntimeError("a bug"))

    async def main() -> None:
        async with httpx.AsyncClient(transport=ResilientTransport(inner,
                                                                  pipeline=fast())) as client:
            await client.get("https://api.example.com/x")

    with pytest.raises(RuntimeError, match="a bug") as caught:
        anyio.run(main, backend=library)
    assert not isinstance(caught.value, EgressError)
    assert len(seen) == 1


# -- responses come back unread and streaming ---------------------------------------------------


async def test_client_stream_yields_the_first_chunk_before_the_body_ends() -> None:
    first_seen = anyio.Event()

    class Feed(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"first"
            await first_seen.wait()  # the rest only once the caller had the first chunk
            yield b"second"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Feed())

    transport = ResilientTransport(httpx.MockTransport(handler), pipeline=fast())
    chunks = []
    with anyio.fail_after(10):  # a transport that reads the body first never gets here
        async with httpx.AsyncClient(transport=transport) as client, \
                client.stream("GET", "https://api.example.com/feed") as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                first_seen.set()
    assert chunks == [b"first", b"second"]


def test_responses_come_back_unread_as_from_httpx() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Transfer-Encoding": "chunked"},
                              stream=httpx.ByteStream(b"hello"))

    with httpx.Client(transport=ResilientTransport(httpx.MockTransport(handler),
                                                   pipeline=fast())) as client:
        response = client.get("https://api.example.com/x")
        assert response.content == b"hello"
        assert isinstance(response.elapsed, datetime.timedelta)
        # a chunked answer gets no Content-Length beside it
        assert "content-length" not in response.headers
        with client.stream("GET", "https://api.example.com/x") as streamed:
            with pytest.raises(httpx.ResponseNotRead):
                streamed.content  # noqa: B018
            assert b"".join(streamed.iter_raw()) == b"hello"


def test_a_retryable_status_that_keeps_failing_is_returned_readable() -> None:
    inner, seen = scripted(503, 503, 503)
    with httpx.Client(transport=ResilientTransport(inner, pipeline=fast())) as client, \
            client.stream("GET", "https://api.example.com/x") as response:
        assert response.status_code == 503 and len(seen) == 3
        assert response.read() == b'{"n":3}'


# -- context managers ---------------------------------------------------------------------------


class Recorder(httpx.MockTransport):
    def __init__(self) -> None:
        super().__init__(lambda request: httpx.Response(200))
        self.events: list[str] = []

    def __enter__(self) -> Recorder:
        self.events.append("enter")
        return self

    def __exit__(self, *args: object) -> None:
        self.events.append("exit")

    async def __aenter__(self) -> Recorder:
        self.events.append("aenter")
        return self

    async def __aexit__(self, *args: object) -> None:
        self.events.append("aexit")


async def test_context_managers_reach_the_inner_transport() -> None:
    inner = Recorder()
    with httpx.Client(transport=ResilientTransport(inner)):
        pass
    async with httpx.AsyncClient(transport=ResilientTransport(inner)):
        pass
    assert inner.events == ["enter", "exit", "aenter", "aexit"]


# -- errors keep both contracts -----------------------------------------------------------------


async def test_errors_are_httpx_errors_with_the_egress_facts() -> None:
    inner, seen = scripted(httpx.ConnectError("refused"), httpx.ConnectError("refused"),
                           httpx.ConnectError("refused"))
    async with httpx.AsyncClient(transport=ResilientTransport(inner,
                                                              pipeline=fast())) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.post("https://user:pa55@api.example.com/x?token=t0k", json={})
    error = caught.value
    assert isinstance(error, TransportError) and error.sent is False and len(seen) == 3
    assert error.replay_safe is False  # a POST without a key: retried only as nothing was sent
    assert error.request.url.path == "/x"
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert any("egress.Retry" in note for note in error.__notes__)
    assert error.request_info is not None
    assert "pa55" not in repr(error.request_info) and "t0k" not in str(error)
    assert type(pickle.loads(pickle.dumps(error))) is type(error)


def test_timeouts_and_refusals_keep_their_httpx_types() -> None:
    inner, _ = scripted(*[httpx.ReadTimeout("slow")] * 3)
    with httpx.Client(transport=ResilientTransport(inner, pipeline=fast())) as client:
        with pytest.raises(httpx.ReadTimeout) as timeout:
            client.get("https://api.example.com/x")
        assert isinstance(timeout.value, AttemptTimeoutError) and timeout.value.sent is True
    with httpx.Client(transport=ResilientTransport()) as client, \
            pytest.raises(httpx.UnsupportedProtocol) as refused:
        client.get("ftp://api.example.com/x")
    assert isinstance(refused.value, UnsafeRequestError)


def test_an_open_breaker_is_an_httpx_transport_error_too() -> None:
    inner, seen = scripted(*[500] * 10)
    breakers = BreakerRegistry(minimum_calls=2, window=CountWindow(2))
    transport = ResilientTransport(inner, pipeline=Pipeline(), breakers=breakers)
    with httpx.Client(transport=transport) as client:
        for _ in range(2):
            client.get("https://down.example.com/x")
        with pytest.raises(httpx.TransportError) as caught:
            client.get("https://down.example.com/x")
        assert isinstance(caught.value, CircuitOpenError) and caught.value.request is not None
        assert len(seen) == 2
        # per origin: another host has its own breaker
        assert client.get("https://up.example.com/x").status_code == 500 and len(seen) == 3


# -- per-origin budgets -------------------------------------------------------------------------


def test_retry_budgets_are_per_origin(clock: FakeClock) -> None:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        calls[host] = calls.get(host, 0) + 1
        if host == "down.example.com" or calls[host] == 1:
            raise httpx.ReadError("reset")
        return httpx.Response(200)

    with httpx.Client(transport=ResilientTransport(httpx.MockTransport(handler),
                                                   clock=clock)) as client:
        for _ in range(60):
            with pytest.raises((httpx.ReadError, EgressError)):
                client.get("https://down.example.com/x")
        assert calls["down.example.com"] < 60 * 3  # its budget ran out
        assert client.get("https://up.example.com/x").status_code == 200
    assert calls["up.example.com"] == 2  # still retried: its own budget


# -- time ---------------------------------------------------------------------------------------


def _refusing(clock: FakeClock, **settings: Any) -> tuple[ResilientTransport, list[float]]:
    starts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        starts.append(clock.now())
        raise httpx.ConnectError("refused")

    slow_backoff = Backoff(initial=0.2, multiplier=2.0, cap=10.0, jitter=Jitter.NONE)
    pipeline = Pipeline(Retry(on=retry_on(), stop=attempts(10), backoff=slow_backoff),
                        clock=clock)
    return ResilientTransport(httpx.MockTransport(handler), pipeline=pipeline,
                              **settings), starts


def test_httpx_timeout_bounds_the_whole_request(clock: FakeClock) -> None:
    transport, starts = _refusing(clock)
    with httpx.Client(transport=transport, timeout=0.5) as client, \
            pytest.raises((httpx.ConnectError, EgressError)) as caught:
        client.get("https://api.example.com/x")
    # attempts at 0 and 0.2 s; the next would start at 0.6 s, after the 0.5 s timeout
    assert [round(start - starts[0], 3) for start in starts] == [0.0, 0.2]
    assert isinstance(caught.value, httpx.ConnectError)
    assert any("deadline" in note for note in caught.value.__notes__)


def test_a_deadline_replaces_httpx_timeout_as_the_bound(clock: FakeClock) -> None:
    transport, starts = _refusing(clock, deadline=2.0)
    with httpx.Client(transport=transport, timeout=0.5) as client, \
            pytest.raises(httpx.ConnectError):
        client.get("https://api.example.com/x")
    assert [round(start - starts[0], 3) for start in starts] == [0.0, 0.2, 0.6, 1.4]


def test_an_unbounded_httpx_timeout_stays_unbounded_without_a_deadline() -> None:
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200)

    timeout = httpx.Timeout(5.0, read=None)  # a long poll: wait for the answer as long as it takes
    with httpx.Client(transport=ResilientTransport(httpx.MockTransport(handler)),
                      timeout=timeout) as client:
        client.get("https://api.example.com/poll")
    with httpx.Client(transport=ResilientTransport(httpx.MockTransport(handler), deadline=2.0),
                      timeout=timeout) as client:
        client.get("https://api.example.com/poll")
    assert seen[0]["read"] is None and 4.0 < seen[0]["connect"] <= 5.0  # type: ignore[operator]
    assert all(0 < value <= 2.0 for value in seen[1].values())  # type: ignore[operator]


# -- request bodies -----------------------------------------------------------------------------


async def test_a_streamed_request_body_is_streamed_not_read_first() -> None:
    got_first = anyio.Event()
    received: list[bytes] = []

    async def upload() -> AsyncIterator[bytes]:
        yield b"part-1;"
        await got_first.wait()  # only once the transport below had the first part
        yield b"part-2"

    class Receiver(httpx.AsyncBaseTransport):  # MockTransport would read the body first
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            with pytest.raises(httpx.RequestNotRead):
                request.content  # noqa: B018
            assert isinstance(request.stream, httpx.AsyncByteStream)
            async for chunk in request.stream:
                received.append(chunk)
                got_first.set()
            return httpx.Response(200)

    transport = ResilientTransport(Receiver(), pipeline=fast())
    with anyio.fail_after(10):
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post("https://api.example.com/upload", content=upload())
    assert response.status_code == 200 and received == [b"part-1;", b"part-2"]


class Consumer(httpx.BaseTransport):
    """Sends the body as a real transport does: by iterating the stream (no request.read())."""

    def __init__(self, *outcomes: Any) -> None:
        self.bodies: list[bytes] = []
        self.queue = list(outcomes)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        self.bodies.append(b"".join(request.stream))
        outcome = self.queue.pop(0) if self.queue else 200
        if isinstance(outcome, BaseException):
            raise outcome
        return httpx.Response(outcome)


def _consuming(*outcomes: Any) -> tuple[Consumer, list[bytes]]:
    inner = Consumer(*outcomes)
    return inner, inner.bodies


def test_a_replay_safe_streamed_body_is_recorded_while_sent_and_replayed() -> None:
    produced: list[int] = []

    def upload() -> Iterator[bytes]:
        produced.append(1)
        yield b"a" * 10
        yield b"b" * 10

    inner, bodies = _consuming(httpx.ReadError("reset"), 503)
    with httpx.Client(transport=ResilientTransport(inner, pipeline=fast())) as client:
        response = client.put("https://api.example.com/doc", content=upload())
    assert response.status_code == 200
    assert bodies == [b"a" * 10 + b"b" * 10] * 3 and produced == [1]


def test_a_streamed_body_over_the_replay_limit_ends_the_retries() -> None:
    def upload() -> Iterator[bytes]:
        yield b"x" * 10

    inner, bodies = _consuming(httpx.ReadError("reset"))
    transport = ResilientTransport(inner, pipeline=fast(), replay_limit=4)
    with httpx.Client(transport=transport) as client:
        with pytest.raises(httpx.ReadError) as caught:
            client.put("https://api.example.com/doc", content=upload())
        assert len(bodies) == 1 and caught.value.replay_safe is False  # type: ignore[attr-defined]
        assert any("over replay_limit" in note for note in caught.value.__notes__)
        # a status: the answer itself is returned, since the body cannot be sent again
        inner2, bodies2 = _consuming(503)
    transport = ResilientTransport(inner2, pipeline=fast(), replay_limit=4)
    with httpx.Client(transport=transport) as client:
        assert client.put("https://api.example.com/doc", content=upload()).status_code == 503
    assert len(bodies2) == 1


def test_an_unsafe_streamed_body_is_never_recorded_but_retried_if_never_sent() -> None:
    def upload() -> Iterator[bytes]:
        yield b"x" * 10

    refused_first = [httpx.ConnectError("refused")]

    def handler(request: httpx.Request) -> httpx.Response:
        if refused_first:
            raise refused_first.pop()
        return httpx.Response(200, content=request.read())

    with httpx.Client(transport=ResilientTransport(httpx.MockTransport(handler),
                                                   pipeline=fast())) as client:
        response = client.post("https://api.example.com/x", content=upload())
    assert response.content == b"x" * 10


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"deadline": 0}, {"deadline": float("nan")}, {"max_response_bytes": 0},
    {"max_response_bytes": 1.5}, {"replay_limit": -1}, {"breakers": object()},
    {"pipeline": Pipeline(), "retry_hook": lambda exc, info: None},
])
def test_bad_settings_fail_when_built(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ResilientTransport(**settings)
