"""Stripe's JSON objects -> domain values, strictly.

JSON is parsed with duplicate keys, ``NaN``/``Infinity`` and absurd nesting refused; amounts must
be integers; an unknown ``status`` is an error rather than a guess. Every failure is a
:class:`ValueError` whose message names the field but never echoes a value (it could be anything
the server sent); the adapter turns it into :class:`~egress.errors.ResponseError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from egress.adapters.stripe._amounts import from_stripe_amount
from egress.payments._build import builder
from egress.payments.models import (
    Payment,
    PaymentStatus,
    Refund,
    RefundReason,
    RefundStatus,
)

__all__ = [
    "parse_json",
    "parse_list",
    "parse_payment_intent",
    "parse_refund",
    "unix_to_datetime",
]

def _no_constants(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # The dict is built in C; fewer keys than pairs means one came twice.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return result


# Built once: json.loads with hooks builds a decoder on every call. Its C scanner is called
# directly (what JSONDecoder.decode does, without its two Python frames): a value from the
# first non-blank character, then nothing but blanks.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constants)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_BLANKS = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json.decoder skips it


def _after_blanks(text: str, at: int) -> int:
    found = _BLANKS.match(text, at)
    return found.end() if found else at


def parse_json(content: bytes) -> dict[str, Any]:
    """Parse a Stripe response body: a JSON object in UTF-8 (RFC 8259), strictly."""
    try:
        text = content.decode("utf-8")
        doc, end = _SCAN(text, 0 if text[:1] == "{" else _after_blanks(text, 0))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"response is not JSON ({type(exc).__name__})") from None
    except StopIteration:  # no value where one should start
        raise ValueError("response is not JSON (JSONDecodeError)") from None
    except RecursionError:
        raise ValueError("response JSON is nested too deeply") from None
    if end != len(text) and _after_blanks(text, end) != len(text):
        raise ValueError("response is not JSON (JSONDecodeError)")  # data after the value
    if not isinstance(doc, dict):
        raise ValueError("response is not a JSON object")
    return doc


def _str(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"field {name!r} is missing or not a string")
    return value


def _opt_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])  # an expanded object: keep its id
    raise ValueError(f"field {name!r} is not a string")


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {name!r} is missing or not an integer")
    return value


def unix_to_datetime(seconds: int, name: str = "created") -> datetime:
    """A Unix timestamp as an aware UTC datetime; out of range is a ``ValueError`` naming the
    field (``fromtimestamp`` raises ``OverflowError`` or ``OSError`` for what a server sends)."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"field {name!r} is not a timestamp in range") from None


def _is_map(value: object) -> bool:
    # JSON gives dicts: the exact type first; the ABC check (costly) only for anything else.
    return type(value) is dict or isinstance(value, Mapping)


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata")
    if metadata is None:
        return {}
    if not _is_map(metadata):
        raise ValueError("field 'metadata' is not a map of strings")
    for key, value in metadata.items():
        if type(key) is not str or type(value) is not str:  # JSON gives exact types
            raise ValueError("field 'metadata' is not a map of strings")
    return dict(metadata)


def _object(obj: Mapping[str, Any], expected: str) -> None:
    if obj.get("object") != expected:
        raise ValueError(f"expected a {expected} object")


# A dict lookup instead of calling the Enum (which raises and catches for an unknown value).
_PAYMENT_STATUSES: dict[str, PaymentStatus] = {s.value: s for s in PaymentStatus}


def parse_payment_intent(obj: Mapping[str, Any], *, reference_key: str) -> Payment:
    """A ``payment_intent`` object as a :class:`Payment`."""
    # Once per payment: the usual exact JSON types are taken inline, and anything else goes
    # through the general checks (_int, _opt_str), which accept or refuse it as they always did.
    if obj.get("object") != "payment_intent":
        raise ValueError("expected a payment_intent object")
    currency = obj.get("currency")
    raw_status = obj.get("status")
    status = _PAYMENT_STATUSES.get(raw_status) if type(raw_status) is str else None
    if status is None:
        raise ValueError("field 'status' holds an unknown payment status")
    metadata = _metadata(obj)
    error = obj.get("last_payment_error")
    decline_code = None
    if error is not None and _is_map(error):
        code = error.get("decline_code") or error.get("code")
        decline_code = code if isinstance(code, str) else None
    amount = obj.get("amount")
    if type(amount) is not int:
        amount = _int(obj, "amount")
    money = from_stripe_amount(amount, currency)
    received = capturable = None
    for name in ("amount_received", "amount_capturable"):
        value = obj.get(name)
        if value is None:
            continue
        if type(value) is not int:
            value = _int(obj, name)
        # Usually the amount itself (received in full) or zero: Money is immutable, reuse it.
        found = money if value == amount else from_stripe_amount(value, currency)
        if name == "amount_received":
            received = found
        else:
            capturable = found
    payment_id = obj.get("id")
    if type(payment_id) is not str or not payment_id:
        payment_id = _str(obj, "id")
    created = obj.get("created")
    if type(created) is not int:
        created = _int(obj, "created")
    # Built without Payment.__init__: every value is checked above, and created is already an
    # aware UTC datetime (what __post_init__ would make of it); the metadata dict is this
    # parse's own copy, so the read-only view needs no second one. (A test in
    # tests/unit/test_payment_fast_paths.py holds this equal to Payment(...).)
    return _build_payment(
        id=payment_id, status=status, amount=money, created=unix_to_datetime(created),
        reference=metadata.get(reference_key), amount_received=received,
        amount_capturable=capturable, customer=_opt_str(obj, "customer"),
        payment_method=_opt_str(obj, "payment_method"),
        description=_opt_str(obj, "description"), metadata=MappingProxyType(metadata),
        decline_code=decline_code, cancellation_reason=_opt_str(obj, "cancellation_reason"))


_build_payment = builder(Payment)


def parse_refund(obj: Mapping[str, Any], *, reference_key: str) -> Refund:
    """A ``refund`` object as a :class:`Refund` (``payment_id`` falls back to the charge id)."""
    _object(obj, "refund")
    raw_status = obj.get("status")
    try:
        status = RefundStatus(raw_status if raw_status is not None else "pending")
    except ValueError:
        raise ValueError("field 'status' holds an unknown refund status") from None
    raw_reason = obj.get("reason")
    try:
        reason = None if raw_reason is None else RefundReason(raw_reason)
    except ValueError:
        reason = None  # e.g. "expired_uncaptured_charge": set by Stripe, not by callers
    payment_id = _opt_str(obj, "payment_intent") or _opt_str(obj, "charge")
    if payment_id is None:
        raise ValueError("refund names neither a payment_intent nor a charge")
    return Refund(
        id=_str(obj, "id"),
        payment_id=payment_id,
        amount=from_stripe_amount(_int(obj, "amount"), obj.get("currency")),
        status=status,
        created=unix_to_datetime(_int(obj, "created")),
        reference=_metadata(obj).get(reference_key),
        reason=reason,
        failure_reason=_opt_str(obj, "failure_reason"),
    )


def parse_list(obj: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], bool, str | None]:
    """A ``list`` or ``search_result``: its objects, ``has_more`` and the next search page."""
    if obj.get("object") not in ("list", "search_result"):
        raise ValueError("expected a list object")
    data = obj.get("data")
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise ValueError("field 'data' is not a list of objects")
    has_more = obj.get("has_more")
    if not isinstance(has_more, bool):
        raise ValueError("field 'has_more' is not a boolean")
    next_page = obj.get("next_page")
    return data, has_more, next_page if isinstance(next_page, str) else None
