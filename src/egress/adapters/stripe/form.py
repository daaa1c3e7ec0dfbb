"""Stripe's v1 form encoding of nested parameters: the one codec of the adapter and FakeStripe.

``{"metadata": {"order": "42"}, "payment_method_types": ["card"]}`` becomes the fields
``metadata[order]=42`` and ``payment_method_types[0]=card``: mappings nest with ``[key]``, lists
are always indexed, ``None`` is left out, booleans are ``true``/``false``. The order of the fields
is the order of the mappings given, so a request built from the same values is always the same
bytes on the wire (the idempotency layer compares parameters; a retry must not differ).

- :func:`encode_form`: the ``application/x-www-form-urlencoded`` body, flattened and
  percent-encoded in one pass, byte for byte what :func:`urllib.parse.urlencode` makes of the
  fields (so bodies stay identical across versions of this module);
- :func:`encode_fields`: the same body from fields already flattened;
- :func:`form_fields`: the flattened ``(name, value)`` fields (a GET's query, which the HTTP
  client encodes);
- :func:`decode_form`: the inverse, strict (FakeStripe reads requests with it): ``a[]`` appends,
  ``a[0]``/``a[1]`` index a list (``0..n-1``), ``a[k]`` keys a map; a malformed name, a repeated
  field, a name used both as a value and as a container, or nesting deeper than
  :data:`MAX_DEPTH` raise :class:`FormError` naming the field. Values stay strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Union
from urllib.parse import parse_qsl, quote_plus

__all__ = [
    "MAX_DEPTH",
    "FormError",
    "FormTree",
    "FormValue",
    "decode_form",
    "encode_fields",
    "encode_form",
    "form_fields",
    "quote",
    "quote_name",
    "quote_value",
]

#: What the encoder takes: scalars, mappings and sequences of them.
FormValue = (
    str | int | bool | None | Mapping[str, "FormValue"] | Sequence["FormValue"]
)
#: What the decoder gives: strings, lists and maps of them.
FormTree = Union[str, "list[FormTree]", "dict[str, FormTree]"]
#: The deepest nesting a field name may have (``a[b][c]`` is 3).
MAX_DEPTH: Final = 8

# The characters quote_plus leaves as they are: a string made only of them needs no encoding.
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")
_NAME = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_PART = re.compile(r"\[([^\[\]]*)\]")
# Encoded field names, by name: a form uses the same few names again and again.
_encoded_names: dict[str, str] = {}
_MAX_ENCODED_NAMES: Final = 4096
# Encoded short values, by value (bounded like the names).
_encoded_values: dict[str, str] = {}
_MAX_CACHED_VALUE: Final = 24


class FormError(ValueError):
    """A field name or structure Stripe would refuse (``param`` names the field)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


# -- encoding ------------------------------------------------------------------------------------


def quote(text: str) -> str:
    """A name or value as the body carries it, uncached (for one-off values: a reference)."""
    return text if _PLAIN.fullmatch(text) else quote_plus(text)


def quote_name(name: str) -> str:
    """A field name as the body carries it (cached: a form uses the same few names)."""
    encoded = _encoded_names.get(name)
    if encoded is None:
        encoded = quote(name)
        if len(_encoded_names) < _MAX_ENCODED_NAMES:
            _encoded_names[name] = encoded
    return encoded


def quote_value(value: str) -> str:
    """A field value as the body carries it (cached when short: see below)."""
    encoded = _encoded_values.get(value)
    if encoded is None:
        encoded = quote(value)
        # Short values repeat ("usd", "true", "card", a payment method id); long ones are
        # usually one-off (a reference, a description) and stay out.
        if len(value) <= _MAX_CACHED_VALUE and len(_encoded_values) < _MAX_ENCODED_NAMES:
            _encoded_values[value] = encoded
    return encoded


def _scalar(value: FormValue) -> str | None:
    # bool before int: True is an int.
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return None


