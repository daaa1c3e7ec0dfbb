"""The fake's account: PaymentIntents, charges, refunds and events, and their rules (pure).

No I/O here: the HTTP layer hands in parsed parameters and gets back a JSON-ready object or a
:class:`~._errors.StripeApiError`. Time comes from an injected clock (``wall()`` for ``created``
timestamps, ``now()`` for the search index lag), randomness (ids) from an injected
``random.Random``. Every write goes through :attr:`StripeState.lock`, so another thread can read
objects and the ledger safely.

The objects follow the shapes of Stripe API version :data:`API_VERSION` (``latest_charge``, no
``charges`` list) and validate against ``#/components/schemas/payment_intent``.
"""

from __future__ import annotations

import copy
import random
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from egress.testing.fake_stripe import _params as P
from egress.testing.fake_stripe._cards import Outcome, TestCard, card_for
from egress.testing.fake_stripe._errors import StripeApiError, invalid, resource_missing
from egress.testing.fake_stripe._forms import Params
from egress.testing.fake_stripe._ledger import Charge, Ledger, RefundRecord
from egress.testing.fake_stripe._search import QueryError, parse_query

__all__ = ["API_VERSION", "DEFAULT_REFERENCE_KEY", "RequestInfo", "StripeState"]

API_VERSION = "2024-06-20"
DEFAULT_REFERENCE_KEY = "reference"
MAX_AMOUNT = 99_999_999
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100

