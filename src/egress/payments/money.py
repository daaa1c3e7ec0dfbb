"""Money: an exact Decimal amount in an ISO 4217 currency, and its integer minor units.

``Money`` never holds a float and never rounds. An amount that its currency cannot represent
(``Money("1.005", "USD")``, ``Money("1.5", "JPY")``), a negative amount, NaN, an infinity, a
float, a bool or an unknown currency is refused with :class:`~egress.errors.InvalidPaymentRequest`
naming the problem. Zero is a valid ``Money``; whether zero is *allowed* is the business of the
request that carries it (a payment must be positive).

The exponent table covers every currency payment providers accept for charges (Stripe's 135+
presentment currencies included): zero-decimal ones such as JPY and KRW, three-decimal ones such as
KWD and BHD. Two deliberate choices, both documented in ``docs/payments.md``:

* **MGA** is zero-decimal here. ISO 4217 gives it 2 minor digits, but its subunit (the
  iraimbilanja, a fifth of an ariary) is not in use and providers treat it as zero-decimal.
* **ISK** is zero-decimal (ISO 4217, and card networks since April 2023). Providers whose wire
  format still counts ISK in hundredths do that conversion in their adapter.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from egress.errors import InvalidPaymentRequest

__all__ = ["CURRENCY_EXPONENTS", "MAX_MINOR_UNITS", "Money", "currency_exponent"]

#: The largest amount, in minor units, that Money accepts (a signed 64-bit integer).
MAX_MINOR_UNITS: Final = 2**63 - 1
_MAX_DIGITS = 19  # a cheap bound checked before any arithmetic on a hostile exponent
_MAX_TEXT = 64
# The one accepted text syntax: "19.99", "19", "0.5"; "-1" parses so it is refused as negative.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?", re.ASCII)

_ZERO_DECIMAL = (
    "BIF CLP DJF GNF ISK JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF"
)
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR "
    "LRD LSL MAD MDL MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB "
    "PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STD "
    "STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED VES WST XCD XCG YER "
    "ZAR ZMW ZWG"
)


def _table() -> dict[str, int]:
    table: dict[str, int] = {}
    for codes, exponent in ((_ZERO_DECIMAL, 0), (_TWO_DECIMAL, 2), (_THREE_DECIMAL, 3)):
        for code in codes.split():
            table[code] = exponent
    return table


#: ISO 4217 code -> number of digits after the decimal point (the minor-unit exponent).
CURRENCY_EXPONENTS: Final = MappingProxyType(_table())


def currency_exponent(currency: str) -> int:
    """The minor-unit exponent of ``currency`` (case-insensitive); refuses unknown codes."""
    code = _normalize_currency(currency)
    return CURRENCY_EXPONENTS[code]


def _normalize_currency(currency: object) -> str:
    if not isinstance(currency, str):
        raise InvalidPaymentRequest(
            f"Money: currency must be an ISO 4217 code string, got {type(currency).__name__}",
            param="currency",
        )
    code = currency.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        shown = code if len(code) <= 8 and code.isalpha() else "(not a currency code)"
        raise InvalidPaymentRequest(f"Money: unknown currency {shown}", param="currency")
    return code


# An exact context: any rounding or inexactness raises instead of silently changing the value.
# (Rounded alone is not trapped: dropping trailing zeros, 1.0 JPY -> 1 JPY, is exact.)
_EXACT = decimal.Context(prec=60,
                         traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow])


def _to_decimal(amount: object) -> Decimal:
    if isinstance(amount, bool):
        raise InvalidPaymentRequest("Money: amount must be a Decimal, int or str, not bool",
                                    param="amount")
    if isinstance(amount, float):
        raise InvalidPaymentRequest(
            "Money: floats are refused (binary floats cannot hold most decimal amounts); "
            "pass a Decimal, an int or a string such as '19.99'",
            param="amount",
        )
    if isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, int):
        value = Decimal(amount)
    elif isinstance(amount, str):
        if len(amount) > _MAX_TEXT:
            raise InvalidPaymentRequest(f"Money: amount text is longer than {_MAX_TEXT} "
                                        f"characters", param="amount")
        if not _PLAIN_DECIMAL.fullmatch(amount):
            raise InvalidPaymentRequest(
                "Money: amount must be a plain decimal string such as '19.99' (ASCII digits, "
                "at most one '.', no exponent, sign, underscore or whitespace)", param="amount")
        value = Decimal(amount)
    else:
        raise InvalidPaymentRequest(
            f"Money: amount must be a Decimal, int or str, got {type(amount).__name__}",
            param="amount",
        )
    if not value.is_finite():
        raise InvalidPaymentRequest("Money: amount must be finite (not NaN or infinite)",
                                    param="amount")
    if value.is_signed() and value != 0:
        raise InvalidPaymentRequest("Money: amount must not be negative", param="amount")
    return value.copy_abs()  # folds -0 into 0; abs() could overflow the default context


class Money:
    """An exact amount of one currency.

    >>> Money("19.99", "usd")
    Money('19.99', 'USD')
    >>> Money("19.99", "USD").to_minor()
    1999
    >>> Money.from_minor(500, "JPY")
    Money('500', 'JPY')

    The amount is kept quantized to the currency's exponent, so ``Money("5", "USD")`` equals,
    hashes like and prints like ``Money("5.00", "USD")``. Money of different currencies is never
    equal, and comparing or adding it raises ``TypeError``.
    """

    __slots__ = ("_amount", "_currency")

    _amount: Decimal
    _currency: str

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        code = _normalize_currency(currency)
        value = _to_decimal(amount)
        exponent = CURRENCY_EXPONENTS[code]
        if value != 0 and value.adjusted() > _MAX_DIGITS:
            raise InvalidPaymentRequest("Money: amount is too large", param="amount")
        quantum = Decimal(1).scaleb(-exponent)
        try:
            exact = value.quantize(quantum, context=_EXACT)
        except decimal.DecimalException:
            raise InvalidPaymentRequest(
                f"Money: {code} has {exponent} decimal place(s); the amount cannot be "
                f"represented exactly",
                param="amount",
            ) from None
        if exact.scaleb(exponent) > MAX_MINOR_UNITS:
            raise InvalidPaymentRequest("Money: amount is too large", param="amount")
        object.__setattr__(self, "_amount", exact)
        object.__setattr__(self, "_currency", code)

    # Immutable: no attribute may change after construction.
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Money is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Money is immutable")

    @property
    def amount(self) -> Decimal:
        """The exact amount, with exactly :attr:`exponent` decimal places."""
        return self._amount

    @property
    def currency(self) -> str:
        """The upper-case ISO 4217 code."""
        return self._currency

    @property
    def exponent(self) -> int:
        """Digits after the decimal point in this currency (0 for JPY, 2 for USD, 3 for KWD)."""
        return CURRENCY_EXPONENTS[self._currency]

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        """Money from integer minor units: ``from_minor(1999, "USD")`` is 19.99 USD."""
        if isinstance(minor, bool) or not isinstance(minor, int):
            raise InvalidPaymentRequest(
                f"Money.from_minor: minor units must be an int, got {type(minor).__name__}",
                param="amount",
            )
        code = _normalize_currency(currency)
        if not -MAX_MINOR_UNITS <= minor <= MAX_MINOR_UNITS:  # before any Decimal arithmetic
            raise InvalidPaymentRequest("Money: amount is too large", param="amount")
        return cls(Decimal(minor).scaleb(-CURRENCY_EXPONENTS[code]), code)

    def to_minor(self) -> int:
        """The amount in integer minor units (cents for USD, yen for JPY, fils for KWD)."""
        return int(self._amount.scaleb(self.exponent))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def is_zero(self) -> bool:
        return self._amount == 0

    def _same(self, other: object, op: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {op} Money and {type(other).__name__}")
        if other._currency != self._currency:
            raise TypeError(f"cannot {op} {self._currency} and {other._currency}")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self._amount + self._same(other, "add")._amount, self._currency)

    def __sub__(self, other: Money) -> Money:
        """The difference; refused (as any negative amount) when ``other`` is larger."""
        return Money(self._amount - self._same(other, "subtract")._amount, self._currency)

    def __lt__(self, other: Money) -> bool:
        return self._amount < self._same(other, "compare")._amount

    def __le__(self, other: Money) -> bool:
        return self._amount <= self._same(other, "compare")._amount

    def __gt__(self, other: Money) -> bool:
        return self._amount > self._same(other, "compare")._amount

    def __ge__(self, other: Money) -> bool:
        return self._amount >= self._same(other, "compare")._amount

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        return self._currency == other._currency and self._amount == other._amount

    def __hash__(self) -> int:
        return hash((self._amount, self._currency))

    def __repr__(self) -> str:
        return f"Money({str(self._amount)!r}, {self._currency!r})"

    def __str__(self) -> str:
        return f"{self._amount} {self._currency}"

    def __reduce__(self) -> tuple[object, ...]:
        return (Money, (str(self._amount), self._currency))
