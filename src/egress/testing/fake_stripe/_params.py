"""Parameter checks and conversions, answering as Stripe does when a parameter is wrong (pure).

Parameter names accepted per operation follow ``PostPaymentIntents`` & co. in Stripe's OpenAPI
description; an unknown one is refused with ``parameter_unknown``, so a client that sends a
misspelt or invented field fails here as it would against Stripe.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from egress.testing.fake_stripe._errors import StripeApiError, invalid, missing_param
from egress.testing.fake_stripe._forms import DecodedForm, FormTree

__all__ = [
    "CANCEL_PARAMS",
    "CAPTURE_PARAMS",
    "CONFIRM_PARAMS",
    "CREATE_PARAMS",
    "LIST_PARAMS",
    "REFUND_LIST_PARAMS",
    "REFUND_PARAMS",
    "RETRIEVE_PARAMS",
    "SEARCH_PARAMS",
    "UPDATE_PARAMS",
    "check_known",
    "get_bool",
    "get_enum",
    "get_int",
    "get_metadata",
    "get_str",
    "get_str_list",
    "merge_metadata",
    "reject",
]

CREATE_PARAMS = frozenset({
    "amount", "application_fee_amount", "automatic_payment_methods", "capture_method", "confirm",
    "confirmation_method", "currency", "customer", "description", "error_on_requires_action",
    "expand", "mandate", "mandate_data", "metadata", "off_session", "on_behalf_of",
    "payment_method", "payment_method_data", "payment_method_options", "payment_method_types",
    "receipt_email", "return_url", "setup_future_usage", "shipping", "statement_descriptor",
    "statement_descriptor_suffix", "transfer_data", "transfer_group", "use_stripe_sdk",
    "payment_method_configuration", "radar_options", "confirmation_token",
})
UPDATE_PARAMS = frozenset({
    "amount", "application_fee_amount", "currency", "customer", "description", "expand",
    "metadata", "payment_method", "payment_method_data", "payment_method_options",
    "payment_method_types", "receipt_email", "setup_future_usage", "shipping",
    "statement_descriptor", "statement_descriptor_suffix", "transfer_data", "transfer_group",
    "capture_method",
})
CONFIRM_PARAMS = frozenset({
    "client_secret", "error_on_requires_action", "expand", "mandate", "mandate_data",
    "off_session", "payment_method", "payment_method_data", "payment_method_options",
    "payment_method_types", "receipt_email", "return_url", "setup_future_usage", "shipping",
    "use_stripe_sdk", "capture_method", "radar_options", "confirmation_token",
})
CAPTURE_PARAMS = frozenset({
    "amount_to_capture", "application_fee_amount", "expand", "statement_descriptor",
    "statement_descriptor_suffix", "transfer_data", "metadata", "final_capture",
})
CANCEL_PARAMS = frozenset({"cancellation_reason", "expand"})
RETRIEVE_PARAMS = frozenset({"client_secret", "expand"})
LIST_PARAMS = frozenset({"created", "customer", "ending_before", "expand", "limit",
                         "starting_after"})
SEARCH_PARAMS = frozenset({"expand", "limit", "page", "query"})
REFUND_LIST_PARAMS = frozenset({"charge", "created", "ending_before", "expand", "limit",
                                "payment_intent", "starting_after"})
REFUND_PARAMS = frozenset({
    "amount", "charge", "currency", "customer", "expand", "instructions_email", "metadata",
    "origin", "payment_intent", "reason", "refund_application_fee", "reverse_transfer",
})

_MAX_METADATA_KEYS = 50
_MAX_METADATA_KEY = 40
_MAX_METADATA_VALUE = 500


def check_known(params: DecodedForm, allowed: Collection[str]) -> None:
    for name in params:
        if name not in allowed:
            raise invalid(f"Received unknown parameter: {name}", param=name,
                          code="parameter_unknown")


def get_str(params: DecodedForm, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise missing_param(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name}", param=name, code="parameter_invalid_string")
    return value


def get_int(params: DecodedForm, name: str, *, required: bool = False,
            minimum: int | None = None) -> int | None:
    raw = get_str(params, name, required=required)
    if raw is None:
        return None
    if not raw.lstrip("-").isdigit() or len(raw) > 19:
        raise invalid(f"Invalid integer: {raw[:40]}", param=name,
                      code="parameter_invalid_integer")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param=name,
                      code="parameter_invalid_integer")
    return value


def get_bool(params: DecodedForm, name: str) -> bool | None:
    raw = get_str(params, name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise invalid(f"Invalid boolean: {raw[:40]}", param=name, code="parameter_invalid_boolean")
    return raw == "true"


def get_enum(params: DecodedForm, name: str, allowed: Collection[str]) -> str | None:
    raw = get_str(params, name)
    if raw is not None and raw not in allowed:
        choices = ", ".join(f"`{a}`" for a in sorted(allowed))
        raise invalid(f"Invalid {name}: must be one of {choices}", param=name)
    return raw


def get_str_list(params: DecodedForm, name: str) -> list[str] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Invalid array: {name}", param=name, code="parameter_invalid_array")
    return [v for v in value if isinstance(v, str)]


def get_metadata(params: DecodedForm) -> dict[str, str] | None:
    """``metadata[k]=v`` as a dict; an empty ``v`` means "unset k" (callers merge)."""
    value: FormTree | None = params.get("metadata")
    if value is None:
        return None
    if value == "":
        return {}
    if not isinstance(value, Mapping):
        raise invalid("Invalid hash: metadata", param="metadata", code="parameter_invalid_hash")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"Invalid metadata value for key {key[:40]}",
                          param=f"metadata[{key[:40]}]")
        if len(key) > _MAX_METADATA_KEY:
            raise invalid(f"Metadata keys can have up to {_MAX_METADATA_KEY} characters.",
                          param=f"metadata[{key[:40]}]")
        if len(item) > _MAX_METADATA_VALUE:
            raise invalid(f"Metadata values can have up to {_MAX_METADATA_VALUE} characters.",
                          param=f"metadata[{key}]")
        out[key] = item
    if len(out) > _MAX_METADATA_KEYS:
        raise invalid(f"You can have up to {_MAX_METADATA_KEYS} metadata keys.",
                      param="metadata")
    return out


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's update rule: set the keys given, unset those given as ``""``."""
    if update is None:
        return current
    if not update:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def reject(message: str, *, param: str | None = None, code: str | None = None) -> StripeApiError:
    """A 400 produced while executing (the idempotency layer saves and replays it)."""
    return invalid(message, param=param, code=code, saved=True)
