"""Confirmation: a card's outcome becomes a charge, succeeded or declined, and its events."""

from __future__ import annotations

import copy
from typing import Any

from egress.testing.fake_stripe._account import RequestIds
from egress.testing.fake_stripe._cards import Outcome, TestCard
from egress.testing.fake_stripe._errors import StripeApiError
from egress.testing.fake_stripe._ledger import Charge
from egress.testing.fake_stripe._render import Rendering

__all__ = ["Charges"]


class Charges(Rendering):
    """What confirming a PaymentIntent with a test card does."""

    def _run_confirmation(self, intent: dict[str, Any], payment_method: str, card: TestCard,
                          info: RequestIds, *, off_session: bool, error_on_action: bool) -> None:
        intent["payment_method"] = payment_method
        intent["last_payment_error"] = None
        if card.outcome is Outcome.DECLINE:
            self._decline(intent, payment_method, card, info, code=card.code or "card_declined",
                          decline_code=card.decline_code,
                          message=card.message or "Your card was declined.")
        elif card.outcome is Outcome.AUTHENTICATE:
            if off_session or error_on_action:
                self._decline(intent, payment_method, card, info,
                              code="authentication_required",
                              decline_code="authentication_required",
                              message="Your card was declined. This transaction requires "
                                      "authentication.")
            intent["status"] = "requires_action"
            intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {
                "type": "three_d_secure_redirect", "stripe_js": "https://hooks.stripe.com/3d"}}
            self._emit("payment_intent.requires_action", intent, info)
        else:
            self._succeed(intent, payment_method, card, info)

    def _charge_object(self, intent: dict[str, Any], payment_method: str, card: TestCard,
                       *, status: str) -> dict[str, Any]:
        ident = self.new_id("ch_")
        succeeded = status == "succeeded"
        captured = succeeded and intent["capture_method"] != "manual"
        return {
            "id": ident,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount"] if captured else 0,
            "amount_refunded": 0,
            "balance_transaction": self.new_id("txn_") if captured else None,
            "captured": captured,
            "created": self._created(),
            "currency": intent["currency"],
            "customer": intent["customer"],
            "description": intent["description"],
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": dict(intent["metadata"]),
            "outcome": {
                "network_status": "approved_by_network" if succeeded else "declined_by_network",
                "reason": None, "risk_level": "normal", "seller_message":
                    "Payment complete." if succeeded else "The bank declined the payment.",
                "type": "authorized" if succeeded else "issuer_declined",
            },
            "paid": succeeded,
            "payment_intent": intent["id"],
            "payment_method": payment_method,
            "payment_method_details": {"card": self._card_details(card), "type": "card"},
            "refunded": False,
            "refunds": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                        "url": f"/v1/charges/{ident}/refunds"},
            "status": status,
        }

    def _succeed(self, intent: dict[str, Any], payment_method: str, card: TestCard,
                 info: RequestIds) -> None:
        charge = self._charge_object(intent, payment_method, card, status="succeeded")
        self._charges[charge["id"]] = charge
        intent["latest_charge"] = charge["id"]
        intent["next_action"] = None
        manual = intent["capture_method"] == "manual"
        self.ledger.record_charge(Charge(
            id=charge["id"], payment_intent=intent["id"], amount=intent["amount"],
            currency=intent["currency"], reference=intent["metadata"].get(self.reference_key),
            metadata=dict(intent["metadata"]), captured=not manual,
            amount_captured=0 if manual else intent["amount"], created=charge["created"],
            idempotency_key=info.idempotency_key))
        if manual:
            intent.update(status="requires_capture", amount_capturable=intent["amount"])
            self._emit("payment_intent.amount_capturable_updated", intent, info)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._emit("payment_intent.succeeded", intent, info)

    def _decline(self, intent: dict[str, Any], payment_method: str, card: TestCard,
                 info: RequestIds, *, code: str, decline_code: str | None, message: str,
                 raise_error: bool = True) -> None:
        charge = self._charge_object(intent, payment_method, card, status="failed")
        charge.update(failure_code=code, failure_message=message)
        self._charges[charge["id"]] = charge
        self.ledger.record_decline()
        pm_object = self._payment_method_object(payment_method, card)
        error: dict[str, Any] = {"type": "card_error", "code": code, "message": message,
                                 "charge": charge["id"], "payment_method": pm_object,
                                 "doc_url": f"https://stripe.com/docs/error-codes/{code}"}
        if decline_code is not None:
            error["decline_code"] = decline_code
        intent.update(status="requires_payment_method", payment_method=None,
                      latest_charge=charge["id"], last_payment_error=error, next_action=None)
        self._emit("payment_intent.payment_failed", intent, info)
        if raise_error:
            raise StripeApiError(
                402, "card_error", message, code=code, decline_code=decline_code,
                extra={"charge": charge["id"], "payment_intent": copy.deepcopy(intent),
                       "payment_method": pm_object})
