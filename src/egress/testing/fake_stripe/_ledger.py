"""The ledger: every charge the fake made, recorded once, for invariant checks.

A *charge* is recorded the moment a confirmation succeeds: money captured
(``capture_method=automatic``) or held (``manual``, captured later or released by a cancel).
Declines are counted, never recorded as charges. Tests and ``egress demo`` read the ledger to
check what no client log can prove: that each payment was charged exactly once::

    assert not fake.ledger.double_charges()
    assert set(fake.ledger.charges_by_reference()) == set(my_succeeded_references)

Thread-safe: the server writes from its own thread while the test reads from another. Every
read returns immutable snapshots.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

__all__ = ["Charge", "Ledger", "LedgerCheck", "RefundRecord"]


@dataclass(frozen=True, slots=True)
class Charge:
    """One successful charge (a snapshot; the ledger keeps the current version)."""

    id: str
    payment_intent: str
    amount: int
    currency: str
    reference: str | None
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    captured: bool = True
    amount_captured: int = 0
    amount_refunded: int = 0
    released: bool = False
    created: int = 0
    idempotency_key: str | None = None

    @property
    def live(self) -> bool:
        """Money moved or is held: captured, or authorized and not released."""
        return not self.released

    @property
    def net(self) -> int:
        """Captured minus refunded, in the currency's minor unit."""
        return self.amount_captured - self.amount_refunded


@dataclass(frozen=True, slots=True)
class RefundRecord:
    id: str
    charge: str
    payment_intent: str
    amount: int
    currency: str
    reference: str | None
    created: int


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    """What :meth:`Ledger.verify` found; ``ok`` when the client's view matches the money."""

    paid: int
    charged: int
    double_charged: Mapping[str, tuple[Charge, ...]]
    missing: frozenset[str]
    unexpected: frozenset[str]
    unreferenced: int

    @property
    def ok(self) -> bool:
        return not (self.double_charged or self.missing or self.unexpected or self.unreferenced)

    def __str__(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (f"ledger {verdict}: {self.paid} reported paid, {self.charged} charged, "
                f"{len(self.double_charged)} double-charged, {len(self.missing)} paid but not "
                f"charged, {len(self.unexpected)} charged but not reported paid, "
                f"{self.unreferenced} charges without a reference")


class Ledger:
    """Charges and refunds, in the order they happened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._charges: dict[str, Charge] = {}
        self._refunds: list[RefundRecord] = []
        self._declines = 0

    # -- writes (the fake's state machine) -------------------------------------------------

    def record_charge(self, charge: Charge) -> None:
        with self._lock:
            if charge.id in self._charges:  # a state machine bug, never a client error
                raise AssertionError(f"charge {charge.id} recorded twice")
            self._charges[charge.id] = charge

    def capture(self, charge_id: str, amount: int) -> Charge:
        """An authorization captured (``amount`` may be less than authorized)."""
        with self._lock:
            updated = replace(self._charges[charge_id], captured=True, amount_captured=amount)
            self._charges[charge_id] = updated
            return updated

    def release(self, charge_id: str) -> Charge:
        """An uncaptured authorization canceled: no money taken."""
        with self._lock:
            updated = replace(self._charges[charge_id], released=True)
            self._charges[charge_id] = updated
            return updated

    def record_refund(self, refund: RefundRecord) -> None:
        with self._lock:
            self._refunds.append(refund)
            charge = self._charges[refund.charge]
            self._charges[refund.charge] = replace(
                charge, amount_refunded=charge.amount_refunded + refund.amount)

    def record_decline(self) -> None:
        with self._lock:
            self._declines += 1

    def clear(self) -> None:
        with self._lock:
            self._charges.clear()
            self._refunds.clear()
            self._declines = 0

    # -- reads (tests, the demo) ------------------------------------------------------------

    @property
    def charges(self) -> tuple[Charge, ...]:
        """Every charge, live or released, oldest first."""
        with self._lock:
            return tuple(self._charges.values())

    @property
    def refunds(self) -> tuple[RefundRecord, ...]:
        with self._lock:
            return tuple(self._refunds)

    @property
    def declines(self) -> int:
        """How many confirmations were declined (no charge recorded for them)."""
        with self._lock:
            return self._declines

    def charge(self, charge_id: str) -> Charge | None:
        with self._lock:
            return self._charges.get(charge_id)

    def charges_for(self, payment_intent: str) -> tuple[Charge, ...]:
        """Charges of one PaymentIntent (Stripe allows at most one successful charge each)."""
        with self._lock:
            return tuple(c for c in self._charges.values() if c.payment_intent == payment_intent)

    def charges_by_reference(
            self, *, live_only: bool = True) -> dict[str | None, tuple[Charge, ...]]:
        """Charges grouped by the ``reference`` metadata value (``None``: no reference).

        ``live_only`` (the default) leaves out authorizations released by a cancel; refunded
        charges stay in: a refund repairs a double charge, it does not undo it.
        """
        grouped: dict[str | None, list[Charge]] = {}
        for charge in self.charges:
            if live_only and not charge.live:
                continue
            grouped.setdefault(charge.reference, []).append(charge)
        return {ref: tuple(charges) for ref, charges in grouped.items()}

    def double_charges(self) -> dict[str, tuple[Charge, ...]]:
        """References charged more than once (live charges only): should be empty."""
        return {ref: charges for ref, charges in self.charges_by_reference().items()
                if ref is not None and len(charges) > 1}

    def verify(self, paid: Iterable[str], *, unknown: Iterable[str] = ()) -> LedgerCheck:
        """Compare the client's account with the money: "charges equal succeeded payments".

        ``paid`` are the references the client reports as paid; ``unknown`` those whose outcome
        it could not establish (each may have been charged once, or not at all). The check
        fails on a double charge, a reference reported paid without a live charge (a lost
        payment), a live charge the client does not know as paid (money taken for a payment
        reported failed), or a live charge without a reference.
        """
        paid_set = frozenset(paid)
        allowed = paid_set | frozenset(unknown)
        by_ref = self.charges_by_reference()
        charged = frozenset(ref for ref in by_ref if ref is not None)
        return LedgerCheck(
            paid=len(paid_set), charged=len(charged), double_charged=self.double_charges(),
            missing=paid_set - charged, unexpected=charged - allowed,
            unreferenced=len(by_ref.get(None, ())))

    def total(self, currency: str) -> int:
        """Net money taken in ``currency`` (captured minus refunded), in minor units."""
        return sum(c.net for c in self.charges if c.currency == currency.lower())

    def summary(self) -> dict[str, object]:
        """Counts for a report: charges, live, captured, refunds, declines, double charges."""
        charges = self.charges
        return {
            "charges": len(charges),
            "live_charges": sum(1 for c in charges if c.live),
            "captured": sum(1 for c in charges if c.captured),
            "refunds": len(self.refunds),
            "declines": self.declines,
            "double_charged_references": len(self.double_charges()),
        }

    def __repr__(self) -> str:
        with self._lock:
            return f"Ledger(charges={len(self._charges)}, refunds={len(self._refunds)})"
