"""Worker processes for tests/reliability/test_payments_processes.py (importable by forkserver).

Each worker is a real process with its own StripePayments on a shared SQLite idempotency file,
as a fleet of web workers would be. It reports through a JSON-lines file (append, flush per
line) so that what it managed to say before a ``kill -9`` survives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from pathlib import Path
from typing import Any

from egress.adapters.stripe import StripePayments
from egress.errors import OutcomeUnknown, PaymentError
from egress.http import Timeouts
from egress.http._wire import WireRequest, WireResponse
from egress.payments import IdempotencyRecord, Money, PaymentRequest, RecordState
from egress.stores.idempotency_sqlite import SqliteIdempotencyStore

CRASH_POINTS = ("before-send", "after-send", "after-reply")


def order(reference: str) -> PaymentRequest:
    return PaymentRequest(amount=Money("42.00", "EUR"), reference=reference,
                          payment_method="pm_card_visa", metadata={"cart": "c-" + reference})


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # no finally block, no flush, no atexit: kill -9


def _report(log: str, **line: Any) -> None:
    with open(log, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
        out.flush()
        os.fsync(out.fileno())


class _DyingWire:
    """The client's wire, dying (SIGKILL) just before a POST leaves or just after its answer."""

    def __init__(self, inner: Any, point: str) -> None:
        self.inner = inner
        self.point = point

    async def send(self, request: WireRequest) -> WireResponse:
        if request.method == "POST" and self.point == "before-send":
            _die()
        response: WireResponse = await self.inner.send(request)
        if request.method == "POST" and self.point == "after-send":
            _die()  # the provider acted; its answer dies with the process
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _DyingStore(SqliteIdempotencyStore):
    """Dies as the adapter records the answer it read in full (after the reply)."""

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        if record.state is RecordState.SUCCEEDED:
            _die()
        return await super().replace(record, expected_key=expected_key)


def _client(stripe_url: str, api_key: str, db: str, *, crash_at: str | None = None,
            attempt_timeout: float = 5.0) -> StripePayments:
    store = _DyingStore(db) if crash_at == "after-reply" else SqliteIdempotencyStore(db)
    payments = StripePayments(api_key, base_url=stripe_url, store=store, rate_limit=None,
                              deadline=4 * attempt_timeout,
                              timeouts=Timeouts(total=attempt_timeout))
    if crash_at in ("before-send", "after-send"):
        payments.client._wire = _DyingWire(payments.client._wire,  # type: ignore[assignment]
                                           crash_at)
    return payments


def pay(stripe_url: str, api_key: str, db: str, log: str, references: list[str],
        crash_at: str | None = None, seed: int = 0, attempt_timeout: float = 5.0,
        ready: Any = None, start: Any = None) -> None:
    """Create a payment for each reference (shuffled by ``seed``), reporting each outcome as a
    line ``{"reference", "id"}`` or ``{"reference", "error"}``; may die at ``crash_at``."""
    order_of = list(references)
    random.Random(seed).shuffle(order_of)

    async def main() -> None:
        async with _client(stripe_url, api_key, db, crash_at=crash_at,
                           attempt_timeout=attempt_timeout) as payments:
            if ready is not None:
                ready.set()
            if start is not None:
                start.wait(60)
            for reference in order_of:
                try:
                    payment = await payments.create(order(reference))
                except OutcomeUnknown:
                    _report(log, reference=reference, error="OutcomeUnknown", pid=os.getpid())
                except PaymentError as exc:
                    _report(log, reference=reference, error=type(exc).__name__, pid=os.getpid())
                else:
                    _report(log, reference=reference, id=payment.id, pid=os.getpid())

    asyncio.run(main())


def read_reports(log: str | Path) -> list[dict[str, Any]]:
    path = Path(log)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    # A kill -9 may cut the last line short; every complete line is a JSON object.
    return [json.loads(line) for line in lines if line.endswith("}")]
