"""The dashboard as an ASGI application: the same page, snapshot and stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from egress.events import CircuitStateChanged
from egress.observability.dashboard import DashboardSink, asgi_app


def opened(sink: DashboardSink) -> None:
    sink.emit(CircuitStateChanged(operation="GET /v1/x?api_key=sk_live_51Hplanted", at=1.0,
                                  breaker="stripe", old="closed", new="open"))


async def test_page_and_snapshot_under_a_mount_prefix() -> None:
    sink = DashboardSink(stores=())
    opened(sink)
    transport = httpx.ASGITransport(app=asgi_app(sink), root_path="/ops")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/ops/")
        assert page.status_code == 200 and "EventSource" in page.text
        redirect = await client.get("/ops")
        assert redirect.status_code == 302 and redirect.headers["location"] == "/ops/"
        snap = (await client.get("/ops/status.json")).json()
        assert [(b["name"], b["state"]) for b in snap["breakers"]] == [("stripe", "open")]
        assert "sk_live" not in json.dumps(snap)
        assert (await client.get("/ops/nope")).status_code == 404


async def test_the_stream_sends_snapshots_until_the_client_leaves() -> None:
    sink = DashboardSink(stores=())
    opened(sink)
    sent: list[dict[str, Any]] = []
    leave = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if len([m for m in sent if m.get("more_body")]) == 2:
            leave.set()

    scope = {"type": "http", "path": "/events", "root_path": ""}
    await asyncio.wait_for(asyncio_app(sink)(scope, receive, send), 5)
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream") in sent[0]["headers"]
    chunks = [m["body"].decode() for m in sent[1:]]
    assert len(chunks) == 2 and all(c.startswith("data: {") for c in chunks)
    assert '"state": "open"' in chunks[0]


def asyncio_app(sink: DashboardSink) -> Any:
    return asgi_app(sink, interval=0.01)


async def test_the_aiohttp_sub_app_serves_under_its_prefix() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from egress.observability.dashboard import dashboard_app

    sink = DashboardSink(stores=())
    opened(sink)
    app = web.Application()
    app.add_subapp("/ops/", dashboard_app(sink, interval=0.01))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        page = await client.get("/ops/")
        assert page.status == 200 and "EventSource" in await page.text()
        snap = await (await client.get("/ops/status.json")).json()
        assert snap["breakers"][0]["state"] == "open"
        stream = await client.get("/ops/events")
        assert stream.headers["Content-Type"] == "text/event-stream"
        first = await stream.content.readline()
        assert first.startswith(b"data: {")
        stream.close()


async def test_the_snapshot_counts_payments_in_doubt() -> None:
    from egress.payments.idempotency import IdempotencyRecord, RecordState
    from egress.stores.idempotency_memory import MemoryIdempotencyStore

    records = MemoryIdempotencyStore()
    new = IdempotencyRecord.new("acct", "charge", "order-7", "fp", 1_700_000_000.0)
    await records.reserve(new)
    await records.replace(new.with_state(RecordState.UNKNOWN, new.updated_at),
                          expected_key=new.key)
    doubt = DashboardSink(idempotency=[records]).snapshot()["in_doubt"]
    assert doubt["count"] == 1
    assert [(d["operation"], d["reference"]) for d in doubt["records"]] == [("charge", "order-7")]


class _SlowStore:
    """An idempotency store whose read blocks until the event loop lets it go: if the dashboard
    read it on the loop's own thread, nothing could let it go (it gives up after 5 s)."""

    def __init__(self) -> None:
        import threading
        self.go = threading.Event()
        self.released_by_the_loop: bool | None = None

    def in_doubt_sync(self, limit: int) -> tuple[int, list[Any]]:
        self.released_by_the_loop = self.go.wait(5)
        return 0, []


async def test_a_slow_store_does_not_block_the_event_loop_serving_the_page() -> None:
    store = _SlowStore()
    sink = DashboardSink(stores=(), idempotency=(store,))
    transport = httpx.ASGITransport(app=asgi_app(sink))

    async def let_go() -> None:  # runs only if the loop is free while the store is read
        await asyncio.sleep(0.05)
        store.go.set()

    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        releaser = asyncio.ensure_future(let_go())
        snap = (await client.get("/status.json")).json()
        await releaser
    assert store.released_by_the_loop is True
    assert snap["in_doubt"] is not None
