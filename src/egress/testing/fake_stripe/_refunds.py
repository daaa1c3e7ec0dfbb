"""Refunds: create one against a captured charge, retrieve it."""

from __future__ import annotations

import copy
from typing import Any

from egress.testing.fake_stripe import _params as P
from egress.testing.fake_stripe._account import RequestIds
from egress.testing.fake_stripe._errors import invalid, resource_missing
from egress.testing.fake_stripe._forms import DecodedForm
from egress.testing.fake_stripe._ledger import RefundRecord
from egress.testing.fake_stripe._render import Rendering

__all__ = ["Refunds"]


class Refunds(Rendering):
    """The refund operations (their list is in :mod:`._browse`)."""

    def create_refund(self, params: DecodedForm, info: RequestIds) -> dict[str, Any]:
        P.check_known(params, P.REFUND_PARAMS)
        pi_id = P.get_str(params, "payment_intent")
        charge_id = P.get_str(params, "charge")
        amount = P.get_int(params, "amount", minimum=1)
        reason = P.get_enum(params, "reason", ("duplicate", "fraudulent", "requested_by_customer"))
        metadata = P.get_metadata(params) or {}
        if pi_id is None and charge_id is None:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", param="payment_intent",
                          code="parameter_missing")
        with self.lock:
            if charge_id is None:
                intent = self._intents.get(pi_id or "")
                if intent is None:
                    raise resource_missing("payment_intent", pi_id or "", "payment_intent")
                if intent["status"] != "succeeded" or intent["latest_charge"] is None:
                    raise P.reject("This PaymentIntent does not have a successful charge to "
                                   "refund.", param="payment_intent")
                charge_id = intent["latest_charge"]
            charge = self._charges.get(charge_id or "")
            if charge is None:
                raise resource_missing("charge", charge_id or "", "charge")
            if not charge["captured"] or charge["status"] != "succeeded":
                raise P.reject(f"Charge {charge['id']} has not been captured.", param="charge")
            remaining = charge["amount_captured"] - charge["amount_refunded"]
            if remaining <= 0:
                raise P.reject(f"Charge {charge['id']} has already been refunded.",
                               code="charge_already_refunded")
            amount = remaining if amount is None else amount
            if amount > remaining:
                raise P.reject(f"Refund amount ({amount}) is greater than unrefunded amount on "
                               f"charge ({remaining})", param="amount")
            refund = {
                "id": self.new_id("re_"),
                "object": "refund",
                "amount": amount,
                "balance_transaction": self.new_id("txn_"),
                "charge": charge["id"],
                "created": self._created(),
                "currency": charge["currency"],
                "destination_details": {"card": {"type": "refund"}, "type": "card"},
                "metadata": metadata,
                "payment_intent": charge["payment_intent"],
                "reason": reason,
                "receipt_number": None,
                "source_transfer_reversal": None,
                "status": "succeeded",
                "transfer_reversal": None,
            }
            self._refunds[refund["id"]] = refund
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
            charge["refunds"]["data"].insert(0, copy.deepcopy(refund))
            charge["refunds"]["total_count"] += 1
            reference = charge["metadata"].get(self.reference_key)
            self.ledger.record_refund(RefundRecord(
                id=refund["id"], charge=charge["id"], payment_intent=charge["payment_intent"],
                amount=amount, currency=charge["currency"], reference=reference,
                created=refund["created"]))
            self._emit("refund.created", refund, info)
            self._emit("charge.refunded", charge, info)
            return self._render_refund(refund, params)

    def retrieve_refund(self, ident: str, params: DecodedForm) -> dict[str, Any]:
        P.check_known(params, frozenset({"expand"}))
        with self.lock:
            refund = self._refunds.get(ident)
            if refund is None:
                raise resource_missing("refund", ident, "id")
            return self._render_refund(refund, params)
