"""What the optional pyreqwest backend needs beyond the shared suite (issue 16 §3).

The shared loopback suite (test_http_client, test_http_wire) runs on pyreqwest too. Here: trust
with a real CA chain (rustls refuses the shared suite's self-signed certificate, so that test is on
the documented exclusion list), the environment that reqwest's verifier would read even with
``trust_env=False``, and the lazy, optional import.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import LoopbackServer

from egress.errors import ConfigurationError, TLSVerificationError
from egress.http import ApiClient


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
