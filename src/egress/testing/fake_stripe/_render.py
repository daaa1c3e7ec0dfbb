"""How the fake's objects are shown: copies, ``expand``, payment method and card details."""

from __future__ import annotations

import copy
from typing import Any

from egress.testing.fake_stripe._account import Account
from egress.testing.fake_stripe._cards import TestCard
from egress.testing.fake_stripe._forms import Params
from egress.testing.fake_stripe._lists import INTENT_EXPANDABLE, REFUND_EXPANDABLE, expansions

__all__ = ["Rendering"]


class Rendering(Account):
    """An object as the API returns it (a deep copy, expansions applied)."""

    def _render(self, intent: dict[str, Any], params: Params, *,
                listing: bool = False) -> dict[str, Any]:
        out = copy.deepcopy(intent)
        expand = expansions(params, INTENT_EXPANDABLE, listing=listing)
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
        expand = expansions(params, REFUND_EXPANDABLE, listing=listing)
        if "charge" in expand and out["charge"] is not None:
            out["charge"] = copy.deepcopy(self._charges[out["charge"]])
        if "payment_intent" in expand and out["payment_intent"] is not None:
            out["payment_intent"] = self._render(self._intents[out["payment_intent"]], {})
        return out

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
