"""The rooms of :mod:`egress.payments.idempotency` (import from there)."""
