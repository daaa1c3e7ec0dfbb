"""Building a frozen, slotted dataclass from values already checked, fast.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__`` (its own
``__setattr__`` refuses): on CPython 3.11 that is a slot-wrapper call, about ten times the cost
of a plain attribute store, and the payment path builds three records of ten or more fields per
payment (two idempotency records, the parsed ``Payment``) besides the caller's request. Here
the fields are stored on a *draft*: the same object under a class with the same slots and no
``__setattr__`` of its own (plain, specialised stores), which then gets its real class back.
The result is an ordinary instance of the dataclass, equal, hashed, shown, pickled and
``dataclasses.replace``-d exactly as one built by the generated ``__init__``, and frozen from
then on.

- :func:`builder`: ``build(**fields)`` makes a new instance and runs no ``__init__`` or
  ``__post_init__``: for internal call sites whose values are valid by construction (a test per
  call site holds it equal to the checked constructor).
- :func:`filler`: ``fill(self, **fields)`` stores the fields of an instance being initialised:
  for a hand-written ``__init__`` that has checked its arguments itself.

Where the interpreter refuses the class change (a layout it does not see as compatible; an
instance of a subclass), the fields are stored with ``object.__setattr__`` one by one: slower,
the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["builder", "filler"]

T = TypeVar("T")


def _draft_of(cls: type) -> tuple[tuple[str, ...], dict[str, Any]]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    slots = cls.__dict__.get("__slots__")
    if slots is None or tuple(slots) != names:
        raise TypeError(f"{cls.__qualname__} must be a slotted dataclass")
    twin = type(f"{cls.__name__}Draft", (), {"__slots__": names, "__module__": cls.__module__})
    return names, {"_new": object.__new__, "_set": object.__setattr__, "_draft": twin,
                   "_cls": cls}


def _compile(source: list[str], scope: dict[str, Any], name: str) -> Callable[..., Any]:
    exec("\n".join(source), scope)  # noqa: S102 (fixed source from the dataclass's field names)
    made: Callable[..., Any] = scope[name]
    return made


def builder(cls: type[T], *, draft: bool = True) -> Callable[..., T]:
    """``build(**fields)``: a new ``cls`` (a slotted dataclass) from every field, no checks.

    ``draft=False`` takes the fallback (``object.__setattr__``) at once: for tests."""
    names, scope = _draft_of(cls)
    head = f"def build(*, {', '.join(names)}):"
    slow = [head, "    self = _new(_cls)", *(f"    _set(self, {n!r}, {n})" for n in names),
            "    return self"]
    fast = [head, "    self = _new(_draft)", *(f"    self.{n} = {n}" for n in names),
            "    self.__class__ = _cls", "    return self"]
    build: Callable[..., T] = _compile(slow, scope, "build")
    if draft:
        quick: Callable[..., T] = _compile(fast, dict(scope), "build")
        try:
            if type(quick(**dict.fromkeys(names))) is cls:
                build = quick
        except TypeError:  # "__class__ assignment: ... object layout differs"
            pass
    build.__qualname__ = f"{cls.__qualname__}.build"
    return build


def filler(cls: type[T], *, draft: bool = True) -> Callable[..., None]:
    """``fill(self, **fields)``: store every field of ``self``, an instance of ``cls`` (a
    slotted dataclass) being initialised. ``draft=False`` as for :func:`builder`."""
    names, scope = _draft_of(cls)
    head = f"def fill(self, *, {', '.join(names)}):"
    slow = [*(f"    _set(self, {n!r}, {n})" for n in names)]
    fast = ["    if type(self) is not _cls:", *(f"    {line}" for line in slow),
            "        return", "    _set(self, '__class__', _draft)",
            *(f"    self.{n} = {n}" for n in names), "    self.__class__ = _cls"]
    fill: Callable[..., None] = _compile([head, *slow], scope, "fill")
    if draft:
        quick: Callable[..., None] = _compile([head, *fast], dict(scope), "fill")
        try:
            quick(object.__new__(cls), **dict.fromkeys(names))
            fill = quick
        except TypeError:
            pass
    fill.__qualname__ = f"{cls.__qualname__}.fill"
    return fill
