"""The errors of :class:`~egress.http.ResilientTransport`: httpx's types with egress's facts.

A team that keeps its ``httpx`` client keeps its ``except httpx.ConnectError``. So a failure is
raised as a class that is *both* the httpx exception (the one httpx raised, or the nearest
httpx base for a refusal of egress's own) and the egress error that states the facts::

    ConnectError(httpx.ConnectError, egress.errors.TransportError)      .sent = False
    ReadTimeout(httpx.ReadTimeout, egress.errors.AttemptTimeoutError)   .sent = True
    DeadlineExceededError(httpx.TimeoutException, egress.errors.DeadlineExceededError)
    CircuitOpenError(httpx.TransportError, egress.errors.CircuitOpenError)

Each carries ``.request`` (httpx's contract) and ``.sent``, ``.replay_safe``, ``.request_info``
(egress's); ``__cause__`` is the exception it stands for. Only httpx's *transport* errors are
translated: anything else an inner transport raises (a ``RuntimeError`` from a bug, httpx's
``StreamConsumed``) passes through untouched and is never retried.
"""

from __future__ import annotations

from typing import Any

import httpx

from egress.errors import (
    DeadlineExceededError,
    EgressError,
    RejectedError,
    ResponseError,
    UnsafeRequestError,
)
from egress.http._httpx import map_httpx_error

__all__ = ["build", "dual", "from_egress", "from_httpx"]

_CLASSES: dict[tuple[type[BaseException], type[BaseException], str], type[Exception]] = {}


def _init(self: Exception, message: str, *, request: httpx.Request, **facts: Any) -> None:
    # Neither parent's __init__ is called: their signatures differ, and each only stores
    # what is set here.
    BaseException.__init__(self, message)
    self.__dict__.update(facts)
    self.request = request  # type: ignore[attr-defined]


def _rebuild(key: tuple[type[httpx.HTTPError], type[EgressError], str], args: tuple[Any, ...],
             state: dict[str, Any]) -> Exception:
    cls = dual(*key)
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def _reduce(self: Exception) -> tuple[Any, ...]:
    # The classes are made at run time, so pickle cannot find them by name: it rebuilds them.
    httpx_class, egress_class = type(self).__bases__
    return _rebuild, ((httpx_class, egress_class, type(self).__name__), self.args, self.__dict__)


def dual(httpx_class: type[httpx.HTTPError], egress_class: type[EgressError],
         name: str | None = None) -> type[Exception]:
    """The class that is both ``httpx_class`` and ``egress_class`` (made once, then reused)."""
    name = name or httpx_class.__name__
    key = (httpx_class, egress_class, name)
    found = _CLASSES.get(key)
    if found is None:
        made = type(name, (httpx_class, egress_class), {
            "__module__": "egress.http.transport",
            "__doc__": f"Both ``{httpx_class.__module__}.{httpx_class.__qualname__}`` and "
                       f"``{egress_class.__module__}.{egress_class.__qualname__}``.",
            "__init__": _init,
            "__reduce__": _reduce,
        })
        found = _CLASSES.setdefault(key, made)
    return found


def build(httpx_class: type[httpx.HTTPError], egress_class: type[EgressError], message: str, *,
          request: httpx.Request, name: str | None = None, **facts: Any) -> Exception:
    """An instance of :func:`dual`, with ``.request`` and the egress ``facts`` set."""
    made: Any = dual(httpx_class, egress_class, name)
    error: Exception = made(message, request=request, **facts)
    return error


def _facts(info: Any, sent: bool) -> dict[str, Any]:
    return {"sent": sent, "replay_safe": info.replay_safe, "request_info": info}


def from_httpx(exc: httpx.TransportError, request: httpx.Request, info: Any, *,
               reading: bool, body_started: bool) -> Exception:
    """``exc`` (raised by the inner transport) as its dual. ``reading``: the headers had
    arrived; ``body_started``: some of the request body had been handed to the inner transport.

    What it means (the egress class, ``sent``, a body's ``reason``) is the httpx backend's one
    mapping; the message stays httpx's own, as a caller of httpx expects."""
    if isinstance(exc, EgressError):
        return exc  # already both (a ResilientTransport inside another one)
    meaning = map_httpx_error(exc, "", reading)
    # A request the library refused may still have had part of its body streamed out.
    sent = body_started if isinstance(meaning, UnsafeRequestError) else getattr(
        meaning, "sent", True)
    extra = {"reason": meaning.reason} if isinstance(meaning, ResponseError) else {}
    return build(type(exc), type(meaning), str(exc), request=request, **_facts(info, sent),
                 **extra)


def from_egress(exc: EgressError, request: httpx.Request, info: Any) -> EgressError:
    """An error of egress's own (a policy refused, the deadline passed) as an httpx error too:
    a refusal is an ``httpx.TransportError`` (nothing was sent), the deadline an
    ``httpx.TimeoutException``. Anything else (a configuration error) is returned as is."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    base: type[httpx.HTTPError]
    if isinstance(exc, DeadlineExceededError):
        base = httpx.TimeoutException
    elif isinstance(exc, RejectedError):
        base = httpx.TransportError
    else:
        return exc
    cls = dual(base, type(exc), type(exc).__name__)
    error = cls.__new__(cls)
    error.args = exc.args
    error.__dict__.update(exc.__dict__)
    error.__dict__.pop("__notes__", None)  # not the same list: add_note below would grow it
    error.__dict__.update(_facts(info, bool(getattr(exc, "sent", False))))
    error.request = request  # type: ignore[attr-defined]
    for note in getattr(exc, "__notes__", ()):
        error.add_note(note)
    return error  # type: ignore[return-value]
