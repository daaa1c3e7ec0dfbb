"""The fake's account: the objects it holds and the plumbing every operation shares.

No I/O here: the HTTP layer hands in parsed parameters and gets back a JSON-ready object or a
:class:`~._errors.StripeApiError`. Time comes from an injected clock (``wall()`` for ``created``
timestamps, ``now()`` for the search index lag), randomness (ids) from an injected
``random.Random``. Every write goes through :attr:`Account.lock`, so another thread can read
objects and the ledger safely. The operations live beside it, one room per concern, and
:class:`~._state.StripeState` is all of them at once.
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
from egress.testing.fake_stripe._cards import TestCard, card_for
from egress.testing.fake_stripe._errors import StripeApiError, invalid, resource_missing
from egress.testing.fake_stripe._forms import DecodedForm
from egress.testing.fake_stripe._ledger import Ledger

__all__ = ["API_VERSION", "DEFAULT_REFERENCE_KEY", "Account", "RequestIds", "unexpected_state"]

API_VERSION = "2024-06-20"
DEFAULT_REFERENCE_KEY = "reference"
_ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The identifiers of the request that asked for an operation (not ``egress.http``'s
    ``RequestInfo``, which describes a call egress makes)."""

    request_id: str | None = None
    idempotency_key: str | None = None


def unexpected_state(message: str, intent: dict[str, Any]) -> StripeApiError:
    return StripeApiError(400, "invalid_request_error", message,
                          code="payment_intent_unexpected_state",
                          extra={"payment_intent": copy.deepcopy(intent)})


class Account:
    """One test-mode Stripe account's objects in memory, and what every operation shares."""

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

    def _emit(self, type_: str, obj: dict[str, Any], info: RequestIds) -> None:
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

    # -- payment methods ---------------------------------------------------------------------

    def _known_card(self, payment_method: str) -> TestCard | None:
        return self._methods.get(payment_method) or card_for(payment_method)

    def _payment_method_param(self, params: DecodedForm) -> str | None:
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
