"""The store protocol: named, shared policy state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

__all__ = ["StateStore"]

S = TypeVar("S")


class StateStore(Protocol):
    """Hands out the shared state of a policy by ``(kind, name)``.

    ``kind`` names the state machine (``"retry_budget.ratio"``, ``"breaker"``, ...); ``factory``
    builds the local, pure state machine when the store keeps state in this process. A store
    backed by a server recognises ``kind`` and returns an object with the same methods whose
    state lives on the server. The same ``(kind, name)`` always yields the same state.
    """

    def shared(self, kind: str, name: str, factory: Callable[[], S]) -> S: ...
