"""What the optional pyreqwest backend needs beyond the shared suite (issue 16 §3).

The shared loopback suite (test_http_client, test_http_wire) runs on pyreqwest too. Here: trust
with a real CA chain (rustls refuses the shared suite's self-signed certificate, so that test is on
the documented exclusion list), the environment that reqwest's verifier would read even with
``trust_env=False``, and the lazy, optional import.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _loopback import LoopbackServer

from egress._clock import SYSTEM_CLOCK
from egress.errors import AttemptTimeoutError, ConfigurationError, TLSVerificationError
from egress.http import ApiClient, Timeouts
from egress.http._pyreqwest import _BACKSTOP, _WATCH_EVERY
from egress.http._wire import WireRequest


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA and a server certificate for 127.0.0.1 issued by it (made by openssl)."""
    d = tmp_path_factory.mktemp("chain")
    files = {name: str(d / f"{name}.pem") for name in ("ca", "ca_key", "leaf", "leaf_key", "csr")}
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n")
    for command in (
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", files["ca_key"],
         "-out", files["ca"], "-days", "2", "-subj", "/CN=egress test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign"],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", files["leaf_key"],
         "-out", files["csr"], "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", files["csr"], "-CA", files["ca"], "-CAkey",
         files["ca_key"], "-CAcreateserial", "-out", files["leaf"], "-days", "2",
         "-extfile", str(ext)],
    ):
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    return files


@pytest.fixture(scope="module")
def tls_server(chain: dict[str, str]) -> Iterator[LoopbackServer]:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain["leaf"], chain["leaf_key"])
    srv = LoopbackServer(ssl_context=context).start()
    yield srv
    srv.stop()


async def test_a_certificate_from_the_given_ca_is_trusted(
        chain: dict[str, str], tls_server: LoopbackServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    monkeypatch.setenv("SSLKEYLOGFILE", str(tmp_path / "keys.log"))
    # pointing at the platform's own store (common: images set it) adds nothing: allowed
    monkeypatch.setenv("SSL_CERT_FILE", ssl.get_default_verify_paths().openssl_cafile)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    async with ApiClient(tls_server.url, backend="pyreqwest", verify=chain["ca"]) as api:
        assert (await api.get("/ok")).status_code == 200
    assert not (tmp_path / "keys.log").exists()  # reqwest logs no TLS keys


async def test_without_the_ca_the_certificate_is_refused(tls_server: LoopbackServer) -> None:
    async with ApiClient(tls_server.url, backend="pyreqwest") as api:
        with pytest.raises(TLSVerificationError):
            await api.get("/ok")


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
async def test_the_environment_cannot_add_trust(
        chain: dict[str, str], tls_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, variable: str) -> None:
    # reqwest's verifier would trust this CA from the environment whatever it is told: without
    # the refusal the call succeeds.
    if variable == "SSL_CERT_FILE":
        monkeypatch.setenv(variable, chain["ca"])
    else:
        folder = tmp_path / "certs"
        folder.mkdir()
        (folder / "ca.pem").write_bytes(Path(chain["ca"]).read_bytes())
        subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True,
                       timeout=60)
        monkeypatch.setenv(variable, str(folder))
    tls_server.clear()
    async with ApiClient(tls_server.url, backend="pyreqwest") as api:
        with pytest.raises(TLSVerificationError, match=variable) as caught:
            await api.get("/ok")
    assert caught.value.sent is False
    assert tls_server.requests == []


