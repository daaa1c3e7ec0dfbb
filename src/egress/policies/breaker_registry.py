"""BreakerRegistry: breakers by name (per host, per operation), created on first use, bounded."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import ConfigurationError
from egress.events import NULL_SINK, EventSink
from egress.policies._breaker_state import BreakerSnapshot
from egress.policies.breaker import CircuitBreaker, count_setting
from egress.stores import StateStore

__all__ = ["BreakerRegistry"]

DEFAULT_REGISTRY_SIZE = 1024


class BreakerRegistry:
    """Breakers by name (per host, per operation), created on first use, bounded in number.

    >>> breakers = BreakerRegistry(failure_rate_threshold=0.3, minimum_calls=20)
    >>> breakers.get("api.stripe.com") is breakers.get("api.stripe.com")
    True

    ``defaults`` are :class:`CircuitBreaker` settings for every breaker; ``get(name, **settings)``
    may override them for one name, and must then be given the same overrides each time. At most
    ``max_size`` breakers are kept: the least recently used one is forgotten (with its history)
    when a new name arrives, so keep ``max_size`` above the number of upstreams in use. With
    ``store=None`` (the default) each breaker's state is private to the registry, so forgetting
    frees it; with a store, the state lives (and is shared) there.
    """

    def __init__(self, *, max_size: int = DEFAULT_REGISTRY_SIZE, store: StateStore | None = None,
                 clock: Clock = SYSTEM_CLOCK, sink: EventSink = NULL_SINK,
                 **defaults: Any) -> None:
        self.max_size = count_setting("BreakerRegistry", "max_size", max_size)
        for key in ("name", "store", "clock", "sink"):
            if key in defaults:
                raise ConfigurationError(f"BreakerRegistry: {key} is not a per-breaker default")
        CircuitBreaker("registry-defaults", store=None, **defaults)  # validate them now
        self.store = store
        self.clock = clock
        self.sink = sink
        self.defaults = dict(defaults)
        self._breakers: OrderedDict[str, tuple[CircuitBreaker, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, **settings: Any) -> CircuitBreaker:
        """The breaker called ``name``, created with ``defaults`` | ``settings`` the first time."""
        with self._lock:
            entry = self._breakers.get(name)
            if entry is not None:
                self._breakers.move_to_end(name)
                if settings and settings != entry[1]:
                    raise ConfigurationError(
                        f"BreakerRegistry: breaker {name!r} exists with other settings")
                return entry[0]
            breaker = CircuitBreaker(name, store=self.store, clock=self.clock, sink=self.sink,
                                     **{**self.defaults, **settings})
            self._breakers[name] = (breaker, settings)
            while len(self._breakers) > self.max_size:
                self._breakers.popitem(last=False)
            return breaker

    def snapshot(self) -> tuple[BreakerSnapshot, ...]:
        """A snapshot of every breaker, least recently used first."""
        with self._lock:
            breakers = [entry[0] for entry in self._breakers.values()]
        return tuple(breaker.snapshot() for breaker in breakers)

    def names(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)

    def __repr__(self) -> str:
        return f"BreakerRegistry({len(self._breakers)}/{self.max_size} breakers)"
