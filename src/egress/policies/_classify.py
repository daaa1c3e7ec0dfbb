"""``on=``, ``failure=``, ``ignore=``: exception types and predicates, made one predicate."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from egress.errors import ConfigurationError

__all__ = ["Classifier", "matcher"]

Classifier = type[BaseException] | Callable[[BaseException], bool]


def matcher(owner: str, setting: str, spec: Classifier | Iterable[Classifier], *,
            retryable: bool = False) -> Callable[[BaseException], bool]:
    """One predicate: ``exc`` is an instance of one of the types, or a predicate says yes.

    ``retryable``: the spec must name something, and only ``Exception`` types (cancellation and
    interpreter exits are never retried).
    """
    items: tuple[Any, ...] = (
        tuple(spec) if isinstance(spec, tuple | list | set | frozenset) else (spec,))
    if retryable and not items:
        raise ConfigurationError(f"{owner}: {setting}= must name at least one exception type "
                                 f"or predicate")
    types: list[type[BaseException]] = []
    predicates: list[Callable[[BaseException], bool]] = []
    for item in items:
        if isinstance(item, type) and issubclass(item, BaseException):
            if retryable and not issubclass(item, Exception):
                raise ConfigurationError(f"{owner}: {item.__name__} can never be retried")
            types.append(item)
        elif callable(item):
            predicates.append(item)
        else:
            raise ConfigurationError(f"{owner}: {setting}= takes exception types and predicates, "
                                     f"got {item!r}")
    type_tuple, preds = tuple(types), tuple(predicates)

    def matches(exc: BaseException) -> bool:
        return isinstance(exc, type_tuple) or any(p(exc) for p in preds)

    return matches