# Minimum charge amounts in minor units (Stripe's "Minimum and maximum charge amounts" table);
# currencies not listed accept any positive amount here.
MINIMUM_AMOUNTS = {
    "usd": 50, "eur": 50, "gbp": 30, "aud": 50, "cad": 50, "chf": 50, "nzd": 50, "sgd": 50,
    "jpy": 50, "hkd": 400, "dkk": 250, "nok": 300, "sek": 300, "mxn": 1000, "pln": 200,
    "czk": 1500, "huf": 17500, "brl": 50, "inr": 50,
}
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_EDITABLE_ALWAYS = frozenset({"metadata", "description", "receipt_email", "expand", "shipping"})
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What an operation needs to know about the request that asked for it."""

    request_id: str | None = None
    idempotency_key: str | None = None


def _unexpected_state(message: str, intent: dict[str, Any]) -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", message,
                          code="payment_intent_unexpected_state",
                          extra={"payment_intent": copy.deepcopy(intent)})


class StripeState:
    """One test-mode Stripe account held in memory."""

    def __init__(self, *, wall: Callable[[], float], now: Callable[[], float],
                 rng: random.Random, reference_key: str = DEFAULT_REFERENCE_KEY,
                 search_lag: float = 0.0) -> None:
        self._wall = wall
        self._now = now
        self._rng = rng
        self.reference_key = reference_key
        self.search_lag = search_lag
        self.lock = threading.RLock()
        self.ledger = Ledger()
        self._intents: dict[str, dict[str, Any]] = {}
        self._indexed_at: dict[str, float] = {}
        self._charges: dict[str, dict[str, Any]] = {}
        self._refunds: dict[str, dict[str, Any]] = {}
        # Payment methods created from payment_method_data (a test token): id -> card.
        self._methods: dict[str, TestCard] = {}
        self.events: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []

    # -- plumbing ----------------------------------------------------------------------------

    def new_id(self, prefix: str, length: int = 24) -> str:
        return prefix + "".join(self._rng.choice(_ALNUM) for _ in range(length))

    def _created(self) -> int:
        return int(self._wall())

    def reset(self) -> None:
        with self.lock:
            self.ledger.clear()
            self._intents.clear()
            self._indexed_at.clear()
            self._charges.clear()
            self._refunds.clear()
            self._methods.clear()
            self.events.clear()
            self._pending.clear()

    def take_events(self) -> list[dict[str, Any]]:
        """Events emitted since the last call (for the webhook sender)."""
        with self.lock:
            pending, self._pending = self._pending, []
            return pending

    def _emit(self, type_: str, obj: dict[str, Any], info: RequestInfo) -> None:
        event = {
            "id": self.new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self._created(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": info.request_id, "idempotency_key": info.idempotency_key},
            "type": type_,
        }
        self.events.append(event)
        self._pending.append(event)

    def _render(self, intent: dict[str, Any], params: Params, *,
                listing: bool = False) -> dict[str, Any]:
        out = copy.deepcopy(intent)
        expand = _expansions(params, _INTENT_EXPANDABLE, listing=listing)
        if "latest_charge" in expand and out["latest_charge"] is not None:
            out["latest_charge"] = copy.deepcopy(self._charges[out["latest_charge"]])
        if "payment_method" in expand and out["payment_method"] is not None:
            card = self._known_card(out["payment_method"])
            if card is not None:
                out["payment_method"] = self._payment_method_object(out["payment_method"], card)
        return out

    def _render_refund(self, refund: dict[str, Any], params: Params, *,
                       listing: bool = False) -> dict[str, Any]:
        out = copy.deepcopy(refund)
        expand = _expansions(params, _REFUND_EXPANDABLE, listing=listing)
        if "charge" in expand and out["charge"] is not None:
            out["charge"] = copy.deepcopy(self._charges[out["charge"]])
        if "payment_intent" in expand and out["payment_intent"] is not None:
            out["payment_intent"] = self._render(self._intents[out["payment_intent"]], {})
        return out

    def _intent(self, ident: str) -> dict[str, Any]:
        intent = self._intents.get(ident)
        if intent is None:
            raise resource_missing("payment_intent", ident, "intent")
        return intent

    # -- reads for tests ---------------------------------------------------------------------

    def intent_snapshot(self, ident: str) -> dict[str, Any] | None:
        with self.lock:
            intent = self._intents.get(ident)
            return copy.deepcopy(intent) if intent is not None else None

    def intents_snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(i) for i in self._intents.values()]

    # -- PaymentIntents ----------------------------------------------------------------------

    def create_intent(self, params: Params, info: RequestInfo) -> dict[str, Any]:
        P.check_known(params, P.CREATE_PARAMS)
        amount, currency = self._amount_and_currency(params)
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
        shipping = _shipping(params)
        card_options = _card_options(params)
        _refuse_connect_only(params)
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
                    raise _unexpected_state(
                        "You cannot confirm this PaymentIntent because it's missing a payment "
                        "method. Update it with a payment method and confirm it again.", intent)
                self._run_confirmation(intent, payment_method, card, info,
                                       off_session=bool(off_session),
                                       error_on_action=bool(error_on_action))
            return self._render(intent, params)

    def retrieve_intent(self, ident: str, params: Params) -> dict[str, Any]:
        P.check_known(params, P.RETRIEVE_PARAMS)
        with self.lock:
            return self._render(self._intent(ident), params)

    def update_intent(self, ident: str, params: Params, info: RequestInfo) -> dict[str, Any]:
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
                raise _unexpected_state(
                    f"You cannot update {restricted[0]} on a PaymentIntent with a status of "
                    f"{intent['status']}.", intent)
            if amount is not None:
                intent["amount"] = self._check_amount(amount, currency or intent["currency"])
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

    def confirm_intent(self, ident: str, params: Params, info: RequestInfo) -> dict[str, Any]:
        P.check_known(params, P.CONFIRM_PARAMS)
        payment_method = self._payment_method_param(params)
        off_session = P.get_bool(params, "off_session") or False
        error_on_action = P.get_bool(params, "error_on_requires_action") or False
        capture_method = P.get_enum(params, "capture_method",
                                    ("automatic", "automatic_async", "manual"))
        card = self._card(payment_method) if payment_method is not None else None
        with self.lock:
            intent = self._intent(ident)
            if intent["status"] not in CONFIRMABLE:
                raise _unexpected_state(
                    "You cannot confirm this PaymentIntent because it has a status of "
                    f"{intent['status']}. Only a PaymentIntent with one of the following "
                    f"statuses may be confirmed: {', '.join(CONFIRMABLE)}.", intent)
            if payment_method is None:
                payment_method = intent["payment_method"]
                card = self._card(payment_method) if payment_method is not None else None
            if payment_method is None or card is None:
                raise _unexpected_state(
                    "You cannot confirm this PaymentIntent because it's missing a payment "
                    "method. Update it with a payment method and confirm it again.", intent)
            if capture_method is not None:
                intent["capture_method"] = capture_method
            if "receipt_email" in params:
                intent["receipt_email"] = P.get_str(params, "receipt_email")
            self._run_confirmation(intent, payment_method, card, info,
                                   off_session=off_session, error_on_action=error_on_action)
            return self._render(intent, params)

    def capture_intent(self, ident: str, params: Params, info: RequestInfo) -> dict[str, Any]:
        P.check_known(params, P.CAPTURE_PARAMS)
        to_capture = P.get_int(params, "amount_to_capture", minimum=1)
        metadata = P.get_metadata(params)
        with self.lock:
            intent = self._intent(ident)
            if intent["status"] != "requires_capture":
                raise _unexpected_state(
                    "This PaymentIntent could not be captured because it has a status of "
                    f"{intent['status']}. Only a PaymentIntent with one of the following "
                    "statuses may be captured: requires_capture.", intent)
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

    def cancel_intent(self, ident: str, params: Params, info: RequestInfo) -> dict[str, Any]:
        P.check_known(params, P.CANCEL_PARAMS)
        reason = P.get_enum(params, "cancellation_reason",
                            ("duplicate", "fraudulent", "requested_by_customer", "abandoned"))
        with self.lock:
            intent = self._intent(ident)
            if intent["status"] not in CANCELABLE:
                raise _unexpected_state(
                    "You cannot cancel this PaymentIntent because it has a status of "
                    f"{intent['status']}. Only a PaymentIntent with one of the following "
                    f"statuses may be canceled: {', '.join(CANCELABLE)}.", intent)
            if intent["status"] == "requires_capture":
                charge = self._charges[intent["latest_charge"]]
                charge.update(refunded=True, amount_refunded=charge["amount"])
                self.ledger.release(charge["id"])
            intent.update(status="canceled", canceled_at=self._created(),
                          cancellation_reason=reason, amount_capturable=0, next_action=None)
            self._emit("payment_intent.canceled", intent, info)
            return self._render(intent, params)

    def list_intents(self, params: Params) -> dict[str, Any]:
        P.check_known(params, P.LIST_PARAMS)
        _expansions(params, _INTENT_EXPANDABLE, listing=True)
        limit = self._limit(params)
        after = P.get_str(params, "starting_after")
        before = P.get_str(params, "ending_before")
        customer = P.get_str(params, "customer")
        created = self._created_filter(params)
        with self.lock:
            items = [i for i in reversed(self._intents.values())
                     if (customer is None or i["customer"] == customer) and created(i)]
            page, more = _page(items, limit, after, before, known=self._intents,
                               kind="payment_intent")
            return {"object": "list",
                    "data": [self._render(i, params, listing=True) for i in page],
                    "has_more": more, "url": "/v1/payment_intents"}

    def search_intents(self, params: Params) -> dict[str, Any]:
        P.check_known(params, P.SEARCH_PARAMS)
        query = P.get_str(params, "query", required=True) or ""
        _expansions(params, _INTENT_EXPANDABLE, listing=True)
        limit = self._limit(params)
        page = P.get_str(params, "page")
        offset = 0
        if page is not None:
            if not page.startswith("page_o") or not page[6:].isdigit():
                raise invalid("Invalid page token.", param="page")
            offset = int(page[6:])
        try:
            predicate = parse_query(query)
        except QueryError as exc:
            raise invalid(str(exc), param="query") from exc
        now = self._now()
        with self.lock:
            hits = [i for i in reversed(self._intents.values())
                    if self._indexed_at[i["id"]] <= now and predicate(i)]
            page_items = hits[offset:offset + limit]
            more = len(hits) > offset + limit
            return {"object": "search_result",
                    "data": [self._render(i, params, listing=True) for i in page_items],
                    "has_more": more,
                    "next_page": f"page_o{offset + limit}" if more else None,
                    "url": "/v1/payment_intents/search"}

    def complete_action(self, ident: str, *, succeed: bool = True) -> dict[str, Any]:
        """The customer finished (or failed) the authentication a ``requires_action`` asked for."""
        info = RequestInfo()
        with self.lock:
            intent = self._intent(ident)
            if intent["status"] != "requires_action":
                raise _unexpected_state(f"PaymentIntent {ident} is {intent['status']}.", intent)
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

    # -- refunds -----------------------------------------------------------------------------

    def create_refund(self, params: Params, info: RequestInfo) -> dict[str, Any]:
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

    def list_refunds(self, params: Params) -> dict[str, Any]:
        P.check_known(params, P.REFUND_LIST_PARAMS)
        _expansions(params, _REFUND_EXPANDABLE, listing=True)
        limit = self._limit(params)
        pi_id = P.get_str(params, "payment_intent")
        charge_id = P.get_str(params, "charge")
        after = P.get_str(params, "starting_after")
        before = P.get_str(params, "ending_before")
        created = self._created_filter(params)
        with self.lock:
            items = [r for r in reversed(self._refunds.values())
                     if (pi_id is None or r["payment_intent"] == pi_id)
                     and (charge_id is None or r["charge"] == charge_id) and created(r)]
            page, more = _page(items, limit, after, before, known=self._refunds, kind="refund")
            return {"object": "list",
                    "data": [self._render_refund(r, params, listing=True) for r in page],
                    "has_more": more, "url": "/v1/refunds"}

    def retrieve_refund(self, ident: str, params: Params) -> dict[str, Any]:
        P.check_known(params, frozenset({"expand"}))
        with self.lock:
            refund = self._refunds.get(ident)
            if refund is None:
                raise resource_missing("refund", ident, "id")
            return self._render_refund(refund, params)

    # -- confirmation ------------------------------------------------------------------------

    def _run_confirmation(self, intent: dict[str, Any], payment_method: str, card: TestCard,
                          info: RequestInfo, *, off_session: bool, error_on_action: bool) -> None:
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
                 info: RequestInfo) -> None:
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
                 info: RequestInfo, *, code: str, decline_code: str | None, message: str,
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

    def _card_details(self, card: TestCard) -> dict[str, Any]:
        return {"brand": card.brand, "country": "US", "exp_month": 12, "exp_year": 2034,
                "funding": card.funding, "last4": card.last4, "network": card.brand,
                "checks": {"address_line1_check": None, "address_postal_code_check": None,
                           "cvc_check": "pass"}}

    def _payment_method_object(self, ident: str, card: TestCard) -> dict[str, Any]:
        return {"id": ident, "object": "payment_method", "type": "card",
                "card": self._card_details(card), "created": self._created(),
                "customer": None, "livemode": False, "metadata": {},
                "billing_details": {"address": None, "email": None, "name": None,
                                    "phone": None}}

    # -- parameter helpers -------------------------------------------------------------------

    def _known_card(self, payment_method: str) -> TestCard | None:
        return self._methods.get(payment_method) or card_for(payment_method)

    def _payment_method_param(self, params: Params) -> str | None:
        """``payment_method``, or a card payment method created from ``payment_method_data``
        (``type=card`` with a test token such as ``tok_visa``), as Stripe creates one."""
        given = P.get_str(params, "payment_method")
        data = params.get("payment_method_data")
        if data is None:
            return given
        if given is not None:
            raise invalid("You may only specify one of these parameters: payment_method, "
                          "payment_method_data.", param="payment_method_data")
        if not isinstance(data, Mapping):
            raise invalid("Invalid hash", param="payment_method_data",
                          code="parameter_invalid_hash")
        if P.get_str(data, "type") != "card":
            raise invalid("FakeStripe creates card payment methods only: set "
                          "payment_method_data[type]=card.", param="payment_method_data[type]")
        card_data = data.get("card")
        token = P.get_str(card_data, "token") if isinstance(card_data, Mapping) else None
        if token is None:
            # Stripe refuses raw card numbers unless the account is allowed to send them.
            raise invalid("Sending credit card numbers directly to the Stripe API is generally "
                          "unsafe. To continue processing use Stripe.js, the Stripe mobile "
                          "bindings, or Stripe Elements. In test mode, pass a test token "
                          "such as payment_method_data[card][token]=tok_visa.",
                          param="payment_method_data[card]")
        card = card_for("pm_card_" + token.removeprefix("tok_")) if token.startswith(
            "tok_") else None
        if card is None:
            raise invalid(f"No such token: '{token[:60]}'", param="payment_method_data[card]",
                          code="resource_missing")
        ident = self.new_id("pm_")
        with self.lock:
            self._methods[ident] = card
        return ident

    def _card(self, payment_method: str) -> TestCard:
        card = self._known_card(payment_method)
        if card is None:
            raise StripeApiError(400, "invalid_request_error",
                                 f"No such PaymentMethod: '{payment_method[:60]}'",
                                 code="resource_missing", param="payment_method", saved=False)
        return card

    def _amount_and_currency(self, params: Params) -> tuple[int, str]:
        amount = P.get_int(params, "amount", required=True)
        currency = P.get_str(params, "currency", required=True)
        assert amount is not None and currency is not None
        return self._check_amount(amount, currency), currency.lower()

    def _check_amount(self, amount: int, currency: str) -> int:
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

    def _limit(self, params: Params) -> int:
        limit = P.get_int(params, "limit")
        if limit is None:
            limit = DEFAULT_LIST_LIMIT
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise invalid("This value must be between 1 and 100.", param="limit")
        return limit

    def _created_filter(self, params: Params) -> Callable[[dict[str, Any]], bool]:
        created = params.get("created")
        if created is None:
            return lambda _intent: True
        if isinstance(created, str):
            exact = P.get_int(params, "created")
            return lambda intent: intent["created"] == exact
        if not isinstance(created, dict):
            raise invalid("Invalid created filter", param="created")
        bounds: dict[str, int] = {}
        for op in ("gt", "gte", "lt", "lte"):
            value = P.get_int(created, op)
            if value is not None:
                bounds[op] = value
        if set(created) - set(bounds):
            raise invalid("Invalid created filter", param="created")

        def test(intent: dict[str, Any]) -> bool:
            c = intent["created"]
            return bool(c > bounds.get("gt", c - 1) and c >= bounds.get("gte", c)
                    and c < bounds.get("lt", c + 1) and c <= bounds.get("lte", c))

        return test


def _after_cursor(items: list[dict[str, Any]], cursor: str, known: Mapping[str, Any],
                  kind: str) -> list[dict[str, Any]]:
    """Stripe's ``starting_after``: the items after ``cursor`` (an unknown id is a 404)."""
    if cursor not in known:
        raise resource_missing(kind, cursor, "starting_after")
    ids = [item["id"] for item in items]
    return items[ids.index(cursor) + 1:] if cursor in ids else []


