"""httpx failures are mapped once: ApiClient's httpx backend and ResilientTransport agree on what
each httpx transport error means (egress class, ``sent``, a body's reason), for every class
httpx raises, before and after the headers arrived."""

from __future__ import annotations

import httpx
import pytest

from egress.errors import EgressError, ResponseError, UnsafeRequestError
from egress.http._httpx import map_httpx_error
from egress.http._transport_errors import from_httpx

_REQUEST = httpx.Request("GET", "http://127.0.0.1:1/x?token=t0k")
_CLASSES = sorted({cls for cls in vars(httpx).values()
                   if isinstance(cls, type) and issubclass(cls, httpx.TransportError)},
                  key=lambda cls: cls.__name__)


class _Info:
    replay_safe = True


@pytest.mark.parametrize("reading", [False, True])
@pytest.mark.parametrize("cls", _CLASSES, ids=lambda cls: cls.__name__)
def test_both_faces_give_one_meaning(cls: type[httpx.TransportError], reading: bool) -> None:
    exc = cls("boom", request=_REQUEST)
    plain = map_httpx_error(exc, "GET http://127.0.0.1:1/x", reading)
    dual = from_httpx(exc, _REQUEST, _Info(), reading=reading, body_started=True)
    assert isinstance(dual, cls) and isinstance(dual, EgressError)
    assert type(dual).__bases__ == (cls, type(plain))
    if isinstance(plain, UnsafeRequestError):
        assert dual.sent is True  # its body had started
    else:
        assert dual.sent == plain.sent
    if isinstance(plain, ResponseError):
        assert dual.reason == plain.reason
    assert str(dual) == "boom"  # httpx's own message, as an httpx caller expects
    assert "t0k" not in str(plain)
