"""Hostile requests, on every backend: what reaches the server is the same, or nothing does.

Each test pins one finding of a hostile look at the request side (paths, queries, headers,
bodies, methods, base URLs, deadlines): an input one backend refused, or sent as other bytes than
the rest, or that escaped as a bare built-in exception. The ``make`` fixture (aiohttp on its fast
and public paths, httpx async, pyreqwest, stdlib and httpx sync) comes from ``test_http_client``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
import test_http_client as _clients
from _loopback import LoopbackServer
from test_http_client import Api

from egress.errors import UnsafeRequestError

make, server, other = _clients.make, _clients.server, _clients.other  # the shared fixtures


# -- bare built-in exceptions: every bad input is an UnsafeRequestError, before any I/O ----------

DEEP: Any = []
for _ in range(sys.getrecursionlimit() + 100):
    DEEP = [DEEP]

BAD_CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "lone surrogate in the path": ("GET", "/x/\ud800", {}),
    "lone surrogate in a path parameter": ("GET", "/x/{id}", {"path_params": {"id": "\ud800"}}),
    "lone surrogate in a query value": ("GET", "/x", {"params": {"q": "\ud800"}}),
    "lone surrogate in a form value": ("POST", "/x", {"form": {"q": "\ud800"}}),
    "lone surrogate in json": ("POST", "/x", {"json": {"q": "\ud800"}}),
    "int past 4300 digits in a path parameter": ("GET", "/x/{id}",
                                                 {"path_params": {"id": 10**5000}}),
    "int past 4300 digits in a query": ("GET", "/x", {"params": {"n": 10**5000}}),
    "json nested past the recursion limit": ("POST", "/x", {"json": DEEP}),
    "params that are not pairs": ("GET", "/x", {"params": [("a",)]}),
    "params as a string": ("GET", "/x", {"params": "a=b"}),
    "params as an int": ("GET", "/x", {"params": 5}),
    "form as a string": ("POST", "/x", {"form": "a=b"}),
    "headers as a list": ("GET", "/x", {"headers": [("X-A", "v")]}),
    "deadline as a string": ("GET", "/x", {"deadline": "5"}),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
async def test_a_bad_input_is_a_typed_error_before_any_io(
        make: Callable[..., Api], server: LoopbackServer, case: str) -> None:
    method, path, kwargs = BAD_CALLS[case]
    with pytest.raises(UnsafeRequestError):
        await make().request(method, path, **kwargs)
    assert server.requests == []


# -- a query of NaN or infinity, a NaN or bool deadline: refused, not sent --------------------

@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
async def test_a_non_finite_query_or_form_number_is_refused(
        make: Callable[..., Api], server: LoopbackServer, value: float) -> None:
    api = make()
    with pytest.raises(UnsafeRequestError):
        await api.get("/x", params={"amount": value})
    with pytest.raises(UnsafeRequestError):
        await api.post("/x", form={"amount": value})
    assert server.requests == []


@pytest.mark.parametrize("deadline", [float("nan"), True])
async def test_a_deadline_that_is_not_a_number_is_refused(
        make: Callable[..., Api], server: LoopbackServer, deadline: Any) -> None:
    with pytest.raises(UnsafeRequestError):
        await make().get("/x", deadline=deadline)
    assert server.requests == []
