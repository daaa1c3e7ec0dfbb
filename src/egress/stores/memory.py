"""The in-memory store: state shared by every pipeline of this process."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    def clear(self) -> None:
        """Forget every state (tests)."""
        with self._lock:
            self._states.clear()

    @contextmanager
    def isolated(self) -> Iterator[MemoryStore]:
        """Run a block on an empty set of states, then put the previous ones back (tests).

        Policies built inside the block get fresh state; state created inside is forgotten on
        exit, so a breaker tripped in one test is not open in the next. Policies built before the
        block keep the state they already hold.
        """
        with self._lock:
            saved, self._states = self._states, {}
        try:
            yield self
        finally:
            with self._lock:
                self._states = saved

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._states)} states)"


#: The process-wide default store.
MEMORY_STORE = MemoryStore()
