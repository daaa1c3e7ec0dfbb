"""PaymentIntents: create, retrieve, update, confirm, capture, cancel, finish an action."""

from __future__ import annotations

import copy
from typing import Any

from egress.testing.fake_stripe import _params as P
from egress.testing.fake_stripe._account import RequestIds, unexpected_state
from egress.testing.fake_stripe._charges import Charges
from egress.testing.fake_stripe._errors import invalid
from egress.testing.fake_stripe._forms import DecodedForm
from egress.testing.fake_stripe._intent_params import (
    amount_and_currency,
    card_options_param,
    check_amount,
    refuse_connect_only,
    shipping_param,
)

__all__ = ["CANCELABLE", "CONFIRMABLE", "Intents"]

CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_EDITABLE_ALWAYS = frozenset({"metadata", "description", "receipt_email", "expand", "shipping"})


class Intents(Charges):
    """The PaymentIntent operations (their list and search are in :mod:`._browse`)."""

    def create_intent(self, params: DecodedForm, info: RequestIds) -> dict[str, Any]:
        P.check_known(params, P.CREATE_PARAMS)
        amount, currency = amount_and_currency(params)
        capture_method = P.get_enum(params, "capture_method",
                                    ("automatic", "automatic_async", "manual")) or "automatic"
        confirmation_method = P.get_enum(params, "confirmation_method",
                                         ("automatic", "manual")) or "automatic"
        confirm = P.get_bool(params, "confirm") or False
        payment_method = self._payment_method_param(params)
        metadata = P.get_metadata(params) or {}
        types = P.get_str_list(params, "payment_method_types") or ["card"]
        off_session = P.get_bool(params, "off_session")
        error_on_action = P.get_bool(params, "error_on_requires_action")
        if off_session is not None and not confirm:
            raise invalid("You can only pass in off_session when confirm is set to true.",
                          param="off_session")
        card = self._card(payment_method) if payment_method is not None else None
        automatic = params.get("automatic_payment_methods")
        apm = None
        if automatic is not None:
            if not isinstance(automatic, dict):
                raise invalid("Invalid hash", param="automatic_payment_methods",
                              code="parameter_invalid_hash")
            enabled = automatic.get("enabled")
            if enabled is None:
                raise invalid("Missing required param: automatic_payment_methods[enabled].",
                              param="automatic_payment_methods[enabled]",
                              code="parameter_missing")
            if enabled not in ("true", "false"):
                raise invalid(f"Invalid boolean: {str(enabled)[:40]}",
                              param="automatic_payment_methods[enabled]",
                              code="parameter_invalid_boolean")
            apm = {"enabled": enabled == "true"}
        shipping = shipping_param(params)
        card_options = card_options_param(params)
        refuse_connect_only(params)
        with self.lock:
            ident = self.new_id("pi_")
            intent: dict[str, Any] = {
                "id": ident,
                "object": "payment_intent",
                "amount": amount,
                "amount_capturable": 0,
                "amount_received": 0,
                "application": None,
                "application_fee_amount": None,
                "automatic_payment_methods": apm,
                "canceled_at": None,
                "cancellation_reason": None,
                "capture_method": capture_method,
                "client_secret": f"{ident}_secret_{self.new_id('', 25)}",
                "confirmation_method": confirmation_method,
                "created": self._created(),
                "currency": currency,
                "customer": P.get_str(params, "customer"),
                "description": P.get_str(params, "description"),
                "invoice": None,
                "last_payment_error": None,
                "latest_charge": None,
                "livemode": False,
                "metadata": metadata,
                "next_action": None,
                "on_behalf_of": None,
                "payment_method": payment_method,
                "payment_method_options": {"card": {"installments": None,
                                                    "mandate_options": None,
                                                    "network": None,
                                                    "request_three_d_secure": "automatic",
                                                    **card_options}},
                "payment_method_types": types,
                "processing": None,
                "receipt_email": P.get_str(params, "receipt_email"),
                "review": None,
                "setup_future_usage": P.get_str(params, "setup_future_usage"),
                "shipping": shipping,
                "source": None,
                "statement_descriptor": P.get_str(params, "statement_descriptor"),
                "statement_descriptor_suffix": P.get_str(params, "statement_descriptor_suffix"),
                "status": ("requires_confirmation" if payment_method is not None
                           else "requires_payment_method"),
                "transfer_data": None,
                "transfer_group": P.get_str(params, "transfer_group"),
            }
            self._intents[ident] = intent
            self._indexed_at[ident] = self._now() + self.search_lag
            self._emit("payment_intent.created", intent, info)
            if confirm:
                if card is None or payment_method is None:
                    raise unexpected_state(
                        "You cannot confirm this PaymentIntent because it's missing a payment "
                        "method. Update it with a payment method and confirm it again.", intent)
                self._run_confirmation(intent, payment_method, card, info,
                                       off_session=bool(off_session),
                                       error_on_action=bool(error_on_action))
            return self._render(intent, params)

    def retrieve_intent(self, ident: str, params: DecodedForm) -> dict[str, Any]:
        P.check_known(params, P.RETRIEVE_PARAMS)
        with self.lock:
            return self._render(self._intent(ident), params)

    def update_intent(self, ident: str, params: DecodedForm, info: RequestIds) -> dict[str, Any]:
        P.check_known(params, P.UPDATE_PARAMS)
        metadata = P.get_metadata(params)
        amount = P.get_int(params, "amount", minimum=1)
        currency = P.get_str(params, "currency")
        payment_method = self._payment_method_param(params)
        card = self._card(payment_method) if payment_method is not None else None
        capture_method = P.get_enum(params, "capture_method",
                                    ("automatic", "automatic_async", "manual"))
        with self.lock:
            intent = self._intent(ident)
            restricted = [k for k in params if k not in _EDITABLE_ALWAYS]
            if restricted and intent["status"] not in CONFIRMABLE:
                raise unexpected_state(
                    f"You cannot update {restricted[0]} on a PaymentIntent with a status of "
                    f"{intent['status']}.", intent)
            if amount is not None:
                intent["amount"] = check_amount(amount, currency or intent["currency"])
            if currency is not None:
                intent["currency"] = currency.lower()
            if capture_method is not None:
                intent["capture_method"] = capture_method
            for key in ("description", "receipt_email", "customer", "statement_descriptor",
                        "statement_descriptor_suffix", "transfer_group", "setup_future_usage"):
                if key in params:
                    value = P.get_str(params, key)
                    intent[key] = value or None
            intent["metadata"] = P.merge_metadata(intent["metadata"], metadata)
            if card is not None:
                intent["payment_method"] = payment_method
                intent["status"] = "requires_confirmation"
            return self._render(intent, params)

    def confirm_intent(self, ident: str, params: DecodedForm, info: RequestIds) -> dict[str, Any]:
        P.check_known(params, P.CONFIRM_PARAMS)
        payment_method = self._payment_method_param(params)
        off_session = P.get_bool(params, "off_session") or False
        error_on_action = P.get_bool(params, "error_on_requires_action") or False
        capture_method = P.get_enum(params, "capture_method",
                                    ("automatic", "automatic_async", "manual"))
        card = self._card(payment_method) if payment_method is not None else None
        with self.lock:
            intent = self._intent_in(ident, CONFIRMABLE, "You cannot confirm this PaymentIntent",
                                     "confirmed")
            if payment_method is None:
                payment_method = intent["payment_method"]
                card = self._card(payment_method) if payment_method is not None else None
            if payment_method is None or card is None:
                raise unexpected_state(
                    "You cannot confirm this PaymentIntent because it's missing a payment "
                    "method. Update it with a payment method and confirm it again.", intent)
            if capture_method is not None:
                intent["capture_method"] = capture_method
            if "receipt_email" in params:
                intent["receipt_email"] = P.get_str(params, "receipt_email")
            self._run_confirmation(intent, payment_method, card, info,
                                   off_session=off_session, error_on_action=error_on_action)
            return self._render(intent, params)

    def capture_intent(self, ident: str, params: DecodedForm, info: RequestIds) -> dict[str, Any]:
        P.check_known(params, P.CAPTURE_PARAMS)
        to_capture = P.get_int(params, "amount_to_capture", minimum=1)
        metadata = P.get_metadata(params)
        with self.lock:
            intent = self._intent_in(ident, ("requires_capture",),
                                     "This PaymentIntent could not be captured", "captured")
            capturable = intent["amount_capturable"]
            amount = capturable if to_capture is None else to_capture
            if amount > capturable:
                raise P.reject("The amount to capture must be less than or equal to the "
                               f"amount capturable ({capturable}).", param="amount_to_capture")
            charge = self._charges[intent["latest_charge"]]
            charge.update(captured=True, amount_captured=amount,
                          balance_transaction=self.new_id("txn_"))
            self.ledger.capture(charge["id"], amount)
            intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
            intent["metadata"] = P.merge_metadata(intent["metadata"], metadata)
            self._emit("payment_intent.succeeded", intent, info)
            return self._render(intent, params)

    def cancel_intent(self, ident: str, params: DecodedForm, info: RequestIds) -> dict[str, Any]:
        P.check_known(params, P.CANCEL_PARAMS)
        reason = P.get_enum(params, "cancellation_reason",
                            ("duplicate", "fraudulent", "requested_by_customer", "abandoned"))
        with self.lock:
            intent = self._intent_in(ident, CANCELABLE, "You cannot cancel this PaymentIntent",
                                     "canceled")
            if intent["status"] == "requires_capture":
                charge = self._charges[intent["latest_charge"]]
                charge.update(refunded=True, amount_refunded=charge["amount"])
                self.ledger.release(charge["id"])
            intent.update(status="canceled", canceled_at=self._created(),
                          cancellation_reason=reason, amount_capturable=0, next_action=None)
            self._emit("payment_intent.canceled", intent, info)
            return self._render(intent, params)

    def _intent_in(self, ident: str, statuses: tuple[str, ...], refusal: str, done: str
                   ) -> dict[str, Any]:
        """The PaymentIntent, if its status allows the operation; else Stripe's
        ``payment_intent_unexpected_state`` ("{refusal} because it has a status of ...")."""
        intent = self._intent(ident)
        if intent["status"] not in statuses:
            raise unexpected_state(
                f"{refusal} because it has a status of {intent['status']}. Only a PaymentIntent "
                f"with one of the following statuses may be {done}: {', '.join(statuses)}.",
                intent)
        return intent

    def complete_action(self, ident: str, *, succeed: bool = True) -> dict[str, Any]:
        """The customer finished (or failed) the authentication a ``requires_action`` asked for."""
        info = RequestIds()
        with self.lock:
            intent = self._intent(ident)
            if intent["status"] != "requires_action":
                raise unexpected_state(f"PaymentIntent {ident} is {intent['status']}.", intent)
            card = self._known_card(intent["payment_method"])
            assert card is not None
            intent["next_action"] = None
            if succeed:
                self._succeed(intent, intent["payment_method"], card, info)
            else:
                self._decline(intent, intent["payment_method"], card, info,
                              code="payment_intent_authentication_failure", decline_code=None,
                              message="The provided PaymentMethod has failed authentication.",
                              raise_error=False)
            return copy.deepcopy(intent)