def _flatten(name: str, value: FormValue, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    text = _scalar(value)
    if text is not None:
        out.append((name, text))
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{name}[{key}]", inner, out)
    elif isinstance(value, Sequence):
        for index, inner in enumerate(value):
            _flatten(f"{name}[{index}]", inner, out)
    else:  # pragma: no cover - the type forbids it
        raise TypeError(f"cannot form-encode a {type(value).__name__}")


def form_fields(params: Mapping[str, FormValue]) -> list[tuple[str, str]]:
    """Flatten ``params`` into ``(name, value)`` fields in Stripe's bracket notation."""
    fields: list[tuple[str, str]] = []
    for key, value in params.items():
        _flatten(key, value, fields)
    return fields


def encode_form(params: Mapping[str, FormValue]) -> bytes:
    """``params`` as an ``application/x-www-form-urlencoded`` body, in one pass."""
    return encode_fields(form_fields(params))


def encode_fields(fields: Iterable[tuple[str, str]]) -> bytes:
    """Flattened ``(name, value)`` fields as an ``application/x-www-form-urlencoded`` body: what
    :func:`encode_form` sends, for a caller that built the fields itself (the create path)."""
    names = _encoded_names
    values = _encoded_values
    return "&".join([
        f"{names.get(name) or quote_name(name)}={values.get(value) or quote_value(value)}"
        for name, value in fields]).encode("ascii")


# -- decoding ------------------------------------------------------------------------------------


def _path(name: str) -> list[str]:
    match = _NAME.fullmatch(name)
    if match is None:
        raise FormError(f"Invalid parameter name: {name}", name)
    parts = [match.group(1), *_PART.findall(match.group(2))]
    if len(parts) > MAX_DEPTH:
        raise FormError(f"Parameter nested too deeply: {name}", name)
    if "" in parts[:-1]:
        raise FormError(f"Invalid parameter name: {name}", name)
    return parts


class _Appendable:
    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[str] = []


def decode_form(fields: Iterable[tuple[str, str]] | bytes) -> dict[str, FormTree]:
    """Nested parameters from a form body or from decoded ``(name, value)`` fields, in order."""
    if isinstance(fields, bytes):
        fields = parse_qsl(fields.decode("ascii", "replace"), keep_blank_values=True)
    root: dict[str, object] = {}
    for name, value in fields:
        parts = _path(name)
        node: dict[str, object] = root
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                if part in node:
                    raise FormError(f"Parameter given more than once: {name}", name)
                node[part] = value
                break
            child = node.get(part)
            if parts[i + 1] == "" and i + 2 == len(parts):
                # ``a[]=x``: append.
                if child is None:
                    child = node[part] = _Appendable()
                if not isinstance(child, _Appendable):
                    raise FormError(f"Invalid mix of list and object for {name}", name)
                child.items.append(value)
                break
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise FormError(f"Invalid mix of value and object for {name}", name)
            node = child
    return _finish(root, "")


def _finish(node: dict[str, object], prefix: str) -> dict[str, FormTree]:
    out: dict[str, FormTree] = {}
    for key, value in node.items():
        out[key] = _finish_value(value, f"{prefix}[{key}]" if prefix else key)
    return out


def _finish_value(value: object, name: str) -> FormTree:
    if isinstance(value, str):
        return value
    if isinstance(value, _Appendable):
        return list(value.items)
    assert isinstance(value, dict)
    finished = _finish(value, name)
    if finished and all(k.isascii() and k.isdigit() for k in finished):
        indices = sorted(int(k) for k in finished)
        # "a[00]" or "a[²]" (isdigit, not an index) is refused, never a KeyError/ValueError.
        if indices != list(range(len(indices))) or any(k != str(int(k)) for k in finished):
            raise FormError(f"Invalid array indices for {name}", name)
        return [finished[str(i)] for i in indices]
    return finished
