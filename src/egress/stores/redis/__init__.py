"""Shared state on Redis (the ``redis`` extra: ``pip install egress[redis]``).

* :class:`RedisStore`: a :class:`~egress.stores.StateStore` for ``RateLimiter(store=...)`` and
  ``RetryBudget(store=...)``: one limit and one budget for a whole fleet; with
  ``breaker_quorum``, ``CircuitBreaker(store=...)`` gets an advisory fleet failure signal.
* :class:`RedisIdempotencyStore`: idempotency records claimed once across machines.

Redis trouble never breaks a call: the limiter and budget fall back to local state within the
store's timeout and return to shared state when Redis answers again; the idempotency store fails
closed. See ``docs/fleet.md``.

* :class:`LocalRedisServer`: a private ``redis-server`` on a free loopback port, for tests and
  demos (``egress demo --workers``); :func:`redis_server_binary` says whether one is installed.
"""

from egress.stores.redis._breaker import RedisBreakerSignal
from egress.stores.redis._idempotency import DEFAULT_RETENTION, RedisIdempotencyStore
from egress.stores.redis._limiter import RedisLimiterState
from egress.stores.redis._link import SharedStateRestored, SharedStateUnavailable
from egress.stores.redis._server import LocalRedisServer, redis_server_binary
from egress.stores.redis._store import RedisStore

__all__ = ["DEFAULT_RETENTION", "LocalRedisServer", "RedisBreakerSignal", "RedisIdempotencyStore",
           "RedisLimiterState", "RedisStore", "SharedStateRestored", "SharedStateUnavailable",
           "redis_server_binary"]
