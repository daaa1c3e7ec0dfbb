"""The in-process servers stop without leaking a socket, even to a client connecting as they stop.

On CPython 3.11 a connection accepted in the loop turn before the server closes failed to be set
up and its socket was left to the garbage collector: an "unclosed transport" ResourceWarning at
whatever later test the collector ran in (seen once, under load, at the setup of a FakeStripe
test). Here the loop is starved on purpose so that the connection and the stop wait for it
together, which made every run leak before ``egress._serving.stop_accepting``.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
import warnings

from egress.observability.dashboard import DashboardSink, serve_dashboard
from egress.testing.fake_stripe import FakeStripe

STARVED = 0.2  # seconds the server's loop is kept busy while the client connects


def _resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


def test_the_dashboard_stops_cleanly_while_a_client_connects() -> None:
    for _ in range(3):
        server = serve_dashboard(DashboardSink())
        server._loop.call_soon_threadsafe(time.sleep, STARVED)  # its thread, starved
        time.sleep(STARVED / 10)
        with socket.create_connection(("127.0.0.1", server.port)) as client:
            client.sendall(b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                server.stop()  # queued behind the sleep, in the same turn as the accept
                gc.collect()
        assert _resource_warnings(caught) == []


def _connect_later(port: int, loop: asyncio.AbstractEventLoop, connected: asyncio.Future[None],
                   clients: list[socket.socket]) -> None:
    time.sleep(STARVED / 4)
    client = socket.create_connection(("127.0.0.1", port))
    client.sendall(b"GET /v1/payment_intents HTTP/1.1\r\nHost: x\r\n\r\n")
    clients.append(client)
    loop.call_soon_threadsafe(connected.set_result, None)


async def test_a_fake_stripe_on_the_test_loop_stops_cleanly_while_a_client_connects() -> None:
    for _ in range(3):
        fake = await FakeStripe().start_async()
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[None] = loop.create_future()
        clients: list[socket.socket] = []
        thread = threading.Thread(target=_connect_later,
                                  args=(fake.port, loop, connected, clients))
        thread.start()
        # The loop is blocked while the client connects: the next turn both accepts it and wakes
        # this test, which then stops the fake before the accepted connection is set up.
        time.sleep(STARVED)
        await connected
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            await fake.stop_async()
            thread.join(5)
            for client in clients:
                client.close()
            gc.collect()
        assert _resource_warnings(caught) == []
