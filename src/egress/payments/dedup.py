"""De-duplication of provider notifications by event id, through an IdempotencyStore.

Providers deliver webhooks at least once: the same event may arrive twice, or concurrently on
two workers. :class:`EventDeduplicator` lets exactly one delivery of an event through:

>>> dedup = EventDeduplicator(store)                                  # doctest: +SKIP
>>> processed = await dedup.process(event.id, handle, event)          # doctest: +SKIP

If the handler fails, the claim is released so that the provider's next delivery is processed.
A claim held by a worker that died is taken over after ``lease`` seconds.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import ConfigurationError
from egress.payments.idempotency import IdempotencyRecord, IdempotencyStore, RecordState

__all__ = ["DEFAULT_LEASE", "EventDeduplicator"]

T = TypeVar("T")

#: How long a claim on an event protects it from a concurrent delivery before another worker
#: may take it over (the claiming worker is presumed dead).
DEFAULT_LEASE: Final = 300.0
_OPERATION = "event"


class EventDeduplicator:
    """Claims event ids in a store so each event is handled once.

    ==============  ==============  =============================================
    setting         default         meaning
    ==============  ==============  =============================================
    ``scope``       ``"webhooks"``  namespace of the event ids in the store
    ``lease``       300.0           a claim older than this may be taken over
    ==============  ==============  =============================================
    """

    def __init__(self, store: IdempotencyStore, *, scope: str = "webhooks",
                 lease: float = DEFAULT_LEASE, clock: Clock = SYSTEM_CLOCK) -> None:
        if not isinstance(scope, str) or not scope:
            raise ConfigurationError("EventDeduplicator: scope must be a non-empty string")
        if not (isinstance(lease, int | float) and math.isfinite(lease) and lease > 0):
            raise ConfigurationError(f"EventDeduplicator: lease must be > 0, got {lease!r}")
        self.store = store
        self.scope = scope
        self.lease = float(lease)
        self.clock = clock

    def __repr__(self) -> str:
        return f"EventDeduplicator(scope={self.scope!r}, store={self.store!r})"

    def _record(self, event_id: str, now: float) -> IdempotencyRecord:
        return IdempotencyRecord(scope=self.scope, operation=_OPERATION, reference=event_id,
                                 key=f"claim-{secrets.token_hex(12)}", generation=0, fingerprint="",
                                 state=RecordState.PENDING, created_at=now, updated_at=now)

    async def claim(self, event_id: str) -> str | None:
        """Claim ``event_id``: a claim token if this delivery should be handled, else ``None``
        (already handled, or being handled by a live worker)."""
        now = self.clock.wall()
        mine = self._record(event_id, now)
        current, inserted = await self.store.reserve(mine)
        if inserted:
            return mine.key
        if current.state is RecordState.SUCCEEDED:
            return None
        if current.state is RecordState.PENDING and now - current.updated_at < self.lease:
            return None
        # An abandoned claim (its worker died) or a released one: take it over.
        if await self.store.replace(mine, expected_key=current.key):
            return mine.key
        return None

    async def done(self, event_id: str, token: str) -> None:
        """Mark the event handled: later deliveries are dropped."""
        record = await self.store.get(self.scope, _OPERATION, event_id)
        if record is not None and record.key == token:
            await self.store.replace(record.with_state(RecordState.SUCCEEDED, self.clock.wall()),
                                     expected_key=token)

    async def release(self, event_id: str, token: str) -> None:
        """Give the claim up (the handler failed): the next delivery is handled."""
        await self.store.delete(self.scope, _OPERATION, event_id, expected_key=token)

    async def seen(self, event_id: str) -> bool:
        """Whether ``event_id`` was handled to completion."""
        record = await self.store.get(self.scope, _OPERATION, event_id)
        return record is not None and record.state is RecordState.SUCCEEDED

    async def process(self, event_id: str, handler: Callable[..., Awaitable[T]],
                      *args: object) -> bool:
        """Run ``await handler(*args)`` unless the event was (or is being) handled.

        Returns ``True`` if the handler ran to completion now, ``False`` for a duplicate. If the
        handler raises, the claim is released and the error propagates.
        """
        token = await self.claim(event_id)
        if token is None:
            return False
        try:
            await handler(*args)
        except BaseException:
            await self.release(event_id, token)
            raise
        await self.done(event_id, token)
        return True
