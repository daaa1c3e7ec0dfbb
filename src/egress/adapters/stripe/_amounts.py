"""Money <-> Stripe's integer ``amount`` and lowercase ``currency``: Stripe's own rules live here.

* Zero-, two- and three-decimal currencies are sent in their minor unit (``Money.to_minor``).
* Three-decimal currencies (BHD JOD KWD OMR TND): Stripe requires the last digit to be 0
  ("5.124 KWD must be rounded to 5120 or 5130"). Egress never rounds money: such an amount is
  refused before sending.
* ISK is whole krona, but Stripe's wire still counts it in hundredths: 5 ISK is ``500``.
"""

from __future__ import annotations

from egress.errors import InvalidPaymentRequest
from egress.payments.money import Money

__all__ = ["from_stripe_amount", "to_stripe_amount", "to_stripe_currency"]

_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Currencies Stripe counts in hundredths although they have no subunit in use.
_HUNDREDTHS_ON_WIRE = frozenset({"ISK"})
# Money parsed from Stripe's answers, by (amount, currency) as sent: Money is immutable, and a
# shop sees the same few amounts again and again (every answer carries two or three). Building
# one costs Decimal arithmetic; a hit costs a dict lookup. Bounded: cleared when full.
_PARSED: dict[tuple[int, str], Money] = {}
_MAX_PARSED = 1024


def to_stripe_currency(money: Money) -> str:
    return money.currency.lower()


def to_stripe_amount(money: Money, *, param: str = "amount") -> int:
    """The integer Stripe expects for ``money``; refuses amounts Stripe cannot take."""
    minor = money.to_minor()
    if money.currency in _HUNDREDTHS_ON_WIRE:
        return minor * 100
    if money.currency in _THREE_DECIMAL and minor % 10 != 0:
        raise InvalidPaymentRequest(
            f"{money.currency}: Stripe accepts three-decimal amounts only in multiples of "
            f"0.010 (the last digit must be 0); round the amount before paying",
            param=param)
    return minor


def from_stripe_amount(amount: object, currency: object) -> Money:
    """Money from a Stripe object's ``amount`` and ``currency`` fields (strictly typed)."""
    if type(amount) is int and type(currency) is str:  # JSON gives exact types
        cached = _PARSED.get((amount, currency))
        if cached is not None:
            return cached
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("amount is not a non-negative integer")
    if not isinstance(currency, str):
        raise ValueError("currency is not a string")
    money = _from_stripe(amount, currency.upper())
    if type(amount) is int and type(currency) is str:
        if len(_PARSED) >= _MAX_PARSED:
            _PARSED.clear()
        _PARSED[(amount, currency)] = money
    return money


def _from_stripe(amount: int, code: str) -> Money:
    if code in _HUNDREDTHS_ON_WIRE:
        whole, rest = divmod(amount, 100)
        if rest:
            raise ValueError(f"{code} amount is not whole")
        return Money.from_minor(whole, code)
    return Money.from_minor(amount, code)
