"""RedisStore: the policies' shared state across processes and machines."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import ConfigurationError
from egress.events import NULL_SINK, EventSink
from egress.policies.budget import RatioBudgetState
from egress.policies.ratelimit import LimiterState
from egress.stores.memory import MemoryStore
from egress.stores.redis._breaker import RedisBreakerSignal
from egress.stores.redis._budget import RedisRatioBudgetState
from egress.stores.redis._limiter import RedisLimiterState
from egress.stores.redis._link import (
    DEFAULT_RETRY_MAX,
    DEFAULT_RETRY_MIN,
    DEFAULT_TIMEOUT,
    RedisLink,
)

__all__ = ["RedisStore"]

S = TypeVar("S")

_LIMITER: Final = "rate_limiter"
_RATIO_BUDGET: Final = "retry_budget.ratio"
_BREAKER: Final = "circuit_breaker"


class RedisStore:
    """A :class:`~egress.stores.StateStore` whose rate limiters and retry budgets live in Redis.

    ==================  ==========  ======================================================
    setting             default     meaning
    ==================  ==========  ======================================================
    ``url``             (req.)      ``redis://``, ``rediss://``, ``unix://``,
                                    ``redis+sentinel://hosts/service`` (or give ``client``
                                    and ``async_client``: Cluster)
    ``prefix``          egress      first part of every key
    ``timeout``         0.25        seconds per command before falling back to local
    ``retry_min``       0.5         first wait before Redis is tried again (doubles)
    ``retry_max``       10.0        longest wait between tries
    ``fail_open``       True        budgets: while Redis is down, decide locally (False:
                                    refuse retries)
    ``fleet_size``      None        instances sharing a limit, for the local fallback's
                                    share; None: counted live through Redis
    ``breaker_quorum``  None        instances that must report failures before a failing
                                    instance opens early; None: breakers purely local
    ``breaker_window``  10.0        seconds a failure report counts
    ``clock``           system      the clock of the policies using this store
    ``sink``            none        receives ``store.unavailable`` / ``store.restored``
    ==================  ==========  ======================================================

    Shared: rate limiters (GCRA in one Lua script; server-hint pauses reach every instance) and
    ratio retry budgets; with ``breaker_quorum``, an advisory failure signal for breakers (each
    instance still decides by its own calls). Bulkheads and token budgets stay in this process.
    """

    def __init__(self, url: str | None = None, *, client: Any = None, async_client: Any = None,
                 prefix: str = "egress", timeout: float = DEFAULT_TIMEOUT,
                 retry_min: float = DEFAULT_RETRY_MIN, retry_max: float = DEFAULT_RETRY_MAX,
                 fail_open: bool = True, fleet_size: int | None = None,
                 breaker_quorum: int | None = None, breaker_window: float = 10.0,
                 clock: Clock = SYSTEM_CLOCK, sink: EventSink = NULL_SINK) -> None:
        if fleet_size is not None and (isinstance(fleet_size, bool)
                                       or not isinstance(fleet_size, int) or fleet_size < 1):
            raise ConfigurationError(f"RedisStore: fleet_size must be an integer >= 1 or None, "
                                     f"got {fleet_size!r}")
        if breaker_quorum is not None and (isinstance(breaker_quorum, bool)
                                           or not isinstance(breaker_quorum, int)
                                           or breaker_quorum < 2):
            raise ConfigurationError("RedisStore: breaker_quorum must be an integer >= 2 (one "
                                     f"instance alone must not trip others) or None, got "
                                     f"{breaker_quorum!r}")
        if (isinstance(breaker_window, bool) or not isinstance(breaker_window, int | float)
                or not math.isfinite(breaker_window) or breaker_window <= 0):
            raise ConfigurationError(f"RedisStore: breaker_window must be a positive number, "
                                     f"got {breaker_window!r}")
        self.breaker_quorum = breaker_quorum
        self.breaker_window = float(breaker_window)
        self.link = RedisLink(url=url, client=client, async_client=async_client,
                              timeout=timeout, retry_min=retry_min, retry_max=retry_max,
                              prefix=prefix, clock=clock, sink=sink)
        self.fail_open = bool(fail_open)
        self.fleet_size = fleet_size
        self._local = MemoryStore()

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.link.prefix!r}, down={self.link.down})"

    def shared(self, kind: str, name: str, factory: Callable[[], S]) -> S:
        link = self.link
        if kind == _LIMITER:
            def limiter() -> Any:
                local = factory()
                if not isinstance(local, LimiterState):
                    return local
                return RedisLimiterState(link, name, local, self.fleet_size)
            return cast(S, self._local.shared(kind, name, limiter))
        if kind == _RATIO_BUDGET:
            def budget() -> Any:
                local = factory()
                if not isinstance(local, RatioBudgetState):
                    return local
                return RedisRatioBudgetState(link, name, local, self.fail_open)
            return cast(S, self._local.shared(kind, name, budget))
        if kind == _BREAKER and self.breaker_quorum is not None:
            quorum, window = self.breaker_quorum, self.breaker_window

            def breaker() -> Any:
                return RedisBreakerSignal(link, name, factory(), quorum, window)
            return cast(S, self._local.shared(kind, name, breaker))
        return self._local.shared(kind, name, factory)

    @property
    def down(self) -> bool:
        """Whether Redis is currently considered unreachable (policies run on local state)."""
        return self.link.down

    async def aclose(self) -> None:
        """Close the asyncio client (before the event loop ends)."""
        await self.link.aclose()

    def close(self) -> None:
        self.link.close()
