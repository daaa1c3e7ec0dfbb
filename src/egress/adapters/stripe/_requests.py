"""The requests StripePayments sends, built by pure functions from domain values.

Each builder returns a :class:`StripeRequest`: the OpenAPI ``operationId`` it implements, the
method and path, and the parameters: a POST's as its form body, encoded once here (the HTTP client
sends the bytes as they are), a GET's as ordered ``(name, value)`` query fields. The same domain
values always give the same bytes, which the idempotency layer needs; the unit tests check every
builder's output against Stripe's OpenAPI description of the operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qsl

from egress.adapters.stripe._amounts import to_stripe_amount, to_stripe_currency
from egress.adapters.stripe.form import (
    FormValue,
    encode_fields,
    encode_form,
    form_fields,
    quote,
    quote_name,
    quote_value,
)
from egress.errors import InvalidPaymentRequest
from egress.payments._build import builder
from egress.payments.models import CancellationReason, PaymentRequest, RefundReason
from egress.payments.money import Money

__all__ = [
    "DEFAULT_PAYMENT_METHOD_TYPES",
    "DEFAULT_REFERENCE_KEY",
    "FORM_HEADERS",
    "GENERATION_KEY",
    "LIST_PAGE_SIZE",
    "StripeRequest",
    "cancel_intent",
    "capture_intent",
    "confirm_intent",
    "create_intent",
    "create_refund",
    "list_intents",
    "list_refunds",
    "retrieve_intent",
    "retrieve_refund",
    "search_intents",
]

#: The metadata key that carries the caller's reference on every object the adapter creates.
DEFAULT_REFERENCE_KEY: Final = "reference"
#: Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500.
MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_LENGTH: Final = 40
MAX_METADATA_VALUE_LENGTH: Final = 500
LIST_PAGE_SIZE: Final = 100
#: The metadata key that carries the idempotency key's generation on every PaymentIntent the
#: adapter creates: reconciliation reads it to tell which attempt a declined intent belongs to.
GENERATION_KEY: Final = "egress_key_generation"
#: The payment method types a PaymentIntent accepts unless configured otherwise.
DEFAULT_PAYMENT_METHOD_TYPES: Final = ("card",)
#: The headers that go with a POST's ``body``.
FORM_HEADERS: Final = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True, slots=True)
class StripeRequest:
    """One Stripe API request, before any I/O: a GET's ``query`` fields, or a POST's ``body``
    (form-encoded, sent with :data:`FORM_HEADERS`). Not :class:`egress.http._wire.WireRequest`,
    the finished HTTP request a backend sends: this is what the adapter hands to ApiClient."""

    operation_id: str
    method: str
    path: str
    path_params: Mapping[str, str]
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        """The parameters as ``(name, value)`` fields: the query, or the body decoded."""
        if self.body is None:
            return self.query
        return tuple(parse_qsl(self.body.decode("ascii"), keep_blank_values=True))

    @property
    def url_path(self) -> str:
        """The path with its parameters filled in (for logs and tests; the client escapes)."""
        return self.path.format(**self.path_params)


def _post(operation_id: str, path: str, params: Mapping[str, FormValue],
          **path_params: str) -> StripeRequest:
    return StripeRequest(operation_id, "POST", path, path_params, body=encode_form(params))


def _get(operation_id: str, path: str, params: Mapping[str, FormValue],
         **path_params: str) -> StripeRequest:
    return StripeRequest(operation_id, "GET", path, path_params, query=tuple(form_fields(params)))


def _metadata(metadata: Mapping[str, str], reference_key: str,
              reference: str, generation: int | None = None) -> dict[str, str]:
    existing = metadata.get(reference_key)
    if existing is not None and existing != reference:
        raise InvalidPaymentRequest(
            f"metadata[{reference_key}] is reserved for the reference; it holds another value",
            param="metadata")
    if GENERATION_KEY in metadata and reference_key != GENERATION_KEY:
        raise InvalidPaymentRequest(f"metadata[{GENERATION_KEY}] is reserved for the adapter",
                                    param="metadata")
    merged = dict(metadata)
    merged[reference_key] = reference
    if generation is not None:
        merged[GENERATION_KEY] = str(generation)
    if len(merged) > MAX_METADATA_KEYS:
        raise InvalidPaymentRequest(
            f"metadata has more than {MAX_METADATA_KEYS} keys (the reference takes one)",
            param="metadata")
    for key, value in merged.items():
        if len(key) > MAX_METADATA_KEY_LENGTH or "[" in key or "]" in key:
            raise InvalidPaymentRequest(
                f"metadata keys must be at most {MAX_METADATA_KEY_LENGTH} characters without "
                f"square brackets", param="metadata")
        if len(value) > MAX_METADATA_VALUE_LENGTH:
            raise InvalidPaymentRequest(
                f"metadata values must be at most {MAX_METADATA_VALUE_LENGTH} characters",
                param="metadata")
    return {key: merged[key] for key in sorted(merged)}


def _check_id(value: str, what: str) -> str:
    if not value or len(value) > 255 or not value.isprintable() or "/" in value:
        raise InvalidPaymentRequest(f"{what} is not a valid Stripe id", param=what)
    return value


# -- PaymentIntents ----------------------------------------------------------------------------


def create_intent(request: PaymentRequest, *,
                  reference_key: str = DEFAULT_REFERENCE_KEY,
                  payment_method_types: tuple[str, ...] = DEFAULT_PAYMENT_METHOD_TYPES,
                  generation: int | None = None) -> StripeRequest:
    """``POST /v1/payment_intents``: create (and, with ``confirm``, confirm) a PaymentIntent.

    ``payment_method_types`` is always sent: with it, a server-side confirmation never needs a
    ``return_url`` for a redirect-based method the account happens to have enabled.
    ``generation`` (the idempotency key's) is tagged in ``metadata[egress_key_generation]``:
    every attempt of one key sends the same bytes; another key, other bytes.
    """
    # The body is written directly, field by field in the order encode_form gives the same
    # params (a test holds the two byte for byte), since this runs once per payment: names
    # are constants already encoded, values go through the form's quoting (cached when short).
    cached = quote_value
    money = request.amount
    parts = [f"amount={to_stripe_amount(money)}&currency={cached(to_stripe_currency(money))}"
             f"&capture_method={'automatic' if request.capture else 'manual'}"
             f"&confirm={'true' if request.confirm else 'false'}"]
    if request.customer is not None:
        parts.append(f"customer={cached(request.customer)}")
    if request.description is not None:
        parts.append(f"description={quote(request.description)}")
    if (not request.metadata and generation is not None and reference_key != GENERATION_KEY
            and _plain_metadata_key(reference_key)
            and len(request.reference) <= MAX_METADATA_VALUE_LENGTH):
        # The usual request, with no metadata of its own: the two keys the adapter adds, in
        # the sorted order _metadata gives them (a test holds the two paths equal).
        pair = [f"{_metadata_name(reference_key)}={quote(request.reference)}",
                f"{_GENERATION_NAME}={_generation_text(generation)}"]
        parts.extend(pair if reference_key < GENERATION_KEY else reversed(pair))
    else:
        metadata = _metadata(request.metadata, reference_key, request.reference, generation)
        parts.extend([f"{_metadata_name(key)}={quote(value)}"
                      for key, value in metadata.items()])
    if request.payment_method is not None:
        parts.append(f"payment_method={cached(request.payment_method)}")
    parts.append(_types_field(payment_method_types))
    return _build_request(operation_id="PostPaymentIntents", method="POST",
                          path="/v1/payment_intents", path_params=_NO_PATH_PARAMS, query=(),
                          body="&".join(parts).encode("ascii"))


_build_request = builder(StripeRequest)
_NO_PATH_PARAMS: Mapping[str, str] = MappingProxyType({})
_GENERATION_NAME: Final = quote_name(f"metadata[{GENERATION_KEY}]")
_GENERATIONS = tuple(str(n) for n in range(8))


def _generation_text(generation: int) -> str:
    return _GENERATIONS[generation] if 0 <= generation < len(_GENERATIONS) else str(generation)


def _plain_metadata_key(key: str) -> bool:
    """A metadata key Stripe takes (what _metadata checks of every key)."""
    return len(key) <= MAX_METADATA_KEY_LENGTH and "[" not in key and "]" not in key


# Encoded names and fields, by what they encode: bounded, since keys and type lists are the
# caller's (usually one or two of each).
_metadata_names: dict[str, str] = {}
_types_fields: dict[tuple[str, ...], str] = {}
_MAX_CACHED: Final = 1024


def _metadata_name(key: str) -> str:
    """``metadata[key]``, form-encoded."""
    name = _metadata_names.get(key)
    if name is None:
        name = quote_name(f"metadata[{key}]")
        if len(_metadata_names) < _MAX_CACHED:
            _metadata_names[key] = name
    return name


def _types_field(types: tuple[str, ...]) -> str:
    """The ``payment_method_types[i]`` fields, form-encoded."""
    field = _types_fields.get(types)
    if field is None:
        field = encode_fields((f"payment_method_types[{index}]", kind)
                              for index, kind in enumerate(types)).decode("ascii")
        if len(_types_fields) < _MAX_CACHED:
            _types_fields[types] = field
    return field


def confirm_intent(payment_id: str, *, payment_method: str | None = None) -> StripeRequest:
    return _post("PostPaymentIntentsIntentConfirm", "/v1/payment_intents/{intent}/confirm",
                 {"payment_method": payment_method},
                 intent=_check_id(payment_id, "payment_id"))


def capture_intent(payment_id: str, *, amount: Money | None = None) -> StripeRequest:
    params: dict[str, FormValue] = {
        "amount_to_capture": None if amount is None else to_stripe_amount(
            amount, param="amount_to_capture"),
    }
    return _post("PostPaymentIntentsIntentCapture", "/v1/payment_intents/{intent}/capture",
                 params, intent=_check_id(payment_id, "payment_id"))


def cancel_intent(payment_id: str, *,
                  reason: CancellationReason | None = None) -> StripeRequest:
    return _post("PostPaymentIntentsIntentCancel", "/v1/payment_intents/{intent}/cancel",
                 {"cancellation_reason": None if reason is None else reason.value},
                 intent=_check_id(payment_id, "payment_id"))


def retrieve_intent(payment_id: str) -> StripeRequest:
    return _get("GetPaymentIntentsIntent", "/v1/payment_intents/{intent}", {},
                intent=_check_id(payment_id, "payment_id"))


def _quote(value: str) -> str:
    # Search query language: single-quoted strings, backslash escapes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def search_intents(reference: str, *, reference_key: str = DEFAULT_REFERENCE_KEY,
                   page: str | None = None) -> StripeRequest:
    """``GET /v1/payment_intents/search`` by the reference kept in metadata.

    Stripe's search index lags writes (usually by seconds, up to about a minute), so an empty
    answer is not proof of absence; :func:`list_intents` is.
    """
    query = f"metadata[{_quote(reference_key)}]:{_quote(reference)}"
    return _get("GetPaymentIntentsSearch", "/v1/payment_intents/search",
                {"query": query, "limit": LIST_PAGE_SIZE, "page": page})


def list_intents(*, created_gte: int | None = None,
                 starting_after: str | None = None) -> StripeRequest:
    """``GET /v1/payment_intents``, newest first, created at or after ``created_gte`` (if given).

    Listing is strongly consistent: a full scan of the window proves absence.
    """
    return _get("GetPaymentIntents", "/v1/payment_intents",
                {"created": None if created_gte is None else {"gte": created_gte},
                 "limit": LIST_PAGE_SIZE,
                 "starting_after": starting_after})


# -- Refunds (not in the PaymentIntents OpenAPI subset; shapes from Stripe's API reference) ----


def create_refund(payment_id: str, *, reference: str, amount: Money | None = None,
                  reason: RefundReason | None = None,
                  reference_key: str = DEFAULT_REFERENCE_KEY) -> StripeRequest:
    params: dict[str, FormValue] = {
        "payment_intent": _check_id(payment_id, "payment_id"),
        "amount": None if amount is None else to_stripe_amount(amount),
        "reason": None if reason is None else reason.value,
        "metadata": {reference_key: reference},
    }
    return _post("PostRefunds", "/v1/refunds", params)


def retrieve_refund(refund_id: str) -> StripeRequest:
    return _get("GetRefundsRefund", "/v1/refunds/{refund}", {},
                refund=_check_id(refund_id, "refund_id"))


def list_refunds(payment_id: str, *, starting_after: str | None = None) -> StripeRequest:
    return _get("GetRefunds", "/v1/refunds",
                {"payment_intent": _check_id(payment_id, "payment_id"),
                 "limit": LIST_PAGE_SIZE, "starting_after": starting_after})
