"""The driver of durable idempotency, shared by every implementation of the payment port.

An adapter describes one logical operation as a :class:`KeyedOperation` (how to send it with a
key, how to fetch its result by id, how to ask the provider whether it happened); the
:class:`IdempotencyKeeper` reserves the record before anything is sent, applies
:func:`~egress.payments.idempotency.decide`, and records the outcome. It never retries: retries
of one attempt belong to the HTTP pipeline, under the same key.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Any, Final, Generic, Literal, Protocol, TypeVar

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import (
    AuthenticationFailed,
    ConfigurationError,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
)
from egress.events import NULL_SINK, EventSink, Reconciled, emit_safely
from egress.payments.idempotency import (
    DEFAULT_MAX_KEY_AGE,
    DEFAULT_SETTLE_AFTER,
    PROVIDER_KEY_LIFETIME,
    IdempotencyKeyRenewed,
    IdempotencyKeyReused,
    IdempotencyRecord,
    IdempotencyStore,
    OutcomeUnknownRaised,
    RecordState,
    Step,
    decide,
)

__all__ = ["PROVEN_NO_EFFECT", "IdempotencyKeeper", "KeyedCall", "KeyedOperation", "Proof"]

R = TypeVar("R")

# Errors that prove the provider did nothing: the next call may use a new key. The adapter
# raises them only with proof from the provider (see KeyedOperation.send): after an ambiguous
# attempt, only the provider's replay of the key's stored outcome is such proof.
_NO_EFFECT = (PaymentDeclined, InvalidPaymentRequest, AuthenticationFailed)


class Proof(Enum):
    """What :meth:`KeyedOperation.settle` answers when the provider itself proves the key's
    attempt ended without effect (e.g. a declined PaymentIntent tagged with this key's
    generation): trusted at once, without waiting ``settle_after``."""

    NO_EFFECT = "no-effect"


PROVEN_NO_EFFECT: Final = Proof.NO_EFFECT
# How many times a reservation is re-read when another worker renews it concurrently.
_MAX_RACES = 5


class KeyedOperation(Protocol[R]):
    """One logical operation, as an adapter describes it to the keeper."""

    @property
    def operation(self) -> str: ...

    @property
    def reference(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    async def send(self, key: str, *, resumed: bool) -> R:
        """Send the request with idempotency key ``key``; map failures to domain errors.

        ``resumed`` says the key was reserved by an earlier call that may have sent it: a
        failure now that proves nothing about that earlier attempt must be
        :class:`OutcomeUnknown`, as must a call whose every attempt ended ambiguously.
        """
        ...

    async def fetch(self, result_id: str) -> R:
        """Read the current state of a result this operation made before."""
        ...

    async def settle(self, record: IdempotencyRecord) -> R | Literal[Proof.NO_EFFECT] | None:
        """Ask the provider whether the operation happened: its result, ``None`` if a
        consistent read shows nothing (trusted only ``settle_after`` past the last attempt), or
        :data:`PROVEN_NO_EFFECT` if the provider shows this key's attempt ended without effect.
        """
        ...

    def result_id(self, result: R) -> str: ...

    async def lookup(self) -> R | None:
        """Before the first attempt of a reference with no local record: the result the
        provider already holds for it (a lost or new store), or ``None``. Raise
        :class:`~egress.errors.IdempotencyMismatch` if it holds one for another request."""
        ...


class KeyedCall(Generic[R]):
    """A :class:`KeyedOperation` assembled from functions: what adapters usually build."""

    __slots__ = ("_fetch", "_lookup", "_result_id", "_send", "_settle", "fingerprint",
                 "no_lookup", "operation", "reference")

    def __init__(
        self,
        *,
        operation: str,
        reference: str,
        fingerprint: str,
        send: Callable[[str, bool], Coroutine[Any, Any, R]],
        fetch: Callable[[str], Awaitable[R]],
        settle: Callable[[IdempotencyRecord], Awaitable[R | Literal[Proof.NO_EFFECT] | None]],
        result_id: Callable[[R], str],
        lookup: Callable[[], Awaitable[R | None]] | None = None,
    ) -> None:
        self.operation = operation
        self.reference = reference
        self.fingerprint = fingerprint
        self._send = send
        self._fetch = fetch
        self._settle = settle
        self._result_id = result_id
        self._lookup = lookup
        #: Nothing to look up: the keeper skips the call (and its coroutine) altogether.
        self.no_lookup = lookup is None

    def send(self, key: str, *, resumed: bool) -> Coroutine[Any, Any, R]:
        # The adapter's own coroutine, not one more around it: awaited by the keeper.
        return self._send(key, resumed)

    async def fetch(self, result_id: str) -> R:
        return await self._fetch(result_id)

    async def settle(self, record: IdempotencyRecord) -> R | Literal[Proof.NO_EFFECT] | None:
        return await self._settle(record)

    def result_id(self, result: R) -> str:
        return self._result_id(result)

    async def lookup(self) -> R | None:
        return None if self._lookup is None else await self._lookup()

    def __repr__(self) -> str:
        return f"KeyedCall({self.operation!r})"


class IdempotencyKeeper:
    """Reserve, decide, send, record. One instance per adapter; safe to share across tasks.

    ==================  ===========  ===================================================
    setting             default      meaning
    ==================  ===========  ===================================================
    ``scope``           (required)   namespace of the keys (one per provider account)
    ``max_age``         82800.0      a key older than this (23 h) is never re-sent blindly
    ``settle_after``    600.0        absence is trusted only this long after the last try
    ==================  ===========  ===================================================
    """

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        scope: str,
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
        max_age: float = DEFAULT_MAX_KEY_AGE,
        settle_after: float = DEFAULT_SETTLE_AFTER,
    ) -> None:
        if not isinstance(scope, str) or not scope:
            raise ConfigurationError("IdempotencyKeeper: scope must be a non-empty string")
        if not (isinstance(max_age, int | float) and math.isfinite(max_age)
                and 0 < max_age <= PROVIDER_KEY_LIFETIME):
            raise ConfigurationError(
                f"IdempotencyKeeper: max_age must be in (0, {PROVIDER_KEY_LIFETIME:.0f}] "
                f"seconds, got {max_age!r}")
        if not (isinstance(settle_after, int | float) and math.isfinite(settle_after)
                and settle_after >= 0):
            raise ConfigurationError(
                f"IdempotencyKeeper: settle_after must be >= 0, got {settle_after!r}")
        self.store = store
        self.scope = scope
        self.clock = clock
        self.sink = sink
        self.max_age = float(max_age)
        self.settle_after = float(settle_after)

    def __repr__(self) -> str:
        return f"IdempotencyKeeper(scope={self.scope!r}, store={self.store!r})"

    async def run(self, op: KeyedOperation[R]) -> R:
        """Run ``op`` exactly once at the provider, however often it is called."""
        now = self.clock.wall()
        record, inserted = await self.store.reserve(
            IdempotencyRecord.new(self.scope, op.operation, op.reference, op.fingerprint, now))
        for _ in range(_MAX_RACES):
            if inserted:
                if not (isinstance(op, KeyedCall) and op.no_lookup):
                    found = await self._lookup(op, record)
                    if found is not None:
                        return found
                return await self._send(op, record, resumed=False)
            step = decide(record, fingerprint=op.fingerprint, now=now, max_age=self.max_age)
            if step is Step.RETURN and record.result_id is not None:
                return await op.fetch(record.result_id)
            if step is Step.SETTLE:
                found = await self._settle(op, record)
                if found is not None:
                    return found
                step = Step.RENEW
            if step is Step.RENEW:
                successor = record.renewed(op.fingerprint, self.clock.wall())
            else:
                # Same key again. updated_at doubles as "an attempt may have been sent then".
                successor = record.with_state(RecordState.PENDING, self.clock.wall())
            if await self.store.replace(successor, expected_key=record.key):
                if step is Step.RENEW:
                    emit_safely(self.sink, IdempotencyKeyRenewed(
                        operation=op.operation, at=self.clock.now(),
                        generation=successor.generation, reason=record.state.value))
                else:
                    emit_safely(self.sink, IdempotencyKeyReused(
                        operation=op.operation, at=self.clock.now(), state=record.state.value,
                        age=record.age(now)))
                return await self._send(op, successor, resumed=step is Step.SEND)
            # Another worker changed the record first: read it again and decide again.
            again = await self.store.get(*record.ident)
            if again is None:
                record, inserted = await self.store.reserve(
                    IdempotencyRecord.new(self.scope, op.operation, op.reference,
                                          op.fingerprint, self.clock.wall()))
            else:
                record, inserted = again, False
        raise OutcomeUnknown(
            f"{op.operation}: the idempotency record kept changing under concurrent callers",
            idempotency_key=record.key, reference=op.reference, operation=op.operation)

    async def _send(self, op: KeyedOperation[R], record: IdempotencyRecord, *,
                    resumed: bool) -> R:
        try:
            result = await op.send(record.key, resumed=resumed)
        except _NO_EFFECT:
            await self._mark(record, RecordState.FAILED)
            raise
        except OutcomeUnknown:
            await self._mark(record, RecordState.UNKNOWN)
            emit_safely(self.sink, OutcomeUnknownRaised(operation=op.operation,
                                                           at=self.clock.now()))
            raise
        # _mark, inline: this is every payment's last step.
        await self.store.replace(record.with_state(RecordState.SUCCEEDED, self.clock.wall(),
                                                   op.result_id(result)),
                                 expected_key=record.key)
        return result

    async def _lookup(self, op: KeyedOperation[R], record: IdempotencyRecord) -> R | None:
        # No local record: the store may be new or lost. Within the provider's key lifetime the
        # derived key replays any earlier attempt; beyond it only the provider's own records
        # tell, so the operation may look the reference up once, before the first byte is sent.
        try:
            found = await op.lookup()
        except Exception:
            # Nothing was sent: drop the reservation, so the next call is a first attempt
            # again (not a resumed, possibly-sent one).
            await self.store.delete(*record.ident, expected_key=record.key)
            raise
        if found is not None:
            await self._mark(record, RecordState.SUCCEEDED, op.result_id(found))
        return found

    async def _mark(self, record: IdempotencyRecord, state: RecordState,
                    result_id: str | None = None) -> None:
        await self.store.replace(record.with_state(state, self.clock.wall(), result_id),
                                 expected_key=record.key)

    async def _settle(self, op: KeyedOperation[R], record: IdempotencyRecord) -> R | None:
        """Ask the provider. Found: record it and return it. Proven absent: ``None``.

        Raises :class:`OutcomeUnknown` when absence cannot be trusted yet (the last attempt may
        still be in flight).
        """
        found = await op.settle(record)
        if found is Proof.NO_EFFECT:
            await self._mark(record, RecordState.FAILED)
            return None
        if found is not None:
            await self._mark(record, RecordState.SUCCEEDED, op.result_id(found))
            return found
        quiet_for = self.clock.wall() - record.updated_at
        if quiet_for < self.settle_after:
            raise OutcomeUnknown(
                f"{op.operation}: the provider shows no result yet, but the last attempt was "
                f"{max(quiet_for, 0.0):.0f}s ago; absence is trusted after "
                f"{self.settle_after:.0f}s (or call {op.operation} again: same key, no double "
                f"effect)",
                idempotency_key=record.key, reference=op.reference, operation=op.operation)
        await self._mark(record, RecordState.FAILED)
        return None

    async def reconcile(self, op: KeyedOperation[R]) -> R | None:
        """Settle a logical operation by asking the provider (see :meth:`_reconcile`), and say
        how it was settled (a ``payments.reconciled`` event)."""
        found = await self._reconcile(op)
        emit_safely(self.sink, Reconciled(operation=op.operation, at=self.clock.now(),
                                          how="absent" if found is None else "found"))
        return found

    async def _reconcile(self, op: KeyedOperation[R]) -> R | None:
        """Settle a logical operation by asking the provider; never sends the operation itself.

        Returns the result if it happened, ``None`` if the provider proves it did not (the
        next call then uses a new key) or if nothing was ever recorded and the provider knows
        nothing either. Raises :class:`OutcomeUnknown` while that cannot be proven yet.

        The provider is asked whatever the local record says: a FAILED record is only as good
        as the proof that wrote it, so a result found for it wins (and is recorded).

        A result found for an existing record is recorded (the next call returns it). Without a
        local record nothing is written: the original request, hence its fingerprint, is not
        known here.
        """
        record = await self.store.get(self.scope, op.operation, op.reference)
        if record is None:
            found = await op.settle(_phantom(self.scope, op, self.clock.wall()))
            return None if found is Proof.NO_EFFECT else found
        if record.state is RecordState.SUCCEEDED and record.result_id is not None:
            return await op.fetch(record.result_id)
        if record.state is RecordState.FAILED:
            seen = await op.settle(record)
            if seen is None or seen is Proof.NO_EFFECT:
                return None
            await self._mark(record, RecordState.SUCCEEDED, op.result_id(seen))
            return seen
        return await self._settle(op, record)


def _phantom(scope: str, op: KeyedOperation[R], now: float) -> IdempotencyRecord:
    # No local record: ask the provider about the reference over the whole key lifetime.
    return IdempotencyRecord.new(scope, op.operation, op.reference, op.fingerprint,
                                 now - PROVIDER_KEY_LIFETIME)
