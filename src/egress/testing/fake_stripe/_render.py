"""How the fake's objects are shown: copies, ``expand``, payment method and card details."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from egress.testing.fake_stripe._account import Account
from egress.testing.fake_stripe._cards import TestCard
from egress.testing.fake_stripe._forms import DecodedForm
from egress.testing.fake_stripe._lists import INTENT_EXPANDABLE, REFUND_EXPANDABLE, expansions

__all__ = ["Rendering"]


def _expanded(obj: dict[str, Any], expand: set[str],
              expanders: Mapping[str, Callable[[str], Any]]) -> dict[str, Any]:
    """A copy of ``obj`` with each id named in ``expand`` replaced by what it refers to."""
    out = copy.deepcopy(obj)
    for name in expand:
        if out[name] is not None:
            out[name] = expanders[name](out[name])
    return out


class Rendering(Account):
    """An object as the API returns it (a deep copy, expansions applied)."""

    def _render(self, intent: dict[str, Any], params: DecodedForm, *,
                listing: bool = False) -> dict[str, Any]:
        return _expanded(intent, expansions(params, INTENT_EXPANDABLE, listing=listing), {
            "latest_charge": self._charge_copy, "payment_method": self._payment_method_shown})

    def _render_refund(self, refund: dict[str, Any], params: DecodedForm, *,
                       listing: bool = False) -> dict[str, Any]:
        return _expanded(refund, expansions(params, REFUND_EXPANDABLE, listing=listing), {
            "charge": self._charge_copy,
            "payment_intent": lambda ident: self._render(self._intents[ident], {})})

    def _charge_copy(self, ident: str) -> dict[str, Any]:
        return copy.deepcopy(self._charges[ident])

    def _payment_method_shown(self, ident: str) -> Any:
        """The payment method object; a method the fake knows no card of stays an id."""
        card = self._known_card(ident)
        return ident if card is None else self._payment_method_object(ident, card)

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
