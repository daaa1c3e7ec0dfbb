"""Paging for lists and searches: ``limit``, ``created`` filters, cursors, pages, ``expand``
paths (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from egress.testing.fake_stripe import _params as P
from egress.testing.fake_stripe._errors import invalid, resource_missing
from egress.testing.fake_stripe._forms import DecodedForm

__all__ = ["DEFAULT_LIST_LIMIT", "INTENT_EXPANDABLE", "MAX_LIST_LIMIT", "REFUND_EXPANDABLE",
           "created_filter", "expansions", "list_limit", "one_page"]

DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100


def list_limit(params: DecodedForm) -> int:
    limit = P.get_int(params, "limit")
    if limit is None:
        limit = DEFAULT_LIST_LIMIT
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid("This value must be between 1 and 100.", param="limit")
    return limit


def created_filter(params: DecodedForm) -> Callable[[dict[str, Any]], bool]:
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


def after_cursor(items: list[dict[str, Any]], cursor: str, known: Mapping[str, Any],
                  kind: str) -> list[dict[str, Any]]:
    """Stripe's ``starting_after``: the items after ``cursor`` (an unknown id is a 404)."""
    if cursor not in known:
        raise resource_missing(kind, cursor, "starting_after")
    ids = [item["id"] for item in items]
    return items[ids.index(cursor) + 1:] if cursor in ids else []


# What ``expand`` may name on each object (lists and searches: with a ``data.`` prefix).
INTENT_EXPANDABLE = frozenset({"latest_charge", "payment_method"})
REFUND_EXPANDABLE = frozenset({"charge", "payment_intent"})


def expansions(params: DecodedForm, allowed: frozenset[str], *, listing: bool) -> set[str]:
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


def one_page(items: list[dict[str, Any]], limit: int, after: str | None, before: str | None, *,
          known: Mapping[str, Any], kind: str) -> tuple[list[dict[str, Any]], bool]:
    """One page of a newest-first list and its ``has_more``, in either direction.

    ``starting_after``: the ``limit`` items after the cursor, ``has_more`` if more follow.
    ``ending_before``: the ``limit`` items just before the cursor (newer ones), ``has_more`` if
    still newer ones exist: what the SDK's backward iteration follows until it is false.
    """
    if after is not None:
        items = after_cursor(items, after, known, kind)
    elif before is not None:
        if before not in known:
            raise resource_missing(kind, before, "ending_before")
        ids = [item["id"] for item in items]
        newer = items[:ids.index(before)] if before in ids else []
        return newer[-limit:], len(newer) > limit
    return items[:limit], len(items) > limit
