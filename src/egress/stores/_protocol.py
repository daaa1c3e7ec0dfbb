"""The store protocol: named, shared policy state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, cast

from egress.errors import ConfigurationError

__all__ = ["StateStore", "shared_state"]

S = TypeVar("S")


class StateStore(Protocol):
    """Hands out the shared state of a policy by ``(kind, name)``.

    ``kind`` names the state machine (``"retry_budget.ratio"``, ``"breaker"``, ...); ``factory``
    builds the local, pure state machine when the store keeps state in this process. A store
    backed by a server recognises ``kind`` and returns an object with the same methods whose
    state lives on the server. The same ``(kind, name)`` always yields the same state.
    """

    def shared(self, kind: str, name: str, factory: Callable[[], S]) -> S: ...


def shared_state(owner: str, store: object, kind: str, name: str, factory: Callable[[], S]) -> S:
    """``store.shared(kind, name, factory)``; a :class:`~egress.errors.ConfigurationError`
    naming ``owner`` when ``store`` is not a store at all (``None``, a path, a client)."""
    shared = getattr(store, "shared", None)
    if not callable(shared):
        raise ConfigurationError(f"{owner}: store must be a StateStore (MemoryStore, "
                                 f"RedisStore), got {type(store).__name__}")
    return cast(S, shared(kind, name, factory))
