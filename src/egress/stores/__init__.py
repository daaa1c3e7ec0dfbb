"""Where shared state lives: in memory by default; SQLite and Redis backends plug in here.

Policies that share state by name (retry budgets, breakers, rate limiters) obtain it from a
:class:`StateStore`. The in-memory store hands out the pure state machines themselves; a
distributed store returns objects with the same methods backed by a server.
"""

from egress.stores._protocol import StateStore
from egress.stores.memory import MEMORY_STORE, MemoryStore

__all__ = ["MEMORY_STORE", "MemoryStore", "StateStore"]
