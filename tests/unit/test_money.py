"""Money: exact amounts, minor units for every currency, and refusals of what cannot be money."""

from __future__ import annotations

import copy
import pickle
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress.errors import InvalidPaymentRequest
from egress.payments import CURRENCY_EXPONENTS, Money, currency_exponent


def codes(text: str) -> list[str]:
    return text.split()


STRIPE_ZERO_DECIMAL = codes("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF")
STRIPE_THREE_DECIMAL = codes("BHD JOD KWD OMR TND")
# Stripe's presentment currencies (docs "Supported currencies"), each must have an exponent.
STRIPE_PRESENTMENT = codes(
    "USD AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BWP "
    "BYN BZD CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP "
    "GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR "
    "NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD "
    "STD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX UYU UZS VND VUV WST XAF XCD XOF XPF YER ZAR "
    "ZMW"
)


def test_usd_two_decimals() -> None:
    m = Money("19.99", "usd")
    assert m.currency == "USD"
    assert m.amount == Decimal("19.99")
    assert m.to_minor() == 1999
    assert Money.from_minor(1999, "USD") == m
    assert str(m) == "19.99 USD"
    assert repr(m) == "Money('19.99', 'USD')"


def test_jpy_zero_decimal() -> None:
    assert Money(500, "JPY").to_minor() == 500
    assert Money.from_minor(500, "JPY").amount == Decimal("500")
    assert Money("500.0", "JPY") == Money(500, "JPY")  # trailing zeros are exact
    with pytest.raises(InvalidPaymentRequest, match="0 decimal place"):
        Money("500.5", "JPY")


def test_kwd_three_decimals() -> None:
    m = Money("5.124", "KWD")
    assert m.to_minor() == 5124
    assert Money.from_minor(5120, "KWD").amount == Decimal("5.120")
    with pytest.raises(InvalidPaymentRequest):
        Money("5.1245", "KWD")


@pytest.mark.parametrize("code", STRIPE_ZERO_DECIMAL)
def test_stripe_zero_decimal_currencies(code: str) -> None:
    assert currency_exponent(code) == 0


@pytest.mark.parametrize("code", STRIPE_THREE_DECIMAL)
def test_stripe_three_decimal_currencies(code: str) -> None:
    assert currency_exponent(code) == 3


def test_every_stripe_presentment_currency_is_known() -> None:
    missing = [c for c in STRIPE_PRESENTMENT if c not in CURRENCY_EXPONENTS]
    assert missing == []
    assert currency_exponent("ISK") == 0  # whole krona since 2023 (adapters handle the wire)
    assert currency_exponent("HUF") == 2


def test_quantized_equality_and_hash() -> None:
    assert Money("5", "USD") == Money("5.00", "USD")
    assert hash(Money("5", "USD")) == hash(Money("5.00", "USD"))
    assert Money("5", "USD").amount.as_tuple().exponent == -2
    assert Money("5", "USD") != Money("5", "EUR")
    assert Money("5", "USD") != "5.00 USD"


@pytest.mark.parametrize(
    ("amount", "match"),
    [
        (1.5, "floats are refused"),
        (True, "not bool"),
        (Decimal("NaN"), "finite"),
        (Decimal("sNaN"), "finite"),
        (Decimal("Infinity"), "finite"),
        ("-Infinity", "plain decimal"),
        ("-1.00", "negative"),
        (Decimal(-1), "negative"),
        ("1.001", "cannot be represented"),
        ("abc", "plain decimal"),
        ("", "plain decimal"),
        ("1e30", "plain decimal"),
            (Decimal("1e30"), "too large"),
        (Decimal("1e999999"), "too large"),
        ([1], "must be a Decimal"),
    ],
)
def test_refused_amounts(amount: object, match: str) -> None:
    with pytest.raises(InvalidPaymentRequest, match=match) as info:
        Money(amount, "USD")  # type: ignore[arg-type]
    assert info.value.param == "amount"


def test_negative_zero_is_zero() -> None:
    assert Money("-0", "USD") == Money.zero("USD")
    assert Money("-0.00", "USD").is_zero()
    assert not Money("-0", "USD").amount.is_signed()


@pytest.mark.parametrize("currency", ["XXX", "usdd", "", "US", 840, None, "E\nR"])
def test_refused_currencies(currency: object) -> None:
    with pytest.raises(InvalidPaymentRequest) as info:
        Money("1", currency)  # type: ignore[arg-type]
    assert info.value.param == "currency"


def test_from_minor_refuses_non_integers() -> None:
    for bad in (1.0, "100", True, Decimal(100)):
        with pytest.raises(InvalidPaymentRequest):
            Money.from_minor(bad, "USD")  # type: ignore[arg-type]
    with pytest.raises(InvalidPaymentRequest, match="negative"):
        Money.from_minor(-1, "USD")


def test_largest_amount() -> None:
    top = Money.from_minor(2**63 - 1, "USD")
    assert top.to_minor() == 2**63 - 1
    with pytest.raises(InvalidPaymentRequest, match="too large"):
        Money.from_minor(2**63, "USD")


def test_arithmetic_and_ordering_within_one_currency() -> None:
    a, b = Money("1.10", "EUR"), Money("2.25", "EUR")
    assert a + b == Money("3.35", "EUR")
    assert b - a == Money("1.15", "EUR")
    assert a < b and b > a and a <= a and b >= b
    with pytest.raises(InvalidPaymentRequest, match="negative"):
        _ = a - b
    with pytest.raises(TypeError, match="EUR and USD"):
        _ = a + Money("1", "USD")
    with pytest.raises(TypeError):
        _ = a < Money("1", "USD")


def test_immutable_and_picklable() -> None:
    m = Money("3.50", "GBP")
    with pytest.raises(AttributeError):
        m.amount = Decimal(1)  # type: ignore[misc]
    with pytest.raises(AttributeError):
        m._currency = "USD"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(m)) == m
    assert copy.deepcopy(m) == m


currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))


@given(minor=st.integers(min_value=0, max_value=2**63 - 1), currency=currencies)
def test_round_trip_through_minor_units(minor: int, currency: str) -> None:
    money = Money.from_minor(minor, currency)
    assert money.to_minor() == minor
    assert Money(money.amount, currency) == money
    assert Money(str(money.amount), currency) == money


@given(
    amount=st.decimals(min_value=0, max_value=Decimal("1e12"), allow_nan=False,
                       allow_infinity=False, places=3),
    currency=currencies,
)
def test_decimal_round_trip_or_clear_refusal(amount: Decimal, currency: str) -> None:
    exponent = CURRENCY_EXPONENTS[currency]
    representable = amount == amount.quantize(Decimal(1).scaleb(-exponent))
    if representable:
        money = Money(amount, currency)
        assert money.amount == amount
        assert Money.from_minor(money.to_minor(), currency) == money
    else:
        with pytest.raises(InvalidPaymentRequest, match="cannot be represented"):
            Money(amount, currency)
