"""Isolated named state for tests: what the pytest plugin does around every test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from egress.stores import MEMORY_STORE, MemoryStore

__all__ = ["isolated_state"]


@contextmanager
def isolated_state(store: MemoryStore = MEMORY_STORE) -> Iterator[MemoryStore]:
    """Give the block its own named state (breakers, budgets, bulkheads, limiters).

    Named policies share state through the process-wide ``MEMORY_STORE``; in a test suite that
    means a breaker tripped in one test is still open in the next. Inside this block the store
    starts empty, and whatever the block created is dropped on exit (the previous state comes
    back). The egress pytest plugin wraps every test in it; use it directly elsewhere::

        with isolated_state():
            client = make_client()      # breakers built here start CLOSED
            ...

    Policies constructed before the block (say, at import time of your module) keep the state
    they were built with: build them in fixtures or factories so each test gets its own.
    """
    with store.isolated() as fresh:
        yield fresh
