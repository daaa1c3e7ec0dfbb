"""The in-memory store: state shared by every pipeline of this process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["MEMORY_STORE", "MemoryStore"]

S = TypeVar("S")


class MemoryStore:
    """Keeps named state in a dict. Thread-safe creation; the states guard themselves."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def shared(self, kind: str, name: str, factory: Callable[[], S]) -> S:
        key = (kind, name)
        state = self._states.get(key)
        if state is None:
            with self._lock:
                state = self._states.get(key)
                if state is None:
                    state = self._states[key] = factory()
        return cast(S, state)

    def items(self) -> list[tuple[tuple[str, str], Any]]:
        """Every ``((kind, name), state)`` kept, for status pages (a copy: safe to iterate)."""
        with self._lock:
            return list(self._states.items())

    def clear(self) -> None:
        """Forget every state (tests)."""
        with self._lock:
            self._states.clear()

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._states)} states)"


#: The process-wide default store.
MEMORY_STORE = MemoryStore()
