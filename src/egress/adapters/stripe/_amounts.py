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
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("amount is not a non-negative integer")
    if not isinstance(currency, str):
        raise ValueError("currency is not a string")
    code = currency.upper()
    if code in _HUNDREDTHS_ON_WIRE:
        whole, rest = divmod(amount, 100)
        if rest:
            raise ValueError(f"{code} amount is not whole")
        return Money.from_minor(whole, code)
    return Money.from_minor(amount, code)
