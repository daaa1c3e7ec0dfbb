"""What a circuit breaker around a :class:`~egress.payments.PaymentService` counts as a failure.

The generic breaker knows nothing of payments (layers only look down); pass this in::

    breaker = CircuitBreaker("payments", failure=payment_failure)
"""

from __future__ import annotations

from egress.errors import OutcomeUnknown, ProviderUnavailable
from egress.policies.breaker import default_failure

__all__ = ["payment_failure"]


def payment_failure(exc: BaseException) -> bool:
    """:func:`~egress.policies.default_failure`, plus the port's "provider unhealthy" errors:
    ``ProviderUnavailable`` and ``OutcomeUnknown`` (a decline is an answer, not a failure)."""
    return isinstance(exc, ProviderUnavailable | OutcomeUnknown) or default_failure(exc)