async def test_with_trust_env_the_environment_decides(
        chain: dict[str, str], tls_server: LoopbackServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", chain["ca"])
    async with ApiClient(tls_server.url, backend="pyreqwest", trust_env=True) as api:
        assert (await api.get("/ok")).status_code == 200


def test_missing_pyreqwest_is_a_clear_configuration_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyreqwest.client", None)  # import fails as if absent
    with pytest.raises(ConfigurationError, match=r"egress\[pyreqwest\]"):
        ApiClient("http://127.0.0.1:1", backend="pyreqwest")


def test_pyreqwest_is_imported_only_when_chosen() -> None:
    code = ("import sys\nfrom egress.http import ApiClient\n"
            "ApiClient('http://127.0.0.1:1')\n"
            "assert 'pyreqwest' not in sys.modules, 'imported'\n"
            "ApiClient('http://127.0.0.1:1', backend='pyreqwest')\n"
            "assert 'pyreqwest' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class _Hanging:
    """A stand-in for reqwest's client whose requests never answer and ignore their timeout:
    what the watchdog is there for (reqwest's own timeout normally ends them first)."""

    def __init__(self) -> None:
        self.entered = 0

    def request(self, method: str, url: str) -> _Hanging:
        return self

    def headers(self, headers: object) -> _Hanging:
        return self

    def timeout(self, timeout: object) -> _Hanging:
        return self

    def build_streamed(self) -> _Hanging:
        return self

    async def __aenter__(self) -> None:
        self.entered += 1
        await asyncio.Event().wait()  # forever

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def close(self) -> None:
        return None


def _hanging_wire(api: ApiClient) -> Any:
    wire = api._wire
    wire._client = _Hanging()
    return wire


async def test_the_watchdog_ends_a_request_that_reqwest_lets_hang() -> None:
    async with ApiClient("http://127.0.0.1:1", backend="pyreqwest") as api:
        wire = _hanging_wire(api)
        limits = Timeouts(total=0.2).limits(SYSTEM_CLOCK.now(), None)
        started = time.monotonic()
        with pytest.raises(AttemptTimeoutError) as caught:
            async with asyncio.timeout(5):  # without the watchdog: asyncio's error, not a hang
                await wire.send(WireRequest("GET", "http://127.0.0.1:1/x", {}, None, limits))
        took = time.monotonic() - started
        assert caught.value.sent is True
        assert wire._client.entered == 1
        # its limit, the backstop and at most one look later (plus room for a loaded machine)
        assert 0.2 <= took < 0.2 + _BACKSTOP + _WATCH_EVERY + 1.0
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the watchdog's cancel is undone
        assert not wire._due and not wire._overdue
        await asyncio.sleep(_WATCH_EVERY * 2)
        assert wire._watch is None  # nothing in flight: no more looks


async def test_the_callers_own_cancellation_is_not_turned_into_a_timeout() -> None:
    async with ApiClient("http://127.0.0.1:1", backend="pyreqwest") as api:
        wire = _hanging_wire(api)
        limits = Timeouts(total=30.0).limits(SYSTEM_CLOCK.now(), None)
        with pytest.raises(TimeoutError) as caught:
            async with asyncio.timeout(0.1):
                await wire.send(WireRequest("GET", "http://127.0.0.1:1/x", {}, None, limits))
        assert type(caught.value) is TimeoutError  # asyncio's, not egress's AttemptTimeoutError
        assert not wire._due and not wire._overdue


@pytest.fixture
def plain_server() -> Iterator[LoopbackServer]:
    srv = LoopbackServer().start()
    yield srv
    srv.stop()


async def test_parsed_urls_and_header_maps_are_reused_only_for_the_same_call_shape(
        plain_server: LoopbackServer) -> None:
    # The backend keeps parsed URLs and the map of a header dict sent twice in a row: each call
    # must still carry exactly its own URL and headers, whatever came before it.
    async with ApiClient(plain_server.url, backend="pyreqwest",
                         headers={"X-Default": "d"}) as client:
        calls: list[tuple[str, dict[str, str] | None, dict[str, Any]]] = [
            ("/a", None, {}), ("/a", None, {}), ("/a", None, {}),
            ("/b", {"X-Call": "1"}, {}), ("/a", None, {"q": "1"}), ("/a", None, {}),
            ("/b", {"X-Call": "2"}, {}), ("/b", {"X-Call": "3"}, {}), ("/a", None, {}),
        ]
        for path, headers, params in calls:
            await client.get(path, headers=headers, params=params or None)
    seen = [(r.path, r.headers.get("x-default"), r.headers.get("x-call"))
            for r in plain_server.requests]
    assert seen == [
        ("/a", "d", None), ("/a", "d", None), ("/a", "d", None),
        ("/b", "d", "1"), ("/a?q=1", "d", None), ("/a", "d", None),
        ("/b", "d", "2"), ("/b", "d", "3"), ("/a", "d", None),
    ]
