"""Revealed secrets that still print as ``***``: what holds header values, bodies and URLs
between :meth:`egress.Secret.reveal` and the socket.

A traceback rendered with its locals (``traceback.TracebackException(capture_locals=True)``,
rich's ``show_locals``, error trackers) prints the ``repr`` of every local variable of every
frame. The request being sent sits in such locals, so the objects that carry it are these:

* :class:`RevealedStr` and :class:`RevealedBytes` are ``str``/``bytes`` to every library (same
  value, same hash), but their ``repr`` is ``'***'`` / ``<N bytes>``, and slicing one (rich
  prints the first 80 characters of a long string) gives another masked value;
* :class:`RedactedURL` is a URL whose ``repr`` hides the query string (``?api_key=...``);
* :class:`RedactedHeaders` is a ``dict`` whose ``repr`` (and rich's view) shows names only.

:func:`drop_frames` removes the frames (and so the locals) of a backend exception chained as
``__cause__``: an HTTP library's frames hold the raw request bytes in its own variables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, SupportsIndex, overload

from egress._secret import Secret

__all__ = ["RedactedHeaders", "RedactedURL", "RevealedBytes", "RevealedStr", "drop_frames",
           "reveal"]


class RevealedStr(str):
    """A revealed secret (or a value built from one): the text itself, ``'***'`` in a repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"

    @overload
    def __getitem__(self, key: SupportsIndex) -> str: ...

    @overload
    def __getitem__(self, key: slice) -> str: ...

    def __getitem__(self, key: Any) -> str:
        return RevealedStr(str.__getitem__(self, key))


class RevealedBytes(bytes):
    """A request body: the bytes themselves, only its length in a repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"

    @overload
    def __getitem__(self, key: SupportsIndex) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> bytes: ...

    def __getitem__(self, key: Any) -> Any:
        value = bytes.__getitem__(self, key)
        return RevealedBytes(value) if isinstance(value, bytes) else value


class RedactedURL(str):
    """An absolute URL whose repr drops the query string (it may hold ``api_key=...``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        plain, query = str.split(self, "?", 1) if "?" in self else (str(self), "")
        return repr(plain + ("?***" if query else ""))

    def __getitem__(self, key: Any) -> str:
        return RedactedURL(str.__getitem__(self, key))


class RedactedHeaders(dict[str, str]):
    """Request headers: a plain ``dict`` to every library, names only in any repr."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"RedactedHeaders({', '.join(self)})"

    def __rich_repr__(self) -> Iterator[str]:
        yield from self

    def copy(self) -> RedactedHeaders:
        return RedactedHeaders(self)


def reveal(value: object) -> Any:
    """``value`` revealed for the wire, if it is a :class:`~egress.Secret`, else itself."""
    if isinstance(value, Secret):
        return RevealedStr(value.reveal())
    return value


def drop_frames(exc: BaseException | None) -> None:
    """Clear the tracebacks of ``exc`` and every exception chained to it (frames, and so local
    variables, of the HTTP library). Types and messages stay; the chain stays."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
