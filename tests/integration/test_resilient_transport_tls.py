"""ResilientTransport and a refused certificate: permanent, never retried (as ApiClient's httpx
backend already judged it; the two now share one check, http/_trust.py)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import anyio
import httpx
import pytest
import trustme

from egress import Pipeline, Retry
from egress.errors import TLSVerificationError
from egress.http import ResilientTransport, retry_on
from egress.policies import Backoff


class UntrustedServer:
    """A loopback TLS server whose certificate no default trust store accepts; counts the
    connections it was offered (one per attempt)."""

    def __init__(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
        self._context = context
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.url = f"https://127.0.0.1:{self._socket.getsockname()[1]}/"
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(5.0)
            try:
                self._context.wrap_socket(conn, server_side=True).close()
            except (OSError, ssl.SSLError):
                conn.close()  # the client refused the certificate mid-handshake

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def server() -> Iterator[UntrustedServer]:
    srv = UntrustedServer()
    yield srv
    srv.stop()


def transport() -> ResilientTransport:
    return ResilientTransport(pipeline=Pipeline(Retry(
        on=retry_on(), backoff=Backoff(initial=0.001, cap=0.005))))


@pytest.mark.parametrize("library", ["asyncio", "sync"])
def test_a_refused_certificate_is_not_retried(server: UntrustedServer, library: str) -> None:
    def fetch() -> None:
        if library == "sync":
            with httpx.Client(transport=transport()) as client:
                client.get(server.url)
        else:
            async def main() -> None:
                async with httpx.AsyncClient(transport=transport()) as client:
                    await client.get(server.url)

            anyio.run(main)

    with pytest.raises(httpx.ConnectError) as info:  # httpx's contract holds
        fetch()
    assert isinstance(info.value, TLSVerificationError)  # and egress's: permanent, sent=False
    assert info.value.permanent and info.value.sent is False
    assert server.connections == 1
