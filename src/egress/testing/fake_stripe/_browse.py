"""Reading many objects: the PaymentIntent and refund lists, and the PaymentIntent search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from egress.testing.fake_stripe import _params as P
from egress.testing.fake_stripe._errors import invalid
from egress.testing.fake_stripe._forms import DecodedForm
from egress.testing.fake_stripe._lists import (
    INTENT_EXPANDABLE,
    REFUND_EXPANDABLE,
    created_filter,
    expansions,
    list_limit,
    one_page,
)
from egress.testing.fake_stripe._render import Rendering
from egress.testing.fake_stripe._search import QueryError, parse_query

__all__ = ["Browsing"]


class Browsing(Rendering):
    """``GET /v1/payment_intents``, ``/v1/payment_intents/search`` and ``/v1/refunds``."""

    def list_intents(self, params: DecodedForm) -> dict[str, Any]:
        P.check_known(params, P.LIST_PARAMS)
        customer = P.get_str(params, "customer")
        return self._listed(params, self._intents, INTENT_EXPANDABLE, self._render,
                            lambda i: customer is None or i["customer"] == customer,
                            kind="payment_intent", url="/v1/payment_intents")

    def search_intents(self, params: DecodedForm) -> dict[str, Any]:
        P.check_known(params, P.SEARCH_PARAMS)
        query = P.get_str(params, "query", required=True) or ""
        expansions(params, INTENT_EXPANDABLE, listing=True)
        limit = list_limit(params)
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

    def list_refunds(self, params: DecodedForm) -> dict[str, Any]:
        P.check_known(params, P.REFUND_LIST_PARAMS)
        pi_id = P.get_str(params, "payment_intent")
        charge_id = P.get_str(params, "charge")
        return self._listed(params, self._refunds, REFUND_EXPANDABLE, self._render_refund,
                            lambda r: (pi_id is None or r["payment_intent"] == pi_id)
                            and (charge_id is None or r["charge"] == charge_id),
                            kind="refund", url="/v1/refunds")

    def _listed(self, params: DecodedForm, objects: dict[str, dict[str, Any]],
                expandable: frozenset[str], render: Callable[..., dict[str, Any]],
                matches: Callable[[dict[str, Any]], bool], *, kind: str, url: str
                ) -> dict[str, Any]:
        """One page of the ``objects`` that match, newest first, as Stripe lists them
        (``limit``, ``created``, ``starting_after``/``ending_before``, ``expand``)."""
        expansions(params, expandable, listing=True)
        limit = list_limit(params)
        after = P.get_str(params, "starting_after")
        before = P.get_str(params, "ending_before")
        created = created_filter(params)
        with self.lock:
            items = [o for o in reversed(objects.values()) if matches(o) and created(o)]
            page, more = one_page(items, limit, after, before, known=objects, kind=kind)
            return {"object": "list", "data": [render(o, params, listing=True) for o in page],
                    "has_more": more, "url": url}
