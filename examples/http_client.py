"""ApiClient against a small local API (aiohttp.web on 127.0.0.1), on real time (under 1 s).

    uv run python examples/http_client.py

Shows: a retried 503 with Retry-After, a keyed POST whose retry reuses the key and the bytes, a
typed StatusError with the provider's error body, a refused unsafe path, and the sync twin.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from aiohttp import web

from egress import Secret
from egress.errors import StatusError, UnsafeRequestError
from egress.events import CallbackSink, Event
from egress.http import ApiClient, BearerAuth, RequestInfo, SyncApiClient

seen: Counter[str] = Counter()
keys: list[str] = []


async def quote(request: web.Request) -> web.Response:
    seen["quote"] += 1
    if seen["quote"] == 1:  # busy once, and says when to come back
        return web.json_response({"error": "busy"}, status=503, headers={"Retry-After": "0"})
    return web.json_response({"parcel": request.match_info["parcel"], "price": 420})


async def charge(request: web.Request) -> web.Response:
    keys.append(request.headers.get("Idempotency-Key", ""))
    if len(keys) == 1:  # the first attempt "times out" on the server side
        return web.json_response({"error": "try again"}, status=502)
    form = await request.post()
    return web.json_response({"id": "ch_1", "amount": int(str(form["amount"]))}, status=201)


async def missing(request: web.Request) -> web.Response:
    return web.json_response({"error": {"code": "resource_missing", "message": "No such parcel"}},
                             status=404, headers={"Request-Id": "req_42"})


def provider_rules(error: Exception, info: RequestInfo) -> bool | None:
    """An adapter's hook: never retry when the server says so; otherwise the defaults."""
    if isinstance(error, StatusError) and error.header("X-Should-Retry") == "false":
        return False
    return None


def show(event: Event) -> None:
    print(f"  event {event.kind}: {event}")


async def main(base_url: str) -> None:
    async with ApiClient(base_url + "/v1", auth=BearerAuth(Secret("sk_test_example_key")),
                         retry_hook=provider_rules, sink=CallbackSink(show),
                         auto_idempotency_key=True,  # this upstream honours Idempotency-Key
                         ) as client:
        resp = await client.get("/quotes/{parcel}", path_params={"parcel": "p/42"}, deadline=5.0)
        print("quote:", resp.json(), "after", seen["quote"], "requests")

        resp = await client.post("/charges", form={"amount": "2000", "currency": "eur"})
        print("charge:", resp.json(), "keys sent:", len(keys), "distinct:", len(set(keys)))

        try:
            await client.get("/parcels/{id}", path_params={"id": "nope"})
        except StatusError as error:
            body = error.response.json()  # type: ignore[attr-defined]
            print(f"404: request id {error.request_id}, code {body['error']['code']}")

        try:
            await client.get("https://evil.example/steal")
        except UnsafeRequestError as error:
            print("refused before any I/O:", error)

    with SyncApiClient(base_url + "/v1") as sync_client:
        print("sync quote:", sync_client.get("/quotes/{parcel}",
                                             path_params={"parcel": "p7"}).json())


def serve() -> tuple[str, asyncio.AbstractEventLoop]:
    app = web.Application()
    app.router.add_get("/v1/quotes/{parcel}", quote)
    app.router.add_post("/v1/charges", charge)
    app.router.add_get("/v1/parcels/{id}", missing)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", loop


if __name__ == "__main__":
    url, server_loop = serve()
    asyncio.run(main(url))
    server_loop.call_soon_threadsafe(server_loop.stop)
