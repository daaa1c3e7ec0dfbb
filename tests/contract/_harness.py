"""Harnesses that put every PaymentService implementation under one contract suite.

Each harness owns one implementation plus a handle on its provider, so a contract test can
script what the provider does (lose a reply, lose a request, refuse service), count charges at
the provider, move the wall clock, and restart the client (same durable store, same provider).

* ``memory``: :class:`egress.testing.InMemoryPayments`.
* ``stripe``: :class:`egress.adapters.stripe.StripePayments` over HTTP to
  :class:`egress.testing.FakeStripe` on 127.0.0.1 (the fake provider with Stripe's idempotency
  layer and fault injection).
* ``memory-sync``, ``stripe-sync``: the sync faces (:class:`egress.testing.SyncInMemoryPayments`,
  :class:`egress.adapters.stripe.SyncStripePayments`), seen by the suite through
  ``_sync_faces.ThreadedView``: each call runs on a worker thread, as in a WSGI server, while
  FakeStripe keeps serving on the test's event loop.

Both use a SQLite idempotency store in a temporary directory, and a clock whose wall time can be
moved forward (shared with the fake provider, so ``created`` timestamps agree).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from _sync_faces import async_port, close
from egress._clock import SystemClock
from egress.adapters.stripe import StripePayments, SyncStripePayments
from egress.payments import PaymentService, SyncPaymentService
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore
from egress.testing import InMemoryPayments, PaymentFault, SyncInMemoryPayments
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
    #: The implementation under test (async or sync face).
    face: PaymentService | SyncPaymentService
    #: The face as the suite awaits it (see async_port).
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
    def __init__(self, path: Path, *, sync: bool = False) -> None:
        self.name = "memory-sync" if sync else "memory"
        self.clock = ShiftedClock()
        self.path = path
        kind = SyncInMemoryPayments if sync else InMemoryPayments
        self.fake: InMemoryPayments | SyncInMemoryPayments = kind(
            store=SqliteIdempotencyStore(path), clock=self.clock)
        self.face: PaymentService | SyncPaymentService = self.fake
        self.service: PaymentService = async_port(self.fake)

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
        self.face = self.fake
        self.service = async_port(self.fake)
        return self.service

    def complete_action(self, payment_id: str) -> None:
        self.fake.complete_action(payment_id)

    async def aclose(self) -> None:
        return None


_ROUTES = {"create": "payment_intents.create", "confirm": "payment_intents.confirm",
           "capture": "payment_intents.capture", "cancel": "payment_intents.cancel",
           "refund": "refunds.create"}


class StripeHarness:
    def __init__(self, fake: FakeStripe, path: Path, clock: ShiftedClock, *,
                 sync: bool = False) -> None:
        self.name = "stripe-sync" if sync else "stripe"
        self.fake = fake
        self.path = path
        self.clock = clock
        self.kind = SyncStripePayments if sync else StripePayments
        self.clients: list[StripePayments | SyncStripePayments] = []
        self.face: PaymentService | SyncPaymentService = self._client()
        self.service: PaymentService = async_port(self.face)

    def _client(self) -> StripePayments | SyncStripePayments:
        client = self.kind(self.fake.api_key, base_url=self.fake.url,
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
        self.face = self._client()
        self.service = async_port(self.face)
        return self.service

    def complete_action(self, payment_id: str) -> None:
        self.fake.complete_action(payment_id)

    async def aclose(self) -> None:
        for client in self.clients:
            await close(client)
