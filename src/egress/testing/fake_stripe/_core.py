"""What one fake server holds: state, fault plan, idempotency layer, limiter, webhooks, counters.

Shared by the HTTP handlers (:mod:`._app`, :mod:`._control`) and the Python API
(:class:`~._server.FakeStripe`); everything in it is safe to read from another thread.
"""

from __future__ import annotations

import random
import string
import threading
from collections import Counter
from collections.abc import Callable

from egress.testing.fake_stripe._faults import FaultPlan
from egress.testing.fake_stripe._idempotency import IdempotencyLayer
from egress.testing.fake_stripe._ratelimit import TokenBucket
from egress.testing.fake_stripe._state import StripeState
from egress.testing.fake_stripe._webhooks import WebhookSender

__all__ = ["Core"]

_ALNUM = string.ascii_letters + string.digits


class Core:
    """Everything one fake server holds; shared by the handlers and the Python API."""

    def __init__(self, *, state: StripeState, faults: FaultPlan, idempotency: IdempotencyLayer,
                 limiter: TokenBucket | None, webhooks: WebhookSender | None,
                 api_keys: frozenset[str] | None, wall: Callable[[], float],
                 seed: int | None) -> None:
        self.state = state
        self.faults = faults
        self.idempotency = idempotency
        self.limiter = limiter
        self.webhooks = webhooks
        self.api_keys = api_keys
        self._wall = wall
        self._rng = random.Random(None if seed is None else seed + 1)
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.closing = False

    def counter_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)

    def clear_counters(self) -> None:
        with self._lock:
            self.counters.clear()

    def count(self, *names: str) -> None:
        with self._lock:
            for name in names:
                self.counters[name] += 1

    def request_id(self) -> str:
        return "req_" + "".join(self._rng.choice(_ALNUM) for _ in range(14))

    def wall(self) -> float:
        return self._wall()
