"""Building a frozen, slotted dataclass from values the caller has already checked, fast.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__`` (its own
``__setattr__`` refuses): on CPython 3.11 that is a slot-wrapper call, about ten times the cost
of a plain attribute store, and the payment path builds three records of ten or more fields per
payment (two idempotency records, the parsed ``Payment``). :func:`builder` gives a function that
stores the fields on a *draft*, a class with the same slots and no ``__setattr__`` of its own
(plain, specialised stores), then gives the object its real class: the result is an ordinary
instance of the dataclass, equal, hashed, shown, pickled and ``dataclasses.replace``-d exactly as
one built by its ``__init__``, and frozen from then on.

The builder runs no ``__init__`` or ``__post_init__``: it is for internal call sites whose values
are valid by construction (a test per call site holds it equal to the checked constructor).
Where the interpreter refuses the class change (a layout it does not see as compatible), the
builder falls back to ``object.__setattr__`` per field: slower, the same result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["builder"]

T = TypeVar("T")


def builder(cls: type[T], *, draft: bool = True) -> Callable[..., T]:
    """``build(**fields)``: every field of the slotted dataclass ``cls`` by keyword, no checks.

    ``draft=False`` takes the fallback (``object.__setattr__``) at once: for tests."""
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    slots = cls.__dict__.get("__slots__")
    if slots is None or tuple(slots) != names:
        raise TypeError(f"builder: {cls.__qualname__} must be a slotted dataclass")
    twin = type(f"{cls.__name__}Draft", (), {"__slots__": names, "__module__": cls.__module__})
    for fast in (True, False) if draft else (False,):
        scope: dict[str, Any] = {"_new": object.__new__, "_set": object.__setattr__,
                                 "_draft": twin, "_cls": cls}
        if fast:
            body = ["    self = _new(_draft)", *(f"    self.{n} = {n}" for n in names),
                    "    self.__class__ = _cls"]
        else:
            body = ["    self = _new(_cls)", *(f"    _set(self, {n!r}, {n})" for n in names)]
        source = "\n".join([f"def build(*, {', '.join(names)}):", *body, "    return self"])
        exec(source, scope)  # noqa: S102 (fixed source from the dataclass's own field names)
        build: Callable[..., T] = scope["build"]
        try:
            probe = build(**dict.fromkeys(names))
        except TypeError:  # "__class__ assignment: ... object layout differs"
            continue
        if type(probe) is cls:
            break
    build.__qualname__ = f"{cls.__qualname__}.build"
    build.__doc__ = f"A {cls.__name__} from every field by keyword, without checks."
    return build
