"""The PaymentService port: what domain code asks of a payment provider.

Implementations: :class:`egress.adapters.stripe.StripePayments` (the real provider) and
:class:`egress.testing.InMemoryPayments` (a fake with scriptable outcomes). One contract test
suite (``tests/contract/``) runs against both, and against their sync faces
(:class:`SyncPaymentService`: :class:`egress.adapters.stripe.SyncStripePayments` and
:class:`egress.testing.SyncInMemoryPayments`), for Django, Flask, Celery and other sync code.

Every method that changes something is idempotent by its ``reference``: calling it again with
the same reference and the same parameters (after a timeout, in another process, after a crash)
never acts twice; with other parameters it raises :class:`~egress.errors.IdempotencyMismatch`
before sending anything.

Errors, all from :mod:`egress.errors`:

=========================  ======================================================================
``PaymentDeclined``        the provider said no (``decline_code``); never retried
``InvalidPaymentRequest``  the request is wrong (locally or per the provider)
``AuthenticationFailed``   the credentials were refused
``ProviderUnavailable``    the provider could not be reached and nothing was done
``IdempotencyMismatch``    the reference was used before with other parameters
``OutcomeUnknown``         sent, but no answer: call the same method again or ``reconcile``
=========================  ======================================================================
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from egress.payments.models import (
    CancellationReason,
    Payment,
    PaymentRequest,
    Refund,
    RefundReason,
)
from egress.payments.money import Money

__all__ = ["PaymentService", "SyncPaymentService"]


@runtime_checkable
class PaymentService(Protocol):
    """A payment provider, in domain terms."""

    async def create(self, request: PaymentRequest) -> Payment:
        """Create the payment for ``request.reference`` (and confirm it if ``request.confirm``).

        Returns the payment in whatever state the provider reached: ``SUCCEEDED``,
        ``REQUIRES_CAPTURE`` (``capture=False``), ``REQUIRES_ACTION`` (3-D Secure), ...
        A second call with the same request returns the same payment.
        """
        ...

    async def confirm(self, payment_id: str, *, payment_method: str | None = None) -> Payment:
        """Confirm a payment created with ``confirm=False`` (optionally with a payment method)."""
        ...

    async def capture(self, payment_id: str, *, amount: Money | None = None) -> Payment:
        """Capture an authorized payment (all of it, or ``amount`` of it)."""
        ...

    async def cancel(self, payment_id: str, *,
                     reason: CancellationReason | None = None) -> Payment:
        """Cancel a payment that has not succeeded; an authorization is released."""
        ...

    async def refund(self, payment_id: str, *, reference: str, amount: Money | None = None,
                     reason: RefundReason | None = None) -> Refund:
        """Refund a succeeded payment (all of it, or ``amount``).

        ``reference`` is the caller's id of this refund: the same reference never refunds
        twice.
        """
        ...

    async def get(self, payment_id: str) -> Payment:
        """The payment's current state. Raises ``InvalidPaymentRequest`` if it does not exist."""
        ...

    async def find_by_reference(self, reference: str) -> Payment | None:
        """The payment created for ``reference``, or ``None`` if there is none (yet)."""
        ...

    async def reconcile(self, reference: str) -> Payment | None:
        """Settle an ``OutcomeUnknown`` from :meth:`create` by asking the provider.

        Returns the payment if it exists (and records it, so ``create`` returns it too), or
        ``None`` once the provider proves that no payment was made (the next ``create`` for the
        reference then uses a new idempotency key). Raises ``OutcomeUnknown`` again while that
        cannot be proven yet. Never creates anything.
        """
        ...


@runtime_checkable
class SyncPaymentService(Protocol):
    """:class:`PaymentService` for sync code: the same methods, rules and errors, blocking.

    Each method means exactly what its namesake in :class:`PaymentService` means (the
    implementations run the same code for both faces).
    """

    def create(self, request: PaymentRequest) -> Payment: ...

    def confirm(self, payment_id: str, *, payment_method: str | None = None) -> Payment: ...

    def capture(self, payment_id: str, *, amount: Money | None = None) -> Payment: ...

    def cancel(self, payment_id: str, *,
               reason: CancellationReason | None = None) -> Payment: ...

    def refund(self, payment_id: str, *, reference: str, amount: Money | None = None,
               reason: RefundReason | None = None) -> Refund: ...

    def get(self, payment_id: str) -> Payment: ...

    def find_by_reference(self, reference: str) -> Payment | None: ...

    def reconcile(self, reference: str) -> Payment | None: ...
