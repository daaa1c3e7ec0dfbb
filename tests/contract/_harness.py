"""Harnesses that put every PaymentService implementation under one contract suite.

Each harness owns one implementation plus a handle on its provider, so a contract test can
script what the provider does (lose a reply, lose a request, refuse service), count charges at
the provider, move the wall clock, and restart the client (same durable store, same provider).

* ``memory``: :class:`egress.testing.InMemoryPayments`.
* ``stripe``: :class:`egress.adapters.stripe.StripePayments` over HTTP to
  :class:`egress.testing.FakeStripe` on 127.0.0.1 (the fake provider with Stripe's idempotency
  layer and fault injection).

Both use a SQLite idempotency store in a temporary directory, and a clock whose wall time can be
moved forward (shared with the fake provider, so ``created`` timestamps agree).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from egress._clock import SystemClock
from egress.adapters.stripe import StripePayments
from egress.payments import PaymentService
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import InMemoryPayments, PaymentFault
from egress.testing.fake_stripe import FakeStripe

#: Attempts the default HTTP pipeline makes; a fault must hit every one to be "every attempt".
HTTP_ATTEMPTS = 3


class ShiftedClock(SystemClock):
    """The real clock, with a wall time that tests can move forward (never sleeps for it)."""

    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset = 0.0

    def wall(self) -> float:  # type: ignore[override]
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Harness(Protocol):
    name: str
    service: PaymentService
    clock: ShiftedClock

    def charges(self, reference: str) -> int:
        """Payments at the provider for ``reference`` that moved or hold money."""
        ...

    def lose_reply(self, operation: str = "create") -> None:
        """Every attempt of the next ``operation`` is done by the provider, its answer lost."""
        ...

    def lose_request(self, operation: str = "create") -> None:
        """Every attempt of the next ``operation`` is sent and lost before the provider acts."""
        ...

    def refuse(self, operation: str = "create") -> None:
        """The next ``operation`` is refused before reaching the provider (nothing done)."""
        ...

    def restart(self) -> PaymentService:
        """A new client, as after a process restart: same durable store, same provider."""
        ...

    def complete_action(self, payment_id: str) -> None: ...


class MemoryHarness:
    name = "memory"

    def __init__(self, path: Path) -> None:
        self.clock = ShiftedClock()
        self.path = path
        self.fake = InMemoryPayments(store=SqliteIdempotencyStore(path), clock=self.clock)
        self.service: PaymentService = self.fake

    def charges(self, reference: str) -> int:
        return len(self.fake.charges(reference))

    def lose_reply(self, operation: str = "create") -> None:
        self.fake.fail_next(PaymentFault.LOST_REPLY, operation=operation)

    def lose_request(self, operation: str = "create") -> None:
        self.fake.fail_next(PaymentFault.LOST_REQUEST, operation=operation)

    def refuse(self, operation: str = "create") -> None:
        self.fake.fail_next(PaymentFault.UNAVAILABLE, operation=operation)

    def restart(self) -> PaymentService:
        self.fake = self.fake.restarted(store=SqliteIdempotencyStore(self.path))
        self.service = self.fake
        return self.service

    def complete_action(self, payment_id: str) -> None:
        self.fake.complete_action(payment_id)

    async def aclose(self) -> None:
        return None


_ROUTES = {"create": "payment_intents.create", "confirm": "payment_intents.confirm",
           "capture": "payment_intents.capture", "cancel": "payment_intents.cancel",
           "refund": "refunds.create"}


class StripeHarness:
    name = "stripe"

    def __init__(self, fake: FakeStripe, path: Path, clock: ShiftedClock) -> None:
        self.fake = fake
        self.path = path
        self.clock = clock
        self.clients: list[StripePayments] = []
        self.service: PaymentService = self._client()

    def _client(self) -> StripePayments:
        client = StripePayments(self.fake.api_key, base_url=self.fake.url,
                                store=SqliteIdempotencyStore(self.path), clock=self.clock,
                                deadline=20.0)
        self.clients.append(client)
        return client

    def charges(self, reference: str) -> int:
        return sum(1 for c in self.fake.ledger.charges if c.reference == reference and c.live)

    def _script(self, operation: str, fault: str) -> None:
        self.fake.faults.script(_ROUTES[operation], *([fault] * HTTP_ATTEMPTS))

    def lose_reply(self, operation: str = "create") -> None:
        self._script(operation, "commit-then-reset")

    def lose_request(self, operation: str = "create") -> None:
        self._script(operation, "reset")

    def refuse(self, operation: str = "create") -> None:
        self._script(operation, "429")

    def restart(self) -> PaymentService:
        self.service = self._client()
        return self.service

    def complete_action(self, payment_id: str) -> None:
        self.fake.complete_action(payment_id)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
