"""InMemoryPayments: a fake of the PaymentService port with scriptable outcomes (and
SyncInMemoryPayments, the same fake for sync code).

It behaves like a provider with an idempotency layer (it replays the first answer to a key, and
refuses a key reused with other parameters) behind the same client-side
:class:`~egress.payments.IdempotencyKeeper` the real adapters use, so domain tests see the same
idempotency, mismatch, decline and OutcomeUnknown behaviour as with Stripe. The contract suite
(``tests/contract/``) holds both to the same rules.

Outcomes are scripted two ways:

* **payment methods** named like Stripe's test ones: ``pm_card_visa`` (and any other id)
  succeeds, ``pm_card_chargeDeclined`` declines (``generic_decline``),
  ``pm_card_chargeDeclinedInsufficientFunds`` declines with ``insufficient_funds``,
  ``pm_card_authenticationRequired`` ends in ``REQUIRES_ACTION``;
* **faults** queued for the next calls: :meth:`InMemoryPayments.fail_next` with
  :class:`PaymentFault` values (``UNAVAILABLE``: nothing done; ``LOST_REQUEST``: sent, never
  arrived; ``LOST_REPLY``: done, the answer lost) or any exception to raise.

>>> payments = InMemoryPayments()
>>> payments.fail_next(PaymentFault.LOST_REPLY)     # the next write succeeds, answer lost
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Self, TypeVar

from egress._clock import SYSTEM_CLOCK, Clock
from egress.errors import (
    AuthenticationFailed,
    IdempotencyMismatch,
    InvalidPaymentRequest,
    OutcomeUnknown,
    PaymentDeclined,
    ProviderUnavailable,
)
from egress.events import NULL_SINK, EventSink
from egress.payments._drive import AsyncFace, SyncFace, blocking_store
from egress.payments.idempotency import (
    DEFAULT_MAX_KEY_AGE,
    DEFAULT_SETTLE_AFTER,
    IdempotencyRecord,
    IdempotencyStore,
)
from egress.payments.keeper import IdempotencyKeeper, KeyedCall
from egress.payments.models import (
    CancellationReason,
    Payment,
    PaymentRequest,
    PaymentStatus,
    Refund,
    RefundReason,
    RefundStatus,
    check_reference,
    latest_for_reference,
    request_fingerprint,
)
from egress.payments.money import Money
from egress.payments.service import PaymentService
from egress.stores.idempotency_memory import MemoryIdempotencyStore

__all__ = ["DECLINING_METHODS", "InMemoryPayments", "PaymentFault", "SyncInMemoryPayments"]

T = TypeVar("T")


class PaymentFault(Enum):
    """A scripted failure of the next write call."""

    UNAVAILABLE = "unavailable"
    """Refused before reaching the provider: ``ProviderUnavailable``, nothing done."""
    LOST_REQUEST = "lost_request"
    """Sent, never arrived: ``OutcomeUnknown``, nothing done."""
    LOST_REPLY = "lost_reply"
    """Done at the provider, the answer lost: ``OutcomeUnknown``."""


#: Payment methods that decline, with Stripe's ``(code, decline_code)``.
DECLINING_METHODS: Mapping[str, tuple[str, str]] = {
    "pm_card_chargeDeclined": ("card_declined", "generic_decline"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card_declined", "insufficient_funds"),
    "pm_card_chargeDeclinedFraudulent": ("card_declined", "fraudulent"),
    "pm_card_chargeDeclinedLostCard": ("card_declined", "lost_card"),
    "pm_card_chargeDeclinedStolenCard": ("card_declined", "stolen_card"),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card"),
    "pm_card_chargeDeclinedIncorrectCvc": ("incorrect_cvc", "incorrect_cvc"),
}
#: Payment methods whose confirmation needs the customer (3-D Secure).
ACTION_METHODS = frozenset({"pm_card_authenticationRequired", "pm_card_threeDSecure2Required",
                            "pm_card_threeDSecureRequired"})

_CANCELABLE = frozenset({PaymentStatus.REQUIRES_PAYMENT_METHOD,
                         PaymentStatus.REQUIRES_CONFIRMATION, PaymentStatus.REQUIRES_ACTION,
                         PaymentStatus.REQUIRES_CAPTURE, PaymentStatus.PROCESSING})
_CONFIRMABLE = frozenset({PaymentStatus.REQUIRES_PAYMENT_METHOD,
                          PaymentStatus.REQUIRES_CONFIRMATION})


@dataclass
class _Intent:
    payment: Payment
    capture_manual: bool
    refunded: Money
    refunds: list[str] = field(default_factory=list)


class _InMemoryFace:
    """What both faces of the in-memory fake share: settings, scripting and inspection. The
    port's logic is :class:`_InMemoryFlow`, written once and run by both.

    ``store`` is the client-side idempotency store (pass a
    :class:`~egress.stores.idempotency_sqlite.SqliteIdempotencyStore` and a second instance
    sharing :attr:`provider` to simulate a restart). Inspection: :meth:`payments`,
    :meth:`charges` (payments that moved money), :attr:`calls` (every provider call).
    """

    def __init__(
        self,
        *,
        store: IdempotencyStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        sink: EventSink = NULL_SINK,
        scope: str = "in-memory",
        max_age: float = DEFAULT_MAX_KEY_AGE,
        settle_after: float = DEFAULT_SETTLE_AFTER,
        provider: _Provider | None = None,
    ) -> None:
        self.clock = clock
        self.store = store if store is not None else MemoryIdempotencyStore()
        self.keeper: IdempotencyKeeper = IdempotencyKeeper(
            self._face_store(self.store), scope=scope, clock=clock, sink=sink, max_age=max_age,
            settle_after=settle_after)
        #: The provider side: shared by instances that stand for restarts of one process.
        self.provider = provider if provider is not None else _Provider(clock)
        self._flow: PaymentService = _InMemoryFlow(self.provider, self.keeper)

    def _face_store(self, store: IdempotencyStore) -> IdempotencyStore:
        """The store as this face's keeper sees it."""
        return store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.provider.intents)} payments)"

    def restarted(self, *, store: IdempotencyStore | None = None) -> Self:
        """A new client (as after a process restart) talking to the same provider."""
        return type(self)(store=store if store is not None else self.store,
                                clock=self.clock, scope=self.keeper.scope,
                                max_age=self.keeper.max_age,
                                settle_after=self.keeper.settle_after, provider=self.provider)

    # -- scripting and inspection ---------------------------------------------------------------

    def fail_next(self, *faults: PaymentFault | BaseException,
                  operation: str | None = None) -> None:
        """Queue failures for the next write calls (``operation``: only calls of that name,
        one of ``create confirm capture cancel refund``)."""
        with self.provider.lock:
            self.provider.faults.extend((operation, fault) for fault in faults)

    def decline_next(self, decline_code: str = "generic_decline", *,
                     code: str = "card_declined", operation: str | None = "create") -> None:
        """Make the next ``operation`` call decline (nothing is created)."""
        self.fail_next(PaymentDeclined(f"declined ({decline_code})", decline_code=decline_code,
                                       code=code), operation=operation)

    @property
    def calls(self) -> list[str]:
        """Every call that reached the provider, by operation name, in order."""
        return list(self.provider.calls)

    def payments(self) -> list[Payment]:
        """Every payment at the provider, oldest first."""
        return self.provider.payments()

    def charges(self, reference: str | None = None) -> list[Payment]:
        """Payments that moved (or hold) money, optionally for one reference."""
        moved = {PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING,
                 PaymentStatus.REQUIRES_CAPTURE}
        return [p for p in self.payments()
                if p.status in moved and (reference is None or p.reference == reference)]

    def refunds(self) -> list[Refund]:
        return list(self.provider.refunds.values())

    def complete_action(self, payment_id: str, *, succeed: bool = True) -> Payment:
        """The customer finishes (or fails) 3-D Secure for a ``REQUIRES_ACTION`` payment."""
        return self.provider.complete_action(payment_id, succeed=succeed)


