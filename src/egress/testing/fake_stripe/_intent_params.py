"""A PaymentIntent's parameters checked as Stripe checks them: amounts, shipping, card options,
what the fake refuses (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egress.testing.fake_stripe import _params as P
from egress.testing.fake_stripe._errors import invalid
from egress.testing.fake_stripe._forms import DecodedForm

__all__ = ["MAX_AMOUNT", "MINIMUM_AMOUNTS", "THREE_DECIMAL", "amount_and_currency",
           "card_options_param", "check_amount", "optional_hash", "refuse_connect_only",
           "shipping_param"]

MAX_AMOUNT = 99_999_999

# Minimum charge amounts in minor units (Stripe's "Minimum and maximum charge amounts" table);
# currencies not listed accept any positive amount here.
MINIMUM_AMOUNTS = {
    "usd": 50, "eur": 50, "gbp": 30, "aud": 50, "cad": 50, "chf": 50, "nzd": 50, "sgd": 50,
    "jpy": 50, "hkd": 400, "dkk": 250, "nok": 300, "sek": 300, "mxn": 1000, "pln": 200,
    "czk": 1500, "huf": 17500, "brl": 50, "inr": 50,
}
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def amount_and_currency(params: DecodedForm) -> tuple[int, str]:
    amount = P.get_int(params, "amount", required=True)
    currency = P.get_str(params, "currency", required=True)
    assert amount is not None and currency is not None
    return check_amount(amount, currency), currency.lower()


def check_amount(amount: int, currency: str) -> int:
    currency = currency.lower()
    if len(currency) != 3 or not currency.isalpha():
        raise invalid(f"Invalid currency: {currency[:10]}. Stripe currently supports these "
                      "currencies: usd, eur, gbp, jpy, ...", param="currency")
    minimum = MINIMUM_AMOUNTS.get(currency, 1)
    if amount < minimum:
        raise invalid(f"Amount must be at least {minimum} {currency} in minor units",
                      param="amount", code="amount_too_small")
    if amount > MAX_AMOUNT:
        raise invalid(f"Amount must be no more than {MAX_AMOUNT} {currency} in minor units",
                      param="amount", code="amount_too_large")
    if currency in THREE_DECIMAL and amount % 10:
        raise invalid(f"Amounts in {currency} must end in 0 (three-decimal currency).",
                      param="amount", code="invalid_charge_amount")
    return amount


_ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def shipping_param(params: DecodedForm) -> dict[str, Any] | None:
    """``shipping``, as Stripe stores it: name and address required, every field echoed."""
    raw = optional_hash(params, "shipping", "shipping")
    if raw is None:
        return None
    address = raw.get("address")
    if not isinstance(address, Mapping):
        raise invalid("Missing required param: shipping[address].", param="shipping[address]",
                      code="parameter_missing")
    name = P.get_str(raw, "name")
    if not name:
        raise invalid("Missing required param: shipping[name].", param="shipping[name]",
                      code="parameter_missing")
    unknown = set(address) - set(_ADDRESS_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise invalid(f"Received unknown parameter: shipping[address][{field}]",
                      param=f"shipping[address][{field}]")
    return {
        "address": {field: P.get_str(address, field) for field in _ADDRESS_FIELDS},
        "carrier": P.get_str(raw, "carrier"),
        "name": name,
        "phone": P.get_str(raw, "phone"),
        "tracking_number": P.get_str(raw, "tracking_number"),
    }


# payment_method_options[card][...] the fake keeps (and echoes), with the values Stripe allows.
_CARD_OPTIONS: dict[str, tuple[str, ...]] = {
    "request_three_d_secure": ("any", "automatic", "challenge"),
    "capture_method": ("manual",),
    "setup_future_usage": ("none", "off_session", "on_session"),
}


def optional_hash(within: DecodedForm, key: str, param: str) -> DecodedForm | None:
    """The hash (``key[...]`` fields) at ``within[key]``; None when absent or emptied (``""``),
    Stripe's "Invalid hash" when it is a plain value."""
    value = within.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, Mapping):
        raise invalid("Invalid hash", param=param, code="parameter_invalid_hash")
    return value


def card_options_param(params: DecodedForm) -> dict[str, str]:
    """The ``payment_method_options[card]`` given, checked as Stripe checks them."""
    options = optional_hash(params, "payment_method_options", "payment_method_options")
    if options is None:
        return {}
    for kind in options:
        if kind != "card":
            raise invalid(f"Received unknown parameter: payment_method_options[{kind[:40]}]",
                          param=f"payment_method_options[{kind[:40]}]",
                          code="parameter_unknown")
    card = optional_hash(options, "card", "payment_method_options[card]")
    if card is None:
        return {}
    out: dict[str, str] = {}
    for key in card:
        name = f"payment_method_options[card][{key[:40]}]"
        if key not in _CARD_OPTIONS:
            raise invalid(f"Received unknown parameter: {name}", param=name,
                          code="parameter_unknown")
        value = P.get_enum(card, key, _CARD_OPTIONS[key])
        if value is not None:
            out[key] = value
    return out


def refuse_connect_only(params: DecodedForm) -> None:
    """The fake has no connected accounts: Connect parameters are refused, never dropped."""
    if params.get("application_fee_amount") is not None:
        raise invalid("Can only apply an application_fee_amount when the PaymentIntent is "
                      "attempting a direct payment (using an OAuth key or Stripe-Account header) "
                      "or destination payment (using `transfer_data[destination]`).",
                      param="application_fee_amount")
    account = P.get_str(params, "on_behalf_of")
    if account is not None:
        raise invalid(f"No such account: '{account[:60]}' (FakeStripe has no connected "
                      "accounts)", param="on_behalf_of", code="resource_missing")
