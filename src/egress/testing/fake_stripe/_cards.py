"""Stripe's test payment methods and what confirming with each one does (pure data).

The ids are the ones Stripe documents for test mode ("Testing" page, "Declined payments" and
"3D Secure" sections). Anything else that looks like a payment method id is unknown to the fake
and answered with ``resource_missing``, as Stripe answers an id that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["Outcome", "TestCard", "TEST_CARDS", "card_for"]


class Outcome(Enum):
    SUCCEED = "succeed"
    DECLINE = "decline"
    AUTHENTICATE = "authenticate"


@dataclass(frozen=True, slots=True)
class TestCard:
    """A test payment method: its card facts and the outcome of a charge."""

    brand: str
    last4: str
    outcome: Outcome = Outcome.SUCCEED
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    funding: str = "credit"


_DECLINED = "Your card was declined."


def _decline(last4: str, code: str, decline_code: str | None, message: str) -> TestCard:
    return TestCard("visa", last4, Outcome.DECLINE, code, decline_code, message)


TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_visa_debit": TestCard("visa", "5556", funding="debit"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_mastercard_debit": TestCard("mastercard", "8210", funding="debit"),
    "pm_card_mastercard_prepaid": TestCard("mastercard", "5100", funding="prepaid"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_discover": TestCard("discover", "1117"),
    "pm_card_diners": TestCard("diners", "0004"),
    "pm_card_jcb": TestCard("jcb", "0505"),
    "pm_card_unionpay": TestCard("unionpay", "0005"),
    "pm_card_us": TestCard("visa", "4242"),
    "pm_card_gb": TestCard("visa", "0000"),
    "pm_card_riskLevelElevated": TestCard("visa", "9235"),
    "pm_card_authenticationRequiredOnSetup": TestCard("visa", "3155"),
    "pm_card_chargeDeclined": _decline("0002", "card_declined", "generic_decline", _DECLINED),
    "pm_card_chargeDeclinedInsufficientFunds": _decline(
        "9995", "card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeDeclinedFraudulent": _decline(
        "0019", "card_declined", "fraudulent", _DECLINED),
    "pm_card_chargeDeclinedLostCard": _decline("9987", "card_declined", "lost_card", _DECLINED),
    "pm_card_chargeDeclinedStolenCard": _decline(
        "9979", "card_declined", "stolen_card", _DECLINED),
    "pm_card_chargeDeclinedExpiredCard": _decline(
        "0069", "expired_card", "expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": _decline(
        "0127", "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "pm_card_chargeDeclinedProcessingError": _decline(
        "0119", "processing_error", "processing_error",
        "An error occurred while processing your card. Try again in a little bit."),
    "pm_card_chargeDeclinedVelocityLimitExceeded": _decline(
        "6975", "card_declined", "card_velocity_exceeded", _DECLINED),
    "pm_card_authenticationRequired": TestCard("visa", "3184", Outcome.AUTHENTICATE),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", Outcome.AUTHENTICATE),
    "pm_card_threeDSecureRequired": TestCard("visa", "3063", Outcome.AUTHENTICATE),
}


def card_for(payment_method: str) -> TestCard | None:
    """The test card behind ``payment_method``, or ``None`` if the fake does not know it."""
    return TEST_CARDS.get(payment_method)