class InMemoryPayments(_InMemoryFace, AsyncFace):
    """A :class:`~egress.payments.PaymentService` that keeps everything in memory.

    ``store`` is the client-side idempotency store (pass a
    :class:`~egress.stores.idempotency_sqlite.SqliteIdempotencyStore` and a second instance
    sharing :attr:`provider` to simulate a restart). Inspection: :meth:`payments`,
    :meth:`charges` (payments that moved money), :attr:`calls` (every provider call).
    """


class SyncInMemoryPayments(_InMemoryFace, SyncFace):
    """:class:`InMemoryPayments` for sync code: a :class:`~egress.payments.SyncPaymentService`
    with the same settings, scripting, inspection and behaviour (the same code runs both).

    ``store`` must have sync methods (the in-memory default, or a ``SqliteIdempotencyStore``).
    """

    def _face_store(self, store: IdempotencyStore) -> IdempotencyStore:
        return blocking_store(store, "SyncInMemoryPayments")


class _InMemoryFlow:
    """The port's logic over the fake provider, for either face: it awaits only the keeper (and
    so the store); the provider answers at once."""

    def __init__(self, provider: _Provider, keeper: IdempotencyKeeper) -> None:
        self.provider = provider
        self.keeper = keeper
        self.store = keeper.store


    async def create(self, request: PaymentRequest) -> Payment:
        if not isinstance(request, PaymentRequest):
            raise InvalidPaymentRequest("create() takes a PaymentRequest")
        fingerprint = request_fingerprint("create", request.canonical())
        call: KeyedCall[Payment] = KeyedCall(
            operation="create", reference=request.reference, fingerprint=fingerprint,
            send=lambda key, resumed: self.provider.write(
                "create", key, fingerprint, resumed, reference=request.reference,
                action=lambda: self.provider.create(request)),
            fetch=self.get, settle=self._settle_create, result_id=_payment_id)
        return await self.keeper.run(call)

    async def confirm(self, payment_id: str, *, payment_method: str | None = None) -> Payment:
        fingerprint = request_fingerprint("confirm", payment_id, payment_method)
        return await self._keyed_payment(
            "confirm", payment_id, fingerprint,
            lambda: self.provider.confirm(payment_id, payment_method),
            lambda p: p.status not in _CONFIRMABLE)

    async def capture(self, payment_id: str, *, amount: Money | None = None) -> Payment:
        fingerprint = request_fingerprint("capture", payment_id,
                                          None if amount is None else str(amount))
        return await self._keyed_payment(
            "capture", payment_id, fingerprint,
            lambda: self.provider.capture(payment_id, amount),
            lambda p: p.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING))

    async def cancel(self, payment_id: str, *,
                     reason: CancellationReason | None = None) -> Payment:
        fingerprint = request_fingerprint("cancel", payment_id,
                                          None if reason is None else reason.value)
        return await self._keyed_payment(
            "cancel", payment_id, fingerprint,
            lambda: self.provider.cancel(payment_id, reason),
            lambda p: p.status is PaymentStatus.CANCELED)

    async def refund(self, payment_id: str, *, reference: str, amount: Money | None = None,
                     reason: RefundReason | None = None) -> Refund:
        check_reference(reference)
        fingerprint = request_fingerprint("refund", payment_id,
                                          None if amount is None else str(amount),
                                          None if reason is None else reason.value)

        async def settle(record: IdempotencyRecord) -> Refund | None:
            return self.provider.find_refund(payment_id, reference)

        call: KeyedCall[Refund] = KeyedCall(
            operation="refund", reference=reference, fingerprint=fingerprint,
            send=lambda key, resumed: self.provider.write(
                "refund", key, fingerprint, resumed, reference=reference,
                action=lambda: self.provider.refund(payment_id, reference, amount, reason)),
            fetch=self._get_refund, settle=settle, result_id=lambda r: r.id)
        return await self.keeper.run(call)

    async def get(self, payment_id: str) -> Payment:
        return self.provider.read("get", lambda: self.provider.intent(payment_id).payment)

    async def find_by_reference(self, reference: str) -> Payment | None:
        check_reference(reference)
        record = await self.store.get(self.keeper.scope, "create", reference)
        if record is not None and record.result_id is not None:
            return await self.get(record.result_id)
        return self.provider.read("search", lambda: latest_for_reference(
            reversed(self.provider.payments()), reference))

    async def reconcile(self, reference: str) -> Payment | None:
        check_reference(reference)
        call: KeyedCall[Payment] = KeyedCall(
            operation="create", reference=reference, fingerprint="",
            send=_never_sent, fetch=self.get, settle=self._settle_create, result_id=_payment_id)
        return await self.keeper.reconcile(call)

    # -- helpers ----------------------------------------------------------------------------------

    async def _keyed_payment(self, operation: str, payment_id: str, fingerprint: str,
                             action: Callable[[], Payment],
                             happened: Callable[[Payment], bool]) -> Payment:
        async def settle(record: IdempotencyRecord) -> Payment | None:
            payment = await self.get(payment_id)
            return payment if happened(payment) else None

        call: KeyedCall[Payment] = KeyedCall(
            operation=operation, reference=payment_id, fingerprint=fingerprint,
            send=lambda key, resumed: self.provider.write(
                operation, key, fingerprint, resumed, reference=payment_id, action=action),
            fetch=self.get, settle=settle, result_id=_payment_id)
        return await self.keeper.run(call)

    async def _settle_create(self, record: IdempotencyRecord) -> Payment | None:
        return self.provider.read("search", lambda: latest_for_reference(
            reversed(self.provider.payments()), record.reference, skip_failed=True))

    async def _get_refund(self, refund_id: str) -> Refund:
        def read() -> Refund:
            refund = self.provider.refunds.get(refund_id)
            if refund is None:
                raise InvalidPaymentRequest("no such refund", param="refund")
            return refund
        return self.provider.read("get_refund", read)


