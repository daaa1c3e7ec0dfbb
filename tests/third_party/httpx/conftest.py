"""egress's harness around httpx 0.28.1's own tests (the files under tests/ are unmodified).

``--egress-wrap`` chooses what runs through :class:`egress.http.ResilientTransport`:

* ``off``: nothing (plain httpx, the baseline);
* ``default``: the transport every client builds for itself (``transport=None``);
* ``all``: that, and every transport a test hands to a client (``transport=``, ``mounts=``),
  except in the few tests that inspect the mounted transport object itself (see below).

``--egress-backends`` chooses the async libraries the ``anyio`` tests run on (httpx's own
settings run asyncio only; egress must also work on trio).
"""

from __future__ import annotations

import functools
import socket
import typing
from typing import Any

import httpx
import pytest
import uvicorn.config

from egress.http import ResilientTransport

_STATE = {"everything": True}  # False: wrap default transports only (see _IDENTITY_TESTS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--egress-wrap", choices=("off", "default", "all"), default="all")
    parser.addoption("--egress-backends", default="asyncio,trio")
    parser.addoption("--egress-identity-xfail", action="store_true")


def _wrap(transport: Any) -> Any:
    if transport is None or isinstance(transport, ResilientTransport):
        return transport
    return ResilientTransport(transport)


def _patch(client_class: Any) -> None:
    init_transport = client_class._init_transport
    init = client_class.__init__

    @functools.wraps(init_transport)
    def _init_transport(self: Any, *args: Any, transport: Any = None, **kwargs: Any) -> Any:
        built = init_transport(self, *args, transport=transport, **kwargs)
        return _wrap(built) if transport is None or _STATE["everything"] else built

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, mounts: Any = None, **kwargs: Any) -> None:
        if _STATE["everything"] and mounts is not None:
            mounts = {pattern: _wrap(transport) for pattern, transport in mounts.items()}
        init(self, *args, mounts=mounts, **kwargs)

    client_class._init_transport = _init_transport
    client_class.__init__ = __init__


def _free_port_for_the_test_server() -> None:
    """httpx's ``server`` fixture serves on uvicorn's default port, 8000: on a shared machine that
    port may be taken. Its default becomes a free loopback port (the fixture reads the port back
    from the config, so its URLs follow)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    init = uvicorn.config.Config.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("port", port)
        init(self, *args, **kwargs)

    uvicorn.config.Config.__init__ = __init__  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    _free_port_for_the_test_server()
    config.addinivalue_line("markers", "egress_default_only: wrap default transports only")
    mode = config.getoption("--egress-wrap")
    _STATE["everything"] = mode == "all"
    if mode != "off":
        for client_class in (httpx.Client, httpx.AsyncClient):
            _patch(client_class)


def pytest_report_header(config: pytest.Config) -> str:
    return (f"egress: --egress-wrap={config.getoption('--egress-wrap')} "
            f"--egress-backends={config.getoption('--egress-backends')}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # anyio's plugin parametrizes its own ``anyio_backend`` fixture (asyncio only): the fixture
    # below replaces it, and this replaces its single parameter with ours.
    if "anyio_backend" in metafunc.fixturenames:
        backends = metafunc.config.getoption("--egress-backends").split(",")
        metafunc.parametrize("egress_backend", backends, scope="module")


@pytest.fixture(scope="module")
def anyio_backend(egress_backend: str) -> str:
    return egress_backend


# The one deliberate difference: a wrapper is not the object it wraps. These tests look up the
# transport a client mounted (``client._transport_for_url``, private) and inspect it (``is``,
# ``isinstance(..., httpx.HTTPTransport)``, its private ``_pool``): wrapping the transports they
# hand in must fail them. With ``--egress-wrap=all`` they run with the default transports wrapped
# only (``default``), and ``--egress-identity-xfail`` shows them failing when wrapped too.
_IDENTITY_TESTS = ("test_proxies.py::test_transport_for_request",
                   "test_proxies.py::test_proxy_with_mounts")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--egress-wrap") != "all":
        return
    for item in items:
        if not any(name in item.nodeid for name in _IDENTITY_TESTS):
            continue
        params = getattr(item, "callspec", None)
        if params is not None and params.params.get("expected") is None:
            continue  # no proxy: the client's own transport, which the test compares to itself
        if config.getoption("--egress-identity-xfail"):
            item.add_marker(pytest.mark.xfail(
                strict=True, reason="inspects the mounted transport object; a wrapper is not it"))
        else:
            item.add_marker(pytest.mark.egress_default_only)


@pytest.fixture(autouse=True)
def _egress_default_only(request: pytest.FixtureRequest) -> typing.Iterator[None]:
    if request.node.get_closest_marker("egress_default_only") is None:
        yield
        return
    _STATE["everything"] = False
    try:
        yield
    finally:
        _STATE["everything"] = True