# What ``expand`` may name on each object (lists and searches: with a ``data.`` prefix).
_INTENT_EXPANDABLE = frozenset({"latest_charge", "payment_method"})
_REFUND_EXPANDABLE = frozenset({"charge", "payment_intent"})


def _expansions(params: Params, allowed: frozenset[str], *, listing: bool) -> set[str]:
    """The validated ``expand`` paths, as Stripe checks them: a list expands ``data.X`` and
    refuses a bare ``X`` (naming the right spelling); an unknown path is refused."""
    wanted: set[str] = set()
    for path in P.get_str_list(params, "expand") or []:
        name = path.removeprefix("data.") if listing else path
        if listing and name == path:
            hint = (f" You may want to try expanding 'data.{path}' instead."
                    if path in allowed else "")
            raise invalid(f"This property cannot be expanded ({path}).{hint}")
        if name not in allowed:
            raise invalid(f"This property cannot be expanded ({name}).")
        wanted.add(name)
    return wanted


def _page(items: list[dict[str, Any]], limit: int, after: str | None, before: str | None, *,
          known: Mapping[str, Any], kind: str) -> tuple[list[dict[str, Any]], bool]:
    """One page of a newest-first list and its ``has_more``, in either direction.

    ``starting_after``: the ``limit`` items after the cursor, ``has_more`` if more follow.
    ``ending_before``: the ``limit`` items just before the cursor (newer ones), ``has_more`` if
    still newer ones exist: what the SDK's backward iteration follows until it is false.
    """
    if after is not None:
        items = _after_cursor(items, after, known, kind)
    elif before is not None:
        if before not in known:
            raise resource_missing(kind, before, "ending_before")
        ids = [item["id"] for item in items]
        newer = items[:ids.index(before)] if before in ids else []
        return newer[-limit:], len(newer) > limit
    return items[:limit], len(items) > limit


_ADDRESS_FIELDS = ("city", "country", "line1", "line2", "postal_code", "state")


def _shipping(params: Params) -> dict[str, Any] | None:
    """``shipping``, as Stripe stores it: name and address required, every field echoed."""
    raw = params.get("shipping")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, Mapping):
        raise invalid("Invalid hash", param="shipping", code="parameter_invalid_hash")
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


def _card_options(params: Params) -> dict[str, str]:
    """The ``payment_method_options[card]`` given, checked as Stripe checks them."""
    options = params.get("payment_method_options")
    if options is None or options == "":
        return {}
    if not isinstance(options, Mapping):
        raise invalid("Invalid hash", param="payment_method_options",
                      code="parameter_invalid_hash")
    for kind in options:
        if kind != "card":
            raise invalid(f"Received unknown parameter: payment_method_options[{kind[:40]}]",
                          param=f"payment_method_options[{kind[:40]}]",
                          code="parameter_unknown")
    card = options.get("card")
    if card is None or card == "":
        return {}
    if not isinstance(card, Mapping):
        raise invalid("Invalid hash", param="payment_method_options[card]",
                      code="parameter_invalid_hash")
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


def _refuse_connect_only(params: Params) -> None:
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