def _payment_id(payment: Payment) -> str:
    return payment.id


async def _never_sent(key: str, resumed: bool) -> Payment:  # pragma: no cover - reconcile only
    raise AssertionError("reconcile never sends")


class _Provider:
    """The provider side of the fake: objects, an idempotency layer, scripted faults."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.intents: dict[str, _Intent] = {}
        self.refunds: dict[str, Refund] = {}
        self.replays: dict[str, tuple[str, object]] = {}
        self.faults: list[tuple[str | None, PaymentFault | BaseException]] = []
        self.calls: list[str] = []
        self._ids = itertools.count(1)

    def _take_fault(self, operation: str) -> PaymentFault | BaseException | None:
        for index, (wanted, fault) in enumerate(self.faults):
            if wanted is None or wanted == operation:
                del self.faults[index]
                return fault
        return None

    async def write(self, operation: str, key: str, fingerprint: str, resumed: bool, *,
                    reference: str, action: Callable[[], T]) -> T:
        """One write: faults, then the idempotency layer, then the action."""
        def unknown(why: str) -> OutcomeUnknown:
            return OutcomeUnknown(f"{operation}: {why}", idempotency_key=key,
                                  reference=reference, operation=operation)

        with self.lock:
            fault = self._take_fault(operation)
            if fault is PaymentFault.UNAVAILABLE:
                if resumed:
                    raise unknown("provider unavailable after an earlier attempt")
                raise ProviderUnavailable(f"{operation}: provider unavailable (scripted)")
            if fault is PaymentFault.LOST_REQUEST:
                raise unknown("request lost (scripted)")
            if isinstance(fault, BaseException) and not isinstance(fault, PaymentDeclined):
                # Refused before the provider's idempotency layer, like an HTTP 401: after an
                # earlier attempt that may have gone through, that proves nothing.
                if resumed and isinstance(fault, AuthenticationFailed):
                    raise unknown(f"{type(fault).__name__} after an earlier attempt")
                raise fault
            self.calls.append(operation)
            replay = self.replays.get(key)
            if replay is not None:
                if replay[0] != fingerprint:
                    raise IdempotencyMismatch(f"{operation}: key reused with other parameters")
                outcome = replay[1]  # a scripted decline cannot change what the key did
            else:
                try:
                    if isinstance(fault, PaymentDeclined):
                        raise fault  # executed, and declined: saved under the key
                    outcome = action()
                except PaymentDeclined as exc:
                    outcome = exc
                except InvalidPaymentRequest:
                    raise  # refused before execution: nothing is saved under the key
                self.replays[key] = (fingerprint, outcome)
            if fault is PaymentFault.LOST_REPLY:
                raise unknown("reply lost (scripted)")
            if isinstance(outcome, PaymentDeclined):
                raise PaymentDeclined(str(outcome), decline_code=outcome.decline_code,
                                      code=outcome.code)
            return outcome  # type: ignore[return-value]

    def payments(self) -> list[Payment]:
        return [intent.payment for intent in self.intents.values()]

    def read(self, operation: str, action: Callable[[], T]) -> T:
        with self.lock:
            self.calls.append(operation)
            return action()

    # -- objects --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(int(self.clock.wall()), tz=UTC)

    def intent(self, payment_id: str) -> _Intent:
        intent = self.intents.get(payment_id)
        if intent is None:
            raise InvalidPaymentRequest("no such payment", param="payment_id")
        return intent

    def _set(self, intent: _Intent, **changes: object) -> Payment:
        intent.payment = replace(intent.payment, **changes)  # type: ignore[arg-type]
        return intent.payment

    def create(self, request: PaymentRequest) -> Payment:
        metadata = dict(request.metadata)
        payment = Payment(
            id=f"pi_mem_{next(self._ids)}",
            status=(PaymentStatus.REQUIRES_CONFIRMATION if request.payment_method
                    else PaymentStatus.REQUIRES_PAYMENT_METHOD),
            amount=request.amount, created=self._now(),
            reference=request.reference, customer=request.customer,
            payment_method=request.payment_method, description=request.description,
            metadata=metadata, amount_received=Money.zero(request.amount.currency),
            amount_capturable=Money.zero(request.amount.currency))
        intent = _Intent(payment, capture_manual=not request.capture,
                         refunded=Money.zero(request.amount.currency))
        self.intents[payment.id] = intent
        if request.confirm:
            return self._confirm(intent, request.payment_method)
        return payment

    def _confirm(self, intent: _Intent, payment_method: str | None) -> Payment:
        method = payment_method or intent.payment.payment_method
        if method is None:
            raise InvalidPaymentRequest("confirm needs a payment_method", param="payment_method")
        zero = Money.zero(intent.payment.amount.currency)
        if method in DECLINING_METHODS:
            code, decline_code = DECLINING_METHODS[method]
            self._set(intent, status=PaymentStatus.REQUIRES_PAYMENT_METHOD,
                      payment_method=None, decline_code=decline_code)
            raise PaymentDeclined(f"card declined ({decline_code})", decline_code=decline_code,
                                  code=code)
        if method in ACTION_METHODS:
            return self._set(intent, status=PaymentStatus.REQUIRES_ACTION,
                             payment_method=method, decline_code=None)
        if intent.capture_manual:
            return self._set(intent, status=PaymentStatus.REQUIRES_CAPTURE,
                             payment_method=method, decline_code=None,
                             amount_capturable=intent.payment.amount)
        return self._set(intent, status=PaymentStatus.SUCCEEDED, payment_method=method,
                         decline_code=None, amount_received=intent.payment.amount,
                         amount_capturable=zero)

    def confirm(self, payment_id: str, payment_method: str | None) -> Payment:
        intent = self.intent(payment_id)
        if intent.payment.status not in _CONFIRMABLE:
            raise InvalidPaymentRequest(
                f"cannot confirm a payment in status {intent.payment.status.value}")
        return self._confirm(intent, payment_method)

    def complete_action(self, payment_id: str, *, succeed: bool) -> Payment:
        with self.lock:
            intent = self.intent(payment_id)
            if intent.payment.status is not PaymentStatus.REQUIRES_ACTION:
                raise InvalidPaymentRequest("the payment does not require an action")
            if not succeed:
                return self._set(intent, status=PaymentStatus.REQUIRES_PAYMENT_METHOD,
                                 payment_method=None, decline_code="authentication_failed")
            if intent.capture_manual:
                return self._set(intent, status=PaymentStatus.REQUIRES_CAPTURE,
                                 amount_capturable=intent.payment.amount)
            return self._set(intent, status=PaymentStatus.SUCCEEDED,
                             amount_received=intent.payment.amount)

    def capture(self, payment_id: str, amount: Money | None) -> Payment:
        intent = self.intent(payment_id)
        payment = intent.payment
        if payment.status is not PaymentStatus.REQUIRES_CAPTURE:
            raise InvalidPaymentRequest(
                f"cannot capture a payment in status {payment.status.value}")
        capturable = payment.amount_capturable or payment.amount
        taken = capturable if amount is None else amount
        if taken.currency != capturable.currency:
            raise InvalidPaymentRequest("capture amount is in another currency", param="amount")
        if taken > capturable or taken.is_zero():
            raise InvalidPaymentRequest("capture amount exceeds what is capturable",
                                        param="amount")
        return self._set(intent, status=PaymentStatus.SUCCEEDED, amount_received=taken,
                         amount_capturable=Money.zero(taken.currency))

    def cancel(self, payment_id: str, reason: CancellationReason | None) -> Payment:
        intent = self.intent(payment_id)
        if intent.payment.status not in _CANCELABLE:
            raise InvalidPaymentRequest(
                f"cannot cancel a payment in status {intent.payment.status.value}")
        return self._set(intent, status=PaymentStatus.CANCELED,
                         cancellation_reason=None if reason is None else reason.value,
                         amount_capturable=Money.zero(intent.payment.amount.currency))

    def refund(self, payment_id: str, reference: str, amount: Money | None,
               reason: RefundReason | None) -> Refund:
        intent = self.intent(payment_id)
        payment = intent.payment
        if payment.status is not PaymentStatus.SUCCEEDED or payment.amount_received is None:
            raise InvalidPaymentRequest(
                f"cannot refund a payment in status {payment.status.value}")
        remaining = payment.amount_received - intent.refunded
        wanted = remaining if amount is None else amount
        if wanted.currency != remaining.currency:
            raise InvalidPaymentRequest("refund amount is in another currency", param="amount")
        if wanted > remaining or wanted.is_zero():
            raise InvalidPaymentRequest("refund amount exceeds what is left to refund",
                                        param="amount")
        refund = Refund(id=f"re_mem_{next(self._ids)}", payment_id=payment_id, amount=wanted,
                        status=RefundStatus.SUCCEEDED, created=self._now(),
                        reference=reference, reason=reason)
        intent.refunded = intent.refunded + wanted
        intent.refunds.append(refund.id)
        self.refunds[refund.id] = refund
        return refund

    def find_refund(self, payment_id: str, reference: str) -> Refund | None:
        with self.lock:
            self.calls.append("list_refunds")
            intent = self.intents.get(payment_id)
            if intent is None:
                return None
            for refund_id in reversed(intent.refunds):
                refund = self.refunds[refund_id]
                if refund.reference == reference:
                    return refund
            return None
