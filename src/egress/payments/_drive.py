"""One coroutine, two faces: how the sync payment faces run logic written once.

The payment decisions (the :class:`~egress.payments.IdempotencyKeeper`, the Stripe flow, the
in-memory provider) are written once, as coroutines that do all their I/O through objects handed
to them: an HTTP port, an idempotency store, a sleep. The async faces hand them async objects and
await them. The sync faces hand them *blocking* objects, whose coroutine methods do their I/O on
the caller's thread and return without ever suspending, and run the whole coroutine with
:func:`drive`: one ``send(None)`` runs it to the end, with no event loop.

This is the sans-I/O split of ``egress.http._core`` with ``await`` as the yield point: the logic
cannot tell which face runs it, so both faces make every decision the same way. A coroutine that
does suspend under :func:`drive` (an async-only store handed to a sync face) is refused loudly,
never run half-way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar, runtime_checkable

from egress.errors import ConfigurationError
from egress.payments.idempotency import IdempotencyRecord, IdempotencyStore
from egress.payments.models import CancellationReason, Payment, PaymentRequest, Refund, RefundReason
from egress.payments.money import Money
from egress.payments.service import PaymentService

__all__ = ["AsyncFace", "BlockingStore", "SyncFace", "SyncIdempotencyStore", "blocking_store",
           "drive"]

T = TypeVar("T")


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread; it must never suspend (see the module doc)."""
    try:
        awaited = coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()  # unwinds its finally blocks; nothing half-done is left behind
    raise ConfigurationError(
        f"a sync payment face met async-only I/O ({type(awaited).__name__}): give it "
        f"blocking components (a store with *_sync methods, SyncApiClient)")


@runtime_checkable
class SyncIdempotencyStore(Protocol):
    """The blocking face of an :class:`~egress.payments.IdempotencyStore`: the same operations,
    with the same meaning, named ``*_sync``. SQLite, memory and Redis stores have both faces."""

    def reserve_sync(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]: ...

    def get_sync(self, scope: str, operation: str,
                 reference: str) -> IdempotencyRecord | None: ...

    def replace_sync(self, record: IdempotencyRecord, *, expected_key: str) -> bool: ...

    def delete_sync(self, scope: str, operation: str, reference: str, *,
                    expected_key: str | None = None) -> bool: ...

    def purge_sync(self, older_than: float) -> int: ...


class BlockingStore:
    """An :class:`~egress.payments.IdempotencyStore` over a store's ``*_sync`` methods: each
    coroutine does its I/O and returns without suspending, so :func:`drive` can run the keeper
    over it."""

    __slots__ = ("sync",)

    def __init__(self, sync: SyncIdempotencyStore) -> None:
        self.sync = sync

    def __repr__(self) -> str:
        return repr(self.sync)

    async def reserve(self, record: IdempotencyRecord) -> tuple[IdempotencyRecord, bool]:
        return self.sync.reserve_sync(record)

    async def get(self, scope: str, operation: str, reference: str) -> IdempotencyRecord | None:
        return self.sync.get_sync(scope, operation, reference)

    async def replace(self, record: IdempotencyRecord, *, expected_key: str) -> bool:
        return self.sync.replace_sync(record, expected_key=expected_key)

    async def delete(self, scope: str, operation: str, reference: str, *,
                     expected_key: str | None = None) -> bool:
        return self.sync.delete_sync(scope, operation, reference, expected_key=expected_key)

    async def purge(self, older_than: float) -> int:
        return self.sync.purge_sync(older_than)


def blocking_store(store: object, owner: str) -> IdempotencyStore:
    """``store`` seen through its sync methods, or a :class:`ConfigurationError` naming
    ``owner`` when it has none (an async-only store such as Redis's)."""
    if not isinstance(store, SyncIdempotencyStore):
        raise ConfigurationError(
            f"{owner}: the idempotency store needs sync methods (reserve_sync, get_sync, ...), "
            f"as SqliteIdempotencyStore, MemoryIdempotencyStore and RedisIdempotencyStore have; "
            f"{type(store).__name__} is async-only")
    return BlockingStore(store)


class AsyncFace:
    """The :class:`~egress.payments.PaymentService` methods of an async face: each awaits the
    same method of ``_flow``, the one place the implementation's decisions live."""

    _flow: PaymentService

    async def create(self, request: PaymentRequest) -> Payment:
        return await self._flow.create(request)

    async def confirm(self, payment_id: str, *, payment_method: str | None = None) -> Payment:
        return await self._flow.confirm(payment_id, payment_method=payment_method)

    async def capture(self, payment_id: str, *, amount: Money | None = None) -> Payment:
        return await self._flow.capture(payment_id, amount=amount)

    async def cancel(self, payment_id: str, *,
                     reason: CancellationReason | None = None) -> Payment:
        return await self._flow.cancel(payment_id, reason=reason)

    async def refund(self, payment_id: str, *, reference: str, amount: Money | None = None,
                     reason: RefundReason | None = None) -> Refund:
        return await self._flow.refund(payment_id, reference=reference, amount=amount,
                                       reason=reason)

    async def get(self, payment_id: str) -> Payment:
        return await self._flow.get(payment_id)

    async def find_by_reference(self, reference: str) -> Payment | None:
        return await self._flow.find_by_reference(reference)

    async def reconcile(self, reference: str) -> Payment | None:
        return await self._flow.reconcile(reference)


class SyncFace:
    """The :class:`~egress.payments.SyncPaymentService` methods of a sync face: each runs the
    same coroutine as the async face, with :func:`drive`, over blocking I/O."""

    _flow: PaymentService

    def create(self, request: PaymentRequest) -> Payment:
        return drive(self._flow.create(request))

    def confirm(self, payment_id: str, *, payment_method: str | None = None) -> Payment:
        return drive(self._flow.confirm(payment_id, payment_method=payment_method))

    def capture(self, payment_id: str, *, amount: Money | None = None) -> Payment:
        return drive(self._flow.capture(payment_id, amount=amount))

    def cancel(self, payment_id: str, *, reason: CancellationReason | None = None) -> Payment:
        return drive(self._flow.cancel(payment_id, reason=reason))

    def refund(self, payment_id: str, *, reference: str, amount: Money | None = None,
               reason: RefundReason | None = None) -> Refund:
        return drive(self._flow.refund(payment_id, reference=reference, amount=amount,
                                       reason=reason))

    def get(self, payment_id: str) -> Payment:
        return drive(self._flow.get(payment_id))

    def find_by_reference(self, reference: str) -> Payment | None:
        return drive(self._flow.find_by_reference(reference))

    def reconcile(self, reference: str) -> Payment | None:
        return drive(self._flow.reconcile(reference))
